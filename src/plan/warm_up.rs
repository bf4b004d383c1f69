//! Node backends take traffic only once kube-proxy there can forward it
//! (docs/architecture.md, "The four races", race 3 inbound).
//!
//! A node backend (ECS) passes each SLB connection to the node's kube-proxy. In Local
//! mode kube-proxy has a rule for the Service only while a ready endpoint runs on that
//! node, and it learns of the endpoint an EndpointSlice watch and a rule sync after the
//! agent does. A node whose weight the agent raises from 0 (or adds above 0) as soon as
//! it sees the endpoint ready gets connections the node refuses, for as long as the SLB
//! carries the change faster than kube-proxy programs the rule: nothing bounds the one
//! by the other. So a node backend's weight rises above 0 only the kube-proxy
//! allowance after the agent first wanted it to; until then it is written at weight 0
//! (present, so Local pods' gates can open), and the group is planned again when the
//! allowance ends. ENI backends bypass kube-proxy and are never held.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;

use crate::model::{BackendKey, BackendState, BackendType, DesiredGroup, SlbBackend, Weight};

/// When the agent first wanted each held node backend above weight 0, per group.
#[derive(Debug, Clone, Default)]
pub struct WarmUp {
    wanted_since: HashMap<(String, BackendKey), Timestamp>,
}

impl WarmUp {
    /// `desired` with the weight of every node backend still inside its warm-up lowered
    /// to 0, and when the first of them may rise (plan the group again then). A backend
    /// the group carries above 0 already, or that is not wanted above 0, is not held
    /// (and forgotten).
    pub fn hold(
        &mut self,
        group_id: &str,
        desired: &DesiredGroup,
        members: &[SlbBackend],
        allowance: Duration,
        now: Timestamp,
    ) -> (DesiredGroup, Option<Timestamp>) {
        let mut held = desired.clone();
        let mut next: Option<Timestamp> = None;
        let mut wanted = Vec::new();
        for b in held.backends.iter_mut() {
            let rising = b.backend_type == BackendType::Ecs
                && b.state == BackendState::Active
                && b.weight > Weight::ZERO;
            if !rising || allowance.is_zero() {
                continue;
            }
            let key = b.key();
            let carried = members
                .iter()
                .any(|m| m.key().as_ref() == Some(&key) && m.weight > Weight::ZERO);
            if carried {
                continue;
            }
            let since = *self
                .wanted_since
                .entry((group_id.to_string(), key.clone()))
                .or_insert(now);
            wanted.push(key);
            let ready = since.checked_add(allowance).unwrap_or(Timestamp::MAX);
            if now < ready {
                b.weight = Weight::ZERO;
                next = Some(next.map_or(ready, |n| n.min(ready)));
            }
        }
        self.wanted_since
            .retain(|(g, k), _| g != group_id || wanted.contains(k));
        (held, next)
    }
}
