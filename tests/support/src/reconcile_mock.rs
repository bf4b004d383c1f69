//! Fixtures for running the executor against the real `mock-slb` over HTTP through the
//! production `RpcSlbClient`: a seeded mock, a client for it, an `SlbApi` wrapper that
//! snapshots the mock's group around every write, a settable desired state, a drain
//! journal that stands in for the pod annotations, and waiting helpers.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use mock_slb::{Config, MockSlb, MockSlbHandle, Seed};
use serde_json::{json, Value};
use slb_sync::model::{
    Backend, BackendKey, BackendState, DesiredGroup, ObservedGroup, OwnerDescription, Protocol,
    SlbBackend, Weight,
};
use slb_sync::plan::DrainLedger;
use slb_sync::reconcile::{DrainJournal, ExecutorConfig, GroupRef, GroupTarget, TargetSource};
use slb_sync::slb::credentials::{Credentials, SecretString, StaticProvider};
use slb_sync::slb::{
    BackendHealth, Listener, RpcConfig, RpcSlbClient, SlbApi, SlbError, VServerGroupSummary,
};
use tokio::time::Instant;

pub const KEY_ID: &str = "LTAIreconcile";
pub const SECRET: &str = "reconcile-secret";
pub const LB: &str = "lb-web";
pub const GROUP: &str = "rsp-web";
pub const SERVICE_PORT: u16 = 80;
/// The pods' container port (ENI backends use the target port).
pub const POD_PORT: u16 = 8080;

pub fn owner() -> OwnerDescription {
    OwnerDescription::new(SERVICE_PORT, "web", "default", "c1")
}

pub fn group_ref() -> GroupRef {
    GroupRef::new(
        slb_sync::model::ServiceRef::new("default", "web"),
        SERVICE_PORT,
    )
}

/// Pod IP number `n` (0-based), on loopback so the data plane could reach it.
pub fn pod_ip(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 42, (n / 200) as u8, (n % 200 + 1) as u8))
}

/// A seed with one instance `lb-web`, a TCP listener on port 80 bound to `rsp-web`, one
/// ENI per pod IP in `pods` (`eni-<n>`), and the group holding `members` (mock JSON).
pub fn seed(
    pods: impl IntoIterator<Item = (IpAddr, u32)>,
    drain: bool,
    drain_timeout: u32,
    members: Vec<Value>,
) -> Seed {
    let enis: Vec<Value> = pods
        .into_iter()
        .map(|(ip, n)| json!({"id": format!("eni-{n}"), "ips": [ip.to_string()]}))
        .collect();
    serde_json::from_value(json!({
        "access_keys": [{"id": KEY_ID, "secret": SECRET}],
        "enis": enis,
        "load_balancers": [{
            "id": LB,
            "name": "web",
            "listeners": [{
                "port": SERVICE_PORT, "protocol": "tcp", "vserver_group_id": GROUP,
                "connection_drain": drain, "connection_drain_timeout": drain_timeout,
            }],
            "vserver_groups": [{"id": GROUP, "name": owner().as_str(), "backends": members}],
        }],
    }))
    .expect("test seed is valid")
}

/// Mock JSON of an owned ENI member for pod `n` at `weight`.
pub fn member(n: u32, port: u16, weight: u8) -> Value {
    json!({
        "server_id": format!("eni-{n}"), "server_ip": pod_ip(n).to_string(), "port": port,
        "weight": weight, "type": "eni", "description": owner().as_str(),
    })
}

pub async fn start_mock(seed: Seed) -> Arc<MockSlbHandle> {
    let mock = MockSlb::start(Config {
        seed,
        ..Config::default()
    })
    .await
    .expect("mock starts");
    Arc::new(mock)
}

/// The production client pointed at the mock (SLB and ECS on the same endpoint).
pub fn client(mock: &MockSlbHandle) -> RpcSlbClient {
    let mut config = RpcConfig::new("cn-hangzhou");
    config.slb_endpoint = Some(mock.api_url());
    config.ecs_endpoint = Some(mock.api_url());
    let creds = Credentials::new(KEY_ID, SecretString::from(SECRET), None, "test")
        .expect("test credentials are complete");
    RpcSlbClient::new(config, Arc::new(StaticProvider::new(creds)))
}

