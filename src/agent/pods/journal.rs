//! The drain journal on pods: ENI drain start times as the annotation
//! `slb-sync.io/drain-started-at`, read back into the executor's ledger at start-up.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;

use super::decide;
use super::lifecycle::{lock, pod_key, Inner, PodLifecycle};
use super::writer::Write;
use crate::k8s::events::AgentEvent;
use crate::k8s::names::DRAIN_STARTED_AT_ANNOTATION;
use crate::model::{BackendKey, Mode, ServiceRef};
use crate::plan::DrainLedger;
use crate::reconcile::DrainJournal;

impl Inner {
    /// The live pod with `ip` (a pod IP is reused only after its pod finished).
    fn pod_with_ip(&self, ip: IpAddr) -> Option<Arc<Pod>> {
        let text = ip.to_string();
        self.stores
            .pods
            .state()
            .into_iter()
            .filter(|p| !decide::is_terminal(p))
            .filter(|p| {
                let status = p.status.as_ref();
                status.and_then(|s| s.pod_ip.as_deref()) == Some(text.as_str())
                    || status
                        .and_then(|s| s.pod_ips.as_ref())
                        .is_some_and(|ips| ips.iter().any(|i| i.ip == text))
            })
            // A deleted pod still held keeps its IP until released: it is the one draining.
            .max_by_key(|p| decide::is_deleting(p) && decide::has_finalizer(p))
    }

    /// The deleted, still held pods of the Local Service whose group `v_server_group_id`
    /// is, on the node `instance`: a node drain there is theirs.
    fn held_pods_on_node(&self, v_server_group_id: &str, instance: &str) -> Vec<Arc<Pod>> {
        let service = lock(&self.state)
            .observed
            .iter()
            .find(|(_, o)| o.target.desired.v_server_group_id.as_deref() == Some(v_server_group_id))
            .map(|(g, _)| g.service.clone());
        let Some(ServiceRef { namespace, name }) = service else {
            return Vec::new();
        };
        let (namespace, name) = (namespace.as_str(), name.as_str());
        let services = self.stores.services.state();
        self.stores
            .pods
            .state()
            .into_iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(namespace))
            .filter(|p| {
                decide::is_deleting(p) && decide::has_finalizer(p) && !decide::is_drained(p)
            })
            .filter(|p| {
                matches!(&self.place(p).instance, Some(Some(id)) if id == instance)
                    && decide::backed_services(
                        p,
                        services.iter().map(|s| &**s),
                        &self.config.planner,
                    )
                    .iter()
                    .any(|s| s.name == name && s.mode == Mode::Local)
            })
            .collect()
    }

    fn window_of(&self, v_server_group_id: &str) -> Option<Duration> {
        lock(&self.state)
            .observed
            .values()
            .find(|o| o.target.desired.v_server_group_id.as_deref() == Some(v_server_group_id))
            .map(|o| o.target.drain_window)
    }
}

/// The drain ledger the journal annotations of `pods` record (ENI backends only).
pub fn ledger_from_pods<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> DrainLedger {
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

impl DrainJournal for PodLifecycle {
    fn drain_started(&self, v_server_group_id: &str, key: &BackendKey, at: Timestamp) {
        let inner = &self.inner;
        let (server_ip, port) = match key {
            BackendKey::Eni { server_ip, port } => (server_ip, port),
            BackendKey::Ecs { server_id, .. } => {
                // Node drains are not persisted: after a restart their window restarts
                // in full, which is safe. They are announced on the pods they are for.
                let window_secs = inner
                    .window_of(v_server_group_id)
                    .map_or(0, |w| w.as_secs());
                for pod in inner.held_pods_on_node(v_server_group_id, server_id) {
                    if let Some(pod_key) = pod_key(&pod) {
                        let event = AgentEvent::DrainStarted { window_secs };
                        inner.queue.send(Write::Event(pod_key, event));
                    }
                }
                return;
            }
        };
        let Some(pod) = inner.pod_with_ip(*server_ip) else {
            return;
        };
        let Some(pod_key) = pod_key(&pod) else { return };
        inner.queue.send(Write::Journal {
            pod: pod_key.clone(),
            key: decide::journal_key(v_server_group_id, *port),
            at: Some(at),
        });
        // Drains of pods that merely turned unready are journaled but not announced.
        if !decide::is_deleting(&pod) {
            return;
        }
        let window_secs = inner
            .window_of(v_server_group_id)
            .map_or(0, |w| w.as_secs());
        inner.queue.send(Write::Event(
            pod_key,
            AgentEvent::DrainStarted { window_secs },
        ));
    }

    fn drain_ended(&self, v_server_group_id: &str, key: &BackendKey) {
        let BackendKey::Eni { server_ip, port } = key else {
            return;
        };
        let inner = &self.inner;
        if let Some(pod) = inner.pod_with_ip(*server_ip).as_deref().and_then(pod_key) {
            inner.queue.send(Write::Journal {
                pod,
                key: decide::journal_key(v_server_group_id, *port),
                at: None,
            });
        }
    }
}
