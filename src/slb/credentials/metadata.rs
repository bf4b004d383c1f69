//! Credentials of the ECS instance RAM role, from the instance metadata service.
//!
//! `GET <base>/latest/meta-data/ram/security-credentials/<role>` answers
//! `{"Code":"Success","AccessKeyId","AccessKeySecret","SecurityToken","Expiration",…}`.
//! The answer is cached and fetched again `refresh_before` ahead of `Expiration`
//! ([`RefreshingCache`](super::refresh)); if that early refresh fails the cached pair is
//! used until it really expires.
//!
//! Each fetch first asks for a session token (`PUT /latest/api/token`, the metadata
//! service's security-hardening mode) and sends it as `X-aliyun-ecs-metadata-token`, so
//! nodes that enforce hardened mode work; where the PUT fails, normal mode is used.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderValue, Method, Request};
use http_body_util::Full;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::refresh::{Clock, Expiring, RefreshingCache, TemporaryPair};
use super::{Credentials, CredentialsError, CredentialsProvider};
use crate::slb::http::{parse_uri, HttpClient, HttpResponse};

/// The metadata service address on every ECS instance.
pub const DEFAULT_METADATA_BASE_URL: &str = "http://100.100.100.200";

const ROLE_PATH: &str = "/latest/meta-data/ram/security-credentials/";
const TOKEN_PATH: &str = "/latest/api/token";
const TOKEN_TTL_HEADER: &str = "X-aliyun-ecs-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "X-aliyun-ecs-metadata-token";
/// Deadline of each request to the metadata service (it answers from the host).
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RoleCredentials {
    #[serde(default)]
    code: Option<String>,
    #[serde(flatten)]
    pair: TemporaryPair,
}

/// The instance RAM role's temporary credentials, cached until shortly before expiry.
pub struct MetadataProvider {
    base_url: String,
    role: Option<String>,
    http: HttpClient,
    cache: RefreshingCache,
}

impl std::fmt::Debug for MetadataProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataProvider")
            .field("base_url", &self.base_url)
            .field("role", &self.role)
            .field("refresh_before", &self.cache.refresh_before)
            .finish_non_exhaustive()
    }
}

impl MetadataProvider {
    /// `role` `None` discovers the attached role's name from the service. Requests go
    /// through the process's shared [`HttpClient`].
    pub fn new(base_url: String, role: Option<String>) -> Result<Self, CredentialsError> {
        Ok(MetadataProvider {
            base_url: base_url.trim_end_matches('/').to_string(),
            role: role.filter(|r| !r.is_empty()),
            http: HttpClient::shared(),
            cache: RefreshingCache::new(),
        })
    }

    /// One request to the service; `headers` are added as given.
    async fn request(
        &self,
        method: Method,
        url: &str,
        headers: &[(&'static str, HeaderValue)],
    ) -> Result<HttpResponse, String> {
        let uri = parse_uri(url).map_err(|e| e.to_string())?;
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, value.clone());
        }
        let request = request
            .body(Full::<Bytes>::default())
            .map_err(|e| format!("cannot build the request: {e}"))?;
        self.http
            .send(request, METADATA_TIMEOUT)
            .await
            .map_err(|e| e.to_string())
    }

    pub fn with_refresh_before(mut self, refresh_before: Duration) -> Self {
        self.cache.refresh_before = refresh_before;
        self
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.cache.clock = clock;
        self
    }

    /// A hardened-mode session token, or `None` where the service does not hand one out.
    async fn session_token(&self) -> Option<SecretString> {
        let response = self
            .request(
                Method::PUT,
                &format!("{}{TOKEN_PATH}", self.base_url),
                &[(TOKEN_TTL_HEADER, HeaderValue::from_static("60"))],
            )
            .await
            .ok()?;
        if !response.status.is_success() {
            return None;
        }
        let token = String::from_utf8_lossy(&response.body);
        let token = token.trim();
        (!token.is_empty()).then(|| SecretString::from(token.to_string()))
    }

    async fn get_text(
        &self,
        url: &str,
        token: Option<&SecretString>,
    ) -> Result<String, CredentialsError> {
        let fail = |reason: String| CredentialsError::Metadata {
            url: url.to_string(),
            reason,
        };
        let mut headers = Vec::new();
        if let Some(token) = token {
            let mut value = HeaderValue::from_str(token.expose_secret())
                .map_err(|_| fail("the session token is not a valid header value".into()))?;
            value.set_sensitive(true);
            headers.push((TOKEN_HEADER, value));
        }
        let response = self
            .request(Method::GET, url, &headers)
            .await
            .map_err(fail)?;
        if !response.status.is_success() {
            return Err(fail(format!("HTTP {}", response.status)));
        }
        Ok(String::from_utf8_lossy(&response.body).into_owned())
    }

    async fn fetch(&self) -> Result<Expiring, CredentialsError> {
        let token = self.session_token().await;
        let token = token.as_ref();
        let role = match &self.role {
            Some(role) => role.clone(),
            None => {
                let url = format!("{}{ROLE_PATH}", self.base_url);
                let listing = self.get_text(&url, token).await?;
                listing
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .map(str::to_string)
                    .ok_or_else(|| CredentialsError::Metadata {
                        url,
                        reason: "no RAM role is attached to this instance".into(),
                    })?
            }
        };
        let url = format!("{}{ROLE_PATH}{role}", self.base_url);
        let fail = |reason: &str| CredentialsError::Metadata {
            url: url.clone(),
            reason: reason.to_string(),
        };
        let body = self.get_text(&url, token).await?;
        let parsed: RoleCredentials =
            serde_json::from_str(&body).map_err(|_| fail("answer is not the expected JSON"))?;
        if let Some(code) = parsed.code.as_deref() {
            if code != "Success" {
                return Err(fail(&format!("answer Code is {code:?}, not \"Success\"")));
            }
        }
        parsed.pair.into_expiring(&format!("RAM role {role}"), fail)
    }
}

#[async_trait]
impl CredentialsProvider for MetadataProvider {
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        self.cache.get("ecs-ram-role", || self.fetch()).await
    }
}
