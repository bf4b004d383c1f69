//! Rules on how a workload rolls and where its pods land, and the cluster-wide SLB quota.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, NodeSelectorTerm};

use super::workload::{scaled, Rollout, Workload};
use super::{Findings, ManagedService, Rule, Severity, SLB_PER_ECS_LIMIT, SLB_PER_ECS_WARN};
use crate::model::Mode;

const ROLLING_FIX: &str =
    "set spec.strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}";

pub(super) fn check_rollout(svc: &ManagedService<'_>, w: &Workload<'_>, out: &mut Findings) {
    match &w.rollout {
        Rollout::Recreate => out.push(
            Severity::Error,
            w,
            Some(svc),
            Rule::RollingUpdate,
            "strategy Recreate stops every pod before any new one is ready: the Service has \
             no backend during each update",
            ROLLING_FIX,
        ),
        Rollout::Rolling {
            max_surge,
            max_unavailable,
        } => {
            let unavailable = scaled(max_unavailable, w.replicas, false);
            let surge = scaled(max_surge, w.replicas, true);
            let mut problems = Vec::new();
            if unavailable != Some(0) {
                problems.push(format!(
                    "maxUnavailable is {} (old pods are removed before their replacements are \
                     Ready and registered)",
                    show(max_unavailable)
                ));
            }
            if surge.is_none_or(|s| s <= 0) {
                problems.push(format!(
                    "maxSurge is {} (no new pod can start before an old one goes)",
                    show(max_surge)
                ));
            }
            if !problems.is_empty() {
                out.push(
                    Severity::Error,
                    w,
                    Some(svc),
                    Rule::RollingUpdate,
                    problems.join("; "),
                    ROLLING_FIX,
                );
            }
        }
        Rollout::StatefulSet { strategy } => out.push(
            Severity::Warning,
            w,
            Some(svc),
            Rule::RollingUpdate,
            format!(
                "a StatefulSet ({strategy}) deletes each pod before creating its replacement, \
                 so serving capacity drops by one pod during every update"
            ),
            "keep replicas ≥ 2 and the preStop/readiness-gate wiring; use a Deployment with \
             maxSurge: 1, maxUnavailable: 0 if the pods do not need stable identities",
        ),
    }
}

fn show(v: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString) -> String {
    match v {
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => n.to_string(),
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
    }
}

/// The node pool a workload's pods are steered to: preferred (or required) node affinity
/// terms, or a nodeSelector.
fn pool_terms(w: &Workload<'_>) -> Vec<NodeSelectorTerm> {
    let Some(pod) = w.template.spec.as_ref() else {
        return Vec::new();
    };
    let mut terms = Vec::new();
    if let Some(node) = pod.affinity.as_ref().and_then(|a| a.node_affinity.as_ref()) {
        for preferred in node
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .flatten()
        {
            terms.push(preferred.preference.clone());
        }
        if let Some(required) = &node.required_during_scheduling_ignored_during_execution {
            terms.extend(required.node_selector_terms.iter().cloned());
        }
    }
    if let Some(selector) = pod.node_selector.as_ref().filter(|s| !s.is_empty()) {
        terms.push(NodeSelectorTerm {
            match_expressions: Some(
                selector
                    .iter()
                    .map(|(k, v)| NodeSelectorRequirement {
                        key: k.clone(),
                        operator: "In".to_owned(),
                        values: Some(vec![v.clone()]),
                    })
                    .collect(),
            ),
            match_fields: None,
        });
    }
    terms.retain(|t| t.match_expressions.as_ref().is_some_and(|e| !e.is_empty()));
    terms
}

fn requirement_matches(r: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let value = labels.get(&r.key);
    let values = r.values.as_deref().unwrap_or_default();
    let number = |v: Option<&String>| v.and_then(|v| v.parse::<i64>().ok());
    let bound = values.first().and_then(|v| v.parse::<i64>().ok());
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => !value.is_some_and(|v| values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => matches!((number(value), bound), (Some(v), Some(b)) if v > b),
        "Lt" => matches!((number(value), bound), (Some(v), Some(b)) if v < b),
        _ => false,
    }
}

fn term_matches(t: &NodeSelectorTerm, node: &Node) -> bool {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    t.match_expressions
        .iter()
        .flatten()
        .all(|r| requirement_matches(r, labels))
}

