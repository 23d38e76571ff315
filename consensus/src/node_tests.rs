//! The app supervisor: an error or a panic is fatal.

use super::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

async fn supervised(
    app: impl std::future::Future<Output = Result<(), crate::error::AppError>> + Send + 'static,
) -> (Option<String>, bool) {
    let (tx, mut rx) = broadcast::channel(4);
    let running = Arc::new(AtomicBool::new(true));
    supervise(tokio::spawn(app), tx, Arc::clone(&running)).await;
    let fatal = match rx.try_recv() {
        Ok(NodeEvent::Fatal(f)) => Some(f),
        _ => None,
    };
    (fatal, running.load(Ordering::Acquire))
}

#[tokio::test]
async fn a_panic_or_an_error_of_the_app_is_fatal_and_the_node_not_running() {
    let (fatal, running) = supervised(async { panic!("boom") }).await;
    assert_eq!(fatal.as_deref(), Some("STEP app panicked: boom"));
    assert!(!running);
    let (fatal, running) = supervised(async {
        Err(crate::error::AppError::Task {
            what: "execute block",
            reason: "gone".into(),
        })
    })
    .await;
    assert_eq!(
        fatal.as_deref(),
        Some("STEP app stopped: the execute block task failed: gone")
    );
    assert!(!running);
    let (fatal, running) = supervised(async { Ok(()) }).await;
    assert_eq!((fatal, running), (None, false), "a clean end is not fatal");
}
