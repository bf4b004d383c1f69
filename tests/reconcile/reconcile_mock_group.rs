//! Group lifecycle and ownership against the real `mock-slb` over HTTP under tokio's
//! paused clock: a group without `vgroup-port` is created by its owner name once and
//! found again after a restart; backends the agent does not own are never written, even
//! when the desired set is empty.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use slb_sync::model::BackendState;
use slb_sync::reconcile::{Clock, Executor, TokioClock};
use support::reconcile_mock::*;

const WINDOW: Duration = Duration::from_secs(30);

fn count(mock: &mock_slb::MockSlbHandle, action: &str) -> usize {
    mock.call_log()
        .iter()
        .filter(|c| c.action == action)
        .count()
}

#[tokio::test(start_paused = true)]
async fn group_is_created_by_owner_name_once_and_found_again_after_a_restart() {
    let mut s = seed((0..3).map(|n| (pod_ip(n), n)), false, 300, Vec::new());
    s.load_balancers[0].vserver_groups.clear();
    s.load_balancers[0].listeners[0].vserver_group_id = None;
    let mock = start_mock(s).await;
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(t0()));
    let mut desired = target(
        (0..3)
            .map(|n| eni(n, POD_PORT, BackendState::Active))
            .collect(),
        WINDOW,
    );
    desired.desired.v_server_group_id = None;

    let first = Executor::new(Arc::new(client(&mock)), clock.clone(), executor_config());
    let outcome = first.reconcile(&desired).await.unwrap();
    let id = outcome.v_server_group_id.expect("group created");
    let state = mock.state();
    let group = &state.v_server_groups[&id];
    assert_eq!(group.name, owner().as_str());
    assert_eq!(group.load_balancer_id, LB);
    assert_eq!(group.backends.len(), 3);
    assert!(group.backends.iter().all(|b| b.weight == 100));

    // Same desired state, later pass and a restarted agent: nothing to create or write.
    first.reconcile(&desired).await.unwrap();
    let second = Executor::new(Arc::new(client(&mock)), clock, executor_config());
    let again = second.reconcile(&desired).await.unwrap();
    assert_eq!(again.v_server_group_id.as_deref(), Some(id.as_str()));
    assert_eq!(again.steps_applied, 0);
    assert_eq!(count(&mock, "CreateVServerGroup"), 1);
    assert_eq!(count(&mock, "AddVServerGroupBackendServers"), 1);
    assert_eq!(mock.state().v_server_groups.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn foreign_backends_stay_untouched_when_nothing_is_desired() {
    let foreign_user = json!({
        "server_id": "eni-2", "server_ip": pod_ip(2).to_string(), "port": POD_PORT,
        "weight": 50, "type": "eni", "description": "manual-backend",
    });
    let other_cluster = json!({
        "server_id": "eni-3", "server_ip": pod_ip(3).to_string(), "port": POD_PORT,
        "weight": 0, "type": "eni", "description": "k8s/80/web/default/c2",
    });
    let members = vec![
        member(0, POD_PORT, 100),
        member(1, POD_PORT, 0),
        foreign_user,
        other_cluster,
    ];
    let mock = start_mock(seed((0..4).map(|n| (pod_ip(n), n)), false, 300, members)).await;
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(t0()));
    let executor = Executor::new(Arc::new(client(&mock)), clock, executor_config());
    let nothing = target(Vec::new(), WINDOW);

    let first = executor.reconcile(&nothing).await.unwrap();
    assert!(
        first
            .warnings
            .iter()
            .any(|w| w.contains("no desired backends")),
        "empty desired set warns: {:?}",
        first.warnings
    );
    let members = members_now(&mock);
    assert_eq!(members.get(&key(0, POD_PORT)), Some(&0), "owned: weight 0");
    assert_eq!(
        members.get(&key(1, POD_PORT)),
        Some(&0),
        "found at 0: window starts"
    );

    tokio::time::sleep(WINDOW).await;
    executor.reconcile(&nothing).await.unwrap();
    let state = mock.state();
    let mut left: Vec<(String, u8, String)> = state.v_server_groups[GROUP]
        .backends
        .iter()
        .map(|b| (b.server_id.clone(), b.weight, b.description.clone()))
        .collect();
    left.sort();
    assert_eq!(
        left,
        vec![
            ("eni-2".to_owned(), 50, "manual-backend".to_owned()),
            ("eni-3".to_owned(), 0, "k8s/80/web/default/c2".to_owned()),
        ]
    );
    // No write ever named a foreign backend.
    for action in [
        "AddVServerGroupBackendServers",
        "SetVServerGroupAttribute",
        "RemoveVServerGroupBackendServers",
    ] {
        for (_, _, servers) in writes(&mock, action) {
            assert!(
                !names_pod(&servers, 2) && !names_pod(&servers, 3),
                "{action} touched a foreign backend: {servers}"
            );
        }
    }
}
