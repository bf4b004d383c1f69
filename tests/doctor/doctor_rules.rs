//! `slb-sync doctor`: every rule on a good and a bad workload, audited in-process.
//!
//! The good workloads are the examples in `deploy/examples/`; each bad one is an example
//! with one setting changed, so a test fails only for the rule it is about. The CLI is in
//! doctor_cli.rs, the live-cluster mode in doctor_live.rs.

use serde_json::{json, Value};
use slb_sync::doctor::{DoctorConfig, Rule, Severity};

use support::doctor::*;

// ---- The examples are clean. ----

#[test]
fn the_examples_have_no_findings() {
    for mode in ["cluster", "local", "eni"] {
        let report = audit_docs(&example(mode));
        assert_eq!(report.findings, [], "{mode}");
        assert_eq!((report.summary.services, report.summary.workloads), (1, 1));
    }
}

// ---- readiness-probe ----

#[test]
fn a_missing_readiness_probe_is_an_error() {
    let mut docs = example("eni");
    remove(app(&mut docs), "readinessProbe");
    let f = one(&audit_docs(&docs), Rule::ReadinessProbe, Severity::Error);
    assert_eq!(f.object, "Deployment demo/web-eni container app");
    assert_eq!(f.service.as_deref(), Some("demo/web-eni"));
    assert!(f.fix.contains("readinessProbe"), "{}", f.fix);
}

#[test]
fn a_readiness_probe_that_keeps_failing_pods_too_long_is_a_warning() {
    let mut docs = example("eni");
    app(&mut docs)["readinessProbe"]["periodSeconds"] = json!(30);
    app(&mut docs)["readinessProbe"]["failureThreshold"] = json!(5);
    let f = one(&audit_docs(&docs), Rule::ReadinessProbe, Severity::Warning);
    assert!(f.finding.contains("150 s"), "{}", f.finding);
    // Defaults (10 s × 3) are fine.
    let mut docs = example("eni");
    app(&mut docs)["readinessProbe"] = json!({"httpGet": {"path": "/", "port": "http"}});
    assert!(of_rule(&audit_docs(&docs), Rule::ReadinessProbe).is_empty());
}

