//! `slb-sync plan`: the desired backends (and, given the SLB's state, the steps) of every
//! managed Service, as JSON on stdout.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::desired::args::PlannerArgs;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Read the cluster from manifest or snapshot files (YAML or JSON) or directories of
    /// them instead of a live cluster.
    #[arg(long, value_name = "PATH", num_args = 1.., env = "SLB_SYNC_OFFLINE")]
    pub offline: Vec<PathBuf>,
    /// SLB snapshot (JSON: `{"groups":[…],"drains":[…]}`): each group in the output also
    /// gets the `steps` that would bring the SLB to the desired backends, and `requeueAt`.
    #[arg(long, value_name = "FILE", env = "SLB_SYNC_SLB_STATE")]
    pub slb_state: Option<PathBuf>,
    /// The time to plan at with `--slb-state` (RFC 3339); defaults to the current time.
    #[arg(
        long,
        value_name = "RFC3339",
        env = "SLB_SYNC_NOW",
        requires = "slb_state"
    )]
    pub now: Option<jiff::Timestamp>,
    #[command(flatten)]
    pub drain: crate::agent::args::DrainArgs,
    #[command(flatten)]
    pub planner: PlannerArgs,
}

/// Flags `plan` cannot work with.
#[derive(Debug, thiserror::Error)]
pub enum PlanArgsError {
    #[error(
        "plan without --offline would read a live cluster, which needs a cluster \
         connection that this command does not offer yet; pass --offline PATH... with \
         manifest or snapshot files, e.g. the output of \
         `kubectl get nodes,pods,services,endpointslices -A -o yaml`"
    )]
    NoOffline,
}

impl PlanArgs {
    /// The `--offline` inputs; there must be some.
    pub fn offline_paths(&self) -> Result<&[PathBuf], PlanArgsError> {
        if self.offline.is_empty() {
            return Err(PlanArgsError::NoOffline);
        }
        Ok(&self.offline)
    }
}

/// Plans without a runtime: it only reads files and computes.
pub fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let snapshot = crate::offline::load_paths(args.offline_paths()?)
        .context("cannot read the Kubernetes objects given with --offline")?;
    tracing::info!(
        services = snapshot.services.len(),
        endpoint_slices = snapshot.endpoint_slices.len(),
        nodes = snapshot.nodes.len(),
        pods = snapshot.pods.len(),
        ignored = snapshot.ignored,
        "read the offline cluster state"
    );
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match &args.slb_state {
        None => {
            let report = crate::offline::plan(&snapshot, args.planner.config());
            serde_json::to_writer_pretty(&mut out, &report)
        }
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the SLB state file {}", path.display()))?;
            let state = crate::plan::SlbState::from_json(&text)
                .with_context(|| format!("the SLB state file {} is not usable", path.display()))?;
            let now = args.now.unwrap_or_else(jiff::Timestamp::now);
            let report = crate::offline::plan_steps(
                &snapshot,
                args.planner.config(),
                &state,
                now,
                args.drain.default_drain_seconds,
                args.drain.slb_propagation(),
            )
            .with_context(|| format!("the SLB state file {} is not usable", path.display()))?;
            serde_json::to_writer_pretty(&mut out, &report)
        }
    }
    .context("cannot write the plan")?;
    writeln!(out).context("cannot write the plan")?;
    out.flush().context("cannot write the plan")?;
    Ok(ExitCode::SUCCESS)
}