/// Executor settings for tests: the production defaults, with a faster token bucket so
/// that long scenarios do not spend most of their (virtual) time waiting for tokens.
pub fn executor_config() -> ExecutorConfig {
    let mut config = ExecutorConfig::default();
    config.limits.qps = 20.0;
    config.limits.burst = std::num::NonZeroU32::new(20).expect("not zero");
    config
}

pub fn t0() -> Timestamp {
    Timestamp::from_second(1_800_000_000).expect("valid")
}

/// Desired group `rsp-web` (named by `vgroup-port`) with ENI backends.
pub fn target(backends: Vec<Backend>, window: Duration) -> GroupTarget {
    let mut backends = backends;
    backends.sort_by_key(|b| b.key());
    GroupTarget {
        load_balancer_id: LB.to_owned(),
        desired: DesiredGroup {
            service_port: SERVICE_PORT,
            protocol: Protocol::Tcp,
            v_server_group_id: Some(GROUP.to_owned()),
            name: owner(),
            backends,
            keep_weights: false,
        },
        drain_window: window,
        emptying: false,
    }
}

pub fn eni(n: u32, port: u16, state: BackendState) -> Backend {
    Backend::eni(pod_ip(n), port, Weight::new(100).expect("valid"), state)
}

/// The group's members in the mock now: key → weight.
pub fn members_now(mock: &MockSlbHandle) -> BTreeMap<BackendKey, u8> {
    let state = mock.state();
    let Some(group) = state.v_server_groups.get(GROUP) else {
        return BTreeMap::new();
    };
    group
        .backends
        .iter()
        .filter_map(|b| {
            let key = BackendKey::Eni {
                server_ip: b.server_ip?,
                port: b.port,
            };
            Some((key, b.weight))
        })
        .collect()
}

pub fn key(n: u32, port: u16) -> BackendKey {
    BackendKey::Eni {
        server_ip: pod_ip(n),
        port,
    }
}

/// The group as the mock held it right after one write call.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub at: Instant,
    pub action: &'static str,
    pub ok: bool,
    pub members: BTreeMap<BackendKey, u8>,
}

impl Snapshot {
    pub fn serving(&self) -> usize {
        self.members.values().filter(|w| **w > 0).count()
    }
}

/// An [`SlbApi`] that forwards to the real client and snapshots the mock's group after
/// every write, and checks before every add that none of its members exists already.
pub struct Watched<A> {
    pub inner: A,
    pub mock: Arc<MockSlbHandle>,
    pub snapshots: Mutex<Vec<Snapshot>>,
    /// Adds that named a member the group already held (must stay empty).
    pub duplicate_adds: Mutex<Vec<BackendKey>>,
}

impl<A> Watched<A> {
    pub fn new(inner: A, mock: Arc<MockSlbHandle>) -> Self {
        let first = Snapshot {
            at: Instant::now(),
            action: "initial",
            ok: true,
            members: members_now(&mock),
        };
        Watched {
            inner,
            mock,
            snapshots: Mutex::new(vec![first]),
            duplicate_adds: Mutex::new(Vec::new()),
        }
    }

    fn snap(&self, action: &'static str, ok: bool) {
        let snapshot = Snapshot {
            at: Instant::now(),
            action,
            ok,
            members: members_now(&self.mock),
        };
        self.snapshots.lock().unwrap().push(snapshot);
    }

    pub fn snapshots(&self) -> Vec<Snapshot> {
        self.snapshots.lock().unwrap().clone()
    }

    pub fn duplicate_adds(&self) -> Vec<BackendKey> {
        self.duplicate_adds.lock().unwrap().clone()
    }
}

