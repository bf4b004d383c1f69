//! Kubernetes Events the agent emits, as typed reasons over kube-runtime's
//! [`Recorder`] (which also deduplicates repeats into an event series).
//!
//! Events are how a user running `kubectl describe` learns why a Service is not synced or
//! why a pod's finalizer was released; their reasons are stable names users alert on.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::Client;

use super::names::EVENT_CONTROLLER;
use crate::slb::SlbError;

/// Events API limit on `note` (1 kB).
const MAX_NOTE_BYTES: usize = 1024;

/// An event the agent reports, with what the note must quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEvent {
    /// A Service annotation has a value the agent cannot use; the Service is skipped.
    BadAnnotation {
        key: String,
        value: String,
        problem: String,
    },
    /// The Service sets ACK annotations slb-sync does not read; they change nothing.
    UnsupportedAnnotation { keys: Vec<String> },
    /// The SLB API refused a change permanently (validation, quota, not found, auth).
    SlbError {
        action: String,
        code: String,
        message: String,
        request_id: Option<String>,
    },
    /// The SLB refused one backend of a group; it is held out of the group's plans until
    /// a retry while every other change of the group goes ahead.
    BackendQuarantined {
        backend: String,
        group: String,
        action: String,
        code: String,
        message: String,
        retry_secs: u64,
    },
    /// Pod-facing work (drains, gates, cleanup) of the Service waited longer than the
    /// API budget should allow.
    ApiBudgetExceeded { waited_secs: u64, qps: String },
    /// No listener of the SLB instance forwards to one of the Service's groups (a group
    /// found or created by its owner name gets no traffic until one does).
    GroupWithoutListener {
        load_balancer_id: String,
        group: String,
        port: Option<u16>,
    },
    /// The pod was deleted: its backend's weight went to 0 and the drain window started.
    DrainStarted { window_secs: u64 },
    /// The pod's backend was removed after draining; the pod is reported drained.
    DrainCompleted,
    /// The pod finalizer was released before the drain was confirmed, at the deadline.
    FailOpenRelease { held_secs: u64, reason: String },
    /// A listener reports the pod's backend `abnormal`: its readiness gate stays False.
    BackendUnhealthy { detail: String },
    /// The pod's readiness gate waited on health for `--health-gate-timeout-seconds` and
    /// was opened without a `normal` report.
    HealthGateTimeout { detail: String },
}

impl AgentEvent {
    /// A permanent SLB error, quoting its Code and RequestId.
    pub fn slb_error(err: &SlbError) -> Self {
        AgentEvent::SlbError {
            action: err.action.to_owned(),
            code: err.code.clone(),
            message: err.message.clone(),
            request_id: err.request_id.clone(),
        }
    }

