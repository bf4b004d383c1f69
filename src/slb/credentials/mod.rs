//! Where the agent's Alibaba Cloud credentials come from, in order of precedence:
//!
//! 1. explicit values (flags or `ALIBABA_CLOUD_ACCESS_KEY_ID`,
//!    `ALIBABA_CLOUD_ACCESS_KEY_SECRET`, optional `ALIBABA_CLOUD_SECURITY_TOKEN`);
//! 2. a mounted credentials file or Secret directory, re-read on change ([`FileProvider`]);
//! 3. the ECS instance RAM role from the metadata service ([`MetadataProvider`]).
//!
//! Secrets live in [`SecretString`]s: `Debug` prints `[REDACTED]`, and nothing in this
//! module formats a secret into a log line or an error message.

mod file;
mod metadata;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
pub use secrecy::{ExposeSecret, SecretString};

pub use file::FileProvider;
pub use metadata::{Clock, MetadataProvider, DEFAULT_METADATA_BASE_URL};

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
        let mut out = text.to_string();
        let secrets = std::iter::once(self.access_key_secret.expose_secret())
            .chain(self.security_token.as_ref().map(|t| t.expose_secret()));
        for secret in secrets {
            if secret.len() < 4 {
                continue;
            }
            let once = percent_encode(secret);
            let twice = percent_encode(&once);
            for form in [twice.as_str(), once.as_str(), secret] {
                if out.contains(form) {
                    out = out.replace(form, "[REDACTED]");
                }
            }
        }
        out
    }
}

/// RFC 3986 encoding as the signature v1 uses it.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
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
    #[error("no Alibaba Cloud credentials configured: set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, mount a credentials file, or run on ECS with an instance RAM role")]
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

/// What the operator configured; [`CredentialsConfig::build`] picks the first source set.
#[derive(Debug, Clone)]
pub struct CredentialsConfig {
    pub access_key_id: Option<String>,
    pub access_key_secret: Option<SecretString>,
    pub security_token: Option<SecretString>,
    /// A JSON or `key=value` file, or a directory of one file per key (a mounted Secret).
    pub credentials_file: Option<PathBuf>,
    /// Fall back to the ECS instance RAM role when nothing above is set.
    pub instance_role: bool,
    /// The RAM role name; discovered from the metadata service when `None`.
    pub ram_role_name: Option<String>,
    pub metadata_base_url: String,
    /// Refresh role credentials this long before they expire.
    pub refresh_before: Duration,
}

impl Default for CredentialsConfig {
    fn default() -> Self {
        CredentialsConfig {
            access_key_id: None,
            access_key_secret: None,
            security_token: None,
            credentials_file: None,
            instance_role: true,
            ram_role_name: None,
            metadata_base_url: DEFAULT_METADATA_BASE_URL.to_string(),
            refresh_before: Duration::from_secs(300),
        }
    }
}

impl CredentialsConfig {
    /// Reads `ALIBABA_CLOUD_ACCESS_KEY_ID`, `ALIBABA_CLOUD_ACCESS_KEY_SECRET`,
    /// `ALIBABA_CLOUD_SECURITY_TOKEN` and `ALIBABA_CLOUD_ECS_METADATA` (role name), the
    /// variable names Alibaba Cloud's own tools use. Empty values count as unset.
    pub fn from_env() -> Self {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// [`CredentialsConfig::from_env`] over any lookup (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |key: &str| lookup(key).filter(|v| !v.trim().is_empty());
        CredentialsConfig {
            access_key_id: get("ALIBABA_CLOUD_ACCESS_KEY_ID"),
            access_key_secret: get("ALIBABA_CLOUD_ACCESS_KEY_SECRET").map(SecretString::from),
            security_token: get("ALIBABA_CLOUD_SECURITY_TOKEN").map(SecretString::from),
            ram_role_name: get("ALIBABA_CLOUD_ECS_METADATA"),
            ..CredentialsConfig::default()
        }
    }

    /// The provider for the first configured source (explicit values, file, instance role).
    /// A half-set explicit pair is an error rather than a silent fall-through.
    pub fn build(&self) -> Result<Arc<dyn CredentialsProvider>, CredentialsError> {
        if self.access_key_id.is_some() || self.access_key_secret.is_some() {
            let creds = Credentials::new(
                self.access_key_id.clone().unwrap_or_default(),
                self.access_key_secret
                    .clone()
                    .unwrap_or_else(|| SecretString::from("")),
                self.security_token.clone(),
                "flags/environment",
            )?;
            return Ok(Arc::new(StaticProvider::new(creds)));
        }
        if let Some(path) = &self.credentials_file {
            return Ok(Arc::new(FileProvider::new(path.clone())));
        }
        if self.instance_role {
            let provider =
                MetadataProvider::new(self.metadata_base_url.clone(), self.ram_role_name.clone())?
                    .with_refresh_before(self.refresh_before);
            return Ok(Arc::new(provider));
        }
        Err(CredentialsError::NotConfigured)
    }
}