#[async_trait]
impl<A: SlbApi> SlbApi for Watched<A> {
    async fn list_vserver_groups(&self, lb: &str) -> Result<Vec<VServerGroupSummary>, SlbError> {
        self.inner.list_vserver_groups(lb).await
    }
    async fn describe_vserver_group(&self, id: &str) -> Result<ObservedGroup, SlbError> {
        self.inner.describe_vserver_group(id).await
    }
    async fn create_vserver_group(&self, lb: &str, name: &str) -> Result<String, SlbError> {
        self.inner.create_vserver_group(lb, name).await
    }
    async fn delete_vserver_group(&self, id: &str) -> Result<(), SlbError> {
        self.inner.delete_vserver_group(id).await
    }
    async fn add_backends(&self, id: &str, backends: &[SlbBackend]) -> Result<(), SlbError> {
        let before = members_now(&self.mock);
        let dups: Vec<BackendKey> = backends
            .iter()
            .filter_map(SlbBackend::key)
            .filter(|k| before.contains_key(k))
            .collect();
        self.duplicate_adds.lock().unwrap().extend(dups);
        let result = self.inner.add_backends(id, backends).await;
        self.snap("add", result.is_ok());
        result
    }
    async fn remove_backends(&self, id: &str, backends: &[SlbBackend]) -> Result<(), SlbError> {
        let result = self.inner.remove_backends(id, backends).await;
        self.snap("remove", result.is_ok());
        result
    }
    async fn set_backends(&self, id: &str, backends: &[SlbBackend]) -> Result<(), SlbError> {
        let result = self.inner.set_backends(id, backends).await;
        self.snap("setWeight", result.is_ok());
        result
    }
    async fn describe_health(
        &self,
        lb: &str,
        port: Option<u16>,
    ) -> Result<Vec<BackendHealth>, SlbError> {
        self.inner.describe_health(lb, port).await
    }
    async fn describe_listeners(&self, lb: &str) -> Result<Vec<Listener>, SlbError> {
        self.inner.describe_listeners(lb).await
    }
    async fn set_listener_drain(
        &self,
        lb: &str,
        listener: &Listener,
        drain: bool,
        timeout_secs: Option<u32>,
    ) -> Result<(), SlbError> {
        self.inner
            .set_listener_drain(lb, listener, drain, timeout_secs)
            .await
    }
    async fn resolve_eni_ids(&self, ips: &[IpAddr]) -> Result<HashMap<IpAddr, String>, SlbError> {
        self.inner.resolve_eni_ids(ips).await
    }
}

/// The desired state the scheduler reads when a pass starts; tests change it.
pub struct Desired(Mutex<Option<GroupTarget>>);

impl Desired {
    pub fn new(target: GroupTarget) -> Arc<Self> {
        Arc::new(Desired(Mutex::new(Some(target))))
    }
    pub fn set(&self, target: GroupTarget) {
        *self.0.lock().unwrap() = Some(target);
    }
}

impl TargetSource for Desired {
    fn target(&self, group: &GroupRef) -> Option<GroupTarget> {
        (*group == group_ref())
            .then(|| self.0.lock().unwrap().clone())
            .flatten()
    }
}

/// Stands in for the `slb-sync.io/drain-started-at` pod annotations: what survives a
/// restart of the agent.
#[derive(Default)]
pub struct Journal(Mutex<BTreeMap<(String, BackendKey), Timestamp>>);

impl Journal {
    /// The ledger a restarted agent builds from the persisted starts.
    pub fn ledger(&self) -> DrainLedger {
        let mut ledger = DrainLedger::new();
        for ((group, key), at) in self.0.lock().unwrap().iter() {
            ledger.start(group, key.clone(), *at);
        }
        ledger
    }
    /// How many drain starts are recorded.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn started_at(&self, key: &BackendKey) -> Option<Timestamp> {
        self.0
            .lock()
            .unwrap()
            .get(&(GROUP.to_owned(), key.clone()))
            .copied()
    }
}

impl DrainJournal for Journal {
    fn drain_started(&self, group: &str, key: &BackendKey, at: Timestamp) {
        self.0
            .lock()
            .unwrap()
            .insert((group.to_owned(), key.clone()), at);
    }
    fn drain_ended(&self, group: &str, key: &BackendKey) {
        self.0
            .lock()
            .unwrap()
            .remove(&(group.to_owned(), key.clone()));
    }
}

/// Waits (in tokio time, 250 ms steps) until `done` holds; false after `limit`.
pub async fn until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if done() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Write calls of one action in the mock's call log: (ms since mock start, status,
/// `BackendServers` JSON).
pub fn writes(mock: &MockSlbHandle, action: &str) -> Vec<(u64, u16, Value)> {
    mock.call_log()
        .into_iter()
        .filter(|c| c.action == action)
        .map(|c| {
            let servers = c
                .params
                .get("BackendServers")
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or(Value::Null);
            (c.at_ms, c.status, servers)
        })
        .collect()
}

/// True when a `BackendServers` JSON array names pod `n`'s IP.
pub fn names_pod(servers: &Value, n: u32) -> bool {
    let ip = pod_ip(n).to_string();
    servers.as_array().is_some_and(|a| {
        a.iter()
            .any(|s| s["ServerIp"].as_str() == Some(ip.as_str()))
    })
}

pub use mock_slb::testkit::{echo_backend, jump, Conn};