    /// The `reason` field: stable, PascalCase.
    pub fn reason(&self) -> &'static str {
        match self {
            AgentEvent::BadAnnotation { .. } => "BadAnnotation",
            AgentEvent::UnsupportedAnnotation { .. } => "UnsupportedAnnotation",
            AgentEvent::SlbError { .. } => "SlbError",
            AgentEvent::BackendQuarantined { .. } => "BackendQuarantined",
            AgentEvent::GroupWithoutListener { .. } => "GroupWithoutListener",
            AgentEvent::ApiBudgetExceeded { .. } => "ApiBudgetExceeded",
            AgentEvent::DrainStarted { .. } => "DrainStarted",
            AgentEvent::DrainCompleted => "DrainCompleted",
            AgentEvent::FailOpenRelease { .. } => "FailOpenRelease",
            AgentEvent::BackendUnhealthy { .. } => "BackendUnhealthy",
            AgentEvent::HealthGateTimeout { .. } => "HealthGateTimeout",
        }
    }

    fn action(&self) -> &'static str {
        match self {
            AgentEvent::BadAnnotation { .. } | AgentEvent::UnsupportedAnnotation { .. } => {
                "ParseAnnotations"
            }
            AgentEvent::SlbError { .. }
            | AgentEvent::BackendQuarantined { .. }
            | AgentEvent::GroupWithoutListener { .. }
            | AgentEvent::ApiBudgetExceeded { .. } => "SyncBackends",
            AgentEvent::DrainStarted { .. } | AgentEvent::DrainCompleted => "DrainBackend",
            AgentEvent::FailOpenRelease { .. } => "ReleaseFinalizer",
            AgentEvent::BackendUnhealthy { .. } | AgentEvent::HealthGateTimeout { .. } => {
                "GateReadiness"
            }
        }
    }

    fn event_type(&self) -> EventType {
        match self {
            AgentEvent::DrainStarted { .. } | AgentEvent::DrainCompleted => EventType::Normal,
            _ => EventType::Warning,
        }
    }

    /// The `note`: what happened and what to do, within the Events API size limit.
    pub fn note(&self) -> String {
        let note = match self {
            AgentEvent::BadAnnotation {
                key,
                value,
                problem,
            } => format!(
                "annotation {key}={value:?} is not valid: {problem}; the Service is skipped \
                 until it is fixed"
            ),
            AgentEvent::UnsupportedAnnotation { keys } => format!(
                "slb-sync does not read {}: they change nothing here (backend weights are \
                 100 in Cluster and ENI mode and the node's pod count in Local mode; the \
                 instance's and listeners' settings stay with whoever manages them); the \
                 Service is synced without them",
                keys.join(", ")
            ),
            AgentEvent::SlbError {
                action,
                code,
                message,
                request_id,
            } => format!(
                "SLB {action} failed with Code {code} (RequestId {}): {message}; retried \
                 with backoff, and at once when the Service or the SLB changes",
                request_id.as_deref().unwrap_or("none")
            ),
            AgentEvent::BackendQuarantined {
                backend,
                group,
                action,
                code,
                message,
                retry_secs,
            } => format!(
                "SLB {action} refused backend {backend} of vServer group {group} with Code \
                 {code}: {message}; it is held out and tried again in {retry_secs}s, and every \
                 other change of the group went ahead. If the server is gone (a released ECS \
                 instance whose Node lingers), delete or fix the Node"
            ),
            AgentEvent::GroupWithoutListener {
                load_balancer_id,
                group,
                port,
            } => {
                let port =
                    port.map_or_else(|| "the Service's port".to_owned(), |p| format!("port {p}"));
                format!(
                    "no listener of SLB {load_balancer_id} forwards to vServer group {group}, \
                     which holds the backends of {port}: it gets no traffic. Create a listener \
                     that uses this group, or name the group a listener uses in the \
                     vgroup-port annotation"
                )
            }
            AgentEvent::ApiBudgetExceeded { waited_secs, qps } => format!(
                "SLB work that pods of this Service wait on (drains, readiness gates, cleanup) \
                 took {waited_secs}s from queue to done: more than the agent's API budget \
                 ({qps} requests/s for every Service) allows in time. Pods may be released \
                 before their drain is confirmed; raise --qps if the account's API quota \
                 allows, or roll fewer Services at once"
            ),
            AgentEvent::DrainStarted { window_secs } => format!(
                "backend weight set to 0; draining for {window_secs}s before removing it \
                 from the SLB"
            ),
            AgentEvent::DrainCompleted => {
                "backend drained and removed from the SLB; the pod is reported drained".into()
            }
            AgentEvent::FailOpenRelease { held_secs, reason } => format!(
                "finalizer released after {held_secs}s without a confirmed drain ({reason}); \
                 the SLB may still have sent it traffic. Check the agent's logs and the SLB"
            ),
            AgentEvent::BackendUnhealthy { detail } => format!(
                "{detail}. The pod's readiness gate stays False (the SLB sends it no new \
                 connections) until the listener reports it normal, or until \
                 --health-gate-timeout-seconds after its containers became ready. Check that \
                 the health check probes the port the pod serves on"
            ),
            AgentEvent::HealthGateTimeout { detail } => format!(
                "readiness gate opened without a normal health report: {detail}. The pod may \
                 get no traffic through the SLB; check the listener's health check"
            ),
        };
        truncate(note, MAX_NOTE_BYTES)
    }

    /// The kube-runtime event.
    pub fn to_event(&self) -> Event {
        Event {
            type_: self.event_type(),
            reason: self.reason().to_owned(),
            note: Some(self.note()),
            action: self.action().to_owned(),
            secondary: None,
        }
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    const MARK: &str = "…";
    let mut end = max - MARK.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(MARK);
    text
}

/// Publishes [`AgentEvent`]s. Cheap to clone.
#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
}

