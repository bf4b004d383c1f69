//! Rolling replacement of 50 ENI backends, executor and scheduler against the real
//! `mock-slb` over HTTP (through `RpcSlbClient`), under tokio's paused clock: the group
//! always keeps a backend with weight > 0, no backend is removed before its drain window,
//! and no add names a member that exists, also with 30% of calls failing.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use mock_slb::{ErrorFault, FaultConfig, MockSlbHandle};
use slb_sync::model::{BackendKey, BackendState};
use slb_sync::reconcile::{self, Clock, Executor, SchedulerConfig, TokioClock};
use slb_sync::slb::RpcSlbClient;
use support::reconcile_mock::*;

const OLD: u32 = 50;
const SURGE: u32 = 10;
/// How the old pods of a wave start terminating.
#[derive(Clone, Copy, PartialEq)]
enum Gate {
    /// Once the wave's new pods are registered (weight > 0 on the SLB).
    Registered,
    /// In the same desired-state change that brings the new pods (no gate at all).
    None,
}
const WINDOW: Duration = Duration::from_secs(30);
/// Virtual time allowed for each wave to get its backends registered.
const WAVE_LIMIT: Duration = Duration::from_secs(3600);

struct Outcome {
    mock: Arc<MockSlbHandle>,
    api: Arc<Watched<RpcSlbClient>>,
    journal: Arc<Journal>,
}

/// Pods 0..50 serve; pods 50..100 replace them in waves of `surge`, the way a Deployment
/// with `maxSurge: <surge>, maxUnavailable: 0` and the registration gate does: a wave's old
/// pods start terminating once its new pods are registered (weight > 0 on the SLB), or
/// together with them without the gate, and leave the desired set once the agent removed
/// them (their finalizer is released).
async fn rolling_update(surge: u32, gate: Gate, faults: Option<FaultConfig>) -> Outcome {
    let pods = (0..2 * OLD).map(|n| (pod_ip(n), n));
    let members = (0..OLD).map(|n| member(n, POD_PORT, 100)).collect();
    let mock = start_mock(seed(pods, true, 30, members)).await;
    if let Some(faults) = faults {
        mock.set_faults(faults);
    }
    let api = Arc::new(Watched::new(client(&mock), mock.clone()));
    let journal = Arc::new(Journal::default());
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(t0()));
    let executor = Arc::new(
        Executor::new(api.clone(), clock, executor_config()).with_journal(journal.clone()),
    );
    let desired_now = |terminating: &BTreeSet<u32>, new_up_to: u32, gone: &BTreeSet<u32>| {
        let mut backends = Vec::new();
        for n in (0..OLD).filter(|n| !gone.contains(n)) {
            let state = if terminating.contains(&n) {
                BackendState::Draining
            } else {
                BackendState::Active
            };
            backends.push(eni(n, POD_PORT, state));
        }
        for n in OLD..new_up_to {
            backends.push(eni(n, POD_PORT, BackendState::Active));
        }
        target(backends, WINDOW)
    };
    let mut terminating = BTreeSet::new();
    let mut gone = BTreeSet::new();
    let source = Desired::new(desired_now(&terminating, OLD, &gone));
    let (handle, task) = reconcile::spawn(executor, source.clone(), SchedulerConfig::default());
    handle.trigger(group_ref());

    // Pods whose SLB removal is confirmed are deleted (their finalizer released).
    let reap = |terminating: &BTreeSet<u32>, gone: &mut BTreeSet<u32>| {
        let members = members_now(&mock);
        for n in terminating {
            if !members.contains_key(&key(*n, POD_PORT)) {
                gone.insert(*n);
            }
        }
    };

    for wave in 0..OLD / surge {
        let new_up_to = OLD + (wave + 1) * surge;
        if gate == Gate::None {
            terminating.extend(wave * surge..(wave + 1) * surge);
        }
        reap(&terminating, &mut gone);
        source.set(desired_now(&terminating, new_up_to, &gone));
        handle.trigger(group_ref());
        let fresh: Vec<BackendKey> = (new_up_to - surge..new_up_to)
            .map(|n| key(n, POD_PORT))
            .collect();
        let registered = until(WAVE_LIMIT, || {
            let members = members_now(&mock);
            fresh.iter().all(|k| members.get(k).is_some_and(|w| *w > 0))
        })
        .await;
        assert!(registered, "wave {wave}: new pods never registered");
        terminating.extend(wave * surge..(wave + 1) * surge);
        reap(&terminating, &mut gone);
        source.set(desired_now(&terminating, new_up_to, &gone));
        handle.trigger(group_ref());
    }

    // Every old pod drains, is removed and deleted.
    let wanted: BTreeSet<BackendKey> = (OLD..2 * OLD).map(|n| key(n, POD_PORT)).collect();
    let converged = until(WAVE_LIMIT, || {
        let members = members_now(&mock);
        members.keys().cloned().collect::<BTreeSet<_>>() == wanted
    })
    .await;
    assert!(
        converged,
        "old pods never all removed: {:?}",
        members_now(&mock)
    );
    reap(&terminating, &mut gone);
    assert_eq!(gone.len(), OLD as usize);
    source.set(desired_now(&terminating, 2 * OLD, &gone));
    handle.trigger(group_ref());
    tokio::time::sleep(WINDOW * 2).await;

    drop(handle);
    tokio::time::timeout(Duration::from_secs(3600), task)
        .await
        .expect("scheduler stops once its handles are gone")
        .expect("scheduler task does not panic");
    Outcome { mock, api, journal }
}

