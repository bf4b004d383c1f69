//! Local mode: node weights from counted endpoints, drain, scaling, errors.

use super::*;
use crate::desired::nodes::local_weight;
use crate::index::fixtures::*;

fn local_index(endpoints: Vec<k8s_openapi::api::discovery::v1::Endpoint>) -> ClusterIndex {
    let mut index = index_with(
        &[local(mk_service("web"))],
        &[
            mk_node("n1", "i-a"),
            mk_node("n2", "i-b"),
            mk_node("n3", "i-c"),
        ],
    );
    index.apply_endpoint_slice(&mk_slice("web", "1", endpoints));
    index
}

#[test]
fn weight_is_the_number_of_counted_endpoints_on_the_node() {
    let index = local_index(vec![
        ready("10.0.0.1", "n1"),
        ready("10.0.0.2", "n1"),
        ready("10.0.0.3", "n2"),
        not_ready("10.0.0.4", "n2"),
        not_ready("10.0.0.5", "n3"),
    ]);
    assert_eq!(
        backends(&index, "web"),
        ["i-a:30080/2/active", "i-b:30080/1/active"]
    );
}

#[test]
fn node_with_only_terminating_endpoints_drains_and_terminating_never_counts() {
    let index = local_index(vec![
        ready("10.0.0.1", "n1"),
        // Terminating yet serving: still not counted.
        terminating("10.0.0.2", "n1"),
        terminating("10.0.0.3", "n2"),
        not_ready("10.0.0.4", "n2"),
    ]);
    assert_eq!(
        backends(&index, "web"),
        ["i-a:30080/1/active", "i-b:30080/0/draining"]
    );
}

#[test]
fn node_rules_apply_to_local_backends() {
    let mut index = local_index(vec![
        ready("10.0.0.1", "n1"),
        ready("10.0.0.2", "n2"),
        ready("10.0.0.3", "n3"),
        ready("10.0.0.4", "gone"),
    ]);
    index.apply_node(&taint(mk_node("n2", "i-b"), DRAIN_TAINTS[0]));
    index.apply_node(&label(mk_node("n3", "i-c"), EXCLUDE_LABELS[0], "true"));
    assert_eq!(
        backends(&index, "web"),
        ["i-a:30080/1/active", "i-b:30080/0/draining"]
    );
    assert!(plan(&index, "web").errors.is_empty());
}

#[test]
fn node_without_provider_id_hosting_endpoints_is_named() {
    let mut index = local_index(vec![ready("10.0.0.1", "n1"), ready("10.0.0.2", "n2")]);
    index.apply_node(&provider_id(mk_node("n2", "x"), None));
    let ds = plan(&index, "web");
    assert_eq!(backends(&index, "web"), ["i-a:30080/1/active"]);
    assert_eq!(ds.errors.len(), 1);
    assert!(ds.errors[0].contains("node n2"), "{:?}", ds.errors);
}

#[test]
fn endpoint_without_node_name_is_an_error_and_the_rest_is_planned() {
    let index = local_index(vec![
        ready("10.0.0.1", "n1"),
        mk_ep("10.0.0.9", None, true, false),
    ]);
    let ds = plan(&index, "web");
    assert_eq!(backends(&index, "web"), ["i-a:30080/1/active"]);
    assert_eq!(ds.errors.len(), 1);
    assert!(ds.errors[0].contains("10.0.0.9") && ds.errors[0].contains("nodeName"));
}

#[test]
fn weights_scale_when_the_largest_count_exceeds_100() {
    // 200 on n1, 3 on n2 (1.5 → 2, half away from zero), 1 on n3 (0.5 → 1).
    let mut eps = Vec::new();
    for i in 0..200 {
        eps.push(ready(&format!("10.1.{}.{}", i / 250, i % 250), "n1"));
    }
    for i in 0..3 {
        eps.push(ready(&format!("10.2.0.{i}"), "n2"));
    }
    eps.push(ready("10.3.0.1", "n3"));
    let index = local_index(eps);
    assert_eq!(
        backends(&index, "web"),
        [
            "i-a:30080/100/active",
            "i-b:30080/2/active",
            "i-c:30080/1/active"
        ]
    );
}

