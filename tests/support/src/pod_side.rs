//! A `PodLifecycle` wired to `mock-kube` through real watchers and reflector stores, the
//! way the control loop wires it, with hand-built reconcile passes.

use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    Node, NodeSpec, Pod, PodIP, PodReadinessGate, PodSpec, PodStatus, Service, ServicePort,
    ServiceSpec,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{WatchEvent, WatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use mock_kube::{MockKube, MockKubeHandle};
use prometheus::Registry;
use serde_json::Value;
use slb_sync::agent::metrics::AgentMetrics;
use slb_sync::agent::pods::{PodLifecycle, PodLifecycleConfig, PodSide, PodStores};
use slb_sync::desired::PlannerConfig;
use slb_sync::index::ClusterIndex;
use slb_sync::k8s::events::Events;
use slb_sync::model::{
    Backend, BackendState, BackendType, DesiredGroup, OwnerDescription, Protocol, SlbBackend,
    StoredPod, Weight,
};
use slb_sync::plan::DrainLedger;
use slb_sync::reconcile::{
    Clock, GroupRef, GroupTarget, LedgerRestore, PassObserver, PassOutcome, TokioClock,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const NS: &str = "shop";
pub const LB_ID_KEY: &str = "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-id";
pub const POD_IP: &str = "10.0.0.7";

pub struct Harness {
    pub kube: MockKubeHandle,
    pub client: Client,
    pub lifecycle: PodLifecycle,
    pub metrics: AgentMetrics,
    pub leader: watch::Sender<bool>,
    pub stores: PodStores,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A reflector store of one kind, and the cluster index fed with every event as the
/// agent's watchers feed it.
fn spawn_reflector<K>(
    api: Api<K>,
    index: Arc<RwLock<ClusterIndex>>,
    feed: fn(&mut ClusterIndex, &watcher::Event<K>),
) -> (Store<K>, JoinHandle<()>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, mut writer) = reflector::store();
    let task = tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut relisted: Vec<K> = Vec::new();
        while let Some(event) = events.next().await {
            let Ok(event) = event else { continue };
            // The index first: a test that sees the object in the store may rely on it.
            match &event {
                watcher::Event::Init => relisted.clear(),
                watcher::Event::InitApply(obj) => relisted.push(obj.clone()),
                _ => {}
            }
            // A (re)list reaches the index whole, at its end.
            let mut index = index.write().unwrap();
            match &event {
                watcher::Event::InitDone => {
                    let all = std::mem::take(&mut relisted);
                    for obj in &all {
                        feed(&mut index, &watcher::Event::Apply(obj.clone()));
                    }
                }
                _ => feed(&mut index, &event),
            }
            drop(index);
            writer.apply_watcher_event(&event);
        }
    });
    (reader, task)
}

fn feed_services(index: &mut ClusterIndex, event: &watcher::Event<Service>) {
    match event {
        watcher::Event::Apply(s) => drop(index.apply_service(s)),
        watcher::Event::Delete(s) => drop(index.delete_service(s)),
        _ => {}
    }
}

fn feed_nodes(index: &mut ClusterIndex, event: &watcher::Event<Node>) {
    match event {
        watcher::Event::Apply(n) => drop(index.apply_node(n)),
        watcher::Event::Delete(n) => drop(index.delete_node(n)),
        _ => {}
    }
}

fn feed_slices(index: &mut ClusterIndex, event: &watcher::Event<EndpointSlice>) {
    match event {
        watcher::Event::Apply(s) => drop(index.apply_endpoint_slice(s)),
        watcher::Event::Delete(s) => drop(index.delete_endpoint_slice(s)),
        _ => {}
    }
}

/// Starts mock-kube and a `PodLifecycle` fed from watchers of all four kinds.
pub async fn start(margin: Duration, leader: bool) -> Harness {
    start_with_clock(margin, leader, Arc::new(TokioClock::new())).await
}

/// [`start`] with the clock the pod side reads (for deadlines under a paused clock).
/// No kube-proxy allowance: these tests are about the SLB side of the handshake.
pub async fn start_with_clock(margin: Duration, leader: bool, clock: Arc<dyn Clock>) -> Harness {
    start_with(margin, leader, clock, Duration::ZERO).await
}

