//! CI-sized race lab: every mode under `naive` and `slb-sync` for a few seeds. The real
//! agent (readiness gate, weight 0, drain, remove, then `wait-drained` returns) loses no
//! request; the naive baseline loses some in every mode.

use mock_cluster::baseline::BackendMode;
use mock_cluster::scenario::{Policy, Scenario};

const SLB_SYNC: Policy = Policy::SlbSync {
    drain_secs: 1,
    wait_secs: 20,
};

async fn failures(mode: BackendMode, policy: Policy, seed: u64, subnet: u8) -> u64 {
    let out = Scenario::new(mode, policy, seed, subnet)
        .run()
        .await
        .unwrap_or_else(|e| panic!("{mode:?} {policy:?} seed {seed}: {e}"));
    eprintln!(
        "{mode:?} {} seed {seed}: {:?} rollout {:?} slb {:?}",
        policy.name(),
        out.load,
        out.rollout,
        out.slb_refused_failed_cut
    );
    assert!(out.load.ok > 50, "{:?}", out.load);
    out.load.failed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slb_sync_loses_nothing_and_naive_loses_requests_in_every_mode() {
    let mut subnet = 70;
    for mode in [BackendMode::Cluster, BackendMode::Local, BackendMode::Eni] {
        for seed in 1..=2 {
            subnet += 1;
            assert_eq!(
                failures(mode, SLB_SYNC, seed, subnet).await,
                0,
                "{mode:?} slb-sync seed {seed}"
            );
        }
        subnet += 1;
        assert!(
            failures(mode, Policy::Naive, 1, subnet).await > 0,
            "{mode:?} naive"
        );
    }
}
