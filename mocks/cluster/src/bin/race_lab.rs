//! The race lab: rolling updates under load through the mock SLB, three modes × three
//! policies (`naive`, `sleep`, `slb-sync`), repeated over seeds; prints a table and
//! optionally writes JSON. `cargo run --release -p mock-cluster --bin race-lab -- --help`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use futures::StreamExt;
use mock_cluster::baseline::BackendMode;
use mock_cluster::delay::Delay;
use mock_cluster::scenario::{Policy, Scenario};

#[path = "race_lab/report.rs"]
mod report;
use mock_cluster::subnet;
use mock_cluster::world::{World, PRESETS};
use report::Cell;
use serde_json::json;
use slb_sync::agent::health::GateOn;

/// Rolling updates behind the mock SLB, with and without slb-sync, on a simulated cluster.
///
/// The world a run meets (delays, SLB propagation, health check, API faults, load,
/// timings) is a scenario: `--list-scenarios` names the built-in ones, `--scenario
/// NAME|FILE` picks one (default `kind`, described below; files as in
/// mocks/cluster/scenarios/).
///
/// Every run: 3 nodes, a Deployment-style rollout (maxSurge 1, maxUnavailable 0; Cluster
/// and ENI 3 replicas spread, Local 2 replicas one per node) under load through the SLB
/// listener (a short request every 10 ms on a new connection, 4 keep-alive clients
/// every 20 ms, 2 long-poll clients whose polls the app holds 0.5–3 s). Each seed redraws
/// endpoint lag (20–100 ms), kube-proxy lag (20–300 ms), baseline controller lag
/// (100–400 ms), app start-up (200–800 ms), response time and the long polls' holds.
///
/// Shortened to keep the default run under 3 minutes on 2 cores: the agent's drain
/// window is 1 s (production: the listener's ConnectionDrainTimeout, 10–900 s), the
/// `sleep` policy's preStop sleeps 2 s (advice: 15–30 s), SLB propagation is 300 ms, the
/// leader lease 5 s, the agent's kube-proxy allowance and SLB propagation allowance 1 s
/// each (production defaults 5 s; above the lab's 0.1 s endpoint + 0.3 s kube-proxy lag
/// and its 0.3 s propagation). `slb-sync` and `sleep` run the listener with
/// ConnectionDrain on (10 s); `naive` and `sleep-stock` the stock listener (drain off).
#[derive(Debug, Parser)]
#[command(name = "race-lab")]
struct Args {
    /// The world the runs meet: a built-in preset (`--list-scenarios`) or a YAML file
    /// in the presets' format (mocks/cluster/scenarios/).
    #[arg(long, default_value = "kind", value_name = "NAME|FILE")]
    scenario: String,
    /// Prints the built-in scenarios and exits.
    #[arg(long)]
    list_scenarios: bool,
    /// Seeds per mode × policy (delays are redrawn per seed).
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// Policies to run (repeat or comma-separate); default all three.
    #[arg(long, value_enum, value_delimiter = ',')]
    policy: Vec<PolicyArg>,
    /// Modes to run (repeat or comma-separate); default all four: `local` is one pod per
    /// node (2 replicas, 3 nodes: a surge pod lands on an empty node), `local-in-place`
    /// the in-place layout (3 replicas on a 2-node pool).
    #[arg(long, value_enum, value_delimiter = ',')]
    mode: Vec<ModeArg>,
    /// Also write every run and the totals as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Long-poll clients (the scenario's, 2 in `kind`): keep-alive connections whose
    /// requests the app holds for a drawn time (`--long-poll-ms`); the requests a removal
    /// without drain cuts.
    #[arg(long, value_name = "N")]
    long_polls: Option<usize>,
    /// Range of a long poll's hold in milliseconds, `MIN,MAX` (the scenario's, 500,3000
    /// in `kind`).
    #[arg(long, value_name = "MIN,MAX", value_delimiter = ',', num_args = 2)]
    long_poll_ms: Vec<u64>,
    /// Runs at a time (each on its own loopback subnet); 1 runs them one after another.
    /// Overlapping runs share this process's 2 worker threads and the machine's CPU: on 2
    /// cores `--jobs 2` halves the wall time with failure counts within seed noise but
    /// higher p99 and rollout maxima; the README's tables use 1.
    #[arg(long, default_value_t = 1, value_name = "N")]
    jobs: usize,
    /// The SLB listener's health check: the scenario's (default), `off`, or on with a
    /// backend not yet checked either getting connections (`serves`) or held out until
    /// normal (`held-out`; how CLB treats such a backend is undocumented, so the lab
    /// plays both). On where the scenario has none: a TCP connect every second, normal
    /// after 2 successes, abnormal after 2 failures.
    #[arg(long, value_enum)]
    health_check: Option<HealthCheckArg>,
    /// What slb-sync's readiness gates wait for (`--gate-on` of `slb-sync run`).
    #[arg(long, value_enum, default_value = "healthy")]
    gate_on: GateOn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum HealthCheckArg {
    Off,
    Serves,
    HeldOut,
}

impl HealthCheckArg {
    /// The check with this switch, on `world`'s check where it has one.
    fn check(
        self,
        world: Option<mock_slb::state::HealthCheck>,
    ) -> Option<mock_slb::state::HealthCheck> {
        let unchecked_serves = match self {
            HealthCheckArg::Off => return None,
            HealthCheckArg::Serves => true,
            HealthCheckArg::HeldOut => false,
        };
        let check = world.unwrap_or(mock_slb::state::HealthCheck {
            interval_ms: 1_000,
            timeout_ms: 500,
            healthy_threshold: 2,
            unhealthy_threshold: 2,
            unchecked_serves,
        });
        Some(mock_slb::state::HealthCheck {
            unchecked_serves,
            ..check
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PolicyArg {
    Naive,
    /// The seed's full remedy: readinessProbe, preStop sleep, grace = sleep + 30 s and
    /// the listener's connection drain on.
    Sleep,
    /// As `sleep` with the stock listener (connection drain off).
    SleepStock,
    SlbSync,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    Cluster,
    Local,
    /// Local mode, in-place layout (3 replicas, 2-node pool).
    LocalInPlace,
    Eni,
}

impl PolicyArg {
    fn policy(self, timings: &mock_cluster::world::Timings) -> Policy {
        Policy::of(self.shape(), timings)
    }

    fn shape(self) -> Policy {
        match self {
            PolicyArg::Naive => Policy::Naive,
            // The numbers come from the scenario's timings (`Policy::of`).
            PolicyArg::Sleep => Policy::Sleep {
                seconds: 0,
                drain: true,
            },
            PolicyArg::SleepStock => Policy::Sleep {
                seconds: 0,
                drain: false,
            },
            PolicyArg::SlbSync => Policy::SlbSync {
                drain_secs: 0,
                wait_secs: 0,
            },
        }
    }
}

impl ModeArg {
    fn name(self) -> &'static str {
        match self {
            ModeArg::Cluster => "cluster",
            ModeArg::Local => "local",
            ModeArg::LocalInPlace => "local-ip",
            ModeArg::Eni => "eni",
        }
    }

    fn scenario(self, policy: Policy, seed: u64, subnet: u8) -> Scenario {
        match self {
            ModeArg::Cluster => Scenario::new(BackendMode::Cluster, policy, seed, subnet),
            ModeArg::Local => Scenario::new(BackendMode::Local, policy, seed, subnet),
            ModeArg::LocalInPlace => Scenario::local_in_place(policy, seed, subnet),
            ModeArg::Eni => Scenario::new(BackendMode::Eni, policy, seed, subnet),
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    // `RACE_LAB_LOG=slb_sync=debug` shows what the agent did in each run (stderr).
    if let Ok(filter) = std::env::var("RACE_LAB_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    if args.list_scenarios {
        for (name, yaml) in PRESETS {
            match World::parse(yaml, name) {
                Ok(w) => println!("{name:<20} {}", w.description),
                Err(e) => println!("{name:<20} (invalid: {e})"),
            }
        }
        return ExitCode::SUCCESS;
    }
    let world = match World::load(&args.scenario) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let policies = if args.policy.is_empty() {
        vec![PolicyArg::Naive, PolicyArg::Sleep, PolicyArg::SlbSync]
    } else {
        args.policy.clone()
    };
    let modes = if args.mode.is_empty() {
        vec![
            ModeArg::Cluster,
            ModeArg::Local,
            ModeArg::LocalInPlace,
            ModeArg::Eni,
        ]
    } else {
        args.mode.clone()
    };
    let started = Instant::now();
    let mut cells: Vec<(&str, &str, Cell)> = Vec::new();
    let mut jobs = Vec::new();
    for m in &modes {
        for p in &policies {
            let policy = p.policy(&world.timings);
            for seed in args.first_seed..args.first_seed + args.seeds {
                // The subnet is claimed when the run starts.
                let mut scenario = m.scenario(policy, seed, 0).with_world(&world);
                if let Some(h) = args.health_check {
                    scenario.health_check = h.check(world.slb.health_check);
                }
                scenario.gate_on = args.gate_on;
                if let Some(n) = args.long_polls {
                    scenario.load.slow_conns = n;
                }
                if let [min, max] = args.long_poll_ms[..] {
                    scenario.load.slow_delay =
                        Delay::between(Duration::from_millis(min), Duration::from_millis(max));
                }
                jobs.push((cells.len(), scenario));
            }
            cells.push((m.name(), policy.name(), Cell::default()));
        }
    }
    let total = jobs.len();
    let mut runs_json = Vec::new();
    let mut done = 0usize;
    // Each run claims its own loopback subnet (127.<subnet>.x.y) for as long as it lasts,
    // the next one after the previous run's, so a late connection of one run never
    // reaches another run's pods, also when runs overlap (`--jobs`) or another lab
    // process runs next to this one.
    let next_subnet = std::cell::Cell::new(101u8);
    let mut results = futures::stream::iter(jobs)
        .map(|(cell, mut scenario)| {
            let claim = subnet::claim_from(next_subnet.get());
            if let Ok(c) = &claim {
                next_subnet.set(if c.subnet >= *subnet::SUBNETS.end() {
                    *subnet::SUBNETS.start()
                } else {
                    c.subnet + 1
                });
            }
            async move {
                let t0 = Instant::now();
                let seed = scenario.sim.seed;
                let result = match claim {
                    Ok(claim) => {
                        scenario.sim.subnet = claim.subnet;
                        let r = scenario.run().await.map_err(|e| e.to_string());
                        drop(claim);
                        r
                    }
                    Err(e) => Err(e.to_string()),
                };
                (cell, seed, result, t0.elapsed())
            }
        })
        .buffer_unordered(args.jobs.max(1));
    while let Some((i, seed, result, took)) = results.next().await {
        done += 1;
        let (mname, pname, cell) = &mut cells[i];
        let (mname, pname) = (*mname, *pname);
        cell.runs += 1;
        match result {
            Ok(out) => {
                let failed = out.load.failed();
                eprintln!(
                    "[{done}/{total} {:>5.0}s] {mname:<7} {pname:<11} seed {seed:<3} requests {:>5} failed {:>4} rollout {:>6.2}s ({:.1}s)",
                    started.elapsed().as_secs_f64(),
                    out.load.requests,
                    failed,
                    out.rollout.as_secs_f64(),
                    took.as_secs_f64()
                );
                if failed > 0 {
                    eprintln!(
                        "    failures {:?}; slb refused/connect-failed/cut {:?}; first: {:?}",
                        out.load.failures, out.slb_refused_failed_cut, out.load.samples
                    );
                }
                cell.add(&out);
                if out.fail_open.finalizers + out.fail_open.gates > 0 {
                    eprintln!(
                        "    fail-open releases: {} finalizer(s), {} gate(s)",
                        out.fail_open.finalizers, out.fail_open.gates
                    );
                }
                runs_json.push((i, seed, report::run_json(mname, pname, seed, &out)));
            }
            Err(e) => {
                eprintln!("[{done}/{total}] {mname} {pname} seed {seed}: run failed: {e}");
                cell.errors += 1;
                runs_json.push((
                    i,
                    seed,
                    json!({"mode": mname, "policy": pname,
                    "seed": seed, "error": e}),
                ));
            }
        }
    }
    drop(results);
    // Table order, whatever order the runs finished in.
    runs_json.sort_by_key(|(i, seed, _)| (*i, *seed));
    let runs_json: Vec<_> = runs_json.into_iter().map(|(_, _, v)| v).collect();

    let totals_json = report::print_tables(&cells, args.seeds, args.first_seed);
    let run_errors: u64 = cells.iter().map(|(_, _, c)| c.errors).sum();
    eprintln!("done in {:.0}s", started.elapsed().as_secs_f64());
    if let Some(path) = &args.json {
        let doc = json!({"scenario": world, "seeds": args.seeds, "first_seed": args.first_seed,
                         "totals": totals_json, "runs": runs_json});
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if run_errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
