//! The pure decisions of the pod side, on hand-built pods, Services and SLB members.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::core::v1::{
    Node, NodeSpec, Pod, PodCondition, PodIP, PodReadinessGate, PodSpec, PodStatus, Service,
    ServicePort, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::decide::*;
use super::ledger_from_pods;
use crate::desired::PlannerConfig;
use crate::k8s::names::{DRAINED_CONDITION, DRAIN_STARTED_AT_ANNOTATION, POD_FINALIZER};
use crate::model::{
    Backend, BackendKey, BackendState, BackendType, DesiredGroup, Mode, OwnerDescription, Protocol,
    SlbBackend, Weight,
};
use crate::reconcile::GroupTarget;

const LB_ID: &str = "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-id";

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn mk_service(name: &str, mode: Mode, selector: &[(&str, &str)]) -> Service {
    let mut annotations = labels(&[(LB_ID, "lb-1")]);
    if mode == Mode::Eni {
        annotations.insert(
            "service.beta.kubernetes.io/backend-type".into(),
            "eni".into(),
        );
    }
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("shop".into()),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            load_balancer_class: Some("slb-sync.io/slb".into()),
            external_traffic_policy: (mode == Mode::Local).then(|| "Local".into()),
            selector: Some(labels(selector)),
            ports: Some(vec![ServicePort {
                port: 80,
                node_port: Some(30080),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn mk_pod(name: &str, pod_labels: &[(&str, &str)]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("shop".into()),
            labels: Some(labels(pod_labels)),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some("node-a".into()),
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            pod_ip: Some("10.0.0.7".into()),
            pod_ips: Some(vec![PodIP {
                ip: "10.0.0.7".into(),
            }]),
            phase: Some("Running".into()),
            ..PodStatus::default()
        }),
    }
}

fn mk_deleting(mut pod: Pod, at: &str) -> Pod {
    pod.metadata.deletion_timestamp = Some(Time(at.parse().unwrap()));
    pod.metadata.finalizers = Some(vec![POD_FINALIZER.into()]);
    pod
}

fn mk_node(provider_id: Option<&str>) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some("node-a".into()),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            provider_id: provider_id.map(Into::into),
            ..NodeSpec::default()
        }),
        ..Node::default()
    }
}

fn owner() -> OwnerDescription {
    OwnerDescription::new(80, "web", "shop", "kubernetes")
}

fn mk_eni_member(ip: &str, weight: u32) -> SlbBackend {
    SlbBackend {
        server_id: "eni-1".into(),
        server_ip: Some(ip.parse().unwrap()),
        port: 8080,
        weight: Weight::new(weight).unwrap(),
        backend_type: BackendType::Eni,
        description: owner().to_string(),
    }
}

fn mk_ecs_member(id: &str, weight: u32) -> SlbBackend {
    SlbBackend {
        server_id: id.into(),
        server_ip: None,
        port: 30080,
        weight: Weight::new(weight).unwrap(),
        backend_type: BackendType::Ecs,
        description: owner().to_string(),
    }
}

fn mk_observation(desired: Vec<Backend>, backends: Vec<SlbBackend>) -> GroupObservation {
    GroupObservation {
        target: GroupTarget {
            load_balancer_id: "lb-1".into(),
            desired: DesiredGroup {
                service_port: 80,
                protocol: Protocol::Tcp,
                v_server_group_id: Some("rsp-1".into()),
                name: owner(),
                backends: desired,
            },
            drain_window: Duration::from_secs(30),
        },
        backends,
    }
}

fn eni_place() -> PodPlace {
    pod_place(
        &mk_pod("web-0", &[]),
        Some(&mk_node(Some("cn-hangzhou.i-a"))),
    )
}

#[test]
fn finalizer_goes_on_pods_of_managed_services_of_every_mode() {
    let pod = mk_pod("web-0", &[("app", "web"), ("tier", "front")]);
    let config = PlannerConfig::default();
    let eni = [mk_service("web", Mode::Eni, &[("app", "web")])];
    let backed = backed_services(&pod, &eni, &config);
    assert_eq!(
        backed,
        [BackedService {
            name: "web".into(),
            mode: Mode::Eni
        }]
    );
    assert!(needs_finalizer(&pod, &backed));

    let local = [mk_service("web", Mode::Local, &[("app", "web")])];
    assert!(needs_finalizer(
        &pod,
        &backed_services(&pod, &local, &config)
    ));

    // Cluster mode: the nodes stay, but kube-proxy forwards to the pod until it syncs.
    let cluster = [mk_service("web", Mode::Cluster, &[("app", "web")])];
    let backed = backed_services(&pod, &cluster, &config);
    assert_eq!(backed.len(), 1);
    assert!(needs_finalizer(&pod, &backed));
}

