//! Which Services each kind of change affects, and that the index forgets what it should.

use super::fixtures::*;
use super::*;
use crate::annotations::BACKEND_LABEL;
use crate::desired::{plan_all, plan_service};

fn names(a: &Affected) -> Vec<String> {
    a.services.iter().map(ToString::to_string).collect()
}

/// Cluster services `c1`, `c2` (all nodes), `cp` (pool=a); Local `l`, ENI `e`;
/// nodes n1 (pool=a), n2; endpoints of `l`, `e` and `c1` on n1.
fn cluster() -> ClusterIndex {
    let mut index = ClusterIndex::new(PlannerConfig::default());
    index.reset_nodes(&[
        label(mk_node("n1", "i-a"), "pool", "a"),
        mk_node("n2", "i-b"),
    ]);
    index.reset_services(&[
        mk_service("c1"),
        mk_service("c2"),
        annotate(mk_service("cp"), BACKEND_LABEL, "pool=a"),
        local(mk_service("l")),
        eni(mk_service("e")),
    ]);
    for svc in ["l", "e", "c1"] {
        index.apply_endpoint_slice(&mk_slice(svc, "1", vec![ready("10.0.0.1", "n1")]));
    }
    index
}

#[test]
fn service_changes_affect_that_service_when_managed_or_no_longer_managed() {
    let mut index = cluster();
    assert!(
        index.apply_service(&mk_service("c1")).is_empty(),
        "unchanged"
    );
    let changed = annotate(
        mk_service("c1"),
        crate::annotations::VGROUP_PORT,
        "rsp-1:80",
    );
    assert_eq!(names(&index.apply_service(&changed)), ["default/c1"]);

    let mut unmanaged = mk_service("x");
    unmanaged.spec.as_mut().unwrap().load_balancer_class = Some("other".into());
    assert!(index.apply_service(&unmanaged).is_empty());

    let mut now_unmanaged = mk_service("c2");
    now_unmanaged.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    assert_eq!(names(&index.apply_service(&now_unmanaged)), ["default/c2"]);
    assert_eq!(
        plan_service(&index, &ServiceRef::new("default", "c2")),
        None
    );

    assert_eq!(
        names(&index.delete_service(&mk_service("l"))),
        ["default/l"]
    );
    assert!(index.delete_service(&mk_service("l")).is_empty());

    let reset = index.reset_services(&[mk_service("c1"), mk_service("new")]);
    assert_eq!(
        names(&reset),
        ["default/c1", "default/cp", "default/e", "default/new"]
    );
    let planned: Vec<_> = plan_all(&index).into_iter().map(|d| d.service).collect();
    assert_eq!(planned, ["default/c1", "default/new"]);
}

fn draining(a: &Affected) -> Vec<String> {
    a.draining.iter().map(ToString::to_string).collect()
}

#[test]
fn a_slice_that_loses_a_ready_endpoint_names_its_service_as_draining() {
    let mut index = cluster();
    let slice = |eps| mk_slice("e", "1", eps);
    // A new endpoint, ready or not: nothing to take down.
    let grown = index.apply_endpoint_slice(&slice(vec![
        ready("10.0.0.1", "n1"),
        not_ready("10.0.0.2", "n2"),
    ]));
    assert_eq!(
        (names(&grown), draining(&grown)),
        (vec!["default/e".into()], vec![])
    );
    // The old pod terminates: its backend must go down.
    let ended = index.apply_endpoint_slice(&slice(vec![
        terminating("10.0.0.1", "n1"),
        not_ready("10.0.0.2", "n2"),
    ]));
    assert_eq!(draining(&ended), ["default/e"]);
    // The new one becomes ready: nothing lost.
    let became_ready = index.apply_endpoint_slice(&slice(vec![
        terminating("10.0.0.1", "n1"),
        ready("10.0.0.2", "n2"),
    ]));
    assert!(became_ready.draining.is_empty());
    // A ready endpoint failing its probe, and a slice deleted, lose ready endpoints too.
    let unready = index.apply_endpoint_slice(&slice(vec![not_ready("10.0.0.2", "n2")]));
    assert_eq!(draining(&unready), ["default/e"]);
    index.apply_endpoint_slice(&slice(vec![ready("10.0.0.2", "n2")]));
    assert_eq!(
        draining(&index.delete_endpoint_slice(&slice(vec![]))),
        ["default/e"]
    );
    // A Cluster-mode Service's endpoints change no backend.
    let cluster = index.apply_endpoint_slice(&mk_slice("c1", "1", vec![]));
    assert!(cluster.draining.is_empty());
}

