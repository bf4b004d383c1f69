//! The alerts and the dashboard use only the metrics the agent promises
//! (`deploy/METRICS.md`), and every promised metric is charted.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use support::schemas::{PrometheusRule, ServiceMonitor};

use support::manifests::*;

/// The metric names listed in the table of `deploy/METRICS.md`.
fn contract_metrics() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(deploy_dir().join("METRICS.md")).unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<_> = line.split('|').map(str::trim).collect();
        if cells.len() > 3 && cells[1].starts_with("`slb_sync_") {
            out.insert(cells[1].trim_matches('`').to_owned(), cells[2].to_owned());
        }
    }
    out
}

/// Every `slb_sync_*` name in a PromQL expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("slb_sync_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        out.insert(name);
    }
    out
}

fn check_known(name: &str, contract: &BTreeMap<String, String>, where_: &str) {
    let base = name
        .strip_suffix("_bucket")
        .filter(|b| contract.get(*b).is_some_and(|t| t == "histogram"));
    assert!(
        contract.contains_key(name) || base.is_some(),
        "{where_} uses {name}, which deploy/METRICS.md does not promise"
    );
}

#[test]
fn metrics_contract_lists_the_agreed_metrics() {
    let contract = contract_metrics();
    let expected = [
        ("slb_sync_slb_calls_total", "counter"),
        ("slb_sync_slb_call_duration_seconds", "histogram"),
        ("slb_sync_reconcile_errors_total", "counter"),
        ("slb_sync_steps_total", "counter"),
        ("slb_sync_backends", "gauge"),
        ("slb_sync_drain_duration_seconds", "histogram"),
        ("slb_sync_drains_over_window_total", "counter"),
        ("slb_sync_finalizer_fail_open_total", "counter"),
        ("slb_sync_leader", "gauge"),
        ("slb_sync_passes_total", "counter"),
        ("slb_sync_coalesced_triggers_total", "counter"),
        ("slb_sync_change_to_first_call_seconds", "histogram"),
        ("slb_sync_drain_api_requests_total", "counter"),
        ("slb_sync_drain_api_waiting", "gauge"),
        ("slb_sync_backend_quarantines_total", "counter"),
        ("slb_sync_quarantined_backends", "gauge"),
        ("slb_sync_drift_backends_total", "counter"),
        ("slb_sync_queue_depth", "gauge"),
        ("slb_sync_queue_wait_seconds", "histogram"),
        ("slb_sync_pod_work_delayed_total", "counter"),
        ("slb_sync_resync_behind", "gauge"),
        ("slb_sync_cold_start_groups", "gauge"),
        ("slb_sync_gate_fail_open_total", "counter"),
        ("slb_sync_backend_unhealthy_total", "counter"),
        ("slb_sync_gates_waiting_on_health", "gauge"),
    ];
    let expected: BTreeMap<_, _> = expected
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    assert_eq!(contract, expected);
}

#[test]
fn alerts_cover_the_failure_modes_with_contract_metrics() {
    let contract = contract_metrics();
    let path = deploy_dir().join("base/prometheusrule.yaml");
    let rule: PrometheusRule = strict(&path, &documents(&path)[0]);
    assert_eq!(
        (rule.api_version.as_str(), rule.kind.as_str()),
        ("monitoring.coreos.com/v1", "PrometheusRule")
    );
    assert_eq!(rule.metadata.namespace.as_deref(), Some("slb-sync"));
    let mut alerts = BTreeMap::new();
    for group in &rule.spec.groups {
        for r in &group.rules {
            for name in metric_names(&r.expr) {
                check_known(&name, &contract, &r.alert);
            }
            assert!(r.labels.contains_key("severity"), "{}", r.alert);
            assert!(
                r.annotations.contains_key("summary") && r.annotations.contains_key("description")
            );
            alerts.insert(r.alert.clone(), metric_names(&r.expr));
        }
    }
    for (alert, metric) in [
        ("SlbSyncReconcileErrors", "slb_sync_reconcile_errors_total"),
        ("SlbSyncSlbThrottling", "slb_sync_slb_calls_total"),
        (
            "SlbSyncDrainsOverWindow",
            "slb_sync_drains_over_window_total",
        ),
        (
            "SlbSyncFinalizerFailOpen",
            "slb_sync_finalizer_fail_open_total",
        ),
        ("SlbSyncLeaderAbsent", "slb_sync_leader"),
    ] {
        assert!(
            alerts.get(alert).is_some_and(|m| m.contains(metric)),
            "{alert} on {metric}"
        );
    }
    assert!(alerts["SlbSyncSlbThrottling"].len() == 1);

    let sm_path = deploy_dir().join("base/servicemonitor.yaml");
    let sm: ServiceMonitor = strict(&sm_path, &documents(&sm_path)[0]);
    assert_eq!(
        (sm.api_version.as_str(), sm.kind.as_str()),
        ("monitoring.coreos.com/v1", "ServiceMonitor")
    );
    assert_eq!(sm.spec.endpoints[0].port, "http");
    assert_eq!(sm.spec.endpoints[0].path.as_deref(), Some("/metrics"));
    assert_eq!(sm.metadata.namespace.as_deref(), Some("slb-sync"));
    assert!(sm.spec.namespace_selector.is_some());
    assert_eq!(
        sm.spec
            .selector
            .match_labels
            .unwrap()
            .get("app.kubernetes.io/name")
            .map(String::as_str),
        Some("slb-sync")
    );
}

#[test]
fn the_dashboard_charts_every_contract_metric_and_nothing_else() {
    let contract = contract_metrics();
    let path = deploy_dir().join("grafana-dashboard.json");
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(dash["uid"], "slb-sync");
    let mut used = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for panel in dash["panels"].as_array().unwrap() {
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "duplicate panel id"
        );
        assert!(panel["gridPos"]["w"].as_u64().is_some());
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            for name in metric_names(expr) {
                check_known(&name, &contract, panel["title"].as_str().unwrap());
                used.insert(name.strip_suffix("_bucket").unwrap_or(&name).to_owned());
            }
        }
    }
    let missing: Vec<_> = contract.keys().filter(|m| !used.contains(*m)).collect();
    assert!(missing.is_empty(), "no panel for {missing:?}");
}
