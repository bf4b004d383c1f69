//! The race lab's tables and JSON: totals per mode × policy over the seeds.

use std::collections::BTreeMap;
use std::time::Duration;

use mock_cluster::load::Cause;
use mock_cluster::scenario::Outcome;
use serde_json::{json, Value};

/// Totals of one mode × policy over its seeds.
#[derive(Debug, Default)]
pub struct Cell {
    pub runs: u64,
    pub errors: u64,
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
pub fn quantile(v: &[Duration], q: f64) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    if s.is_empty() {
        return Duration::ZERO;
    }
    s[((s.len() - 1) as f64 * q).round() as usize]
}

pub fn median(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s.get(s.len() / 2).copied().unwrap_or_default()
}

pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

impl Cell {
    /// Adds one run's outcome.
    pub fn add(&mut self, out: &Outcome) {
        self.requests += out.load.requests;
        for (c, n) in &out.load.failures {
            *self.failures.entry(*c).or_default() += n;
            *self.seeds_by_cause.entry(*c).or_default() += u64::from(*n > 0);
        }
        self.seeds_with_failures += u64::from(out.load.failed() > 0);
        self.p50s.push(out.load.p50);
        self.p99s.push(out.load.p99);
        self.rollouts.push(out.rollout);
        self.held.extend(&out.pods.held);
        self.to_ready.extend(&out.pods.to_ready);
        self.killed += out.pods.killed;
        self.prestop_failed += out.pods.prestop_failed;
        self.fail_open_finalizers += out.fail_open.finalizers;
        self.fail_open_gates += out.fail_open.gates;
        for (action, c) in &out.slb_calls {
            let e = self.slb_calls.entry(action.clone()).or_default();
            e.0 += c.calls;
            for (code, n) in &c.errors {
                *e.1.entry(code.clone()).or_default() += n;
            }
        }
    }
}

/// One run as `--json` writes it.
pub fn run_json(mname: &str, pname: &str, seed: u64, out: &Outcome) -> Value {
    let failures: BTreeMap<&str, u64> = out
        .load
        .failures
        .iter()
        .map(|(c, n)| (c.as_str(), *n))
        .collect();
    json!({
        "mode": mname, "policy": pname, "seed": seed,
        "requests": out.load.requests, "failures": failures,
        "p50_ms": ms(out.load.p50), "p99_ms": ms(out.load.p99),
        "rollout_ms": ms(out.rollout),
        "slb_refused_connect_failed_cut": [out.slb_refused_failed_cut.0,
            out.slb_refused_failed_cut.1, out.slb_refused_failed_cut.2],
        "pods": {
            "held_ms": out.pods.held.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
            "to_ready_ms": out.pods.to_ready.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
            "killed": out.pods.killed,
            "prestop_failed": out.pods.prestop_failed,
        },
        "fail_open": {"finalizers": out.fail_open.finalizers,
                      "gates": out.fail_open.gates},
        "slb_calls": out.slb_calls,
    })
}

/// Prints both tables of `cells` (in their order) and returns the totals for `--json`.
pub fn print_tables(cells: &[(&str, &str, Cell)], seeds: u64, first_seed: u64) -> Vec<Value> {
    println!(
        "{} seed(s) per row (seeds {}..={}); counts are totals, p50 the median of the runs' p50, p99 the largest run p99, rollout the mean (max)",
        seeds,
        first_seed,
        first_seed + seeds - 1
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
    for (mname, pname, cell) in cells {
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
    for (mname, pname, cell) in cells {
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
    totals_json
}
