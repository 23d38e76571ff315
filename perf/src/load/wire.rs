//! The generator's HTTP/1.1 on the wire, without an HTTP client library:
//! requests written into a connection's reusable buffer (a prefix built once
//! per target, the length, the prepared body bytes), responses' heads parsed
//! by `httparse`, their JSON bodies by borrowed `serde` structs, verdict
//! codes interned per connection. Nothing here allocates per request once
//! the buffers have grown (an error's or a new code's first sighting aside).
//!
//! The node is a hyper server, which answers pipelined requests in order
//! and always sends `Content-Length` for its JSON answers.

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::io::Write;

/// Most response headers parsed (the node sends about five).
const HEADERS_MAX: usize = 32;
/// Largest response head accepted.
pub const HEAD_BYTES_MAX: usize = 16 * 1024;
/// Largest response body accepted (a 1,000-proof batch answer is ~120 KB).
pub const BODY_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Why a request got no verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    Connect(std::io::ErrorKind),
    /// The connection ended before the whole answer came.
    ConnectionClosed,
    Write(std::io::ErrorKind),
    Read(std::io::ErrorKind),
    Timeout,
    /// Not an HTTP/1.1 response head (or one over [`HEAD_BYTES_MAX`]).
    BadHead,
    /// A response without `Content-Length` (chunked), which the node never sends.
    NoContentLength,
    BodyTooLarge {
        len: usize,
    },
    NotJson {
        status: u16,
    },
    NoCode {
        status: u16,
    },
    Unexpected {
        status: u16,
    },
    BadResults {
        status: u16,
    },
    BadResultItem,
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ErrorKind::Connect(k) => write!(f, "connect: {k}"),
            ErrorKind::ConnectionClosed => f.write_str("connection closed"),
            ErrorKind::Write(k) => write!(f, "write: {k}"),
            ErrorKind::Read(k) => write!(f, "read: {k}"),
            ErrorKind::Timeout => f.write_str("timeout"),
            ErrorKind::BadHead => f.write_str("bad_response_head"),
            ErrorKind::NoContentLength => f.write_str("no_content_length"),
            ErrorKind::BodyTooLarge { len } => write!(f, "body_too_large_{len}"),
            ErrorKind::NotJson { status } => write!(f, "http_{status}_not_json"),
            ErrorKind::NoCode { status } => write!(f, "http_{status}_no_code"),
            ErrorKind::Unexpected { status } => write!(f, "http_{status}_unexpected"),
            ErrorKind::BadResults { status } => write!(f, "http_{status}_bad_results"),
            ErrorKind::BadResultItem => f.write_str("bad_result_item"),
        }
    }
}

/// A rejection code's number in its connection's [`Codes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeId(u16);

/// The rejection codes a connection has seen (a handful).
#[derive(Debug, Default, Clone)]
pub struct Codes(Vec<String>);

impl Codes {
    pub fn id(&mut self, code: &str) -> CodeId {
        if let Some(i) = self.0.iter().position(|c| c == code) {
            return CodeId(i as u16);
        }
        self.0.push(code.to_owned());
        CodeId((self.0.len() - 1) as u16)
    }

    pub fn name(&self, id: CodeId) -> &str {
        self.0.get(usize::from(id.0)).map_or("?", String::as_str)
    }
}

/// What a proof's submission came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Rejected(CodeId),
    /// No verdict: a transport error, a timeout, or an answer that is not
    /// the API's JSON.
    Error(ErrorKind),
}

/// Writes the requests of one target: `POST path` with a JSON body.
#[derive(Debug, Clone)]
pub struct RequestWriter {
    /// Everything up to the `Content-Length` value.
    prefix: Vec<u8>,
}

impl RequestWriter {
    pub fn new(path: &str, authority: &str) -> RequestWriter {
        RequestWriter {
            prefix: format!(
                "POST {path} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\ncontent-length: "
            )
            .into_bytes(),
        }
    }

    fn head(&self, out: &mut Vec<u8>, len: usize) {
        out.extend_from_slice(&self.prefix);
        // Into a Vec: cannot fail.
        let _ = write!(out, "{len}\r\n\r\n");
    }

    /// Appends a request whose body is `body`.
    pub fn single(&self, out: &mut Vec<u8>, body: &[u8]) {
        self.head(out, body.len());
        out.extend_from_slice(body);
    }

    /// Appends a request whose body is the JSON array of `bodies`.
    pub fn batch<'a, I>(&self, out: &mut Vec<u8>, bodies: I)
    where
        I: Iterator<Item = &'a [u8]> + Clone,
    {
        let (n, len) = bodies
            .clone()
            .fold((0, 0), |(n, l), b| (n + 1, l + b.len()));
        self.head(out, 2 + len + n.max(1) - 1);
        out.push(b'[');
        for (i, b) in bodies.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b);
        }
        out.push(b']');
    }
}

