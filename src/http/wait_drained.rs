//! Client side of the drain handshake: `slb-sync wait-drained`, run from a pod's preStop
//! hook, blocks until the agent reports the pod `drained` (or `unmanaged`).
//!
//! It must never be the reason a pod cannot stop: it gives up at its deadline (which the
//! user sets below the pod's grace period) and the caller then fails open. It retries
//! through connection errors and 503s until then, because the agent may be restarting or
//! changing leader while the pod drains; any replica can answer. It talks plain HTTP/1.1
//! through hyper (no TLS stack to initialise: building the TLS-capable reqwest client costs
//! ~50 ms of CPU parsing the CA bundle) and never builds a Kubernetes client, so it starts
//! fast and needs no service account.
//!
//! Wiring in a workload (the deadline below the grace period, which also covers preStop):
//!
//! ```yaml
//! terminationGracePeriodSeconds: 120
//! containers:
//!   - name: app
//!     env:
//!       - { name: POD_NAMESPACE, valueFrom: { fieldRef: { fieldPath: metadata.namespace } } }
//!       - { name: POD_NAME, valueFrom: { fieldRef: { fieldPath: metadata.name } } }
//!     lifecycle:
//!       preStop:
//!         exec:
//!           # the binary, copied into a shared emptyDir by an init container
//!           command: ["/slb/slb-sync", "wait-drained", "--agent",
//!                     "http://slb-sync.kube-system.svc:8080", "--timeout", "90"]
//! ```

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;
use url::Url;

use super::DrainAnswer;
use crate::k8s::drain_state::DrainState;
use crate::k8s::names::{POD_NAMESPACE_ENV, POD_NAME_ENV};

/// Longest single long-poll; shorter than the server's cap so a stale connection (agent
/// pod gone without closing it) is noticed and replaced within this time.
const MAX_POLL: Duration = Duration::from_secs(30);
/// The server is asked to answer this long before our deadline, so its last answer
/// (with the last known state for the message) arrives in time.
const DEADLINE_MARGIN: Duration = Duration::from_millis(500);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const MIN_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(2);

/// What to wait for and for how long.
#[derive(Debug, Clone)]
pub struct WaitDrained {
    pub agent: Url,
    pub namespace: String,
    pub pod: String,
    pub timeout: Duration,
}

/// Why `wait-drained` did not see the pod drained.
#[derive(Debug, thiserror::Error)]
pub enum WaitDrainedError {
    #[error(
        "--agent `{url}` is not usable: {reason}; pass the agent's HTTP address, e.g. \
         --agent http://slb-sync.kube-system.svc:8080"
    )]
    BadAgentUrl { url: String, reason: String },
    #[error(
        "no pod namespace: pass --namespace NAMESPACE, or set {POD_NAMESPACE_ENV} from the \
         downward API (env: - name: {POD_NAMESPACE_ENV}, valueFrom.fieldRef.fieldPath: \
         metadata.namespace)"
    )]
    MissingNamespace,
    #[error(
        "no pod name: pass --pod NAME, or set {POD_NAME_ENV} from the downward API (env: - \
         name: {POD_NAME_ENV}, valueFrom.fieldRef.fieldPath: metadata.name)"
    )]
    MissingPod,
    #[error(
        "--timeout `{0}` is not a positive number of seconds; pass e.g. --timeout 60, below \
         the pod's terminationGracePeriodSeconds"
    )]
    BadTimeout(String),
    #[error(
        "the agent at {url} refused the drain request ({status}): {body}; check that \
         --agent points at the slb-sync HTTP server and --namespace/--pod name this pod"
    )]
    Rejected {
        url: String,
        status: StatusCode,
        body: String,
    },
    #[error(
        "pod {namespace}/{pod} was not reported drained within {secs:.1}s ({last}); giving \
         up so the container can stop anyway (fail-open): the SLB may still send it new \
         connections. Raise --timeout (keeping it below terminationGracePeriodSeconds) or \
         check the agent's logs and the pod's Events",
        secs = waited.as_secs_f64()
    )]
    TimedOut {
        namespace: String,
        pod: String,
        waited: Duration,
        /// The last state or problem seen, for the message.
        last: String,
    },
}

