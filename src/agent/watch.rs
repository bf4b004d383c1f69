//! Watchers of the four kinds the planner reads, feeding the cluster index.
//!
//! Each kind has its own task: a kube-runtime `watcher` with the default backoff, the
//! objects stripped of what nobody reads, a reflector store, and the index updated with
//! every event. What an event affects goes to the control loop as a [`Msg`].

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, RwLock};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod, PodSpec, PodStatus, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::store::Writer;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::messages::{Kind, Msg};
use super::pods::SharedPodSide;
use crate::index::{Affected, ClusterIndex, ServiceRef};
use crate::k8s::drain_state::ReflectorPodStates;
use crate::reconcile::Lane;

/// How one kind updates the index.
trait Indexed: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static {
    const KIND: Kind;
    fn apply(index: &mut ClusterIndex, obj: &Self) -> Affected;
    fn delete(index: &mut ClusterIndex, obj: &Self) -> Affected;
    fn reset(index: &mut ClusterIndex, all: &[Self]) -> Affected;
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
    fn reset(index: &mut ClusterIndex, all: &[Self]) -> Affected {
        index.reset_services(all)
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
    fn reset(index: &mut ClusterIndex, all: &[Self]) -> Affected {
        index.reset_endpoint_slices(all)
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
    fn reset(index: &mut ClusterIndex, all: &[Self]) -> Affected {
        index.reset_nodes(all)
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

impl Indexed for Pod {
    const KIND: Kind = Kind::Pods;
    fn apply(index: &mut ClusterIndex, obj: &Self) -> Affected {
        index.apply_pod(obj)
    }
    fn delete(index: &mut ClusterIndex, obj: &Self) -> Affected {
        index.delete_pod(obj)
    }
    fn reset(index: &mut ClusterIndex, all: &[Self]) -> Affected {
        index.reset_pods(all)
    }
    fn strip(obj: &mut Self) {
        strip_pod(obj);
    }
}

/// Keeps metadata (without managedFields), spec.nodeName/readinessGates/
/// terminationGracePeriodSeconds and status.conditions/podIP(s)/phase: what the index, the
/// pod side and the drain API read. Containers are most of a pod's size.
pub fn strip_pod(pod: &mut Pod) {
    strip_meta(pod);
    if let Some(spec) = pod.spec.take() {
        pod.spec = Some(PodSpec {
            node_name: spec.node_name,
            readiness_gates: spec.readiness_gates,
            termination_grace_period_seconds: spec.termination_grace_period_seconds,
            ..PodSpec::default()
        });
    }
    if let Some(status) = pod.status.take() {
        pod.status = Some(PodStatus {
            conditions: status.conditions,
            pod_ip: status.pod_ip,
            pod_ips: status.pod_ips,
            phase: status.phase,
            ..PodStatus::default()
        });
    }
}

/// What a watcher task shares with the rest of the agent.
#[derive(Clone)]
pub struct WatchContext {
    pub index: Arc<RwLock<ClusterIndex>>,
    pub tx: mpsc::UnboundedSender<Msg>,
}

fn events<K: Indexed>(
    client: kube::Client,
    writer: Writer<K>,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send
where
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let api: Api<K> = Api::all(client);
    watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(K::strip)
        .reflect(writer)
}

/// Feeds one event into the index and tells the control loop what it affected.
fn handle<K: Indexed>(ctx: &WatchContext, buffer: &mut Vec<K>, event: &watcher::Event<K>) {
    let affected = {
        let mut index = ctx.index.write().unwrap_or_else(|e| e.into_inner());
        match event {
            watcher::Event::Init => {
                buffer.clear();
                None
            }
            watcher::Event::InitApply(obj) => {
                buffer.push(obj.clone());
                None
            }
            watcher::Event::InitDone => Some(K::reset(&mut index, &std::mem::take(buffer))),
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
    writer: Writer<K>,
    mut each: impl FnMut(&watcher::Event<K>) + Send,
) where
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let stream = events(client, writer);
    futures::pin_mut!(stream);
    let mut buffer = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => {
                handle(&ctx, &mut buffer, &event);
                each(&event);
            }
            // The backoff retries; the watcher re-lists when it must.
            Err(err) => tracing::warn!(kind = ?K::KIND, error = %err, "watch failed; retrying"),
        }
    }
}

/// Stores the watchers write into (the Services store answers finalizer questions, the
/// pods store the drain API; all four are the pod side's [`super::pods::PodStores`]).
pub struct Writers {
    pub services: Writer<Service>,
    pub slices: Writer<EndpointSlice>,
    pub nodes: Writer<Node>,
    pub pods: Writer<Pod>,
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
            writers.services,
            |_| {},
        )),
        tokio::spawn(run_kind(
            ctx.clone(),
            client.clone(),
            writers.slices,
            |_| {},
        )),
        tokio::spawn(run_kind(ctx.clone(), client.clone(), writers.nodes, |_| {})),
        tokio::spawn(run_kind(ctx, client, writers.pods, move |ev| {
            pod_states.observe(ev);
            pods.pod_event(ev);
        })),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_keep_what_the_index_and_the_drain_api_read() {
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "finalizers": ["slb-sync.io/drain"],
                "deletionTimestamp": "2026-01-01T00:00:00Z", "labels": {"a": "b"},
                "annotations": {"x": "y"},
                "managedFields": [{"manager": "kubectl"}]},
            "spec": {"nodeName": "n1", "readinessGates": [{"conditionType": "registered.slb-sync.io/web"}],
                "terminationGracePeriodSeconds": 60,
                "containers": [{"name": "c", "image": "nginx"}]},
            "status": {"podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "c", "image": "nginx", "imageID": "", "ready": true, "restartCount": 0}]},
        }))
        .unwrap();
        strip_pod(&mut pod);
        assert!(pod.metadata.managed_fields.is_none());
        assert!(pod.metadata.finalizers.is_some() && pod.metadata.deletion_timestamp.is_some());
        assert!(pod.metadata.labels.is_some() && pod.metadata.annotations.is_some());
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("n1"));
        assert_eq!(spec.readiness_gates.as_ref().unwrap().len(), 1);
        assert_eq!(spec.termination_grace_period_seconds, Some(60));
        assert!(spec.containers.is_empty());
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.pod_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(status.conditions.as_ref().unwrap().len(), 1);
        assert!(status.container_statuses.is_none());
    }

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