#[test]
fn scaling_rounds_half_away_from_zero_with_a_minimum_of_one() {
    let w = |c, l| local_weight(c, l).get();
    assert_eq!(w(7, 100), 7);
    assert_eq!(w(101, 101), 100);
    assert_eq!(w(1, 300), 1); // 0.33 → 0 → min 1
    assert_eq!(w(1, 200), 1); // 0.5 → 1
    assert_eq!(w(149, 200), 75); // 74.5 → 75
    assert_eq!(w(148, 200), 74);
    assert_eq!(w(0, 200), 0);
    assert_eq!(w(u32::MAX, u32::MAX), 100);
}

#[test]
fn gate_bootstrap_puts_a_node_of_admitted_endpoints_only_in_at_weight_zero() {
    let mut index = local_index(vec![
        ready("10.0.0.1", "n1"),
        of_pod(not_ready("10.0.0.2", "n2"), "p2"),
    ]);
    assert_eq!(backends(&index, "web"), ["i-a:30080/1/active"]);
    // Admitted by the bootstrap, not ready: present (its gate can open) at weight 0, as
    // its kube-proxy has no rule for the Service before the pod is Ready.
    index.apply_pod(&mk_pod("p2", &["registered.slb-sync.io/web"], true));
    assert_eq!(
        backends(&index, "web"),
        ["i-a:30080/1/active", "i-b:30080/0/active"]
    );
    // Ready: the normal weight.
    index.apply_endpoint_slice(&mk_slice(
        "web",
        "1",
        vec![
            ready("10.0.0.1", "n1"),
            of_pod(ready("10.0.0.2", "n2"), "p2"),
        ],
    ));
    assert_eq!(
        backends(&index, "web"),
        ["i-a:30080/1/active", "i-b:30080/1/active"]
    );
}

#[test]
fn a_local_node_joins_at_weight_zero_while_its_gated_pod_is_still_starting() {
    // The endpoint is listed, the containers are not ready yet: the node joins at weight 0
    // now, so the SLB carries it by the time the application is up and the gate opens
    // then. Weight 0 sends it nothing meanwhile. A pod without our gate still waits.
    let mut index = local_index(vec![
        ready("10.0.0.1", "n1"),
        of_pod(not_ready("10.0.0.2", "n2"), "p2"),
    ]);
    index.apply_pod(&mk_pod("p2", &[], false));
    assert_eq!(backends(&index, "web"), ["i-a:30080/1/active"]);
    index.apply_pod(&mk_pod("p2", &["registered.slb-sync.io/web"], false));
    assert_eq!(
        backends(&index, "web"),
        ["i-a:30080/1/active", "i-b:30080/0/active"]
    );
}

#[test]
fn admitted_endpoints_count_on_a_node_that_already_serves() {
    // A ready endpoint gives the node rules in kube-proxy: the admitted one counts too.
    let mut index = local_index(vec![
        ready("10.0.0.1", "n1"),
        of_pod(not_ready("10.0.0.2", "n1"), "p2"),
        ready("10.0.0.3", "n2"),
        ready("10.0.0.4", "n2"),
        ready("10.0.0.5", "n2"),
    ]);
    index.apply_pod(&mk_pod("p2", &["registered.slb-sync.io/web"], true));
    assert_eq!(
        backends(&index, "web"),
        ["i-a:30080/2/active", "i-b:30080/3/active"]
    );
}

#[test]
fn a_draining_node_gets_a_bootstrap_endpoint_back_at_weight_zero_active() {
    // The node's last ready endpoint terminates while a new pod there waits on its gate:
    // the node stays (active at 0) instead of draining towards removal.
    let mut index = local_index(vec![
        terminating("10.0.0.1", "n1"),
        of_pod(not_ready("10.0.0.2", "n1"), "p2"),
    ]);
    assert_eq!(backends(&index, "web"), ["i-a:30080/0/draining"]);
    index.apply_pod(&mk_pod("p2", &["registered.slb-sync.io/web"], true));
    assert_eq!(backends(&index, "web"), ["i-a:30080/0/active"]);
}
