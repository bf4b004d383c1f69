//! The readiness gate under `--gate-on healthy`, purely: a registered backend's gate opens
//! once every checked listener reports it `normal`; while it waits the condition says on
//! what, an `abnormal` report keeps it shut (with a Warning Event when first written), and
//! a bound after the pod's containers became ready opens it anyway.

use std::time::Duration;

use jiff::Timestamp;

use super::decide::GateCondition;
use crate::agent::health::Verdict;

/// Reason of an open gate whose backend every checking listener reports `normal`.
pub const REASON_HEALTHY: &str = "BackendHealthy";
/// Reason of a closed gate whose registered backend is not reported `normal` yet.
pub const REASON_NOT_HEALTHY: &str = "BackendNotHealthy";
/// Reason of a closed gate whose backend a listener reports `abnormal`.
pub const REASON_UNHEALTHY: &str = "BackendUnhealthy";
/// Reason of a gate opened by the health-gate timeout.
pub const REASON_HEALTH_TIMEOUT: &str = "HealthGateTimeout";

/// Where the health-gate timeout counts from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Since {
    /// When the pod's containers became ready (`None`: not ready, no timeout runs).
    pub containers_ready: Option<Timestamp>,
    /// When this agent began to wait on the pod's health (`None`: unknown). The timeout
    /// never counts from before it: after a restart, a pod that has long been running
    /// but whose gate is still False gets the whole bound.
    pub waiting: Option<Timestamp>,
}