/// Only the containers serving the Service's target port are held to the rule.
#[test]
fn a_sidecar_without_readiness_probe_is_not_flagged() {
    let mut docs = example("eni");
    pod_spec(&mut docs)["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "log-shipper", "image": "fluent-bit:3"}));
    assert_eq!(audit_docs(&docs).findings, []);
}

// ---- liveness-probe ----

#[test]
fn a_liveness_probe_that_kills_slow_starters_is_a_warning() {
    let mut docs = example("cluster");
    app(&mut docs)["readinessProbe"] = json!({"httpGet": {"path": "/ready", "port": "http"}, "initialDelaySeconds": 20,
               "periodSeconds": 5, "failureThreshold": 6});
    app(&mut docs)["livenessProbe"] =
        json!({"httpGet": {"path": "/live", "port": "http"}, "periodSeconds": 10});
    let f = one(&audit_docs(&docs), Rule::LivenessProbe, Severity::Warning);
    assert!(
        f.finding.contains("30 s") && f.finding.contains("50 s"),
        "{}",
        f.finding
    );
    assert!(f.fix.contains("initialDelaySeconds ≥ 20"), "{}", f.fix);

    // A startup probe holds liveness back until the application has started.
    app(&mut docs)["startupProbe"] =
        json!({"httpGet": {"path": "/live", "port": "http"}, "failureThreshold": 30});
    assert!(of_rule(&audit_docs(&docs), Rule::LivenessProbe).is_empty());

    // So does a liveness budget longer than readiness's.
    let mut docs = example("cluster");
    app(&mut docs)["livenessProbe"] = json!({"httpGet": {"path": "/live", "port": "http"},
                                             "initialDelaySeconds": 30});
    assert!(of_rule(&audit_docs(&docs), Rule::LivenessProbe).is_empty());
}

// ---- readiness-gate ----

#[test]
fn a_missing_readiness_gate_is_an_error_where_pods_or_nodes_are_registered() {
    for mode in ["local", "eni"] {
        let mut docs = example(mode);
        remove(pod_spec(&mut docs), "readinessGates");
        let f = one(&audit_docs(&docs), Rule::ReadinessGate, Severity::Error);
        assert!(f
            .fix
            .contains(&format!("registered.slb-sync.io/web-{mode}")));
    }
    // Cluster mode: nodes are already backends; the gate only adds safety.
    let mut docs = example("cluster");
    remove(pod_spec(&mut docs), "readinessGates");
    one(&audit_docs(&docs), Rule::ReadinessGate, Severity::Warning);
}

#[test]
fn a_gate_for_another_service_does_not_count_and_acks_gate_does() {
    let mut docs = example("eni");
    pod_spec(&mut docs)["readinessGates"] =
        json!([{"conditionType": "registered.slb-sync.io/web-eni-old"}]);
    let f = one(&audit_docs(&docs), Rule::ReadinessGate, Severity::Error);
    assert!(f
        .finding
        .contains("declared: registered.slb-sync.io/web-eni-old"));

    pod_spec(&mut docs)["readinessGates"] =
        json!([{"conditionType": "service.readiness.alibabacloud.com/web-eni"}]);
    assert!(of_rule(&audit_docs(&docs), Rule::ReadinessGate).is_empty());
}

// ---- pre-stop ----

fn pre_stop(docs: &mut [Value], command: &[&str]) {
    app(docs)["lifecycle"] = json!({"preStop": {"exec": {"command": command}}});
}

#[test]
fn a_missing_pre_stop_is_an_error() {
    let mut docs = example("local");
    remove(app(&mut docs), "lifecycle");
    let f = one(&audit_docs(&docs), Rule::PreStop, Severity::Error);
    assert!(f.fix.contains("wait-drained"), "{}", f.fix);
    // Without a preStop time there is nothing to size the grace period from.
    assert!(of_rule(&audit_docs(&docs), Rule::GracePeriod).is_empty());
}

#[test]
fn a_sleep_must_outlast_the_drain_window_plus_propagation() {
    // The example's listener checks health at the API's defaults (2 s × 3), its drain
    // window is 30 s, the agent's propagation allowance 5 s: 6 + 35 + 5 = 46 s.
    let mut docs = example("local");
    pre_stop(&mut docs, &["sleep", "45"]);
    let f = one(&audit_docs(&docs), Rule::PreStop, Severity::Error);
    assert!(f.finding.contains("46 s"), "{}", f.finding);
    assert!(f.finding.contains("health check, 6 s"), "{}", f.finding);
    pre_stop(&mut docs, &["/bin/sh", "-c", "sleep 46"]);
    assert_eq!(audit_docs(&docs).findings, []);

    // The built-in sleep action is read too.
    app(&mut docs)["lifecycle"] = json!({"preStop": {"sleep": {"seconds": 10}}});
    one(&audit_docs(&docs), Rule::PreStop, Severity::Error);
}

#[test]
fn without_connection_drain_the_default_window_applies() {
    let mut docs = example("local");
    set_annotation(&mut docs, DRAIN, Some("off"));
    pre_stop(&mut docs, &["sleep", "46"]);
    let config = DoctorConfig {
        default_drain_secs: 45,
        ..DoctorConfig::default()
    };
    let f = one(&run(&docs, &config), Rule::PreStop, Severity::Error);
    assert!(f.finding.contains("61 s") && f.finding.contains("--default-drain-seconds"));
    assert!(
        of_rule(&audit_docs(&docs), Rule::PreStop).is_empty(),
        "6 s + 5 s + 30 s + 5 s ≤ 46 s"
    );
}

#[test]
fn wait_drained_needs_a_timeout_beyond_the_window_and_the_pod_identity() {
    let agent = "http://slb-sync.slb-sync.svc:8080";
    let mut docs = example("eni");
    pre_stop(
        &mut docs,
        &[
            "/slb-sync/slb-sync",
            "wait-drained",
            "--agent",
            agent,
            "--timeout",
            "35",
        ],
    );
    let f = one(&audit_docs(&docs), Rule::PreStop, Severity::Error);
    assert!(f.fix.contains("at least 46"), "{}", f.fix);

    pre_stop(
        &mut docs,
        &["/slb-sync/slb-sync", "wait-drained", "--agent", agent],
    );
    one(&audit_docs(&docs), Rule::PreStop, Severity::Warning);

    let mut docs = example("eni");
    remove(app(&mut docs), "env");
    let f = one(&audit_docs(&docs), Rule::PreStop, Severity::Error);
    assert!(f.finding.contains("POD_NAME"), "{}", f.finding);
    pre_stop(
        &mut docs,
        &[
            "/slb-sync/slb-sync",
            "wait-drained",
            "--agent",
            agent,
            "--timeout",
            "60",
            "--pod",
            "p",
            "--namespace",
            "demo",
        ],
    );
    assert!(of_rule(&audit_docs(&docs), Rule::PreStop).is_empty());
}

#[test]
fn wait_drained_must_outlast_a_kube_proxy_allowance_longer_than_the_window() {
    // The examples' 60 s timeout covers 6 s of health checks + 5 s of propagation + the
    // 30 s window + 5 s; an agent holding Cluster and Local pods 100 s for kube-proxy
    // needs 6 + 100 + 5 = 111 s. ENI pods bypass kube-proxy.
    let config = DoctorConfig {
        kube_proxy_allowance_secs: 100,
        ..DoctorConfig::default()
    };
    for mode in ["cluster", "local"] {
        let f = one(
            &run(&example(mode), &config),
            Rule::PreStop,
            Severity::Error,
        );
        assert!(f.fix.contains("at least 111"), "{mode}: {}", f.fix);
        assert!(
            f.finding.contains("--kube-proxy-allowance-seconds"),
            "{mode}: {}",
            f.finding
        );
    }
    assert!(of_rule(&run(&example("eni"), &config), Rule::PreStop).is_empty());
}

#[test]
fn the_hold_counts_the_agents_propagation_allowance_and_no_health_check_when_off() {
    let mut docs = example("eni");
    set_annotation(
        &mut docs,
        "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-health-check-flag",
        Some("off"),
    );
    pre_stop(&mut docs, &["sleep", "40"]);
    // Health off: 5 s of propagation + the 30 s window + 5 s = 40 s.
    assert!(of_rule(&audit_docs(&docs), Rule::PreStop).is_empty());
    let config = DoctorConfig {
        slb_propagation_secs: 15,
        ..DoctorConfig::default()
    };
    let f = one(&run(&docs, &config), Rule::PreStop, Severity::Error);
    assert!(f.finding.contains("50 s"), "{}", f.finding);
    assert!(
        f.finding.contains("--slb-propagation-seconds"),
        "{}",
        f.finding
    );
}

#[test]
fn a_hook_of_unknown_duration_is_a_warning() {
    let mut docs = example("cluster");
    app(&mut docs)["lifecycle"] =
        json!({"preStop": {"httpGet": {"path": "/shutdown", "port": "http"}}});
    let f = one(&audit_docs(&docs), Rule::PreStop, Severity::Warning);
    assert!(f.finding.contains("httpGet"));
}

// ---- grace-period ----

#[test]
fn the_grace_period_must_cover_pre_stop_plus_thirty_seconds() {
    let mut docs = example("cluster");
    pod_spec(&mut docs)["terminationGracePeriodSeconds"] = json!(89);
    let f = one(&audit_docs(&docs), Rule::GracePeriod, Severity::Error);
    assert_eq!(
        f.fix,
        "set spec.template.spec.terminationGracePeriodSeconds: 90"
    );

    // The default 30 s is too short for the example's 60 s wait-drained timeout.
    remove(pod_spec(&mut docs), "terminationGracePeriodSeconds");
    let f = one(&audit_docs(&docs), Rule::GracePeriod, Severity::Error);
    assert!(f.finding.contains("(the default)"));

    // A sleep is sized the same way.
    let mut docs = example("cluster");
    pre_stop(&mut docs, &["sleep", "46"]);
    pod_spec(&mut docs)["terminationGracePeriodSeconds"] = json!(76);
    assert_eq!(audit_docs(&docs).findings, []);
}

// ---- rolling-update ----

#[test]
fn rolling_updates_must_surge_and_keep_every_pod() {
    let mut docs = example("cluster");
    remove(&mut kind_mut(&mut docs, "Deployment")["spec"], "strategy");
    // Kubernetes defaults to 25%/25%: 3 replicas → 0 unavailable (rounded down) … but
    // with 4 replicas one pod may go early.
    kind_mut(&mut docs, "Deployment")["spec"]["replicas"] = json!(4);
    let f = one(&audit_docs(&docs), Rule::RollingUpdate, Severity::Error);
    assert!(f.finding.contains("maxUnavailable is 25%"), "{}", f.finding);

    let mut docs = example("cluster");
    kind_mut(&mut docs, "Deployment")["spec"]["strategy"]["rollingUpdate"] =
        json!({"maxSurge": 0, "maxUnavailable": 1});
    let f = one(&audit_docs(&docs), Rule::RollingUpdate, Severity::Error);
    assert!(f.finding.contains("maxUnavailable is 1") && f.finding.contains("maxSurge is 0"));

    kind_mut(&mut docs, "Deployment")["spec"]["strategy"] = json!({"type": "Recreate"});
    let f = one(&audit_docs(&docs), Rule::RollingUpdate, Severity::Error);
    assert!(f.finding.contains("Recreate"));

    kind_mut(&mut docs, "Deployment")["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "50%", "maxUnavailable": "0%"}});
    assert!(of_rule(&audit_docs(&docs), Rule::RollingUpdate).is_empty());
}

#[test]
fn a_stateful_set_is_audited_and_warned_about_its_update_order() {
    let mut docs = example("eni");
    let deployment = kind_mut(&mut docs, "Deployment");
    deployment["kind"] = json!("StatefulSet");
    let spec = deployment["spec"].as_object_mut().unwrap();
    spec.remove("strategy");
    spec.insert("serviceName".to_owned(), json!("web-eni"));
    let report = audit_docs(&docs);
    let f = one(&report, Rule::RollingUpdate, Severity::Warning);
    assert_eq!(f.object, "StatefulSet demo/web-eni");
    assert_eq!(
        report.findings.len(),
        1,
        "the pod rules pass as for the Deployment"
    );
}

// ---- local-layout ----

#[test]
fn local_mode_without_a_node_pool_is_a_warning() {
    let mut docs = example("local");
    remove(pod_spec(&mut docs), "affinity");
    let f = one(&audit_docs(&docs), Rule::LocalLayout, Severity::Warning);
    assert!(f
        .fix
        .contains("preferredDuringSchedulingIgnoredDuringExecution"));
    // Not a concern in Cluster mode.
    let mut docs = example("cluster");
    assert!(pod_spec(&mut docs).get("affinity").is_none());
    assert!(of_rule(&audit_docs(&docs), Rule::LocalLayout).is_empty());
}

#[test]
fn local_mode_needs_more_replicas_than_pool_nodes() {
    // The example's pool (pool=web-local) has two nodes.
    let mut docs = example("local");
    kind_mut(&mut docs, "Deployment")["spec"]["replicas"] = json!(2);
    let f = one(&audit_docs(&docs), Rule::LocalLayout, Severity::Warning);
    assert!(f.finding.contains("replicas 2 ≤ 2 nodes"), "{}", f.finding);
    assert!(f.fix.contains("at least 3"));

    // A pool no node carries.
    let mut docs = example("local");
    pod_spec(&mut docs)["affinity"]["nodeAffinity"]
        ["preferredDuringSchedulingIgnoredDuringExecution"][0]["preference"]["matchExpressions"]
        [0]["values"] = json!(["typo-pool"]);
    let f = one(&audit_docs(&docs), Rule::LocalLayout, Severity::Warning);
    assert!(f.finding.contains("no Node"));
}

#[test]
fn without_nodes_doctor_says_what_to_check() {
    let docs = without_nodes(example("local"));
    let f = one(&audit_docs(&docs), Rule::LocalLayout, Severity::Info);
    assert!(
        f.fix.contains("kubectl get nodes -l 'pool in (web-local)'"),
        "{}",
        f.fix
    );
    assert!(!audit_docs(&docs).has_errors());
}

// ---- cluster-quota ----

fn cluster_services(count: usize, policy: &str) -> Vec<Value> {
    (0..count)
        .map(|i| {
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": format!("s{i}"), "namespace": "q", "annotations": {
                       "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-id": format!("lb-q{i}")}},
                   "spec": {"type": "LoadBalancer", "loadBalancerClass": "slb-sync.io/slb",
                            "externalTrafficPolicy": policy,
                            "ports": [{"port": 80, "nodePort": 30000 + i}]}})
        })
        .collect()
}

