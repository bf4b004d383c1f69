//! The one HTTP client of the process, shared by every SLB, ECS, STS and metadata call.
//!
//! Why one client: building a TLS client parses the CA bundle, and every new connection
//! to a cloud endpoint pays a TCP and TLS handshake; both used to happen on every SLB
//! call, on the path of every rollout. One client keeps connections alive (a bounded idle
//! pool per endpoint) and pays the CA bundle once.
//!
//! Built on hyper-util's client with hyper-rustls, the stack kube already runs on (so no
//! new crates and no OpenSSL): HTTP/1.1 with keep-alive, TLS by rustls with the `ring`
//! provider handed in explicitly (never a process default that could be missing), the
//! platform's root certificates (`/etc/ssl/certs`, `SSL_CERT_FILE`; the image ships
//! `ca-certificates`), a connect timeout, TCP keep-alive and no redirects (hyper does not
//! follow them; a 3xx comes back as an answer). The whole-call deadline is per request.
//!
//! [`HttpError`] never quotes the request's URL beyond scheme, host and port: the query of
//! a signed call holds its signature and `SecurityToken`.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{ConfigBuilderExt, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// How long a TCP connect (plus DNS) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections kept per endpoint: calls per SLB instance are serialised, so this is
/// about the number of instances handled at once.
pub const MAX_IDLE_PER_HOST: usize = 8;
/// An idle connection is closed after this long: below the idle cut of the load
/// balancers in front of API endpoints (15 s and up), so the client closes first and a
/// call never lands on a connection the server is closing. During a rollout calls come
/// far more often than this.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP keep-alive probes on every connection, so a dead peer is noticed.
pub const TCP_KEEPALIVE: Duration = Duration::from_secs(30);
/// Answers larger than this are refused: every API answer the agent reads is far smaller.
pub const MAX_BODY_BYTES: usize = 8 << 20;

const USER_AGENT: &str = concat!("slb-sync/", env!("CARGO_PKG_VERSION"));

/// An answer: status and the whole body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: StatusCode,
    pub body: Bytes,
}

/// A failed exchange. Quotes scheme, host and port only, never a path or query.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("invalid URL: {reason}")]
    InvalidUrl { reason: String },
    #[error("no complete answer from {endpoint} within {after:?}")]
    Timeout { endpoint: String, after: Duration },
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    #[error("exchange with {endpoint} failed: {reason}")]
    Transport { endpoint: String, reason: String },
}

impl HttpError {
    pub fn is_timeout(&self) -> bool {
        matches!(self, HttpError::Timeout { .. })
    }
}

type Inner = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A cheap handle to a pooled client; clones share the pool.
#[derive(Clone)]
pub struct HttpClient {
    inner: Inner,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

impl HttpClient {
    /// The client of the current tokio runtime, built on first use there: the agent runs
    /// one runtime, so every SLB/ECS/STS/metadata request of the process shares one pool.
    /// A pooled connection is driven by a task of the runtime that opened it, and dies
    /// with it; a pool shared across runtimes (tests each run their own) would hand a
    /// later runtime a dead connection to a recycled port, so each runtime has its own.
    pub fn shared() -> HttpClient {
        static SHARED: OnceLock<Mutex<HashMap<Option<tokio::runtime::Id>, HttpClient>>> =
            OnceLock::new();
        let runtime = tokio::runtime::Handle::try_current().ok().map(|h| h.id());
        let clients = SHARED.get_or_init(Mutex::default);
        let mut clients = clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.entry(runtime).or_default().clone()
    }

    /// A client with its own pool (benchmarks that must not share connections).
    pub fn new() -> HttpClient {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_keepalive(Some(TCP_KEEPALIVE));
        http.set_nodelay(true);
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(tls_config())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build(https);
        HttpClient { inner }
    }

    /// Sends exactly one request and reads the whole answer within `timeout`.
    pub async fn send(
        &self,
        mut request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<HttpResponse, HttpError> {
        let endpoint = endpoint_of(request.uri());
        request
            .headers_mut()
            .entry(http::header::USER_AGENT)
            .or_insert(HeaderValue::from_static(USER_AGENT));
        let exchange = async {
            let response = self.inner.request(request).await.map_err(|e| {
                let reason = error_chain(&e);
                if e.is_connect() {
                    HttpError::Connect {
                        endpoint: endpoint.clone(),
                        reason,
                    }
                } else {
                    HttpError::Transport {
                        endpoint: endpoint.clone(),
                        reason,
                    }
                }
            })?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|e| HttpError::Transport {
                    endpoint: endpoint.clone(),
                    reason: format!("reading the answer: {}", error_chain(&*e)),
                })?
                .to_bytes();
            Ok(HttpResponse { status, body })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(HttpError::Timeout {
                endpoint,
                after: timeout,
            }),
        }
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient::new()
    }
}

/// `url` parsed as a request URI, or why not (without quoting it: it may hold a query).
pub fn parse_uri(url: &str) -> Result<Uri, HttpError> {
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| HttpError::InvalidUrl {
            reason: format!("{e}; check the endpoint (scheme://host[:port]/)"),
        })?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(uri),
        _ => Err(HttpError::InvalidUrl {
            reason: "an endpoint needs http:// or https:// and a host".into(),
        }),
    }
}

/// `scheme://host:port` of a URI: what errors and logs may name.
fn endpoint_of(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("http");
    match uri.authority() {
        Some(a) => format!("{scheme}://{}", a.as_str().rsplit('@').next().unwrap_or("")),
        None => format!("{scheme}://?"),
    }
}

/// An error and its causes, "outer: inner: …" (hyper-util's own text stops at the outer
/// layer, which says little: "client error (Connect)").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// rustls with `ring` and the platform's roots; with none found (an image without
/// `ca-certificates`) plain-HTTP endpoints still work and HTTPS fails at the handshake
/// with "UnknownIssuer", after a warning here that says why.
fn tls_config() -> rustls::ClientConfig {
    let builder = || {
        rustls::ClientConfig::builder_with_provider(rustls::crypto::ring::default_provider().into())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
    };
    match builder().with_native_roots() {
        Ok(b) => b.with_no_client_auth(),
        Err(e) => {
            tracing::warn!(error = %e,
                "no root certificates found (install ca-certificates or set SSL_CERT_FILE); HTTPS calls will fail");
            builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_in_errors_name_scheme_host_and_port_only() {
        let uri = parse_uri(
            "https://user:pw@slb.cn-hangzhou.aliyuncs.com:443/?Signature=s&SecurityToken=t",
        )
        .unwrap();
        assert_eq!(
            endpoint_of(&uri),
            "https://slb.cn-hangzhou.aliyuncs.com:443"
        );
        for bad in [
            "http://[not a host",
            "slb.aliyuncs.com/",
            "ftp://x/",
            "/path",
        ] {
            let err = parse_uri(bad).unwrap_err().to_string();
            assert!(!err.contains(bad), "{err}");
        }
    }
}
