//! RRSA (ACK's "RAM Roles for Service Accounts"): the pod's projected service-account
//! token is exchanged at STS for temporary credentials of a RAM role, so no key is stored
//! and no other pod on the node can use the role.
//!
//! The exchange is STS `AssumeRoleWithOIDC` (RPC style, version 2015-04-01). It is one of
//! the few anonymous actions: the OIDC token is the proof of identity, so the request
//! carries no `AccessKeyId`, `Signature`, `SignatureMethod` or `SignatureVersion`. As the
//! official credentials SDKs send it: `POST <endpoint>/?Action=AssumeRoleWithOIDC&
//! Version=2015-04-01&Format=JSON&Timestamp=<UTC ISO 8601>` with a form body of
//! `RoleArn`, `OIDCProviderArn`, `OIDCToken`, `RoleSessionName` and optional
//! `DurationSeconds` (the token goes in the body, never in a URL that a proxy may log).
//! The answer is `{"RequestId", "Credentials": {"AccessKeyId", "AccessKeySecret",
//! "SecurityToken", "Expiration"}, "AssumedRoleUser", "OIDCTokenInfo"}`; a refusal is a
//! 4xx/5xx with `{"RequestId", "Code", "Message", …}`.
//!
//! The token file is read again for every exchange: the kubelet rotates the projected
//! token (by default well before its `expirationSeconds`), and a cached copy would
//! eventually be refused with `AuthenticationFail.OIDCToken.Expired`. The answer is cached
//! and refreshed ahead of `Expiration` by the same [`RefreshingCache`] as the ECS RAM role.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http_body_util::Full;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::refresh::{Clock, Expiring, RefreshingCache, TemporaryPair};
use super::{scrub_secrets, Credentials, CredentialsError, CredentialsProvider};
use crate::slb::http::{parse_uri, HttpClient};
use crate::slb::rpc::endpoint_url;
use crate::slb::rpc::sign::canonical_query;

/// STS API version of `AssumeRoleWithOIDC`.
pub const STS_API_VERSION: &str = "2015-04-01";
/// `RoleSessionName` when none is configured (`ALIBABA_CLOUD_ROLE_SESSION_NAME`).
pub const DEFAULT_ROLE_SESSION_NAME: &str = "slb-sync";
/// STS accepts `DurationSeconds` from 900 s up to the role's `MaxSessionDuration` (≤ 12 h).
const DURATION_RANGE: std::ops::RangeInclusive<u64> = 900..=43_200;
/// Deadline of one exchange, connection included.
const STS_TIMEOUT: Duration = Duration::from_secs(10);

/// `override` as given (a bare host gets `https://`), else STS in `region`, else the
/// global `https://sts.aliyuncs.com/`. From a VPC without internet access use
/// `sts-vpc.<region>.aliyuncs.com`.
pub(crate) fn sts_endpoint_url(overridden: Option<&str>, region: Option<&str>) -> String {
    match region.map(str::trim).filter(|r| !r.is_empty()) {
        Some(region) => endpoint_url(overridden, "sts", region),
        None => endpoint_url(overridden.or(Some("sts.aliyuncs.com")), "sts", ""),
    }
}

/// Everything one `AssumeRoleWithOIDC` exchange needs, except the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RrsaSettings {
    /// `ALIBABA_CLOUD_ROLE_ARN`.
    pub role_arn: String,
    /// `ALIBABA_CLOUD_OIDC_PROVIDER_ARN`.
    pub oidc_provider_arn: String,
    /// `ALIBABA_CLOUD_OIDC_TOKEN_FILE`.
    pub oidc_token_file: PathBuf,
    /// `ALIBABA_CLOUD_ROLE_SESSION_NAME`: 2–64 of letters, digits and `.@-_`.
    pub role_session_name: String,
    /// `DurationSeconds`; STS's default (3600 s) when `None`.
    pub duration: Option<Duration>,
    /// Full STS endpoint URL, ending in `/`.
    pub sts_endpoint: String,
}

