//! Listener drain settings: read first, write only what differs.

use crate::model::{Listener, ListenerProtocol};
use crate::plan::plan_listener_drain;

fn mk_listener(
    port: u16,
    protocol: ListenerProtocol,
    group: &str,
    drain: Option<bool>,
    timeout: Option<u32>,
) -> Listener {
    Listener {
        port,
        protocol,
        v_server_group_id: Some(group.to_owned()),
        connection_drain: drain,
        connection_drain_timeout: timeout,
        health_check: None,
    }
}

fn groups() -> Vec<String> {
    vec!["rsp-a".to_owned()]
}

#[test]
fn tcp_and_udp_listeners_get_the_annotated_drain_only_when_different() {
    let listeners = vec![
        mk_listener(443, ListenerProtocol::Tcp, "rsp-a", Some(true), Some(60)),
        mk_listener(80, ListenerProtocol::Tcp, "rsp-a", Some(false), None),
        mk_listener(53, ListenerProtocol::Udp, "rsp-a", Some(true), Some(30)),
        mk_listener(8080, ListenerProtocol::Tcp, "rsp-other", Some(false), None),
    ];
    let plan = plan_listener_drain(&listeners, &groups(), Some(true), Some(60), 60);
    let changed: Vec<(u16, bool, Option<u32>)> = plan
        .changes
        .iter()
        .map(|c| (c.listener.port, c.drain, c.timeout_secs))
        .collect();
    assert_eq!(changed, vec![(53, true, Some(60)), (80, true, Some(60))]);
    assert!(plan.warnings.is_empty());

    let plan = plan_listener_drain(&listeners, &groups(), Some(false), None, 30);
    let changed: Vec<u16> = plan.changes.iter().map(|c| c.listener.port).collect();
    assert_eq!(
        changed,
        vec![53, 443],
        "only listeners that drain are switched off"
    );
    assert!(plan
        .changes
        .iter()
        .all(|c| !c.drain && c.timeout_secs.is_none()));
}

#[test]
fn absent_annotation_leaves_listeners_alone() {
    let listeners = vec![mk_listener(
        80,
        ListenerProtocol::Tcp,
        "rsp-a",
        Some(true),
        Some(10),
    )];
    assert_eq!(
        plan_listener_drain(&listeners, &groups(), None, None, 30),
        Default::default()
    );
}

#[test]
fn http_listeners_get_a_warning_not_a_write() {
    let listeners = vec![
        mk_listener(80, ListenerProtocol::Http, "rsp-a", None, None),
        mk_listener(443, ListenerProtocol::Https, "rsp-a", None, None),
    ];
    let plan = plan_listener_drain(&listeners, &groups(), Some(true), Some(45), 45);
    assert!(plan.changes.is_empty());
    assert_eq!(plan.warnings.len(), 2);
    assert!(plan.warnings[0].contains("listener 80") && plan.warnings[0].contains("45 s"));
    let plan = plan_listener_drain(&listeners, &groups(), Some(false), None, 30);
    assert_eq!(plan, Default::default());
}

#[test]
fn drain_on_without_timeout_is_reported_and_changes_nothing() {
    let listeners = vec![mk_listener(
        80,
        ListenerProtocol::Tcp,
        "rsp-a",
        Some(false),
        None,
    )];
    let plan = plan_listener_drain(&listeners, &groups(), Some(true), None, 30);
    assert!(plan.changes.is_empty());
    assert!(plan.warnings[0].contains("connection-drain-timeout"));
}

#[test]
fn groups_no_listener_forwards_to_are_named_whatever_the_drain_annotations() {
    let listeners = vec![mk_listener(80, ListenerProtocol::Tcp, "rsp-a", None, None)];
    let ids = vec!["rsp-b".to_owned(), "rsp-a".to_owned(), "rsp-0".to_owned()];
    for drain in [None, Some(false), Some(true)] {
        let plan = plan_listener_drain(&listeners, &ids, drain, Some(30), 30);
        assert_eq!(plan.unbound, ["rsp-0", "rsp-b"], "{drain:?}");
    }
}
