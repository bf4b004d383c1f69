//! Admin API under `/admin` (JSON): state, data plane, call log, counters, faults, seed.
//! It is not authenticated: the mock listens on loopback only.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::faults::FaultConfig;
use crate::server::Shared;
use crate::state::Seed;

/// Routes, documented in the binary's `--help`.
pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/admin/state", get(state))
        .route("/admin/dataplane", get(dataplane))
        .route("/admin/calls", get(calls).delete(clear_calls))
        .route("/admin/counters", get(counters))
        .route("/admin/faults", get(faults).put(set_faults))
        .route("/admin/seed", post(seed))
        .route("/admin/access-keys/{id}", axum::routing::delete(remove_key))
}

async fn state(State(s): State<Arc<Shared>>) -> Response {
    Json(s.lock().state.clone()).into_response()
}

async fn dataplane(State(s): State<Arc<Shared>>) -> Response {
    Json(s.dataplane.views()).into_response()
}

async fn calls(State(s): State<Arc<Shared>>) -> Response {
    Json(s.lock().calls.entries()).into_response()
}

async fn clear_calls(State(s): State<Arc<Shared>>) -> StatusCode {
    s.lock().calls.clear();
    StatusCode::NO_CONTENT
}

async fn counters(State(s): State<Arc<Shared>>) -> Response {
    let api = s.lock().calls.counters();
    let dp = s.dataplane.views();
    let dp: Vec<_> = dp
        .into_iter()
        .map(|v| json!({"load_balancer_id": v.load_balancer_id, "port": v.port, "counters": v.counters}))
        .collect();
    let connections = s.api_connections.load(std::sync::atomic::Ordering::Relaxed);
    Json(json!({"api": api, "api_connections": connections, "dataplane": dp})).into_response()
}

async fn faults(State(s): State<Arc<Shared>>) -> Response {
    Json(s.lock().faults.config.clone()).into_response()
}

async fn set_faults(State(s): State<Arc<Shared>>, Json(f): Json<FaultConfig>) -> Response {
    s.lock().faults.set(f.clone());
    Json(f).into_response()
}

async fn remove_key(
    State(s): State<Arc<Shared>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> StatusCode {
    if s.lock().verifier.remove_key(&id) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn seed(State(s): State<Arc<Shared>>, body: String) -> Response {
    let seed = match Seed::parse(&body, "request body") {
        Ok(seed) => seed,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": e.to_string()})),
            )
                .into_response()
        }
    };
    match s.apply_seed(&seed) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}
