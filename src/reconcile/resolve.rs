//! Finding what a plan needs before it can be made: the group's id (named, found by
//! name, or created) and the ENI ids of pod IPs to add.

use std::net::IpAddr;

use jiff::Timestamp;

use super::executor::{lock, read_failure, Executor, Failure};
use crate::model::GroupTarget;
use crate::model::{BackendState, BackendType, DesiredGroup, SlbBackend};
use crate::slb::SlbApi;

/// ECS `DescribeNetworkInterfaces` takes at most 100 private IPs per call.
const ENI_LOOKUP_BATCH: usize = 100;
/// Longest wait before an IP without an ENI is looked up again.
const MAX_ENI_RETRY: std::time::Duration = std::time::Duration::from_secs(300);

impl<A: SlbApi + ?Sized> Executor<A> {
    /// The group's id: named by `vgroup-port`, found by its owner name, or created when
    /// there is something to add to it; with whether a listener forwards to it when the
    /// lookup listed the instance's groups (a group found or created by name that no
    /// listener uses gets no traffic, which the user must hear about).
    pub(super) async fn resolve_group(
        &self,
        target: &GroupTarget,
    ) -> Result<Option<(String, Option<bool>)>, Failure> {
        if let Some(id) = &target.desired.v_server_group_id {
            return Ok(Some((id.clone(), None)));
        }
        let name = target.desired.name.as_str();
        let cache_key = (target.load_balancer_id.clone(), name.to_owned());
        if let Some(id) = lock(&self.group_ids).get(&cache_key) {
            return Ok(Some((id.clone(), None)));
        }
        let groups = self
            .gate
            .retried("DescribeVServerGroups", || {
                self.api.list_vserver_groups(&target.load_balancer_id)
            })
            .await
            .map_err(read_failure)?;
        let (id, bound) = match groups.into_iter().find(|g| g.v_server_group_name == name) {
            Some(group) => (group.v_server_group_id, !group.listener_ports.is_empty()),
            None => {
                let wanted = target
                    .desired
                    .backends
                    .iter()
                    .any(|b| b.state == BackendState::Active);
                if !wanted {
                    return Ok(None);
                }
                let lock = self.gate.instance_lock(&target.load_balancer_id);
                let _guard = lock.lock().await;
                // Not retried as is: a lost answer could mean the group exists; the
                // re-plan lists the groups again first.
                let id = self
                    .gate
                    .once(
                        "CreateVServerGroup",
                        self.api
                            .create_vserver_group(&target.load_balancer_id, name),
                    )
                    .await
                    .map_err(|error| Failure {
                        error,
                        fatal: false,
                    })?;
                (id, false)
            }
        };
        lock(&self.group_ids).insert(cache_key, id.clone());
        Ok(Some((id, Some(bound))))
    }

    pub(super) fn forget_group(&self, target: &GroupTarget) {
        let key = (
            target.load_balancer_id.clone(),
            target.desired.name.as_str().to_owned(),
        );
        lock(&self.group_ids).remove(&key);
    }

    /// Looks up the ENI ids of desired ENI backends that must be added, in batches of
    /// 100 IPs, remembering them for later passes. An IP the lookup did not find is not
    /// asked for again before its backoff (10 s, doubling to 5 min) has passed: an IP
    /// that never gets an ENI (a pod outside the VPC's ENIs) costs a call now and then,
    /// not every pass.
    pub(super) async fn resolve_eni_ids(
        &self,
        desired: &DesiredGroup,
        present: &[SlbBackend],
    ) -> Result<(), Failure> {
        let now = self.clock.now();
        let missing: Vec<IpAddr> = {
            let known = lock(&self.eni_ids);
            let misses = lock(&self.eni_misses);
            desired
                .backends
                .iter()
                .filter(|b| {
                    b.backend_type == BackendType::Eni
                        && b.state == BackendState::Active
                        && b.server_id.is_none()
                })
                .filter_map(|b| b.server_ip.map(|ip| (ip, b.port)))
                .filter(|(ip, port)| {
                    !known.contains_key(ip)
                        && misses.get(ip).is_none_or(|m| now >= m.retry_at)
                        && !present
                            .iter()
                            .any(|p| p.server_ip == Some(*ip) && p.port == *port)
                })
                .map(|(ip, _)| ip)
                .collect()
        };
        for chunk in missing.chunks(ENI_LOOKUP_BATCH) {
            let found = self
                .gate
                .retried("DescribeNetworkInterfaces", || {
                    self.api.resolve_eni_ids(chunk)
                })
                .await
                .map_err(read_failure)?;
            let mut misses = lock(&self.eni_misses);
            for ip in chunk {
                if found.contains_key(ip) {
                    misses.remove(ip);
                } else {
                    let strikes = misses.get(ip).map_or(0, |m| m.strikes).saturating_add(1);
                    let wait = self
                        .config
                        .unresolved_eni_retry
                        .saturating_mul(1 << strikes.saturating_sub(1).min(16))
                        .min(MAX_ENI_RETRY);
                    misses.insert(
                        *ip,
                        EniMiss {
                            strikes,
                            retry_at: now.checked_add(wait).unwrap_or(Timestamp::MAX),
                        },
                    );
                }
            }
            drop(misses);
            lock(&self.eni_ids).extend(found);
        }
        Ok(())
    }

    /// When the next of `ips` may be looked up again.
    pub(super) fn eni_retry_at(&self, ips: &[IpAddr]) -> Option<Timestamp> {
        let misses = lock(&self.eni_misses);
        ips.iter()
            .filter_map(|ip| misses.get(ip).map(|m| m.retry_at))
            .min()
    }
}

/// An IP the ENI lookup did not find.
#[derive(Debug, Clone, Copy)]
pub(super) struct EniMiss {
    strikes: u32,
    retry_at: Timestamp,
}
