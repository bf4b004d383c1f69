//! Rules on the pod template: probes, readiness gate, preStop and grace period.

use k8s_openapi::api::core::v1::{Container, PodSpec, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::prestop::{self, PreStop};
use super::workload::Workload;
use super::{Findings, ManagedService, Rule, Severity, PASS_MARGIN_SECS, SHUTDOWN_MARGIN_SECS};
use crate::model::Mode;

/// Readiness checked less often than this leaves a failing pod in rotation too long.
const MAX_READINESS_PERIOD_SECS: i32 = 30;
/// More consecutive failures than this before a pod is taken out is rarely intended.
const MAX_READINESS_FAILURES: i32 = 10;
/// A failing pod should leave the endpoints within this many seconds.
const MAX_READINESS_DETECTION_SECS: i32 = 60;

/// Readiness gate condition types that hold a pod until the SLB carries its backend.
pub(super) fn gate_types(service: &str) -> [String; 2] {
    [
        format!("registered.slb-sync.io/{service}"),
        format!("service.readiness.alibabacloud.com/{service}"),
    ]
}

pub(super) fn check(svc: &ManagedService<'_>, w: &Workload<'_>, out: &mut Findings) {
    let Some(pod) = w.template.spec.as_ref() else {
        out.push(
            Severity::Error,
            w,
            Some(svc),
            Rule::ReadinessProbe,
            "the pod template has no spec",
            "add spec.template.spec with the application's containers",
        );
        return;
    };
    let containers = serving_containers(svc, pod);
    if containers.is_empty() {
        out.push(
            Severity::Error,
            w,
            Some(svc),
            Rule::ReadinessProbe,
            "the pod template has no containers",
            "add the application's containers to spec.template.spec.containers",
        );
        return;
    }
    let mut longest_pre_stop = None;
    for c in &containers {
        check_readiness(svc, w, c, out);
        check_liveness(svc, w, c, out);
        let pre_stop = prestop::of(c);
        check_pre_stop(svc, w, c, &pre_stop, out);
        longest_pre_stop = longest_pre_stop.max(pre_stop.seconds());
    }
    check_gate(svc, w, pod, out);
    check_grace(svc, w, pod, longest_pre_stop, out);
}

/// The containers that serve the Service's target ports; all of them when none matches
/// (a targetPort number without a declared containerPort is common).
fn serving_containers<'p>(svc: &ManagedService<'_>, pod: &'p PodSpec) -> Vec<&'p Container> {
    let ports = svc
        .service
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    let serves = |c: &Container| {
        c.ports.iter().flatten().any(|cp| {
            ports.iter().any(|sp| match &sp.target_port {
                Some(IntOrString::String(name)) => cp.name.as_deref() == Some(name.as_str()),
                Some(IntOrString::Int(n)) => cp.container_port == *n,
                None => cp.container_port == sp.port,
            })
        })
    };
    let matching: Vec<_> = pod.containers.iter().filter(|c| serves(c)).collect();
    if matching.is_empty() {
        pod.containers.iter().collect()
    } else {
        matching
    }
}

fn object(w: &Workload<'_>, c: &Container) -> String {
    format!("{w} container {}", c.name)
}

fn check_readiness(svc: &ManagedService<'_>, w: &Workload<'_>, c: &Container, out: &mut Findings) {
    let Some(probe) = c.readiness_probe.as_ref() else {
        out.push(
            Severity::Error,
            object(w, c),
            Some(svc),
            Rule::ReadinessProbe,
            "no readinessProbe: a new pod is an endpoint (and an SLB backend) as soon as its \
             container starts, before the application can serve",
            format!(
                "add to container {}: readinessProbe: {{httpGet: {{path: <health path>, \
                 port: <serving port>}}, periodSeconds: 5, failureThreshold: 3}}",
                c.name
            ),
        );
        return;
    };
    let period = probe.period_seconds.unwrap_or(10);
    let failures = probe.failure_threshold.unwrap_or(3);
    let mut problems = Vec::new();
    if period > MAX_READINESS_PERIOD_SECS {
        problems.push(format!(
            "periodSeconds {period} > {MAX_READINESS_PERIOD_SECS}"
        ));
    }
    if failures > MAX_READINESS_FAILURES {
        problems.push(format!(
            "failureThreshold {failures} > {MAX_READINESS_FAILURES}"
        ));
    }
    if period.saturating_mul(failures) > MAX_READINESS_DETECTION_SECS {
        problems.push(format!(
            "a failing pod stays in rotation for {} s (periodSeconds × failureThreshold) > \
             {MAX_READINESS_DETECTION_SECS} s",
            period.saturating_mul(failures)
        ));
    }
    if !problems.is_empty() {
        out.push(
            Severity::Warning,
            object(w, c),
            Some(svc),
            Rule::ReadinessProbe,
            format!(
                "readinessProbe is slow to take a failing pod out: {}",
                problems.join("; ")
            ),
            format!(
                "set container {}'s readinessProbe periodSeconds ≤ 10 and failureThreshold ≤ 3",
                c.name
            ),
        );
    }
}

/// Seconds until a probe that never succeeds has failed `failureThreshold` times.
fn failing_budget(p: &Probe) -> i64 {
    i64::from(p.initial_delay_seconds.unwrap_or(0))
        + i64::from(p.period_seconds.unwrap_or(10)) * i64::from(p.failure_threshold.unwrap_or(3))
}

fn check_liveness(svc: &ManagedService<'_>, w: &Workload<'_>, c: &Container, out: &mut Findings) {
    let (Some(live), Some(ready)) = (c.liveness_probe.as_ref(), c.readiness_probe.as_ref()) else {
        return;
    };
    if c.startup_probe.is_some() {
        // Liveness only starts once the startup probe has passed.
        return;
    }
    let (kill, give_up) = (failing_budget(live), failing_budget(ready));
    if kill < give_up {
        let delay = i64::from(live.initial_delay_seconds.unwrap_or(0)) + (give_up - kill);
        out.push(
            Severity::Warning,
            object(w, c),
            Some(svc),
            Rule::LivenessProbe,
            format!(
                "the livenessProbe restarts a container that is still starting after {kill} s, \
                 before its readinessProbe has had {give_up} s to pass: a slow starter is \
                 restarted in a loop and the rollout stalls"
            ),
            format!(
                "add a startupProbe to container {} (same check, failureThreshold × \
                 periodSeconds ≥ the slowest start), or set livenessProbe.initialDelaySeconds \
                 ≥ {delay}",
                c.name
            ),
        );
    }
}

fn check_gate(svc: &ManagedService<'_>, w: &Workload<'_>, pod: &PodSpec, out: &mut Findings) {
    let name = svc.service.metadata.name.as_deref().unwrap_or("");
    let wanted = gate_types(name);
    let declared: Vec<&str> = pod
        .readiness_gates
        .iter()
        .flatten()
        .map(|g| g.condition_type.as_str())
        .collect();
    if declared.iter().any(|d| wanted.iter().any(|w| w == d)) {
        return;
    }
    // Cluster mode: every node is already a backend, so the gate only guards kube-proxy.
    let severity = if svc.mode == Mode::Cluster {
        Severity::Warning
    } else {
        Severity::Error
    };
    let found = if declared.is_empty() {
        String::new()
    } else {
        format!(" (declared: {})", declared.join(", "))
    };
    out.push(
        severity,
        w,
        Some(svc),
        Rule::ReadinessGate,
        format!(
            "no readiness gate {}{found}: a new pod counts as Ready, and the rollout removes \
             an old pod, before the SLB carries the new pod's backend",
            wanted[0]
        ),
        format!(
            "add to spec.template.spec: readinessGates: [{{conditionType: {}}}]",
            wanted[0]
        ),
    );
}

fn check_pre_stop(
    svc: &ManagedService<'_>,
    w: &Workload<'_>,
    c: &Container,
    pre_stop: &PreStop,
    out: &mut Findings,
) {
    // The agent lowers a pod's backend to 0 once a replacement is reported normal where
    // the listener checks health, reports it drained the propagation allowance and the
    // drain window after that, and in Cluster and Local mode not before the kube-proxy
    // allowance either.
    let health = super::health_rules::checks_secs(svc).unwrap_or(0);
    let drained = svc.slb_propagation_secs + svc.drain_secs;
    let held = health + drained.max(svc.kube_proxy_allowance_secs);
    let needed = held + PASS_MARGIN_SECS;
    let wait_fix = format!(
        "set container {}'s lifecycle.preStop.exec.command to [/slb-sync/slb-sync, \
         wait-drained, --agent, http://slb-sync.slb-sync.svc:8080, --timeout, \"{}\"] (binary \
         delivered by an init container, see deploy/examples/)",
        c.name,
        needed.max(60)
    );
    let mut window = if svc.kube_proxy_allowance_secs > drained {
        format!(
            "the agent's kube-proxy allowance is {} s (--kube-proxy-allowance-seconds), \
             longer than the drain",
            svc.kube_proxy_allowance_secs
        )
    } else {
        format!(
            "the SLB propagation allowance is {} s (--slb-propagation-seconds) and the drain \
             window {} s, {}",
            svc.slb_propagation_secs,
            svc.drain_secs,
            if svc.drain_from_service {
                "the Service's connection-drain-timeout"
            } else {
                "the default for Services without connection drain (--default-drain-seconds)"
            }
        )
    };
    if health > 0 {
        window.push_str(&format!(
            "; the drain waits for the replacement's health check, {health} s at best \
             (interval × healthy threshold)"
        ));
    }
    let mut push = |severity, finding: String, fix: String| {
        out.push(
            severity,
            object(w, c),
            Some(svc),
            Rule::PreStop,
            finding,
            fix,
        )
    };
    match pre_stop {
        PreStop::Missing => push(
            Severity::Error,
            format!(
                "no preStop hook: the container gets SIGTERM as soon as the pod is deleted, \
                 while the SLB still sends it traffic ({window})"
            ),
            wait_fix,
        ),
        PreStop::WaitDrained { timeout: None, .. } => push(
            Severity::Warning,
            "wait-drained has no --timeout: how long the hook may block cannot be checked \
             against the grace period"
                .to_owned(),
            format!(
                "add --timeout {} to the wait-drained command",
                needed.max(60)
            ),
        ),
        PreStop::WaitDrained {
            timeout: Some(t), ..
        } if *t < needed => push(
            Severity::Error,
            format!(
                "wait-drained --timeout {t} is shorter than the agent holds the pod plus \
                 {PASS_MARGIN_SECS} s ({needed} s; {window}): it gives up, and the \
                 container stops, before the drain completes"
            ),
            format!("raise --timeout to at least {needed}"),
        ),
        PreStop::WaitDrained { names_pod, .. } => {
            let env: Vec<&str> = c.env.iter().flatten().map(|e| e.name.as_str()).collect();
            let env_names_pod = env.contains(&"POD_NAME") && env.contains(&"POD_NAMESPACE");
            if !(*names_pod || env_names_pod) {
                push(
                    Severity::Error,
                    "wait-drained identifies the pod by --pod/--namespace or the POD_NAME and \
                     POD_NAMESPACE variables, and the container sets neither"
                        .to_owned(),
                    format!(
                        "add to container {}'s env: POD_NAME from fieldRef metadata.name and \
                         POD_NAMESPACE from fieldRef metadata.namespace",
                        c.name
                    ),
                );
            }
        }
        PreStop::Sleep(n) if *n < needed => push(
            Severity::Error,
            format!(
                "preStop sleeps {n} s, less than the agent holds the pod plus \
                 {PASS_MARGIN_SECS} s ({needed} s; {window}): the container stops while the \
                 SLB may still send it traffic"
            ),
            format!("{wait_fix}; or sleep at least {needed} s"),
        ),
        PreStop::Sleep(_) => {}
        PreStop::Unknown(what) => push(
            Severity::Warning,
            format!(
                "preStop runs {what}; doctor cannot tell whether it outlasts the drain window \
                 plus propagation ({needed} s; {window})"
            ),
            wait_fix,
        ),
    }
}

fn check_grace(
    svc: &ManagedService<'_>,
    w: &Workload<'_>,
    pod: &PodSpec,
    pre_stop_secs: Option<u32>,
    out: &mut Findings,
) {
    // Without a readable preStop time the pre-stop finding already says what to do.
    let Some(pre_stop_secs) = pre_stop_secs else {
        return;
    };
    let grace = pod.termination_grace_period_seconds.unwrap_or(30);
    let needed = i64::from(pre_stop_secs) + SHUTDOWN_MARGIN_SECS;
    if grace < needed {
        out.push(
            Severity::Error,
            w,
            Some(svc),
            Rule::GracePeriod,
            format!(
                "terminationGracePeriodSeconds is {grace}{}, less than the preStop time \
                 ({pre_stop_secs} s) plus {SHUTDOWN_MARGIN_SECS} s: the kubelet kills the \
                 container during or right after preStop, cutting in-flight requests",
                if pod.termination_grace_period_seconds.is_none() {
                    " (the default)"
                } else {
                    ""
                }
            ),
            format!("set spec.template.spec.terminationGracePeriodSeconds: {needed}"),
        );
    }
}
