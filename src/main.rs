//! `slb-sync` command line: wiring only; the work lives in the library.
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use slb_sync::desired::PlannerConfig;

/// Keeps Alibaba Cloud SLB backend groups in sync with Kubernetes so rolling updates lose
/// no requests.
#[derive(Debug, Parser)]
#[command(name = "slb-sync", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the desired SLB backends of every managed Service as JSON.
    Plan(PlanArgs),
}

/// Which Services are managed and how owned backends are named; shared by every command
/// that plans.
#[derive(Debug, Args)]
struct PlannerArgs {
    /// Cluster id written into owned backends' Description `k8s/<port>/<svc>/<ns>/<cluster-id>`.
    #[arg(long, env = "SLB_SYNC_CLUSTER_ID", default_value = "kubernetes")]
    cluster_id: String,
    /// `spec.loadBalancerClass` of the Services this agent manages.
    #[arg(long, env = "SLB_SYNC_LB_CLASS", default_value = "slb-sync.io/slb")]
    lb_class: String,
    /// Also manage LoadBalancer Services without a class that carry the SLB id annotation.
    #[arg(
        long,
        env = "SLB_SYNC_MANAGE_UNCLASSED",
        num_args = 0..=1,
        default_value_t = false,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    manage_unclassed: bool,
}

impl PlannerArgs {
    fn config(&self) -> PlannerConfig {
        PlannerConfig {
            cluster_id: self.cluster_id.clone(),
            lb_class: self.lb_class.clone(),
            manage_unclassed: self.manage_unclassed,
        }
    }
}

#[derive(Debug, Args)]
struct PlanArgs {
    /// Read the cluster from manifest or snapshot files (YAML or JSON) or directories of
    /// them instead of a live cluster.
    #[arg(long, value_name = "PATH", num_args = 1.., env = "SLB_SYNC_OFFLINE")]
    offline: Vec<PathBuf>,
    #[command(flatten)]
    planner: PlannerArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let result = match cli.command {
        Command::Plan(args) => plan(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // The cause chain, without a backtrace: these are input problems, not bugs.
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn plan(args: PlanArgs) -> anyhow::Result<()> {
    if args.offline.is_empty() {
        bail!(
            "plan without --offline would read a live cluster, which needs a cluster \
             connection that this command does not offer yet; pass --offline PATH... with \
             manifest or snapshot files, e.g. the output of \
             `kubectl get nodes,pods,services,endpointslices -A -o yaml`"
        );
    }
    let snapshot = slb_sync::offline::load_paths(&args.offline)
        .context("cannot read the Kubernetes objects given with --offline")?;
    tracing::info!(
        services = snapshot.services.len(),
        endpoint_slices = snapshot.endpoint_slices.len(),
        nodes = snapshot.nodes.len(),
        pods = snapshot.pods.len(),
        ignored = snapshot.ignored,
        "read the offline cluster state"
    );
    let report = slb_sync::offline::plan(&snapshot, args.planner.config());
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &report).context("cannot write the plan")?;
    writeln!(out).context("cannot write the plan")?;
    Ok(())
}
