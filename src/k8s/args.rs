//! The Kubernetes flags of `slb-sync run`: the cluster connection and the leader-election
//! Lease, with their translation into a client and [`LeaderConfig`].

use std::path::PathBuf;

use clap::Args;

use super::client::{self, ClientError};
use super::leader::LeaderConfig;
use super::names::DEFAULT_LEASE_NAME;

/// Which cluster to connect to.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Kubeconfig file; without it the in-cluster service account (or ~/.kube/config).
    #[arg(long, value_name = "FILE", env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

impl ClusterArgs {
    pub async fn client(&self) -> Result<kube::Client, ClientError> {
        client::client(client::config(self.kubeconfig.as_deref()).await?)
    }
}

/// The leader-election Lease and this replica's identity in it.
#[derive(Debug, Clone, Args)]
pub struct LeaderArgs {
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
}

impl LeaderArgs {
    /// The Lease to hold; an empty namespace is left for the caller to fill from the
    /// client's default (it is only known once connected). The timing is checked when
    /// the election starts ([`super::leader::LeaderError::BadTiming`]).
    pub fn config(&self) -> LeaderConfig {
        LeaderConfig {
            lease_name: self.lease_name.clone(),
            namespace: self.lease_namespace.clone().unwrap_or_default(),
            identity: self.identity(),
            duration_secs: self.lease_duration_seconds,
            grace_secs: self.lease_grace_seconds,
        }
    }

    /// `--pod-name`, else the host name, else one made up from the process id: two
    /// replicas must never share an identity, or both would think they lead.
    pub fn identity(&self) -> String {
        self.pod_name
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|n| !n.is_empty()))
            .unwrap_or_else(|| format!("slb-sync-{}", std::process::id()))
    }
}
