//! ACK's weight annotations in every mode (docs/configuration.md, "ACK compatibility of
//! backend selection"): the backends and weights ACK's controller would write.

use super::*;
use crate::annotations::{DEFAULT_WEIGHT, IGNORE_WEIGHT_UPDATE, WEIGHT};
use crate::index::fixtures::*;

fn weighed(svc: Service, pairs: &[(&str, &str)]) -> Service {
    pairs
        .iter()
        .fold(svc, |svc, (key, value)| annotate(svc, key, value))
}

fn index(svc: Service) -> ClusterIndex {
    let mut index = index_with(
        &[svc],
        &[
            mk_node("n1", "i-a"),
            mk_node("n2", "i-b"),
            mk_node("n3", "i-c"),
            mk_node("n4", "i-d"),
        ],
    );
    index.apply_endpoint_slice(&mk_slice(
        "web",
        "1",
        vec![
            ready("10.0.0.1", "n1"),
            ready("10.0.0.2", "n1"),
            ready("10.0.0.3", "n1"),
            ready("10.0.0.4", "n2"),
            terminating("10.0.0.5", "n3"),
        ],
    ));
    index
}

#[test]
fn cluster_mode_takes_the_default_weight_or_splits_the_shared_one_over_the_nodes() {
    let four_nodes = |w: u32| {
        ["i-a", "i-b", "i-c", "i-d"]
            .map(|id| format!("{id}:30080/{w}/active"))
            .to_vec()
    };
    let svc = |pairs: &[(&str, &str)]| index(weighed(mk_service("web"), pairs));
    assert_eq!(backends(&svc(&[]), "web"), four_nodes(100));
    assert_eq!(
        backends(&svc(&[(DEFAULT_WEIGHT, "30")]), "web"),
        four_nodes(30)
    );
    // The shared weight needs vgroup-port (ACK reads it only there): 90 / 4 nodes = 22.
    let named = [
        (VGROUP_PORT, "rsp-1:80"),
        (WEIGHT, "90"),
        (DEFAULT_WEIGHT, "30"),
    ];
    assert_eq!(backends(&svc(&named), "web"), four_nodes(22));
    let unnamed = plan(&svc(&[(WEIGHT, "90")]), "web");
    assert_eq!(
        unnamed.groups[0]
            .backends
            .iter()
            .map(show)
            .collect::<Vec<_>>(),
        four_nodes(100)
    );
    assert_eq!(unnamed.unsupported_annotations, [WEIGHT]);
    assert_eq!(
        backends(&svc(&[(VGROUP_PORT, "rsp-1:80"), (WEIGHT, "0")]), "web"),
        four_nodes(0),
        "0 takes the group out of traffic"
    );
}

#[test]
fn eni_mode_splits_the_shared_weight_over_the_counted_pods() {
    let svc = |pairs: &[(&str, &str)]| index(weighed(eni(mk_service("web")), pairs));
    assert_eq!(
        backends(&svc(&[(VGROUP_PORT, "rsp-1:80"), (WEIGHT, "100")]), "web"),
        [
            "10.0.0.1:8080/25/active",
            "10.0.0.2:8080/25/active",
            "10.0.0.3:8080/25/active",
            "10.0.0.4:8080/25/active",
            "10.0.0.5:8080/0/draining",
        ]
    );
    assert_eq!(
        backends(&svc(&[(DEFAULT_WEIGHT, "7")]), "web")[0],
        "10.0.0.1:8080/7/active"
    );
}

#[test]
fn local_mode_weighs_nodes_by_pods_and_shares_the_weight_by_pods() {
    let svc = |pairs: &[(&str, &str)]| index(weighed(local(mk_service("web")), pairs));
    let by_pods = [
        "i-a:30080/3/active",
        "i-b:30080/1/active",
        "i-c:30080/0/draining",
    ];
    assert_eq!(backends(&svc(&[]), "web"), by_pods);
    assert_eq!(
        backends(&svc(&[(DEFAULT_WEIGHT, "30")]), "web"),
        by_pods,
        "ACK's Local mode ignores the default weight"
    );
    // 80 × 3/4 = 60 and 80 × 1/4 = 20.
    assert_eq!(
        backends(&svc(&[(VGROUP_PORT, "rsp-1:80"), (WEIGHT, "80")]), "web"),
        [
            "i-a:30080/60/active",
            "i-b:30080/20/active",
            "i-c:30080/0/draining"
        ]
    );
}

