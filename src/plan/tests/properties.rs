//! Properties that must hold for any desired/observed/ledger combination.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::model::{BackendKey, BackendState};

#[derive(Debug, Clone)]
struct Slot {
    desired: Option<(BackendState, u32)>,
    /// (weight, owned)
    observed: Option<(u32, bool)>,
    /// drain start, seconds relative to now
    ledger: Option<i64>,
}

fn slot() -> impl Strategy<Value = Slot> {
    let desired = prop_oneof![
        Just(None),
        (0u32..=100).prop_map(|w| Some((BackendState::Active, w))),
        Just(Some((BackendState::Draining, 0))),
    ];
    let observed = prop_oneof![
        Just(None),
        (
            prop_oneof![Just(0u32), 0u32..=100],
            prop::bool::weighted(0.75)
        )
            .prop_map(Some),
    ];
    let ledger = prop::option::of(-120i64..=120);
    (desired, observed, ledger).prop_map(|(desired, observed, ledger)| Slot {
        desired,
        observed,
        ledger,
    })
}

struct Case {
    desired: DesiredGroup,
    observed: ObservedGroup,
    ledger: DrainLedger,
    config: PlanConfig,
}

fn build(slots: &[Slot], eni: bool, window: u64, propagation: u64, max_batch: usize) -> Case {
    let mut desired = Vec::new();
    let mut observed = Vec::new();
    let mut ledger = DrainLedger::new();
    for (i, s) in slots.iter().enumerate() {
        let n = i as u32;
        if let Some((state, w)) = s.desired {
            desired.push(if eni {
                mk_eni(n, w, state)
            } else {
                mk_ecs(n, w, state)
            });
        }
        if let Some((w, owned)) = s.observed {
            let desc = if owned {
                owner().as_str().to_owned()
            } else {
                FOREIGN.to_owned()
            };
            observed.push(if eni {
                mk_slb_eni(n, w, &desc)
            } else {
                mk_slb_ecs(n, w, &desc)
            });
        }
        if let Some(offset) = s.ledger {
            let key = if eni {
                mk_slb_eni(n, 0, "")
            } else {
                mk_slb_ecs(n, 0, "")
            }
            .key()
            .unwrap();
            ledger.start(GROUP, key, mk_ts(offset));
        }
    }
    Case {
        desired: mk_desired(desired),
        observed: mk_observed(observed),
        ledger,
        config: PlanConfig {
            drain_window: Duration::from_secs(window),
            propagation: Duration::from_secs(propagation),
            max_batch,
            emptying: false,
            drains_first: false,
        },
    }
}

fn eni_ids(n: usize) -> HashMap<std::net::IpAddr, String> {
    (0..n as u32)
        .map(|i| (mk_ip(&mk_pod_ip(i)), format!("eni-{i:03}")))
        .collect()
}