#[test]
fn slice_changes_affect_local_and_eni_owners_not_cluster_ones() {
    let mut index = cluster();
    let next = |svc| {
        mk_slice(
            svc,
            "1",
            vec![ready("10.0.0.1", "n1"), ready("10.0.0.2", "n2")],
        )
    };
    assert_eq!(
        names(&index.apply_endpoint_slice(&next("l"))),
        ["default/l"]
    );
    assert!(
        index.apply_endpoint_slice(&next("l")).is_empty(),
        "unchanged"
    );
    assert_eq!(
        names(&index.apply_endpoint_slice(&next("e"))),
        ["default/e"]
    );
    assert!(index.apply_endpoint_slice(&next("c1")).is_empty());
    assert!(index.apply_endpoint_slice(&next("unknown")).is_empty());
    // With a virtual node in the cluster, Cluster-mode groups hold pods too (those on it).
    let vk = label(mk_node("vk", "vk-1"), "type", "virtual-kubelet");
    index.apply_node(&vk);
    let on_vk = mk_slice("c1", "1", vec![ready("10.0.9.1", "vk")]);
    assert_eq!(names(&index.apply_endpoint_slice(&on_vk)), ["default/c1"]);
    index.delete_node(&vk);
    assert!(index
        .apply_endpoint_slice(&mk_slice("c1", "1", vec![]))
        .is_empty());

    // Relabelled to another Service: both sides change.
    let mut moved = next("l");
    moved.metadata.labels = Some([(SERVICE_NAME_LABEL.to_owned(), "e".to_owned())].into());
    assert_eq!(
        names(&index.apply_endpoint_slice(&moved)),
        ["default/e", "default/l"]
    );

    assert_eq!(names(&index.delete_endpoint_slice(&moved)), ["default/e"]);
    assert_eq!(
        names(&index.reset_endpoint_slices(&[next("l")])),
        ["default/e", "default/l"]
    );
    assert_eq!(index.stats().endpoint_slices, 1);
}

#[test]
fn node_change_affects_the_shared_node_set_users_and_local_services_on_it() {
    let mut index = cluster();
    let before = plan_all(&index);
    assert_eq!(index.stats().cached_node_sets, 2);

    let a = index.apply_node(&taint(
        label(mk_node("n1", "i-a"), "pool", "a"),
        DRAIN_TAINTS[1],
    ));
    assert_eq!(
        names(&a),
        ["default/c1", "default/c2", "default/cp", "default/l"]
    );
    let mut sets: Vec<_> = a
        .node_sets
        .iter()
        .map(|s| (s.backend_labels.clone(), s.services))
        .collect();
    sets.sort();
    assert_eq!(sets, [(vec![], 2), (vec![("pool".into(), "a".into())], 1)]);
    assert_eq!(
        index.stats().cached_node_sets,
        0,
        "changed sets are recomputed"
    );
    let c1 = plan_service(&index, &ServiceRef::new("default", "c1")).unwrap();
    assert_eq!(
        c1.groups[0].backends[0].state,
        crate::model::BackendState::Draining
    );
    assert_ne!(plan_all(&index), before);

    // n2 is in no Local Service's way and outside pool=a.
    let b = index.apply_node(&unschedulable(mk_node("n2", "i-b")));
    assert!(
        b.is_empty(),
        "unschedulable without remove-unscheduled changes nothing"
    );
    let b = index.apply_node(&taint(mk_node("n2", "i-b"), DRAIN_TAINTS[0]));
    assert_eq!(names(&b), ["default/c1", "default/c2"]);
    plan_all(&index);
    assert_eq!(index.stats().cached_node_sets, 2);

    // A label no selector reads changes no output.
    let n2 = label(
        taint(mk_node("n2", "i-b"), DRAIN_TAINTS[0]),
        "unrelated",
        "x",
    );
    assert!(index.apply_node(&n2).is_empty());
    assert_eq!(
        index.stats().cached_node_sets,
        2,
        "unaltered sets stay cached"
    );

    assert_eq!(names(&index.delete_node(&n2)), ["default/c1", "default/c2"]);
    let reset = index.reset_nodes(&[mk_node("n3", "i-c")]);
    assert_eq!(
        names(&reset),
        ["default/c1", "default/c2", "default/cp", "default/l"]
    );
}

#[test]
fn excluded_node_coming_and_going_changes_nothing() {
    let mut index = cluster();
    let master = label(mk_node("m1", "i-m"), EXCLUDE_LABELS[3], "");
    assert!(index.apply_node(&master).is_empty());
    assert!(index.delete_node(&master).is_empty());
}

