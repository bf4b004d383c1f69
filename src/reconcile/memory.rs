//! In-memory `SlbApi` for unit tests and benches (feature `test-util`): the SLB semantics that
//! matter to the executor (adding an existing member fails, removing an absent one does
//! not, setting an absent one fails), fault injection, latency, and a record of calls and
//! of concurrent mutations per instance. `mocks/slb` is the faithful HTTP simulator; this
//! one is for when the HTTP layer is not what is being tested.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::model::{ObservedGroup, SlbBackend};
use crate::slb::{BackendHealth, ErrorClass, Listener, SlbApi, SlbError, VServerGroupSummary};

/// How the next call of an action misbehaves.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Fails without applying anything.
    Fail(ErrorClass),
    /// Applies the change, then reports failure (a lost answer).
    FailAfterApply(ErrorClass),
}

/// One API call as the SLB saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub action: &'static str,
    /// The group (or instance) the call named.
    pub target: String,
    pub backends: usize,
    pub at: Instant,
}

#[derive(Default)]
struct State {
    groups: BTreeMap<String, ObservedGroup>,
    enis: HashMap<IpAddr, String>,
    faults: HashMap<&'static str, VecDeque<Fault>>,
    calls: Vec<Call>,
    in_flight: HashMap<String, usize>,
    max_in_flight: HashMap<String, usize>,
    total_in_flight: usize,
    max_total_in_flight: usize,
    next_group: u32,
    /// Share of calls (in 1/1000) that fail at random, and the generator's state.
    fault_permille: u64,
    rng: u64,
    /// Fewest backends with weight > 0 seen in each group after any write.
    min_weighted: HashMap<String, usize>,
    duplicate_adds: usize,
    random_faults: usize,
    listeners: HashMap<String, Vec<Listener>>,
    /// Server ids the SLB does not know (released instances): writes naming them fail.
    unknown_servers: std::collections::HashSet<String>,
    /// Whether the refusal of an unknown server names it (the real SLB's message does).
    quiet_refusals: bool,
    /// Groups created through the API (tagged as the agent's).
    created: std::collections::HashSet<String>,
}

/// The in-memory SLB; see the module docs.
#[derive(Default)]
pub struct MemorySlb {
    state: Mutex<State>,
    /// How long every call takes (in tokio time).
    pub latency: Duration,
}

fn err(action: &'static str, class: ErrorClass, code: &str) -> SlbError {
    SlbError {
        action,
        class,
        code: code.to_owned(),
        message: "injected by the test".to_owned(),
        request_id: None,
        source: None,
    }
}

