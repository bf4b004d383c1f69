//! Cleanup of a Service that is deleted or leaves the agent's management: every backend
//! the agent wrote for it is drained (weight 0, window) and removed before its cleanup
//! finalizer is released.
//!
//! Where those backends are is taken from what the agent did, never from the Service's
//! annotations at the time of deletion (they may be invalid, or name another instance
//! than the one the backends were written to): the groups of its last plan, and after a
//! restart (no plan in memory) the SLB itself, whose owner Descriptions name the
//! Service, namespace, port and cluster of every backend the agent wrote.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;

use super::control::Control;
use super::messages::Msg;
use crate::annotations;
use crate::index::ServiceRef;
use crate::k8s::events::AgentEvent;
use crate::model::RetiredGroup;
use crate::model::{DesiredGroup, OwnerDescription, Protocol};
use crate::reconcile::{GroupDeletion, GroupRef, GroupTarget, Lane, OwnedGroup, ReconcileError};

/// How long after a failed search of the SLB it is tried again.
const FIND_RETRY: Duration = Duration::from_secs(15);

/// Where the cleanup of one Service stands.
#[derive(Debug)]
pub(super) enum Cleaning {
    /// The SLB is being searched for groups that hold the Service's backends.
    Finding,
    /// These groups are being emptied.
    Emptying(BTreeMap<GroupRef, Emptied>),
    /// Every group is empty: groups the agent created are being deleted, then the
    /// finalizer released.
    Finishing,
}

/// One group of a Service being cleaned up.
#[derive(Debug, Clone)]
pub(super) struct Emptied {
    /// A pass found no owned backend left.
    pub done: bool,
    pub load_balancer_id: String,
    /// The group's id once a pass resolved it.
    pub group_id: Option<String>,
}

/// The outcome of a search of the SLB, for the control loop.
#[derive(Debug)]
pub struct Found {
    pub service: ServiceRef,
    pub load_balancer_id: String,
    pub drain_window: Duration,
    pub result: Result<Vec<OwnedGroup>, ReconcileError>,
}

impl Control {
    /// Starts the cleanup of `r`, or asks for the passes of one under way.
    pub(super) fn clean_up(&mut self, r: &ServiceRef, svc: &Service) {
        match self.state.cleaning.get(r) {
            Some(Cleaning::Finding) => {}
            // A release that failed is tried again (it is idempotent).
            Some(Cleaning::Finishing) => self.release(r),
            Some(Cleaning::Emptying(groups)) => {
                let groups: Vec<GroupRef> = groups.keys().cloned().collect();
                for group in groups {
                    self.trigger_group(group, Lane::Pod);
                }
            }
            None => self.start_cleanup(r, svc),
        }
    }

    fn start_cleanup(&mut self, r: &ServiceRef, svc: &Service) {
        let planned = self.state.groups.planned_of(r);
        if !planned.is_empty() {
            tracing::info!(service = %r, groups = planned.len(), "draining and removing the Service's backends (groups of its last plan)");
            self.empty_groups(r, planned);
            return;
        }
        let Some(load_balancer_id) = named_load_balancer(svc) else {
            if self.retired_of(r) == 0 {
                tracing::info!(service = %r, "no SLB instance planned or named; nothing to clean up, releasing the finalizer");
                self.release(r);
            }
            return;
        };
        tracing::info!(service = %r, %load_balancer_id, "searching the SLB for the Service's backends (none planned since the agent started)");
        self.state.cleaning.insert(r.clone(), Cleaning::Finding);
        let executor = self.executor.clone();
        let tx = self.tx.clone();
        let cluster_id = self.planner.cluster_id.clone();
        let drain_window = drain_window(svc, self.default_drain_secs);
        let service = r.clone();
        self.state.writes.spawn(async move {
            let result = executor
                .find_owned_groups(
                    &load_balancer_id,
                    &service.namespace,
                    &service.name,
                    &cluster_id,
                )
                .await;
            let _ = tx.send(Msg::Found(Found {
                service,
                load_balancer_id,
                drain_window,
                result,
            }));
        });
    }