fn describe_term(t: &NodeSelectorTerm) -> String {
    t.match_expressions
        .iter()
        .flatten()
        .map(|r| match r.values.as_deref() {
            Some(v) if !v.is_empty() => format!("{} {} ({})", r.key, r.operator, v.join(",")),
            _ => format!("{} {}", r.key, r.operator),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The term as a `kubectl -l` selector, when every requirement can be written as one.
fn kubectl_selector(t: &NodeSelectorTerm) -> Option<String> {
    t.match_expressions
        .iter()
        .flatten()
        .map(|r| {
            let values = r.values.as_deref().unwrap_or_default().join(",");
            match r.operator.as_str() {
                "In" => Some(format!("{} in ({values})", r.key)),
                "NotIn" => Some(format!("{} notin ({values})", r.key)),
                "Exists" => Some(r.key.clone()),
                "DoesNotExist" => Some(format!("!{}", r.key)),
                _ => None,
            }
        })
        .collect::<Option<Vec<_>>>()
        .map(|parts| parts.join(","))
}

/// Local mode: when a node loses its last serving pod it leaves the SLB; the in-place
/// layout (docs/architecture.md, "Workload advice") keeps every pool node serving in the rollout.
pub(super) fn check_local_layout(
    svc: &ManagedService<'_>,
    w: &Workload<'_>,
    nodes: &[Node],
    out: &mut Findings,
) {
    debug_assert_eq!(svc.mode, Mode::Local);
    let terms = pool_terms(w);
    if terms.is_empty() {
        out.push(
            Severity::Warning,
            w,
            Some(svc),
            Rule::LocalLayout,
            "externalTrafficPolicy: Local, but the pods are not steered to a node pool: during \
             the update a node can lose its last serving pod, and the SLB must drain and \
             remove that node while its clients' connections move elsewhere",
            format!(
                "label a node pool (e.g. pool={name}) and add to spec.template.spec: affinity: \
                 {{nodeAffinity: {{preferredDuringSchedulingIgnoredDuringExecution: [{{weight: \
                 100, preference: {{matchExpressions: [{{key: pool, operator: In, values: \
                 [{name}]}}]}}}}]}}}}; then keep replicas above the number of pool nodes",
                name = w.name
            ),
        );
        return;
    }
    let pool = terms
        .iter()
        .map(describe_term)
        .collect::<Vec<_>>()
        .join(" or ");
    if nodes.is_empty() {
        out.push(
            Severity::Info,
            w,
            Some(svc),
            Rule::LocalLayout,
            format!(
                "no Nodes in the input, so doctor cannot count the pool ({pool}) against \
                 replicas {}",
                w.replicas
            ),
            format!(
                "check that replicas ({}) is greater than the number of nodes matching \
                 {pool} (kubectl get nodes -l '{}' --no-headers | wc -l), or pass the Nodes \
                 (kubectl get nodes -o yaml) to doctor",
                w.replicas,
                kubectl_selector(&terms[0]).unwrap_or_else(|| "<pool selector>".to_owned())
            ),
        );
        return;
    }
    let labelled = nodes
        .iter()
        .filter(|n| terms.iter().any(|t| term_matches(t, n)))
        .count();
    if labelled == 0 {
        out.push(
            Severity::Warning,
            w,
            Some(svc),
            Rule::LocalLayout,
            format!("no Node in the input matches the pool ({pool}): the pods land anywhere"),
            format!("label the pool's nodes so that they match {pool}"),
        );
    } else if i64::from(w.replicas) <= labelled as i64 {
        out.push(
            Severity::Warning,
            w,
            Some(svc),
            Rule::LocalLayout,
            format!(
                "replicas {} ≤ {labelled} nodes in the pool ({pool}): a pool node can hold a \
                 single pod, and it leaves the SLB whenever that pod is replaced",
                w.replicas
            ),
            format!(
                "set spec.replicas to at least {} (more than the pool's nodes), or shrink \
                 the pool",
                labelled + 1
            ),
        );
    }
}

/// Every ECS node backs every Cluster-mode SLB, and one instance may back at most 50 SLB
/// instances by default: past that, new SLBs cannot attach the nodes.
pub(super) fn check_cluster_quota(services: &[ManagedService<'_>], out: &mut Findings) {
    let ids: BTreeSet<&str> = services
        .iter()
        .filter(|s| s.mode == Mode::Cluster)
        .filter_map(|s| s.load_balancer_id.as_deref())
        .collect();
    let count = ids.len();
    let severity = if count > SLB_PER_ECS_LIMIT {
        Severity::Error
    } else if count > SLB_PER_ECS_WARN {
        Severity::Warning
    } else {
        return;
    };
    out.push(
        severity,
        "cluster",
        None,
        Rule::ClusterQuota,
        format!(
            "{count} SLB instances back Cluster-mode Services; each ECS node is a backend of \
             every one of them, and an ECS instance may back at most {SLB_PER_ECS_LIMIT} SLB \
             instances by default"
        ),
        "move Services to externalTrafficPolicy: Local or ENI mode (backend-type: eni), \
         restrict Cluster-mode Services to a node pool with the backend-label annotation, \
         share one SLB between Services (vgroup-port), or raise the quota in the Alibaba \
         Cloud quota center",
    );
}
