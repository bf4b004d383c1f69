//! Applies the Service's connection-drain annotations to its listeners.

use super::executor::{read_failure, Executor, Failure, ReconcileError};
use crate::plan::plan_listener_drain;
use crate::slb::SlbApi;

/// The listener side of a Service: which groups are its, and what its annotations say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTarget {
    pub load_balancer_id: String,
    /// The Service's vServer group ids (listeners bound elsewhere are not touched).
    pub v_server_group_ids: Vec<String>,
    /// `connection-drain`; `None` leaves listeners as they are.
    pub connection_drain: Option<bool>,
    pub connection_drain_timeout: Option<u32>,
    /// The agent's own drain window, quoted in warnings for HTTP/HTTPS listeners.
    pub drain_window_secs: u32,
}

/// What a listener pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerOutcome {
    /// Listener ports written.
    pub changed: Vec<u16>,
    pub warnings: Vec<String>,
    /// The Service's groups no listener forwards to.
    pub unbound: Vec<String>,
}

impl<A: SlbApi + ?Sized> Executor<A> {
    /// Reads the instance's listeners and writes drain settings where they differ from
    /// the annotations (TCP/UDP only), one write at a time on the instance.
    pub async fn reconcile_listeners(
        &self,
        target: &ListenerTarget,
    ) -> Result<ListenerOutcome, ReconcileError> {
        self.listeners_pass(target)
            .await
            .map_err(|failure| ReconcileError {
                group: format!("listeners of {}", target.load_balancer_id),
                load_balancer_id: target.load_balancer_id.clone(),
                replans: 0,
                source: failure.error,
            })
    }

    async fn listeners_pass(&self, target: &ListenerTarget) -> Result<ListenerOutcome, Failure> {
        let lb = target.load_balancer_id.as_str();
        let listeners = self
            .gate
            .retried("DescribeLoadBalancerListeners", || {
                self.api.describe_listeners(lb)
            })
            .await
            .map_err(read_failure)?;
        let plan = plan_listener_drain(
            &listeners,
            &target.v_server_group_ids,
            target.connection_drain,
            target.connection_drain_timeout,
            target.drain_window_secs,
        );
        let mut outcome = ListenerOutcome {
            changed: Vec::new(),
            warnings: plan.warnings,
            unbound: plan.unbound,
        };
        for change in &plan.changes {
            let lock = self.gate.instance_lock(lb);
            let _guard = lock.lock().await;
            self.gate
                .retried("SetLoadBalancerListenerAttribute", || {
                    self.api.set_listener_drain(
                        lb,
                        &change.listener,
                        change.drain,
                        change.timeout_secs,
                    )
                })
                .await
                .map_err(|error| Failure {
                    error,
                    fatal: false,
                })?;
            outcome.changed.push(change.listener.port);
        }
        Ok(outcome)
    }
}
