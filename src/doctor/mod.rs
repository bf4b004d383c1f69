//! `slb-sync doctor`: audits the workloads behind managed Services for the settings that
//! still lose requests during rolling updates (docs/architecture.md, "Workload advice").
//!
//! Pure rules over loaded objects ([`audit`]); reading files and printing live in the CLI
//! and [`render`]. Each finding names the object, the rule, what is wrong and the exact
//! change that fixes it, because the reader is an application team, not us.

pub mod cli;
mod health_rules;
pub mod live;
mod pod_rules;
mod prestop;
mod render;
mod rollout_rules;
mod workload;

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Service;
use serde::Serialize;

use crate::annotations;
use crate::desired::PlannerConfig;
use crate::model::{BackendType, Mode};
use crate::offline::ClusterSnapshot;

pub use render::{render_json, render_table};
use workload::Workload;

/// Seconds a pod is held beyond what the agent waits for by design (propagation, drain
/// window, kube-proxy allowance, the replacement's health): its passes on a busy API
/// budget. Added when judging how long a preStop must last.
pub const PASS_MARGIN_SECS: u32 = 5;
/// What Kubernetes asks of `terminationGracePeriodSeconds` beyond the preStop time: the
/// application's own shutdown after SIGTERM.
pub const SHUTDOWN_MARGIN_SECS: i64 = 30;
/// Default number of SLB instances one ECS instance may back.
pub const SLB_PER_ECS_LIMIT: usize = 50;
/// Cluster-mode SLB count from which `doctor` warns about that limit.
pub const SLB_PER_ECS_WARN: usize = 40;

/// Which Services are audited and the drain window assumed when a Service sets none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoctorConfig {
    /// `spec.loadBalancerClass` of managed Services (`--lb-class`).
    pub lb_class: String,
    /// Also audit class-less LoadBalancer Services with the SLB id annotation.
    pub manage_unclassed: bool,
    /// The agent's drain window for Services without connection drain (`--default-drain-seconds`).
    pub default_drain_secs: u32,
    /// Where the objects came from; decides what a finding about a missing object asks for.
    pub source: Source,
    /// The agent's kube-proxy allowance (`--kube-proxy-allowance-seconds`): Cluster and
    /// Local pods are reported drained no earlier, so `wait-drained` must wait that long.
    pub kube_proxy_allowance_secs: u32,
    /// The agent's `--health-gate-timeout-seconds`.
    pub health_gate_timeout_secs: u32,
    /// The agent's `--slb-propagation-seconds`: a drain window counts from this long
    /// after the weight-0 write.
    pub slb_propagation_secs: u32,
}

impl Default for DoctorConfig {
    fn default() -> Self {
        DoctorConfig {
            lb_class: "slb-sync.io/slb".to_owned(),
            manage_unclassed: false,
            default_drain_secs: 30,
            source: Source::Files,
            kube_proxy_allowance_secs: 5,
            health_gate_timeout_secs: 600,
            slb_propagation_secs: 5,
        }
    }
}

/// Where `doctor` read the objects from. The rules are the same; only the advice for an
/// object that is not there differs (pass more files, or look at the cluster by hand).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Source {
    /// Manifest files or dumps given on the command line.
    #[default]
    Files,
    /// The live cluster (`doctor --live`), see [`live`].
    Cluster,
}

/// Whether the agent manages `service`, by the planner's own rule (docs/architecture.md,
/// "Managed"), so doctor audits exactly what the agent would sync.
pub fn is_managed(service: &Service, config: &DoctorConfig) -> bool {
    let planner = PlannerConfig {
        lb_class: config.lb_class.clone(),
        manage_unclassed: config.manage_unclassed,
        ..PlannerConfig::default()
    };
    crate::index::is_managed(service, &planner)
}

