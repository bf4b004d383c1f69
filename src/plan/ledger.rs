//! The drain ledger: when each owned backend's drain window started.
//!
//! Weight 0 on the SLB says *that* a backend drains, not *since when*. The ledger holds
//! the start so that no backend is removed before its full window, even across restarts
//! (the executor persists it; `--slb-state` carries it as `"drains"`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::model::{BackendKey, SlbBackend};

/// Drain start times keyed by (vServerGroupId, backend identity).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainLedger {
    /// Grouped by vServer group so a pass looks at its own entries only.
    groups: BTreeMap<String, BTreeMap<BackendKey, Timestamp>>,
}

impl DrainLedger {
    pub fn new() -> Self {
        Self::default()
    }

    /// When the drain of `key` in group `v_server_group_id` started, if it is recorded.
    pub fn started_at(&self, v_server_group_id: &str, key: &BackendKey) -> Option<Timestamp> {
        self.groups.get(v_server_group_id)?.get(key).copied()
    }

    /// Records (or restarts) the drain of `key` at `at`.
    pub fn start(&mut self, v_server_group_id: &str, key: BackendKey, at: Timestamp) {
        self.groups
            .entry(v_server_group_id.to_owned())
            .or_default()
            .insert(key, at);
    }

    /// Forgets the drain of `key` (removed, or restored to a non-zero weight).
    pub fn end(&mut self, v_server_group_id: &str, key: &BackendKey) -> Option<Timestamp> {
        let group = self.groups.get_mut(v_server_group_id)?;
        let started = group.remove(key);
        if group.is_empty() {
            self.groups.remove(v_server_group_id);
        }
        started
    }

    /// Every entry of one group, in [`BackendKey`] order.
    pub fn group<'a>(
        &'a self,
        v_server_group_id: &str,
    ) -> impl Iterator<Item = (&'a BackendKey, Timestamp)> + 'a {
        self.groups
            .get(v_server_group_id)
            .into_iter()
            .flat_map(|entries| entries.iter().map(|(k, t)| (k, *t)))
    }

    /// Number of drains recorded, over all groups.
    pub fn len(&self) -> usize {
        self.groups.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Applies a plan's ledger updates for group `v_server_group_id`.
    ///
    /// The planner stamps drains it starts with its `now`; an executor that writes
    /// weight 0 later should instead call [`DrainLedger::start`] with the time the write
    /// succeeded, so the window never counts time before the SLB stopped new connections.
    pub fn apply(&mut self, v_server_group_id: &str, updates: &LedgerUpdates) {
        for key in &updates.ended {
            self.end(v_server_group_id, key);
        }
        for start in &updates.started {
            self.start(v_server_group_id, start.key.clone(), start.started_at);
        }
    }

    /// The ledger as `--slb-state` `"drains"` records, in (group, key) order.
    pub fn records(&self) -> Vec<DrainRecord> {
        self.groups
            .iter()
            .flat_map(|(group, entries)| {
                entries
                    .iter()
                    .map(move |(key, at)| DrainRecord::new(group, key, *at))
            })
            .collect()
    }
}

/// A drain the planner started (or found unrecorded at weight 0) in this pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainStart {
    pub key: BackendKey,
    pub started_at: Timestamp,
    /// True when the backend is already at weight 0 on the SLB (no step writes it), so
    /// the window starts now; false when a `setWeight` 0 step of this plan begins it.
    pub already_at_zero: bool,
}

/// How the ledger of one group changes with a plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerUpdates {
    /// Drains that start with this plan, in [`BackendKey`] order.
    pub started: Vec<DrainStart>,
    /// Entries to forget: backends removed by this plan, restored to a non-zero weight,
    /// or no longer in the group at all. In [`BackendKey`] order.
    pub ended: Vec<BackendKey>,
}

/// One `"drains"` entry of `--slb-state`:
/// `{"vServerGroupId","serverId","serverIp","port","startedAt"}`.
///
/// ECS backends are identified by `serverId`, ENI backends by `serverIp` (their
/// `serverId`, the ENI id, may be given or null).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainRecord {
    pub v_server_group_id: String,
    #[serde(default)]
    pub server_id: Option<String>,
    #[serde(default)]
    pub server_ip: Option<IpAddr>,
    pub port: u16,
    pub started_at: Timestamp,
}

impl DrainRecord {
    pub fn new(v_server_group_id: &str, key: &BackendKey, started_at: Timestamp) -> Self {
        let (server_id, server_ip) = match key {
            BackendKey::Ecs { server_id, .. } => (Some(server_id.clone()), None),
            BackendKey::Eni { server_ip, .. } => (None, Some(*server_ip)),
        };
        DrainRecord {
            v_server_group_id: v_server_group_id.to_owned(),
            server_id,
            server_ip,
            port: key.port(),
            started_at,
        }
    }

    /// The backend this record is about, matched against the group's observed backends
    /// so that a record naming both `serverId` and `serverIp` resolves to the right kind
    /// of key. A record for a backend no longer in the group falls back to: IP given →
    /// ENI key, else ECS key; `None` when it names neither.
    pub fn key(&self, observed: &[SlbBackend]) -> Option<BackendKey> {
        let matched = observed.iter().find(|b| {
            b.port == self.port
                && match b.key() {
                    Some(BackendKey::Ecs { server_id, .. }) => {
                        self.server_id.as_deref() == Some(server_id.as_str())
                    }
                    Some(BackendKey::Eni { server_ip, .. }) => self.server_ip == Some(server_ip),
                    None => false,
                }
        });
        if let Some(key) = matched.and_then(SlbBackend::key) {
            return Some(key);
        }
        match (&self.server_ip, &self.server_id) {
            (Some(ip), _) => Some(BackendKey::Eni {
                server_ip: *ip,
                port: self.port,
            }),
            (None, Some(id)) if !id.is_empty() => Some(BackendKey::Ecs {
                server_id: id.clone(),
                port: self.port,
            }),
            _ => None,
        }
    }
}
