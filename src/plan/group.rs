//! The step planner for one vServer group (docs/architecture.md, "Steps").

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use jiff::Timestamp;

use super::ledger::{DrainLedger, DrainStart};
use super::step::{GroupPlan, PlanConfig, Step, StepAction};
use crate::model::{
    Backend, BackendKey, BackendState, BackendType, DesiredGroup, GroupHealth, ObservedGroup,
    SlbBackend, Weight,
};

/// What is known of a group's backends beyond their membership, for its plan.
#[derive(Debug, Clone, Default)]
pub struct Holds {
    /// Backends the SLB refused, held out until their retry (see [`super::Quarantine`]).
    pub refused: BTreeSet<BackendKey>,
    /// What the listeners' health checks say of the group: only a backend they report
    /// `normal` takes traffic where they check.
    pub health: GroupHealth,
}

/// Plans the SLB writes that move one observed group towards its desired backends,
/// make-before-break:
///
/// 1. add desired `active` backends that are absent, at their weight;
/// 2. set the weight of present desired backends whose weight differs (this restores a
///    draining backend that is wanted again: never remove and re-add), except a member
///    above 0 of a group that keeps its weights (`ignore-weight-update`);
/// 3. set weight 0 on owned backends that are leaving (present, not desired) or desired
///    `draining`, starting their drain window;
/// 4. remove owned backends at weight 0 whose window has fully elapsed
///    (`now >= startedAt + window`).
///
/// With `config.drains_first` (a pod waits for the drain), steps 2–4 go before step 1
/// when the group keeps a backend with weight > 0 without the adds.
///
/// Step 3 waits when it would leave no backend with weight > 0 while desired backends
/// cannot be added yet for want of an ENI id: the leaving backends keep serving (with a
/// warning) until a later pass can add their replacements first.
///
/// Backends whose Description is not exactly the group's owner Description are foreign and
/// never appear in a step. No step re-sets a weight a backend already has. An owned
/// backend found at weight 0 without a ledger entry starts its window now and is not
/// removed in this pass; since removal requires weight 0 *before* the pass, a backend is
/// always removed in a later pass than the one that set it to 0.
///
/// `observed` is `None` when the group does not exist yet (it will be created empty), and
/// `eni_ids` maps pod IPs to ENI ids as resolved by the SLB layer: a desired ENI backend
/// that is absent and whose id is unknown is not added but listed in
/// [`GroupPlan::unresolved_eni_ips`].
pub fn plan_group(
    desired: &DesiredGroup,
    observed: Option<&ObservedGroup>,
    ledger: &DrainLedger,
    eni_ids: &HashMap<IpAddr, String>,
    config: PlanConfig,
    now: Timestamp,
) -> GroupPlan {
    plan_group_holding(
        desired,
        observed,
        ledger,
        eni_ids,
        &Holds::default(),
        config,
        now,
    )
}