/// The gate for a pod whose registration gate is `registered`, given the health verdict
/// of its backend in each group (with the group's service port).
pub fn health_gate(
    registered: GateCondition,
    verdicts: &[(u16, Verdict)],
    since: Since,
    timeout: Duration,
    now: Timestamp,
) -> GateCondition {
    if !registered.status || verdicts.iter().all(|(_, v)| *v == Verdict::NotChecked) {
        return registered;
    }
    let waiting: Vec<&(u16, Verdict)> = verdicts.iter().filter(|(_, v)| v.waits()).collect();
    let gate = |status, reason, message| GateCondition {
        condition_type: registered.condition_type.clone(),
        status,
        reason,
        message,
    };
    if waiting.is_empty() {
        return gate(
            true,
            REASON_HEALTHY,
            "the pod's backend is in every vServer group of the Service and every listener \
             that checks health reports it normal"
                .to_owned(),
        );
    }
    let abnormal = waiting.iter().find_map(|(service_port, v)| match v {
        Verdict::Abnormal { port, check } => Some((service_port, port, check)),
        _ => None,
    });
    let detail = match abnormal {
        Some((service_port, port, check)) => format!(
            "listener {port} reports the pod's backend for service port {service_port} \
             abnormal (health check every {}s, abnormal after {} failures, normal after {} \
             successes)",
            check.interval_secs, check.unhealthy_threshold, check.healthy_threshold
        ),
        None => {
            let pending: Vec<String> = waiting
                .iter()
                .map(|(service_port, v)| match v {
                    Verdict::Pending { ports } => {
                        format!("service port {service_port} (listener(s) {ports:?})")
                    }
                    _ => format!("service port {service_port} (no health reading yet)"),
                })
                .collect();
            format!(
                "waiting for the SLB to report the pod's backend normal for {}",
                pending.join(", ")
            )
        }
    };
    let timed_out = since
        .containers_ready
        .map(|ready| since.waiting.map_or(ready, |waiting| ready.max(waiting)))
        .and_then(|start| start.checked_add(timeout).ok())
        .is_some_and(|deadline| now >= deadline);
    if timed_out {
        return gate(
            true,
            REASON_HEALTH_TIMEOUT,
            format!(
                "opened {}s after the containers became ready without a normal health \
                 report: {detail}",
                timeout.as_secs()
            ),
        );
    }
    if abnormal.is_some() {
        gate(false, REASON_UNHEALTHY, detail)
    } else {
        gate(false, REASON_NOT_HEALTHY, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::pods::decide::REASON_REGISTERED;
    use crate::model::HealthCheck;

    fn registered(open: bool) -> GateCondition {
        GateCondition {
            condition_type: "registered.slb-sync.io/web".into(),
            status: open,
            reason: REASON_REGISTERED,
            message: "registered".into(),
        }
    }

    const T0: Timestamp = Timestamp::constant(1_700_000_000, 0);
    const TEN_MIN: Duration = Duration::from_secs(600);

    fn ready(at: Timestamp) -> Since {
        Since {
            containers_ready: Some(at),
            waiting: None,
        }
    }

    fn at(secs: i64) -> Timestamp {
        T0.checked_add(jiff::SignedDuration::from_secs(secs))
            .unwrap()
    }

    #[test]
    fn listeners_without_checks_keep_the_registration_rule() {
        let g = health_gate(
            registered(true),
            &[(80, Verdict::NotChecked)],
            ready(T0),
            TEN_MIN,
            at(1),
        );
        assert_eq!(g, registered(true));
        let shut = health_gate(
            registered(false),
            &[(80, Verdict::Healthy)],
            ready(T0),
            TEN_MIN,
            at(1),
        );
        assert_eq!(shut, registered(false));
    }

    #[test]
    fn the_gate_opens_when_every_group_is_healthy_and_says_on_what_it_waits() {
        let waiting = health_gate(
            registered(true),
            &[
                (80, Verdict::Healthy),
                (443, Verdict::Pending { ports: vec![443] }),
            ],
            ready(T0),
            TEN_MIN,
            at(1),
        );
        assert!(!waiting.status);
        assert_eq!(waiting.reason, REASON_NOT_HEALTHY);
        assert!(
            waiting.message.contains("service port 443"),
            "{}",
            waiting.message
        );
        let open = health_gate(
            registered(true),
            &[(80, Verdict::Healthy), (443, Verdict::NotChecked)],
            ready(T0),
            TEN_MIN,
            at(1),
        );
        assert!(open.status);
        assert_eq!(open.reason, REASON_HEALTHY);
    }

    #[test]
    fn an_abnormal_backend_keeps_the_gate_shut_until_the_timeout_opens_it() {
        let verdicts = [(
            80,
            Verdict::Abnormal {
                port: 80,
                check: HealthCheck::DEFAULT,
            },
        )];
        let shut = health_gate(registered(true), &verdicts, ready(T0), TEN_MIN, at(599));
        assert!(!shut.status);
        assert_eq!(shut.reason, REASON_UNHEALTHY);
        assert!(shut.message.contains("listener 80"), "{}", shut.message);
        assert!(shut.message.contains("every 2s"), "{}", shut.message);
        let open = health_gate(registered(true), &verdicts, ready(T0), TEN_MIN, at(600));
        assert!(open.status);
        assert_eq!(open.reason, REASON_HEALTH_TIMEOUT);
        // Containers not ready: no timeout runs (Kubernetes keeps the pod unready anyway).
        let never = health_gate(
            registered(true),
            &verdicts,
            Since::default(),
            TEN_MIN,
            at(6000),
        );
        assert!(!never.status);
    }

    #[test]
    fn the_timeout_never_counts_from_before_the_agent_began_to_wait() {
        // Containers ready for hours, the agent (restarted) waits since t=7000.
        let since = Since {
            containers_ready: Some(T0),
            waiting: Some(at(7_000)),
        };
        let pending = [(80, Verdict::Pending { ports: vec![80] })];
        let shut = health_gate(registered(true), &pending, since, TEN_MIN, at(7_001));
        assert_eq!((shut.status, shut.reason), (false, REASON_NOT_HEALTHY));
        let open = health_gate(registered(true), &pending, since, TEN_MIN, at(7_600));
        assert_eq!((open.status, open.reason), (true, REASON_HEALTH_TIMEOUT));
    }
}
