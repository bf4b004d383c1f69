//! The race lab: rolling updates under load through the mock SLB, three modes × three
//! policies (`naive`, `sleep`, `slb-sync`), repeated over seeds; prints a table and
//! optionally writes JSON. `cargo run --release -p mock-cluster --bin race-lab -- --help`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use futures::StreamExt;
use mock_cluster::baseline::BackendMode;
use mock_cluster::delay::Delay;
use mock_cluster::load::Cause;
use mock_cluster::scenario::{Policy, Scenario};
use mock_cluster::subnet;
use mock_cluster::world::{World, PRESETS};
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

/// Totals of one mode × policy over its seeds.
#[derive(Debug, Default)]
struct Cell {
    runs: u64,
    errors: u64,
    requests: u64,
    failures: BTreeMap<Cause, u64>,
    /// Runs with at least one failure of each cause.
    seeds_by_cause: BTreeMap<Cause, u64>,
    seeds_with_failures: u64,
    p50s: Vec<Duration>,
    p99s: Vec<Duration>,
    rollouts: Vec<Duration>,
    /// Every rollout pod's delete → stopped and start → Ready, over the seeds.
    held: Vec<Duration>,
    to_ready: Vec<Duration>,
    killed: u64,
    prestop_failed: u64,
    fail_open_finalizers: u64,
    fail_open_gates: u64,
    /// SLB API calls by action: (calls, errors by code).
    slb_calls: BTreeMap<String, (u64, BTreeMap<String, u64>)>,
}

/// The `q` quantile of `v` (nearest rank).
fn quantile(v: &[Duration], q: f64) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    if s.is_empty() {
        return Duration::ZERO;
    }
    s[((s.len() - 1) as f64 * q).round() as usize]
}