#[test]
fn ignore_weight_update_is_carried_to_the_step_planner() {
    let svc = |pairs: &[(&str, &str)]| plan(&index(weighed(mk_service("web"), pairs)), "web");
    assert!(svc(&[(IGNORE_WEIGHT_UPDATE, "on")]).groups[0].keep_weights);
    assert!(!svc(&[(IGNORE_WEIGHT_UPDATE, "off")]).groups[0].keep_weights);
    assert!(!svc(&[]).groups[0].keep_weights);
}

/// Pods on virtual nodes (virtual-kubelet, ECI) join Cluster and Local groups as ENI
/// backends at their IP and target port; the virtual node itself is never a backend.
#[test]
fn pods_on_virtual_nodes_join_node_mode_groups_as_eni_backends() {
    let nodes = |vk: Node| [mk_node("n1", "i-a"), mk_node("n2", "i-b"), vk];
    let virtual_node = label(mk_node("vk", "vk-1"), "type", "virtual-kubelet");
    let with = |svc: Service, vk: Node| {
        let mut index = index_with(&[svc], &nodes(vk));
        index.apply_endpoint_slice(&mk_slice(
            "web",
            "1",
            vec![
                ready("10.0.0.1", "n1"),
                ready("10.0.0.2", "n1"),
                ready("10.0.9.1", "vk"),
                terminating("10.0.9.2", "vk"),
            ],
        ));
        index
    };
    let eci = ["10.0.9.1:8080/100/active", "10.0.9.2:8080/0/draining"];
    let cluster = with(mk_service("web"), virtual_node.clone());
    assert_eq!(
        backends(&cluster, "web"),
        [
            "i-a:30080/100/active",
            "i-b:30080/100/active",
            eci[0],
            eci[1]
        ]
    );
    assert!(plan(&cluster, "web").errors.is_empty());
    // Its exclusion labels do not keep its pods out (ACK checks them after the virtual
    // node); a backend-label it misses does.
    let excluded = label(
        virtual_node.clone(),
        "service.alibabacloud.com/exclude-node",
        "true",
    );
    assert_eq!(backends(&with(mk_service("web"), excluded), "web").len(), 4);
    let pool = |svc| annotate(svc, BACKEND_LABEL, "pool=web");
    let in_pool = |n: Node| label(n, "pool", "web");
    let mut index = index_with(
        &[pool(mk_service("web"))],
        &[in_pool(mk_node("n1", "i-a")), virtual_node.clone()],
    );
    index.apply_endpoint_slice(&mk_slice("web", "1", vec![ready("10.0.9.1", "vk")]));
    assert_eq!(backends(&index, "web"), ["i-a:30080/100/active"]);

    // Local: nodes by their pods, each pod on the virtual node weighs one pod.
    let local_index = with(local(mk_service("web")), virtual_node.clone());
    assert_eq!(
        backends(&local_index, "web"),
        [
            "i-a:30080/2/active",
            eci[0].replace("/100/", "/1/").as_str(),
            eci[1]
        ]
    );
    // ...and its share of a shared weight: 90 × 2 / 3 = 60 for n1, 90 / 3 = 30 a pod.
    let shared = weighed(
        local(mk_service("web")),
        &[(VGROUP_PORT, "rsp-1:80"), (WEIGHT, "90")],
    );
    assert_eq!(
        backends(&with(shared, virtual_node), "web"),
        ["i-a:30080/60/active", "10.0.9.1:8080/30/active", eci[1]]
    );
}