    /// Empties the groups a search of the SLB found, or releases the finalizer when
    /// there are none.
    pub(super) fn on_found(&mut self, found: Found) {
        let r = found.service;
        if !matches!(self.state.cleaning.get(&r), Some(Cleaning::Finding)) {
            return; // Forgotten or managed again meanwhile.
        }
        match found.result {
            Ok(groups) if groups.is_empty() => {
                self.state.cleaning.remove(&r);
                tracing::info!(service = %r, load_balancer_id = %found.load_balancer_id, "no backend of the Service on its SLB; releasing the finalizer");
                self.release(&r);
            }
            Ok(groups) => {
                let cluster_id = self.planner.cluster_id.clone();
                let mut targets = Vec::new();
                for (n, group) in groups.into_iter().enumerate() {
                    let port = group.service_port;
                    // One key per port as planned; a second group of the same port
                    // (moved before a restart) is keyed by its identity.
                    let retired = targets
                        .iter()
                        .any(|(g, _): &(GroupRef, GroupTarget)| g.service_port == port)
                        .then(|| {
                            RetiredGroup::new(&group.load_balancer_id, &group.v_server_group_id)
                        });
                    let key = GroupRef {
                        retired,
                        ..GroupRef::new(r.clone(), port)
                    };
                    tracing::debug!(service = %r, n, port, group = %group.v_server_group_id, owned = group.owned_backends, "found a group of the Service");
                    targets.push((
                        key,
                        GroupTarget {
                            load_balancer_id: group.load_balancer_id,
                            desired: DesiredGroup {
                                service_port: port,
                                protocol: Protocol::Tcp,
                                v_server_group_id: Some(group.v_server_group_id),
                                name: OwnerDescription::new(
                                    port,
                                    &r.name,
                                    &r.namespace,
                                    &cluster_id,
                                ),
                                backends: Vec::new(),
                                keep_weights: false,
                            },
                            drain_window: found.drain_window,
                            emptying: true,
                        },
                    ));
                }
                tracing::info!(service = %r, groups = targets.len(), "draining and removing the Service's backends (found on the SLB)");
                self.empty_groups(&r, targets);
            }
            Err(err) if err.load_balancer_gone() => {
                self.state.cleaning.remove(&r);
                tracing::info!(service = %r, error = %err, "the Service's SLB instance is gone; releasing the finalizer");
                self.release(&r);
            }
            Err(err) => {
                self.state.cleaning.remove(&r);
                tracing::warn!(service = %r, error = %err, retry_secs = FIND_RETRY.as_secs(), "cannot search the SLB for the Service's backends; the finalizer stays");
                if err.class() == crate::slb::ErrorClass::Permanent {
                    self.emit(&r, AgentEvent::slb_error(&err.source));
                }
                let tx = self.tx.clone();
                self.state.writes.spawn(async move {
                    tokio::time::sleep(FIND_RETRY).await;
                    let _ = tx.send(Msg::Recheck(r));
                });
            }
        }
    }

    fn empty_groups(&mut self, r: &ServiceRef, targets: Vec<(GroupRef, GroupTarget)>) {
        let mut emptying = self.state.groups.emptying();
        for (group, target) in &targets {
            emptying.insert(group.clone(), target.clone());
        }
        drop(emptying);
        let groups = targets
            .into_iter()
            .map(|(g, t)| {
                let emptied = Emptied {
                    done: false,
                    load_balancer_id: t.load_balancer_id,
                    group_id: t.desired.v_server_group_id,
                };
                (g, emptied)
            })
            .collect();
        self.state
            .cleaning
            .insert(r.clone(), Cleaning::Emptying(groups));
        self.clean_up_passes(r);
    }

    fn clean_up_passes(&mut self, r: &ServiceRef) {
        if let Some(Cleaning::Emptying(groups)) = self.state.cleaning.get(r) {
            let groups: Vec<GroupRef> = groups.keys().cloned().collect();
            for group in groups {
                self.trigger_group(group, Lane::Pod);
            }
        }
    }

