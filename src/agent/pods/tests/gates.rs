//! Readiness gates: when each mode's gate opens, and how gates are read and compared.

use super::*;

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

    // At weight 0 when the Service's weights want it there (`…-weight: "0"`).
    let ip: std::net::IpAddr = "10.0.0.7".parse().unwrap();
    let wanted_zero = |b: Backend| mk_observation(vec![b], vec![]);
    let mut eni_zero = wanted_zero(Backend::eni(ip, 8080, Weight::ZERO, BackendState::Active));
    eni_zero.backends = vec![mk_eni_member("10.0.0.7", 0)];
    assert!(gate_condition(gate, Mode::Eni, &place, &[&eni_zero]).status);
    let mut node_zero_wanted = wanted_zero(Backend::ecs(
        "i-a",
        30080,
        Weight::ZERO,
        BackendState::Active,
    ));
    node_zero_wanted.backends = vec![mk_ecs_member("i-a", 0)];
    assert!(gate_condition(gate, Mode::Cluster, &place, &[&node_zero_wanted]).status);
    // Not when the zero is a drain.
    let mut draining = wanted_zero(Backend::eni(ip, 8080, Weight::ZERO, BackendState::Draining));
    draining.backends = vec![mk_eni_member("10.0.0.7", 0)];
    assert!(!gate_condition(gate, Mode::Eni, &place, &[&draining]).status);
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
    pod.status.as_mut().unwrap().conditions = Some(vec![StoredPodCondition {
        type_: "registered.slb-sync.io/web".into(),
        status: "False".into(),
        reason: Some(REASON_NOT_REGISTERED.into()),
        ..StoredPodCondition::default()
    }]);
    assert!(gate_unchanged(&pod, &want));
}

#[test]
fn an_open_gate_is_never_closed() {
    let mut pod = mk_pod("web-0", &[("app", "web")]);
    let gate = "registered.slb-sync.io/web";
    // No group read yet (a fresh agent), or the backend at weight 0: want False.
    let closed = gate_condition(gate, Mode::Eni, &eni_place(), &[]);
    assert!(!gate_settled(&pod, &closed), "no condition yet: written");
    pod.status.as_mut().unwrap().conditions = Some(vec![StoredPodCondition {
        type_: gate.into(),
        status: "True".into(),
        reason: Some(REASON_REGISTERED.into()),
        ..StoredPodCondition::default()
    }]);
    assert!(gate_settled(&pod, &closed), "open: stays open");
    let open = mk_observation(vec![], vec![mk_eni_member("10.0.0.7", 100)]);
    let open = gate_condition(gate, Mode::Eni, &eni_place(), &[&open]);
    assert!(gate_settled(&pod, &open));
}

/// A pod on a virtual node (ECI) is an ENI backend of its own in Cluster and Local groups:
/// its gate and its drain go by its IP, not by the node.
#[test]
fn a_pod_on_a_virtual_node_is_found_by_its_ip_in_every_mode() {
    let mut node = mk_node(Some("cn-hangzhou.vk-1"));
    node.metadata.labels = Some(labels(&[("type", "virtual-kubelet")]));
    let place = pod_place(&mk_pod("web-0", &[]), Some(&node));
    assert!(place.virtual_node);
    assert!(!eni_place().virtual_node);
    let gate = "registered.slb-sync.io/web";
    let by_ip = mk_observation(vec![], vec![mk_eni_member("10.0.0.7", 100)]);
    let by_node = mk_observation(vec![], vec![mk_ecs_member("vk-1", 100)]);
    for mode in [Mode::Cluster, Mode::Local] {
        assert!(
            gate_condition(gate, mode, &place, &[&by_ip]).status,
            "{mode}"
        );
        assert!(
            !gate_condition(gate, mode, &place, &[&by_node]).status,
            "{mode}"
        );
        assert!(!group_drained(mode, &place, true, &by_ip), "{mode}");
        assert!(group_drained(mode, &place, false, &by_node), "{mode}");
    }
}