#[test]
fn no_finalizer_without_a_matching_managed_service() {
    let pod = mk_pod("web-0", &[("app", "web")]);
    let config = PlannerConfig::default();
    // Selector not a subset of the pod's labels.
    let other = [mk_service("web", Mode::Eni, &[("app", "web"), ("v", "2")])];
    assert!(backed_services(&pod, &other, &config).is_empty());
    // No selector at all selects nobody.
    let empty = [mk_service("web", Mode::Eni, &[])];
    assert!(backed_services(&pod, &empty, &config).is_empty());
    // Another namespace.
    let mut elsewhere = mk_service("web", Mode::Eni, &[("app", "web")]);
    elsewhere.metadata.namespace = Some("tools".into());
    assert!(backed_services(&pod, &[elsewhere], &config).is_empty());
    // Another class is never managed.
    let mut foreign = mk_service("web", Mode::Eni, &[("app", "web")]);
    foreign.spec.as_mut().unwrap().load_balancer_class = Some("example.com/lb".into());
    assert!(backed_services(&pod, &[foreign], &config).is_empty());
    // A bad annotation: the planner skips the Service, so it holds nobody.
    let mut bad = mk_service("web", Mode::Eni, &[("app", "web")]);
    bad.metadata.annotations.as_mut().unwrap().insert(
        "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-connection-drain-timeout".into(),
        "5".into(),
    );
    assert!(backed_services(&pod, &[bad], &config).is_empty());
}

#[test]
fn no_finalizer_on_pods_being_deleted_finished_or_already_held() {
    let config = PlannerConfig::default();
    let services = [mk_service("web", Mode::Eni, &[("app", "web")])];
    let mut deleting = mk_pod("web-0", &[("app", "web")]);
    deleting.metadata.deletion_timestamp = Some(Time("2026-01-01T00:00:00Z".parse().unwrap()));
    assert!(!needs_finalizer(
        &deleting,
        &backed_services(&deleting, &services, &config)
    ));
    let mut done = mk_pod("web-0", &[("app", "web")]);
    done.status.as_mut().unwrap().phase = Some("Succeeded".into());
    assert!(!needs_finalizer(
        &done,
        &backed_services(&done, &services, &config)
    ));
    let mut held = mk_pod("web-0", &[("app", "web")]);
    held.metadata.finalizers = Some(vec!["other.io/x".into(), POD_FINALIZER.into()]);
    assert!(!needs_finalizer(
        &held,
        &backed_services(&held, &services, &config)
    ));
}

#[test]
fn eni_drain_is_confirmed_only_when_the_ip_is_gone_and_no_longer_wanted() {
    let place = eni_place();
    let ip = "10.0.0.7".parse().unwrap();
    let draining = Backend::eni(ip, 8080, Weight::ZERO, BackendState::Draining);
    // Still a member at weight 0, draining: not yet.
    let obs = mk_observation(vec![draining.clone()], vec![mk_eni_member("10.0.0.7", 0)]);
    assert!(!group_drained(Mode::Eni, &place, false, &obs));
    // Removed: drained.
    let obs = mk_observation(vec![], vec![mk_eni_member("10.0.0.8", 100)]);
    assert!(group_drained(Mode::Eni, &place, false, &obs));
    // A pass planned before the deletion (pod still active in its target) cannot confirm,
    // even if the member is not (yet) there.
    let active = Backend::eni(ip, 8080, Weight::MAX, BackendState::Active);
    let obs = mk_observation(vec![active], vec![]);
    assert!(!group_drained(Mode::Eni, &place, false, &obs));
    // A foreign member with the same IP is not ours and does not hold the drain.
    let mut foreign = mk_eni_member("10.0.0.7", 100);
    foreign.description = "user-added".into();
    let obs = mk_observation(vec![], vec![foreign]);
    assert!(group_drained(Mode::Eni, &place, false, &obs));
}

