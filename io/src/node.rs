//! Running the HTTP API over a [`Ledger`]: what `step node --config FILE`
//! will call once the consensus backend exists (`io::node::run(config,
//! ledger, metrics)`), and what the tests call with a [`LocalLedger`] on a
//! loopback port ([`serve`]).
//!
//! Shutdown (SIGINT/SIGTERM for [`run`], any future for [`serve`]): the
//! listener stops accepting, `/events` streams end, in-flight requests are
//! answered (up to `http.shutdown_grace_ms`), then the ledger is closed,
//! which finalizes every proof it had already accepted.
//!
//! [`LocalLedger`]: crate::ledger::LocalLedger

use crate::config::Config;
use crate::http::{router, AppState};
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::redis_store::RedisUrlError;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use step_engine::pipeline::Clock;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Why the HTTP node stopped with an error (not `step_consensus::NodeError`,
/// the consensus node's own).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Redis(#[from] RedisUrlError),
}

/// Binds `http.listen` and serves until SIGINT or SIGTERM.
pub async fn run(
    config: Config,
    ledger: Arc<dyn Ledger>,
    metrics: Arc<Metrics>,
    clock: Clock,
) -> Result<(), RunError> {
    let addr = config.http.listen.clone();
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|source| RunError::Bind { addr, source })?;
    tracing::info!(addr = %config.http.listen, "HTTP API listening");
    serve(listener, config, ledger, metrics, clock, shutdown_signal()).await
}

/// Serves on `listener` until `shutdown` resolves, then shuts down
/// gracefully (see the module documentation).
pub async fn serve(
    listener: TcpListener,
    config: Config,
    ledger: Arc<dyn Ledger>,
    metrics: Arc<Metrics>,
    clock: Clock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let grace = Duration::from_millis(config.http.shutdown_grace_ms);
    let limits = ConnLimits {
        max_connections: config.http.max_connections.max(1),
        header_timeout: Duration::from_millis(config.http.header_timeout_ms.max(1)),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let state = AppState::new(
        Arc::new(config),
        Arc::clone(&ledger),
        metrics,
        clock,
        stop_rx,
    )?;
    let app = router(state);
    let graceful = GracefulShutdown::new();
    accept_loop(&listener, &app, &graceful, limits, shutdown).await;
    drop(listener);
    tracing::info!("shutting down: answering in-flight requests");
    let _ = stop_tx.send(true);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; dropping remaining connections");
    }
    ledger.close().await;
    tracing::info!("stopped");
    Ok(())
}

#[derive(Debug, Clone, Copy)]
struct ConnLimits {
    max_connections: usize,
    header_timeout: Duration,
}

/// Accepts connections until `shutdown` resolves. Each connection is served
/// by hyper's HTTP/1 server with a header-read timeout, holds one of
/// `max_connections` permits, and is watched for graceful shutdown.
async fn accept_loop(
    listener: &TcpListener,
    app: &axum::Router,
    graceful: &GracefulShutdown,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            () = &mut shutdown => return,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Per-connection errors (reset before accept) are
                    // harmless; others (out of descriptors) need a pause.
                    if !matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
                    ) {
                        tracing::warn!(error = %e, "accept failed; pausing 100 ms");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let _ = stream.set_nodelay(true);
        let svc = tower::ServiceExt::map_request(app.clone(), move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// The `tracing` subscriber for `log.format` ("text" or "json", one JSON
/// object per line) and `log.level` (a filter; `RUST_LOG` overrides it when
/// set), writing to `writer`.
pub fn log_subscriber<W>(
    config: &crate::config::LogConfig,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal())
        .with_writer(writer);
    if config.format == "json" {
        Box::new(builder.json().finish())
    } else {
        Box::new(builder.finish())
    }
}

/// Installs [`log_subscriber`] on stdout as the global subscriber. A second
/// call is a no-op.
pub fn init_tracing(config: &crate::config::LogConfig) {
    let _ = tracing::subscriber::set_global_default(log_subscriber(config, std::io::stdout));
}