fn median(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s.get(s.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
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
                cell.requests += out.load.requests;
                for (c, n) in &out.load.failures {
                    *cell.failures.entry(*c).or_default() += n;
                    *cell.seeds_by_cause.entry(*c).or_default() += u64::from(*n > 0);
                }
                cell.seeds_with_failures += u64::from(failed > 0);
                cell.p50s.push(out.load.p50);
                cell.p99s.push(out.load.p99);
                cell.rollouts.push(out.rollout);
                cell.held.extend(&out.pods.held);
                cell.to_ready.extend(&out.pods.to_ready);
                cell.killed += out.pods.killed;
                cell.prestop_failed += out.pods.prestop_failed;
                cell.fail_open_finalizers += out.fail_open.finalizers;
                cell.fail_open_gates += out.fail_open.gates;
                for (action, c) in &out.slb_calls {
                    let e = cell.slb_calls.entry(action.clone()).or_default();
                    e.0 += c.calls;
                    for (code, n) in &c.errors {
                        *e.1.entry(code.clone()).or_default() += n;
                    }
                }
                if out.fail_open.finalizers + out.fail_open.gates > 0 {
                    eprintln!(
                        "    fail-open releases: {} finalizer(s), {} gate(s)",
                        out.fail_open.finalizers, out.fail_open.gates
                    );
                }
                let pods_json = json!({
                    "held_ms": out.pods.held.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
                    "to_ready_ms": out.pods.to_ready.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
                    "killed": out.pods.killed,
                    "prestop_failed": out.pods.prestop_failed,
                });
                let failures: BTreeMap<&str, u64> = out
                    .load
                    .failures
                    .iter()
                    .map(|(c, n)| (c.as_str(), *n))
                    .collect();
                runs_json.push((
                    i,
                    seed,
                    json!({
                        "mode": mname, "policy": pname, "seed": seed,
                        "requests": out.load.requests, "failures": failures,
                        "p50_ms": ms(out.load.p50), "p99_ms": ms(out.load.p99),
                        "rollout_ms": ms(out.rollout),
                        "slb_refused_connect_failed_cut": [out.slb_refused_failed_cut.0,
                            out.slb_refused_failed_cut.1, out.slb_refused_failed_cut.2],
                        "pods": pods_json,
                        "fail_open": {"finalizers": out.fail_open.finalizers,
                                      "gates": out.fail_open.gates},
                        "slb_calls": out.slb_calls,
                    }),
                ));
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

    println!(
        "{} seed(s) per row (seeds {}..={}); counts are totals, p50 the median of the runs' p50, p99 the largest run p99, rollout the mean (max)",
        args.seeds,
        args.first_seed,
        args.first_seed + args.seeds - 1
    );
    let mut header = format!("{:<8} {:<11} {:>9}", "mode", "policy", "requests");
    for c in Cause::ALL {
        header += &format!(" {:>9}", c.as_str());
    }
    header += &format!(
        " {:>9} {:>8} {:>8} {:>15}",
        "bad seeds", "p50", "p99", "rollout"
    );
    println!("{header}");
    let mut totals_json = Vec::new();
    let mut run_errors = 0;
    for (mname, pname, cell) in &cells {
        let f = |c: Cause| cell.failures.get(&c).copied().unwrap_or(0);
        let mut line = format!("{mname:<8} {pname:<11} {:>9}", cell.requests);
        for c in Cause::ALL {
            line += &format!(" {:>9}", f(c));
        }
        let n = cell.rollouts.len().max(1) as u32;
        let mean: Duration = cell.rollouts.iter().sum::<Duration>() / n;
        let max = cell.rollouts.iter().max().copied().unwrap_or_default();
        let p99 = cell.p99s.iter().max().copied().unwrap_or_default();
        line += &format!(
            " {:>9} {:>6.1}ms {:>6.1}ms {:>6.2}s ({:>5.2}s)",
            format!("{}/{}", cell.seeds_with_failures, cell.runs),
            ms(median(&cell.p50s)),
            ms(p99),
            mean.as_secs_f64(),
            max.as_secs_f64()
        );
        if cell.errors > 0 {
            line += &format!("  [{} run(s) failed to run]", cell.errors);
        }
        run_errors += cell.errors;
        println!("{line}");
        let failures: BTreeMap<&str, u64> =
            Cause::ALL.iter().map(|c| (c.as_str(), f(*c))).collect();
        let seeds_with_cause: BTreeMap<&str, u64> = Cause::ALL
            .iter()
            .map(|c| (c.as_str(), cell.seeds_by_cause.get(c).copied().unwrap_or(0)))
            .collect();
        totals_json.push(json!({
            "mode": mname, "policy": pname, "runs": cell.runs, "run_errors": cell.errors,
            "requests": cell.requests, "failures": failures,
            "seeds_with_failures": cell.seeds_with_failures,
            "seeds_with_cause": seeds_with_cause,
            "p50_ms_median": ms(median(&cell.p50s)), "p99_ms_max": ms(p99),
            "rollout_ms_mean": ms(mean), "rollout_ms_max": ms(max),
            "fail_open": {"finalizers": cell.fail_open_finalizers, "gates": cell.fail_open_gates},
            "held_ms": {"p50": ms(quantile(&cell.held, 0.5)), "p99": ms(quantile(&cell.held, 0.99)),
                        "max": ms(quantile(&cell.held, 1.0))},
            "to_ready_ms": {"p50": ms(quantile(&cell.to_ready, 0.5)),
                            "p99": ms(quantile(&cell.to_ready, 0.99))},
            "killed": cell.killed,
            "prestop_failed": cell.prestop_failed,
            "slb_calls": cell.slb_calls.iter().map(|(a, (n, errors))| (a.clone(), json!({"calls": n, "errors": errors}))).collect::<BTreeMap<_, _>>(),
        }));
    }
    println!();
    println!(
        "{:<8} {:<11} {:>9} {:>8} {:>24} {:>16} {:>7} {:>10} {:>10}",
        "mode",
        "policy",
        "fail-open",
        "preStop!",
        "held p50/p99/max",
        "ready p50/p99",
        "killed",
        "SLB calls",
        "errors"
    );
    for (mname, pname, cell) in &cells {
        let s = |d: Duration| d.as_secs_f64();
        let calls: u64 = cell.slb_calls.values().map(|c| c.0).sum();
        let errors: u64 = cell.slb_calls.values().flat_map(|c| c.1.values()).sum();
        println!(
            "{mname:<8} {pname:<11} {:>9} {:>8} {:>24} {:>16} {:>7} {:>10} {:>10}",
            cell.fail_open_finalizers + cell.fail_open_gates,
            cell.prestop_failed,
            format!(
                "{:.1}/{:.1}/{:.1}s",
                s(quantile(&cell.held, 0.5)),
                s(quantile(&cell.held, 0.99)),
                s(quantile(&cell.held, 1.0))
            ),
            format!(
                "{:.1}/{:.1}s",
                s(quantile(&cell.to_ready, 0.5)),
                s(quantile(&cell.to_ready, 0.99))
            ),
            cell.killed,
            calls,
            errors
        );
    }
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
