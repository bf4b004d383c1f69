//! Planner rules (docs/architecture.md, "Planner rules") on `mk_*` fixtures: node eligibility and
//! drain, managed selection, modes, ports, errors and order. Local- and ENI-specific
//! rules are in `tests/`.

mod eni;
mod local;
mod weights;

use super::*;
use crate::annotations::{BACKEND_LABEL, LB_ID, REMOVE_UNSCHEDULED_BACKEND, VGROUP_PORT};
use crate::index::fixtures::*;
use crate::index::{DRAIN_TAINTS, EXCLUDE_LABELS};
use crate::model::{BackendType, Protocol};

/// `<id or ip>:<port>/<weight>/<state>` for compact assertions.
pub(super) fn show(b: &Backend) -> String {
    let who = match (&b.server_id, &b.server_ip) {
        (Some(id), _) => id.clone(),
        (None, Some(ip)) => ip.to_string(),
        (None, None) => "?".into(),
    };
    let state = match b.state {
        BackendState::Active => "active",
        BackendState::Draining => "draining",
    };
    format!("{who}:{}/{}/{state}", b.port, b.weight)
}

pub(super) fn plan(index: &ClusterIndex, name: &str) -> DesiredService {
    plan_service(index, &ServiceRef::new("default", name)).expect("service is managed")
}

/// The backends of the Service's only (or first) group.
pub(super) fn backends(index: &ClusterIndex, name: &str) -> Vec<String> {
    let ds = plan(index, name);
    ds.groups[0].backends.iter().map(show).collect()
}

pub(super) fn index_with(services: &[Service], nodes: &[Node]) -> ClusterIndex {
    let mut index = ClusterIndex::new(PlannerConfig::default());
    index.reset_nodes(nodes);
    index.reset_services(services);
    index
}

use crate::model::BackendState;
use k8s_openapi::api::core::v1::{Node, Service};

#[test]
fn cluster_mode_uses_every_eligible_node_at_the_node_port() {
    let index = index_with(
        &[mk_service("web")],
        &[mk_node("n2", "i-b"), mk_node("n1", "i-a")],
    );
    let ds = plan(&index, "web");
    assert_eq!(ds.service, "default/web");
    assert_eq!(ds.load_balancer_id.as_deref(), Some("lb-1"));
    assert_eq!(ds.mode, Mode::Cluster);
    assert!(ds.errors.is_empty(), "{:?}", ds.errors);
    let g = &ds.groups[0];
    assert_eq!(g.service_port, 80);
    assert_eq!(g.protocol, Protocol::Tcp);
    assert_eq!(g.name.as_str(), "k8s/80/web/default/kubernetes");
    assert_eq!(g.v_server_group_id, None);
    assert!(g
        .backends
        .iter()
        .all(|b| b.backend_type == BackendType::Ecs));
    assert_eq!(
        backends(&index, "web"),
        ["i-a:30080/100/active", "i-b:30080/100/active"]
    );
}

#[test]
fn provider_id_with_or_without_scheme_gives_the_instance_id() {
    let nodes = [
        provider_id(mk_node("n1", "x"), Some("alicloud://cn-hangzhou.i-abc")),
        provider_id(mk_node("n2", "x"), Some("cn-beijing.i-def")),
    ];
    let index = index_with(&[mk_service("web")], &nodes);
    assert_eq!(
        backends(&index, "web"),
        ["i-abc:30080/100/active", "i-def:30080/100/active"]
    );
}

#[test]
fn every_exclusion_label_leaves_the_node_out() {
    for key in EXCLUDE_LABELS {
        let nodes = [mk_node("n1", "i-a"), label(mk_node("n2", "i-b"), key, "")];
        let index = index_with(&[mk_service("web")], &nodes);
        assert_eq!(backends(&index, "web"), ["i-a:30080/100/active"], "{key}");
        assert!(plan(&index, "web").errors.is_empty());
    }
}

/// ACK's current node label and its deprecated one, as ACK users set them.
#[test]
fn nodes_ack_leaves_out_are_left_out() {
    for key in [
        "service.alibabacloud.com/exclude-node",
        "service.beta.kubernetes.io/exclude-node",
    ] {
        let nodes = [
            mk_node("n1", "i-a"),
            label(mk_node("n2", "i-b"), key, "true"),
        ];
        let index = index_with(&[mk_service("web")], &nodes);
        assert_eq!(backends(&index, "web"), ["i-a:30080/100/active"], "{key}");
    }
    // Hybrid-cloud nodes (outside the VPC) are left out, without an error.
    let nodes = [
        mk_node("n1", "i-a"),
        provider_id(mk_node("n2", "x"), Some("ack-hybrid://cn-hangzhou.i-far")),
    ];
    let index = index_with(&[mk_service("web")], &nodes);
    assert_eq!(backends(&index, "web"), ["i-a:30080/100/active"]);
    assert!(plan(&index, "web").errors.is_empty());
}

