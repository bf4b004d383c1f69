//! Rules on the SLB health check a Service's listeners are configured with (ACK's
//! `health-check-*` annotations: `doctor` reads the cluster, not the SLB). With the check
//! off, a readiness gate can prove registration only; with checks that take longer than
//! the agent's health-gate timeout or the Deployment's progress deadline, gates open
//! unhealthy or the rollout is reported stalled.

use super::workload::Workload;
use super::{DoctorConfig, Findings, ManagedService, Rule, Severity};
use crate::annotations::PREFIX;

/// The API's defaults: a check every 2 s, normal after 3 successes.
const DEFAULT_INTERVAL_SECS: u32 = 2;
const DEFAULT_HEALTHY_THRESHOLD: u32 = 3;
/// Kubernetes' default `progressDeadlineSeconds`.
const DEFAULT_PROGRESS_DEADLINE_SECS: i32 = 600;

fn annotation<'a>(svc: &'a ManagedService<'_>, suffix: &str) -> Option<&'a str> {
    let annotations = svc.service.metadata.annotations.as_ref()?;
    crate::annotations::value(annotations, &format!("{PREFIX}{suffix}"))
}

/// How long a new backend takes to be reported `normal` at best: interval × healthy
/// threshold, from the annotations or the API's defaults. `None` when the check is off.
pub(super) fn checks_secs(svc: &ManagedService<'_>) -> Option<u32> {
    if annotation(svc, "health-check-flag").is_some_and(|v| v.eq_ignore_ascii_case("off")) {
        return None;
    }
    let number = |suffix: &str, default: u32| {
        annotation(svc, suffix)
            .and_then(|v| v.trim().parse::<u32>().ok())
            .filter(|v| *v > 0)
            .unwrap_or(default)
    };
    Some(
        number("health-check-interval", DEFAULT_INTERVAL_SECS)
            * number("healthy-threshold", DEFAULT_HEALTHY_THRESHOLD),
    )
}

/// Per Service: a check that is off, or slower than the health-gate timeout.
pub(super) fn check_service(svc: &ManagedService<'_>, config: &DoctorConfig, out: &mut Findings) {
    let object = format!("Service {}", svc.id);
    match checks_secs(svc) {
        None => out.push(
            Severity::Warning,
            &object,
            Some(svc),
            Rule::HealthCheck,
            format!(
                "the listener's health check is off ({PREFIX}health-check-flag: off): \
                 readiness gates prove registration only, and the SLB keeps sending to a \
                 backend whose app stopped answering"
            ),
            format!(
                "set {PREFIX}health-check-flag: \"on\" so gates wait until the SLB reports \
                 a new backend normal"
            ),
        ),
        Some(secs) if secs >= config.health_gate_timeout_secs => out.push(
            Severity::Warning,
            &object,
            Some(svc),
            Rule::HealthCheck,
            format!(
                "a new backend needs at least {secs}s of health checks (interval × healthy \
                 threshold) before the SLB reports it normal: not less than the agent's \
                 --health-gate-timeout-seconds ({}), so gates open before it is",
                config.health_gate_timeout_secs
            ),
            "lower health-check-interval or healthy-threshold, or raise \
             --health-gate-timeout-seconds",
        ),
        Some(_) => {}
    }
}

/// Per workload: health checks that outlast the Deployment's progress deadline for one
/// new pod (the gate keeps it unready that long).
pub(super) fn check_workload(svc: &ManagedService<'_>, w: &Workload<'_>, out: &mut Findings) {
    let (Some(secs), Some(deadline)) = (checks_secs(svc), w.progress_deadline_secs) else {
        return;
    };
    let deadline = if deadline > 0 {
        deadline
    } else {
        DEFAULT_PROGRESS_DEADLINE_SECS
    };
    if i64::from(secs) < i64::from(deadline) {
        return;
    }
    out.push(
        Severity::Warning,
        w,
        Some(svc),
        Rule::HealthCheck,
        format!(
            "each new pod stays unready for at least {secs}s of SLB health checks, not less \
             than progressDeadlineSeconds ({deadline}): the Deployment is reported as failing \
             to progress on every update"
        ),
        format!(
            "raise spec.progressDeadlineSeconds above {secs}, or lower the Service's \
             health-check-interval or healthy-threshold"
        ),
    );
}
