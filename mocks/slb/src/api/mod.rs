//! The RPC-style endpoint: one URL serves SLB (2014-05-15) and ECS (2014-05-26) actions,
//! GET with a query string or POST with a form body, like the real gateways.
//!
//! Pipeline of a call: decode → authenticate → QPS limit → latency → injected error →
//! version/region checks → write gap → action → propagate to the data plane → log.

pub mod ecs;
pub mod error;
pub mod params;
pub mod slb;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use rand::Rng as _;
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::server::Shared;
use error::{ApiError, ErrorBody};
use params::Params;

pub const SLB_VERSION: &str = "2014-05-15";
pub const ECS_VERSION: &str = "2014-05-26";
const HOST_ID: &str = "slb.mock.aliyuncs.com";

/// A request id shaped like the real ones (upper-case UUID).
pub fn new_request_id() -> String {
    let b: [u8; 16] = rand::rng().random();
    let h: String = b.iter().map(|x| format!("{x:02X}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Axum handler for every non-admin path.
pub async fn rpc(
    State(shared): State<Arc<Shared>>,
    method: Method,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let mut params = Params::default();
    if let Some(q) = &query {
        params.extend_form(q.as_bytes());
    }
    if method == Method::POST {
        params.extend_form(&body);
    }
    let request_id = new_request_id();
    let action = params.get("Action").unwrap_or_default().to_string();
    let result = process(&shared, method.as_str(), &action, &params).await;
    let at_ms = u64::try_from(Instant::now().duration_since(shared.started).as_millis())
        .unwrap_or(u64::MAX);
    let (status, code) = match &result {
        Ok(_) => (200, None),
        Err(e) => (e.status, Some(e.code.as_str())),
    };
    shared.lock().calls.record(
        at_ms,
        method.as_str(),
        &action,
        &params.0,
        status,
        code,
        &request_id,
    );
    match result {
        Ok(mut body) => {
            body.insert("RequestId".into(), Value::String(request_id));
            json_response(axum::http::StatusCode::OK, &Value::Object(body))
        }
        Err(e) => {
            tracing::debug!(%action, code = %e.code, status = e.status, "mock SLB error answer");
            let body = ErrorBody {
                request_id: &request_id,
                host_id: HOST_ID,
                code: &e.code,
                message: &e.message,
                recommend: format!(
                    "https://api.aliyun.com/troubleshoot?q={}&product=Slb",
                    e.code
                ),
            };
            let v = serde_json::to_value(&body).unwrap_or(Value::Null);
            json_response(e.status_code(), &v)
        }
    }
}

fn json_response(status: axum::http::StatusCode, v: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        v.to_string(),
    )
        .into_response()
}

async fn process(
    shared: &Arc<Shared>,
    method: &str,
    action: &str,
    params: &Params,
) -> Result<Map<String, Value>, ApiError> {
    let latency = {
        let mut core = shared.lock();
        core.verifier
            .verify(method, &params.0, jiff::Timestamp::now(), Instant::now())?;
        core.faults.throttle(action, Instant::now())?;
        core.faults.latency(action)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut core = shared.lock();
    if let Some(e) = core.faults.injected_error(action) {
        return Err(e);
    }
    let version = params.required("Version")?;
    let expected = if slb::ACTIONS.contains(&action) {
        SLB_VERSION
    } else if ecs::ACTIONS.contains(&action) {
        ECS_VERSION
    } else {
        return Err(ApiError::invalid_action(action));
    };
    if version != expected {
        return Err(ApiError::invalid_version(version));
    }
    params.required("RegionId")?;
    if ecs::ACTIONS.contains(&action) {
        let v = ecs::describe_network_interfaces(&core.state, params)?;
        return Ok(match v {
            Value::Object(m) => m,
            _ => Map::new(),
        });
    }
    let now = Instant::now();
    let group = slb::written_group(action, params).map(str::to_string);
    if let Some(g) = &group {
        core.faults.check_group_gap(g, now)?;
    }
    let core = &mut *core;
    let outcome = slb::handle(&mut core.state, &shared.dataplane, action, params)?;
    if outcome.mutated {
        if let Some(g) = &group {
            core.faults.record_group_write(g, now);
        }
        core.propagate(&shared.dataplane);
    }
    Ok(outcome.body)
}
