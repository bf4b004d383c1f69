//! ENI mode: pod IP backends, target ports, gate bootstrap, dual stack.

use super::*;
use crate::index::fixtures::*;
use k8s_openapi::api::discovery::v1::Endpoint;

fn eni_index(endpoints: Vec<Endpoint>) -> ClusterIndex {
    let mut index = index_with(&[eni(mk_service("web"))], &[mk_node("n1", "i-a")]);
    index.apply_endpoint_slice(&mk_slice("web", "1", endpoints));
    index
}

#[test]
fn one_backend_per_endpoint_address_counted_active_terminating_draining() {
    let index = eni_index(vec![
        ready("10.0.0.2", "n1"),
        ready("10.0.0.10", "n1"),
        terminating("10.0.0.3", "n1"),
        not_ready("10.0.0.4", "n1"),
    ]);
    let ds = plan(&index, "web");
    assert!(ds.errors.is_empty(), "{:?}", ds.errors);
    assert!(ds.groups[0]
        .backends
        .iter()
        .all(|b| b.backend_type == BackendType::Eni && b.server_id.is_none()));
    // Ordered by the IP as text.
    assert_eq!(
        backends(&index, "web"),
        [
            "10.0.0.10:8080/100/active",
            "10.0.0.2:8080/100/active",
            "10.0.0.3:8080/0/draining"
        ]
    );
}

#[test]
fn named_target_ports_resolve_through_the_slice_port_with_the_service_port_name() {
    let svc = with_ports(
        eni(mk_service("web")),
        &[
            ("http", 80, None, "web-http"),
            ("metrics", 9100, None, "9100"),
        ],
    );
    let mut index = index_with(&[svc], &[]);
    // Pods in different slices may map the name to different container ports.
    index.apply_endpoint_slice(&mk_slice_full(
        "default",
        "web",
        "a",
        "IPv4",
        &[("http", 8080), ("metrics", 9100)],
        vec![ready("10.0.0.1", "n1")],
    ));
    index.apply_endpoint_slice(&mk_slice_full(
        "default",
        "web",
        "b",
        "IPv4",
        &[("http", 8081)],
        vec![ready("10.0.0.2", "n1")],
    ));
    let ds = plan(&index, "web");
    let by_port: Vec<Vec<String>> = ds
        .groups
        .iter()
        .map(|g| g.backends.iter().map(show).collect())
        .collect();
    assert_eq!(
        by_port,
        [
            vec!["10.0.0.1:8080/100/active", "10.0.0.2:8081/100/active"],
            // Slice b lacks "metrics": the numeric targetPort is used as is.
            vec!["10.0.0.1:9100/100/active", "10.0.0.2:9100/100/active"],
        ]
    );
    assert!(ds.errors.is_empty(), "{:?}", ds.errors);
}

#[test]
fn named_target_port_without_a_match_is_an_error_for_that_slice() {
    let svc = with_ports(eni(mk_service("web")), &[("http", 80, None, "web-http")]);
    let mut index = index_with(&[svc], &[]);
    index.apply_endpoint_slice(&mk_slice_full(
        "default",
        "web",
        "a",
        "IPv4",
        &[("other", 8080)],
        vec![ready("10.0.0.1", "n1")],
    ));
    index.apply_endpoint_slice(&mk_slice_full(
        "default",
        "web",
        "b",
        "IPv4",
        &[("http", 8080)],
        vec![ready("10.0.0.2", "n1")],
    ));
    let ds = plan(&index, "web");
    assert_eq!(backends(&index, "web"), ["10.0.0.2:8080/100/active"]);
    assert_eq!(ds.errors.len(), 1);
    assert!(ds.errors[0].contains("web-a") && ds.errors[0].contains("http"));
}

#[test]
fn dual_stack_slices_give_ipv4_and_ipv6_backends() {
    let mut index = eni_index(vec![ready("10.0.0.1", "n1")]);
    index.apply_endpoint_slice(&mk_slice_full(
        "default",
        "web",
        "v6",
        "IPv6",
        &[("", 8080)],
        vec![ready("fd00::1", "n1"), terminating("fd00::2", "n1")],
    ));
    assert_eq!(
        backends(&index, "web"),
        [
            "10.0.0.1:8080/100/active",
            "fd00::1:8080/100/active",
            "fd00::2:8080/0/draining"
        ]
    );
}

#[test]
fn address_of_the_wrong_family_is_reported_and_skipped() {
    let index = eni_index(vec![ready("10.0.0.1", "n1"), ready("fd00::1", "n1")]);
    let ds = plan(&index, "web");
    assert_eq!(backends(&index, "web"), ["10.0.0.1:8080/100/active"]);
    assert_eq!(ds.errors.len(), 1, "{:?}", ds.errors);
}

#[test]
fn gate_bootstrap_admits_not_ready_pods_with_either_gate_and_containers_ready() {
    let index_for = |pod: crate::model::StoredPod| {
        let mut index = eni_index(vec![
            ready("10.0.0.1", "n1"),
            of_pod(not_ready("10.0.0.2", "n1"), "p2"),
        ]);
        index.apply_pod(&pod);
        backends(&index, "web")
    };
    let admitted = ["10.0.0.1:8080/100/active", "10.0.0.2:8080/100/active"];
    let not_admitted = ["10.0.0.1:8080/100/active"];
    assert_eq!(
        index_for(mk_pod("p2", &["registered.slb-sync.io/web"], true)),
        admitted
    );
    assert_eq!(
        index_for(mk_pod(
            "p2",
            &["service.readiness.alibabacloud.com/web"],
            true
        )),
        admitted
    );
    // Containers not ready, another Service's gate, or no gate: the pod waits.
    assert_eq!(
        index_for(mk_pod("p2", &["registered.slb-sync.io/web"], false)),
        not_admitted
    );
    assert_eq!(
        index_for(mk_pod("p2", &["registered.slb-sync.io/api"], true)),
        not_admitted
    );
    assert_eq!(index_for(mk_pod("p2", &[], true)), not_admitted);
}

#[test]
fn gate_never_admits_a_terminating_endpoint() {
    let mut index = eni_index(vec![of_pod(
        mk_ep("10.0.0.2", Some("n1"), false, true),
        "p2",
    )]);
    index.apply_pod(&mk_pod("p2", &["registered.slb-sync.io/web"], true));
    assert_eq!(backends(&index, "web"), ["10.0.0.2:8080/0/draining"]);
}

#[test]
fn slices_match_by_service_name_label_and_namespace() {
    let mut index = eni_index(vec![ready("10.0.0.1", "n1")]);
    index.apply_endpoint_slice(&mk_slice_full(
        "other",
        "web",
        "x",
        "IPv4",
        &[("", 8080)],
        vec![ready("10.9.0.1", "n1")],
    ));
    let mut unlabelled = mk_slice("web", "y", vec![ready("10.9.0.2", "n1")]);
    unlabelled.metadata.labels = None;
    index.apply_endpoint_slice(&unlabelled);
    assert_eq!(backends(&index, "web"), ["10.0.0.1:8080/100/active"]);
}

#[test]
fn the_same_address_in_two_slices_is_one_backend_and_active_wins() {
    let mut index = eni_index(vec![terminating("10.0.0.1", "n1")]);
    index.apply_endpoint_slice(&mk_slice("web", "2", vec![ready("10.0.0.1", "n1")]));
    assert_eq!(backends(&index, "web"), ["10.0.0.1:8080/100/active"]);
}
