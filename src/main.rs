//! `slb-sync` command line: wiring only; the work lives in the library.
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use slb_sync::agent::cli::{PlannerArgs, RunArgs};
use slb_sync::agent::PodSideChoice;
use slb_sync::demo::DemoArgs;
use slb_sync::doctor::cli::{DoctorArgs, DoctorOutput};
use slb_sync::logging::LogFormat;
use slb_sync::slb::{RpcSlbClient, SlbApi, SlbMetrics};
use std::sync::Arc;

/// Keeps Alibaba Cloud SLB backend groups in sync with Kubernetes so rolling updates lose
/// no requests.
#[derive(Debug, Parser)]
#[command(name = "slb-sync", version, about)]
struct Cli {
    /// Log lines on stderr as text (coloured only on a terminal) or as one JSON object
    /// per line.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "SLB_SYNC_LOG_FORMAT",
        default_value_t = LogFormat::Text
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent: watch the cluster and keep the SLB backend groups of managed
    /// Services in sync (make before break, drain, remove), as the leader of its replicas.
    ///
    /// Every replica keeps its caches warm and serves /metrics, /healthz, /readyz and the
    /// drain API on --http-addr; only the holder of the leader Lease writes to the SLB and
    /// to the cluster. Stops on SIGTERM or Ctrl-C: running passes get a few seconds to
    /// finish, then the lease is released.
    Run(Box<RunArgs>),
    /// Print the desired SLB backends of every managed Service as JSON.
    Plan(PlanArgs),
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
    WaitDrained(WaitDrainedArgs),
    /// Remove the agent's finalizers from every pod and Service (uninstall, stuck pods).
    ///
    /// Removes `slb-sync.io/drain` from pods and `slb-sync.io/cleanup` from Services in all
    /// namespaces, printing one line per object changed. Reads the cluster from KUBECONFIG
    /// or the in-cluster service account. Stop the agent first, or it adds them back.
    ReleaseFinalizers(ReleaseFinalizersArgs),
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

#[derive(Debug, Args)]
struct WaitDrainedArgs {
    /// The agent's HTTP address, e.g. http://slb-sync.kube-system.svc:8080.
    #[arg(long, value_name = "URL", env = "SLB_SYNC_AGENT")]
    agent: String,
    /// This pod's namespace (downward API `metadata.namespace`).
    #[arg(long, value_name = "NS", env = "POD_NAMESPACE")]
    namespace: Option<String>,
    /// This pod's name (downward API `metadata.name`).
    #[arg(long, value_name = "NAME", env = "POD_NAME")]
    pod: Option<String>,
    /// Give up after this many seconds; keep it below terminationGracePeriodSeconds.
    #[arg(long, value_name = "SECONDS", env = "SLB_SYNC_WAIT_TIMEOUT")]
    timeout: String,
}

#[derive(Debug, Args)]
struct ReleaseFinalizersArgs {
    /// Only print what would be removed.
    #[arg(
        long,
        env = "SLB_SYNC_DRY_RUN",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    dry_run: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // doctor reports a failed API call itself, with the fix; kube's own log line about it
    // would only repeat it, less clearly.
    let default_filter = match cli.command {
        Command::Doctor(_) => "warn,kube_client=off",
        _ => "warn",
    };
    slb_sync::logging::init(cli.log_format, default_filter);
    let result = match cli.command {
        Command::Run(args) => run(*args),
        Command::Plan(args) => plan(args),
        Command::Doctor(args) => match doctor(args) {
            Ok(true) => Ok(()),
            // The findings said why; no extra error line.
            Ok(false) => return ExitCode::FAILURE,
            Err(err) => Err(err),
        },
        Command::WaitDrained(args) => match wait_drained(args) {
            Ok(code) => return code,
            Err(err) => Err(err),
        },
        Command::ReleaseFinalizers(args) => release_finalizers(args),
        Command::Demo(args) => match demo(args) {
            // The lab printed its own table and errors.
            Ok(code) => return code,
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

/// The runtime of the one-shot subcommands (doctor --live, wait-drained,
/// release-finalizers).
fn current_thread_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_agent(args))
}

async fn run_agent(args: RunArgs) -> anyhow::Result<()> {
    let client = kube_client(args.kubeconfig.as_deref()).await?;
    let registry = prometheus::Registry::new();
    let mut config = args.agent_config(registry.clone())?;
    if config.leader.namespace.is_empty() {
        // In a pod, the service account's namespace; else the kubeconfig context's.
        config.leader.namespace = client.default_namespace().to_owned();
    }
    let slb_metrics = SlbMetrics::register(&registry).context("cannot register SLB metrics")?;
    let credentials = args
        .credentials()
        .build()
        .context("cannot set up Alibaba Cloud credentials")?;
    // One budget for every HTTP request to the SLB and ECS APIs, shared with the
    // executor's scheduler (lanes and fairness).
    let budget = Arc::new(slb_sync::slb::budget::Budget::new(
        config.limits.qps,
        config.limits.burst,
    ));
    let slb: Arc<dyn SlbApi> = Arc::new(
        RpcSlbClient::new(args.rpc_config(), credentials)
            .with_metrics(slb_metrics)
            .with_budget(budget),
    );
    let pod_side = PodSideChoice::Lifecycle {
        fail_open_margin: std::time::Duration::from_secs(args.finalizer_grace_margin_seconds),
    };
    slb_sync::agent::run(config, client, slb, pod_side, shutdown_signal())
        .await
        .context("the agent stopped")
}

/// SIGTERM (the kubelet stopping the pod) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot listen for SIGTERM; Ctrl-C only");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested");
}

async fn kube_client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<kube::Client> {
    let config = kube_config(kubeconfig).await?;
    kube::Client::try_from(config).context("cannot build the Kubernetes client")
}

/// The connection settings from `kubeconfig`, or KUBECONFIG / ~/.kube/config / in-cluster.
async fn kube_config(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<kube::Config> {
    Ok(match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &Default::default())
                .await
                .with_context(|| format!("the kubeconfig {} is not usable", path.display()))?
        }
        None => kube::Config::infer().await.context(
            "cannot find the cluster: set --kubeconfig / KUBECONFIG or run inside a pod \
             with a service account",
        )?,
    })
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
    let config = args.config();
    let snapshot = if args.live {
        doctor_live(&args, &config)?
    } else {
        slb_sync::offline::load_paths_with_workloads(&args.paths)
            .context("cannot read the Kubernetes objects given to doctor")?
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

/// Reads what `doctor` audits from the cluster; notes about the read go to stderr.
fn doctor_live(
    args: &DoctorArgs,
    config: &slb_sync::doctor::DoctorConfig,
) -> anyhow::Result<slb_sync::offline::ClusterSnapshot> {
    let runtime = current_thread_runtime()?;
    runtime.block_on(async {
        let kube_config = kube_config(args.kubeconfig.as_deref()).await.context(
            "doctor --live needs a cluster connection (or audit manifest files instead: \
             slb-sync doctor PATH...)",
        )?;
        let server = kube_config.cluster_url.to_string();
        let client =
            kube::Client::try_from(kube_config).context("cannot build the Kubernetes client")?;
        let live = slb_sync::doctor::live::load(&client, &server, &args.live_options(), config)
            .await
            .context("cannot read the cluster for doctor")?;
        for note in &live.notes {
            eprintln!("warning: {note}");
        }
        Ok(live.snapshot)
    })
}

/// `wait-drained`'s exit status when the agent released the pod without a confirmed
/// drain (distinct from 0, a drain, and from 1, no answer).
const RELEASED_EXIT: u8 = 3;

fn wait_drained(args: WaitDrainedArgs) -> anyhow::Result<ExitCode> {
    let wait = slb_sync::http::wait_drained::WaitDrained::new(
        &args.agent,
        args.namespace,
        args.pod,
        &args.timeout,
    )?;
    let runtime = current_thread_runtime()?;
    let state = runtime.block_on(wait.run())?;
    if state == slb_sync::k8s::drain_state::DrainState::Released {
        eprintln!(
            "pod {}/{} was released by the agent without a confirmed drain (fail-open): the \
             SLB may still have sent it traffic; see the pod's FailOpenRelease Event",
            wait.namespace, wait.pod
        );
        return Ok(ExitCode::from(RELEASED_EXIT));
    }
    println!("pod {}/{} is {state}", wait.namespace, wait.pod);
    Ok(ExitCode::SUCCESS)
}

/// The lab printed its own table and errors: its exit status is the demo's.
fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let status = slb_sync::demo::run(&args)?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

fn release_finalizers(args: ReleaseFinalizersArgs) -> anyhow::Result<()> {
    let runtime = current_thread_runtime()?;
    runtime.block_on(async {
        let client = kube::Client::try_default().await.context(
            "cannot connect to the cluster; set KUBECONFIG or run inside a pod with a \
             service account",
        )?;
        let result = slb_sync::k8s::release::release_all(client, args.dry_run, |released| {
            println!("{released}")
        })
        .await;
        match result {
            Ok(count) => {
                eprintln!(
                    "{count} finalizer(s) {}",
                    if args.dry_run {
                        "would be removed"
                    } else {
                        "removed"
                    }
                );
                Ok(())
            }
            Err(errors) => {
                for err in &errors {
                    eprintln!("error: {err}");
                }
                bail!(
                    "{} object(s) could not be released; see above",
                    errors.len()
                )
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;
    use slb_sync::desired::PlannerConfig;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every flag can be set from the environment (how the agent is configured in a pod);
    /// the pod's own name and namespace come from the downward API's usual variables.
    #[test]
    fn every_flag_reads_an_slb_sync_env_var() {
        const DOWNWARD_API: [&str; 2] = ["POD_NAMESPACE", "POD_NAME"];
        // Variables the Kubernetes and Alibaba Cloud tools already use.
        const STANDARD: [&str; 2] = ["KUBECONFIG", "ALIBABA_CLOUD_"];
        let cli = Cli::command();
        for sub in cli.get_subcommands() {
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
                assert!(
                    env.as_deref().is_some_and(|e| e.starts_with("SLB_SYNC_")
                        || DOWNWARD_API.contains(&e)
                        || STANDARD.iter().any(|s| e.starts_with(s))),
                    "{} --{id} has env {env:?}",
                    sub.get_name()
                );
            }
        }
    }

    #[test]
    fn run_documents_every_flag_and_defaults_to_the_documented_values() {
        let cli = Cli::command();
        let run = cli.find_subcommand("run").unwrap();
        for arg in run.get_arguments() {
            let id = arg.get_id().as_str();
            assert!(
                id == "help" || arg.get_help().is_some(),
                "run --{id} has no help text"
            );
        }
        let cli = Cli::try_parse_from(["slb-sync", "run", "--region", "cn-hangzhou"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("parsed as {:?}", cli.command)
        };
        let config = args
            .agent_config(prometheus::Registry::new())
            .expect("metrics register");
        assert_eq!(config.default_drain_secs, 30);
        assert_eq!(config.resync, std::time::Duration::from_secs(600));
        assert_eq!(
            config.kube_proxy_allowance,
            slb_sync::agent::pods::allowance::DEFAULT_KUBE_PROXY_ALLOWANCE
        );
        assert_eq!(config.http_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(config.leader.lease_name, "slb-sync");
        assert_eq!(config.planner, PlannerConfig::default());
        assert_eq!(args.rpc_config().region_id, "cn-hangzhou");
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
            panic!("parsed as {:?}", cli.command)
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