#[test]
fn local_drain_needs_the_node_gone_unless_others_keep_serving_on_it() {
    let place = eni_place();
    assert_eq!(place.instance, Some(Some("i-a".into())));
    let node_draining = Backend::ecs("i-a", 30080, Weight::ZERO, BackendState::Draining);
    // Last endpoint on the node: weight 0 is the start of the drain, not its end.
    let obs = mk_observation(vec![node_draining], vec![mk_ecs_member("i-a", 0)]);
    assert!(!group_drained(Mode::Local, &place, false, &obs));
    assert!(!group_drained(Mode::Local, &place, true, &obs));
    // Removed.
    let obs = mk_observation(vec![], vec![mk_ecs_member("i-b", 1)]);
    assert!(group_drained(Mode::Local, &place, false, &obs));
    // Other endpoints stay on the node and the SLB has the lowered weight.
    let lowered = Backend::ecs("i-a", 30080, Weight::new(2).unwrap(), BackendState::Active);
    let obs = mk_observation(vec![lowered.clone()], vec![mk_ecs_member("i-a", 2)]);
    assert!(group_drained(Mode::Local, &place, true, &obs));
    // ...but not before the SLB carries it.
    let obs = mk_observation(vec![lowered.clone()], vec![mk_ecs_member("i-a", 3)]);
    assert!(!group_drained(Mode::Local, &place, true, &obs));
    // Without another serving endpoint on the node the weight match may be a stale plan.
    let obs = mk_observation(vec![lowered], vec![mk_ecs_member("i-a", 2)]);
    assert!(!group_drained(Mode::Local, &place, false, &obs));
}

#[test]
fn local_pods_on_nodes_the_slb_cannot_hold_are_drained_at_once() {
    let obs = mk_observation(vec![], vec![mk_ecs_member("i-a", 1)]);
    let bad_provider = pod_place(&mk_pod("web-0", &[]), Some(&mk_node(Some("garbage"))));
    assert!(group_drained(Mode::Local, &bad_provider, false, &obs));
    let mut unscheduled = mk_pod("web-0", &[]);
    unscheduled.spec.as_mut().unwrap().node_name = None;
    assert!(group_drained(
        Mode::Local,
        &pod_place(&unscheduled, None),
        false,
        &obs
    ));
    // A node missing from the cache is not known to be out of the SLB.
    let unknown = pod_place(&mk_pod("web-0", &[]), None);
    assert!(!group_drained(Mode::Local, &unknown, false, &obs));
}

fn mk_slice(endpoints: Vec<(&str, &str, bool, bool)>) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some("web-abc".into()),
            namespace: Some("shop".into()),
            labels: Some(labels(&[("kubernetes.io/service-name", "web")])),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".into(),
        endpoints: Some(
            endpoints
                .into_iter()
                .map(|(pod, node, ready, terminating)| Endpoint {
                    addresses: vec!["10.0.0.1".into()],
                    node_name: Some(node.into()),
                    target_ref: Some(ObjectReference {
                        name: Some(pod.into()),
                        ..ObjectReference::default()
                    }),
                    conditions: Some(EndpointConditions {
                        ready: Some(ready),
                        serving: Some(ready),
                        terminating: Some(terminating),
                    }),
                    ..Endpoint::default()
                })
                .collect(),
        ),
        ..EndpointSlice::default()
    }
}

#[test]
fn other_serving_endpoint_ignores_the_pod_itself_terminating_and_other_nodes() {
    let slices = [mk_slice(vec![
        ("web-0", "node-a", true, true),
        ("web-1", "node-a", false, true),
        ("web-2", "node-b", true, false),
    ])];
    assert!(!other_serving_endpoint(
        "shop", "web", "node-a", "web-0", &slices
    ));
    let slices = [mk_slice(vec![
        ("web-0", "node-a", true, true),
        ("web-3", "node-a", true, false),
    ])];
    assert!(other_serving_endpoint(
        "shop", "web", "node-a", "web-0", &slices
    ));
    assert!(!other_serving_endpoint(
        "shop", "api", "node-a", "web-0", &slices
    ));
}