impl RrsaSettings {
    /// Rejects what STS would refuse anyway, at start-up and with the setting's name.
    fn validate(&self) -> Result<(), CredentialsError> {
        let invalid = |setting, reason: String| CredentialsError::RrsaInvalid { setting, reason };
        let name = &self.role_session_name;
        let name_ok = (2..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'@' | b'-' | b'_'));
        if !name_ok {
            return Err(invalid(
                "ALIBABA_CLOUD_ROLE_SESSION_NAME",
                format!("{name:?} must be 2 to 64 letters, digits or . @ - _"),
            ));
        }
        if let Some(duration) = self.duration {
            if !DURATION_RANGE.contains(&duration.as_secs()) {
                return Err(invalid(
                    "--sts-duration-seconds",
                    format!(
                        "{} s is outside {}..={} s (and the role's MaxSessionDuration)",
                        duration.as_secs(),
                        DURATION_RANGE.start(),
                        DURATION_RANGE.end()
                    ),
                ));
            }
        }
        for (setting, arn, kind) in [
            ("ALIBABA_CLOUD_ROLE_ARN", &self.role_arn, ":role/"),
            (
                "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
                &self.oidc_provider_arn,
                ":oidc-provider/",
            ),
        ] {
            if !arn.starts_with("acs:ram::") || !arn.contains(kind) {
                return Err(invalid(
                    setting,
                    format!("{arn:?} is not an ARN of the form acs:ram::<account-id>{kind}<name>"),
                ));
            }
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsAnswer {
    #[serde(default)]
    credentials: Option<TemporaryPair>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsError {
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    request_id: String,
}

/// The RAM role's temporary credentials from RRSA, cached until shortly before expiry.
pub struct RrsaProvider {
    settings: RrsaSettings,
    http: HttpClient,
    cache: RefreshingCache,
}

impl std::fmt::Debug for RrsaProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RrsaProvider")
            .field("settings", &self.settings)
            .field("refresh_before", &self.cache.refresh_before)
            .finish_non_exhaustive()
    }
}

impl RrsaProvider {
    /// Checks the settings; the token file is only read when credentials are asked for
    /// (the kubelet may not have written it yet). Exchanges go through the process's
    /// shared [`HttpClient`].
    pub fn new(settings: RrsaSettings) -> Result<Self, CredentialsError> {
        settings.validate()?;
        Ok(RrsaProvider {
            settings,
            http: HttpClient::shared(),
            cache: RefreshingCache::new(),
        })
    }

    pub fn settings(&self) -> &RrsaSettings {
        &self.settings
    }

    pub fn with_refresh_before(mut self, refresh_before: Duration) -> Self {
        self.cache.refresh_before = refresh_before;
        self
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.cache.clock = clock;
        self
    }

    /// The current projected token, read afresh.
    fn read_token(&self) -> Result<SecretString, CredentialsError> {
        let path = &self.settings.oidc_token_file;
        let text =
            std::fs::read_to_string(path).map_err(|source| CredentialsError::OidcTokenRead {
                path: path.clone(),
                source,
            })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(CredentialsError::OidcTokenEmpty { path: path.clone() });
        }
        Ok(SecretString::from(token.to_string()))
    }

    async fn exchange(&self) -> Result<Expiring, CredentialsError> {
        let token = self.read_token()?;
        let url = &self.settings.sts_endpoint;
        let unreachable = |reason: String| CredentialsError::StsUnreachable {
            url: url.clone(),
            reason,
        };
        let unusable = |reason: &str| CredentialsError::StsAnswer {
            url: url.clone(),
            reason: reason.to_string(),
        };
        let timestamp = self.cache.now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let duration = self.settings.duration.map(|d| d.as_secs().to_string());
        let mut form = vec![
            ("RoleArn", self.settings.role_arn.as_str()),
            ("OIDCProviderArn", self.settings.oidc_provider_arn.as_str()),
            ("OIDCToken", token.expose_secret()),
            ("RoleSessionName", self.settings.role_session_name.as_str()),
        ];
        if let Some(duration) = &duration {
            form.push(("DurationSeconds", duration));
        }
        let query = canonical_query(&[
            ("Action", "AssumeRoleWithOIDC"),
            ("Version", STS_API_VERSION),
            ("Format", "JSON"),
            ("Timestamp", timestamp.as_str()),
        ]);
        let uri = parse_uri(&format!("{url}?{query}")).map_err(|e| unreachable(e.to_string()))?;
        let request = http::Request::post(uri)
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .body(Full::new(Bytes::from(canonical_query(&form))))
            .map_err(|e| unreachable(format!("cannot build the request: {e}")))?;
        let response = self
            .http
            .send(request, STS_TIMEOUT)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let status = response.status;
        let body = String::from_utf8_lossy(&response.body);
        // STS may quote what it was sent; the token must not reach a log through it.
        let scrub = |text: &str| scrub_secrets(text, [token.expose_secret()]);

        if !status.is_success() {
            return Err(match serde_json::from_str::<StsError>(&body) {
                Ok(e) => CredentialsError::StsRefused {
                    status: status.as_u16(),
                    hint: hint(&e.code),
                    code: scrub(&e.code),
                    message: scrub(&e.message),
                    request_id: scrub(&e.request_id),
                },
                Err(_) => unreachable(format!(
                    "HTTP {status} with a body of {} bytes that is not an STS error (a proxy or gateway in the way?)",
                    body.len()
                )),
            });
        }
        let answer: StsAnswer =
            serde_json::from_str(&body).map_err(|_| unusable("the answer is not JSON"))?;
        let answer = answer
            .credentials
            .ok_or_else(|| unusable("the answer has no Credentials"))?;
        let fresh = answer.into_expiring(
            &format!("STS AssumeRoleWithOIDC for {}", self.settings.role_arn),
            unusable,
        )?;
        tracing::debug!(role_arn = %self.settings.role_arn, expiration = %fresh.expiration,
            access_key_id = %super::mask_id(fresh.credentials.access_key_id()),
            "assumed the RRSA role");
        Ok(fresh)
    }
}

