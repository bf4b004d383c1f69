//! The in-memory SLB's state, and how each call is played against it: recorded, its
//! fault (injected or random) drawn, its latency waited, writes counted in flight.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;

use tokio::time::Instant;

use super::{Call, Fault, MemorySlb};
use crate::model::{ObservedGroup, SlbBackend};
use crate::slb::{ErrorClass, Listener, SlbError};

/// Everything the in-memory SLB holds and has seen.
#[derive(Default)]
pub(super) struct State {
    pub(super) groups: BTreeMap<String, ObservedGroup>,
    pub(super) enis: HashMap<IpAddr, String>,
    pub(super) faults: HashMap<&'static str, VecDeque<Fault>>,
    pub(super) calls: Vec<Call>,
    pub(super) in_flight: HashMap<String, usize>,
    pub(super) max_in_flight: HashMap<String, usize>,
    pub(super) total_in_flight: usize,
    pub(super) max_total_in_flight: usize,
    pub(super) next_group: u32,
    /// Share of calls (in 1/1000) that fail at random, and the generator's state.
    pub(super) fault_permille: u64,
    pub(super) rng: u64,
    /// Fewest backends with weight > 0 seen in each group after any write.
    pub(super) min_weighted: HashMap<String, usize>,
    pub(super) duplicate_adds: usize,
    pub(super) random_faults: usize,
    pub(super) listeners: HashMap<String, Vec<Listener>>,
    /// Server ids the SLB does not know (released instances): writes naming them fail.
    pub(super) unknown_servers: std::collections::HashSet<String>,
    /// Whether the refusal of an unknown server names it (the real SLB's message does).
    pub(super) quiet_refusals: bool,
    /// Groups created through the API (tagged as the agent's).
    pub(super) created: std::collections::HashSet<String>,
}

pub(super) fn err(action: &'static str, class: ErrorClass, code: &str) -> SlbError {
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
    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// Records the call and returns the fault to play, if any.
    pub(super) fn begin(
        &self,
        action: &'static str,
        target: &str,
        backends: usize,
    ) -> Option<Fault> {
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
    pub(super) async fn mutate(
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

    pub(super) async fn read<T>(
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