#[test]
fn cluster_mode_slb_count_is_held_against_the_per_instance_quota() {
    assert!(audit_docs(&cluster_services(40, "Cluster"))
        .findings
        .is_empty());
    let f = one(
        &audit_docs(&cluster_services(41, "Cluster")),
        Rule::ClusterQuota,
        Severity::Warning,
    );
    assert_eq!(f.object, "cluster");
    assert!(f.finding.starts_with("41 SLB instances"));
    assert!(audit_docs(&cluster_services(50, "Cluster"))
        .findings
        .iter()
        .all(|f| f.severity == Severity::Warning));
    one(
        &audit_docs(&cluster_services(51, "Cluster")),
        Rule::ClusterQuota,
        Severity::Error,
    );
    // Local-mode SLBs attach only nodes with pods.
    assert!(of_rule(
        &audit_docs(&cluster_services(60, "Local")),
        Rule::ClusterQuota
    )
    .is_empty());

    // Services sharing one SLB count once.
    let mut docs = cluster_services(60, "Cluster");
    for d in &mut docs[..20] {
        d["metadata"]["annotations"]["service.beta.kubernetes.io/alibaba-cloud-loadbalancer-id"] =
            json!("lb-shared");
    }
    let f = one(&audit_docs(&docs), Rule::ClusterQuota, Severity::Warning);
    assert!(f.finding.starts_with("41 SLB instances"), "{}", f.finding);
}

