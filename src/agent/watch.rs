//! Watchers of the four kinds the planner reads, feeding the cluster index.
//!
//! Each kind has its own task: a kube-runtime `watcher` with the default backoff, the
//! objects stripped of what nobody reads, a reflector store, and the index updated with
//! every event. What an event affects goes to the control loop as a [`Msg`].

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::store::Writer;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::messages::{Kind, Msg};
use super::pods::SharedPodSide;
use crate::index::{Affected, ClusterIndex, Listed, ServiceRef};
use crate::k8s::drain_state::ReflectorPodStates;
use crate::model::StoredPod;
use crate::reconcile::Lane;

/// How one kind updates the index.
trait Indexed: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static {
    const KIND: Kind;
    fn apply(index: &mut ClusterIndex, obj: &Self) -> Affected;
    fn delete(index: &mut ClusterIndex, obj: &Self) -> Affected;
    /// Notes an object of a list (namespaced kinds by namespace and name).
    fn note(listed: &mut Listed, obj: &Self) {
        listed.note(obj.meta());
    }
    /// Drops from the index what a list did not return.
    fn retain(index: &mut ClusterIndex, listed: &Listed) -> Affected;
    /// Drops what neither the index nor the drain API reads.
    fn strip(obj: &mut Self);
    /// The Service an event of this object concerns whatever the index says changed
    /// (a deletionTimestamp or finalizer change matters to the control loop only).
    fn touched(_obj: &Self) -> Option<ServiceRef> {
        None
    }
}

fn strip_meta<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
}

impl Indexed for Service {
    const KIND: Kind = Kind::Services;
    fn apply(index: &mut ClusterIndex, obj: &Self) -> Affected {
        index.apply_service(obj)
    }
    fn delete(index: &mut ClusterIndex, obj: &Self) -> Affected {
        index.delete_service(obj)
    }
    fn retain(index: &mut ClusterIndex, listed: &Listed) -> Affected {
        index.retain_services(listed)
    }
    fn strip(obj: &mut Self) {
        strip_meta(obj);
        obj.status = None;
    }
    fn touched(obj: &Self) -> Option<ServiceRef> {
        Some(ServiceRef::new(
            obj.metadata.namespace.as_deref().unwrap_or("default"),
            obj.metadata.name.clone()?,
        ))
    }
}

impl Indexed for EndpointSlice {
    const KIND: Kind = Kind::EndpointSlices;
    fn apply(index: &mut ClusterIndex, obj: &Self) -> Affected {
        index.apply_endpoint_slice(obj)
    }
    fn delete(index: &mut ClusterIndex, obj: &Self) -> Affected {
        index.delete_endpoint_slice(obj)
    }
    fn retain(index: &mut ClusterIndex, listed: &Listed) -> Affected {
        index.retain_endpoint_slices(listed)
    }
    fn strip(obj: &mut Self) {
        strip_meta(obj);
    }
}

impl Indexed for Node {
    const KIND: Kind = Kind::Nodes;
    fn apply(index: &mut ClusterIndex, obj: &Self) -> Affected {
        index.apply_node(obj)
    }
    fn delete(index: &mut ClusterIndex, obj: &Self) -> Affected {
        index.delete_node(obj)
    }
    fn note(listed: &mut Listed, obj: &Self) {
        listed.note_node(&obj.metadata);
    }
    fn retain(index: &mut ClusterIndex, listed: &Listed) -> Affected {
        index.retain_nodes(listed)
    }
    fn strip(obj: &mut Self) {
        strip_meta(obj);
        if let Some(status) = obj.status.as_mut() {
            // Images and volumes are large and change often; conditions and addresses stay.
            status.images = None;
            status.volumes_attached = None;
            status.volumes_in_use = None;
        }
    }
}

impl Indexed for StoredPod {
    const KIND: Kind = Kind::Pods;
    fn apply(index: &mut ClusterIndex, obj: &Self) -> Affected {
        index.apply_pod(obj)
    }
    fn delete(index: &mut ClusterIndex, obj: &Self) -> Affected {
        index.delete_pod(obj)
    }
    fn retain(index: &mut ClusterIndex, listed: &Listed) -> Affected {
        index.retain_pods(listed)
    }
    fn strip(_: &mut Self) {
        // Already reduced while decoded (`agent/strip.rs`).
    }
}

/// What a watcher task shares with the rest of the agent.
#[derive(Clone)]
pub struct WatchContext {
    pub index: Arc<RwLock<ClusterIndex>>,
    pub tx: mpsc::UnboundedSender<Msg>,
}

/// The kind's watch events, stripped, written into `store` when there is one (the
/// index keeps what the planner and the pod side read of EndpointSlices: no store).
fn events<K: Indexed>(
    client: kube::Client,
    store: Option<Writer<K>>,
) -> futures::stream::BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>
where
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let api: Api<K> = Api::all(client);
    let events = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(K::strip);
    match store {
        Some(writer) => events.reflect(writer).boxed(),
        None => events.boxed(),
    }
}