#[test]
fn eni_and_cluster_gates_open_only_with_the_backend_at_positive_weight_in_every_group() {
    let place = eni_place();
    let gate = "registered.slb-sync.io/web";
    let none = gate_condition(gate, Mode::Eni, &place, &[]);
    assert_eq!((none.status, none.reason), (false, REASON_NOT_REGISTERED));

    let present = mk_observation(vec![], vec![mk_eni_member("10.0.0.7", 100)]);
    let zero = mk_observation(vec![], vec![mk_eni_member("10.0.0.7", 0)]);
    let absent = mk_observation(vec![], vec![mk_eni_member("10.0.0.9", 100)]);
    let open = gate_condition(gate, Mode::Eni, &place, &[&present]);
    assert_eq!((open.status, open.reason), (true, REASON_REGISTERED));
    assert!(!gate_condition(gate, Mode::Eni, &place, &[&zero]).status);
    assert!(!gate_condition(gate, Mode::Eni, &place, &[&absent]).status);
    let mut second = absent.clone();
    second.target.desired.service_port = 443;
    let partial = gate_condition(gate, Mode::Eni, &place, &[&present, &second]);
    assert!(!partial.status);
    assert!(partial.message.contains("443"), "{}", partial.message);

    // Cluster: the node's instance, at weight > 0.
    let node = mk_observation(vec![], vec![mk_ecs_member("i-a", 100)]);
    assert!(gate_condition(gate, Mode::Cluster, &place, &[&node]).status);
    let node_zero = mk_observation(vec![], vec![mk_ecs_member("i-a", 0)]);
    assert!(!gate_condition(gate, Mode::Cluster, &place, &[&node_zero]).status);
    let other_node = mk_observation(vec![], vec![mk_ecs_member("i-b", 100)]);
    assert!(!gate_condition(gate, Mode::Cluster, &place, &[&other_node]).status);
}

#[test]
fn local_gate_opens_with_the_node_present_and_wanted_at_any_weight() {
    let place = eni_place();
    let gate = "registered.slb-sync.io/web";
    let want = |weight: u32, state| {
        vec![Backend::ecs(
            "i-a",
            30080,
            Weight::new(weight).unwrap(),
            state,
        )]
    };
    // The node held at weight 0 while the pod's endpoint is only bootstrap-admitted: open
    // (kube-proxy has no rule before the pod is Ready, so weight > 0 must wait for it).
    let warming = mk_observation(want(0, BackendState::Active), vec![mk_ecs_member("i-a", 0)]);
    let open = gate_condition(gate, Mode::Local, &place, &[&warming]);
    assert_eq!((open.status, open.reason), (true, REASON_REGISTERED));
    let serving = mk_observation(want(3, BackendState::Active), vec![mk_ecs_member("i-a", 3)]);
    assert!(gate_condition(gate, Mode::Local, &place, &[&serving]).status);
    // Not yet added by the pass, or a pass planned while the node was leaving: closed.
    let absent = mk_observation(want(0, BackendState::Active), vec![mk_ecs_member("i-b", 1)]);
    assert!(!gate_condition(gate, Mode::Local, &place, &[&absent]).status);
    let draining = mk_observation(
        want(0, BackendState::Draining),
        vec![mk_ecs_member("i-a", 0)],
    );
    assert!(!gate_condition(gate, Mode::Local, &place, &[&draining]).status);
    let unwanted = mk_observation(vec![], vec![mk_ecs_member("i-a", 0)]);
    assert!(!gate_condition(gate, Mode::Local, &place, &[&unwanted]).status);
}

#[test]
fn gates_are_read_from_the_spec_and_compared_with_status_and_reason() {
    let mut pod = mk_pod("web-0", &[]);
    pod.spec.as_mut().unwrap().readiness_gates = Some(vec![
        PodReadinessGate {
            condition_type: "registered.slb-sync.io/web".into(),
        },
        PodReadinessGate {
            condition_type: "service.readiness.alibabacloud.com/api".into(),
        },
        PodReadinessGate {
            condition_type: "example.com/other".into(),
        },
    ]);
    assert_eq!(
        declared_gates(&pod),
        [
            ("registered.slb-sync.io/web".to_string(), "web".to_string()),
            (
                "service.readiness.alibabacloud.com/api".to_string(),
                "api".to_string()
            ),
        ]
    );
    let want = gate_condition("registered.slb-sync.io/web", Mode::Eni, &eni_place(), &[]);
    assert!(!gate_unchanged(&pod, &want));
    pod.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
        type_: "registered.slb-sync.io/web".into(),
        status: "False".into(),
        reason: Some(REASON_NOT_REGISTERED.into()),
        ..PodCondition::default()
    }]);
    assert!(gate_unchanged(&pod, &want));
}