impl WaitDrained {
    /// Checks the command-line inputs; `namespace`/`pod` are the flags, falling back to
    /// the downward-API environment by the caller (clap `env`).
    pub fn new(
        agent: &str,
        namespace: Option<String>,
        pod: Option<String>,
        timeout_secs: &str,
    ) -> Result<Self, WaitDrainedError> {
        let bad_url = |reason: String| WaitDrainedError::BadAgentUrl {
            url: agent.to_owned(),
            reason,
        };
        let url = Url::parse(agent).map_err(|err| bad_url(err.to_string()))?;
        if url.scheme() != "http" {
            return Err(bad_url(format!(
                "scheme `{}` is not supported, the agent serves plain http",
                url.scheme()
            )));
        }
        if url.cannot_be_a_base() || url.host().is_none() {
            return Err(bad_url("it has no host".into()));
        }
        let namespace = namespace
            .filter(|n| !n.is_empty())
            .ok_or(WaitDrainedError::MissingNamespace)?;
        let pod = pod
            .filter(|p| !p.is_empty())
            .ok_or(WaitDrainedError::MissingPod)?;
        let timeout = timeout_secs
            .parse::<f64>()
            .ok()
            .filter(|secs| *secs > 0.0)
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            .ok_or_else(|| WaitDrainedError::BadTimeout(timeout_secs.to_owned()))?;
        Ok(WaitDrained {
            agent: url,
            namespace,
            pod,
            timeout,
        })
    }

    /// The drain API URL of this pod, with a long-poll of `poll`.
    pub fn url(&self, poll: Duration) -> Url {
        let mut url = self.agent.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .extend(["v1", "drain", &self.namespace, &self.pod]);
        }
        url.set_query(Some(&format!("timeout={:.3}", poll.as_secs_f64())));
        url
    }

    /// Polls until the pod is `drained` or `unmanaged` (returned) or the deadline.
    pub async fn run(&self) -> Result<DrainState, WaitDrainedError> {
        let started = Instant::now();
        let deadline = started + self.timeout;
        // Direct connections only: the agent is reached inside the cluster, where an
        // egress proxy from the environment would be wrong.
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client: HttpClient = Client::builder(TokioExecutor::new()).build(connector);
        let mut last = "no answer from the agent yet".to_owned();
        let mut retry = MIN_RETRY;
        loop {
            let now = Instant::now();
            let remaining = deadline.saturating_duration_since(now);
            if remaining.is_zero() {
                return Err(WaitDrainedError::TimedOut {
                    namespace: self.namespace.clone(),
                    pod: self.pod.clone(),
                    waited: now - started,
                    last,
                });
            }
            let poll = remaining.saturating_sub(DEADLINE_MARGIN).min(MAX_POLL);
            let url = self.url(poll);
            let pause = match self.ask(&client, &url, remaining).await {
                Ok(answer) if answer.state.is_final() => return Ok(answer.state),
                Ok(answer) => {
                    retry = MIN_RETRY;
                    last = format!("last state: {}", answer.state);
                    // The server waited `poll` unless it is shutting down; do not spin
                    // on a server that answers at once.
                    MIN_RETRY.saturating_sub(now.elapsed())
                }
                Err(Ask::Rejected { status, body }) => {
                    return Err(WaitDrainedError::Rejected {
                        url: url.to_string(),
                        status,
                        body,
                    })
                }
                Err(Ask::Retry(problem)) => {
                    tracing::debug!(%url, %problem, "drain API not answering; retrying");
                    last = format!("last problem: {problem}");
                    let pause = retry;
                    retry = (retry * 2).min(MAX_RETRY);
                    pause
                }
            };
            let wake = (Instant::now() + pause).min(deadline);
            tokio::time::sleep_until(wake).await;
        }
    }

    async fn ask(
        &self,
        client: &HttpClient,
        url: &Url,
        remaining: Duration,
    ) -> Result<DrainAnswer, Ask> {
        match tokio::time::timeout(remaining, Self::get(client, url)).await {
            Ok(result) => result,
            Err(_) => Err(Ask::Retry("no answer before the deadline".into())),
        }
    }

    async fn get(client: &HttpClient, url: &Url) -> Result<DrainAnswer, Ask> {
        let uri: Uri = url
            .as_str()
            .parse()
            .map_err(|err| Ask::Retry(format!("cannot use URL {url}: {err}")))?;
        let request = Request::get(uri)
            .body(Empty::new())
            .map_err(|err| Ask::Retry(format!("cannot build the request: {err}")))?;
        let response = client
            .request(request)
            .await
            .map_err(|err| Ask::Retry(describe(&err)))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|err| Ask::Retry(format!("answer cut short: {}", describe(&err))))?
            .to_bytes();
        if status == StatusCode::OK {
            return serde_json::from_slice::<DrainAnswer>(&body)
                .map_err(|err| Ask::Retry(format!("unreadable answer: {err}")));
        }
        let body = String::from_utf8_lossy(&body);
        let body = body.trim().chars().take(500).collect::<String>();
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            Err(Ask::Retry(format!("{status}: {body}")))
        } else {
            Err(Ask::Rejected { status, body })
        }
    }
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

