//! The drain journal on pods: ENI drain start times as the annotation
//! `slb-sync.io/drain-started-at`, read back into the executor's ledger at start-up.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;

use super::book::PodKey;
use super::decide;
use super::lifecycle::{lock, PodContext, PodLifecycle};
use crate::k8s::events::AgentEvent;
use crate::k8s::names::DRAIN_STARTED_AT_ANNOTATION;
use crate::model::{BackendKey, Mode, ServiceRef, StoredPod};
use crate::plan::DrainLedger;
use crate::reconcile::DrainJournal;

impl PodContext {
    fn pod(&self, key: &PodKey) -> Option<Arc<StoredPod>> {
        self.stores.pods.get(&ObjectRef::new(&key.1).within(&key.0))
    }

    /// The live pod with `ip` (a pod IP is reused only after its pod finished).
    fn pod_with_ip(&self, ip: IpAddr) -> Option<Arc<StoredPod>> {
        let keys: Vec<PodKey> = lock(&self.book).with_ip(ip).cloned().collect();
        keys.iter()
            .filter_map(|key| self.pod(key))
            .filter(|p| !decide::is_terminal(p))
            // A deleted pod still held keeps its IP until released: it is the one draining.
            .max_by_key(|p| decide::is_deleting(p) && decide::has_finalizer(p))
    }

    /// The deleted, still held pods of the Local Service whose group `v_server_group_id`
    /// is, on the node `instance`: a node drain there is theirs.
    fn held_pods_on_node(&self, v_server_group_id: &str, instance: &str) -> Vec<Arc<StoredPod>> {
        let (service, held) = {
            let book = lock(&self.book);
            let Some((group, _)) = book.group_with_id(v_server_group_id) else {
                return Vec::new();
            };
            let service = group.service.clone();
            let held = book.held_in(&service.namespace);
            (service, held)
        };
        let ServiceRef { namespace, name } = &service;
        let index = self.index();
        held.iter()
            .filter_map(|key| self.pod(key))
            .filter(|p| !decide::is_drained(p))
            .filter(|p| {
                let empty = Default::default();
                let labels = p.metadata.labels.as_ref().unwrap_or(&empty);
                matches!(&self.place(p).instance, Some(Some(id)) if id == instance)
                    && index
                        .services_selecting(namespace, labels)
                        .iter()
                        .any(|s| &s.name == name && s.mode == Mode::Local)
            })
            .collect()
    }

    fn window_of(&self, v_server_group_id: &str) -> Option<Duration> {
        lock(&self.book)
            .group_with_id(v_server_group_id)
            .map(|(_, o)| o.target.drain_window)
    }
}

/// The drain ledger the journal annotations of `pods` record (ENI backends only).
pub fn ledger_from_pods<'a>(pods: impl IntoIterator<Item = &'a StoredPod>) -> DrainLedger {
    let mut ledger = DrainLedger::new();
    for pod in pods {
        let value = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DRAIN_STARTED_AT_ANNOTATION))
            .map(String::as_str);
        let place = decide::pod_place(pod, None);
        let Some(ip) = place.ips.first() else {
            continue;
        };
        for (entry, at) in decide::parse_journal(value) {
            let Some((group, port)) = decide::split_journal_key(&entry) else {
                continue;
            };
            ledger.start(
                group,
                BackendKey::Eni {
                    server_ip: *ip,
                    port,
                },
                at,
            );
        }
    }
    ledger
}

impl PodLifecycle {
    fn note_event(&self, pod: &StoredPod, event: AgentEvent) {
        let Some(key) = super::book::pod_key(pod) else {
            return;
        };
        lock(&self.context.book)
            .events
            .entry(key.clone())
            .or_default()
            .push(event);
        self.request(&key);
    }

    fn note_journal(&self, pod: &StoredPod, entry: String, at: Option<Timestamp>) {
        let Some(key) = super::book::pod_key(pod) else {
            return;
        };
        lock(&self.context.book)
            .journal
            .entry(key.clone())
            .or_default()
            .insert(entry, at);
        self.request(&key);
    }
}

impl DrainJournal for PodLifecycle {
    fn drain_started(&self, v_server_group_id: &str, key: &BackendKey, at: Timestamp) {
        let context = &self.context;
        let (server_ip, port) = match key {
            BackendKey::Eni { server_ip, port } => (server_ip, port),
            BackendKey::Ecs { server_id, .. } => {
                // Node drains are not persisted: after a restart their window restarts
                // in full, which is safe. They are announced on the pods they are for.
                let window_secs = context
                    .window_of(v_server_group_id)
                    .map_or(0, |w| w.as_secs());
                for pod in context.held_pods_on_node(v_server_group_id, server_id) {
                    self.note_event(&pod, AgentEvent::DrainStarted { window_secs });
                }
                return;
            }
        };
        let Some(pod) = context.pod_with_ip(*server_ip) else {
            return;
        };
        self.note_journal(
            &pod,
            decide::journal_key(v_server_group_id, *port),
            Some(at),
        );
        // Drains of pods that merely turned unready are journaled but not announced.
        if !decide::is_deleting(&pod) {
            return;
        }
        let window_secs = context
            .window_of(v_server_group_id)
            .map_or(0, |w| w.as_secs());
        self.note_event(&pod, AgentEvent::DrainStarted { window_secs });
    }

    fn drain_ended(&self, v_server_group_id: &str, key: &BackendKey) {
        let BackendKey::Eni { server_ip, port } = key else {
            return;
        };
        if let Some(pod) = self.context.pod_with_ip(*server_ip) {
            self.note_journal(&pod, decide::journal_key(v_server_group_id, *port), None);
        }
    }
}
