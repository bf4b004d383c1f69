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
    /// Audit the workloads behind managed Services for settings that lose requests
    /// during rolling updates.
    ///
    /// Checks readinessProbe, livenessProbe vs slow starts, the readiness gate, preStop,
    /// terminationGracePeriodSeconds, the rolling update, the Local-mode node layout and the
    /// Cluster-mode SLB-per-ECS quota, and prints each finding with its fix.
    ///
    /// Reads manifest files only. Auditing a live cluster (--kubeconfig / in-cluster) is
    /// not implemented yet: dump the cluster and pass the file, e.g.
    /// `kubectl get deploy,sts,svc,nodes -A -o yaml > cluster.yaml; slb-sync doctor cluster.yaml`.
    ///
    /// Exits 1 when any finding is an error or the input cannot be read, 0 otherwise.
    Doctor(DoctorArgs),
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
        action = clap::ArgAction::SetTrue,
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
    /// SLB snapshot (JSON: `{"groups":[…],"drains":[…]}`): each group in the output also
    /// gets the `steps` that would bring the SLB to the desired backends, and `requeueAt`.
    #[arg(long, value_name = "FILE", env = "SLB_SYNC_SLB_STATE")]
    slb_state: Option<PathBuf>,
    /// The time to plan at with `--slb-state` (RFC 3339); defaults to the current time.
    #[arg(
        long,
        value_name = "RFC3339",
        env = "SLB_SYNC_NOW",
        requires = "slb_state"
    )]
    now: Option<jiff::Timestamp>,
    /// Drain window of Services whose `connection-drain` is not on.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "SLB_SYNC_DEFAULT_DRAIN_SECONDS",
        default_value_t = 30
    )]
    default_drain_seconds: u32,
    #[command(flatten)]
    planner: PlannerArgs,
}

/// Output format of `doctor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum DoctorOutput {
    /// Aligned columns: severity, object, rule, finding, fix.
    Table,
    /// `{"findings": [...], "summary": {...}}`.
    Json,
}

/// What `doctor` audits and how it reports.
#[derive(Debug, Args)]
struct DoctorArgs {
    /// Manifest or snapshot files (YAML or JSON), or directories searched recursively:
    /// the Services, their Deployments/StatefulSets and, for Local mode, the Nodes.
    #[arg(value_name = "PATH", required = true, num_args = 1.., env = "SLB_SYNC_DOCTOR_PATH")]
    paths: Vec<PathBuf>,
    /// `spec.loadBalancerClass` of the Services the agent manages.
    #[arg(long, env = "SLB_SYNC_LB_CLASS", default_value = "slb-sync.io/slb")]
    lb_class: String,
    /// Also audit LoadBalancer Services without a class that carry the SLB id annotation.
    #[arg(
        long,
        env = "SLB_SYNC_MANAGE_UNCLASSED",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    manage_unclassed: bool,
    /// The agent's drain window for Services without connection drain, in seconds.
    #[arg(long, env = "SLB_SYNC_DEFAULT_DRAIN_SECONDS", default_value_t = 30)]
    default_drain_seconds: u32,
    /// Output format.
    #[arg(long, short, env = "SLB_SYNC_DOCTOR_OUTPUT", value_enum, default_value_t = DoctorOutput::Table)]
    output: DoctorOutput,
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
        Command::Doctor(args) => match doctor(args) {
            Ok(true) => Ok(()),
            // The findings said why; no extra error line.
            Ok(false) => return ExitCode::FAILURE,
            Err(err) => Err(err),
        },
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
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match &args.slb_state {
        None => {
            let report = slb_sync::offline::plan(&snapshot, args.planner.config());
            serde_json::to_writer_pretty(&mut out, &report)
        }
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the SLB state file {}", path.display()))?;
            let state = slb_sync::plan::SlbState::from_json(&text)
                .with_context(|| format!("the SLB state file {} is not usable", path.display()))?;
            let now = args.now.unwrap_or_else(jiff::Timestamp::now);
            let report = slb_sync::offline::plan_steps(
                &snapshot,
                args.planner.config(),
                &state,
                now,
                args.default_drain_seconds,
            )
            .with_context(|| format!("the SLB state file {} is not usable", path.display()))?;
            serde_json::to_writer_pretty(&mut out, &report)
        }
    }
    .context("cannot write the plan")?;
    writeln!(out).context("cannot write the plan")?;
    out.flush().context("cannot write the plan")?;
    Ok(())
}

/// Returns whether the workloads passed (no error findings).
fn doctor(args: DoctorArgs) -> anyhow::Result<bool> {
    let snapshot = slb_sync::offline::load_paths_with_workloads(&args.paths)
        .context("cannot read the Kubernetes objects given to doctor")?;
    let config = slb_sync::doctor::DoctorConfig {
        lb_class: args.lb_class,
        manage_unclassed: args.manage_unclassed,
        default_drain_secs: args.default_drain_seconds,
    };
    let report = slb_sync::doctor::audit(&snapshot, &config);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match args.output {
        DoctorOutput::Table => slb_sync::doctor::render_table(&report, &mut out),
        DoctorOutput::Json => slb_sync::doctor::render_json(&report, &mut out),
    }
    .context("cannot write the doctor report")?;
    out.flush().context("cannot write the doctor report")?;
    Ok(!report.has_errors())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every flag can be set from the environment (how the agent is configured in a pod).
    #[test]
    fn every_flag_reads_an_slb_sync_env_var() {
        let cli = Cli::command();
        for sub in cli.get_subcommands() {
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
                assert!(
                    env.as_deref().is_some_and(|e| e.starts_with("SLB_SYNC_")),
                    "{} --{id} has env {env:?}",
                    sub.get_name()
                );
            }
        }
    }

    #[test]
    fn planner_defaults_match_the_documented_ones() {
        let cli = Cli::command();
        let plan = cli.find_subcommand("plan").unwrap();
        let default = |id: &str| {
            let arg = plan.get_arguments().find(|a| a.get_id() == id).unwrap();
            arg.get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        };
        let config = PlannerConfig::default();
        assert_eq!(default("cluster_id"), [config.cluster_id]);
        assert_eq!(default("lb_class"), [config.lb_class]);
    }

    #[test]
    fn plan_flags_become_the_planner_config() {
        let cli = Cli::try_parse_from([
            "slb-sync",
            "plan",
            "--offline",
            "a.yaml",
            "dir/",
            "--cluster-id",
            "prod-hz",
            "--lb-class",
            "example.com/lb",
            "--manage-unclassed",
        ])
        .unwrap();
        let Command::Plan(args) = cli.command else {
            panic!("parsed as plan");
        };
        assert_eq!(
            args.offline,
            [PathBuf::from("a.yaml"), PathBuf::from("dir/")]
        );
        assert_eq!(
            args.planner.config(),
            PlannerConfig {
                cluster_id: "prod-hz".to_owned(),
                lb_class: "example.com/lb".to_owned(),
                manage_unclassed: true,
            }
        );
    }
}
