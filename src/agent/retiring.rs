//! Groups a Service's ports left behind: a port removed from a managed Service, or
//! pointed at another instance or group by a changed `id` or `vgroup-port` annotation.
//! Their owned backends are drained and removed like a deleted Service's (see
//! [`super::moves`] for how a move is judged).

use std::collections::HashSet;

use super::control::Control;
use super::moves::{Move, Verdict};
use crate::index::ServiceRef;
use crate::reconcile::{GroupRef, GroupTarget, Lane};

impl Control {
    /// Ports that left a managed Service: their groups are drained and emptied like a
    /// deleted Service's. Not while the Service's annotations are bad (it is skipped
    /// then, not emptied).
    pub(super) fn retire_ports(&mut self, r: &ServiceRef, ports: &HashSet<u16>) {
        if self
            .index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .lb_spec(r)
            .is_none()
        {
            return;
        }
        let groups = &mut self.state.groups;
        let mut emptying = groups.emptying.lock().unwrap_or_else(|e| e.into_inner());
        // A port that came back is planned normally again.
        groups.retired.retain(|g| {
            let back = g.retired.is_none() && &g.service == r && ports.contains(&g.service_port);
            if back {
                emptying.remove(g);
            }
            !back
        });
        drop(emptying);
        let gone: Vec<(GroupRef, GroupTarget)> = groups
            .planned_of(r)
            .into_iter()
            .filter(|(g, _)| !ports.contains(&g.service_port))
            .collect();
        for (group, target) in gone {
            if self.state.groups.retired.insert(group.clone()) {
                tracing::info!(service = %r, port = group.service_port, "port removed; emptying its group");
                self.state.groups.emptying().insert(group.clone(), target);
            }
            self.trigger(r, group.service_port, Lane::Change);
        }
    }

    /// Acts on a moved port as far as the group ids known now allow; one that must wait
    /// for its current group's id is kept until the port's next pass.
    pub(super) fn judge_move(&mut self, mut moved: Move, old: Option<&str>, current: Option<&str>) {
        match moved.verdict(old, current) {
            Verdict::Same => {}
            Verdict::Retire(key) => self.retire_moved(key, moved, current),
            Verdict::Wait => {
                self.state.groups.moves.insert(moved.port.clone(), moved);
            }
        }
    }

    /// Empties the group a port was planned on before its Service's `id` or `vgroup-port`
    /// annotation changed; a port moved back to a group being emptied keeps it instead.
    fn retire_moved(&mut self, key: GroupRef, moved: Move, current_resolved: Option<&str>) {
        let current = moved.current_identity(current_resolved);
        let groups = &mut self.state.groups;
        let mut emptying = groups.emptying.lock().unwrap_or_else(|e| e.into_inner());
        let back = GroupRef {
            retired: Some(current.clone()),
            ..moved.port.clone()
        };
        if groups.retired.remove(&back) {
            emptying.remove(&back);
            tracing::info!(service = %back.service, port = back.service_port, group = %current, "port moved back; no longer emptying its group");
        }
        if groups.retired.insert(key.clone()) {
            tracing::info!(service = %key.service, port = key.service_port,
                from = %key.retired.as_ref().map(ToString::to_string).unwrap_or_default(), to = %current,
                "port moved to another group; draining and emptying the old one");
            emptying.insert(key.clone(), moved.old);
        }
        drop(emptying);
        self.trigger_group(key, Lane::Change);
    }
}
