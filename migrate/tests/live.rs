//! `step migrate import --mongo-uri`: the same Phase 2 history, inserted
//! into a real MongoDB wire-protocol server (PyPI's `secantusdb` 0.7.0b3,
//! `$STEP_SECANTUSD` or `secantusd-py` on the PATH; `scripts/test` installs
//! it), read back by the `mongodb` driver, gives the same state as the
//! mongoexport import. Without the server the test skips, and fails under
//! `CI=true`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bson::Document;
use step_migrate::{run, Input, RunOptions};
use step_testkit::phase2_history::{sample_history, write_export};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        if let Err(e) = self.0.kill() {
            eprintln!("stopping secantusd: {e}");
        }
        if let Err(e) = self.0.wait() {
            eprintln!("reaping secantusd: {e}");
        }
    }
}

fn server_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("STEP_SECANTUSD") {
        return Some(PathBuf::from(p));
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.ci-cache/secantusdb/.venv/bin/secantusd-py");
    if local.exists() {
        return Some(local);
    }
    Command::new("secantusd-py")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()
        .filter(|s| s.success())
        .map(|_| PathBuf::from("secantusd-py"))
}

fn start_server(log: &Path) -> Option<(Server, u16)> {
    let Some(bin) = server_binary() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "secantusd-py not found under CI=true: scripts/test installs it (set STEP_SECANTUSD)"
        );
        eprintln!("SKIPPED: secantusd-py not found (bash scripts/test installs it)");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let out = std::fs::File::create(log).unwrap();
    let child = Command::new(&bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--storage-path", ":memory:", "--standalone"])
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
    let server = Server(child);
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "secantusd did not listen on {port}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some((server, port))
}

#[test]
fn a_live_database_imports_to_the_same_state_as_its_mongoexport() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((_server, port)) = start_server(&tmp.path().join("secantusd.log")) else {
        return;
    };
    let h = sample_history();
    let export = tmp.path().join("export");
    write_export(&h.phase2, &export);
    let uri = format!("mongodb://127.0.0.1:{port}/?directConnection=true");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
        let db = client.database("phase2");
        for (name, docs) in h.phase2.export() {
            let docs: Vec<Document> = docs
                .into_iter()
                .map(|v| match bson::Bson::try_from(v).unwrap() {
                    bson::Bson::Document(d) => d,
                    other => panic!("not a document: {other}"),
                })
                .collect();
            let n = docs.len();
            let r = db
                .collection::<Document>(name)
                .insert_many(docs)
                .await
                .unwrap();
            assert_eq!(r.inserted_ids.len(), n, "{name}");
        }
    });
    let import = |input, out: &Path| {
        let opts = RunOptions {
            input,
            out: out.to_owned(),
            reject_file: Some(out.with_extension("rejects")),
        };
        rt.block_on(run(&opts, &|_, _| {})).unwrap()
    };
    let live_out = tmp.path().join("live.json");
    let live = import(
        Input::Mongo {
            uri: uri.clone(),
            db: Some("phase2".into()),
        },
        &live_out,
    );
    let file_out = tmp.path().join("file.json");
    let file = import(Input::ExportDir(export), &file_out);
    assert_eq!(live.report.counts, file.report.counts);
    assert_eq!(live.root, file.root);
    assert_eq!(
        std::fs::read(&live_out).unwrap(),
        std::fs::read(&file_out).unwrap()
    );
    assert_eq!(live.refused, 1, "the mock triangle");

    // A URI without a database and no --db is an error that says so.
    let e = rt
        .block_on(run(
            &RunOptions {
                input: Input::Mongo { uri, db: None },
                out: tmp.path().join("x.json"),
                reject_file: None,
            },
            &|_, _| {},
        ))
        .expect_err("no database");
    assert!(e.to_string().contains("--db"), "{e}");
}
