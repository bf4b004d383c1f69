//! The `--slb-state` document and offline plans over it.

use std::collections::BTreeMap;

use super::*;
use crate::model::BackendState::Active;
use crate::model::{BackendKey, DesiredService, Mode};
use crate::plan::{match_group, plan_offline, GroupMatch, OfflineOptions, SlbState, StateError};

const STATE: &str = r#"{
  "groups": [
    {"vServerGroupId": "rsp-web", "loadBalancerId": "lb-1",
     "backends": [
       {"serverId": "i-001", "port": 30080, "weight": 0, "type": "ecs",
        "description": "k8s/80/web/default/c1"},
       {"serverId": "i-002", "serverIp": "192.168.0.2", "port": 30080, "weight": 100,
        "type": "ecs", "description": "k8s/80/web/default/c1"},
       {"serverId": "i-900", "port": 30080, "weight": 100, "type": "ecs", "description": "mine"}
     ]},
    {"vServerGroupId": "rsp-named", "vServerGroupName": "k8s/443/web/default/c1",
     "loadBalancerId": "lb-1",
     "backends": [
       {"serverId": "eni-7", "serverIp": "10.0.0.7", "port": 8443, "weight": 100, "type": "eni",
        "description": "k8s/443/web/default/c1"}
     ]}
  ],
  "drains": [
    {"vServerGroupId": "rsp-web", "serverId": "i-001", "serverIp": "192.168.0.1", "port": 30080,
     "startedAt": "2027-01-15T08:00:00Z"}
  ]
}"#;

#[test]
fn parses_the_documented_state_with_optional_fields_absent() {
    let state = SlbState::from_json(STATE).unwrap();
    assert_eq!(state.groups.len(), 2);
    assert_eq!(state.groups[0].v_server_group_name, "");
    let ledger = state.ledger().unwrap();
    // The record names an IP too, but matches the ECS backend i-001 in its group.
    let key = BackendKey::Ecs {
        server_id: "i-001".into(),
        port: 30080,
    };
    assert_eq!(ledger.started_at("rsp-web", &key), Some(mk_ts(0)));
    assert_eq!(
        state.eni_ids().get(&mk_ip("10.0.0.7")).map(String::as_str),
        Some("eni-7")
    );
    // Written back, the ledger has the same form.
    let records = serde_json::to_value(ledger.records()).unwrap();
    assert_eq!(
        records,
        serde_json::json!([{"vServerGroupId": "rsp-web", "serverId": "i-001", "serverIp": null,
            "port": 30080, "startedAt": "2027-01-15T08:00:00Z"}])
    );
}

#[test]
fn bad_state_documents_are_rejected_with_a_useful_message() {
    let err = SlbState::from_json(r#"{"groups": [{"vServerGroupId": "rsp-1"}]}"#).unwrap_err();
    assert!(matches!(err, StateError::Json { .. }));
    assert!(err.to_string().contains("loadBalancerId"), "{err}");

    let err = SlbState::from_json(
        r#"{"groups": [], "drains": [{"vServerGroupId": "rsp-1", "port": 80,
            "startedAt": "2027-01-15T08:00:00Z"}]}"#,
    )
    .unwrap_err();
    assert!(
        matches!(err, StateError::DrainWithoutBackend { index: 0, .. }),
        "{err}"
    );

    let group = r#"{"vServerGroupId": "rsp-1", "loadBalancerId": "lb-1"}"#;
    let err = SlbState::from_json(&format!(r#"{{"groups": [{group}, {group}]}}"#)).unwrap_err();
    assert!(matches!(err, StateError::DuplicateGroup(ref g) if g == "rsp-1"));

    let err = SlbState::from_json(
        r#"{"groups": [{"vServerGroupId": "rsp-1", "loadBalancerId": "lb-1",
            "backends": [{"serverId": "i-1", "port": 80, "weight": 101, "type": "ecs"}]}]}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("weight 101"), "{err}");
}

fn web_service() -> DesiredService {
    let mut by_id = mk_desired(vec![mk_ecs(2, 100, Active), mk_ecs(3, 100, Active)]);
    by_id.v_server_group_id = Some("rsp-web".into());
    let by_name = DesiredGroup {
        service_port: 443,
        protocol: Protocol::Tcp,
        v_server_group_id: None,
        name: OwnerDescription::new(443, "web", "default", "c1"),
        backends: vec![Backend::eni(mk_ip("10.0.0.7"), 8443, mk_w(100), Active)],
        keep_weights: false,
    };
    DesiredService {
        service: "default/web".into(),
        load_balancer_id: Some("lb-1".into()),
        mode: Mode::Cluster,
        groups: vec![by_id, by_name],
        errors: vec![],
        unsupported_annotations: vec![],
    }
}