/// [`start_with_clock`] with a kube-proxy allowance for Cluster and Local pods.
pub async fn start_with(
    margin: Duration,
    leader: bool,
    clock: Arc<dyn Clock>,
    kube_proxy_allowance: Duration,
) -> Harness {
    let kube = MockKube::start().await.expect("mock-kube starts");
    let client = kube.client().expect("client");
    let index = Arc::new(RwLock::new(ClusterIndex::new(PlannerConfig::default())));
    let (services, t1) = spawn_reflector(
        Api::<Service>::all(client.clone()),
        index.clone(),
        feed_services,
    );
    let (nodes, t2) = spawn_reflector(Api::<Node>::all(client.clone()), index.clone(), feed_nodes);
    let (slices, t3) = spawn_reflector(
        Api::<EndpointSlice>::all(client.clone()),
        index.clone(),
        feed_slices,
    );
    let (pods, mut pod_writer) = reflector::store::<StoredPod>();
    let stores = PodStores {
        pods: pods.clone(),
        services: services.clone(),
        nodes: nodes.clone(),
        index,
    };
    let metrics = AgentMetrics::register(&Registry::new()).unwrap();
    let (leader_tx, leader_rx) = watch::channel(leader);
    let lifecycle = PodLifecycle::new(
        client.clone(),
        Events::new(client.clone(), Some("test".into())),
        metrics.clone(),
        stores.clone(),
        PodLifecycleConfig {
            clock,
            kube_proxy_allowance,
            ..PodLifecycleConfig::new(PlannerConfig::default(), margin)
        },
        leader_rx,
        // No SLB: gates wait on registration, as these tests assert.
        None,
    );
    services.wait_until_ready().await.unwrap();
    nodes.wait_until_ready().await.unwrap();
    slices.wait_until_ready().await.unwrap();
    let side = lifecycle.clone();
    let pod_api = Api::<StoredPod>::all(client.clone());
    let t4 = tokio::spawn(async move {
        let mut events = watcher(pod_api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = events.next().await {
            let Ok(event) = event else { continue };
            pod_writer.apply_watcher_event(&event);
            side.pod_event(&event);
        }
    });
    pods.wait_until_ready().await.unwrap();
    Harness {
        kube,
        client,
        lifecycle,
        metrics,
        leader: leader_tx,
        stores,
        tasks: vec![t1, t2, t3, t4],
    }
}

pub fn owner() -> OwnerDescription {
    OwnerDescription::new(80, "web", NS, "kubernetes")
}

pub fn mk_service(eni: bool) -> Service {
    let mut annotations =
        std::collections::BTreeMap::from([(LB_ID_KEY.to_owned(), "lb-1".to_owned())]);
    if eni {
        annotations.insert(
            "service.beta.kubernetes.io/backend-type".into(),
            "eni".into(),
        );
    }
    Service {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some(NS.into()),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            load_balancer_class: Some("slb-sync.io/slb".into()),
            external_traffic_policy: (!eni).then(|| "Local".into()),
            selector: Some([("app".to_owned(), "web".to_owned())].into()),
            ports: Some(vec![ServicePort {
                port: 80,
                node_port: Some(30080),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

pub fn mk_node() -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some("node-a".into()),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            provider_id: Some("cn-hangzhou.i-a".into()),
            ..NodeSpec::default()
        }),
        ..Node::default()
    }
}

pub fn mk_pod(name: &str, gate: bool, grace: Option<i64>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            labels: Some([("app".to_owned(), "web".to_owned())].into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some("node-a".into()),
            termination_grace_period_seconds: grace,
            readiness_gates: gate.then(|| {
                vec![PodReadinessGate {
                    condition_type: "registered.slb-sync.io/web".into(),
                }]
            }),
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            pod_ip: Some(POD_IP.into()),
            pod_ips: Some(vec![PodIP { ip: POD_IP.into() }]),
            phase: Some("Running".into()),
            ..PodStatus::default()
        }),
    }
}

pub fn ip() -> IpAddr {
    POD_IP.parse().unwrap()
}

pub fn eni_member(weight: u32) -> SlbBackend {
    SlbBackend {
        server_id: "eni-1".into(),
        server_ip: Some(ip()),
        port: 8080,
        weight: Weight::new(weight).unwrap(),
        backend_type: BackendType::Eni,
        description: owner().to_string(),
    }
}

pub fn eni_desired(state: Option<BackendState>) -> Vec<Backend> {
    state
        .map(|state| {
            let weight = if state == BackendState::Active {
                Weight::MAX
            } else {
                Weight::ZERO
            };
            Backend::eni(ip(), 8080, weight, state)
        })
        .into_iter()
        .collect()
}

