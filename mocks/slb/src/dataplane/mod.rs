//! The data plane: one loopback TCP listener per SLB TCP (and HTTP, as plain L4)
//! listener, forwarding by smooth weighted round robin over the backends as last
//! *applied* (the API may answer before the change propagates), with the SLB's removal
//! semantics: weight 0 stops new connections only; removal cuts established connections
//! at once, or after `ConnectionDrainTimeout` when drain is on.

mod health;
mod listener;
mod wrr;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use tokio::task::{AbortHandle, JoinHandle};

use crate::state::{BackendKey, HealthCheck, Protocol, State};

pub use wrr::Wrr;

/// Connection counters of one listener.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DataPlaneCounters {
    /// Client connections accepted.
    pub accepted: u64,
    /// Connections connected through to a backend.
    pub forwarded: u64,
    /// Connections closed at once because no backend was eligible.
    pub refused: u64,
    /// Connections whose backend did not accept the connect.
    pub connect_failed: u64,
    /// Established connections closed because their backend was removed.
    pub cut: u64,
    /// Connections currently open.
    pub active: u64,
}

/// Where a backend is reached, as applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub key: BackendKey,
    pub addr: SocketAddr,
    pub weight: u32,
}

/// Health as the SLB reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Normal,
    Abnormal,
    Unavailable,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Abnormal => "abnormal",
            Self::Unavailable => "unavailable",
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct HealthState {
    normal: Option<bool>,
    successes: u32,
    failures: u32,
}

struct Conn {
    key: BackendKey,
    abort: AbortHandle,
}

struct ListenerRt {
    addr: SocketAddr,
    targets: Vec<Target>,
    drain: bool,
    drain_timeout: Duration,
    health_check: Option<HealthCheck>,
    health: HashMap<BackendKey, HealthState>,
    wrr: Wrr,
    conns: HashMap<u64, Conn>,
    counters: DataPlaneCounters,
    /// Connections forwarded per backend, for spread and zero-loss assertions.
    per_backend: HashMap<BackendKey, u64>,
    tasks: Vec<JoinHandle<()>>,
}

#[derive(Default)]
struct Inner {
    listeners: HashMap<(String, u16), ListenerRt>,
    applied_version: u64,
    next_conn: u64,
    shut: bool,
}

/// Handle to the data plane; cheap to clone.
#[derive(Clone, Default)]
pub struct DataPlane {
    inner: Arc<Mutex<Inner>>,
}

/// Snapshot of one listener for the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct ListenerView {
    pub load_balancer_id: String,
    pub port: u16,
    pub addr: SocketAddr,
    pub targets: Vec<Target>,
    pub counters: DataPlaneCounters,
    /// Connections forwarded per backend (`server_id[/server_ip]:port`).
    pub forwarded_by_backend: std::collections::BTreeMap<String, u64>,
}

impl DataPlane {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `state` (a snapshot taken at write time) unless a newer version was
    /// applied already. Starts listeners that do not run yet.
    pub fn apply(&self, version: u64, state: &State) -> std::io::Result<()> {
        let mut inner = self.lock();
        if inner.shut || version < inner.applied_version {
            return Ok(());
        }
        inner.applied_version = version;
        for lb in state.load_balancers.values() {
            for l in lb.listeners.values() {
                if !matches!(l.protocol, Protocol::Tcp | Protocol::Http) {
                    continue;
                }
                let targets = targets_of(state, l.v_server_group_id.as_deref());
                let key = (lb.id.clone(), l.port);
                if !inner.listeners.contains_key(&key) {
                    let rt = listener::start(self.clone(), key.clone(), l.bind, l.health_check)?;
                    inner.listeners.insert(key.clone(), rt);
                }
                let Some(rt) = inner.listeners.get_mut(&key) else {
                    continue;
                };
                rt.drain = l.connection_drain;
                rt.drain_timeout = Duration::from_secs(u64::from(l.connection_drain_timeout));
                let new_keys: HashSet<&BackendKey> = targets.iter().map(|t| &t.key).collect();
                let removed: Vec<BackendKey> = rt
                    .targets
                    .iter()
                    .map(|t| t.key.clone())
                    .filter(|k| !new_keys.contains(k))
                    .collect();
                rt.health.retain(|k, _| new_keys.contains(k));
                rt.targets = targets;
                for k in removed {
                    if rt.drain {
                        let ids: Vec<u64> = rt
                            .conns
                            .iter()
                            .filter(|(_, c)| c.key == k)
                            .map(|(id, _)| *id)
                            .collect();
                        if !ids.is_empty() {
                            let dp = self.clone();
                            let lkey = key.clone();
                            let timeout = rt.drain_timeout;
                            tokio::spawn(async move {
                                tokio::time::sleep(timeout).await;
                                dp.cut_after_drain(&lkey, &k, &ids);
                            });
                        }
                    } else {
                        cut(rt, |_, c| c.key == k);
                    }
                }
            }
        }
        Ok(())
    }