/// A response head found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Bytes of the head (the body starts there).
    pub head_len: usize,
    pub body_len: usize,
    /// `connection: close`: the server ends the connection after this answer.
    pub close: bool,
}

/// Parses the response head at the start of `buf`; `Ok(None)`: not all there yet.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, ErrorKind> {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut r = httparse::Response::new(&mut headers);
    let head_len = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < HEAD_BYTES_MAX => return Ok(None),
        _ => return Err(ErrorKind::BadHead),
    };
    let status = r.code.ok_or(ErrorKind::BadHead)?;
    let mut body_len = None;
    let mut close = false;
    for h in r.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value).map_err(|_| ErrorKind::BadHead)?;
            body_len = Some(v.trim().parse().map_err(|_| ErrorKind::BadHead)?);
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = h.value.eq_ignore_ascii_case(b"close");
        }
    }
    // 204 and 304 have no body; the node sends neither to these requests.
    let body_len = body_len.ok_or(ErrorKind::NoContentLength)?;
    if body_len > BODY_BYTES_MAX {
        return Err(ErrorKind::BodyTooLarge { len: body_len });
    }
    Ok(Some(Head {
        status,
        head_len,
        body_len,
        close,
    }))
}

#[derive(Deserialize)]
struct Item<'a> {
    ok: Option<bool>,
    #[serde(borrow)]
    code: Option<Cow<'a, str>>,
}

/// The answer's `ok` and `code`; its `results` go through [`ResultsSeed`].
#[derive(Default)]
struct Top<'a> {
    ok: Option<bool>,
    code: Option<Cow<'a, str>>,
    results: bool,
}

struct ResultsSeed<'c> {
    codes: &'c mut Codes,
    out: &'c mut Vec<Outcome>,
}

impl<'de> DeserializeSeed<'de> for ResultsSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ResultsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of results")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element::<Item<'de>>()? {
            self.out.push(match (item.ok, item.code) {
                (Some(true), _) => Outcome::Accepted,
                (Some(false), Some(code)) => Outcome::Rejected(self.codes.id(&code)),
                _ => Outcome::Error(ErrorKind::BadResultItem),
            });
        }
        Ok(())
    }
}