#[test]
fn fail_open_deadline_is_the_kill_time_plus_margin() {
    // deletionTimestamp already carries the grace period (deletion time + grace).
    let mut pod = mk_deleting(mk_pod("web-0", &[]), "2026-01-01T00:00:30Z");
    pod.metadata.deletion_grace_period_seconds = Some(30);
    let margin = Duration::from_secs(15);
    let allowance = Duration::from_secs(5);
    assert_eq!(
        fail_open_deadline(&pod, margin, allowance),
        Some("2026-01-01T00:00:45Z".parse().unwrap())
    );
    // The spec's grace period is not added a second time.
    pod.spec.as_mut().unwrap().termination_grace_period_seconds = Some(120);
    assert_eq!(
        fail_open_deadline(&pod, margin, allowance),
        Some("2026-01-01T00:00:45Z".parse().unwrap())
    );
    assert_eq!(
        fail_open_deadline(&mk_pod("web-0", &[]), margin, allowance),
        None
    );
}

#[test]
fn fail_open_deadline_never_comes_before_the_kube_proxy_allowance_ends() {
    // Deleted at 00:00:00 (stamp truncated: up to 00:00:01) with a 10 s grace period, a
    // 60 s allowance: the handshake could complete at 00:01:01 at the earliest, so the
    // margin counts from there.
    let mut pod = mk_deleting(mk_pod("web-0", &[]), "2026-01-01T00:00:10Z");
    pod.metadata.deletion_grace_period_seconds = Some(10);
    assert_eq!(
        fail_open_deadline(&pod, Duration::from_secs(15), Duration::from_secs(60)),
        Some("2026-01-01T00:01:16Z".parse().unwrap())
    );
}

#[test]
fn drained_reads_the_condition() {
    let mut pod = mk_deleting(mk_pod("web-0", &[]), "2026-01-01T00:00:00Z");
    assert!(!is_drained(&pod));
    pod.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
        type_: DRAINED_CONDITION.into(),
        status: "True".into(),
        ..PodCondition::default()
    }]);
    assert!(is_drained(&pod));
}

#[test]
fn journal_annotation_merges_entries_and_goes_when_empty() {
    let t1: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let t2: jiff::Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
    let one = merge_journal(None, "rsp-1:8080", Some(t1))
        .unwrap()
        .unwrap();
    assert_eq!(one, r#"{"rsp-1:8080":"2026-01-01T00:00:00Z"}"#);
    let two = merge_journal(Some(&one), "rsp-2:8080", Some(t2))
        .unwrap()
        .unwrap();
    assert_eq!(
        two,
        r#"{"rsp-1:8080":"2026-01-01T00:00:00Z","rsp-2:8080":"2026-01-01T00:01:00Z"}"#
    );
    assert_eq!(merge_journal(Some(&two), "rsp-2:8080", Some(t2)), None);
    let back = merge_journal(Some(&two), "rsp-2:8080", None).unwrap();
    assert_eq!(back.as_deref(), Some(one.as_str()));
    assert_eq!(merge_journal(Some(&one), "rsp-1:8080", None), Some(None));
    assert_eq!(merge_journal(Some(&one), "rsp-9:1", None), None);
    // Garbage is not fatal: it is replaced.
    assert!(merge_journal(Some("not json"), "rsp-1:8080", Some(t1)).is_some());
    assert_eq!(split_journal_key("rsp-1:8080"), Some(("rsp-1", 8080)));
    assert_eq!(split_journal_key("rsp-1"), None);
    assert_eq!(split_journal_key(":80"), None);
}

#[test]
fn ledger_is_restored_from_journal_annotations() {
    let mut pod = mk_pod("web-0", &[]);
    pod.metadata.annotations = Some(labels(&[(
        DRAIN_STARTED_AT_ANNOTATION,
        r#"{"rsp-1:8080":"2026-01-01T00:00:00Z","bad":"x"}"#,
    )]));
    let plain = mk_pod("web-1", &[]);
    let ledger = ledger_from_pods([&pod, &plain]);
    assert_eq!(ledger.len(), 1);
    let key = BackendKey::Eni {
        server_ip: "10.0.0.7".parse().unwrap(),
        port: 8080,
    };
    assert_eq!(
        ledger.started_at("rsp-1", &key),
        Some("2026-01-01T00:00:00Z".parse().unwrap())
    );
}