/// The checks both scenarios share.
fn assert_safe_and_converged(outcome: &Outcome) {
    let snapshots = outcome.api.snapshots();
    // Never a moment without a serving backend.
    for (i, s) in snapshots.iter().enumerate() {
        assert!(
            s.serving() > 0,
            "after write #{i} ({}, ok={}) the group has no backend with weight > 0: {:?}",
            s.action,
            s.ok,
            s.members
        );
    }
    // No add of a member that exists.
    assert_eq!(outcome.api.duplicate_adds(), Vec::<BackendKey>::new());
    let duplicate_answers = outcome
        .mock
        .call_log()
        .into_iter()
        .filter(|c| c.action == "AddVServerGroupBackendServers")
        .filter(|c| c.code.as_deref() == Some("InvalidParameter"))
        .count();
    assert_eq!(
        duplicate_answers, 0,
        "the mock refused adds of existing members"
    );

    // Each old backend was removed a full window after the SLB had it at weight 0.
    for n in 0..OLD {
        let k = key(n, POD_PORT);
        let zero = snapshots
            .iter()
            .find(|s| s.members.get(&k) == Some(&0))
            .unwrap_or_else(|| panic!("pod {n} was never set to weight 0 before removal"));
        let removed = snapshots
            .iter()
            .find(|s| !s.members.contains_key(&k))
            .unwrap_or_else(|| panic!("pod {n} was never removed"));
        let drained = removed.at.duration_since(zero.at);
        assert!(
            drained >= WINDOW,
            "pod {n} removed {drained:?} after weight 0, window {WINDOW:?}"
        );
    }

    // Converged: exactly the new pods, owned, at full weight; no drain left behind.
    let state = outcome.mock.state();
    let group = &state.v_server_groups[GROUP];
    let mut got: Vec<(String, u8, String)> = group
        .backends
        .iter()
        .map(|b| {
            let ip = b.server_ip.map(|ip| ip.to_string()).unwrap_or_default();
            (ip, b.weight, b.description.clone())
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, u8, String)> = (OLD..2 * OLD)
        .map(|n| (pod_ip(n).to_string(), 100, owner().as_str().to_owned()))
        .collect();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(outcome.journal.len(), 0, "drains left in the journal");
}

#[tokio::test(start_paused = true)]
async fn rolling_replacement_of_50_eni_backends_never_empties_the_group() {
    let outcome = rolling_update(SURGE, Gate::Registered, None).await;
    assert_safe_and_converged(&outcome);

    // Frugal: one add and at most one weight-0 call per wave of 10, removals batched.
    let count = |action: &str| writes(&outcome.mock, action).len();
    assert_eq!(
        count("AddVServerGroupBackendServers"),
        (OLD / SURGE) as usize
    );
    assert!(count("SetVServerGroupAttribute") <= (OLD / SURGE) as usize);
    assert!(count("RemoveVServerGroupBackendServers") <= (OLD / SURGE) as usize);
    let failed = outcome
        .mock
        .call_log()
        .into_iter()
        .filter(|c| c.status != 200)
        .count();
    assert_eq!(failed, 0, "no call fails without injected faults");
    // Nor on the agent's side (a timeout under the paused clock would show here).
    let client_failures: Vec<_> = outcome
        .api
        .snapshots()
        .into_iter()
        .filter(|s| !s.ok)
        .map(|s| s.action)
        .collect();
    assert!(client_failures.is_empty(), "{client_failures:?}");
}

/// 15% throttling, then 18% of the rest busy: 1 - 0.85 × 0.82 ≈ 30% of calls fail.
fn faults() -> FaultConfig {
    FaultConfig {
        errors: vec![
            ErrorFault {
                action: None,
                code: "Throttling.User".to_owned(),
                status: 400,
                message: None,
                rate: 0.15,
            },
            ErrorFault {
                action: None,
                code: "SystemBusy".to_owned(),
                status: 503,
                message: None,
                rate: 0.18,
            },
        ],
        ..FaultConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn rolling_replacement_converges_with_30_percent_throttling_and_busy_errors() {
    let outcome = rolling_update(SURGE, Gate::Registered, Some(faults())).await;
    assert_safe_and_converged(&outcome);
    assert_only_injected_failures(&outcome);
}

/// The harshest order of events: all 50 new pods arrive and all 50 old ones terminate in
/// one change. Only make-before-break (every add before any weight 0, and no weight 0
/// after a failed add) keeps the group serving.
#[tokio::test(start_paused = true)]
async fn replacing_all_backends_at_once_under_faults_adds_before_draining() {
    let outcome = rolling_update(OLD, Gate::None, Some(faults())).await;
    assert_safe_and_converged(&outcome);
    assert_only_injected_failures(&outcome);
}

fn assert_only_injected_failures(outcome: &Outcome) {
    let counters = outcome.mock.counters();
    let failed = |code: &str| -> u64 {
        counters
            .values()
            .map(|c| c.errors.get(code).copied().unwrap_or(0))
            .sum()
    };
    let calls: u64 = counters.values().map(|c| c.calls).sum();
    let (throttled, busy) = (failed("Throttling.User"), failed("SystemBusy"));
    // Both kinds are drawn ~15% of the time; at least one failure in 30+ calls is
    // certain enough (0.7^30 < 1e-4) not to flake.
    assert!(throttled + busy > 0, "faults were not hit: {counters:?}");
    // Every failure was one of the injected ones: nothing the agent did was refused.
    let all_failed: u64 = counters.values().flat_map(|c| c.errors.values()).sum();
    assert_eq!(all_failed, throttled + busy, "{counters:?}");
    eprintln!("{calls} calls, {throttled} throttled, {busy} busy");
}

/// The SLB answers `VServerGroupProcessing` to a write that follows another on the same
/// group too closely; the executor's batches back off and still converge.
#[tokio::test(start_paused = true)]
async fn rolling_replacement_converges_with_the_group_write_gap() {
    let faults = FaultConfig {
        group_write_gap_ms: Some(1000),
        ..FaultConfig::default()
    };
    let outcome = rolling_update(OLD, Gate::None, Some(faults)).await;
    assert_safe_and_converged(&outcome);
    let counters = outcome.mock.counters();
    let processing: u64 = counters
        .values()
        .map(|c| c.errors.get("VServerGroupProcessing").copied().unwrap_or(0))
        .sum();
    let writes: u64 = [
        "AddVServerGroupBackendServers",
        "SetVServerGroupAttribute",
        "RemoveVServerGroupBackendServers",
    ]
    .iter()
    .filter_map(|a| counters.get(*a))
    .map(|c| c.ok)
    .sum();
    eprintln!("{writes} writes applied, {processing} VServerGroupProcessing answers");
    // Backoff, not hammering: fewer refusals than applied writes.
    assert!(processing <= writes, "{counters:?}");
}