/// How bad a finding is: errors make `doctor` exit non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Requests will be lost (or the rollout cannot complete) as configured.
    Error,
    /// Requests may be lost under load, slow starts or large clusters.
    Warning,
    /// Something `doctor` cannot check from the input; says what to check by hand.
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// The rules, with the stable ids printed in the `rule` column and JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// The Service's annotations must parse, or the agent skips it.
    Annotations,
    /// A managed Service should have a workload in the input to audit.
    Workload,
    /// readinessProbe present, with thresholds that take a failing pod out quickly.
    ReadinessProbe,
    /// A livenessProbe must not kill a slow starter before readiness could pass.
    LivenessProbe,
    /// Readiness gate `registered.slb-sync.io/<service>` (or ACK's).
    ReadinessGate,
    /// preStop waits for the drain (`wait-drained`, or a long enough `sleep`).
    PreStop,
    /// terminationGracePeriodSeconds ≥ preStop time + 30 s.
    GracePeriod,
    /// Rolling update with maxUnavailable 0 and maxSurge > 0.
    RollingUpdate,
    /// Local mode: a serving pod stays on every backend node during the update.
    LocalLayout,
    /// Cluster mode: SLB instances per ECS instance against the default quota.
    ClusterQuota,
    /// A port without `vgroup-port` gets a group found or created by name, which carries
    /// traffic only once a listener forwards to it.
    GroupListener,
    /// The listener's health check (ACK's annotations): on, and faster than the
    /// health-gate timeout and the Deployment's progress deadline.
    HealthCheck,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Annotations => "annotations",
            Rule::Workload => "workload",
            Rule::ReadinessProbe => "readiness-probe",
            Rule::LivenessProbe => "liveness-probe",
            Rule::ReadinessGate => "readiness-gate",
            Rule::PreStop => "pre-stop",
            Rule::GracePeriod => "grace-period",
            Rule::RollingUpdate => "rolling-update",
            Rule::LocalLayout => "local-layout",
            Rule::ClusterQuota => "cluster-quota",
            Rule::GroupListener => "group-listener",
            Rule::HealthCheck => "health-check",
        }
    }

    /// Every rule, in report order.
    pub const ALL: [Rule; 11] = [
        Rule::Annotations,
        Rule::Workload,
        Rule::ReadinessProbe,
        Rule::LivenessProbe,
        Rule::ReadinessGate,
        Rule::PreStop,
        Rule::GracePeriod,
        Rule::RollingUpdate,
        Rule::LocalLayout,
        Rule::ClusterQuota,
        Rule::GroupListener,
    ];
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem (or one thing to check by hand) found on one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// `Deployment demo/web`, `Service demo/web`, or `cluster`.
    pub object: String,
    /// The managed Service the finding is about, `<namespace>/<name>`, when there is one.
    pub service: Option<String>,
    pub rule: Rule,
    /// What is wrong and why it loses requests.
    pub finding: String,
    /// The change that fixes it.
    pub fix: String,
}

/// All findings, most severe first, then by object and rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub summary: Summary,
}

/// Counts per severity; `errors > 0` makes `doctor` exit non-zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Managed Services audited.
    pub services: usize,
    /// (Service, workload) pairs audited.
    pub workloads: usize,
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
}

impl Report {
    pub fn has_errors(&self) -> bool {
        self.summary.errors > 0
    }
}

/// A managed Service with what the rules need from it.
#[derive(Debug, Clone)]
pub(crate) struct ManagedService<'a> {
    pub id: String,
    pub service: &'a Service,
    pub mode: Mode,
    /// The SLB instance id, when the annotations parse.
    pub load_balancer_id: Option<String>,
    /// The agent's drain window for this Service, seconds.
    pub drain_secs: u32,
    /// Whether `drain_secs` is the Service's connection-drain-timeout (else the default).
    pub drain_from_service: bool,
    /// How long the agent holds a deleted pod for kube-proxy's sync lag, seconds (0 in
    /// ENI mode, which bypasses kube-proxy).
    pub kube_proxy_allowance_secs: u32,
    /// The agent's `--slb-propagation-seconds`.
    pub slb_propagation_secs: u32,
}

/// Collects findings; one place decides the object naming.
#[derive(Debug, Default)]
pub(crate) struct Findings(Vec<Finding>);

