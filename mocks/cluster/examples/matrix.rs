//! Runs the baseline policies over the three modes and prints a table (the `demo` will
//! add the `slb-sync` policy): `cargo run -p mock-cluster --example matrix -- [seeds]`.

use std::collections::BTreeMap;
use std::time::Duration;

use mock_cluster::baseline::BackendMode;
use mock_cluster::load::Cause;
use mock_cluster::scenario::{Policy, Scenario};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seeds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    println!(
        "{:<8} {:<7} {:>8} {:>9} {:>8} {:>8} {:>5} {:>6} {:>8} {:>8} {:>9}",
        "mode",
        "policy",
        "requests",
        "not-ready",
        "stopped",
        "no-rules",
        "cut",
        "other",
        "p50",
        "p99",
        "rollout"
    );
    for (mode, mname) in [
        (BackendMode::Cluster, "cluster"),
        (BackendMode::Local, "local"),
        (BackendMode::Eni, "eni"),
    ] {
        for (policy, pname) in [
            (Policy::Naive, "naive"),
            (
                Policy::Sleep {
                    seconds: 2,
                    drain: true,
                },
                "sleep",
            ),
        ] {
            let (mut req, mut fails, mut rollout) =
                (0u64, BTreeMap::<Cause, u64>::new(), Duration::ZERO);
            let (mut p50, mut p99) = (Duration::ZERO, Duration::ZERO);
            for seed in 1..=seeds {
                let out = Scenario::new(mode, policy, seed, 60).run().await?;
                req += out.load.requests;
                for (c, n) in &out.load.failures {
                    *fails.entry(*c).or_default() += n;
                }
                rollout += out.rollout;
                p50 = p50.max(out.load.p50);
                p99 = p99.max(out.load.p99);
                eprint!(".");
            }
            let f = |c| fails.get(&c).copied().unwrap_or(0);
            println!(
                "{:<8} {:<7} {:>8} {:>9} {:>8} {:>8} {:>5} {:>6} {:>8.1?} {:>8.1?} {:>9.1?}",
                mname,
                pname,
                req,
                f(Cause::NotReady),
                f(Cause::Stopped),
                f(Cause::NoRules),
                f(Cause::Cut),
                f(Cause::Other),
                p50,
                p99,
                rollout / seeds as u32
            );
        }
    }
    Ok(())
}
