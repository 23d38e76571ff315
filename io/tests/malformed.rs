//! Every kind of malformed request gets a 4xx with a code, never a 5xx or a
//! dropped connection, and the server stays up.
#![allow(clippy::unwrap_used)]

mod support;

use support::{raw_exchange, request, test_config, valid_lines, Server};

/// (name, body, content type, status, code)
type Case<'a> = (&'a str, Vec<u8>, Option<&'a str>, u16, &'a str);

async fn post(server: &Server, content_type: Option<&str>, body: &[u8]) -> support::Resp {
    let headers: Vec<(&str, &str)> = content_type
        .map(|c| ("Content-Type", c))
        .into_iter()
        .collect();
    request(server.addr, "POST", "/proof/submit", &headers, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_get_codes() {
    let server = Server::start(test_config()).await;
    let valid = &valid_lines()[0];
    let json = Some("application/json");
    let cases: Vec<Case> = vec![
        ("empty body", b"".to_vec(), json, 400, "INVALID_PAYLOAD"),
        ("not JSON", b"hello".to_vec(), json, 400, "INVALID_PAYLOAD"),
        (
            "truncated JSON",
            valid.as_bytes()[..valid.len() / 2].to_vec(),
            json,
            400,
            "INVALID_PAYLOAD",
        ),
        ("array", b"[1,2]".to_vec(), json, 400, "INVALID_PAYLOAD"),
        ("number", b"42".to_vec(), json, 400, "INVALID_PAYLOAD"),
        ("null", b"null".to_vec(), json, 400, "INVALID_PAYLOAD"),
        ("empty object", b"{}".to_vec(), json, 400, "INVALID_PAYLOAD"),
        (
            "payload a string",
            br#"{"payload":"x","signature":"0x00"}"#.to_vec(),
            json,
            400,
            "INVALID_PAYLOAD",
        ),
        (
            "lat a string",
            valid
                .replace("\"lat\":", "\"lat\":\"1\",\"x\":")
                .into_bytes(),
            json,
            400,
            "INVALID_PAYLOAD",
        ),
        (
            "duplicate key",
            valid
                .replacen("{\"payload\"", "{\"signature\":\"0x\",\"payload\"", 1)
                .into_bytes(),
            json,
            400,
            "INVALID_PAYLOAD",
        ),
        (
            "invalid UTF-8",
            b"{\"payload\":\"\xff\xfe\"}".to_vec(),
            json,
            400,
            "INVALID_PAYLOAD",
        ),
        (
            "deep nesting",
            format!("{}{}", "[".repeat(8_000), "]".repeat(8_000)).into_bytes(),
            json,
            400,
            "INVALID_PAYLOAD",
        ),
        (
            "oversized",
            vec![b' '; 17 * 1024],
            json,
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        (
            "form content type",
            valid.as_bytes().to_vec(),
            Some("application/x-www-form-urlencoded"),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "text content type",
            valid.as_bytes().to_vec(),
            Some("text/plain"),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "no content type",
            valid.as_bytes().to_vec(),
            None,
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "garbage content type",
            valid.as_bytes().to_vec(),
            Some("application/jsonx"),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
    ];
    for (name, body, ct, status, code) in cases {
        let r = post(&server, ct, &body).await;
        assert_eq!(
            r.status,
            status,
            "{name}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.assert_error(status, code);
    }
    // A JSON content type with parameters is fine.
    let r = post(
        &server,
        Some("application/json; charset=utf-8"),
        valid.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(server.get("/health").await.status, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_routes_methods_and_parameters() {
    let server = Server::start(test_config()).await;
    for (path, status, code) in [
        ("/nope", 404, "NOT_FOUND"),
        ("/", 404, "NOT_FOUND"),
        ("/proof", 404, "NOT_FOUND"),
        ("/proof/submit/extra", 404, "NOT_FOUND"),
        ("/proof/xyz", 400, "INVALID_PAYLOAD"),
        ("/proof/%ff%fe", 400, "INVALID_PAYLOAD"),
        ("/account/0x123", 400, "INVALID_PAYLOAD"),
        ("/account/hello", 400, "INVALID_PAYLOAD"),
        (
            "/triangle/STEP-TRI-v1:A10-00000000000000000000-UPC",
            404,
            "TRIANGLE_NOT_FOUND",
        ),
        ("/triangle/x", 404, "TRIANGLE_NOT_FOUND"),
        // The route exists with another method.
        ("/proof/submit", 405, "METHOD_NOT_ALLOWED"),
        ("/proofs", 405, "METHOD_NOT_ALLOWED"),
    ] {
        let r = server.get(path).await;
        assert_eq!(r.status, status, "GET {path}");
        r.assert_error(status, code);
    }
    let json: &[(&str, &str)] = &[("Content-Type", "application/json")];
    for (method, path, headers, body, status, code) in [
        (
            "DELETE",
            "/status",
            &[][..],
            &b""[..],
            405,
            "METHOD_NOT_ALLOWED",
        ),
        (
            "PUT",
            "/proof/submit",
            json,
            b"{}",
            405,
            "METHOD_NOT_ALLOWED",
        ),
        // /proofs: wrong content type.
        (
            "POST",
            "/proofs",
            &[("Content-Type", "text/csv")],
            b"a,b",
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
    ] {
        let r = request(server.addr, method, path, headers, body).await;
        r.assert_error(status, code);
    }
    // Bad query parameters.
    let valid = &valid_lines()[0];
    server
        .post_json("/proof/submit?wait=maybe", valid.as_bytes())
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    // Nothing above was accepted.
    assert_eq!(server.get("/status").await.json()["height"], 0);
    assert_eq!(server.get("/health").await.status, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_socket_abuse() {
    let server = Server::start(test_config()).await;
    let addr = server.addr;

    // Not HTTP at all: hyper answers 400 itself (no JSON body possible: the
    // request could not be parsed) and closes.
    let r = raw_exchange(
        addr,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
        false,
    )
    .await;
    assert_eq!(r.status, 400);
    let r = raw_exchange(addr, b"GET / HTTP/9.9\r\n\r\n", false).await;
    assert!((400..500).contains(&r.status), "{}", r.status);

    // A body larger than the limit, fully sent: 413 with a code, delivered.
    let body = vec![b'x'; 64 * 1024];
    let mut raw = format!(
        "POST /proof/submit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    raw_exchange(addr, &raw, false)
        .await
        .assert_error(413, "PAYLOAD_TOO_LARGE");

    // A huge declared length, body never sent: answered at once.
    let raw = b"POST /proof/submit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000000\r\n\r\n";
    raw_exchange(addr, raw, false)
        .await
        .assert_error(413, "PAYLOAD_TOO_LARGE");

    // Chunked and oversized.
    let mut raw = b"POST /proof/submit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for _ in 0..5 {
        raw.extend_from_slice(b"1000\r\n");
        raw.extend_from_slice(&[b' '; 0x1000]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    raw_exchange(addr, &raw, false)
        .await
        .assert_error(413, "PAYLOAD_TOO_LARGE");

    // Truncated: declares 500 bytes, sends 100, then closes its write side.
    let valid = &valid_lines()[0];
    let mut raw = b"POST /proof/submit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n".to_vec();
    raw.extend_from_slice(&valid.as_bytes()[..100]);
    raw_exchange(addr, &raw, true)
        .await
        .assert_error(400, "INVALID_PAYLOAD");

    // Truncated chunked body.
    let mut raw = b"POST /proof/submit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    raw.extend_from_slice(b"100\r\n{\"payload\"");
    raw_exchange(addr, &raw, true)
        .await
        .assert_error(400, "INVALID_PAYLOAD");

    // Two requests on one keep-alive connection, the first malformed.
    let bad = b"{oops";
    let mut raw = format!(
        "POST /proof/submit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        bad.len()
    )
    .into_bytes();
    raw.extend_from_slice(bad);
    raw.extend_from_slice(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let r = raw_exchange(addr, &raw, false).await;
    r.assert_error(400, "INVALID_PAYLOAD");
    let second = support::parse_response(&r.rest);
    assert_eq!(second.status, 200);
    assert_eq!(second.json()["live"], true);

    // Still up, and still verifying.
    assert_eq!(server.get("/health").await.status, 200);
    let r = server.submit(valid).await;
    assert_eq!(r.status, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_body_times_out_with_408() {
    let server = Server::configured(|c| c.http.body_timeout_ms = 200).await;
    // Declares 300 bytes, sends 10, keeps the connection open.
    let mut s = support::connect_and_send(server.addr, b"POST /proof/submit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 300\r\n\r\n{\"payload\"").await;
    let out = support::read_to_close(&mut s, "a slow-body connection").await;
    support::parse_response(&out).assert_error(408, "REQUEST_TIMEOUT");
    assert_eq!(server.get("/health").await.status, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_idle_connections_are_closed() {
    let server = Server::configured(|c| c.http.header_timeout_ms = 200).await;
    // Headers that never end.
    let mut s =
        support::connect_and_send(server.addr, b"GET /health HTTP/1.1\r\nHost: x\r\n").await;
    let out = support::read_to_close(&mut s, "a slow-header connection").await;
    // hyper closes it without an answer (documented in the guide).
    assert!(out.is_empty(), "{:?}", String::from_utf8_lossy(&out));
    // A connection that never sends anything.
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    support::read_to_close(&mut s, "an idle connection").await;
    assert_eq!(server.get("/health").await.status, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let server = Server::configured(|c| {
        c.http.max_connections = 1;
        // A's idle keep-alive must outlive the test, however loaded the machine.
        c.http.header_timeout_ms = 120_000;
    })
    .await;
    use tokio::io::AsyncReadExt;
    // A holds the only slot: a keep-alive connection after one request.
    let mut a =
        support::connect_and_send(server.addr, b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
    let mut buf = [0u8; 1024];
    let n = a.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // B is accepted by the kernel but not served while A is open. (A short
    // bounded wait: there is no event for "not served".)
    let mut b = support::connect_and_send(
        server.addr,
        b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let mut out = Vec::new();
    let early = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        b.read_to_end(&mut out),
    )
    .await;
    assert!(early.is_err(), "B was served while A held the only slot");
    drop(a);
    tokio::time::timeout(support::IO_TIMEOUT, b.read_to_end(&mut out))
        .await
        .expect("B was not served after A closed")
        .unwrap();
    assert_eq!(support::parse_response(&out).status, 200);
    server.shutdown().await;
}
