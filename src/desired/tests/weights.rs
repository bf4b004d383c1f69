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
