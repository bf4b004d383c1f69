//! Finding on the SLB the groups that hold backends the agent wrote for a Service, for
//! when nothing else says where they are: a Service deleted (or no longer managed) after
//! a restart, whose annotations may be broken or may have changed since the backends
//! were written. The owner Description on each backend names its Service port, Service,
//! namespace and cluster, so the SLB itself is the record.

use super::executor::{Executor, ReconcileError};
use crate::model::OwnerDescription;
use crate::slb::SlbApi;

/// One group of an instance that holds backends of a Service, or was created for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedGroup {
    pub load_balancer_id: String,
    pub v_server_group_id: String,
    /// The Service port the owner Description names.
    pub service_port: u16,
    /// Owned backends found in the group.
    pub owned_backends: usize,
}

impl<A: SlbApi + ?Sized> Executor<A> {
    /// Every group of `load_balancer_id` holding a backend whose Description is the
    /// owner Description of some port of `namespace/service` in `cluster_id`, or named
    /// by one (a group the agent created by name). Costs one list and one read per
    /// group of the instance.
    pub async fn find_owned_groups(
        &self,
        load_balancer_id: &str,
        namespace: &str,
        service: &str,
        cluster_id: &str,
    ) -> Result<Vec<OwnedGroup>, ReconcileError> {
        let failed = |error| ReconcileError {
            group: format!("groups of {namespace}/{service}"),
            load_balancer_id: load_balancer_id.to_owned(),
            replans: 0,
            source: error,
        };
        let port_of = |d: &str| OwnerDescription::port_of(d, service, namespace, cluster_id);
        let groups = self
            .gate
            .retried("DescribeVServerGroups", || {
                self.api.list_vserver_groups(load_balancer_id)
            })
            .await
            .map_err(failed)?;
        let mut found = Vec::new();
        for summary in groups {
            let group = self
                .gate
                .retried("DescribeVServerGroupAttribute", || {
                    self.api.describe_vserver_group(&summary.v_server_group_id)
                })
                .await
                .map_err(failed)?;
            let mut ports: Vec<u16> = group
                .backends
                .iter()
                .filter_map(|b| port_of(&b.description))
                .collect();
            ports.extend(port_of(&summary.v_server_group_name));
            ports.sort_unstable();
            ports.dedup();
            // Backends of two ports in one group (a `vgroup-port` naming one group for
            // both): one entry per port, each emptying its own.
            for port in ports {
                found.push(OwnedGroup {
                    load_balancer_id: load_balancer_id.to_owned(),
                    v_server_group_id: summary.v_server_group_id.clone(),
                    service_port: port,
                    owned_backends: group
                        .backends
                        .iter()
                        .filter(|b| port_of(&b.description) == Some(port))
                        .count(),
                });
            }
        }
        Ok(found)
    }
}