impl Events {
    /// `instance` is the agent's pod name (distinguishes replicas in `reportingInstance`).
    pub fn new(client: Client, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: EVENT_CONTROLLER.to_owned(),
            instance,
        };
        Events {
            recorder: Recorder::new(client, reporter),
        }
    }

    /// Publishes `event` on the object `regarding`.
    pub async fn publish(
        &self,
        event: &AgentEvent,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        self.recorder.publish(&event.to_event(), regarding).await
    }

    /// Publishes and logs a failure instead of returning it: an Event that cannot be
    /// written must never stop a sync or a drain.
    pub async fn emit(&self, event: &AgentEvent, regarding: &ObjectReference) {
        if let Err(err) = self.publish(event, regarding).await {
            tracing::warn!(
                reason = event.reason(),
                namespace = regarding.namespace.as_deref().unwrap_or(""),
                name = regarding.name.as_deref().unwrap_or(""),
                error = %err,
                "cannot publish a Kubernetes Event"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slb::ErrorClass;

    #[test]
    fn slb_error_event_quotes_code_and_request_id() {
        let err = SlbError::api(
            "AddVServerGroupBackendServers",
            "InvalidBackendServers.ServerIpConflict",
            "The specified ServerIp conflicts.",
            Some("5E1F-AA".into()),
        );
        assert_eq!(err.class, ErrorClass::Permanent);
        let event = AgentEvent::slb_error(&err).to_event();
        assert_eq!(event.reason, "SlbError");
        assert_eq!(event.type_, EventType::Warning);
        let note = event.note.unwrap();
        assert!(
            note.contains("Code InvalidBackendServers.ServerIpConflict")
                && note.contains("RequestId 5E1F-AA")
                && note.contains("AddVServerGroupBackendServers")
                && note.contains("The specified ServerIp conflicts."),
            "{note}"
        );
        let local = SlbError::local("SetVServerGroupAttribute", ErrorClass::Permanent, "X", "m");
        let note = AgentEvent::slb_error(&local).note();
        assert!(note.contains("RequestId none"), "{note}");
    }

    #[test]
    fn bad_annotation_names_key_and_value() {
        let event = AgentEvent::BadAnnotation {
            key: "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-connection-drain-timeout"
                .into(),
            value: "5".into(),
            problem: "must be 10 to 900 seconds".into(),
        };
        let e = event.to_event();
        assert_eq!(
            (e.reason.as_str(), e.type_),
            ("BadAnnotation", EventType::Warning)
        );
        let note = e.note.unwrap();
        assert!(
            note.contains("connection-drain-timeout=\"5\"")
                && note.contains("must be 10 to 900 seconds"),
            "{note}"
        );
    }

    #[test]
    fn unsupported_annotations_are_a_warning_naming_every_key() {
        let e = AgentEvent::UnsupportedAnnotation {
            keys: vec![
                "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-weight".into(),
                "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-spec".into(),
            ],
        }
        .to_event();
        assert_eq!(
            (e.reason.as_str(), e.type_, e.action.as_str()),
            (
                "UnsupportedAnnotation",
                EventType::Warning,
                "ParseAnnotations"
            )
        );
        let note = e.note.unwrap();
        assert!(
            note.contains("loadbalancer-weight, ") && note.contains("loadbalancer-spec:"),
            "{note}"
        );
    }

    #[test]
    fn drain_events_are_normal_and_fail_open_is_a_warning() {
        let started = AgentEvent::DrainStarted { window_secs: 30 }.to_event();
        assert_eq!(
            (started.reason.as_str(), started.type_),
            ("DrainStarted", EventType::Normal)
        );
        assert!(started.note.unwrap().contains("30s"));
        let done = AgentEvent::DrainCompleted.to_event();
        assert_eq!(
            (done.reason.as_str(), done.type_),
            ("DrainCompleted", EventType::Normal)
        );
        let open = AgentEvent::FailOpenRelease {
            held_secs: 95,
            reason: "SLB unreachable".into(),
        }
        .to_event();
        assert_eq!(
            (open.reason.as_str(), open.type_),
            ("FailOpenRelease", EventType::Warning)
        );
        let note = open.note.unwrap();
        assert!(
            note.contains("95s") && note.contains("SLB unreachable"),
            "{note}"
        );
    }

    #[test]
    fn notes_fit_the_events_api_limit_on_a_char_boundary() {
        let event = AgentEvent::SlbError {
            action: "A".into(),
            code: "C".into(),
            message: "é".repeat(2000),
            request_id: None,
        };
        let note = event.note();
        assert!(note.len() <= MAX_NOTE_BYTES, "{}", note.len());
        assert!(note.ends_with('…'));
        assert_eq!(truncate("short".into(), 10), "short");
    }
}
