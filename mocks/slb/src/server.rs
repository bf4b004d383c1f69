//! Starting, driving and stopping the mock: `MockSlb::start(config)` returns a handle
//! with the API URL, data-plane addresses and admin helpers.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::serve::ListenerExt as _;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::auth::Verifier;
use crate::calls::{ActionCounters, CallLog, CallRecord};
use crate::dataplane::{DataPlane, DataPlaneCounters, Health, ListenerView};
use crate::faults::propagation::Lagged;
use crate::faults::{FaultConfig, Faults};
use crate::state::seed::SeedError;
use crate::state::{BackendKey, Seed, State};

/// How to start the mock.
#[derive(Debug, Clone)]
pub struct Config {
    /// API (and admin) address; default `127.0.0.1:0`.
    pub api_addr: SocketAddr,
    /// Objects, keys and faults to start with.
    pub seed: Seed,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            api_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: Seed::default(),
        }
    }
}

/// Why the mock could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "the mock serves loopback only; {addr} is not a loopback address (use 127.0.0.0/8 or ::1)"
    )]
    NotLoopback { addr: SocketAddr },
    #[error(transparent)]
    Seed(#[from] SeedError),
    #[error("cannot bind {what} on {addr}: {source} (is the address free and on loopback?)")]
    Bind {
        what: &'static str,
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// Everything behind the control plane, under one lock (never held across `.await`).
pub struct Core {
    pub state: State,
    pub verifier: Verifier,
    pub faults: Faults,
    pub calls: CallLog,
    /// What the data plane carries when member changes land one by one
    /// (`faults.backend_propagation`); kept in step with `state` otherwise.
    lagged: Arc<Mutex<Lagged>>,
    /// Configuration versions handed to the data plane (it ignores older ones).
    version: Arc<AtomicU64>,
}

fn lock_lagged(l: &Mutex<Lagged>) -> MutexGuard<'_, Lagged> {
    l.lock().unwrap_or_else(|p| p.into_inner())
}

fn apply_logged(dp: &DataPlane, version: u64, state: &State) {
    if let Err(e) = dp.apply(version, state) {
        tracing::warn!(error = %e, "data plane could not apply the configuration");
    }
}

impl Core {
    fn next_version(&self) -> u64 {
        self.version.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Hands the current state to the data plane: now, after the propagation delay, or
    /// member change by member change on their drawn delays.
    pub fn propagate(&mut self, dp: &DataPlane) {
        if let Some(p) = self.faults.config.backend_propagation {
            let now = Instant::now();
            let mut lagged = lock_lagged(&self.lagged);
            let changes = lagged.write(&self.state, now, &p, &mut self.faults.rng);
            // Everything but the members (listeners, their settings) at once.
            apply_logged(dp, self.next_version(), &lagged.carried());
            for change in changes {
                let (dp, lagged, version) = (dp.clone(), self.lagged.clone(), self.version.clone());
                tokio::spawn(async move {
                    tokio::time::sleep_until(change.at).await;
                    let mut l = lock_lagged(&lagged);
                    l.land(&change);
                    let v = version.fetch_add(1, Ordering::SeqCst) + 1;
                    apply_logged(&dp, v, &l.carried());
                });
            }
            return;
        }
        lock_lagged(&self.lagged).carry(&self.state);
        let version = self.next_version();
        let snapshot = self.state.clone();
        let delay = self.faults.propagation_delay();
        if delay.is_zero() {
            apply_logged(dp, version, &snapshot);
        } else {
            let dp = dp.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                apply_logged(&dp, version, &snapshot);
            });
        }
    }

    fn apply_seed(&mut self, seed: &Seed) -> Result<(), SeedError> {
        let mut next = self.state.clone();
        seed.apply(&mut next)?;
        self.state = next;
        for k in &seed.access_keys {
            self.verifier.add_key(
                k.id.clone(),
                crate::auth::Key {
                    secret: k.secret.clone(),
                    security_token: k.security_token.clone(),
                },
            );
        }
        if let Some(f) = &seed.faults {
            self.faults.set(f.clone());
        }
        Ok(())
    }
}