struct TopSeed<'c> {
    codes: &'c mut Codes,
    out: &'c mut Vec<Outcome>,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = Top<'de>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Top<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = Top<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("the API's JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
        let mut top = Top::default();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match &*key {
                "ok" => top.ok = map.next_value()?,
                "code" => top.code = map.next_value()?,
                "results" if !top.results => {
                    top.results = true;
                    map.next_value_seed(ResultsSeed {
                        codes: &mut *self.codes,
                        out: &mut *self.out,
                    })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(top)
    }
}

/// Puts the outcome of each of the `count` proofs of one answer in `out`
/// (cleared first): `POST /proof/submit` (`batch` false) answers for one
/// proof, `POST /proofs` has one result per proof, or refuses them all.
pub fn outcomes(
    batch: bool,
    status: u16,
    body: &[u8],
    count: usize,
    codes: &mut Codes,
    out: &mut Vec<Outcome>,
) {
    out.clear();
    let mut de = serde_json::Deserializer::from_slice(body);
    let top = TopSeed {
        codes: &mut *codes,
        out: &mut *out,
    }
    .deserialize(&mut de)
    .and_then(|t| de.end().map(|()| t));
    let all = |out: &mut Vec<Outcome>, o| {
        out.clear();
        out.resize(count, o);
    };
    let Ok(top) = top else {
        return all(out, Outcome::Error(ErrorKind::NotJson { status }));
    };
    if top.ok == Some(false) {
        return match top.code {
            Some(code) => all(out, Outcome::Rejected(codes.id(&code))),
            None => all(out, Outcome::Error(ErrorKind::NoCode { status })),
        };
    }
    if !batch {
        let o = if top.ok == Some(true) && (200..300).contains(&status) {
            Outcome::Accepted
        } else {
            Outcome::Error(ErrorKind::Unexpected { status })
        };
        return all(out, o);
    }
    if !top.results || out.len() != count {
        all(out, Outcome::Error(ErrorKind::BadResults { status }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(batch: bool, status: u16, body: &[u8], count: usize) -> (Vec<Outcome>, Codes) {
        let (mut codes, mut out) = (Codes::default(), Vec::new());
        outcomes(batch, status, body, count, &mut codes, &mut out);
        (out, codes)
    }

    #[test]
    fn single_and_batch_responses() {
        let ok = br#"{"ok":true,"status":"pending","proofId":"ab"}"#;
        assert_eq!(run(false, 202, ok, 1).0, vec![Outcome::Accepted]);
        let rej = br#"{"ok":false,"code":"BAD_SIGNATURE","message":"m"}"#;
        let (o, codes) = run(false, 401, rej, 1);
        assert!(matches!(o[..], [Outcome::Rejected(c)] if codes.name(c) == "BAD_SIGNATURE"));
        assert_eq!(
            run(false, 502, b"<html>", 1).0,
            vec![Outcome::Error(ErrorKind::NotJson { status: 502 })]
        );
        // Trailing bytes make it not the API's JSON.
        assert_eq!(
            run(false, 202, br#"{"ok":true} x"#, 1).0,
            vec![Outcome::Error(ErrorKind::NotJson { status: 202 })]
        );
        assert_eq!(
            run(false, 500, br#"{"ok":true}"#, 1).0,
            vec![Outcome::Error(ErrorKind::Unexpected { status: 500 })]
        );
        let batch = br#"{"accepted":1,"ok":true,"rejected":1,"results":[
            {"index":0,"ok":true,"proofId":"x"},{"index":1,"ok":false,"code":"OUT_OF_BOUNDS","message":"a \"quoted\" word"}]}"#;
        let (o, codes) = run(true, 200, batch, 2);
        assert_eq!(o[0], Outcome::Accepted);
        assert!(matches!(o[1], Outcome::Rejected(c) if codes.name(c) == "OUT_OF_BOUNDS"));
        // A whole-batch refusal applies to every proof in it.
        let over = br#"{"ok":false,"code":"OVERLOADED","message":"m"}"#;
        let (o, codes) = run(true, 503, over, 3);
        assert_eq!(o.len(), 3);
        assert!(o
            .iter()
            .all(|o| matches!(o, Outcome::Rejected(c) if codes.name(*c) == "OVERLOADED")));
        assert_eq!(
            run(true, 200, batch, 3).0,
            vec![Outcome::Error(ErrorKind::BadResults { status: 200 }); 3]
        );
        assert_eq!(
            run(true, 200, br#"{"ok":true}"#, 2).0,
            vec![Outcome::Error(ErrorKind::BadResults { status: 200 }); 2]
        );
        assert_eq!(
            run(true, 200, br#"{"ok":true,"results":[{"ok":false}]}"#, 1).0,
            vec![Outcome::Error(ErrorKind::BadResultItem)]
        );
        // An escaped code is unescaped (and interned once).
        let (mut codes, mut out) = (Codes::default(), Vec::new());
        let esc = br#"{"ok":false,"code":"TOO\u005fFAST"}"#;
        outcomes(false, 429, esc, 1, &mut codes, &mut out);
        outcomes(
            false,
            429,
            br#"{"ok":false,"code":"TOO_FAST"}"#,
            1,
            &mut codes,
            &mut out,
        );
        assert!(matches!(out[..], [Outcome::Rejected(c)] if c == codes.id("TOO_FAST")));
        assert_eq!(codes.0.len(), 1);
    }

    #[test]
    fn requests_are_well_formed() {
        let w = RequestWriter::new("/proofs", "127.0.0.1:1");
        let mut out = Vec::new();
        w.batch(&mut out, [&b"{}"[..], b"{\"a\":1}"].into_iter());
        w.single(&mut out, b"{}");
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut req = httparse::Request::new(&mut headers);
        let Ok(httparse::Status::Complete(n)) = req.parse(&out) else {
            panic!("not a request: {out:?}")
        };
        assert_eq!((req.method, req.path), (Some("POST"), Some("/proofs")));
        let len = req.headers.iter().find(|h| h.name == "content-length");
        assert_eq!(len.map(|h| h.value), Some(&b"12"[..]));
        assert_eq!(&out[n..n + 12], br#"[{},{"a":1}]"#);
        assert!(out[n + 12..].starts_with(b"POST /proofs HTTP/1.1\r\n"));
        assert!(out.ends_with(b"content-length: 2\r\n\r\n{}"));
    }

    #[test]
    fn response_heads() {
        let r = b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}HTTP/1.1";
        let h = parse_head(r).ok().flatten();
        assert_eq!(
            h,
            Some(Head {
                status: 202,
                head_len: r.len() - 19,
                body_len: 11,
                close: false
            })
        );
        assert_eq!(parse_head(&r[..20]), Ok(None));
        let close = b"HTTP/1.1 503 x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert!(parse_head(close).is_ok_and(|h| h.is_some_and(|h| h.close)));
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        assert_eq!(parse_head(chunked), Err(ErrorKind::NoContentLength));
        assert_eq!(parse_head(b"SSH-2.0\r\n\r\n"), Err(ErrorKind::BadHead));
        let huge = b"HTTP/1.1 200 OK\r\ncontent-length: 999999999\r\n\r\n";
        assert_eq!(
            parse_head(huge),
            Err(ErrorKind::BodyTooLarge { len: 999_999_999 })
        );
        assert_eq!(parse_head(&[b'x'; HEAD_BYTES_MAX]), Err(ErrorKind::BadHead));
    }
}