    /// At the end of a drain window: closes the connections that were open at removal,
    /// unless the backend came back meanwhile.
    fn cut_after_drain(&self, lkey: &(String, u16), key: &BackendKey, ids: &[u64]) {
        let mut inner = self.lock();
        if let Some(rt) = inner.listeners.get_mut(lkey) {
            if rt.targets.iter().any(|t| &t.key == key) {
                return;
            }
            let ids: HashSet<u64> = ids.iter().copied().collect();
            cut(rt, |id, _| ids.contains(&id));
        }
    }

    /// The bound address of a listener's data plane.
    pub fn listener_addr(&self, lb_id: &str, port: u16) -> Option<SocketAddr> {
        self.lock()
            .listeners
            .get(&(lb_id.to_string(), port))
            .map(|l| l.addr)
    }

    /// Counters of one listener.
    pub fn counters(&self, lb_id: &str, port: u16) -> Option<DataPlaneCounters> {
        self.lock()
            .listeners
            .get(&(lb_id.to_string(), port))
            .map(|l| l.counters)
    }

    /// Health of each applied backend of a listener: `unavailable` until checked
    /// `healthy_threshold` times, and always when the listener does not check health (as
    /// the SLB reports it).
    pub fn health(&self, lb_id: &str, port: u16) -> Vec<(BackendKey, Health)> {
        let inner = self.lock();
        let Some(rt) = inner.listeners.get(&(lb_id.to_string(), port)) else {
            return Vec::new();
        };
        rt.targets
            .iter()
            .map(|t| {
                let h = if rt.health_check.is_none() {
                    Health::Unavailable
                } else {
                    match rt.health.get(&t.key).and_then(|h| h.normal) {
                        Some(true) => Health::Normal,
                        Some(false) => Health::Abnormal,
                        None => Health::Unavailable,
                    }
                };
                (t.key.clone(), h)
            })
            .collect()
    }

    /// All listeners, for the admin API.
    pub fn views(&self) -> Vec<ListenerView> {
        let inner = self.lock();
        let mut v: Vec<ListenerView> = inner
            .listeners
            .iter()
            .map(|((lb, port), rt)| ListenerView {
                load_balancer_id: lb.clone(),
                port: *port,
                addr: rt.addr,
                targets: rt.targets.clone(),
                counters: rt.counters,
                forwarded_by_backend: rt
                    .per_backend
                    .iter()
                    .map(|(k, n)| (backend_label(k), *n))
                    .collect(),
            })
            .collect();
        v.sort_by(|a, b| (&a.load_balancer_id, a.port).cmp(&(&b.load_balancer_id, b.port)));
        v
    }

    /// Stops every listener and closes every connection.
    pub fn shutdown(&self) {
        let mut inner = self.lock();
        inner.shut = true;
        for rt in inner.listeners.values_mut() {
            for t in rt.tasks.drain(..) {
                t.abort();
            }
            for (_, c) in rt.conns.drain() {
                c.abort.abort();
            }
        }
    }
}

/// `server_id:port`, or `server_id/server_ip:port` for ENI backends.
pub fn backend_label(k: &BackendKey) -> String {
    match k.server_ip {
        Some(ip) => format!("{}/{ip}:{}", k.server_id, k.port),
        None => format!("{}:{}", k.server_id, k.port),
    }
}

/// Aborts the proxy tasks of matching connections (dropping both sockets) and counts them.
fn cut(rt: &mut ListenerRt, mut matches: impl FnMut(u64, &Conn) -> bool) {
    let ids: Vec<u64> = rt
        .conns
        .iter()
        .filter(|(id, c)| matches(**id, c))
        .map(|(id, _)| *id)
        .collect();
    for id in ids {
        if let Some(c) = rt.conns.remove(&id) {
            c.abort.abort();
            rt.counters.cut += 1;
            rt.counters.active = rt.counters.active.saturating_sub(1);
        }
    }
}

/// Resolves a group's backends to addresses. Backends whose server is unknown, or whose
/// address is not loopback, are left out: the mock never dials beyond loopback.
fn targets_of(state: &State, group: Option<&str>) -> Vec<Target> {
    let Some(g) = group.and_then(|g| state.v_server_groups.get(g)) else {
        return Vec::new();
    };
    g.backends
        .iter()
        .filter_map(|b| {
            let ip = state.backend_ip(b).filter(|ip| ip.is_loopback())?;
            Some(Target {
                key: b.key(),
                addr: SocketAddr::new(ip, b.port),
                weight: u32::from(b.weight),
            })
        })
        .collect()
}