// ---- annotations, workload and which Services are managed ----

#[test]
fn a_managed_service_with_bad_annotations_is_an_error_naming_the_key() {
    let mut docs = example("cluster");
    set_annotation(
        &mut docs,
        "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-id",
        None,
    );
    let f = one(&audit_docs(&docs), Rule::Annotations, Severity::Error);
    assert_eq!(f.object, "Service demo/web-cluster");
    assert!(f.fix.contains("alibaba-cloud-loadbalancer-id"), "{}", f.fix);
}

#[test]
fn ack_annotations_the_agent_does_not_read_are_named_as_info() {
    // The shared weight without vgroup-port: ACK does not read it there either.
    let mut docs = example("eni");
    set_annotation(
        &mut docs,
        "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-weight",
        Some("60"),
    );
    let report = audit_docs(&docs);
    let f = one(&report, Rule::Annotations, Severity::Info);
    assert!(
        f.finding.contains("alibaba-cloud-loadbalancer-weight"),
        "{}",
        f.finding
    );
    assert!(!report.has_errors());
}

#[test]
fn a_service_without_its_workload_in_the_input_is_reported_as_info() {
    let docs: Vec<_> = example("eni")
        .into_iter()
        .filter(|d| d["kind"] != "Deployment")
        .collect();
    let report = audit_docs(&docs);
    one(&report, Rule::Workload, Severity::Info);
    assert!(!report.has_errors());
}