#[test]
fn pod_gate_changes_affect_the_gated_local_and_eni_services() {
    let mut index = cluster();
    let gates = [
        "registered.slb-sync.io/e",
        "service.readiness.alibabacloud.com/l",
    ];
    let p = mk_pod("p1", &gates, false);
    assert_eq!(names(&index.apply_pod(&p)), ["default/e", "default/l"]);
    assert!(index.apply_pod(&p).is_empty(), "unchanged");
    assert_eq!(
        names(&index.apply_pod(&mk_pod("p1", &gates, true))),
        ["default/e", "default/l"]
    );
    assert!(index
        .apply_pod(&mk_pod("p2", &["registered.slb-sync.io/c1"], true))
        .is_empty());
    assert!(index.apply_pod(&mk_pod("p3", &[], true)).is_empty());
    assert_eq!(
        index.stats().gated_pods,
        2,
        "pods without a gate are not stored"
    );
    assert_eq!(names(&index.delete_pod(&p)), ["default/e", "default/l"]);
    assert!(index.reset_pods(&[]).is_empty());
    assert_eq!(index.stats().gated_pods, 0);
}

#[test]
fn unmanaged_services_are_not_stored() {
    let mut index = ClusterIndex::new(PlannerConfig::default());
    let mut other = mk_service("x");
    other.spec.as_mut().unwrap().load_balancer_class = Some("other".into());
    index.apply_service(&other);
    assert_eq!(index.stats().managed_services, 0);
}

#[test]
fn a_relist_applied_object_by_object_then_retained_ends_as_a_reset() {
    let listed_nodes = [mk_node("n2", "i-b"), mk_node("n3", "i-c")];
    let listed_services = [
        mk_service("c1"),
        local(mk_service("l")),
        eni(mk_service("e")),
    ];
    let listed_slices = [mk_slice("l", "1", vec![ready("10.0.0.3", "n3")])];

    let mut reset = cluster();
    reset.reset_nodes(&listed_nodes);
    reset.reset_services(&listed_services);
    reset.reset_endpoint_slices(&listed_slices);

    // As the watcher does it: apply each listed object, then drop what the list lacked.
    let mut relisted = cluster();
    let mut nodes = Listed::default();
    for n in &listed_nodes {
        nodes.note_node(&n.metadata);
        relisted.apply_node(n);
    }
    let gone_nodes = relisted.retain_nodes(&nodes);
    let mut services = Listed::default();
    for svc in &listed_services {
        services.note(&svc.metadata);
        relisted.apply_service(svc);
    }
    let gone_services = relisted.retain_services(&services);
    let mut slices = Listed::default();
    for slice in &listed_slices {
        slices.note(&slice.metadata);
        relisted.apply_endpoint_slice(slice);
    }
    let gone_slices = relisted.retain_endpoint_slices(&slices);

    assert_eq!(plan_all(&relisted), plan_all(&reset));
    assert_eq!(relisted.stats(), reset.stats());
    assert!(!gone_nodes.is_empty(), "n1 left: its users are affected");
    assert_eq!(names(&gone_services), ["default/c2", "default/cp"]);
    assert_eq!(names(&gone_slices), ["default/e"]);
    assert_eq!(draining(&gone_slices), ["default/e"]);
}

#[test]
fn node_users_follow_slice_updates() {
    let mut index = cluster();
    let tainted = |n: &str, id: &str| taint(mk_node(n, id), DRAIN_TAINTS[0]);
    // Same nodes, readiness flipped: updated in place, n1 still reaches `l`.
    let flipped = mk_slice("l", "1", vec![not_ready("10.0.0.1", "n1")]);
    assert_eq!(names(&index.apply_endpoint_slice(&flipped)), ["default/l"]);
    let moved = mk_slice("l", "1", vec![ready("10.0.0.1", "n2")]);
    assert!(names(&index.apply_node(&tainted("n1", "i-a"))).contains(&"default/l".to_owned()));
    // The endpoint moved to n2: n1 no longer concerns `l`, n2 does.
    assert_eq!(names(&index.apply_endpoint_slice(&moved)), ["default/l"]);
    let n1 = label(mk_node("n1", "i-a"), "pool", "a");
    assert!(!names(&index.apply_node(&n1)).contains(&"default/l".to_owned()));
    assert!(names(&index.apply_node(&tainted("n2", "i-b"))).contains(&"default/l".to_owned()));
}

#[test]
fn the_index_can_be_shared_between_tasks() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<ClusterIndex>();
    send_sync::<Affected>();
}
