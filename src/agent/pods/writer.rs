//! The pod writes: finalizers, readiness gate and drained conditions, the drain journal
//! annotation, and pod Events.
//!
//! Every write re-reads the pod first and is conditional on what it read, so a write that
//! became pointless (the pod changed or went away) does nothing. The reconciler never runs
//! two reconciles of one pod at once, so the journal's read-modify-write of an annotation
//! never races another write of the same pod.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};

use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde_json::json;

use super::decide::{self, GateCondition};
use super::health_gate;
use super::step::PodWrite;
use crate::agent::metrics::AgentMetrics;
use crate::k8s::events::{AgentEvent, Events};
use crate::k8s::names::{
    DRAINED_CONDITION, DRAIN_STARTED_AT_ANNOTATION, FAIL_OPEN_REASON, POD_FINALIZER,
};
use crate::k8s::release::{remove_finalizer, Removal};
use crate::model::StoredPod;

/// Re-reads and retries after the pod changed under a guarded patch.
const MAX_ATTEMPTS: usize = 5;

/// What the writes need.
pub struct Writer {
    pub client: Client,
    pub events: Events,
    pub metrics: AgentMetrics,
}

impl Writer {
    fn api(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Makes one write the reconciler decided on for the pod `ns/name`.
    pub async fn write(&self, ns: &str, name: &str, write: &PodWrite) -> Result<(), WriteError> {
        match write {
            PodWrite::AddFinalizer => self.add_finalizer(ns, name).await,
            PodWrite::Gate(gate) => self.set_gate(ns, name, gate).await,
            PodWrite::Complete => self.complete(ns, name).await,
            PodWrite::FailOpen { held_secs } => self.fail_open(ns, name, *held_secs).await,
        }
    }

    async fn add_finalizer(&self, ns: &str, name: &str) -> Result<(), WriteError> {
        let api = self.api(ns);
        for _ in 0..MAX_ATTEMPTS {
            let Some(pod) = api.get_opt(name).await? else {
                return Ok(());
            };
            let seen = StoredPod::from(pod.clone());
            if decide::is_deleting(&seen) || decide::has_finalizer(&seen) {
                return Ok(());
            }
            // The resourceVersion test makes the write conditional on the pod we read
            // (not deleting, finalizers as seen), whatever the finalizers field holds.
            let version = pod.metadata.resource_version.clone().unwrap_or_default();
            let mut finalizers = pod.metadata.finalizers.clone().unwrap_or_default();
            finalizers.push(POD_FINALIZER.to_owned());
            let patch: json_patch::Patch = serde_json::from_value(json!([
                { "op": "test", "path": "/metadata/resourceVersion", "value": version },
                { "op": "add", "path": "/metadata/finalizers", "value": finalizers },
            ]))?;
            match api
                .patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
                .await
            {
                Ok(_) => {
                    tracing::debug!(namespace = %ns, pod = %name, "pod finalizer added");
                    return Ok(());
                }
                Err(err) if changed_meanwhile(&err) => continue,
                Err(err) if code(&err) == Some(404) => return Ok(()),
                Err(err) => return Err(err.into()),
            }
        }
        Err(WriteError::KeptChanging)
    }

    async fn set_gate(&self, ns: &str, name: &str, gate: &GateCondition) -> Result<(), WriteError> {
        let api = self.api(ns);
        let Some(pod) = api.get_opt(name).await? else {
            return Ok(());
        };
        let seen = StoredPod::from(pod.clone());
        if decide::is_deleting(&seen) || decide::gate_settled(&seen, gate) {
            return Ok(());
        }
        let status = if gate.status { "True" } else { "False" };
        self.patch_condition(
            &api,
            &pod,
            &gate.condition_type,
            status,
            gate.reason,
            &gate.message,
        )
        .await?;
        // Said once per change of reason: a gate written again with the same reason is
        // settled and never reaches here.
        let event = match gate.reason {
            health_gate::REASON_UNHEALTHY => {
                self.metrics.backend_unhealthy_total.inc();
                tracing::warn!(namespace = %ns, pod = %name, gate = %gate.condition_type,
                    detail = %gate.message, "readiness gate kept False: backend abnormal");
                AgentEvent::BackendUnhealthy {
                    detail: gate.message.clone(),
                }
            }
            health_gate::REASON_HEALTH_TIMEOUT => {
                self.metrics.gate_fail_open_total.inc();
                tracing::warn!(namespace = %ns, pod = %name, gate = %gate.condition_type,
                    detail = %gate.message, "readiness gate opened by the health-gate timeout");
                AgentEvent::HealthGateTimeout {
                    detail: gate.message.clone(),
                }
            }
            _ => return Ok(()),
        };
        self.event_on(&pod, &event).await;
        Ok(())
    }

    async fn patch_condition(
        &self,
        api: &Api<Pod>,
        pod: &Pod,
        condition_type: &str,
        status: &str,
        reason: &str,
        message: &str,
    ) -> Result<(), WriteError> {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let since = transition_time(pod, condition_type, status, Timestamp::now());
        // Strategic merge keys pod conditions by type: the kubelet's conditions stay.
        let patch = json!({ "status": { "conditions": [{
            "type": condition_type,
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": since.to_string(),
        }]}});
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if code(&err) == Some(404) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    async fn complete(&self, ns: &str, name: &str) -> Result<(), WriteError> {
        let api = self.api(ns);
        let Some(pod) = api.get_opt(name).await? else {
            return Ok(());
        };
        let seen = StoredPod::from(pod.clone());
        if !decide::has_finalizer(&seen) {
            return Ok(());
        }
        if !decide::is_drained(&seen) {
            self.event_on(&pod, &AgentEvent::DrainCompleted).await;
            // Drained first, then the release: the drain API reads `drained` from the
            // condition, never `unmanaged` from a missing finalizer of a drained pod.
            self.patch_condition(
                &api,
                &pod,
                DRAINED_CONDITION,
                "True",
                "BackendRemoved",
                "the pod's backend was drained and removed from the SLB",
            )
            .await?;
        }
        self.release(&api, ns, name).await?;
        tracing::info!(namespace = %ns, pod = %name, "pod drained; finalizer released");
        Ok(())
    }

    async fn fail_open(&self, ns: &str, name: &str, held_secs: u64) -> Result<(), WriteError> {
        let api = self.api(ns);
        let Some(pod) = api.get_opt(name).await? else {
            return Ok(());
        };
        let seen = StoredPod::from(pod.clone());
        if !decide::has_finalizer(&seen) || !decide::is_deleting(&seen) {
            return Ok(());
        }
        if decide::is_drained(&seen) {
            // The drain was confirmed; only the release is left.
            return self.release(&api, ns, name).await;
        }
        let event = AgentEvent::FailOpenRelease {
            held_secs,
            reason: "the pod's backend removal from the SLB was not confirmed before the \
                     pod's grace period and the fail-open margin ran out"
                .to_owned(),
        };
        self.event_on(&pod, &event).await;
        self.metrics.finalizer_fail_open_total.inc();
        // Said on the pod before the release, so the drain API answers `released` and
        // `wait-drained` does not mistake it for a pod the agent never held.
        self.patch_condition(
            &api,
            &pod,
            DRAINED_CONDITION,
            "False",
            FAIL_OPEN_REASON,
            &format!(
                "released after {held_secs}s without a confirmed drain: the SLB may still \
                 have sent the pod traffic"
            ),
        )
        .await?;
        tracing::warn!(namespace = %ns, pod = %name, held_secs, "pod finalizer released fail-open");
        self.release(&api, ns, name).await
    }

    async fn release(&self, api: &Api<Pod>, ns: &str, name: &str) -> Result<(), WriteError> {
        match remove_finalizer(api, name, POD_FINALIZER, false).await {
            Ok(Removal::Removed | Removal::Absent | Removal::Gone) => Ok(()),
            Err(err) => {
                tracing::warn!(namespace = %ns, pod = %name, error = %err, "cannot release pod finalizer");
                Err(WriteError::Release(Box::new(err)))
            }
        }
    }

    /// Sets (`Some`) or removes (`None`) drain journal entries in one patch.
    pub async fn journal(
        &self,
        ns: &str,
        name: &str,
        entries: &std::collections::BTreeMap<String, Option<Timestamp>>,
    ) -> Result<(), WriteError> {
        let api = self.api(ns);
        let Some(pod) = api.get_opt(name).await? else {
            return Ok(());
        };
        let current = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DRAIN_STARTED_AT_ANNOTATION))
            .cloned();
        let mut value = current.clone();
        for (key, at) in entries {
            if let Some(next) = decide::merge_journal(value.as_deref(), key, *at) {
                value = next;
            }
        }
        if value == current {
            return Ok(());
        }
        // The reconciler of this pod is the annotation's only writer and re-read it just
        // now: a merge patch cannot lose another entry.
        let patch =
            json!({ "metadata": { "annotations": { DRAIN_STARTED_AT_ANNOTATION: value } } });
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if code(&err) == Some(404) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    pub async fn event(&self, ns: &str, name: &str, event: &AgentEvent) {
        match self.api(ns).get_opt(name).await {
            Ok(Some(pod)) => self.event_on(&pod, event).await,
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(namespace = %ns, pod = %name, %error, "cannot read pod for an Event")
            }
        }
    }

    async fn event_on(&self, pod: &Pod, event: &AgentEvent) {
        let reference: ObjectReference = pod.object_ref(&());
        self.events.emit(event, &reference).await;
    }
}

/// The `lastTransitionTime` a write of `condition_type` at `status` carries: Kubernetes
/// moves it only when the status changes, so a write that changes only the reason or the
/// message keeps the pod's (read from the API server's copy: the store keeps no times of
/// our conditions).
fn transition_time(pod: &Pod, condition_type: &str, status: &str, now: Timestamp) -> Timestamp {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == condition_type))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.as_ref())
        .map_or(now, |t| t.0)
}

/// Why a pod write failed (logged; the write is decided again on the next change).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("building a JSON patch failed: {0}")]
    Patch(#[from] serde_json::Error),
    #[error("the pod kept changing during {MAX_ATTEMPTS} attempts")]
    KeptChanging,
    #[error(transparent)]
    Release(Box<crate::k8s::release::ReleaseError>),
}

fn code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// 409, or 422 from a failed JSON patch `test`.
fn changed_meanwhile(err: &kube::Error) -> bool {
    matches!(code(err), Some(409 | 422))
}
