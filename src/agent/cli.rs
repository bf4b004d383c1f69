//! The flags of `slb-sync run` (each with its environment variable, as the deploy
//! manifests set them; see deploy/METRICS.md) and their translation into [`AgentConfig`].

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::AgentConfig;
use crate::desired::PlannerConfig;
use crate::k8s::leader::LeaderConfig;
use crate::k8s::names::{DEFAULT_HTTP_ADDR, DEFAULT_LEASE_NAME};
use crate::reconcile::ApiLimits;
use crate::slb::credentials::{CredentialsConfig, SecretString};
use crate::slb::RpcConfig;

/// Which Services are managed: shared by `run`, `plan` and `doctor`.
#[derive(Debug, Clone, Args)]
pub struct ManagedArgs {
    /// `spec.loadBalancerClass` of the Services this agent manages.
    #[arg(long, env = "SLB_SYNC_LB_CLASS", default_value = "slb-sync.io/slb")]
    pub lb_class: String,
    /// Also manage LoadBalancer Services without a class that carry the SLB id annotation.
    #[arg(
        long,
        env = "SLB_SYNC_MANAGE_UNCLASSED",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    pub manage_unclassed: bool,
}

/// Which Services are managed and how owned backends are named: shared by every command
/// that plans.
#[derive(Debug, Clone, Args)]
pub struct PlannerArgs {
    /// Cluster id written into owned backends' Description `k8s/<port>/<svc>/<ns>/<cluster-id>`.
    #[arg(long, env = "SLB_SYNC_CLUSTER_ID", default_value = "kubernetes")]
    pub cluster_id: String,
    #[command(flatten)]
    pub managed: ManagedArgs,
}

impl PlannerArgs {
    pub fn config(&self) -> PlannerConfig {
        PlannerConfig {
            cluster_id: self.cluster_id.clone(),
            lb_class: self.managed.lb_class.clone(),
            manage_unclassed: self.managed.manage_unclassed,
        }
    }
}

/// Flags of `slb-sync run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Kubeconfig file; without it the in-cluster service account (or ~/.kube/config).
    #[arg(long, value_name = "FILE", env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    pub planner: PlannerArgs,
    /// Region of the SLB instances, e.g. cn-hangzhou.
    #[arg(long, env = "ALIBABA_CLOUD_REGION_ID")]
    pub region: String,
    /// SLB API endpoint URL; default https://slb.<region>.aliyuncs.com/ (set a VPC endpoint
    /// here).
    #[arg(long, value_name = "URL", env = "SLB_SYNC_SLB_ENDPOINT")]
    pub slb_endpoint: Option<String>,
    /// ECS API endpoint URL (ENI lookups); default https://ecs.<region>.aliyuncs.com/.
    #[arg(long, value_name = "URL", env = "SLB_SYNC_ECS_ENDPOINT")]
    pub ecs_endpoint: Option<String>,
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
    /// Sustained SLB API calls per second, all instances together.
    #[arg(long, env = "SLB_SYNC_QPS", default_value_t = 5.0)]
    pub qps: f64,
    /// SLB API calls that may go at once after a quiet period.
    #[arg(long, env = "SLB_SYNC_BURST", default_value_t = NonZeroU32::new(10).expect("not zero"))]
    pub burst: NonZeroU32,
    /// Deadline of each SLB API call, in seconds.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "SLB_SYNC_CALL_TIMEOUT_SECONDS",
        default_value_t = 10
    )]
    pub call_timeout_seconds: u64,
    /// Drain window of Services whose `connection-drain` is not on, in seconds.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "SLB_SYNC_DEFAULT_DRAIN_SECONDS",
        default_value_t = 30
    )]
    pub default_drain_seconds: u32,
    /// Every group is re-read and repaired this often, in seconds (drift made outside the
    /// agent).
    #[arg(
        long,
        value_name = "SECONDS",
        env = "SLB_SYNC_RESYNC_SECONDS",
        default_value_t = 600
    )]
    pub resync_seconds: u64,
    /// Groups that pods wait on (a readiness gate not yet open, a drain not yet
    /// confirmed) are re-read and repaired this often, in seconds, so a group changed
    /// behind the agent's back is mended while a rollout depends on it.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "SLB_SYNC_DRIFT_CHECK_SECONDS",
        default_value_t = 10
    )]
    pub drift_check_seconds: u64,
    /// Address of /metrics, /healthz, /readyz and the drain API.
    #[arg(long, value_name = "ADDR", env = "SLB_SYNC_HTTP_ADDR", default_value = DEFAULT_HTTP_ADDR)]
    pub http_addr: SocketAddr,
    /// Name of the leader-election Lease.
    #[arg(long, env = "SLB_SYNC_LEASE_NAME", default_value = DEFAULT_LEASE_NAME)]
    pub lease_name: String,
    /// Namespace of the Lease; default: the agent pod's own namespace (`POD_NAMESPACE`
    /// from the downward API, else its service account's), or outside a cluster the
    /// kubeconfig context's namespace.
    #[arg(long, value_name = "NS", env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Seconds a lease stays valid after its last renewal.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "SLB_SYNC_LEASE_DURATION_SECONDS",
        default_value_t = 15
    )]
    pub lease_duration_seconds: u64,
    /// Seconds before expiry the leader renews.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "SLB_SYNC_LEASE_GRACE_SECONDS",
        default_value_t = 5
    )]
    pub lease_grace_seconds: u64,
    /// This replica's identity in the Lease and in Events (downward API `metadata.name`);
    /// defaults to the host name.
    #[arg(long, value_name = "NAME", env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// Pod drain finalizers are released (fail-open) this long after the pod's grace
    /// period ended without a confirmed drain, in seconds.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "SLB_SYNC_FINALIZER_GRACE_MARGIN_SECONDS",
        default_value_t = 30
    )]
    pub finalizer_grace_margin_seconds: u64,
    /// A deleted pod of a Cluster or Local Service is reported drained (its preStop
    /// `wait-drained` returns) only after it has been terminating this long, in seconds,
    /// on top of its SLB side being confirmed. kube-proxy on every node applies the
    /// EndpointSlice change in its next iptables/IPVS sync and forwards new connections
    /// to the pod until then; set it above your kube-proxy's sync lag (`minSyncPeriod`
    /// plus the time a sync takes). ENI backends bypass kube-proxy and never wait for it.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "SLB_SYNC_KUBE_PROXY_ALLOWANCE_SECONDS",
        default_value_t = 5
    )]
    pub kube_proxy_allowance_seconds: u64,
}