#[test]
fn only_managed_services_are_audited() {
    let mut docs = example("eni");
    remove(app(&mut docs), "readinessProbe");
    kind_mut(&mut docs, "Service")["spec"]["loadBalancerClass"] = json!("other.io/lb");
    let report = audit_docs(&docs);
    assert_eq!((report.summary.services, report.findings.len()), (0, 0));

    let config = DoctorConfig {
        lb_class: "other.io/lb".to_owned(),
        ..DoctorConfig::default()
    };
    one(&run(&docs, &config), Rule::ReadinessProbe, Severity::Error);

    // Class-less Services only with --manage-unclassed (they carry the id annotation).
    remove(
        &mut kind_mut(&mut docs, "Service")["spec"],
        "loadBalancerClass",
    );
    assert_eq!(audit_docs(&docs).summary.services, 0);
    let config = DoctorConfig {
        manage_unclassed: true,
        ..DoctorConfig::default()
    };
    one(&run(&docs, &config), Rule::ReadinessProbe, Severity::Error);

    // A workload in another namespace is not behind the Service.
    kind_mut(&mut docs, "Deployment")["metadata"]["namespace"] = json!("other");
    let report = run(&docs, &config);
    assert!(of_rule(&report, Rule::ReadinessProbe).is_empty());
    one(&report, Rule::Workload, Severity::Info);
}