/// State shared by the API, admin API and handle.
pub struct Shared {
    core: Mutex<Core>,
    pub dataplane: DataPlane,
    pub started: Instant,
    /// TCP connections the API has accepted: a client that keeps its connections alive
    /// makes many calls over few.
    pub api_connections: AtomicU64,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Merges a seed and applies it to the data plane at once (seeding does not wait for
    /// the propagation delay).
    pub fn apply_seed(&self, seed: &Seed) -> Result<(), StartError> {
        let mut core = self.lock();
        core.apply_seed(seed)?;
        lock_lagged(&core.lagged).carry(&core.state);
        let v = core.next_version();
        self.dataplane
            .apply(v, &core.state)
            .map_err(|source| StartError::Bind {
                what: "a data-plane listener",
                addr: "the seed's bind address".to_string(),
                source,
            })
    }
}

/// Entry point.
pub struct MockSlb;

impl MockSlb {
    /// Binds the API, applies the seed, starts the data-plane listeners.
    pub async fn start(config: Config) -> Result<MockSlbHandle, StartError> {
        if !config.api_addr.ip().is_loopback() {
            return Err(StartError::NotLoopback {
                addr: config.api_addr,
            });
        }
        let shared = Arc::new(Shared {
            core: Mutex::new(Core {
                state: State::default(),
                verifier: Verifier::new(HashMap::new()),
                faults: Faults::default(),
                calls: CallLog::default(),
                lagged: Arc::default(),
                version: Arc::default(),
            }),
            dataplane: DataPlane::default(),
            started: Instant::now(),
            api_connections: AtomicU64::new(0),
        });
        shared.apply_seed(&config.seed)?;
        let listener = tokio::net::TcpListener::bind(config.api_addr)
            .await
            .map_err(|source| StartError::Bind {
                what: "the API",
                addr: config.api_addr.to_string(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            what: "the API",
            addr: config.api_addr.to_string(),
            source,
        })?;
        let counted = shared.clone();
        let listener = listener.tap_io(move |_| {
            counted.api_connections.fetch_add(1, Ordering::Relaxed);
        });
        let app = crate::admin::router()
            .fallback(crate::api::rpc)
            .with_state(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "mock SLB API server failed");
            }
        });
        tracing::info!(%addr, "mock SLB API listening");
        Ok(MockSlbHandle {
            shared,
            addr,
            stop: Some(tx),
            task: Some(task),
        })
    }
}

/// A running mock. Dropping it stops the data plane; call [`shutdown`](Self::shutdown)
/// to also wait for the API server to finish.
pub struct MockSlbHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl MockSlbHandle {
    /// The RPC endpoint, e.g. `http://127.0.0.1:40000/` (use as the endpoint override).
    pub fn api_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn api_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL of the admin API.
    pub fn admin_url(&self) -> String {
        format!("http://{}/admin", self.addr)
    }

    /// Where a listener's data plane accepts connections.
    pub fn listener_addr(&self, lb_id: &str, port: u16) -> Option<SocketAddr> {
        self.shared.dataplane.listener_addr(lb_id, port)
    }

    /// A copy of the control-plane state.
    pub fn state(&self) -> State {
        self.shared.lock().state.clone()
    }

    pub fn set_faults(&self, faults: FaultConfig) {
        self.shared.lock().faults.set(faults);
    }

    pub fn faults(&self) -> FaultConfig {
        self.shared.lock().faults.config.clone()
    }

    /// TCP connections the API (and admin API) has accepted since the start.
    pub fn api_connections(&self) -> u64 {
        self.shared.api_connections.load(Ordering::Relaxed)
    }

    /// Per-action API counters.
    pub fn counters(&self) -> BTreeMap<String, ActionCounters> {
        self.shared.lock().calls.counters()
    }

    pub fn call_log(&self) -> Vec<CallRecord> {
        self.shared.lock().calls.entries()
    }

    pub fn clear_call_log(&self) {
        self.shared.lock().calls.clear();
    }

    /// Connection counters of one data-plane listener.
    pub fn dataplane_counters(&self, lb_id: &str, port: u16) -> Option<DataPlaneCounters> {
        self.shared.dataplane.counters(lb_id, port)
    }

    /// Health of each applied backend of a listener, by the address it is checked at,
    /// as `DescribeHealthStatus` would report it (without making an API call).
    pub fn backend_health(&self, lb_id: &str, port: u16) -> Vec<(SocketAddr, Health)> {
        let dp = &self.shared.dataplane;
        let addrs: Vec<(BackendKey, SocketAddr)> = dp
            .views()
            .into_iter()
            .filter(|v| v.load_balancer_id == lb_id && v.port == port)
            .flat_map(|v| v.targets)
            .map(|t| (t.key, t.addr))
            .collect();
        dp.health(lb_id, port)
            .into_iter()
            .filter_map(|(key, h)| {
                let addr = addrs.iter().find(|(k, _)| *k == key)?.1;
                Some((addr, h))
            })
            .collect()
    }

    /// Every data-plane listener with its applied backends and counters.
    pub fn dataplane(&self) -> Vec<ListenerView> {
        self.shared.dataplane.views()
    }

    /// Revokes a key pair; later calls with it get `InvalidAccessKeyId.NotFound`.
    pub fn remove_access_key(&self, id: &str) -> bool {
        self.shared.lock().verifier.remove_key(id)
    }

    /// Merges more objects, keys or faults.
    pub fn apply_seed(&self, seed: &Seed) -> Result<(), StartError> {
        self.shared.apply_seed(seed)
    }

    /// Stops the API server and the data plane, closing every proxied connection.
    pub async fn shutdown(mut self) {
        self.shared.dataplane.shutdown();
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for MockSlbHandle {
    fn drop(&mut self) {
        self.shared.dataplane.shutdown();
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
