//! The `--slb-state FILE` document: an SLB snapshot plus drain ledger for offline plans.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::ledger::{DrainLedger, DrainRecord};
use crate::model::{BackendType, ObservedGroup};

/// What `plan --offline --slb-state FILE` reads:
///
/// ```json
/// {"groups":[{"vServerGroupId":"rsp-…","vServerGroupName":"k8s/80/web/default/c1",
///             "loadBalancerId":"lb-…",
///             "backends":[{"serverId","serverIp","port","weight","type","description"}]}],
///  "drains":[{"vServerGroupId","serverId","serverIp","port","startedAt"}],
///  "eniIds":{"10.0.0.7":"eni-…"}}
/// ```
///
/// `vServerGroupName`, `drains`, `eniIds`, a backend's `serverIp` and `description` are
/// optional. `eniIds` stands in for the ECS lookup of ENI ids that an online run makes;
/// ENI backends already in a group contribute their ids too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlbState {
    #[serde(default)]
    pub groups: Vec<ObservedGroup>,
    #[serde(default)]
    pub drains: Vec<DrainRecord>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub eni_ids: BTreeMap<IpAddr, String>,
}

/// Why an `--slb-state` document cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "the SLB state JSON is invalid at line {line}, column {column}: {source}; expected \
         {{\"groups\":[{{\"vServerGroupId\",\"loadBalancerId\",\"backends\":[…]}}],\"drains\":[…]}}"
    )]
    Json {
        line: usize,
        column: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("the SLB state lists vServer group {0} more than once; give each group once")]
    DuplicateGroup(String),
    #[error(
        "drain entry {index} (group {group}, port {port}) names neither serverId nor serverIp; \
         give the backend's serverId (ECS) or serverIp (ENI)"
    )]
    DrainWithoutBackend {
        index: usize,
        group: String,
        port: u16,
    },
}

impl SlbState {
    /// Parses and checks an `--slb-state` document.
    pub fn from_json(text: &str) -> Result<SlbState, StateError> {
        let state: SlbState = serde_json::from_str(text).map_err(|source| StateError::Json {
            line: source.line(),
            column: source.column(),
            source,
        })?;
        let mut seen = std::collections::BTreeSet::new();
        for group in &state.groups {
            if !seen.insert(group.v_server_group_id.as_str()) {
                return Err(StateError::DuplicateGroup(group.v_server_group_id.clone()));
            }
        }
        state.ledger()?;
        Ok(state)
    }

    /// The drain ledger the `"drains"` entries describe, each matched to its group's
    /// backends so its key has the right kind (ECS or ENI).
    pub fn ledger(&self) -> Result<DrainLedger, StateError> {
        let mut ledger = DrainLedger::new();
        for (index, record) in self.drains.iter().enumerate() {
            let observed = self
                .group(&record.v_server_group_id)
                .map(|g| g.backends.as_slice())
                .unwrap_or_default();
            let key = record
                .key(observed)
                .ok_or_else(|| StateError::DrainWithoutBackend {
                    index,
                    group: record.v_server_group_id.clone(),
                    port: record.port,
                })?;
            ledger.start(&record.v_server_group_id, key, record.started_at);
        }
        Ok(ledger)
    }

    /// Known ENI ids by pod IP: `eniIds` first, then ENI backends present in any group.
    pub fn eni_ids(&self) -> HashMap<IpAddr, String> {
        let mut ids: HashMap<IpAddr, String> = self
            .eni_ids
            .iter()
            .map(|(ip, id)| (*ip, id.clone()))
            .collect();
        for backend in self.groups.iter().flat_map(|g| &g.backends) {
            if let (BackendType::Eni, Some(ip)) = (backend.backend_type, backend.server_ip) {
                if !backend.server_id.is_empty() {
                    ids.entry(ip).or_insert_with(|| backend.server_id.clone());
                }
            }
        }
        ids
    }

    /// The group with id `v_server_group_id`.
    pub fn group(&self, v_server_group_id: &str) -> Option<&ObservedGroup> {
        self.groups
            .iter()
            .find(|g| g.v_server_group_id == v_server_group_id)
    }
}
