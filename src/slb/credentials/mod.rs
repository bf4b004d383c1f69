//! Where the agent's Alibaba Cloud credentials come from, in order of precedence
//! ([`CredentialsConfig::build`] takes the first source that is configured):
//!
//! 1. explicit values (flags or `ALIBABA_CLOUD_ACCESS_KEY_ID`,
//!    `ALIBABA_CLOUD_ACCESS_KEY_SECRET`, optional `ALIBABA_CLOUD_SECURITY_TOKEN`);
//! 2. a mounted credentials file or Secret directory, re-read on change ([`FileProvider`]);
//! 3. RRSA, when `ALIBABA_CLOUD_ROLE_ARN`, `ALIBABA_CLOUD_OIDC_PROVIDER_ARN` and
//!    `ALIBABA_CLOUD_OIDC_TOKEN_FILE` are set: the pod's service-account token exchanged at
//!    STS for the role's temporary keys ([`RrsaProvider`]);
//! 4. the ECS instance RAM role from the metadata service ([`MetadataProvider`]).
//!
//! Secrets (key secrets, security tokens and the OIDC token) live in [`SecretString`]s:
//! `Debug` prints `[REDACTED]`, and nothing in this module formats a secret into a log
//! line or an error message.

pub mod args;
mod config;
mod file;
mod metadata;
mod refresh;
mod rrsa;

use std::fmt;
use std::path::PathBuf;

use async_trait::async_trait;
pub use secrecy::{ExposeSecret, SecretString};

pub use config::CredentialsConfig;
pub use file::FileProvider;
pub use metadata::{MetadataProvider, DEFAULT_METADATA_BASE_URL};
pub use refresh::{Clock, DEFAULT_REFRESH_BEFORE, RETRY_AFTER};
pub use rrsa::{RrsaProvider, RrsaSettings, DEFAULT_ROLE_SESSION_NAME, STS_API_VERSION};

/// An access key pair, plus a security token when the pair is temporary (STS, RAM role).
#[derive(Clone)]
pub struct Credentials {
    access_key_id: String,
    access_key_secret: SecretString,
    security_token: Option<SecretString>,
}

impl Credentials {
    /// Rejects empty parts: an empty key would only fail later with a confusing
    /// `SignatureDoesNotMatch` from the API.
    pub fn new(
        access_key_id: impl Into<String>,
        access_key_secret: SecretString,
        security_token: Option<SecretString>,
        origin: &str,
    ) -> Result<Credentials, CredentialsError> {
        let access_key_id = access_key_id.into().trim().to_string();
        let incomplete = |missing| CredentialsError::Incomplete {
            origin: origin.to_string(),
            missing,
        };
        if access_key_id.is_empty() {
            return Err(incomplete("AccessKeyId"));
        }
        if access_key_secret.expose_secret().trim().is_empty() {
            return Err(incomplete("AccessKeySecret"));
        }
        let security_token = security_token.filter(|t| !t.expose_secret().trim().is_empty());
        Ok(Credentials {
            access_key_id,
            access_key_secret,
            security_token,
        })
    }

    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    pub fn access_key_secret(&self) -> &SecretString {
        &self.access_key_secret
    }

    pub fn security_token(&self) -> Option<&SecretString> {
        self.security_token.as_ref()
    }

    /// Temporary credentials must send `SecurityToken` with every call.
    pub fn is_temporary(&self) -> bool {
        self.security_token.is_some()
    }

    /// Replaces every occurrence of the secret or the token (raw, or URL-encoded once or
    /// twice as in a string-to-sign the API may echo back) in `text`.
    pub fn scrub(&self, text: &str) -> String {
        let secrets = std::iter::once(self.access_key_secret.expose_secret())
            .chain(self.security_token.as_ref().map(|t| t.expose_secret()));
        scrub_secrets(text, secrets)
    }
}

/// Replaces every occurrence of each secret (raw, or URL-encoded once or twice) in `text`.
/// Secrets shorter than 4 characters are left alone: they would redact ordinary words.
pub(crate) fn scrub_secrets<'a>(text: &str, secrets: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        if secret.len() < 4 {
            continue;
        }
        let once = crate::slb::rpc::sign::percent_encode(secret);
        let twice = crate::slb::rpc::sign::percent_encode(&once);
        for form in [twice.as_str(), once.as_str(), secret] {
            if out.contains(form) {
                out = out.replace(form, "[REDACTED]");
            }
        }
    }
    out
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &mask_id(&self.access_key_id))
            .field("access_key_secret", &"[REDACTED]")
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

