//! Unit tests of the step planner, with `mk_*` fixtures.

mod batching;
mod health;
mod held;
mod listener;
mod make_before_break;
mod properties;
mod rules;
mod state;
mod warm_up;
mod warming;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use jiff::Timestamp;

use super::{plan_group, DrainLedger, GroupPlan, PlanConfig, Step, StepAction};
use crate::model::{
    Backend, BackendState, BackendType, DesiredGroup, ObservedGroup, OwnerDescription, Protocol,
    SlbBackend, Weight,
};

pub(super) const GROUP: &str = "rsp-web";
pub(super) const FOREIGN: &str = "k8s/80/web/default/other-cluster";
pub(super) const WINDOW: Duration = Duration::from_secs(30);

pub(super) fn owner() -> OwnerDescription {
    OwnerDescription::new(80, "web", "default", "c1")
}

pub(super) fn mk_ts(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

pub(super) fn mk_w(w: u32) -> Weight {
    Weight::new(w).unwrap()
}

pub(super) fn mk_ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A desired ECS backend `i-<n>` on port 30080.
pub(super) fn mk_ecs(n: u32, weight: u32, state: BackendState) -> Backend {
    Backend::ecs(format!("i-{n:03}"), 30080, mk_w(weight), state)
}

/// A desired ENI backend `10.0.<n/256>.<n%256>` on port 8080.
pub(super) fn mk_eni(n: u32, weight: u32, state: BackendState) -> Backend {
    Backend::eni(mk_ip(&mk_pod_ip(n)), 8080, mk_w(weight), state)
}

pub(super) fn mk_pod_ip(n: u32) -> String {
    format!("10.0.{}.{}", n / 256, n % 256)
}

pub(super) fn mk_desired(mut backends: Vec<Backend>) -> DesiredGroup {
    backends.sort_by_key(|b| b.key());
    DesiredGroup {
        service_port: 80,
        protocol: Protocol::Tcp,
        v_server_group_id: Some(GROUP.to_owned()),
        name: owner(),
        backends,
        keep_weights: false,
    }
}

/// An ECS backend as the SLB lists it, with the given Description.
pub(super) fn mk_slb_ecs(n: u32, weight: u32, description: &str) -> SlbBackend {
    SlbBackend {
        server_id: format!("i-{n:03}"),
        server_ip: None,
        port: 30080,
        weight: mk_w(weight),
        backend_type: BackendType::Ecs,
        description: description.to_owned(),
    }
}

/// An owned ECS backend as the SLB lists it.
pub(super) fn mk_owned(n: u32, weight: u32) -> SlbBackend {
    mk_slb_ecs(n, weight, owner().as_str())
}

pub(super) fn mk_slb_eni(n: u32, weight: u32, description: &str) -> SlbBackend {
    SlbBackend {
        server_id: format!("eni-{n:03}"),
        server_ip: Some(mk_ip(&mk_pod_ip(n))),
        port: 8080,
        weight: mk_w(weight),
        backend_type: BackendType::Eni,
        description: description.to_owned(),
    }
}

pub(super) fn mk_observed(backends: Vec<SlbBackend>) -> ObservedGroup {
    ObservedGroup {
        v_server_group_id: GROUP.to_owned(),
        v_server_group_name: owner().as_str().to_owned(),
        load_balancer_id: "lb-1".to_owned(),
        backends,
    }
}

/// A ledger with the given ECS backends' drains started at `mk_ts(secs)`.
pub(super) fn mk_ledger(entries: &[(u32, i64)]) -> DrainLedger {
    let mut ledger = DrainLedger::new();
    for (n, secs) in entries {
        let key = mk_owned(*n, 0).key().unwrap();
        ledger.start(GROUP, key, mk_ts(*secs));
    }
    ledger
}

pub(super) fn mk_plan(
    desired: &DesiredGroup,
    observed: &ObservedGroup,
    ledger: &DrainLedger,
    now: Timestamp,
) -> GroupPlan {
    plan_group(
        desired,
        Some(observed),
        ledger,
        &HashMap::new(),
        PlanConfig::new(WINDOW),
        now,
    )
}

/// `(action, [(serverId, weight)])` per step: what a reader of the plan checks.
pub(super) fn summary(steps: &[Step]) -> Vec<(StepAction, Vec<(String, u8)>)> {
    steps
        .iter()
        .map(|s| {
            (
                s.action,
                s.backends
                    .iter()
                    .map(|b| (b.server_id.clone(), b.weight.get()))
                    .collect(),
            )
        })
        .collect()
}

pub(super) fn ids(list: &[(&str, u8)]) -> Vec<(String, u8)> {
    list.iter().map(|(id, w)| ((*id).to_owned(), *w)).collect()
}
