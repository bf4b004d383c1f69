//! What the operator configured, and the provider for the first source that is set.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use super::metadata::{MetadataProvider, DEFAULT_METADATA_BASE_URL};
use super::refresh::DEFAULT_REFRESH_BEFORE;
use super::rrsa::{sts_endpoint_url, RrsaProvider, RrsaSettings, DEFAULT_ROLE_SESSION_NAME};
use super::{Credentials, CredentialsError, CredentialsProvider, FileProvider, StaticProvider};

/// The RRSA variables, in the order a missing one is reported.
const RRSA_VARS: [&str; 3] = [
    "ALIBABA_CLOUD_ROLE_ARN",
    "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
    "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
];

/// What the operator configured; [`CredentialsConfig::build`] picks the first source set.
#[derive(Debug, Clone)]
pub struct CredentialsConfig {
    pub access_key_id: Option<String>,
    pub access_key_secret: Option<SecretString>,
    pub security_token: Option<SecretString>,
    /// A JSON or `key=value` file, or a directory of one file per key (a mounted Secret).
    pub credentials_file: Option<PathBuf>,
    /// RRSA: the RAM role to assume (`acs:ram::<account>:role/<name>`).
    pub role_arn: Option<String>,
    /// RRSA: the cluster's OIDC provider (`acs:ram::<account>:oidc-provider/ack-rrsa-<cluster>`).
    pub oidc_provider_arn: Option<String>,
    /// RRSA: the projected service-account token, re-read on every exchange.
    pub oidc_token_file: Option<PathBuf>,
    /// RRSA: the session name STS records (ActionTrail); [`DEFAULT_ROLE_SESSION_NAME`] when unset.
    pub role_session_name: Option<String>,
    /// RRSA: `DurationSeconds` asked of STS; STS's default (3600 s) when unset.
    pub role_session_duration: Option<Duration>,
    /// RRSA: STS endpoint URL or host; `https://sts.<region>.aliyuncs.com/` when unset.
    pub sts_endpoint: Option<String>,
    /// Region for the default STS endpoint; the global `sts.aliyuncs.com` when unset.
    pub region_id: Option<String>,
    /// Fall back to the ECS instance RAM role when nothing above is set.
    pub instance_role: bool,
    /// The RAM role name; discovered from the metadata service when `None`.
    pub ram_role_name: Option<String>,
    pub metadata_base_url: String,
    /// Refresh role credentials (RRSA or instance role) this long before they expire.
    pub refresh_before: Duration,
}

impl Default for CredentialsConfig {
    fn default() -> Self {
        CredentialsConfig {
            access_key_id: None,
            access_key_secret: None,
            security_token: None,
            credentials_file: None,
            role_arn: None,
            oidc_provider_arn: None,
            oidc_token_file: None,
            role_session_name: None,
            role_session_duration: None,
            sts_endpoint: None,
            region_id: None,
            instance_role: true,
            ram_role_name: None,
            metadata_base_url: DEFAULT_METADATA_BASE_URL.to_string(),
            refresh_before: DEFAULT_REFRESH_BEFORE,
        }
    }
}

impl CredentialsConfig {
    /// Reads the variable names Alibaba Cloud's own tools use:
    /// `ALIBABA_CLOUD_ACCESS_KEY_ID`, `ALIBABA_CLOUD_ACCESS_KEY_SECRET`,
    /// `ALIBABA_CLOUD_SECURITY_TOKEN`, the RRSA set (`ALIBABA_CLOUD_ROLE_ARN`,
    /// `ALIBABA_CLOUD_OIDC_PROVIDER_ARN`, `ALIBABA_CLOUD_OIDC_TOKEN_FILE`,
    /// `ALIBABA_CLOUD_ROLE_SESSION_NAME`), `ALIBABA_CLOUD_REGION_ID` and
    /// `ALIBABA_CLOUD_ECS_METADATA` (role name). Empty values count as unset.
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
            role_arn: get("ALIBABA_CLOUD_ROLE_ARN"),
            oidc_provider_arn: get("ALIBABA_CLOUD_OIDC_PROVIDER_ARN"),
            oidc_token_file: get("ALIBABA_CLOUD_OIDC_TOKEN_FILE").map(PathBuf::from),
            role_session_name: get("ALIBABA_CLOUD_ROLE_SESSION_NAME"),
            region_id: get("ALIBABA_CLOUD_REGION_ID"),
            ram_role_name: get("ALIBABA_CLOUD_ECS_METADATA"),
            ..CredentialsConfig::default()
        }
    }

    /// The provider for the first configured source: explicit values, file, RRSA,
    /// instance role. A half-set explicit pair or a half-set RRSA trio is an error rather
    /// than a silent fall-through to a source the operator did not mean.
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
        if let Some(settings) = self.rrsa_settings()? {
            let provider = RrsaProvider::new(settings)?.with_refresh_before(self.refresh_before);
            return Ok(Arc::new(provider));
        }
        if self.instance_role {
            let provider =
                MetadataProvider::new(self.metadata_base_url.clone(), self.ram_role_name.clone())?
                    .with_refresh_before(self.refresh_before);
            return Ok(Arc::new(provider));
        }
        Err(CredentialsError::NotConfigured)
    }

    /// The RRSA settings when all three RRSA values are set, `None` when none is.
    pub fn rrsa_settings(&self) -> Result<Option<RrsaSettings>, CredentialsError> {
        let role_arn = self.role_arn.as_deref().map(str::trim).unwrap_or("");
        let provider_arn = self
            .oidc_provider_arn
            .as_deref()
            .map(str::trim)
            .unwrap_or("");
        let token_file = self
            .oidc_token_file
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty());
        let set = [
            !role_arn.is_empty(),
            !provider_arn.is_empty(),
            token_file.is_some(),
        ];
        if set.iter().all(|s| !s) {
            return Ok(None);
        }
        if let Some(missing) = set.iter().position(|s| !s) {
            return Err(CredentialsError::RrsaIncomplete {
                missing: RRSA_VARS[missing],
            });
        }
        Ok(Some(RrsaSettings {
            role_arn: role_arn.to_string(),
            oidc_provider_arn: provider_arn.to_string(),
            oidc_token_file: token_file.cloned().unwrap_or_default(),
            role_session_name: self
                .role_session_name
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .unwrap_or(DEFAULT_ROLE_SESSION_NAME)
                .to_string(),
            duration: self.role_session_duration,
            sts_endpoint: sts_endpoint_url(self.sts_endpoint.as_deref(), self.region_id.as_deref()),
        }))
    }
}
