//! Which pods get the finalizer, and when a deleted pod's backend is confirmed gone.

use super::*;

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
    let obs = mk_observation(vec![lowered.clone()], vec![mk_ecs_member("i-a", 2)]);
    assert!(!group_drained(Mode::Local, &place, false, &obs));
    // `ignore-weight-update`: the node keeps its weight, and the others keep it serving.
    let mut kept = mk_observation(vec![lowered], vec![mk_ecs_member("i-a", 3)]);
    kept.target.desired.keep_weights = true;
    assert!(group_drained(Mode::Local, &place, true, &kept));
    // `…-weight: "0"`: the node takes no SLB traffic at all.
    let zero = Backend::ecs("i-a", 30080, Weight::ZERO, BackendState::Active);
    let obs = mk_observation(vec![zero], vec![mk_ecs_member("i-a", 0)]);
    assert!(group_drained(Mode::Local, &place, true, &obs));
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

/// Endpoints as (address, node, ready, terminating).
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
                .map(|(ip, node, ready, terminating)| Endpoint {
                    addresses: vec![ip.into()],
                    node_name: Some(node.into()),
                    target_ref: Some(ObjectReference {
                        kind: Some("Pod".into()),
                        name: Some(format!("pod-{ip}")),
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

/// What the index answers for the pod with `pod_ip` on `node`, given `slices`.
fn other_serving_endpoint(
    service: &str,
    node: &str,
    pod_ip: &str,
    slices: &[EndpointSlice],
) -> bool {
    let mut index = ClusterIndex::new(PlannerConfig::default());
    for slice in slices {
        index.apply_endpoint_slice(slice);
    }
    let ips = [pod_ip.parse().unwrap()];
    index.other_serving_endpoint(&ServiceRef::new("shop", service), node, &ips)
}

#[test]
fn other_serving_endpoint_ignores_the_pod_itself_terminating_and_other_nodes() {
    let slices = [mk_slice(vec![
        ("10.0.0.7", "node-a", true, true),
        ("10.0.0.8", "node-a", false, true),
        ("10.0.0.9", "node-b", true, false),
    ])];
    assert!(!other_serving_endpoint(
        "web", "node-a", "10.0.0.7", &slices
    ));
    let slices = [mk_slice(vec![
        ("10.0.0.7", "node-a", true, true),
        ("10.0.0.3", "node-a", true, false),
    ])];
    assert!(other_serving_endpoint("web", "node-a", "10.0.0.7", &slices));
    assert!(!other_serving_endpoint(
        "api", "node-a", "10.0.0.7", &slices
    ));
    // The slice has not caught up with the deletion yet: the pod's own endpoint still
    // reads ready, and it is not another endpoint.
    let stale = [mk_slice(vec![("10.0.0.7", "node-a", true, false)])];
    assert!(!other_serving_endpoint("web", "node-a", "10.0.0.7", &stale));
}
