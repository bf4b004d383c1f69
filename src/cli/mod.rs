//! The `slb-sync` command line: the subcommands and their flags. Each subcommand's module
//! holds its flags (flattening those of the components it builds, which own them) and
//! its `run`; `main.rs` only parses, sets up logging and dispatches.

pub mod demo;
pub mod doctor;
pub mod plan;
pub mod release_finalizers;
pub mod run;
#[cfg(test)]
mod tests;
pub mod wait_drained;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::demo::DemoArgs;
use crate::doctor::cli::DoctorArgs;
use crate::logging::LogFormat;

/// Keeps Alibaba Cloud SLB backend groups in sync with Kubernetes so rolling updates lose
/// no requests.
#[derive(Debug, Parser)]
#[command(name = "slb-sync", version, about)]
pub struct Cli {
    /// Log lines on stderr as text (coloured only on a terminal) or as one JSON object
    /// per line.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "SLB_SYNC_LOG_FORMAT",
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent: watch the cluster and keep the SLB backend groups of managed
    /// Services in sync (make before break, drain, remove), as the leader of its replicas.
    ///
    /// Every replica keeps its caches warm and serves /metrics, /healthz, /readyz and the
    /// drain API on --http-addr; only the holder of the leader Lease writes to the SLB and
    /// to the cluster. Stops on SIGTERM or Ctrl-C: running passes get a few seconds to
    /// finish, then the lease is released.
    Run(Box<run::RunArgs>),
    /// Print the desired SLB backends of every managed Service as JSON.
    Plan(plan::PlanArgs),
    /// Audit the workloads behind managed Services for settings that lose requests
    /// during rolling updates.
    ///
    /// Checks readinessProbe, livenessProbe vs slow starts, the readiness gate, preStop,
    /// terminationGracePeriodSeconds, the rolling update, the Local-mode node layout and the
    /// Cluster-mode SLB-per-ECS quota, and prints each finding with its fix.
    ///
    /// Reads either manifest files or dumps (`slb-sync doctor PATH...`, e.g. the output of
    /// `kubectl get deploy,sts,svc,nodes -A -o yaml`), or the live cluster
    /// (`slb-sync doctor --live`, through KUBECONFIG / --kubeconfig or the in-cluster
    /// service account). Live mode only lists, never writes: it needs `list` on services,
    /// deployments.apps, statefulsets.apps and nodes (deploy/doctor-rbac.yaml), and
    /// without the nodes permission it still audits all but the node-pool count.
    ///
    /// Exits 1 when any finding is an error or the input cannot be read, 0 otherwise.
    Doctor(DoctorArgs),
    /// Block until the agent reports this pod drained; for the pod's preStop hook.
    ///
    /// Exits 0 once the pod is `drained` (its SLB backend was drained and removed) or
    /// `unmanaged` (the agent holds nothing for it). Exits 3 when the agent `released` it
    /// at its fail-open deadline without confirming the drain (the SLB may still have sent
    /// it traffic). Exits 1 at --timeout, or at once if the agent refuses the request; the
    /// container then stops anyway (fail-open). Retries through connection errors until
    /// --timeout, since the agent may be restarting.
    WaitDrained(wait_drained::WaitDrainedArgs),
    /// Remove the agent's finalizers from every pod and Service (uninstall, stuck pods).
    ///
    /// Removes `slb-sync.io/drain` from pods and `slb-sync.io/cleanup` from Services in all
    /// namespaces, printing one line per object changed. Reads the cluster from KUBECONFIG
    /// or the in-cluster service account. Stop the agent first, or it adds them back.
    ReleaseFinalizers(release_finalizers::ReleaseFinalizersArgs),
    /// Run the race lab: rolling updates behind the mock SLB with and without slb-sync on
    /// a simulated cluster (loopback only), printing failed requests by cause.
    ///
    /// The lab is the `race-lab` binary of the source tree's `mocks/cluster` (it builds on
    /// this crate, so it cannot live inside this binary); `demo` runs the one built beside
    /// this binary (`cargo build -p mock-cluster --bin race-lab`) with every argument
    /// passed on (`slb-sync demo --help` shows the lab's options) and this binary as the
    /// pods' `wait-drained`.
    #[command(disable_help_flag = true)]
    Demo(DemoArgs),
}

/// The agent's runtime: its watches, passes and HTTP server run side by side.
pub fn multi_thread_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The runtime of the one-shot subcommands: one thread starts fastest (wait-drained runs
/// in every terminating pod).
pub fn current_thread_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Prints a failed subcommand's error with its causes, without a backtrace: these are
/// input and environment problems, not bugs.
pub fn report(err: &anyhow::Error) -> ExitCode {
    eprintln!("error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    ExitCode::FAILURE
}