impl RunArgs {
    pub fn planner(&self) -> PlannerConfig {
        self.planner.config()
    }

    pub fn identity(&self) -> String {
        self.pod_name
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|n| !n.is_empty()))
            .unwrap_or_else(|| format!("slb-sync-{}", std::process::id()))
    }

    pub fn limits(&self) -> ApiLimits {
        ApiLimits {
            qps: self.qps,
            burst: self.burst,
            call_timeout: Duration::from_secs(self.call_timeout_seconds),
            ..ApiLimits::default()
        }
    }

    pub fn rpc_config(&self) -> RpcConfig {
        let mut config = RpcConfig::new(&self.region);
        config.slb_endpoint = self.slb_endpoint.clone();
        config.ecs_endpoint = self.ecs_endpoint.clone();
        config.timeout = Duration::from_secs(self.call_timeout_seconds);
        config
    }

    /// Explicit keys first, then the credentials file, then RRSA, then the instance RAM role.
    pub fn credentials(&self) -> CredentialsConfig {
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
            region_id: Some(self.region.clone()),
            ram_role_name: self.ram_role.clone(),
            metadata_base_url: self.metadata_url.clone(),
            ..CredentialsConfig::default()
        }
    }

    /// The agent's configuration; `registry` gets the agent metrics.
    pub fn agent_config(&self, registry: prometheus::Registry) -> prometheus::Result<AgentConfig> {
        let leader = LeaderConfig {
            lease_name: self.lease_name.clone(),
            namespace: self.lease_namespace.clone().unwrap_or_default(),
            identity: self.identity(),
            duration_secs: self.lease_duration_seconds,
            grace_secs: self.lease_grace_seconds,
        };
        let mut config = AgentConfig::new(self.planner(), leader, registry)?;
        config.default_drain_secs = self.default_drain_seconds;
        config.resync = Duration::from_secs(self.resync_seconds.max(1));
        config.drift_check = Duration::from_secs(self.drift_check_seconds.max(1));
        config.kube_proxy_allowance = Duration::from_secs(self.kube_proxy_allowance_seconds);
        config.http_addr = self.http_addr;
        config.limits = self.limits();
        Ok(config)
    }
}