/// Reports a successful pass over group `shop/web:80` with `desired` and `members`.
pub fn pass(h: &Harness, desired: Vec<Backend>, members: Vec<SlbBackend>) {
    let target = GroupTarget {
        load_balancer_id: "lb-1".into(),
        desired: DesiredGroup {
            service_port: 80,
            protocol: Protocol::Tcp,
            v_server_group_id: Some("rsp-1".into()),
            name: owner(),
            backends: desired,
            keep_weights: false,
        },
        drain_window: Duration::from_secs(5),
        emptying: false,
    };
    let outcome = PassOutcome {
        v_server_group_id: Some("rsp-1".into()),
        backends: members,
        ..PassOutcome::default()
    };
    let group = GroupRef::new(slb_sync::model::ServiceRef::new(NS, "web"), 80);
    h.lifecycle.pass_finished(&group, &target, &Ok(outcome));
}

pub fn pod_json(h: &Harness, name: &str) -> Option<Value> {
    h.kube.get("v1", "Pod", NS, name)
}

/// The pod `name` as mock-kube holds it (the whole object, unlike the agent's store).
pub fn api_pod(h: &Harness, name: &str) -> Pod {
    serde_json::from_value(pod_json(h, name).expect("the pod exists")).expect("a Pod")
}

pub fn finalizers(pod: &Value) -> Vec<String> {
    pod["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_owned))
        .collect()
}

pub fn condition(pod: &Value, condition_type: &str) -> Option<(String, String)> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == condition_type)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_owned(),
                c["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
}

/// Waits (up to 10 s of wall time, also under a paused tokio clock) until `check` holds.
pub async fn eventually<F: FnMut() -> bool>(what: &str, mut check: F) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the pod store shows what `check` wants (so decisions read it).
pub async fn store_shows<F: Fn(&StoredPod) -> bool>(h: &Harness, name: &str, check: F) {
    let key = reflector::ObjectRef::new(name).within(NS);
    eventually(&format!("the pod store shows {name} as expected"), || {
        h.stores.pods.get(&key).is_some_and(|p| check(&p))
    })
    .await;
}

/// Puts the Service and the node and waits until the stores hold them (the control loop
/// re-evaluates pods after each pass; these tests put pods only after their Service).
pub async fn put_service_and_node(h: &Harness, eni: bool) {
    h.kube.put(&mk_node()).unwrap();
    h.kube.put(&mk_service(eni)).unwrap();
    eventually("the stores hold the Service and the node", || {
        h.stores
            .services
            .get(&reflector::ObjectRef::new("web").within(NS))
            .is_some()
            && h.stores
                .nodes
                .get(&reflector::ObjectRef::new("node-a"))
                .is_some()
    })
    .await;
}

/// Lets queued writes run for a while (to show something does *not* happen).
/// Moves the tokio clock (and so a `TokioClock`) forward to `at` while I/O runs in real
/// time; a clock paused for a whole test would auto-advance while the agent waits on
/// mock-kube's sockets, by an amount that follows the machine's load.
pub async fn jump_to(at: tokio::time::Instant) {
    let now = tokio::time::Instant::now();
    if at > now {
        mock_slb::testkit::jump(at - now).await;
    }
}

pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Reasons of the Events regarding pod `name`.
pub fn event_reasons(h: &Harness, name: &str) -> Vec<String> {
    h.kube
        .list("events.k8s.io/v1", "Event", Some(NS))
        .into_iter()
        .filter(|e| e["regarding"]["name"] == name)
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect()
}

/// Captures what `restore` hands the executor.
#[derive(Default)]
pub struct Captured(pub Mutex<Option<DrainLedger>>);

impl LedgerRestore for Captured {
    fn restore_ledger(&self, ledger: DrainLedger) {
        *self.0.lock().unwrap() = Some(ledger);
    }
}

pub async fn with_timeout<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("test step timed out")
}

/// Starts watching pod `name` from now; the task returns every version seen until it is
/// deleted, so tests can check the order of writes.
pub async fn record_pod(h: &Harness, name: &str) -> JoinHandle<Vec<Pod>> {
    let api: Api<Pod> = Api::namespaced(h.client.clone(), NS);
    let rv = h.kube.resource_version().to_string();
    let params = WatchParams::default().fields(&format!("metadata.name={name}"));
    let mut stream = api.watch(&params, &rv).await.expect("watch starts").boxed();
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(Ok(event)) = stream.next().await {
            match event {
                WatchEvent::Added(p) | WatchEvent::Modified(p) => seen.push(p),
                WatchEvent::Deleted(p) => {
                    seen.push(p);
                    break;
                }
                _ => {}
            }
        }
        seen
    })
}
