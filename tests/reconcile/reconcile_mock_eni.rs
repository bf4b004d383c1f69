//! Make-before-break when the new pods' ENIs cannot be resolved yet, against the real
//! `mock-slb` over HTTP under tokio's paused clock: the leaving backends keep serving
//! until their replacements are on the SLB, instead of leaving the group empty.

use std::sync::Arc;
use std::time::Duration;

use mock_slb::state::seed::EniSeed;
use mock_slb::Seed;
use slb_sync::model::BackendState;
use slb_sync::reconcile::{Clock, Executor, TokioClock};
use support::reconcile_mock::*;

const WINDOW: Duration = Duration::from_secs(30);
const OLD: u32 = 4;

#[tokio::test(start_paused = true)]
async fn leaving_backends_keep_serving_until_unresolved_replacements_are_added() {
    // Only the old pods' ENIs exist so far.
    let pods = (0..OLD).map(|n| (pod_ip(n), n));
    let members = (0..OLD).map(|n| member(n, POD_PORT, 100)).collect();
    let mock = start_mock(seed(pods, false, 300, members)).await;
    let api = Arc::new(Watched::new(client(&mock), mock.clone()));
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(t0()));
    let executor = Executor::new(api.clone(), clock, executor_config());
    let mut backends: Vec<_> = (0..OLD)
        .map(|n| eni(n, POD_PORT, BackendState::Draining))
        .collect();
    backends.extend((OLD..2 * OLD).map(|n| eni(n, POD_PORT, BackendState::Active)));
    let all_at_once = target(backends, WINDOW);

    let first = executor.reconcile(&all_at_once).await.unwrap();
    assert_eq!(first.unresolved_eni_ips.len(), OLD as usize);
    assert!(
        first.requeue_at.is_some(),
        "the pass asks to be run again for the ENIs"
    );
    let members = members_now(&mock);
    assert!(
        (0..OLD).all(|n| members.get(&key(n, POD_PORT)) == Some(&100)),
        "old pods keep serving while nothing can replace them: {members:?}"
    );
    assert!(
        first.warnings.iter().any(|w| w.contains("kept serving")),
        "{:?}",
        first.warnings
    );

    // The ENIs appear (Terway attached them); the next pass replaces, make before break.
    let enis = (OLD..2 * OLD)
        .map(|n| EniSeed {
            id: format!("eni-{n}"),
            ips: vec![pod_ip(n)],
        })
        .collect();
    mock.apply_seed(&Seed {
        enis,
        ..Seed::default()
    })
    .expect("ENIs added");
    tokio::time::sleep(Duration::from_secs(10)).await;
    executor.reconcile(&all_at_once).await.unwrap();
    let members = members_now(&mock);
    assert!((0..OLD).all(|n| members.get(&key(n, POD_PORT)) == Some(&0)));
    assert!((OLD..2 * OLD).all(|n| members.get(&key(n, POD_PORT)) == Some(&100)));

    tokio::time::sleep(WINDOW).await;
    executor.reconcile(&all_at_once).await.unwrap();
    let members = members_now(&mock);
    assert_eq!(members.len(), OLD as usize);
    assert!((OLD..2 * OLD).all(|n| members.contains_key(&key(n, POD_PORT))));

    for s in api.snapshots() {
        assert!(
            s.serving() > 0,
            "empty group after {}: {:?}",
            s.action,
            s.members
        );
    }
}

#[tokio::test(start_paused = true)]
async fn leaving_backends_drain_when_others_still_serve_despite_unresolved_ones() {
    // Pod 0 stays, pod 1 leaves, pod 2 (no ENI yet) arrives: pod 0 still serves, so
    // pod 1 drains at once.
    let pods = (0..2).map(|n| (pod_ip(n), n));
    let members = (0..2).map(|n| member(n, POD_PORT, 100)).collect();
    let mock = start_mock(seed(pods, false, 300, members)).await;
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(t0()));
    let executor = Executor::new(Arc::new(client(&mock)), clock, executor_config());
    let desired = target(
        vec![
            eni(0, POD_PORT, BackendState::Active),
            eni(1, POD_PORT, BackendState::Draining),
            eni(2, POD_PORT, BackendState::Active),
        ],
        WINDOW,
    );
    let outcome = executor.reconcile(&desired).await.unwrap();
    assert_eq!(outcome.unresolved_eni_ips, vec![pod_ip(2)]);
    let members = members_now(&mock);
    assert_eq!(members.get(&key(0, POD_PORT)), Some(&100));
    assert_eq!(members.get(&key(1, POD_PORT)), Some(&0));
}