impl Findings {
    pub(crate) fn push(
        &mut self,
        severity: Severity,
        object: impl fmt::Display,
        service: Option<&ManagedService<'_>>,
        rule: Rule,
        finding: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.0.push(Finding {
            severity,
            object: object.to_string(),
            service: service.map(|s| s.id.clone()),
            rule,
            finding: finding.into(),
            fix: fix.into(),
        });
    }
}

/// Audits every workload behind a managed Service in `snapshot`.
pub fn audit(snapshot: &ClusterSnapshot, config: &DoctorConfig) -> Report {
    let mut out = Findings::default();
    let services = managed_services(snapshot, config, &mut out);
    let workloads: Vec<Workload<'_>> = snapshot
        .deployments
        .iter()
        .map(Workload::from_deployment)
        .chain(
            snapshot
                .stateful_sets
                .iter()
                .map(Workload::from_stateful_set),
        )
        .collect();
    let mut pairs = 0;
    for svc in &services {
        let selector = svc
            .service
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        let namespace = svc
            .service
            .metadata
            .namespace
            .as_deref()
            .unwrap_or("default");
        let behind: Vec<_> = workloads
            .iter()
            .filter(|w| w.namespace == namespace && w.selected_by(&selector))
            .collect();
        // A Service without a selector has its endpoints managed by hand: no workload
        // to audit, and nothing to say about it.
        if behind.is_empty() && !selector.is_empty() {
            let selector = format_selector(&selector);
            let (finding, fix) = match config.source {
                Source::Files => (
                    format!(
                        "no Deployment or StatefulSet in the input has pod labels matching \
                         the selector {selector}, so no workload was audited for this Service"
                    ),
                    "pass the workload's manifests too (or `kubectl get deploy,sts -n <ns> -o \
                     yaml`)"
                        .to_owned(),
                ),
                Source::Cluster => (
                    format!(
                        "no Deployment or StatefulSet in namespace {namespace} has pod labels \
                         matching the selector {selector}, so no workload was audited for \
                         this Service"
                    ),
                    format!(
                        "doctor audits Deployments and StatefulSets; check the pods behind \
                         the Service (kubectl get pods -n {namespace} -l {selector}) and their \
                         controller by hand against the rules, or fix the selector"
                    ),
                ),
            };
            out.push(
                Severity::Info,
                format!("Service {}", svc.id),
                Some(svc),
                Rule::Workload,
                finding,
                fix,
            );
        }
        health_rules::check_service(svc, config, &mut out);
        for workload in behind {
            pairs += 1;
            health_rules::check_workload(svc, workload, &mut out);
            pod_rules::check(svc, workload, &mut out);
            rollout_rules::check_rollout(svc, workload, &mut out);
            if svc.mode == Mode::Local {
                rollout_rules::check_local_layout(svc, workload, &snapshot.nodes, &mut out);
            }
        }
    }
    rollout_rules::check_cluster_quota(&services, &mut out);

    let mut findings = out.0;
    findings.sort_by(|a, b| {
        (a.severity, &a.object, a.rule, &a.service)
            .cmp(&(b.severity, &b.object, b.rule, &b.service))
    });
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    let summary = Summary {
        services: services.len(),
        workloads: pairs,
        errors: count(Severity::Error),
        warnings: count(Severity::Warning),
        infos: count(Severity::Info),
    };
    Report { findings, summary }
}