#[test]
fn groups_match_by_vgroup_port_id_or_by_owner_name() {
    let state = SlbState::from_json(STATE).unwrap();
    let service = web_service();
    let lb = Some("lb-1");
    assert!(matches!(match_group(&service.groups[0], lb, &state.groups),
        GroupMatch::Found(g) if g.v_server_group_id == "rsp-web"));
    assert!(matches!(match_group(&service.groups[1], lb, &state.groups),
        GroupMatch::Found(g) if g.v_server_group_id == "rsp-named"));
    // Same name on another instance is not ours.
    assert_eq!(
        match_group(&service.groups[1], Some("lb-2"), &state.groups),
        GroupMatch::ToCreate
    );
    let mut missing = service.groups[0].clone();
    missing.v_server_group_id = Some("rsp-gone".into());
    assert_eq!(
        match_group(&missing, lb, &state.groups),
        GroupMatch::NamedMissing
    );
}

#[test]
fn offline_plan_uses_the_services_drain_window_and_the_ledger() {
    let state = SlbState::from_json(STATE).unwrap();
    let services = vec![web_service()];
    // Default window 30 s: i-001 has drained since t0, so at t0+30 it is removed.
    let plans = plan_offline(&services, &state, mk_ts(30), &OfflineOptions::default()).unwrap();
    let web = &plans[0].groups[0].plan;
    assert_eq!(
        summary(&web.steps),
        vec![
            (StepAction::Add, ids(&[("i-003", 100)])),
            (StepAction::Remove, ids(&[("i-001", 0)])),
        ]
    );
    assert!(plans[0].groups[1].plan.steps.is_empty());
    assert_eq!(
        plans[0].groups[1].v_server_group_id.as_deref(),
        Some("rsp-named")
    );

    // The Service's own window of 60 s keeps it draining until t0+60.
    let options = OfflineOptions {
        drain_windows: BTreeMap::from([("default/web".to_owned(), 60)]),
        ..OfflineOptions::default()
    };
    let plans = plan_offline(&services, &state, mk_ts(30), &options).unwrap();
    let web = &plans[0].groups[0].plan;
    assert_eq!(
        summary(&web.steps),
        vec![(StepAction::Add, ids(&[("i-003", 100)]))]
    );
    assert_eq!(web.requeue_at, Some(mk_ts(60)));

    let json = serde_json::to_value(&plans[0].groups[0]).unwrap();
    assert_eq!(json["servicePort"], 80);
    assert_eq!(json["vServerGroupId"], "rsp-web");
    assert_eq!(json["requeueAt"], "2027-01-15T08:01:00Z");
    assert_eq!(json["steps"][0]["action"], "add");
}

#[test]
fn offline_plan_names_missing_groups() {
    let state = SlbState::from_json(r#"{"groups": []}"#).unwrap();
    let plans = plan_offline(
        &[web_service()],
        &state,
        mk_ts(0),
        &OfflineOptions::default(),
    )
    .unwrap();
    let by_id = &plans[0].groups[0];
    assert!(by_id.plan.steps.is_empty());
    assert!(by_id.plan.warnings[0].contains("rsp-web"));
    let by_name = &plans[0].groups[1];
    assert_eq!(by_name.v_server_group_id, None);
    assert!(by_name
        .plan
        .warnings
        .iter()
        .any(|w| w.contains("will be created")));
    // No ENI id known offline for 10.0.0.7 without a group holding it.
    assert_eq!(by_name.plan.unresolved_eni_ips, vec![mk_ip("10.0.0.7")]);
}

#[test]
fn drain_windows_come_from_the_annotations_when_drain_is_on() {
    use crate::model::LbSpec;
    let on = LbSpec {
        connection_drain: Some(true),
        connection_drain_timeout: Some(120),
        ..LbSpec::default()
    };
    let off = LbSpec {
        connection_drain: Some(false),
        connection_drain_timeout: Some(120),
        ..LbSpec::default()
    };
    let options =
        OfflineOptions::with_specs(45, [("a/on".to_owned(), &on), ("a/off".to_owned(), &off)]);
    assert_eq!(options.drain_windows.get("a/on"), Some(&120));
    assert_eq!(options.drain_windows.get("a/off"), Some(&45));
    assert_eq!(options.default_drain_secs, 45);
}
