//! Deleting a vServer group the agent created, once it is empty and unused: a Service
//! deleted, a port removed or moved would otherwise leave an empty group behind on the
//! instance for every port (the SLB's per-instance group quota is small).
//!
//! Only groups that carry the agent's creation tag ([`crate::slb::CREATED_FOR_TAG`]
//! valued with their own name) are ever deleted; a group a user made, even one named
//! like the agent's and found by name, never is. A group still holding any member, or
//! still forwarded to by a listener, is kept.

use super::executor::{lock, Executor, ReconcileError};
use crate::slb::SlbApi;

/// What became of a group the agent was done with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupDeletion {
    Deleted,
    /// Kept, and why.
    Kept(&'static str),
}

impl<A: SlbApi + ?Sized> Executor<A> {
    /// Deletes group `v_server_group_id` of `load_balancer_id` if the agent created it,
    /// it has no member and no listener forwards to it. Costs a list and a read, and the
    /// delete when it goes ahead.
    pub async fn delete_if_unused(
        &self,
        load_balancer_id: &str,
        v_server_group_id: &str,
    ) -> Result<GroupDeletion, ReconcileError> {
        let failed = |error| ReconcileError {
            group: v_server_group_id.to_owned(),
            load_balancer_id: load_balancer_id.to_owned(),
            replans: 0,
            source: error,
        };
        let groups = self
            .gate
            .retried("DescribeVServerGroups", || {
                self.api.list_vserver_groups(load_balancer_id)
            })
            .await
            .map_err(failed)?;
        let Some(group) = groups
            .into_iter()
            .find(|g| g.v_server_group_id == v_server_group_id)
        else {
            return Ok(GroupDeletion::Kept("it no longer exists"));
        };
        if !group.created_by_agent() {
            return Ok(GroupDeletion::Kept("the agent did not create it"));
        }
        if !group.listener_ports.is_empty() {
            return Ok(GroupDeletion::Kept("a listener forwards to it"));
        }
        let members = self
            .gate
            .retried("DescribeVServerGroupAttribute", || {
                self.api.describe_vserver_group(v_server_group_id)
            })
            .await
            .map_err(failed)?;
        if !members.backends.is_empty() {
            return Ok(GroupDeletion::Kept("it still has members"));
        }
        let instance = self.gate.instance_lock(load_balancer_id);
        let _guard = instance.lock().await;
        self.gate
            .retried("DeleteVServerGroup", || {
                self.api.delete_vserver_group(v_server_group_id)
            })
            .await
            .map_err(failed)?;
        lock(&self.group_ids).retain(|_, id| id != v_server_group_id);
        Ok(GroupDeletion::Deleted)
    }
}
