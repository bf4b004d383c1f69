//! Executor tests against an in-memory `SlbApi`, under tokio's paused clock.

mod burst;
mod executor;
mod lanes;
mod quarantine;
mod scheduler;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::{Clock, Executor, ExecutorConfig, GroupTarget, TokioClock};
use crate::model::{
    Backend, BackendState, BackendType, DesiredGroup, ObservedGroup, OwnerDescription, Protocol,
    SlbBackend, Weight,
};
use crate::reconcile::memory::MemorySlb;

pub(super) const WINDOW: Duration = Duration::from_secs(30);

pub(super) fn mk_t0() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

pub(super) fn mk_owner(port: u16) -> OwnerDescription {
    OwnerDescription::new(port, "web", "default", "c1")
}

pub(super) fn mk_ecs(n: u32, weight: u32) -> Backend {
    Backend::ecs(
        format!("i-{n:03}"),
        30080,
        Weight::new(weight).unwrap(),
        BackendState::Active,
    )
}

pub(super) fn mk_slb(n: u32, weight: u32, owner: &OwnerDescription) -> SlbBackend {
    SlbBackend {
        server_id: format!("i-{n:03}"),
        server_ip: None,
        port: 30080,
        weight: Weight::new(weight).unwrap(),
        backend_type: BackendType::Ecs,
        description: owner.as_str().to_owned(),
    }
}

/// Desired group `rsp-<port>` (named by vgroup-port) on `lb`.
pub(super) fn mk_target(lb: &str, port: u16, mut backends: Vec<Backend>) -> GroupTarget {
    backends.sort_by_key(|b| b.key());
    GroupTarget {
        load_balancer_id: lb.to_owned(),
        desired: DesiredGroup {
            service_port: port,
            protocol: Protocol::Tcp,
            v_server_group_id: Some(format!("rsp-{port}")),
            name: mk_owner(port),
            backends,
            keep_weights: false,
        },
        drain_window: WINDOW,
        emptying: false,
    }
}

pub(super) fn mk_group(lb: &str, port: u16, backends: Vec<SlbBackend>) -> ObservedGroup {
    ObservedGroup {
        v_server_group_id: format!("rsp-{port}"),
        v_server_group_name: mk_owner(port).as_str().to_owned(),
        load_balancer_id: lb.to_owned(),
        backends,
    }
}

/// Generous limits so that tests that are not about them are not slowed by them.
pub(super) fn mk_config() -> ExecutorConfig {
    let mut config = ExecutorConfig::default();
    config.limits.qps = 1000.0;
    config.limits.burst = std::num::NonZeroU32::new(1000).unwrap();
    config
}

/// Runs `pass` as the scheduler does: as a pass of `default/web` in `lane`. The API
/// budget keeps its burst for the pod-facing lanes, so a pass timed to the millisecond
/// runs in one of them.
pub(super) fn in_lane<F: std::future::Future>(
    lane: crate::slb::budget::Lane,
    pass: F,
) -> impl std::future::Future<Output = F::Output> {
    use crate::slb::budget::{Caller, CALLER};
    CALLER.scope(Caller::new(lane, "default/web".into()), pass)
}

pub(super) fn mk_executor(api: &Arc<MemorySlb>, config: ExecutorConfig) -> Executor<MemorySlb> {
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(mk_t0()));
    Executor::new(api.clone(), clock, config)
}

/// (serverId, weight) of every backend of a group, in SLB order.
pub(super) fn weights(group: &ObservedGroup) -> Vec<(String, u8)> {
    let mut out: Vec<_> = group
        .backends
        .iter()
        .map(|b| (b.server_id.clone(), b.weight.get()))
        .collect();
    out.sort();
    out
}

pub(super) fn ws(list: &[(&str, u8)]) -> Vec<(String, u8)> {
    list.iter().map(|(s, w)| ((*s).to_owned(), *w)).collect()
}