/// Managed Services by the planner's rules (docs/architecture.md, "Managed", "Mode"), with a
/// finding for each whose annotations do not parse.
fn managed_services<'a>(
    snapshot: &'a ClusterSnapshot,
    config: &DoctorConfig,
    out: &mut Findings,
) -> Vec<ManagedService<'a>> {
    let mut services = Vec::new();
    for service in &snapshot.services {
        let Some(spec) = service.spec.as_ref() else {
            continue;
        };
        if !is_managed(service, config) {
            continue;
        }
        let empty = BTreeMap::new();
        let annotations = service.metadata.annotations.as_ref().unwrap_or(&empty);
        let id = format!(
            "{}/{}",
            service.metadata.namespace.as_deref().unwrap_or("default"),
            service.metadata.name.as_deref().unwrap_or("")
        );
        let parsed = annotations::parse(annotations);
        let eni = match &parsed {
            Ok(spec) => spec.backend_type == Some(BackendType::Eni),
            Err(_) => annotations
                .get(annotations::BACKEND_TYPE)
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("eni")),
        };
        let mode = if eni {
            Mode::Eni
        } else if spec.external_traffic_policy.as_deref() == Some("Local") {
            Mode::Local
        } else {
            Mode::Cluster
        };
        let mut managed = ManagedService {
            id,
            service,
            mode,
            load_balancer_id: None,
            drain_secs: config.default_drain_secs,
            drain_from_service: false,
            kube_proxy_allowance_secs: if mode == Mode::Eni {
                0
            } else {
                config.kube_proxy_allowance_secs
            },
            slb_propagation_secs: config.slb_propagation_secs,
        };
        let unsupported = annotations::unsupported(annotations);
        if !unsupported.is_empty() {
            out.push(
                Severity::Info,
                format!("Service {}", managed.id),
                Some(&managed),
                Rule::Annotations,
                format!(
                    "the agent does not read {}: they change nothing it does (the agent \
                     sends an UnsupportedAnnotation Event)",
                    unsupported.join(", ")
                ),
                "`…-weight` is read only with `…-vgroup-port`, as ACK reads it; set \
                 instance and listener settings where the instance is managed, and see \
                 docs/configuration.md, \"ACK compatibility of backend selection\""
                    .to_owned(),
            );
        }
        match parsed {
            Ok(lb) => {
                managed.drain_secs = lb.drain_window_secs(config.default_drain_secs);
                managed.drain_from_service =
                    lb.connection_drain == Some(true) && lb.connection_drain_timeout.is_some();
                check_group_listeners(&managed, &lb.vgroup_ports, out);
                managed.load_balancer_id = Some(lb.load_balancer_id);
            }
            Err(errors) => {
                let list: Vec<_> = errors.iter().map(ToString::to_string).collect();
                let fixes: Vec<_> = errors
                    .iter()
                    .map(|e| match e {
                        annotations::AnnotationError::Missing { key, fix } => {
                            format!("{key}: {fix}")
                        }
                        annotations::AnnotationError::Invalid { key, expected, .. } => {
                            format!("set {key} to {expected}")
                        }
                    })
                    .collect();
                out.push(
                    Severity::Error,
                    format!("Service {}", managed.id),
                    Some(&managed),
                    Rule::Annotations,
                    format!(
                        "the agent skips this Service (no backends are synced) because of: {}",
                        list.join("; ")
                    ),
                    fixes.join("; "),
                );
            }
        }
        services.push(managed);
    }
    services.sort_by(|a, b| a.id.cmp(&b.id));
    services
}

/// Ports the `vgroup-port` annotation does not name get the vServer group named by their
/// owner Description, found or created by the agent; the SLB sends such a group traffic
/// only once a listener forwards to it, which `doctor` cannot see from the cluster.
fn check_group_listeners(
    svc: &ManagedService<'_>,
    named: &BTreeMap<u16, String>,
    out: &mut Findings,
) {
    let ports: Vec<u16> = svc
        .service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|p| u16::try_from(p.port).ok())
        .filter(|p| !named.contains_key(p))
        .collect();
    if ports.is_empty() {
        return;
    }
    let (namespace, name) = svc.id.split_once('/').unwrap_or(("default", &svc.id));
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    out.push(
        Severity::Info,
        format!("Service {}", svc.id),
        Some(svc),
        Rule::GroupListener,
        format!(
            "port(s) {} have no vgroup-port entry: the agent uses the vServer group named \
             k8s/<port>/{name}/{namespace}/<cluster-id> on the SLB, creating it when \
             missing, and the SLB sends that group traffic only once a listener forwards to \
             it (the agent reports a GroupWithoutListener Event while none does)",
            list.join(", ")
        ),
        format!(
            "create a listener for each of those ports that uses the group, or name the \
             group a listener already uses: vgroup-port: <group id>:{}",
            ports[0]
        ),
    );
}

fn format_selector(selector: &BTreeMap<String, String>) -> String {
    selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
