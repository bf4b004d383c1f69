//! `GET /v1/drain/<namespace>/<pod>[?timeout=<seconds>]`: a pod's drain state, optionally
//! long-polled until it is final (`drained` or `unmanaged`) or the timeout passes.
//!
//! Answers:
//! - 200 `{"namespace","pod","state"}` with the state at the time of answering (final or
//!   not: a timed-out long-poll is not an error, the caller decides).
//! - 503 `{"error"}` when the agent has not listed pods yet and the timeout passed; ask
//!   again.
//! - 400 `{"error"}` naming a bad namespace, pod name or query parameter.

use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{error_response, HttpState};
use crate::k8s::drain_state::DrainState;

/// Longest a single long-poll waits; a larger `timeout` is cut to this. Bounds how long a
/// request can hold a connection; `wait-drained` asks again until its own deadline.
pub const MAX_LONG_POLL: Duration = Duration::from_secs(300);

/// The drain API's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainAnswer {
    pub namespace: String,
    pub pod: String,
    pub state: DrainState,
}

pub(super) async fn drain(
    State(state): State<HttpState>,
    Path((namespace, pod)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let timeout = match check_request(&namespace, &pod, query.as_deref()) {
        Ok(timeout) => timeout,
        Err(message) => {
            state.metrics.bad_request();
            return error_response(StatusCode::BAD_REQUEST, message);
        }
    };
    let answer = wait_for_final(&state, &namespace, &pod, timeout).await;
    state.metrics.answered(answer);
    match answer {
        Some(drain_state) => Json(DrainAnswer {
            namespace,
            pod,
            state: drain_state,
        })
        .into_response(),
        None => {
            let mut response = error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "the agent has not listed the cluster's pods yet; ask again shortly".into(),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            response
        }
    }
}

/// Waits until the state is final, `timeout` passes, or the server shuts down; answers
/// the state then (`None`: pods not listed yet).
async fn wait_for_final(
    state: &HttpState,
    namespace: &str,
    pod: &str,
    timeout: Duration,
) -> Option<DrainState> {
    let deadline = Instant::now() + timeout;
    let mut changes = state.pods.subscribe();
    let mut shutdown = state.shutdown.subscribe();
    let mut source_alive = true;
    let mut _waiting = None;
    loop {
        // Seen before reading, so a change between the read and the wait wakes us.
        changes.mark_unchanged();
        let current = state.pods.drain_state(namespace, pod);
        if current.is_some_and(DrainState::is_final)
            || Instant::now() >= deadline
            || *shutdown.borrow_and_update()
        {
            return current;
        }
        _waiting.get_or_insert_with(|| state.metrics.waiting());
        tokio::select! {
            changed = changes.changed(), if source_alive => {
                // A dropped source never changes again: wait out the timeout.
                source_alive = changed.is_ok();
            }
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Validates the names and parses the query; the error says what was wrong and what to
/// send instead.
pub(super) fn check_request(
    namespace: &str,
    pod: &str,
    query: Option<&str>,
) -> Result<Duration, String> {
    if !is_dns_label(namespace) {
        return Err(format!(
            "`{namespace}` is not a namespace name (lowercase letters, digits and `-`, at \
             most 63 characters); use the pod's metadata.namespace"
        ));
    }
    if !is_dns_subdomain(pod) {
        return Err(format!(
            "`{pod}` is not a pod name (lowercase letters, digits, `-` and `.`, at most \
             253 characters); use the pod's metadata.name"
        ));
    }
    let mut timeout = Duration::ZERO;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "timeout" {
            return Err(format!(
                "unknown query parameter `{key}`; the only parameter is \
                 timeout=<seconds> (how long to wait for the pod to be drained)"
            ));
        }
        timeout = parse_timeout(value)?;
    }
    Ok(timeout.min(MAX_LONG_POLL))
}

fn parse_timeout(value: &str) -> Result<Duration, String> {
    value
        .parse::<f64>()
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| {
            format!(
                "timeout=`{value}` is not a number of seconds; send e.g. timeout=30 or \
                 timeout=2.5 (at most {} is waited)",
                MAX_LONG_POLL.as_secs()
            )
        })
}

/// RFC 1123 label: what namespace names must be.
fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// RFC 1123 subdomain: what pod names must be.
fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kubernetes_rules() {
        assert!(is_dns_label("kube-system"));
        assert!(is_dns_label("a1"));
        assert!(!is_dns_label(""));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label("a-"));
        assert!(!is_dns_label("Shop"));
        assert!(!is_dns_label("a.b"));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_dns_subdomain("web-7d9f.node-1"));
        assert!(!is_dns_subdomain("web..0"));
        assert!(!is_dns_subdomain("web_0"));
    }

    #[test]
    fn timeout_parses_seconds_and_is_capped() {
        assert_eq!(check_request("ns", "p", None), Ok(Duration::ZERO));
        assert_eq!(
            check_request("ns", "p", Some("timeout=30")),
            Ok(Duration::from_secs(30))
        );
        assert_eq!(
            check_request("ns", "p", Some("timeout=2.5")),
            Ok(Duration::from_millis(2500))
        );
        assert_eq!(
            check_request("ns", "p", Some("timeout=86400")),
            Ok(MAX_LONG_POLL)
        );
    }

    #[test]
    fn bad_input_is_named_in_the_error() {
        for (query, needle) in [
            ("timeout=abc", "timeout=`abc`"),
            ("timeout=-1", "timeout=`-1`"),
            ("timeout=NaN", "timeout=`NaN`"),
            ("timeout", "timeout=``"),
            ("wait=5", "`wait`"),
        ] {
            let err = check_request("ns", "p", Some(query)).unwrap_err();
            assert!(err.contains(needle), "{query}: {err}");
        }
        let err = check_request("Shop", "p", None).unwrap_err();
        assert!(err.contains("`Shop` is not a namespace"), "{err}");
        let err = check_request("ns", "Web_0", None).unwrap_err();
        assert!(err.contains("`Web_0` is not a pod name"), "{err}");
    }
}