impl MemorySlb {
    /// Every call takes `latency`.
    pub fn with_latency(latency: Duration) -> Self {
        MemorySlb {
            latency,
            ..MemorySlb::default()
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates or replaces a group.
    pub fn put_group(&self, group: ObservedGroup) {
        self.state()
            .groups
            .insert(group.v_server_group_id.clone(), group);
    }

    /// The group as it is now.
    ///
    /// # Panics
    /// When there is no group `id` (a test or benchmark set-up error).
    pub fn group(&self, id: &str) -> ObservedGroup {
        self.state().groups[id].clone()
    }

    /// Adds a listener to instance `lb`.
    pub fn put_listener(&self, lb: &str, listener: Listener) {
        self.state()
            .listeners
            .entry(lb.to_owned())
            .or_default()
            .push(listener);
    }

    /// The listeners of instance `lb` as they are now.
    pub fn listeners(&self, lb: &str) -> Vec<Listener> {
        self.state().listeners.get(lb).cloned().unwrap_or_default()
    }

    /// Makes `ip` resolvable to ENI id `eni`.
    pub fn add_eni(&self, ip: IpAddr, eni: &str) {
        self.state().enis.insert(ip, eni.to_owned());
    }

    /// The next `times` calls of `action` (the API name) misbehave as `fault`.
    pub fn inject(&self, action: &'static str, fault: Fault, times: usize) {
        let mut state = self.state();
        let queue = state.faults.entry(action).or_default();
        queue.extend(std::iter::repeat_n(fault, times));
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// How many calls were made so far (cheap: for polling).
    pub fn call_count(&self) -> usize {
        self.state().calls.len()
    }

    /// Call number `index` (0-based), if made.
    pub fn call(&self, index: usize) -> Option<Call> {
        self.state().calls.get(index).cloned()
    }

    /// How many calls of `action` (the API name) were made.
    pub fn count(&self, action: &str) -> usize {
        self.state()
            .calls
            .iter()
            .filter(|c| c.action == action)
            .count()
    }

    /// Most writes ever in flight at once on instance `load_balancer_id`.
    pub fn max_in_flight(&self, load_balancer_id: &str) -> usize {
        self.state()
            .max_in_flight
            .get(load_balancer_id)
            .copied()
            .unwrap_or(0)
    }

    /// Most writes ever in flight at once over all instances.
    pub fn max_total_in_flight(&self) -> usize {
        self.state().max_total_in_flight
    }

    /// Makes `permille`/1000 of all later calls fail at random: throttling, busy, or
    /// (for writes) an applied change whose answer is lost.
    pub fn random_faults(&self, permille: u64, seed: u64) {
        let mut state = self.state();
        state.fault_permille = permille;
        state.rng = seed | 1;
    }

    /// Fewest backends with weight > 0 seen in group `id` after any write.
    pub fn min_weighted(&self, id: &str) -> Option<usize> {
        self.state().min_weighted.get(id).copied()
    }

    /// Random faults played so far.
    pub fn random_faults_played(&self) -> usize {
        self.state().random_faults
    }

    /// Adds of members that already existed (what a blind retry of an add causes).
    pub fn duplicate_adds(&self) -> usize {
        self.state().duplicate_adds
    }

    /// Makes writes naming `server_id` fail with `InvalidServerId.NotExist`, as for an
    /// ECS instance released while its Node object lingers.
    pub fn forget_server(&self, server_id: &str) {
        self.state().unknown_servers.insert(server_id.to_owned());
    }

    /// Whether refusals of unknown servers name the server in their message (default).
    pub fn name_unknown_servers(&self, naming: bool) {
        self.state().quiet_refusals = !naming;
    }

    /// Records the call and returns the fault to play, if any.
    fn begin(&self, action: &'static str, target: &str, backends: usize) -> Option<Fault> {
        let mut state = self.state();
        state.calls.push(Call {
            action,
            target: target.to_owned(),
            backends,
            at: Instant::now(),
        });
        if let Some(fault) = state.faults.get_mut(action).and_then(VecDeque::pop_front) {
            return Some(fault);
        }
        if state.fault_permille == 0 {
            return None;
        }
        // xorshift64: reproducible faults without a dependency.
        let mut x = state.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.rng = x;
        if x % 1000 >= state.fault_permille {
            return None;
        }
        state.random_faults += 1;
        Some(match (x / 1000) % 3 {
            0 => Fault::Fail(ErrorClass::Throttling),
            1 => Fault::Fail(ErrorClass::Busy),
            _ => Fault::FailAfterApply(ErrorClass::Unavailable),
        })
    }

    /// A write: counted in flight on its instance for the call's latency.
    async fn mutate(
        &self,
        action: &'static str,
        group_id: &str,
        backends: &[SlbBackend],
        apply: impl FnOnce(&mut ObservedGroup) -> Result<(), SlbError>,
    ) -> Result<(), SlbError> {
        let fault = self.begin(action, group_id, backends.len());
        let lb = {
            let mut state = self.state();
            let lb = state
                .groups
                .get(group_id)
                .map(|g| g.load_balancer_id.clone())
                .unwrap_or_default();
            let n = state.in_flight.entry(lb.clone()).or_default();
            *n += 1;
            let n = *n;
            let max = state.max_in_flight.entry(lb.clone()).or_default();
            *max = (*max).max(n);
            state.total_in_flight += 1;
            state.max_total_in_flight = state.max_total_in_flight.max(state.total_in_flight);
            lb
        };
        tokio::time::sleep(self.latency).await;
        let mut state = self.state();
        *state.in_flight.get_mut(&lb).unwrap() -= 1;
        state.total_in_flight -= 1;
        if let Some(Fault::Fail(class)) = fault {
            return Err(err(action, class, "Injected"));
        }
        if let Some(unknown) = backends
            .iter()
            .find(|b| state.unknown_servers.contains(&b.server_id))
        {
            let message = if state.quiet_refusals {
                "The specified ServerId is not exist.".to_owned()
            } else {
                format!(
                    "The specified ServerId is not exist: {}.",
                    unknown.server_id
                )
            };
            return Err(SlbError {
                message,
                ..err(action, ErrorClass::Permanent, "InvalidServerId.NotExist")
            });
        }
        let group = state.groups.get_mut(group_id).ok_or_else(|| {
            err(
                action,
                ErrorClass::Permanent,
                "InvalidVServerGroupId.NotFound",
            )
        })?;
        let applied = apply(group);
        let weighted = group.backends.iter().filter(|b| b.weight.get() > 0).count();
        if let Err(e) = &applied {
            if e.code == "BackendServer.AlreadyExist" {
                state.duplicate_adds += 1;
            }
        }
        let min = state
            .min_weighted
            .entry(group_id.to_owned())
            .or_insert(weighted);
        *min = (*min).min(weighted);
        applied?;
        match fault {
            Some(Fault::FailAfterApply(class)) => Err(err(action, class, "InjectedAfterApply")),
            _ => Ok(()),
        }
    }

    async fn read<T>(
        &self,
        action: &'static str,
        target: &str,
        f: impl FnOnce(&State) -> Result<T, SlbError>,
    ) -> Result<T, SlbError> {
        let fault = self.begin(action, target, 0);
        tokio::time::sleep(self.latency).await;
        if let Some(Fault::Fail(class) | Fault::FailAfterApply(class)) = fault {
            return Err(err(action, class, "Injected"));
        }
        f(&self.state())
    }
}

fn same(a: &SlbBackend, b: &SlbBackend) -> bool {
    a.key() == b.key()
}

#[async_trait]
impl SlbApi for MemorySlb {
    async fn list_vserver_groups(&self, lb: &str) -> Result<Vec<VServerGroupSummary>, SlbError> {
        self.read("DescribeVServerGroups", lb, |s| {
            Ok(s.groups
                .values()
                .filter(|g| g.load_balancer_id == lb)
                .map(|g| VServerGroupSummary {
                    v_server_group_id: g.v_server_group_id.clone(),
                    v_server_group_name: g.v_server_group_name.clone(),
                    tags: s
                        .created
                        .contains(&g.v_server_group_id)
                        .then(|| {
                            (
                                crate::slb::CREATED_FOR_TAG.to_owned(),
                                g.v_server_group_name.clone(),
                            )
                        })
                        .into_iter()
                        .collect(),
                    listener_ports: s
                        .listeners
                        .get(lb)
                        .into_iter()
                        .flatten()
                        .filter(|l| l.v_server_group_id.as_ref() == Some(&g.v_server_group_id))
                        .map(|l| l.port)
                        .collect(),
                })
                .collect())
        })
        .await
    }

    async fn describe_vserver_group(&self, id: &str) -> Result<ObservedGroup, SlbError> {
        self.read("DescribeVServerGroupAttribute", id, |s| {
            s.groups.get(id).cloned().ok_or_else(|| {
                err(
                    "DescribeVServerGroupAttribute",
                    ErrorClass::Permanent,
                    "NotFound",
                )
            })
        })
        .await
    }

    async fn create_vserver_group(&self, lb: &str, name: &str) -> Result<String, SlbError> {
        let fault = self.begin("CreateVServerGroup", lb, 0);
        if let Some(Fault::Fail(class)) = fault {
            return Err(err("CreateVServerGroup", class, "Injected"));
        }
        let mut state = self.state();
        state.next_group += 1;
        let id = format!("rsp-new-{}", state.next_group);
        state.created.insert(id.clone());
        state.groups.insert(
            id.clone(),
            ObservedGroup {
                v_server_group_id: id.clone(),
                v_server_group_name: name.to_owned(),
                load_balancer_id: lb.to_owned(),
                backends: vec![],
            },
        );
        Ok(id)
    }

    async fn delete_vserver_group(&self, id: &str) -> Result<(), SlbError> {
        self.state().groups.remove(id);
        Ok(())
    }

    async fn add_backends(&self, id: &str, backends: &[SlbBackend]) -> Result<(), SlbError> {
        self.mutate("AddVServerGroupBackendServers", id, backends, |g| {
            if backends
                .iter()
                .any(|b| g.backends.iter().any(|h| same(h, b)))
            {
                return Err(err(
                    "AddVServerGroupBackendServers",
                    ErrorClass::Permanent,
                    "BackendServer.AlreadyExist",
                ));
            }
            g.backends.extend(backends.iter().cloned());
            Ok(())
        })
        .await
    }

    async fn remove_backends(&self, id: &str, backends: &[SlbBackend]) -> Result<(), SlbError> {
        self.mutate("RemoveVServerGroupBackendServers", id, backends, |g| {
            g.backends.retain(|h| !backends.iter().any(|b| same(h, b)));
            Ok(())
        })
        .await
    }

    async fn set_backends(&self, id: &str, backends: &[SlbBackend]) -> Result<(), SlbError> {
        self.mutate("SetVServerGroupAttribute", id, backends, |g| {
            for b in backends {
                let Some(h) = g.backends.iter_mut().find(|h| same(h, b)) else {
                    return Err(err(
                        "SetVServerGroupAttribute",
                        ErrorClass::Permanent,
                        "BackendServer.NotExist",
                    ));
                };
                h.weight = b.weight;
                h.description = b.description.clone();
            }
            Ok(())
        })
        .await
    }

    async fn describe_health(&self, _: &str, _: u16) -> Result<Vec<BackendHealth>, SlbError> {
        Ok(vec![])
    }

    async fn describe_listeners(&self, lb: &str) -> Result<Vec<Listener>, SlbError> {
        self.read("DescribeLoadBalancerAttribute", lb, |s| {
            Ok(s.listeners.get(lb).cloned().unwrap_or_default())
        })
        .await
    }

    async fn set_listener_drain(
        &self,
        lb: &str,
        listener: &Listener,
        drain: bool,
        timeout: Option<u32>,
    ) -> Result<(), SlbError> {
        if let Some(Fault::Fail(class)) = self.begin("SetListenerDrain", lb, 0) {
            return Err(err("SetListenerDrain", class, "Injected"));
        }
        let mut state = self.state();
        let found = state
            .listeners
            .get_mut(lb)
            .and_then(|ls| ls.iter_mut().find(|l| l.port == listener.port));
        let Some(found) = found else {
            return Err(err(
                "SetListenerDrain",
                ErrorClass::Permanent,
                "ListenerNotFound",
            ));
        };
        found.connection_drain = Some(drain);
        found.connection_drain_timeout = timeout;
        Ok(())
    }

    async fn resolve_eni_ids(&self, ips: &[IpAddr]) -> Result<HashMap<IpAddr, String>, SlbError> {
        let n = ips.len();
        self.read("DescribeNetworkInterfaces", "", |s| {
            assert!(
                n <= 100,
                "DescribeNetworkInterfaces takes at most 100 IPs, got {n}"
            );
            Ok(ips
                .iter()
                .filter_map(|ip| s.enis.get(ip).map(|id| (*ip, id.clone())))
                .collect())
        })
        .await
    }
}