/// [`plan_group`] with what else is known of the group ([`Holds`]).
///
/// Refused backends are left out: no step writes them, and a refused replacement counts
/// as one that cannot be added yet, so the make-before-break hold above keeps the leaving
/// backends serving when draining them would leave nothing with weight > 0.
///
/// Health: where a listener checks the group's backends, a backend takes traffic only once
/// reported `normal` (an added one is `unavailable` until its checks pass), so the hold
/// also keeps leaving backends that serve at their weight while draining them would leave
/// no backend reported `normal` with weight > 0; with no reading yet, every drain waits for
/// the first one. [`GroupPlan::held_for_health`] says so, and the caller plans again once
/// the reading changes.
pub fn plan_group_holding(
    desired: &DesiredGroup,
    observed: Option<&ObservedGroup>,
    ledger: &DrainLedger,
    eni_ids: &HashMap<IpAddr, String>,
    holds: &Holds,
    config: PlanConfig,
    now: Timestamp,
) -> GroupPlan {
    let held = &holds.refused;
    let health = &holds.health;
    let mut plan = GroupPlan::default();
    let owner = &desired.name;
    let window_end = |start: Timestamp| {
        start
            .checked_add(config.propagation + config.drain_window)
            .unwrap_or(Timestamp::MAX)
    };

    if desired.backends.is_empty() && !config.emptying {
        plan.warnings.push(format!(
            "group {owner} has no desired backends: every backend the agent owns in it will be \
             drained and removed; check the Service's endpoints and node eligibility"
        ));
    }

    let wanted = desired_by_key(desired, &mut plan.warnings);
    let present = observed_by_key(observed, &mut plan.warnings);
    let group_id = observed.map(|o| o.v_server_group_id.as_str());
    let started_at = |key: &BackendKey| group_id.and_then(|g| ledger.started_at(g, key));

    let mut adds = Vec::new();
    let mut raises = Vec::new();
    let mut lowers = Vec::new();
    let mut removes = Vec::new();
    let mut deadlines = Vec::new();
    let mut unresolved = Vec::new();
    // Held backends a step would have written; those desired active block drains.
    let mut skipped = 0usize;
    let mut blocked = 0usize;

    // Steps 1 and 2: desired backends.
    for (key, want) in &wanted {
        if held.contains(key) {
            let have = present.get(key);
            let serving = have.is_some_and(|h| h.weight != Weight::ZERO);
            if want.state == BackendState::Active && have.is_none_or(|h| h.weight != want.weight) {
                skipped += 1;
                blocked += usize::from(!serving);
            }
            continue;
        }
        let Some(have) = present.get(key) else {
            if want.state == BackendState::Active {
                match add_form(want, eni_ids, owner.as_str()) {
                    Some(backend) => adds.push(backend),
                    None => unresolved.extend(want.server_ip),
                }
            }
            continue;
        };
        if !owner.owns(&have.description) {
            plan.warnings.push(format!(
                "backend {key} is desired in group {owner} but the SLB holds it with the \
                 foreign Description {:?}; it is left alone",
                have.description
            ));
            continue;
        }
        if want.state == BackendState::Active {
            // `ignore-weight-update`: a member taking traffic keeps the weight it has.
            let kept = desired.keep_weights && have.weight != Weight::ZERO;
            if have.weight != want.weight && !kept {
                raises.push(written(have, want.weight, owner.as_str()));
            }
            if started_at(key).is_some() {
                plan.ledger.ended.push(key.clone());
            }
        }
    }

    // Steps 3 and 4: owned backends on their way out.
    for (key, have) in &present {
        let leaving = match wanted.get(key) {
            None => true,
            Some(want) => want.state == BackendState::Draining,
        };
        if !leaving || !owner.owns(&have.description) {
            continue;
        }
        if held.contains(key) {
            skipped += 1;
            continue;
        }
        if have.weight != Weight::ZERO {
            lowers.push(written(have, Weight::ZERO, owner.as_str()));
            continue;
        }
        match started_at(key) {
            None => {
                plan.ledger.started.push(DrainStart {
                    key: key.clone(),
                    started_at: now,
                    already_at_zero: true,
                });
                deadlines.push(window_end(now));
            }
            Some(start) if now >= window_end(start) => {
                removes.push(written(have, Weight::ZERO, owner.as_str()));
                plan.ledger.ended.push(key.clone());
            }
            Some(start) => deadlines.push(window_end(start)),
        }
    }

    // Make before break: when desired backends cannot be added yet (ENI ids unknown) and
    // draining now would leave nothing in the group with weight > 0, the leaving backends
    // keep serving (their pods are still alive: their drain has not even started) until a
    // later pass can add the replacements first.
    if (!unresolved.is_empty() || blocked > 0)
        && !lowers.is_empty()
        && !serving_after(&present, &adds, &raises, &lowers, health)
    {
        let why = if blocked > 0 {
            "their replacements are held out after the SLB refused them"
        } else {
            "their replacements cannot be added before their ENI ids are known"
        };
        plan.warnings.push(format!(
            "{} leaving backend(s) of group {owner} kept serving: {why}, and draining them \
             now would leave no backend with weight > 0",
            lowers.len()
        ));
        lowers.clear();
    }
    // Make before break, by health: no backend that takes traffic goes to weight 0 while
    // nothing the listeners report normal would be left to take it — when something is
    // to take over at all (not when the group empties: a scale to zero, a deleted
    // Service, a port removed).
    let replaced = !config.emptying && wanted.values().any(|w| w.state == BackendState::Active);
    if !lowers.is_empty() && replaced {
        let why = match health {
            GroupHealth::Unchecked => None,
            GroupHealth::Unread => Some("no health reading of the group is known yet"),
            GroupHealth::Normal(normal) => {
                let leaving_serves = lowers
                    .iter()
                    .filter_map(SlbBackend::key)
                    .any(|key| normal.contains(&key));
                (leaving_serves && !serving_after(&present, &adds, &raises, &lowers, health))
                    .then_some("no other backend is reported normal by the health check yet")
            }
        };
        if let Some(why) = why {
            plan.warnings.push(format!(
                "{} leaving backend(s) of group {owner} kept serving: {why}",
                lowers.len()
            ));
            plan.held_for_health = true;
            lowers.clear();
        }
    }
    if skipped > 0 {
        plan.warnings.push(format!(
            "{skipped} backend(s) of group {owner} left out of this plan: the SLB refused \
             them and they are held until their next retry"
        ));
    }
    for lowered in &lowers {
        if let Some(key) = lowered.key() {
            plan.ledger.started.push(DrainStart {
                key,
                started_at: now,
                already_at_zero: false,
            });
            deadlines.push(window_end(now));
        }
    }
    plan.ledger.started.sort_by(|a, b| a.key.cmp(&b.key));

    // Ledger entries for backends no longer owned in the group are forgotten.
    if let Some(group_id) = group_id {
        for (key, _) in ledger.group(group_id) {
            let owned_here = present
                .get(key)
                .is_some_and(|have| owner.owns(&have.description));
            if !owned_here {
                plan.ledger.ended.push(key.clone());
            }
        }
    }
    plan.ledger.ended.sort();
    plan.ledger.ended.dedup();

    let batch = config.max_batch.max(1);
    // A drain waits for nothing the group does not need to keep serving: with some
    // backend still at weight > 0 after the lowers, the adds can follow.
    plan.drains_first = config.drains_first
        && !adds.is_empty()
        && (!lowers.is_empty() || !removes.is_empty())
        && serving_after(&present, &[], &raises, &lowers, health);
    let (mut add_steps, mut weight_steps, mut remove_steps) = (Vec::new(), Vec::new(), Vec::new());
    push_batches(&mut add_steps, StepAction::Add, adds, batch);
    // Raises and restores go before drains so capacity is added before it is taken away.
    raises.extend(lowers);
    push_batches(&mut weight_steps, StepAction::SetWeight, raises, batch);
    push_batches(&mut remove_steps, StepAction::Remove, removes, batch);
    plan.steps = if plan.drains_first {
        [weight_steps, remove_steps, add_steps].concat()
    } else {
        [add_steps, weight_steps, remove_steps].concat()
    };

    plan.requeue_at = deadlines.into_iter().min();
    unresolved.sort();
    unresolved.dedup();
    if !unresolved.is_empty() {
        let shown: Vec<String> = unresolved.iter().take(5).map(ToString::to_string).collect();
        let more = unresolved.len().saturating_sub(shown.len());
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        plan.warnings.push(format!(
            "{} desired ENI backend(s) of group {owner} not added: no ENI id is known for their \
             IP yet ({}{more})",
            unresolved.len(),
            shown.join(", ")
        ));
    }
    plan.unresolved_eni_ips = unresolved;
    plan
}

