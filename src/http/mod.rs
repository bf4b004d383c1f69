//! The agent's HTTP server: `/metrics`, `/healthz`, `/readyz` and the drain API that
//! `slb-sync wait-drained` long-polls from a pod's preStop hook; plus that client.
//!
//! Every replica serves it (not only the leader): health and readiness are per process,
//! and drain states come from Pod objects, so any replica can answer the handshake.

pub mod args;
mod drain;
mod metrics;
pub mod wait_drained;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus::{Encoder, TextEncoder};
use tokio::sync::watch;

pub use drain::{DrainAnswer, MAX_LONG_POLL};
pub use metrics::HttpMetrics;

use crate::k8s::drain_state::PodStateSource;
use crate::k8s::names::DRAIN_API_PREFIX;

/// A flag the agent sets once its caches are synced; `/readyz` answers 200 only then.
///
/// Cloning shares the flag.
#[derive(Clone, Debug, Default)]
pub struct ReadyFlag(Arc<AtomicBool>);

impl ReadyFlag {
    pub fn new() -> Self {
        ReadyFlag::default()
    }

    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct HttpState {
    registry: prometheus::Registry,
    ready: ReadyFlag,
    pods: Arc<dyn PodStateSource>,
    metrics: HttpMetrics,
    shutdown: Arc<watch::Sender<bool>>,
}

impl HttpState {
    /// Registers the server's own metrics in `registry`, which `/metrics` then exposes
    /// with every other metric registered there.
    pub fn new(
        registry: prometheus::Registry,
        ready: ReadyFlag,
        pods: Arc<dyn PodStateSource>,
    ) -> prometheus::Result<Self> {
        let metrics = HttpMetrics::register(&registry)?;
        Ok(HttpState {
            registry,
            ready,
            pods,
            metrics,
            shutdown: Arc::new(watch::channel(false).0),
        })
    }

    /// Makes waiting long-polls answer their current state now, so a shutting-down
    /// server does not hold its graceful shutdown for up to [`MAX_LONG_POLL`].
    /// `wait-drained` simply asks again (another replica, or this one restarted).
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }
}

/// The routes, for serving or for calling in-process in tests.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(
            &format!("{DRAIN_API_PREFIX}/{{namespace}}/{{pod}}"),
            get(drain::drain),
        )
        .fallback(not_found)
        .with_state(state)
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(
        "cannot listen on {addr} (--http-addr): {source}; choose a free address and port, \
         e.g. --http-addr 0.0.0.0:8080"
    )]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// A bound, not yet running server. Binding first lets callers (and tests binding port 0)
/// learn the address before serving.
pub struct HttpServer {
    listener: tokio::net::TcpListener,
    state: HttpState,
}

impl HttpServer {
    pub async fn bind(addr: SocketAddr, state: HttpState) -> Result<Self, HttpError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| HttpError::Bind { addr, source })?;
        Ok(HttpServer { listener, state })
    }

    pub fn local_addr(&self) -> Result<SocketAddr, HttpError> {
        self.listener.local_addr().map_err(HttpError::Serve)
    }

    /// Serves until `shutdown` completes, then answers waiting long-polls and finishes
    /// in-flight requests.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), HttpError> {
        let state = self.state.clone();
        axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(async move {
                shutdown.await;
                state.begin_shutdown();
            })
            .await
            .map_err(HttpError::Serve)
    }
}

/// Binds `addr` and serves until `shutdown` completes.
pub async fn serve(
    addr: SocketAddr,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HttpError> {
    HttpServer::bind(addr, state).await?.run(shutdown).await
}

async fn metrics_text(State(state): State<HttpState>) -> Response {
    let mut body = Vec::new();
    match TextEncoder::new().encode(&state.registry.gather(), &mut body) {
        Ok(()) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], body).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "cannot encode metrics");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot encode metrics: {err}\n"),
            )
                .into_response()
        }
    }
}

/// The process is alive and serving HTTP; nothing more (a liveness probe must not fail
/// because the cluster or the cloud API is slow).
async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<HttpState>) -> Response {
    if state.ready.is_set() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the agent's caches of the cluster are not synced yet\n",
        )
            .into_response()
    }
}

/// JSON error body: `{"error": "..."}`.
fn error_response(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

async fn not_found(uri: Uri) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        format!(
            "no such path `{}`; this server answers /metrics, /healthz, /readyz and \
             {DRAIN_API_PREFIX}/<namespace>/<pod>[?timeout=<seconds>]",
            uri.path()
        ),
    )
}
