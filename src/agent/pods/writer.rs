//! The one task that writes pods: finalizers, readiness gate and drained conditions, the
//! drain journal annotation, and pod Events.
//!
//! Observers (`pass_finished`, `pod_event`, the drain journal) must never block, so they
//! queue [`Write`]s here. One task, in order, also means the journal's read-modify-write
//! of an annotation never races another journal write. Every write re-reads the pod first,
//! so a queued write that became pointless (the pod changed or went away) does nothing.
//! Only the leader writes: a write dequeued while not leading is dropped, and the pod side
//! re-derives everything when leadership is gained.

use std::collections::HashSet;
use std::sync::Mutex;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::decide::{self, GateCondition};
use crate::agent::metrics::AgentMetrics;
use crate::k8s::events::{AgentEvent, Events};
use crate::k8s::names::{
    DRAINED_CONDITION, DRAIN_STARTED_AT_ANNOTATION, FAIL_OPEN_REASON, POD_FINALIZER,
};
use crate::k8s::release::{remove_finalizer, Removal};

/// Re-reads and retries after the pod changed under a guarded patch.
const MAX_ATTEMPTS: usize = 5;
/// A failed write is tried again after 1, 2, 4, 8 s (a pod's grace period is short).
const RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(1);
const MAX_RETRIES: u32 = 4;

/// `(namespace, name)` of a pod.
pub type PodKey = (String, String);

/// A pod write the pod side decided on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Add `slb-sync.io/drain` (unless the pod is being deleted or has it).
    AddFinalizer(PodKey),
    /// Set readiness gate conditions.
    Gate(PodKey, GateCondition),
    /// The drain is confirmed: Event DrainCompleted, condition drained=True, then release.
    Complete(PodKey),
    /// The fail-open deadline passed: Warning Event, metric, release.
    FailOpen { pod: PodKey, held_secs: u64 },
    /// Set (`Some`) or remove (`None`) one drain journal entry.
    Journal {
        pod: PodKey,
        key: String,
        at: Option<Timestamp>,
    },
    /// Publish an Event on the pod.
    Event(PodKey, AgentEvent),
}

impl Write {
    /// Identical writes queued twice cost one (they are idempotent, the second is noise).
    fn dedup_key(&self) -> Option<String> {
        match self {
            Write::AddFinalizer((ns, n)) => Some(format!("fin/{ns}/{n}")),
            Write::Gate((ns, n), g) => Some(format!(
                "gate/{ns}/{n}/{}/{}/{}",
                g.condition_type, g.status, g.reason
            )),
            Write::Complete((ns, n)) => Some(format!("done/{ns}/{n}")),
            Write::FailOpen { pod: (ns, n), .. } => Some(format!("open/{ns}/{n}")),
            Write::Journal { .. } | Write::Event(..) => None,
        }
    }
}

/// The sending side, held by the pod side.
pub struct WriteQueue {
    tx: mpsc::UnboundedSender<(Write, u32)>,
    queued: std::sync::Arc<Mutex<HashSet<String>>>,
}

impl WriteQueue {
    /// Queues `write` unless the same write is already waiting.
    pub fn send(&self, write: Write) {
        if let Some(key) = write.dedup_key() {
            if !lock(&self.queued).insert(key) {
                return;
            }
        }
        // A closed queue means the writer stopped with the agent: nothing left to do.
        let _ = self.tx.send((write, 0));
    }
}

/// What the writer task needs.
pub struct Writer {
    pub client: Client,
    pub events: Events,
    pub metrics: AgentMetrics,
    pub leader: watch::Receiver<bool>,
}

/// Starts the writer task; it ends when the queue is dropped.
pub fn spawn(writer: Writer) -> WriteQueue {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Write, u32)>();
    let queued = std::sync::Arc::new(Mutex::new(HashSet::new()));
    let done = queued.clone();
    // Retries must not keep the queue open once the pod side is gone.
    let retry_tx = tx.downgrade();
    tokio::spawn(async move {
        while let Some((write, attempt)) = rx.recv().await {
            if let Some(key) = write.dedup_key() {
                lock(&done).remove(&key);
            }
            if !*writer.leader.borrow() {
                tracing::debug!(?write, "not the leader; pod write dropped");
                continue;
            }
            let Err(error) = writer.run(&write).await else {
                continue;
            };
            if attempt >= MAX_RETRIES {
                // Level-triggered: the next pod event or pass decides the write again,
                // and a held finalizer still has its fail-open deadline.
                tracing::warn!(?write, %error, "pod write failed; giving up for now");
                continue;
            }
            tracing::info!(?write, %error, attempt, "pod write failed; retrying");
            let retry_tx = retry_tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(RETRY_DELAY.saturating_mul(1 << attempt)).await;
                if let Some(tx) = retry_tx.upgrade() {
                    let _ = tx.send((write, attempt + 1));
                }
            });
        }
    });
    WriteQueue { tx, queued }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Writer {
    fn api(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }

    async fn run(&self, write: &Write) -> Result<(), WriteError> {
        match write {
            Write::AddFinalizer((ns, name)) => self.add_finalizer(ns, name).await,
            Write::Gate((ns, name), gate) => self.set_gate(ns, name, gate).await,
            Write::Complete((ns, name)) => self.complete(ns, name).await,
            Write::FailOpen {
                pod: (ns, name),
                held_secs,
            } => self.fail_open(ns, name, *held_secs).await,
            Write::Journal {
                pod: (ns, name),
                key,
                at,
            } => self.journal(ns, name, key, *at).await,
            Write::Event((ns, name), event) => {
                self.event(ns, name, event).await;
                Ok(())
            }
        }
    }

    async fn add_finalizer(&self, ns: &str, name: &str) -> Result<(), WriteError> {
        let api = self.api(ns);
        for _ in 0..MAX_ATTEMPTS {
            let Some(pod) = api.get_opt(name).await? else {
                return Ok(());
            };
            if decide::is_deleting(&pod) || decide::has_finalizer(&pod) {
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
        if decide::is_deleting(&pod) || decide::gate_settled(&pod, gate) {
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
        .await
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
        let since = decide::transition_time(pod, condition_type, status, Timestamp::now());
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
        if !decide::has_finalizer(&pod) {
            return Ok(());
        }
        if !decide::is_drained(&pod) {
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
        if !decide::has_finalizer(&pod) || !decide::is_deleting(&pod) {
            return Ok(());
        }
        if decide::is_drained(&pod) {
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

    async fn journal(
        &self,
        ns: &str,
        name: &str,
        key: &str,
        at: Option<Timestamp>,
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
            .map(String::as_str);
        let Some(value) = decide::merge_journal(current, key, at) else {
            return Ok(());
        };
        // This task is the annotation's only writer and re-read it just now: a merge
        // patch cannot lose another entry.
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

    async fn event(&self, ns: &str, name: &str, event: &AgentEvent) {
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