/// Enough of an AccessKeyId to tell keys apart in logs, not the whole id.
pub(crate) fn mask_id(id: &str) -> String {
    let prefix: String = id.chars().take(4).collect();
    format!("{prefix}***")
}

/// Why no usable credentials could be produced. Never quotes a secret.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("no Alibaba Cloud credentials configured: set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, mount a credentials file, set up RRSA, or run on ECS with an instance RAM role")]
    NotConfigured,
    #[error(
        "credentials from {origin} lack {missing}: provide both AccessKeyId and AccessKeySecret"
    )]
    Incomplete {
        origin: String,
        missing: &'static str,
    },
    #[error("cannot read credentials file {path}: {source}; check the mount and its permissions")]
    FileRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("credentials file {path} is malformed: {reason}; expected JSON {{\"AccessKeyId\",\"AccessKeySecret\",\"SecurityToken\"}}, key=value lines, or a directory of such files")]
    FileFormat { path: PathBuf, reason: String },
    #[error("ECS metadata service at {url} failed: {reason}; is an instance RAM role attached to this node?")]
    Metadata { url: String, reason: String },
    #[error("RRSA is only partly configured: {missing} is not set; set ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN and ALIBABA_CLOUD_OIDC_TOKEN_FILE together (deploy/overlays/ram-role does), or none of them")]
    RrsaIncomplete { missing: &'static str },
    #[error("invalid RRSA setting {setting}: {reason}")]
    RrsaInvalid {
        setting: &'static str,
        reason: String,
    },
    #[error("cannot read the OIDC token file {path} (ALIBABA_CLOUD_OIDC_TOKEN_FILE): {source}; mount the projected service-account token there (audience sts.aliyuncs.com, as deploy/overlays/ram-role does)")]
    OidcTokenRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the OIDC token file {path} (ALIBABA_CLOUD_OIDC_TOKEN_FILE) is empty; it must hold the projected service-account token the kubelet writes")]
    OidcTokenEmpty { path: PathBuf },
    #[error("STS AssumeRoleWithOIDC at {url} failed: {reason}; check that the agent can reach the STS endpoint (--sts-endpoint; sts-vpc.<region>.aliyuncs.com from a VPC without internet access)")]
    StsUnreachable { url: String, reason: String },
    #[error("STS AssumeRoleWithOIDC refused with {code} (HTTP {status}, RequestId {request_id}): {message}; {hint}")]
    StsRefused {
        status: u16,
        code: String,
        /// STS's message with the OIDC token scrubbed out.
        message: String,
        request_id: String,
        hint: &'static str,
    },
    #[error("STS AssumeRoleWithOIDC at {url} gave an unusable answer: {reason}")]
    StsAnswer { url: String, reason: String },
    /// The last fetch failed moments ago; it is not repeated for every API call.
    #[error("{message} (next attempt at most {retry_after_secs} s after that failure)")]
    RecentlyFailed {
        message: String,
        transient: bool,
        retry_after_secs: u64,
    },
}

impl CredentialsError {
    /// Whether the same request may succeed later without the operator changing anything
    /// (a service or mount that comes back, a token the kubelet rotates, throttling).
    pub fn is_transient(&self) -> bool {
        match self {
            CredentialsError::Metadata { .. }
            | CredentialsError::FileRead { .. }
            | CredentialsError::OidcTokenRead { .. }
            | CredentialsError::OidcTokenEmpty { .. }
            | CredentialsError::StsUnreachable { .. }
            | CredentialsError::StsAnswer { .. } => true,
            CredentialsError::RecentlyFailed { transient, .. } => *transient,
            CredentialsError::StsRefused { status, code, .. } => {
                *status >= 500
                    || code.starts_with("Throttling")
                    || code == "ServiceUnavailable"
                    || code == "InternalError"
                    || code == "AuthenticationFail.OIDCToken.Expired"
            }
            CredentialsError::NotConfigured
            | CredentialsError::Incomplete { .. }
            | CredentialsError::FileFormat { .. }
            | CredentialsError::RrsaIncomplete { .. }
            | CredentialsError::RrsaInvalid { .. } => false,
        }
    }
}

/// A source of credentials, asked before every API call so rotation takes effect.
#[async_trait]
pub trait CredentialsProvider: Send + Sync + fmt::Debug {
    async fn credentials(&self) -> Result<Credentials, CredentialsError>;
}

/// Fixed credentials from flags or the environment.
#[derive(Debug, Clone)]
pub struct StaticProvider(Credentials);

impl StaticProvider {
    pub fn new(credentials: Credentials) -> Self {
        StaticProvider(credentials)
    }
}

#[async_trait]
impl CredentialsProvider for StaticProvider {
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        Ok(self.0.clone())
    }
}
