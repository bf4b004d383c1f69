//! What goes on the wire for one RPC call: [`Wire`] sends exactly one signed HTTP request
//! and hands back the raw answer; [`SignedHttp`] is the production one (our signature v1
//! over the process's shared [`HttpClient`]).
//!
//! The seam exists so that everything around the exchange (credentials, parameters,
//! classification, metrics: [`Transport`](super::transport)) is one code path whatever
//! carries the request; `benches/transport.rs` plugs the vendor's SDK in here to compare
//! the two on the same calls.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use http_body_util::Full;
use secrecy::ExposeSecret;

use super::sign::{self, CallIdentity, Method};
use crate::slb::credentials::Credentials;
use crate::slb::http::{parse_uri, HttpClient, HttpError};

/// One call, everything but the signature.
#[derive(Debug)]
pub struct RpcRequest<'a> {
    /// The product endpoint, ending in `/` (the signed path is `/`).
    pub endpoint_url: &'a str,
    pub version: &'static str,
    pub action: &'static str,
    pub method: Method,
    /// The action's own parameters, `RegionId` and `SecurityToken` included.
    pub params: &'a [(String, String)],
    pub credentials: &'a Credentials,
    /// Deadline of the whole exchange, connection included.
    pub timeout: Duration,
}

/// The answer as it came: HTTP status and body.
#[derive(Debug, Clone)]
pub struct RpcAnswer {
    pub status: u16,
    pub body: Bytes,
}

/// Sends one call. Implementations send exactly one HTTP request per `exchange` (a
/// request hyper never wrote on a pooled connection that had just closed may go out on a
/// fresh one) and never quote the signed URL in their errors.
#[async_trait]
pub trait Wire: Send + Sync + fmt::Debug {
    async fn exchange(&self, request: RpcRequest<'_>) -> Result<RpcAnswer, HttpError>;
}

/// Signature v1 by [`sign`] over an [`HttpClient`]. GET puts every parameter in the
/// query; POST puts the signature's own parameters in the query and the call's
/// parameters in a form body (a 20-backend JSON list can outgrow what gateways accept in
/// a URL), signed together as the API verifies them.
#[derive(Debug, Clone)]
pub struct SignedHttp {
    http: HttpClient,
}

impl SignedHttp {
    pub fn new(http: HttpClient) -> Self {
        SignedHttp { http }
    }
}

impl Default for SignedHttp {
    /// Over the process's shared client.
    fn default() -> Self {
        SignedHttp::new(HttpClient::shared())
    }
}

#[async_trait]
impl Wire for SignedHttp {
    async fn exchange(&self, request: RpcRequest<'_>) -> Result<RpcAnswer, HttpError> {
        let nonce = sign::new_nonce();
        let timestamp = sign::timestamp(jiff::Timestamp::now());
        let common = sign::common_params(CallIdentity {
            action: request.action,
            version: request.version,
            access_key_id: request.credentials.access_key_id(),
            nonce: &nonce,
            timestamp: &timestamp,
        });
        let mut all: Vec<(&str, &str)> = common.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.extend(request.params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let signed = sign::sign(
            request.method,
            &all,
            request.credentials.access_key_secret().expose_secret(),
        );

        let (query, body) = match request.method {
            Method::Get => (signed.query(), None),
            Method::Post => {
                let query = sign::Signed {
                    canonical: sign::canonical_query(&common),
                    signature: signed.signature,
                }
                .query();
                (query, Some(sign::canonical_query(request.params)))
            }
        };
        let uri = parse_uri(&format!("{}?{query}", request.endpoint_url))?;
        let builder = http::Request::builder()
            .uri(uri)
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        let built = match body {
            None => builder.method(http::Method::GET).body(Full::default()),
            Some(body) => builder
                .method(http::Method::POST)
                .header(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                )
                .body(Full::new(Bytes::from(body))),
        };
        let http_request = built.map_err(|e| HttpError::InvalidUrl {
            reason: format!("cannot build the request: {e}"),
        })?;
        let response = self.http.send(http_request, request.timeout).await?;
        Ok(RpcAnswer {
            status: response.status.as_u16(),
            body: response.body,
        })
    }
}