enum Ask {
    /// Worth asking again (connection refused, timeout, 5xx): the agent may be restarting.
    Retry(String),
    /// The agent will keep refusing this request.
    Rejected { status: StatusCode, body: String },
}

/// An error and its causes on one line (hyper's top-level message alone says little).
fn describe(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(agent: &str) -> WaitDrained {
        WaitDrained::new(agent, Some("shop".into()), Some("web-0".into()), "30").unwrap()
    }

    #[test]
    fn url_is_built_under_the_agent_base() {
        let wait = ok("http://slb-sync.kube-system.svc:8080");
        assert_eq!(
            wait.url(Duration::from_millis(2500)).as_str(),
            "http://slb-sync.kube-system.svc:8080/v1/drain/shop/web-0?timeout=2.500"
        );
        let wait = ok("http://127.0.0.1:9/prefix/");
        assert_eq!(
            wait.url(Duration::ZERO).as_str(),
            "http://127.0.0.1:9/prefix/v1/drain/shop/web-0?timeout=0.000"
        );
        assert_eq!(wait.timeout, Duration::from_secs(30));
    }

    #[test]
    fn bad_inputs_name_the_flag_and_the_fix() {
        let err = |agent: &str, ns: Option<&str>, pod: Option<&str>, timeout: &str| {
            WaitDrained::new(agent, ns.map(Into::into), pod.map(Into::into), timeout)
                .unwrap_err()
                .to_string()
        };
        let good = "http://127.0.0.1:8080";
        let e = err("slb-sync:8080", Some("a"), Some("b"), "5");
        assert!(e.contains("--agent `slb-sync:8080`"), "{e}");
        let e = err("https://x:8080", Some("a"), Some("b"), "5");
        assert!(e.contains("plain http"), "{e}");
        let e = err(good, None, Some("b"), "5");
        assert!(
            e.contains("--namespace") && e.contains("POD_NAMESPACE"),
            "{e}"
        );
        let e = err(good, Some(""), Some("b"), "5");
        assert!(e.contains("POD_NAMESPACE"), "{e}");
        let e = err(good, Some("a"), None, "5");
        assert!(e.contains("--pod") && e.contains("POD_NAME"), "{e}");
        for timeout in ["0", "-3", "soon", "inf"] {
            let e = err(good, Some("a"), Some("b"), timeout);
            assert!(e.contains(&format!("--timeout `{timeout}`")), "{e}");
        }
    }
}