proptest! {
    #[test]
    fn plans_never_remove_early_touch_foreign_or_write_no_ops(
        slots in prop::collection::vec(slot(), 0..60),
        eni in any::<bool>(),
        window in 0u64..90,
        propagation in 0u64..20,
        max_batch in 1usize..=20,
        drains_first in any::<bool>(),
    ) {
        let mut case = build(&slots, eni, window, propagation, max_batch);
        case.config.drains_first = drains_first;
        let now = mk_ts(0);
        let plan = plan_group(&case.desired, Some(&case.observed), &case.ledger,
            &eni_ids(slots.len()), case.config, now);
        prop_assert!(drains_first || !plan.drains_first);
        let observed: BTreeMap<BackendKey, &SlbBackend> =
            case.observed.backends.iter().map(|b| (b.key().unwrap(), b)).collect();
        let mut seen = std::collections::BTreeSet::new();
        let mut removing = false;
        let mut adding = false;
        // Make before break, step by step: a group that serves after the plan serves
        // after each of its steps.
        let mut weights: BTreeMap<BackendKey, Weight> =
            observed.iter().map(|(k, b)| (k.clone(), b.weight)).collect();
        let mut serving_each_step = Vec::new();
        for step in &plan.steps {
            prop_assert!(!step.backends.is_empty() && step.backends.len() <= max_batch);
            if plan.drains_first {
                // Weight changes, removals, then adds.
                match step.action {
                    StepAction::Add => adding = true,
                    StepAction::Remove => prop_assert!(!adding, "a removal after an add"),
                    StepAction::SetWeight => {
                        prop_assert!(!adding && !removing, "a weight change after an add or removal")
                    }
                }
                removing |= step.action == StepAction::Remove;
            } else if step.action == StepAction::Remove {
                removing = true;
            } else {
                prop_assert!(!removing, "a non-remove step after a remove step");
            }
            for b in &step.backends {
                let key = b.key().unwrap();
                match step.action {
                    StepAction::Remove => weights.remove(&key),
                    _ => weights.insert(key, b.weight),
                };
            }
            serving_each_step.push(weights.values().any(|w| *w != Weight::ZERO));
            for b in &step.backends {
                let key = b.key().unwrap();
                prop_assert!(seen.insert(key.clone()), "{key} written twice in one plan");
                prop_assert!(owner().owns(&b.description));
                let have = observed.get(&key);
                if let Some(have) = have {
                    prop_assert!(owner().owns(&have.description), "foreign {key} touched");
                }
                match step.action {
                    StepAction::Add => prop_assert!(have.is_none(), "add of present {key}"),
                    StepAction::SetWeight => {
                        let have = have.expect("setWeight of an absent backend");
                        prop_assert_ne!(have.weight, b.weight, "no-op weight for {}", key);
                    }
                    StepAction::Remove => {
                        let have = have.expect("remove of an absent backend");
                        prop_assert_eq!(have.weight, Weight::ZERO);
                        let start = case.ledger.started_at(GROUP, &key)
                            .expect("removal without a ledger entry");
                        let due = case.config.propagation + case.config.drain_window;
                        prop_assert!(now >= start.checked_add(due).unwrap());
                        let wanted_active = case.desired.backends.iter()
                            .any(|d| d.key() == key && d.state == BackendState::Active);
                        prop_assert!(!wanted_active, "removal of desired active {key}");
                    }
                }
            }
        }
        if serving_each_step.last() == Some(&true) {
            prop_assert!(serving_each_step.iter().all(|s| *s),
                "a step leaves nothing serving: {:?}", plan.steps);
        }
        // No drain is forgotten: an owned backend that stays on its way out is looked at again.
        let removed: Vec<BackendKey> = plan.steps.iter()
            .filter(|s| s.action == StepAction::Remove)
            .flat_map(|s| s.backends.iter().filter_map(SlbBackend::key))
            .collect();
        let pending = case.observed.backends.iter().any(|b| {
            let key = b.key().unwrap();
            owner().owns(&b.description)
                && !removed.contains(&key)
                && !case.desired.backends.iter()
                    .any(|d| d.key() == key && d.state == BackendState::Active)
        });
        prop_assert_eq!(plan.requeue_at.is_some(), pending);
        if let Some(at) = plan.requeue_at {
            prop_assert!(at >= now);
        }
    }

    /// Running plans (each pass applies the steps, then time moves past the next deadline)
    /// converges on the desired state and leaves foreign backends as they were.
    #[test]
    fn repeated_passes_converge(
        slots in prop::collection::vec(slot(), 0..40),
        eni in any::<bool>(),
        window in 0u64..90,
        propagation in 0u64..20,
    ) {
        let case = build(&slots, eni, window, propagation, 20);
        let ids = eni_ids(slots.len());
        let mut group = case.observed.clone();
        let mut ledger = case.ledger.clone();
        let mut now = mk_ts(0);
        let foreign_before: Vec<SlbBackend> = group.backends.iter()
            .filter(|b| !owner().owns(&b.description)).cloned().collect();
        for _ in 0..200 {
            let plan = plan_group(&case.desired, Some(&group), &ledger, &ids, case.config, now);
            if plan.steps.is_empty() && plan.requeue_at.is_none() {
                break;
            }
            for step in &plan.steps {
                for b in &step.backends {
                    let key = b.key();
                    match step.action {
                        StepAction::Add => group.backends.push(b.clone()),
                        StepAction::SetWeight => {
                            let slot = group.backends.iter_mut().find(|h| h.key() == key).unwrap();
                            *slot = b.clone();
                        }
                        StepAction::Remove => group.backends.retain(|h| h.key() != key),
                    }
                }
            }
            ledger.apply(GROUP, &plan.ledger);
            now = plan.requeue_at.map_or(now, |at| at.max(now))
                .checked_add(Duration::from_secs(1)).unwrap();
        }
        let plan = plan_group(&case.desired, Some(&group), &ledger, &ids, case.config, now);
        prop_assert!(plan.steps.is_empty(), "not converged: {:?}", plan.steps);
        let foreign_after: Vec<SlbBackend> = group.backends.iter()
            .filter(|b| !owner().owns(&b.description)).cloned().collect();
        prop_assert_eq!(foreign_before, foreign_after);
        for d in &case.desired.backends {
            let have = group.backends.iter().find(|h| h.key() == Some(d.key()));
            match d.state {
                BackendState::Active => {
                    let have = have.expect("desired active backend present");
                    if owner().owns(&have.description) {
                        prop_assert_eq!(have.weight, d.weight);
                    }
                }
                BackendState::Draining => prop_assert!(
                    have.is_none_or(|h| !owner().owns(&h.description)),
                    "draining backend not removed"
                ),
            }
        }
    }
}
