//! The flags of `slb-sync doctor` (each with its environment variable) and their
//! translation into [`DoctorConfig`] and [`LiveOptions`].

use std::path::PathBuf;

use clap::Args;

use super::live::LiveOptions;
use super::{DoctorConfig, Source};
use crate::desired::args::ManagedArgs;

/// Output format of `doctor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DoctorOutput {
    /// Aligned columns: severity, object, rule, finding, fix.
    Table,
    /// `{"findings": [...], "summary": {...}}`.
    Json,
}

/// What `doctor` audits and how it reports.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["paths", "live"])))]
pub struct DoctorArgs {
    /// Manifest or snapshot files (YAML or JSON), or directories searched recursively:
    /// the Services, their Deployments/StatefulSets and, for Local mode, the Nodes.
    #[arg(value_name = "PATH", num_args = 1.., env = "SLB_SYNC_DOCTOR_PATH")]
    pub paths: Vec<PathBuf>,
    /// Audit the live cluster instead of files: list the managed Services, the
    /// Deployments and StatefulSets in their namespaces and, for Local mode, the Nodes.
    /// Read-only.
    #[arg(
        long,
        conflicts_with = "paths",
        env = "SLB_SYNC_DOCTOR_LIVE",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    pub live: bool,
    /// With --live: kubeconfig file; without it KUBECONFIG, ~/.kube/config or the
    /// in-cluster service account.
    #[arg(long, value_name = "FILE", env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// With --live: only this namespace's Services and workloads (all namespaces
    /// otherwise).
    #[arg(
        long,
        short = 'n',
        value_name = "NS",
        env = "SLB_SYNC_DOCTOR_NAMESPACE",
        conflicts_with = "paths"
    )]
    pub namespace: Option<String>,
    /// With --live: objects per list request (like kubectl's --chunk-size); 0 lists each
    /// kind in one response.
    #[arg(
        long,
        value_name = "N",
        env = "SLB_SYNC_DOCTOR_CHUNK_SIZE",
        default_value_t = super::live::DEFAULT_CHUNK_SIZE
    )]
    pub chunk_size: u32,
    #[command(flatten)]
    pub managed: ManagedArgs,
    /// The agent's drain flags (its values, to judge preStop hooks).
    #[command(flatten)]
    pub drain: crate::agent::args::DrainArgs,
    /// The agent's kube-proxy allowance (Cluster and Local pods are drained no earlier),
    /// in seconds.
    #[arg(
        long,
        env = "SLB_SYNC_KUBE_PROXY_ALLOWANCE_SECONDS",
        default_value_t = 5
    )]
    pub kube_proxy_allowance_seconds: u32,
    /// The agent's health-gate timeout (a gate waiting on health opens after it), in
    /// seconds.
    #[arg(
        long,
        env = "SLB_SYNC_HEALTH_GATE_TIMEOUT_SECONDS",
        default_value_t = 600
    )]
    pub health_gate_timeout_seconds: u32,
    /// Output format.
    #[arg(long, short, env = "SLB_SYNC_DOCTOR_OUTPUT", value_enum, default_value_t = DoctorOutput::Table)]
    pub output: DoctorOutput,
}

impl DoctorArgs {
    /// The audit's configuration; the source follows `--live`.
    pub fn config(&self) -> DoctorConfig {
        DoctorConfig {
            lb_class: self.managed.lb_class.clone(),
            manage_unclassed: self.managed.manage_unclassed,
            default_drain_secs: self.drain.default_drain_seconds,
            slb_propagation_secs: self.drain.slb_propagation_seconds,
            kube_proxy_allowance_secs: self.kube_proxy_allowance_seconds,
            health_gate_timeout_secs: self.health_gate_timeout_seconds,
            source: if self.live {
                Source::Cluster
            } else {
                Source::Files
            },
        }
    }

    /// What `--live` reads.
    pub fn live_options(&self) -> LiveOptions {
        LiveOptions {
            namespace: self.namespace.clone(),
            chunk_size: self.chunk_size,
        }
    }
}