    /// Notes a pass over a group of a Service being cleaned up; true when the group was
    /// one of its cleanup groups.
    pub(super) fn cleanup_pass(
        &mut self,
        r: &ServiceRef,
        group: &GroupRef,
        group_id: Option<&str>,
        owned_left: bool,
    ) -> bool {
        let Some(Cleaning::Emptying(groups)) = self.state.cleaning.get_mut(r) else {
            return false;
        };
        let Some(emptied) = groups.get_mut(group) else {
            return false;
        };
        emptied.done = !owned_left;
        if let Some(id) = group_id {
            emptied.group_id = Some(id.to_owned());
        }
        self.maybe_release(r);
        true
    }

    /// Releases the finalizer once every cleanup group and every group a moved or
    /// removed port left behind is empty.
    pub(super) fn maybe_release(&mut self, r: &ServiceRef) {
        let Some(Cleaning::Emptying(groups)) = self.state.cleaning.get(r) else {
            return;
        };
        if !groups.values().all(|g| g.done) || self.retired_of(r) > 0 {
            return;
        }
        tracing::info!(service = %r, "every owned backend removed");
        let created: Vec<(String, String)> = groups
            .values()
            .filter_map(|g| Some((g.load_balancer_id.clone(), g.group_id.clone()?)))
            .collect();
        self.state.cleaning.insert(r.clone(), Cleaning::Finishing);
        let executor = self.executor.clone();
        let client = self.client.clone();
        let service = r.clone();
        self.state.writes.spawn(async move {
            for (load_balancer_id, group_id) in created {
                delete_if_unused(&executor, &service, &load_balancer_id, &group_id).await;
            }
            super::finalizer::release_finalizer(client, &service).await;
        });
    }

    /// Deletes a group a moved or removed port left, once emptied, if the agent created it.
    pub(super) fn delete_retired(
        &mut self,
        r: &ServiceRef,
        load_balancer_id: &str,
        group_id: &str,
    ) {
        let executor = self.executor.clone();
        let (service, lb, id) = (r.clone(), load_balancer_id.to_owned(), group_id.to_owned());
        self.state.writes.spawn(async move {
            delete_if_unused(&executor, &service, &lb, &id).await;
        });
    }

    /// Groups of `r` still being emptied after a port moved or was removed.
    fn retired_of(&self, r: &ServiceRef) -> usize {
        self.state
            .groups
            .retired
            .iter()
            .filter(|g| &g.service == r)
            .count()
    }
}

async fn delete_if_unused(
    executor: &crate::reconcile::Executor<dyn crate::slb::SlbApi>,
    service: &ServiceRef,
    load_balancer_id: &str,
    group_id: &str,
) {
    match executor.delete_if_unused(load_balancer_id, group_id).await {
        Ok(GroupDeletion::Deleted) => {
            tracing::info!(%service, %load_balancer_id, %group_id, "deleted the empty vServer group the agent had created");
        }
        Ok(GroupDeletion::Kept(why)) => {
            tracing::debug!(%service, %load_balancer_id, %group_id, why, "vServer group kept");
        }
        Err(err) => {
            tracing::warn!(%service, %load_balancer_id, %group_id, error = %err, "cannot delete the empty vServer group the agent had created; delete it by hand if it stays empty");
        }
    }
}

/// The SLB instance id the Service's `id` annotation names, as written (whatever its
/// other annotations say).
fn named_load_balancer(svc: &Service) -> Option<String> {
    let id = svc.metadata.annotations.as_ref()?;
    let id = annotations::value(id, annotations::LB_ID)?;
    (!id.contains(char::is_whitespace)).then(|| id.to_owned())
}

/// The Service's drain window when its annotations say one, else the default (a wrong
/// value errs towards the longer default, never a shorter drain).
fn drain_window(svc: &Service, default_secs: u32) -> Duration {
    let empty = BTreeMap::new();
    let secs = annotations::parse(svc.metadata.annotations.as_ref().unwrap_or(&empty))
        .map(|spec| spec.drain_window_secs(default_secs))
        .unwrap_or(default_secs);
    Duration::from_secs(u64::from(secs))
}
