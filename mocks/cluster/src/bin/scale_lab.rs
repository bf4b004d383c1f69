//! The scale lab: the real agent against a generated cluster under an API budget.
//! `cargo run --release -p mock-cluster --bin scale-lab -- --help`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use mock_cluster::scale::full::{self, FullOptions};
use mock_cluster::scale::rollout::{self, RolloutOptions};
use mock_cluster::scale::spec::{Spec, Tier};
use mock_cluster::scale::{procs, serve};

#[path = "scale_lab/heap.rs"]
mod heap;

/// The real slb-sync agent, in this process, against mock-kube and mock-slb (child
/// processes) loaded with a generated cluster, with an account-wide SLB API budget
/// (the agent's `--qps`/`--burst` and mock-slb's limit alike). Figures are against that
/// budget; memory and CPU are per process (this one: the agent and the lab's driver;
/// the agent's own threads are named `agent`, their CPU is reported apart).
///
/// Presets:
///
/// rollout-400: 400 Cluster-mode Services (2 pods each, 10 nodes), each on its own SLB
/// instance, and one ENI Service (drain window 10 s, its listener with connection drain).
/// Its pods are deleted with a 30 s grace period, preStop `wait-drained` (the lab's
/// kubelet waits for the agent's `slb-sync.io/drained` condition, at most 25 s), in four
/// situations, each on a fresh agent: during its cold start, at a resync tick
/// (`--resync-seconds 90`), in steady state with `--resync-seconds 60`, and idle (the
/// cold start ends when every group has been read, as the SLB saw it). For each
/// deletion: delete → the weight-0 call and → the removal call (when the SLB answered
/// them; p50/p99/max over the deletions), and whether the drain was confirmed or the pod
/// released at its fail-open deadline; per situation, the readiness gates the agent
/// closed on running pods. Default budget 5 calls/s, burst 10 (the agent's defaults).
/// About 14 minutes, most of it the idle agent's cold start, which reads every group at
/// the default resync spacing; `--situations` runs some of them.
///
/// full: 5,000 nodes (50 pools), 150,000 pods, 10,000 Services (100 Cluster on one pool
/// each, 3,900 Local, 6,000 ENI; one SLB instance each), phases on fresh agents: (a) cold
/// start with the SLB in sync: reads per group, writes, time to verify every group
/// against reads ÷ budget, and the initial list; (b) cold start with 5% of groups drifted:
/// writes against the least the drift needs; (c) 100 deletions and 100 creations across
/// 20 Services (ENI and Local) while the cold start's full pass runs at `--qps-c` (5):
/// delete → weight-0 call, ContainersReady → gate True, lone deletions, pod-facing calls
/// against their slots, bulk calls among them, fail-open releases; (d) 100 nodes of a pool
/// drained one after another (taint, cordon, eviction with preStop, node deletion): writes
/// against 2 per group per drained node. Every phase: peak RSS and CPU seconds of each
/// process (`--agent-process`: the agent as `slb-sync run` in a process of its own, phases
/// a and b only). `--components` adds the heap of the agent's reflector stores and of its
/// cluster index, rebuilt from the same lists. At the default 50 calls/s about 30 minutes.
#[derive(Debug, Parser)]
#[command(name = "scale-lab", verbatim_doc_comment)]
struct Args {
    #[command(subcommand)]
    role: Option<Role>,
    #[arg(long, value_enum, default_value_t = Preset::Rollout400)]
    preset: Preset,
    /// API budget, calls per second (rollout-400: 5; full: 50, phases a, b and d).
    #[arg(long)]
    qps: Option<f64>,
    /// Calls at once after a quiet period (rollout-400: 10; full: 100).
    #[arg(long)]
    burst: Option<u32>,
    /// full: budget of phase c.
    #[arg(long, default_value_t = 5.0)]
    qps_c: f64,
    /// full: phases to run, e.g. `ac` (none, `''`, with `--components`: the heap alone).
    #[arg(long, default_value = "abcd")]
    phases: String,
    /// rollout-400: Cluster-mode Services.
    #[arg(long, default_value_t = 400)]
    cluster_services: usize,
    /// rollout-400: deletions per situation, one every `--interval` seconds.
    #[arg(long, default_value_t = 20)]
    deletions: usize,
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
    /// rollout-400: the situations to run, of cold, tick, steady, idle (e.g. `tick,steady`).
    #[arg(long, value_delimiter = ',')]
    situations: Vec<String>,
    /// Drain window, seconds (rollout-400: the ENI listener's; full: `--default-drain-seconds`).
    #[arg(long, default_value_t = 10)]
    drain_secs: u32,
    /// The agent's `--finalizer-grace-margin-seconds`.
    #[arg(long, default_value_t = 10)]
    margin_secs: u64,
    /// full: nodes, pools, and Services per mode with pods each.
    #[arg(long)]
    nodes: Option<usize>,
    #[arg(long)]
    pools: Option<usize>,
    #[arg(long)]
    cluster: Option<usize>,
    #[arg(long)]
    local: Option<usize>,
    #[arg(long)]
    eni: Option<usize>,
    #[arg(long)]
    pods_per_service: Option<usize>,
    /// full, phase d: nodes drained, seconds between two drain starts.
    #[arg(long, default_value_t = 100)]
    drained_nodes: usize,
    #[arg(long, default_value_t = 3.0)]
    node_interval: f64,
    /// full: measure the heap of the agent's stores and index (rebuilt from the lists).
    #[arg(long)]
    components: bool,
    /// full, phases a and b: run the agent as `slb-sync run` in a process of its own (the
    /// binary next to this one, or `--agent-bin`), so its peak RSS and CPU are its own.
    /// Phases c and d are skipped (they read the in-process agent's SLB call log).
    #[arg(long)]
    agent_process: bool,
    #[arg(long, value_name = "FILE")]
    agent_bin: Option<PathBuf>,
    /// Another `slb-sync run` flag for every agent (repeat; `--agent-flag=--qps`).
    #[arg(long = "agent-flag", allow_hyphen_values = true)]
    agent_flags: Vec<String>,
    /// Also write the figures as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// full, phase c: write where the seconds went, a line per pod of the burst (its
    /// endpoint write, gate, weight-0 call) and per SLB call (issued, answered, and its
    /// lane when issued).
    #[arg(long, value_name = "FILE")]
    burst_log: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Preset {
    #[value(name = "rollout-400")]
    Rollout400,
    Full,
}

#[derive(Debug, Subcommand)]
enum Role {
    /// Serves the generated cluster from mock-kube (a child process of the lab).
    #[command(hide = true)]
    ServeKube {
        #[arg(long)]
        spec: String,
    },
    /// Serves the generated SLB from mock-slb (a child process of the lab).
    #[command(hide = true)]
    ServeSlb {
        #[arg(long)]
        spec: String,
        #[arg(long)]
        qps: f64,
        #[arg(long)]
        burst: f64,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    // The agent's own log lines (cold start, resync behind, fail-open) on stderr.
    slb_sync::logging::init(
        slb_sync::logging::LogFormat::Text,
        "warn,slb_sync::agent=info",
    );
    procs::set_heap_probe(heap::live_bytes);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(if args.role.is_some() { 2 } else { 1 })
        .thread_name("driver")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("scale-lab: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scale-lab: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    match &args.role {
        Some(Role::ServeKube { spec }) => return serve::kube(&serde_json::from_str(spec)?).await,
        Some(Role::ServeSlb { spec, qps, burst }) => {
            return serve::slb(&serde_json::from_str(spec)?, *qps, *burst).await
        }
        None => {}
    }
    let json = match args.preset {
        Preset::Rollout400 => {
            let o = RolloutOptions {
                qps: args.qps.unwrap_or(5.0),
                burst: args.burst.unwrap_or(10),
                cluster_services: args.cluster_services,
                deletions: args.deletions,
                interval: args.interval,
                drain_secs: args.drain_secs,
                margin_secs: args.margin_secs,
                agent_flags: args.agent_flags.clone(),
                situations: args.situations.clone(),
            };
            if let Some(bad) = o
                .situations
                .iter()
                .find(|s| !rollout::SITUATIONS.contains(&s.as_str()))
            {
                return Err(format!(
                    "unknown situation {bad:?}; known: {}",
                    rollout::SITUATIONS.join(", ")
                )
                .into());
            }
            let rows = rollout::run(&o).await?;
            println!(
                "rollout-400: {} Cluster Services + 1 ENI Service, budget {} calls/s burst {}, grace 30 s, drain window {} s; p50 / p99 / max over {} deletions each",
                o.cluster_services, o.qps, o.burst, o.drain_secs, o.deletions
            );
            for r in &rows {
                println!("{}", rollout::show_row(r));
            }
            serde_json::to_value(&rows)?
        }
        Preset::Full => {
            let mut spec = full::envelope();
            let pods = args.pods_per_service.unwrap_or(spec.eni.pods);
            spec.nodes = args.nodes.unwrap_or(spec.nodes);
            spec.pools = args.pools.unwrap_or(spec.pools);
            spec.cluster = Tier {
                services: args.cluster.unwrap_or(spec.cluster.services),
                pods,
            };
            spec.local = Tier {
                services: args.local.unwrap_or(spec.local.services),
                pods,
            };
            spec.eni = Tier {
                services: args.eni.unwrap_or(spec.eni.services),
                pods,
            };
            let o = FullOptions {
                spec: spec.clone(),
                qps: args.qps.unwrap_or(50.0),
                burst: args.burst.unwrap_or(100),
                qps_c: args.qps_c,
                phases: args.phases.chars().collect(),
                drain_secs: args.drain_secs,
                margin_secs: args.margin_secs,
                agent_flags: args.agent_flags.clone(),
                burst_services: 20,
                per_service: 5,
                lone: 5,
                drained_nodes: args.drained_nodes,
                node_interval: args.node_interval,
                agent_bin: match (&args.agent_bin, args.agent_process) {
                    (Some(bin), _) => Some(bin.clone()),
                    (None, true) => Some(mock_cluster::scale::agent_process::default_bin()),
                    (None, false) => None,
                },
                burst_log: args.burst_log.clone(),
            };
            print_spec(&spec);
            // `--phases ''` with `--components`: the components' heap alone, no agent run.
            let phases = if o.phases.is_empty() {
                Vec::new()
            } else {
                full::run(&o).await?
            };
            for p in &phases {
                println!("{}", full::show(p));
            }
            let components = if args.components {
                let c = heap::components(&spec).await?;
                for (name, mib, count) in &c {
                    let each = if *count > 0 {
                        format!(" ({:.2} KiB each)", mib * 1024.0 / *count as f64)
                    } else {
                        String::new()
                    };
                    println!("component {name}: {mib:.1} MiB{each}");
                }
                c
            } else {
                Vec::new()
            };
            serde_json::json!({"phases": phases, "components": components})
        }
    };
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&json)?)?;
    }
    Ok(())
}

fn print_spec(spec: &Spec) {
    let pods: usize = (0..spec.services()).map(|s| spec.pods_of(s)).sum();
    println!(
        "full: {} nodes in {} pools, {} Services (Cluster {}, Local {}, ENI {}), {} pods, {} SLB instances; machine: {} cores",
        spec.nodes,
        spec.pools,
        spec.services(),
        spec.cluster.services,
        spec.local.services,
        spec.eni.services,
        pods,
        spec.services().div_ceil(spec.packing.max(1)),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
}