#[test]
fn backend_label_selects_nodes_that_carry_all_labels() {
    let svc = annotate(mk_service("web"), BACKEND_LABEL, "pool=web,zone=a");
    let nodes = [
        label(label(mk_node("n1", "i-a"), "pool", "web"), "zone", "a"),
        label(mk_node("n2", "i-b"), "pool", "web"),
        label(label(mk_node("n3", "i-c"), "pool", "db"), "zone", "a"),
    ];
    let index = index_with(&[svc], &nodes);
    assert_eq!(backends(&index, "web"), ["i-a:30080/100/active"]);
}

/// ACK reads an empty `backend-label` as no filter.
#[test]
fn an_empty_backend_label_selects_every_node() {
    let svc = annotate(mk_service("web"), BACKEND_LABEL, "");
    let nodes = [
        mk_node("n1", "i-a"),
        label(mk_node("n2", "i-b"), "pool", "db"),
    ];
    let index = index_with(&[svc], &nodes);
    assert_eq!(
        backends(&index, "web"),
        ["i-a:30080/100/active", "i-b:30080/100/active"]
    );
    assert!(plan(&index, "web").errors.is_empty());
}

#[test]
fn node_without_usable_provider_id_is_named_in_errors_and_others_are_planned() {
    let nodes = [
        mk_node("good", "i-a"),
        provider_id(mk_node("missing", "x"), None),
        provider_id(mk_node("garbled", "x"), Some("i-no-region")),
        // Excluded anyway, so not worth an error.
        label(
            provider_id(mk_node("master", "x"), None),
            EXCLUDE_LABELS[4],
            "",
        ),
    ];
    let index = index_with(&[mk_service("web"), mk_service("api")], &nodes);
    for name in ["web", "api"] {
        let ds = plan(&index, name);
        assert_eq!(backends(&index, name), ["i-a:30080/100/active"]);
        assert_eq!(ds.errors.len(), 2, "{:?}", ds.errors);
        assert!(ds.errors[0].contains("node garbled") && ds.errors[0].contains("i-no-region"));
        assert!(ds.errors[1].contains("node missing"));
    }
}

#[test]
fn provider_id_parsing() {
    use crate::index::parse_provider_id as p;
    assert_eq!(p("alicloud://cn-hangzhou.i-abc"), Some("i-abc"));
    assert_eq!(p("cn-hangzhou.i-abc"), Some("i-abc"));
    for bad in [
        "",
        "i-abc",
        "://cn.i-a",
        "cn-hangzhou.",
        ".i-abc",
        "a.b.c",
        "cn hz.i-a",
    ] {
        assert_eq!(p(bad), None, "{bad:?}");
    }
}

#[test]
fn removal_taints_drain_the_node_at_weight_zero() {
    for key in DRAIN_TAINTS {
        let nodes = [mk_node("n1", "i-a"), taint(mk_node("n2", "i-b"), key)];
        let index = index_with(&[mk_service("web")], &nodes);
        assert_eq!(
            backends(&index, "web"),
            ["i-a:30080/100/active", "i-b:30080/0/draining"],
            "{key}"
        );
    }
}

#[test]
fn unschedulable_drains_only_with_remove_unscheduled_backend_on() {
    let nodes = [mk_node("n1", "i-a"), unschedulable(mk_node("n2", "i-b"))];
    let on = annotate(mk_service("on"), REMOVE_UNSCHEDULED_BACKEND, "on");
    let off = annotate(mk_service("off"), REMOVE_UNSCHEDULED_BACKEND, "off");
    let index = index_with(&[on, off, mk_service("default")], &nodes);
    assert_eq!(
        backends(&index, "on"),
        ["i-a:30080/100/active", "i-b:30080/0/draining"]
    );
    for name in ["off", "default"] {
        assert_eq!(
            backends(&index, name),
            ["i-a:30080/100/active", "i-b:30080/100/active"]
        );
    }
}

