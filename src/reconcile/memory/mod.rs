//! In-memory `SlbApi` for unit tests and benches (feature `test-util`): the SLB semantics that
//! matter to the executor (adding an existing member fails, removing an absent one does
//! not, setting an absent one fails), fault injection, latency, and a record of calls and
//! of concurrent mutations per instance. `mocks/slb` is the faithful HTTP simulator; this
//! one is for when the HTTP layer is not what is being tested.
//!
//! `state.rs` keeps the SLB's state and plays each call (faults, latency, writes in
//! flight); `api.rs` is the `SlbApi` over it.

mod api;
mod state;

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::model::ObservedGroup;
use crate::slb::{ErrorClass, Listener};
use state::State;

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

/// The in-memory SLB; see the module docs.
#[derive(Default)]
pub struct MemorySlb {
    state: Mutex<State>,
    /// How long every call takes (in tokio time).
    pub latency: Duration,
}

impl MemorySlb {
    /// Every call takes `latency`.
    pub fn with_latency(latency: Duration) -> Self {
        MemorySlb {
            latency,
            ..MemorySlb::default()
        }
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
}
