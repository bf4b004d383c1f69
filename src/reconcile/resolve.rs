//! Finding what a plan needs before it can be made: the group's id (named, found by
//! name, or created) and the ENI ids of pod IPs to add.

use std::net::IpAddr;

use super::executor::{lock, read_failure, Executor, Failure, GroupTarget};
use crate::model::{BackendState, BackendType, DesiredGroup, SlbBackend};
use crate::slb::SlbApi;

/// ECS `DescribeNetworkInterfaces` takes at most 100 private IPs per call.
const ENI_LOOKUP_BATCH: usize = 100;

impl<A: SlbApi + ?Sized> Executor<A> {
    /// The group's id: named by `vgroup-port`, found by its owner name, or created when
    /// there is something to add to it.
    pub(super) async fn resolve_group(
        &self,
        target: &GroupTarget,
    ) -> Result<Option<String>, Failure> {
        if let Some(id) = &target.desired.v_server_group_id {
            return Ok(Some(id.clone()));
        }
        let name = target.desired.name.as_str();
        let cache_key = (target.load_balancer_id.clone(), name.to_owned());
        if let Some(id) = lock(&self.group_ids).get(&cache_key) {
            return Ok(Some(id.clone()));
        }
        let groups = self
            .gate
            .retried("DescribeVServerGroups", || {
                self.api.list_vserver_groups(&target.load_balancer_id)
            })
            .await
            .map_err(read_failure)?;
        let id = match groups.into_iter().find(|g| g.v_server_group_name == name) {
            Some(group) => group.v_server_group_id,
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
                self.gate
                    .once(
                        "CreateVServerGroup",
                        self.api
                            .create_vserver_group(&target.load_balancer_id, name),
                    )
                    .await
                    .map_err(|error| Failure {
                        error,
                        fatal: false,
                    })?
            }
        };
        lock(&self.group_ids).insert(cache_key, id.clone());
        Ok(Some(id))
    }

    pub(super) fn forget_group(&self, target: &GroupTarget) {
        let key = (
            target.load_balancer_id.clone(),
            target.desired.name.as_str().to_owned(),
        );
        lock(&self.group_ids).remove(&key);
    }

    /// Looks up the ENI ids of desired ENI backends that must be added, in batches of
    /// 100 IPs, remembering them for later passes.
    pub(super) async fn resolve_eni_ids(
        &self,
        desired: &DesiredGroup,
        present: &[SlbBackend],
    ) -> Result<(), Failure> {
        let missing: Vec<IpAddr> = {
            let known = lock(&self.eni_ids);
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
            lock(&self.eni_ids).extend(found);
        }
        Ok(())
    }
}