#[test]
fn not_ready_nodes_stay_and_deleted_nodes_disappear() {
    let mut not_ready = mk_node("n2", "i-b");
    not_ready
        .status
        .as_mut()
        .unwrap()
        .conditions
        .as_mut()
        .unwrap()[0]
        .status = "False".into();
    let mut index = index_with(
        &[mk_service("web")],
        &[mk_node("n1", "i-a"), not_ready.clone()],
    );
    assert_eq!(
        backends(&index, "web"),
        ["i-a:30080/100/active", "i-b:30080/100/active"]
    );
    index.delete_node(&not_ready);
    assert_eq!(backends(&index, "web"), ["i-a:30080/100/active"]);
}

#[test]
fn managed_only_with_our_class_or_unclassed_id_when_allowed() {
    let mut other_class = mk_service("other");
    other_class.spec.as_mut().unwrap().load_balancer_class = Some("service.k8s.aws/nlb".into());
    let mut unclassed = mk_service("unclassed");
    unclassed.spec.as_mut().unwrap().load_balancer_class = None;
    let mut unclassed_no_id = unclassed.clone();
    unclassed_no_id.metadata.name = Some("no-id".into());
    unclassed_no_id
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .remove(LB_ID);
    let mut cluster_ip = mk_service("cip");
    cluster_ip.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    let all = [
        mk_service("ours"),
        other_class,
        unclassed,
        unclassed_no_id,
        cluster_ip,
    ];
    let nodes = [mk_node("n1", "i-a")];

    let index = index_with(&all, &nodes);
    let names: Vec<_> = plan_all(&index).into_iter().map(|d| d.service).collect();
    assert_eq!(names, ["default/ours"]);

    let mut index = ClusterIndex::new(PlannerConfig {
        manage_unclassed: true,
        ..PlannerConfig::default()
    });
    index.reset_nodes(&nodes);
    index.reset_services(&all);
    let names: Vec<_> = plan_all(&index).into_iter().map(|d| d.service).collect();
    assert_eq!(names, ["default/ours", "default/unclassed"]);
    assert_eq!(
        plan_service(&index, &ServiceRef::new("default", "other")),
        None
    );
}

#[test]
fn lb_class_and_cluster_id_come_from_the_config() {
    let mut svc = mk_service("web");
    svc.spec.as_mut().unwrap().load_balancer_class = Some("example.com/lb".into());
    let mut index = ClusterIndex::new(PlannerConfig {
        cluster_id: "prod-1".into(),
        lb_class: "example.com/lb".into(),
        manage_unclassed: false,
    });
    index.apply_node(&mk_node("n1", "i-a"));
    index.apply_service(&svc);
    assert_eq!(
        plan(&index, "web").groups[0].name.as_str(),
        "k8s/80/web/default/prod-1"
    );
}

#[test]
fn mode_eni_wins_over_local_and_local_over_cluster() {
    let index = index_with(
        &[
            eni(local(mk_service("e"))),
            local(mk_service("l")),
            mk_service("c"),
        ],
        &[],
    );
    assert_eq!(plan(&index, "e").mode, Mode::Eni);
    assert_eq!(plan(&index, "l").mode, Mode::Local);
    assert_eq!(plan(&index, "c").mode, Mode::Cluster);
}

