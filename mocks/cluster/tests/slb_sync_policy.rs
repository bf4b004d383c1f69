//! CI-sized race lab: every mode under `naive` and `slb-sync` for a few seeds. The real
//! agent (readiness gate, weight 0, drain, remove, then `wait-drained` returns) loses no
//! request; the naive baseline loses some in every mode.
//!
//! Local mode runs `slb-sync` with the in-place layout (every backend node keeps a
//! serving pod). With one pod per node a surge pod on an empty node can meet `no-rules`
//! under slb-sync too: the agent gives the node weight on the readiness-gate bootstrap,
//! before that node's kube-proxy has a ready local endpoint (see the README).

use mock_cluster::baseline::BackendMode;
use mock_cluster::scenario::{Outcome, Policy, Scenario};

const SLB_SYNC: Policy = Policy::SlbSync {
    drain_secs: 1,
    wait_secs: 20,
};

async fn failures(s: Scenario) -> u64 {
    let what = format!("{:?} {} seed {}", s.mode, s.policy.name(), s.sim.seed);
    let out: Outcome = s.run().await.unwrap_or_else(|e| panic!("{what}: {e}"));
    eprintln!(
        "{what}: {:?} rollout {:?} slb {:?}",
        out.load, out.rollout, out.slb_refused_failed_cut
    );
    assert!(out.load.ok > 50, "{what}: {:?}", out.load);
    out.load.failed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slb_sync_loses_nothing_and_naive_loses_requests_in_every_mode() {
    let mut subnet = 70;
    for mode in [BackendMode::Cluster, BackendMode::Local, BackendMode::Eni] {
        for seed in 1..=2 {
            subnet += 1;
            let s = match mode {
                BackendMode::Local => Scenario::local_in_place(SLB_SYNC, seed, subnet),
                _ => Scenario::new(mode, SLB_SYNC, seed, subnet),
            };
            assert_eq!(failures(s).await, 0, "{mode:?} slb-sync seed {seed}");
        }
        subnet += 1;
        let naive = failures(Scenario::new(mode, Policy::Naive, 1, subnet)).await;
        assert!(naive > 0, "{mode:?} naive lost nothing");
    }
}
