//! The credential flags of `slb-sync run` (each with the environment variable Alibaba
//! Cloud's own tools read, where there is one) and their translation into
//! [`CredentialsConfig`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{CredentialsConfig, SecretString};

/// Where the Alibaba Cloud credentials come from (see the module docs for the order).
#[derive(Debug, Clone, Args)]
pub struct CredentialsArgs {
    /// AccessKey id (prefer a Secret mounted via --credentials-file, or a RAM role).
    #[arg(long, env = "ALIBABA_CLOUD_ACCESS_KEY_ID", hide_env_values = true)]
    pub access_key_id: Option<String>,
    /// AccessKey secret.
    #[arg(long, env = "ALIBABA_CLOUD_ACCESS_KEY_SECRET", hide_env_values = true)]
    pub access_key_secret: Option<String>,
    /// STS security token, with temporary AccessKeys.
    #[arg(long, env = "ALIBABA_CLOUD_SECURITY_TOKEN", hide_env_values = true)]
    pub security_token: Option<String>,
    /// Credentials file (JSON or key=value) or a directory of one file per key (a mounted
    /// Secret); re-read when it changes.
    #[arg(long, value_name = "PATH", env = "SLB_SYNC_CREDENTIALS_FILE")]
    pub credentials_file: Option<PathBuf>,
    /// RRSA: ARN of the RAM role to assume with the pod's service-account token. RRSA is
    /// used when this, --oidc-provider-arn and --oidc-token-file are set and no AccessKey
    /// or credentials file is given.
    #[arg(long, value_name = "ARN", env = "ALIBABA_CLOUD_ROLE_ARN")]
    pub role_arn: Option<String>,
    /// RRSA: ARN of the cluster's OIDC provider.
    #[arg(long, value_name = "ARN", env = "ALIBABA_CLOUD_OIDC_PROVIDER_ARN")]
    pub oidc_provider_arn: Option<String>,
    /// RRSA: the projected service-account token file, re-read for every exchange.
    #[arg(long, value_name = "PATH", env = "ALIBABA_CLOUD_OIDC_TOKEN_FILE")]
    pub oidc_token_file: Option<PathBuf>,
    /// RRSA: session name STS records (ActionTrail); default slb-sync.
    #[arg(long, value_name = "NAME", env = "ALIBABA_CLOUD_ROLE_SESSION_NAME")]
    pub role_session_name: Option<String>,
    /// RRSA: validity of the role credentials asked of STS, in seconds (900 up to the
    /// role's MaxSessionDuration); STS's default 3600 when unset.
    #[arg(long, value_name = "SECONDS", env = "SLB_SYNC_STS_DURATION_SECONDS")]
    pub sts_duration_seconds: Option<u64>,
    /// STS endpoint URL (RRSA); default https://sts.<region>.aliyuncs.com/ (set
    /// sts-vpc.<region>.aliyuncs.com from a VPC without internet access).
    #[arg(long, value_name = "URL", env = "SLB_SYNC_STS_ENDPOINT")]
    pub sts_endpoint: Option<String>,
    /// ECS instance RAM role name; discovered from the metadata service when unset. Used
    /// when no AccessKey, credentials file or RRSA is configured.
    #[arg(long, value_name = "NAME", env = "SLB_SYNC_RAM_ROLE")]
    pub ram_role: Option<String>,
    /// ECS metadata service base URL (instance role credentials).
    #[arg(
        long,
        value_name = "URL",
        env = "SLB_SYNC_METADATA_URL",
        default_value = "http://100.100.100.200"
    )]
    pub metadata_url: String,
}

impl CredentialsArgs {
    /// Explicit keys first, then the credentials file, then RRSA, then the instance RAM
    /// role; `region` picks the default STS endpoint. Empty values count as unset, so a
    /// variable a manifest sets to "" does not pick a source.
    pub fn config(&self, region: &str) -> CredentialsConfig {
        let set = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
        CredentialsConfig {
            access_key_id: self.access_key_id.clone().filter(|v| !v.is_empty()),
            access_key_secret: self
                .access_key_secret
                .clone()
                .filter(|v| !v.is_empty())
                .map(SecretString::from),
            security_token: self
                .security_token
                .clone()
                .filter(|v| !v.is_empty())
                .map(SecretString::from),
            credentials_file: self.credentials_file.clone(),
            role_arn: set(&self.role_arn),
            oidc_provider_arn: set(&self.oidc_provider_arn),
            oidc_token_file: self.oidc_token_file.clone(),
            role_session_name: set(&self.role_session_name),
            role_session_duration: self.sts_duration_seconds.map(Duration::from_secs),
            sts_endpoint: set(&self.sts_endpoint),
            region_id: Some(region.to_owned()),
            ram_role_name: self.ram_role.clone(),
            metadata_base_url: self.metadata_url.clone(),
            ..CredentialsConfig::default()
        }
    }
}