/// True when some backend of the group takes traffic after the plan's adds, raises and
/// lowers: weight > 0 and, where the listeners check health, reported `normal` (an added
/// backend is not, yet). Foreign backends count: they carry traffic too.
fn serving_after(
    present: &BTreeMap<BackendKey, &SlbBackend>,
    adds: &[SlbBackend],
    raises: &[SlbBackend],
    lowers: &[SlbBackend],
    health: &GroupHealth,
) -> bool {
    let healthy = |key: Option<BackendKey>| match health {
        GroupHealth::Unchecked => true,
        GroupHealth::Unread => false,
        GroupHealth::Normal(normal) => key.is_some_and(|k| normal.contains(&k)),
    };
    // A backend whose weight changes is judged by its new weight (a desired weight of 0
    // is a lower too), the rest by the weight they have.
    let changed: Vec<BackendKey> = lowers
        .iter()
        .chain(raises)
        .filter_map(SlbBackend::key)
        .collect();
    let kept = present.iter().any(|(key, have)| {
        have.weight != Weight::ZERO && !changed.contains(key) && healthy(Some(key.clone()))
    });
    let added = adds
        .iter()
        .any(|b| b.weight != Weight::ZERO && *health == GroupHealth::Unchecked);
    let raised = raises
        .iter()
        .any(|b| b.weight != Weight::ZERO && healthy(b.key()));
    kept || added || raised
}