/// A list in progress: what it returned so far, and what applying that affected.
#[derive(Default)]
struct Relist {
    listed: Listed,
    affected: Affected,
}

/// Feeds one event into the index and tells the control loop what it affected.
///
/// A list's objects are applied as they come and only their keys kept: at 150,000 pods a
/// copy of the whole list (on top of the reflector's own buffer) would double the agent's
/// peak memory. The index holds the old state plus what was listed so far until the list
/// ends, then drops what the list lacked.
fn handle<K: Indexed>(ctx: &WatchContext, relist: &mut Relist, event: &watcher::Event<K>) {
    let affected = {
        let mut index = ctx.index.write().unwrap_or_else(|e| e.into_inner());
        match event {
            watcher::Event::Init => {
                *relist = Relist::default();
                None
            }
            watcher::Event::InitApply(obj) => {
                K::note(&mut relist.listed, obj);
                relist.affected.extend(K::apply(&mut index, obj));
                None
            }
            watcher::Event::InitDone => {
                let Relist {
                    listed,
                    mut affected,
                } = std::mem::take(relist);
                affected.extend(K::retain(&mut index, &listed));
                Some(affected)
            }
            watcher::Event::Apply(obj) => Some(K::apply(&mut index, obj)),
            watcher::Event::Delete(obj) => Some(K::delete(&mut index, obj)),
        }
    };
    if let Some(mut affected) = affected {
        if let watcher::Event::Apply(obj) | watcher::Event::Delete(obj) = event {
            affected.services.extend(K::touched(obj));
        }
        let lane = match (K::KIND, event) {
            // A relist after a lost watch re-reads everything: nobody waits on it.
            (_, watcher::Event::InitDone) => Lane::Bulk,
            // Endpoints and pods change when pods start, become ready or terminate:
            // gates and drains wait on those passes.
            (Kind::EndpointSlices | Kind::Pods, _) => Lane::Pod,
            (Kind::Services | Kind::Nodes, _) => Lane::Change,
        };
        let _ = ctx.tx.send(Msg::Affected(affected, lane));
    }
    if matches!(event, watcher::Event::InitDone) {
        let _ = ctx.tx.send(Msg::Synced(K::KIND));
    }
}

async fn run_kind<K: Indexed>(
    ctx: WatchContext,
    client: kube::Client,
    store: Option<Writer<K>>,
    mut each: impl FnMut(&watcher::Event<K>) + Send,
) where
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let mut stream = events(client, store);
    let mut relist = Relist::default();
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => {
                handle(&ctx, &mut relist, &event);
                each(&event);
            }
            // The backoff retries; the watcher re-lists when it must.
            Err(err) => tracing::warn!(kind = ?K::KIND, error = %err, "watch failed; retrying"),
        }
    }
}

/// Stores the watchers write into (the Services store answers finalizer questions, the
/// pods store the drain API; all three are read by the pod side, [`super::pods::PodStores`]).
/// EndpointSlices have none: the index keeps what is read of them.
pub struct Writers {
    pub services: Writer<Service>,
    pub nodes: Writer<Node>,
    pub pods: Writer<StoredPod>,
}

/// Spawns the four watcher tasks.
pub fn spawn_all(
    ctx: WatchContext,
    client: kube::Client,
    writers: Writers,
    pods: SharedPodSide,
    pod_states: ReflectorPodStates,
) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(run_kind(
            ctx.clone(),
            client.clone(),
            Some(writers.services),
            |_| {},
        )),
        tokio::spawn(run_kind::<EndpointSlice>(
            ctx.clone(),
            client.clone(),
            None,
            |_| {},
        )),
        tokio::spawn(run_kind(
            ctx.clone(),
            client.clone(),
            Some(writers.nodes),
            |_| {},
        )),
        tokio::spawn(run_kind(ctx, client, Some(writers.pods), move |ev| {
            pod_states.observe(ev);
            pods.pod_event(ev);
        })),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_keep_what_the_index_and_the_pod_side_read() {
        let mut node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1", "labels": {"a": "b"},
                "managedFields": [{"manager": "kubelet"}]},
            "spec": {"providerID": "cn-hangzhou.i-1"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                "images": [{"names": ["nginx"], "sizeBytes": 1}]},
        }))
        .unwrap();
        <Node as Indexed>::strip(&mut node);
        assert!(node.metadata.managed_fields.is_none());
        assert!(node.metadata.labels.is_some());
        let spec = node.spec.as_ref().unwrap();
        assert_eq!(spec.provider_id.as_deref(), Some("cn-hangzhou.i-1"));
        let status = node.status.as_ref().unwrap();
        assert_eq!(status.conditions.as_ref().unwrap().len(), 1);
        assert_eq!(status.addresses.as_ref().unwrap().len(), 1);
        assert!(status.images.is_none());
    }
}