// ---- group-listener ----

#[test]
fn ports_without_vgroup_port_get_a_note_that_their_group_needs_a_listener() {
    let config = DoctorConfig::default();
    let report = run_all(&example("eni"), &config);
    let found = one(&report, Rule::GroupListener, Severity::Info);
    assert!(
        found.finding.contains("port(s) 80")
            && found
                .finding
                .contains("k8s/<port>/web-eni/demo/<cluster-id>"),
        "{}",
        found.finding
    );
    assert!(
        found.fix.contains("vgroup-port: <group id>:80"),
        "{}",
        found.fix
    );
    // The cluster example names port 80's group; only 443 is found by name.
    let report = run_all(&example("cluster"), &config);
    let found = one(&report, Rule::GroupListener, Severity::Info);
    assert!(found.finding.contains("port(s) 443 "), "{}", found.finding);
    // Naming every port's group leaves nothing to say.
    let mut docs = example("eni");
    set_annotation(
        &mut docs,
        "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-vgroup-port",
        Some("rsp-web:80"),
    );
    assert_eq!(
        of_rule(&run_all(&docs, &config), Rule::GroupListener),
        Vec::<&slb_sync::doctor::Finding>::new()
    );
}

// ---- health-check ----

const HC: &str = "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-health-check-";

#[test]
fn a_listener_health_check_turned_off_is_a_warning() {
    let mut docs = example("eni");
    set_annotation(&mut docs, &format!("{HC}flag"), Some("off"));
    let f = one(&audit_docs(&docs), Rule::HealthCheck, Severity::Warning);
    assert_eq!(f.object, "Service demo/web-eni");
    assert!(f.finding.contains("registration only"), "{}", f.finding);
    assert!(f.fix.contains("health-check-flag"), "{}", f.fix);
    // On, or unset (the SLB's TCP listeners check by default): nothing to say.
    set_annotation(&mut docs, &format!("{HC}flag"), Some("on"));
    assert!(of_rule(&audit_docs(&docs), Rule::HealthCheck).is_empty());
}

#[test]
fn health_checks_slower_than_the_gate_timeout_or_the_progress_deadline_are_warnings() {
    let mut docs = example("eni");
    set_annotation(&mut docs, &format!("{HC}interval"), Some("50"));
    set_annotation(
        &mut docs,
        "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-healthy-threshold",
        Some("10"),
    );
    // 500 s of checks: within the defaults (600 s timeout and progress deadline).
    assert!(of_rule(&audit_docs(&docs), Rule::HealthCheck).is_empty());
    let config = DoctorConfig {
        health_gate_timeout_secs: 300,
        ..DoctorConfig::default()
    };
    let f = one(&run(&docs, &config), Rule::HealthCheck, Severity::Warning);
    assert!(
        f.finding.contains("500s") && f.finding.contains("--health-gate-timeout-seconds"),
        "{}",
        f.finding
    );
    kind_mut(&mut docs, "Deployment")["spec"]["progressDeadlineSeconds"] = json!(120);
    let f = one(&audit_docs(&docs), Rule::HealthCheck, Severity::Warning);
    assert_eq!(f.object, "Deployment demo/web-eni");
    assert!(
        f.finding.contains("progressDeadlineSeconds (120)"),
        "{}",
        f.finding
    );
}