/// The desired backends by identity. A malformed backend (ECS without an id, ENI without
/// an IP) cannot be matched and is skipped with a warning rather than panicking.
fn desired_by_key<'a>(
    desired: &'a DesiredGroup,
    warnings: &mut Vec<String>,
) -> BTreeMap<BackendKey, &'a Backend> {
    let mut out = BTreeMap::new();
    for backend in &desired.backends {
        let key = match (backend.backend_type, &backend.server_id, backend.server_ip) {
            (BackendType::Ecs, Some(server_id), _) => BackendKey::Ecs {
                server_id: server_id.clone(),
                port: backend.port,
            },
            (BackendType::Eni, _, Some(server_ip)) => BackendKey::Eni {
                server_ip,
                port: backend.port,
            },
            _ => {
                warnings.push(format!(
                    "desired {} backend on port {} of group {} has no identity; skipped",
                    backend.backend_type, backend.port, desired.name
                ));
                continue;
            }
        };
        out.entry(key).or_insert(backend);
    }
    out
}

/// The observed backends by identity; ENI backends without an IP cannot be matched and
/// are left alone, and of duplicate entries the first counts.
fn observed_by_key<'a>(
    observed: Option<&'a ObservedGroup>,
    warnings: &mut Vec<String>,
) -> BTreeMap<BackendKey, &'a SlbBackend> {
    let mut out = BTreeMap::new();
    for backend in observed.map(|o| o.backends.as_slice()).unwrap_or_default() {
        let Some(key) = backend.key() else { continue };
        if out.contains_key(&key) {
            warnings.push(format!(
                "the SLB lists backend {key} twice in one group; only the first entry is used"
            ));
            continue;
        }
        out.insert(key, backend);
    }
    out
}

/// A desired backend as `AddVServerGroupBackendServers` takes it; `None` for an ENI
/// backend whose ENI id is unknown.
fn add_form(want: &Backend, eni_ids: &HashMap<IpAddr, String>, owner: &str) -> Option<SlbBackend> {
    let server_id = match want.backend_type {
        BackendType::Ecs => want.server_id.clone()?,
        BackendType::Eni => want
            .server_id
            .clone()
            .or_else(|| want.server_ip.and_then(|ip| eni_ids.get(&ip).cloned()))?,
    };
    Some(SlbBackend {
        server_id,
        server_ip: match want.backend_type {
            BackendType::Ecs => None,
            BackendType::Eni => want.server_ip,
        },
        port: want.port,
        weight: want.weight,
        backend_type: want.backend_type,
        description: owner.to_owned(),
    })
}

/// An observed backend as it will be after a write that sets `weight`.
fn written(have: &SlbBackend, weight: Weight, owner: &str) -> SlbBackend {
    SlbBackend {
        weight,
        description: owner.to_owned(),
        ..have.clone()
    }
}

fn push_batches(steps: &mut Vec<Step>, action: StepAction, backends: Vec<SlbBackend>, size: usize) {
    for chunk in backends.chunks(size) {
        steps.push(Step {
            action,
            backends: chunk.to_vec(),
        });
    }
}
