//! Agent restart in the middle of a drain, against the real `mock-slb` over HTTP under
//! tokio's paused clock: the first agent sets the leaving backends to weight 0 and dies
//! half-way through the window; a new one starts with what production has after a restart
//! (the SLB, plus the drain starts persisted on the pods when there are any) and removes
//! nothing before the full window, and forgets no drain.

use std::sync::Arc;
use std::time::Duration;

use mock_slb::MockSlbHandle;
use slb_sync::model::BackendState;
use slb_sync::plan::DrainLedger;
use slb_sync::reconcile::{self, Clock, Executor, SchedulerConfig, TokioClock};
use slb_sync::slb::RpcSlbClient;
use support::reconcile_mock::*;
use tokio::time::Instant;

const WINDOW: Duration = Duration::from_secs(30);
const OLD: u32 = 4;

struct FirstLife {
    mock: Arc<MockSlbHandle>,
    api: Arc<Watched<RpcSlbClient>>,
    journal: Arc<Journal>,
    clock: Arc<dyn Clock>,
    source: Arc<Desired>,
    /// When the mock started (its call log counts from here).
    mock_started: Instant,
}

/// Old pods 0..4 are replaced by 4..8 at once; the agent runs until the old ones are at
/// weight 0 on the SLB, then half the window passes and the agent process dies.
async fn first_life_dies_mid_drain() -> FirstLife {
    let pods = (0..2 * OLD).map(|n| (pod_ip(n), n));
    let members = (0..OLD).map(|n| member(n, POD_PORT, 100)).collect();
    let mock_started = Instant::now();
    let mock = start_mock(seed(pods, true, 30, members)).await;
    let api = Arc::new(Watched::new(client(&mock), mock.clone()));
    let journal = Arc::new(Journal::default());
    // The wall clock keeps running across the restart.
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(t0()));
    let mut backends: Vec<_> = (0..OLD)
        .map(|n| eni(n, POD_PORT, BackendState::Draining))
        .collect();
    backends.extend((OLD..2 * OLD).map(|n| eni(n, POD_PORT, BackendState::Active)));
    let source = Desired::new(target(backends, WINDOW));

    let executor = Arc::new(
        Executor::new(api.clone(), clock.clone(), executor_config()).with_journal(journal.clone()),
    );
    let (handle, task) = reconcile::spawn(executor, source.clone(), SchedulerConfig::default());
    handle.trigger(group_ref());
    let drained = until(Duration::from_secs(60), || {
        let members = members_now(&mock);
        (0..OLD).all(|n| members.get(&key(n, POD_PORT)) == Some(&0))
            && (OLD..2 * OLD).all(|n| members.get(&key(n, POD_PORT)) == Some(&100))
    })
    .await;
    assert!(
        drained,
        "first agent never drained: {:?}",
        members_now(&mock)
    );
    assert_eq!(journal.len(), OLD as usize, "drain starts persisted");

    tokio::time::sleep(WINDOW / 2).await;
    // The process dies: its scheduler, executor and in-memory ledger are gone.
    task.abort();
    let _ = task.await;
    drop(handle);
    assert!(
        writes(&mock, "RemoveVServerGroupBackendServers").is_empty(),
        "nothing removed before the restart"
    );
    FirstLife {
        mock,
        api,
        journal,
        clock,
        source,
        mock_started,
    }
}

/// Starts the second agent with `ledger` and waits until the old backends are gone.
/// Returns the mock-clock milliseconds of the restart.
async fn second_life(life: &FirstLife, ledger: DrainLedger) -> u64 {
    let restarted_ms = Instant::now().duration_since(life.mock_started).as_millis() as u64;
    let executor = Executor::new(life.api.clone(), life.clock.clone(), executor_config())
        .with_journal(life.journal.clone());
    executor.restore_ledger(ledger);
    let (handle, task) = reconcile::spawn(
        Arc::new(executor),
        life.source.clone(),
        SchedulerConfig::default(),
    );
    // Start-up resync: every known group gets a pass.
    handle.trigger(group_ref());
    let removed = until(Duration::from_secs(120), || {
        let members = members_now(&life.mock);
        (0..OLD).all(|n| !members.contains_key(&key(n, POD_PORT)))
    })
    .await;
    assert!(removed, "a drain was forgotten after the restart");
    drop(handle);
    task.abort();
    let _ = task.await;
    restarted_ms
}

/// (mock ms of the weight-0 call, mock ms of the removal) of every old pod.
fn drain_times(mock: &MockSlbHandle) -> Vec<(u32, u64, u64)> {
    let zeros = writes(mock, "SetVServerGroupAttribute");
    let removes = writes(mock, "RemoveVServerGroupBackendServers");
    (0..OLD)
        .map(|n| {
            let zero = zeros
                .iter()
                .find(|(_, status, servers)| *status == 200 && names_pod(servers, n))
                .map(|(at, _, _)| *at)
                .unwrap_or_else(|| panic!("pod {n}: no weight-0 call"));
            let removed = removes
                .iter()
                .find(|(_, status, servers)| *status == 200 && names_pod(servers, n))
                .map(|(at, _, _)| *at)
                .unwrap_or_else(|| panic!("pod {n}: no removal"));
            (n, zero, removed)
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn restart_with_persisted_drain_starts_finishes_the_window_not_sooner() {
    let life = first_life_dies_mid_drain().await;
    // Production reads the drain starts back from the pods' annotations.
    let persisted = life.journal.ledger();
    assert_eq!(persisted.len(), OLD as usize);
    second_life(&life, persisted).await;

    let window_ms = WINDOW.as_millis() as u64;
    for (n, zero, removed) in drain_times(&life.mock) {
        assert!(
            removed >= zero + window_ms,
            "pod {n} removed {} ms after weight 0; window {window_ms} ms",
            removed - zero
        );
        // The persisted start was used: no second full window.
        assert!(
            removed < zero + window_ms + 5_000,
            "pod {n} drained {} ms: the persisted start was ignored",
            removed - zero
        );
    }
    assert_eq!(life.journal.len(), 0, "drain records cleared after removal");
    assert!(life.api.duplicate_adds().is_empty());
}

#[tokio::test(start_paused = true)]
async fn restart_without_persisted_starts_drains_a_full_new_window() {
    let life = first_life_dies_mid_drain().await;
    // Nothing could hold the start (node backends): the SLB's weight 0 is all there is.
    let restarted = second_life(&life, DrainLedger::new()).await;

    let window_ms = WINDOW.as_millis() as u64;
    for (n, zero, removed) in drain_times(&life.mock) {
        assert!(
            removed >= restarted + window_ms,
            "pod {n} removed {} ms after the restart; a full window is {window_ms} ms",
            removed - restarted
        );
        assert!(removed >= zero + window_ms);
    }
    // Still make-before-break across the restart.
    for s in life.api.snapshots() {
        assert!(
            s.serving() > 0,
            "empty group after {}: {:?}",
            s.action,
            s.members
        );
    }
}

#[tokio::test(start_paused = true)]
async fn restart_after_the_window_passed_removes_at_once_with_persisted_starts() {
    let life = first_life_dies_mid_drain().await;
    // The agent stays down longer than the rest of the window.
    tokio::time::sleep(WINDOW).await;
    let restarted = second_life(&life, life.journal.ledger()).await;
    for (n, _, removed) in drain_times(&life.mock) {
        assert!(
            removed < restarted + 5_000,
            "pod {n} removed {} ms after the restart although its window had passed",
            removed - restarted
        );
    }
}
