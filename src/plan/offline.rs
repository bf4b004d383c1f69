//! Plans for every desired group against an SLB snapshot (`plan --offline --slb-state`).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use super::group::plan_group;
use super::ledger::DrainLedger;
use super::state::{SlbState, StateError};
use super::step::{GroupPlan, PlanConfig, MAX_BATCH};
use crate::model::{DesiredGroup, DesiredService, LbSpec, ObservedGroup};

/// Settings of an offline plan that the desired state does not carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineOptions {
    /// `--default-drain-seconds`: the window of Services whose drain is off.
    pub default_drain_secs: u32,
    /// Drain window in seconds per Service (`<namespace>/<name>`), normally
    /// `LbSpec::drain_window_secs(default_drain_secs)`; Services not listed get the default.
    pub drain_windows: BTreeMap<String, u32>,
    /// `--slb-propagation-seconds` (see [`PlanConfig::propagation`]).
    pub slb_propagation: Duration,
    /// Backends per write call (the SLB allows 20).
    pub max_batch: usize,
}

impl Default for OfflineOptions {
    fn default() -> Self {
        OfflineOptions {
            default_drain_secs: 30,
            drain_windows: BTreeMap::new(),
            slb_propagation: Duration::ZERO,
            max_batch: MAX_BATCH,
        }
    }
}

impl OfflineOptions {
    /// Options whose per-Service windows come from each Service's annotations
    /// (`connection-drain-timeout` when drain is on, else `default_drain_secs`).
    pub fn with_specs<'a>(
        default_drain_secs: u32,
        specs: impl IntoIterator<Item = (String, &'a LbSpec)>,
    ) -> Self {
        OfflineOptions {
            default_drain_secs,
            drain_windows: specs
                .into_iter()
                .map(|(service, spec)| (service, spec.drain_window_secs(default_drain_secs)))
                .collect(),
            slb_propagation: Duration::ZERO,
            max_batch: MAX_BATCH,
        }
    }
}

/// The plans of one Service's groups, in the order of its desired groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePlan {
    /// `<namespace>/<name>`.
    pub service: String,
    pub groups: Vec<MatchedGroupPlan>,
}

/// One desired group, the observed group it matched, and its plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchedGroupPlan {
    pub service_port: u16,
    /// The matched group's id; `None` when no group matched (it will be created).
    pub v_server_group_id: Option<String>,
    #[serde(flatten)]
    pub plan: GroupPlan,
}

/// How a desired group was found in the SLB state (docs/architecture.md, "Group matching").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupMatch<'a> {
    /// The group `vgroup-port` names, or the one named by the owner Description.
    Found(&'a ObservedGroup),
    /// `vgroup-port` names a group the SLB does not have: nothing can be planned.
    NamedMissing,
    /// No group carries the owner name: the agent will create it.
    ToCreate,
}

/// Finds the observed group of `desired`: the id `vgroup-port` names, or else the group
/// whose name equals the owner Description on the Service's SLB instance.
pub fn match_group<'a>(
    desired: &DesiredGroup,
    load_balancer_id: Option<&str>,
    groups: &'a [ObservedGroup],
) -> GroupMatch<'a> {
    match &desired.v_server_group_id {
        Some(id) => groups
            .iter()
            .find(|g| &g.v_server_group_id == id)
            .map_or(GroupMatch::NamedMissing, GroupMatch::Found),
        None => groups
            .iter()
            .find(|g| {
                g.v_server_group_name == desired.name.as_str()
                    && load_balancer_id.is_none_or(|lb| lb == g.load_balancer_id)
            })
            .map_or(GroupMatch::ToCreate, GroupMatch::Found),
    }
}

/// Plans every group of every Service against `state` at `now`.
pub fn plan_offline(
    services: &[DesiredService],
    state: &SlbState,
    now: Timestamp,
    options: &OfflineOptions,
) -> Result<Vec<ServicePlan>, StateError> {
    let ledger = state.ledger()?;
    let eni_ids = state.eni_ids();
    Ok(services
        .iter()
        .map(|service| plan_service(service, state, &ledger, &eni_ids, now, options))
        .collect())
}

fn plan_service(
    service: &DesiredService,
    state: &SlbState,
    ledger: &DrainLedger,
    eni_ids: &HashMap<IpAddr, String>,
    now: Timestamp,
    options: &OfflineOptions,
) -> ServicePlan {
    let window_secs = options
        .drain_windows
        .get(&service.service)
        .copied()
        .unwrap_or(options.default_drain_secs);
    let config = PlanConfig {
        drain_window: Duration::from_secs(u64::from(window_secs)),
        propagation: options.slb_propagation,
        max_batch: options.max_batch,
        emptying: false,
        drains_first: false,
    };
    let groups = service
        .groups
        .iter()
        .map(|desired| {
            let lb = service.load_balancer_id.as_deref();
            let (observed, warning) = match match_group(desired, lb, &state.groups) {
                GroupMatch::Found(group) => (Some(group), None),
                GroupMatch::NamedMissing => {
                    let id = desired.v_server_group_id.clone().unwrap_or_default();
                    let warning = format!(
                        "vServer group {id} named by the vgroup-port annotation for port {} is \
                         not in the SLB state; nothing is planned for it",
                        desired.service_port
                    );
                    let plan = GroupPlan {
                        warnings: vec![warning],
                        ..GroupPlan::default()
                    };
                    return MatchedGroupPlan {
                        service_port: desired.service_port,
                        v_server_group_id: Some(id),
                        plan,
                    };
                }
                GroupMatch::ToCreate => (
                    None,
                    Some(format!(
                        "no vServer group named {} on the SLB; it will be created, and gets \
                         traffic only once a listener forwards to it: create a listener for \
                         port {} with this group, or name a listener's group in the \
                         vgroup-port annotation",
                        desired.name, desired.service_port
                    )),
                ),
            };
            let mut plan = plan_group(desired, observed, ledger, eni_ids, config, now);
            plan.warnings.extend(warning);
            MatchedGroupPlan {
                service_port: desired.service_port,
                v_server_group_id: observed.map(|g| g.v_server_group_id.clone()),
                plan,
            }
        })
        .collect();
    ServicePlan {
        service: service.service.clone(),
        groups,
    }
}