#[test]
fn one_group_per_port_sorted_with_vgroup_ids_from_the_annotation() {
    let svc = with_ports(
        annotate(mk_service("web"), VGROUP_PORT, "rsp-https:443"),
        &[
            ("https", 443, Some(30443), "8443"),
            ("http", 80, Some(30080), "8080"),
        ],
    );
    let index = index_with(&[svc], &[mk_node("n1", "i-a")]);
    let ds = plan(&index, "web");
    let groups: Vec<_> = ds
        .groups
        .iter()
        .map(|g| {
            (
                g.service_port,
                g.v_server_group_id.clone(),
                g.name.to_string(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        [
            (80, None, "k8s/80/web/default/kubernetes".into()),
            (
                443,
                Some("rsp-https".into()),
                "k8s/443/web/default/kubernetes".into()
            ),
        ]
    );
    assert_eq!(
        ds.groups[1].backends.iter().map(show).collect::<Vec<_>>(),
        ["i-a:30443/100/active"]
    );
}

#[test]
fn missing_node_port_is_an_error_for_node_modes_only() {
    let ports = [("a", 80, None, "8080"), ("b", 81, Some(30081), "8081")];
    let index = index_with(
        &[
            with_ports(mk_service("c"), &ports),
            with_ports(local(mk_service("l")), &ports),
            with_ports(eni(mk_service("e")), &ports),
        ],
        &[mk_node("n1", "i-a")],
    );
    for name in ["c", "l"] {
        let ds = plan(&index, name);
        assert_eq!(ds.groups.len(), 1);
        assert_eq!(ds.groups[0].service_port, 81);
        assert_eq!(ds.errors.len(), 1);
        assert!(
            ds.errors[0].contains("service port 80 has no nodePort"),
            "{:?}",
            ds.errors
        );
    }
    let ds = plan(&index, "e");
    assert_eq!(ds.groups.len(), 2);
    assert!(ds.errors.is_empty());
}

#[test]
fn a_bad_annotation_empties_that_service_only_and_output_is_sorted_by_name() {
    let bad = annotate(mk_service_in("a", "bad"), BACKEND_LABEL, "no-equals-sign");
    let all = [mk_service_in("a-b", "x"), bad, mk_service_in("a", "good")];
    let index = index_with(&all, &[mk_node("n1", "i-a")]);
    let out = plan_all(&index);
    let names: Vec<_> = out.iter().map(|d| d.service.as_str()).collect();
    // Sorted as the text `<namespace>/<name>`: '-' sorts before '/'.
    assert_eq!(names, ["a-b/x", "a/bad", "a/good"]);
    let bad = &out[1];
    assert!(bad.groups.is_empty());
    assert_eq!(bad.errors.len(), 1);
    assert!(bad.errors[0].contains(BACKEND_LABEL) && bad.errors[0].contains("no-equals-sign"));
    assert_eq!(bad.load_balancer_id.as_deref(), Some("lb-1"));
    for ok in [&out[0], &out[2]] {
        assert!(ok.errors.is_empty());
        assert_eq!(ok.groups[0].backends.len(), 1);
    }
}

#[test]
fn missing_id_annotation_is_reported_without_a_load_balancer_id() {
    let mut svc = mk_service("web");
    svc.metadata.annotations.as_mut().unwrap().remove(LB_ID);
    let index = index_with(&[svc], &[]);
    let ds = plan(&index, "web");
    assert_eq!(ds.load_balancer_id, None);
    assert!(ds.groups.is_empty());
    assert!(ds.errors[0].contains(LB_ID));
}

#[test]
fn two_nodes_claiming_one_instance_give_one_backend_active_if_either_is() {
    let nodes = [
        taint(mk_node("old", "i-a"), DRAIN_TAINTS[0]),
        mk_node("new", "i-a"),
        mk_node("other", "i-b"),
    ];
    let index = index_with(&[mk_service("web")], &nodes);
    assert_eq!(
        backends(&index, "web"),
        ["i-a:30080/100/active", "i-b:30080/100/active"]
    );
}

#[test]
fn a_port_with_an_unknown_protocol_is_reported_and_skipped() {
    let mut svc = with_ports(
        mk_service("web"),
        &[
            ("a", 80, Some(30080), "8080"),
            ("b", 81, Some(30081), "8081"),
        ],
    );
    svc.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].protocol = Some("HTTP".into());
    let index = index_with(&[svc], &[mk_node("n1", "i-a")]);
    let ds = plan(&index, "web");
    assert_eq!(ds.groups.len(), 1);
    assert_eq!(ds.groups[0].service_port, 81);
    assert!(ds.errors[0].contains("service port 80") && ds.errors[0].contains("HTTP"));
}

#[test]
fn owner_description_the_slb_would_refuse_skips_the_port_with_an_error() {
    // 63-character namespace and name: k8s/80/<63>/<63>/kubernetes is far over 80.
    let long = "a".repeat(63);
    let mut index = ClusterIndex::new(PlannerConfig::default());
    index.reset_nodes(&[mk_node("n1", "i-a")]);
    index.reset_services(&[mk_service_in(&long, &long), mk_service("web")]);
    let ds = plan_service(&index, &ServiceRef::new(long.clone(), long.clone())).unwrap();
    assert!(ds.groups.is_empty());
    assert_eq!(ds.errors.len(), 1, "{:?}", ds.errors);
    assert!(
        ds.errors[0].contains("more than the SLB's 80"),
        "{}",
        ds.errors[0]
    );
    assert!(ds.errors[0].contains("--cluster-id"), "{}", ds.errors[0]);
    // Other Services are planned as usual.
    assert_eq!(backends(&index, "web"), ["i-a:30080/100/active"]);

    let mut index = ClusterIndex::new(PlannerConfig {
        cluster_id: "prod cluster".to_owned(),
        ..PlannerConfig::default()
    });
    index.reset_nodes(&[mk_node("n1", "i-a")]);
    index.reset_services(&[mk_service("web")]);
    let ds = plan(&index, "web");
    assert!(ds.groups.is_empty());
    assert!(ds.errors[0].contains("' '"), "{}", ds.errors[0]);
}