/// What to fix for the refusals the ACK RRSA documentation lists.
fn hint(code: &str) -> &'static str {
    match code {
        "AuthenticationFail.OIDCToken.Expired" => {
            "the projected token in the file has expired: the kubelet should rotate it; check the volume and the kubelet"
        }
        "AuthenticationFail.OIDCToken.AudienceNotMatch" => {
            "the projected token's audience must be sts.aliyuncs.com (serviceAccountToken.audience of the volume)"
        }
        "AuthenticationFail.OIDCToken.IssuerNotMatch"
        | "AuthenticationFail.OIDCToken.IssuerConfigurationBroken" => {
            "enable RRSA on the cluster, then recreate the agent's pods so they get tokens from the RRSA issuer"
        }
        "EntityNotExist.Role" => "no such RAM role: check ALIBABA_CLOUD_ROLE_ARN",
        "AuthenticationFail.NoPermission" => {
            "the role's trust policy must allow ALIBABA_CLOUD_OIDC_PROVIDER_ARN with oidc:aud sts.aliyuncs.com and oidc:sub system:serviceaccount:<namespace>:<service-account> of the agent (docs/install.md), and RRSA must be enabled on the cluster"
        }
        c if c.starts_with("Throttling") => "STS throttled the exchange; it is retried",
        _ => "check ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN and the role's trust policy (docs/install.md)",
    }
}

#[async_trait]
impl CredentialsProvider for RrsaProvider {
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        self.cache.get("rrsa", || self.exchange()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RrsaSettings {
        RrsaSettings {
            role_arn: "acs:ram::1234567890123456:role/slb-sync".into(),
            oidc_provider_arn: "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c1".into(),
            oidc_token_file: "/var/run/secrets/token".into(),
            role_session_name: DEFAULT_ROLE_SESSION_NAME.into(),
            duration: None,
            sts_endpoint: sts_endpoint_url(None, Some("cn-hangzhou")),
        }
    }

    #[test]
    fn sts_endpoint_is_regional_by_default_and_overridable() {
        assert_eq!(
            sts_endpoint_url(None, Some("cn-hangzhou")),
            "https://sts.cn-hangzhou.aliyuncs.com/"
        );
        assert_eq!(sts_endpoint_url(None, None), "https://sts.aliyuncs.com/");
        assert_eq!(
            sts_endpoint_url(
                Some("sts-vpc.cn-hangzhou.aliyuncs.com"),
                Some("cn-hangzhou")
            ),
            "https://sts-vpc.cn-hangzhou.aliyuncs.com/"
        );
        assert_eq!(
            sts_endpoint_url(Some("http://127.0.0.1:9000"), None),
            "http://127.0.0.1:9000/"
        );
    }

    #[test]
    fn settings_sts_would_refuse_are_rejected_naming_the_setting() {
        settings().validate().unwrap();
        let mut s = settings();
        s.duration = Some(Duration::from_secs(3600));
        s.validate().unwrap();

        let reject = |s: RrsaSettings, setting: &str| {
            let err = s.validate().unwrap_err();
            assert!(
                matches!(&err, CredentialsError::RrsaInvalid { setting: got, .. } if *got == setting),
                "{err}"
            );
        };
        let mut s = settings();
        s.role_session_name = "slb sync/pod".into();
        reject(s, "ALIBABA_CLOUD_ROLE_SESSION_NAME");
        let mut s = settings();
        s.role_session_name = "x".repeat(65);
        reject(s, "ALIBABA_CLOUD_ROLE_SESSION_NAME");
        let mut s = settings();
        s.duration = Some(Duration::from_secs(600));
        reject(s, "--sts-duration-seconds");
        let mut s = settings();
        s.role_arn = "slb-sync".into();
        reject(s, "ALIBABA_CLOUD_ROLE_ARN");
        let mut s = settings();
        s.oidc_provider_arn = "acs:ram::1:role/swapped".into();
        reject(s, "ALIBABA_CLOUD_OIDC_PROVIDER_ARN");
    }

    #[test]
    fn refusals_worth_retrying_are_transient() {
        let refused = |status, code: &str| CredentialsError::StsRefused {
            status,
            code: code.into(),
            message: String::new(),
            request_id: String::new(),
            hint: hint(code),
        };
        assert!(refused(400, "Throttling.User").is_transient());
        assert!(refused(503, "ServiceUnavailable").is_transient());
        assert!(refused(400, "AuthenticationFail.OIDCToken.Expired").is_transient());
        assert!(!refused(400, "AuthenticationFail.NoPermission").is_transient());
        assert!(!refused(404, "EntityNotExist.Role").is_transient());
        assert!(hint("AuthenticationFail.NoPermission").contains("system:serviceaccount:"));
    }
}
