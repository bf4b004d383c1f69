//! Listener connection drain: make TCP/UDP listeners bound to managed
//! groups carry the Service's `connection-drain` settings; read first, write only changes.

use crate::model::{Listener, ListenerProtocol};

/// One listener whose drain settings must be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerDrainChange {
    /// The listener as read (the SLB call needs its protocol and port).
    pub listener: Listener,
    pub drain: bool,
    /// Seconds (10–900) when `drain` is on.
    pub timeout_secs: Option<u32>,
}

/// What to write to the listeners of one SLB instance, and what to tell the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerDrainPlan {
    /// In listener port order.
    pub changes: Vec<ListenerDrainChange>,
    pub warnings: Vec<String>,
    /// The Service's groups no listener forwards to (they get no traffic), sorted.
    pub unbound: Vec<String>,
}

/// Plans drain settings for the listeners bound to `group_ids` (the Service's managed
/// groups). `connection_drain` is the annotation: `None` leaves listeners as they are;
/// `Some(true)` needs `timeout_secs`. HTTP/HTTPS listeners have no drain setting on the
/// SLB: they get a warning instead, since only the agent's weight-0 window protects them.
pub fn plan_listener_drain(
    listeners: &[Listener],
    group_ids: &[String],
    connection_drain: Option<bool>,
    timeout_secs: Option<u32>,
    agent_window_secs: u32,
) -> ListenerDrainPlan {
    let mut unbound: Vec<String> = group_ids
        .iter()
        .filter(|id| {
            !listeners
                .iter()
                .any(|l| l.v_server_group_id.as_ref() == Some(*id))
        })
        .cloned()
        .collect();
    unbound.sort();
    let mut plan = ListenerDrainPlan {
        unbound,
        ..ListenerDrainPlan::default()
    };
    let Some(want) = connection_drain else {
        return plan;
    };
    let mut bound: Vec<&Listener> = listeners
        .iter()
        .filter(|l| {
            l.v_server_group_id
                .as_ref()
                .is_some_and(|id| group_ids.contains(id))
        })
        .collect();
    bound.sort_by_key(|l| l.port);
    if want && timeout_secs.is_none() {
        plan.warnings.push(
            "connection-drain is on but connection-drain-timeout is not set; listeners are left \
             as they are: set the timeout (10-900 s)"
                .to_owned(),
        );
        return plan;
    }
    for listener in bound {
        match listener.protocol {
            ListenerProtocol::Tcp | ListenerProtocol::Udp => {
                let differs = if want {
                    listener.connection_drain != Some(true)
                        || listener.connection_drain_timeout != timeout_secs
                } else {
                    listener.connection_drain == Some(true)
                };
                if differs {
                    plan.changes.push(ListenerDrainChange {
                        listener: listener.clone(),
                        drain: want,
                        timeout_secs: if want { timeout_secs } else { None },
                    });
                }
            }
            ListenerProtocol::Http | ListenerProtocol::Https if want => {
                plan.warnings.push(format!(
                    "listener {} is HTTP/HTTPS, which has no connection drain on the SLB; \
                     backends still get the agent's weight-0 window of {agent_window_secs} s",
                    listener.port
                ));
            }
            ListenerProtocol::Http | ListenerProtocol::Https => {}
        }
    }
    plan
}
