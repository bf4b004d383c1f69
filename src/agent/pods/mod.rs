//! Pod side of the agent: pod finalizer, readiness gates, drained condition, drain journal.
//!
//! A keyed reconciler over pods ([`reconciler`]): watch events, reconcile passes and drain
//! starts name pods; each reconcile gathers facts from the cluster index and the SLB
//! members last seen ([`lifecycle`], [`book`]), decides purely ([`step`], [`decide`]) and
//! writes ([`writer`]); its next wake-up is the pod's next deadline.
use crate::model::StoredPod;
use crate::reconcile::PassObserver;
use kube::runtime::watcher;
use std::sync::Arc;

pub mod allowance;
pub mod args;
mod book;
pub mod decide;
mod drain_annotation;
pub mod health_gate;
mod lifecycle;
mod reconciler;
pub mod step;
#[cfg(test)]
mod tests;
pub mod waiting;
mod writer;

pub use drain_annotation::ledger_from_pods;
pub use lifecycle::{PodLifecycle, PodLifecycleConfig, PodStores};

/// What the control loop needs from the pod side.
pub trait PodSide: PassObserver {
    /// Every pod watch event, after the reflector store applied it.
    fn pod_event(&self, event: &watcher::Event<StoredPod>);
    /// Called once after the initial lists, before the first reconcile pass, with the
    /// executor so drain start times persisted on pods can be restored.
    fn restore(&self, executor: &dyn crate::reconcile::LedgerRestore);
    /// The journal the executor should also tell about drains (the pod side persists
    /// ENI drain start times on pods), if any.
    fn journal(&self) -> Option<Arc<dyn crate::reconcile::DrainJournal>> {
        None
    }
    /// The Services some pod waits on now, with the lane their passes belong in (see
    /// [`waiting`]).
    fn waiting_services(
        &self,
    ) -> std::collections::BTreeMap<crate::index::ServiceRef, crate::slb::budget::Lane> {
        std::collections::BTreeMap::new()
    }
}

/// A pod side that does nothing (Cluster-only setups and tests of the control loop).
pub struct NoPods;
impl PassObserver for NoPods {
    fn pass_finished(
        &self,
        _: &crate::reconcile::GroupRef,
        _: &crate::reconcile::GroupTarget,
        _: &Result<crate::reconcile::PassOutcome, crate::reconcile::ReconcileError>,
    ) {
    }
}
impl PodSide for NoPods {
    fn pod_event(&self, _: &watcher::Event<StoredPod>) {}
    fn restore(&self, _: &dyn crate::reconcile::LedgerRestore) {}
}
pub type SharedPodSide = Arc<dyn PodSide>;
