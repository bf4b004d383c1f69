//! The one owner of what the control loop knows about the vServer groups of managed
//! Services: where each live port is planned, the groups being emptied (a deleted
//! Service's, a removed port's, a moved port's old group), moves waiting for a group id,
//! and the ids passes resolved. Passes read only the emptying targets, through
//! [`super::target::IndexTargets`]; everything else changes on the control loop alone.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use super::moves::Move;
use crate::model::{GroupRef, GroupTarget, ServiceRef};

/// Empty targets of the groups being emptied, by key; shared read-only with passes.
pub type Emptying = Arc<Mutex<HashMap<GroupRef, GroupTarget>>>;

#[derive(Default)]
pub struct GroupBook {
    /// Groups being emptied: passes over these keys get these targets.
    pub(super) emptying: Emptying,
    /// Every live port as last planned, without its backends (see [`empty`]): what a
    /// port that disappears, moves, or whose Service is deleted needs to be emptied.
    pub(super) planned: HashMap<GroupRef, GroupTarget>,
    /// Groups of ports that left their (still managed) Service, being emptied.
    pub(super) retired: HashSet<GroupRef>,
    /// Moved ports waiting for their current group's id (see [`super::moves::Verdict::Wait`]).
    pub(super) moves: HashMap<GroupRef, Move>,
    /// vServer group ids the passes of each key resolved.
    pub(super) ids: HashMap<GroupRef, String>,
}

impl GroupBook {
    pub fn emptying(&self) -> MutexGuard<'_, HashMap<GroupRef, GroupTarget>> {
        self.emptying.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that live `port` is planned on `target` now. When its group changed (other
    /// instance, other group id), returns the move, whose old group must be emptied.
    pub fn plan(&mut self, port: &GroupRef, target: &GroupTarget) -> Option<Move> {
        let shell = empty(target);
        let old = self.planned.insert(port.clone(), shell)?;
        let moved = old.load_balancer_id != target.load_balancer_id
            || old.desired.v_server_group_id != target.desired.v_server_group_id;
        moved.then(|| Move {
            port: port.clone(),
            old,
            current_lb: target.load_balancer_id.clone(),
            current_id: target.desired.v_server_group_id.clone(),
        })
    }

    /// Whether a pass over live `port` ran for the group it is planned on now (a pass
    /// that started before a move, or before the loop saw it, ran for another).
    pub fn is_current(&self, port: &GroupRef, target: &GroupTarget) -> bool {
        self.planned
            .get(port)
            .is_some_and(|p| same_group(p, target))
    }

    /// The live ports of `r` as last planned.
    pub fn planned_of(&self, r: &ServiceRef) -> Vec<(GroupRef, GroupTarget)> {
        self.planned
            .iter()
            .filter(|(g, _)| &g.service == r)
            .map(|(g, t)| (g.clone(), t.clone()))
            .collect()
    }

    /// A retired group is empty: nothing about it is kept.
    pub fn retired_emptied(&mut self, key: &GroupRef) {
        self.retired.remove(key);
        self.ids.remove(key);
        self.emptying().remove(key);
        self.planned.remove(key);
    }

    /// Drops everything kept about `r`.
    pub fn forget(&mut self, r: &ServiceRef) {
        self.emptying().retain(|g, _| &g.service != r);
        self.retired.retain(|g| &g.service != r);
        self.planned.retain(|g, _| &g.service != r);
        self.ids.retain(|g, _| &g.service != r);
        self.moves.retain(|g, _| &g.service != r);
    }
}

/// `target` with no desired backend: drains and removes every owned one.
pub fn empty(target: &GroupTarget) -> GroupTarget {
    let mut desired = target.desired.clone();
    desired.backends = Vec::new();
    GroupTarget {
        load_balancer_id: target.load_balancer_id.clone(),
        desired,
        drain_window: target.drain_window,
        emptying: true,
    }
}

/// Same group, same settings: only the backends may differ.
fn same_group(shell: &GroupTarget, target: &GroupTarget) -> bool {
    shell.load_balancer_id == target.load_balancer_id
        && shell.drain_window == target.drain_window
        && shell.desired.v_server_group_id == target.desired.v_server_group_id
        && shell.desired.name == target.desired.name
        && shell.desired.protocol == target.desired.protocol
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::{DesiredGroup, OwnerDescription, Protocol};

    /// The group of port 80 of `default/web` on `lb`, with `backends` copies of one node.
    pub(in crate::agent) fn target(lb: &str, id: Option<&str>, backends: usize) -> GroupTarget {
        let backend = crate::model::Backend {
            server_id: Some("i-1".into()),
            server_ip: None,
            port: 30080,
            weight: crate::model::Weight::new(100).unwrap(),
            backend_type: crate::model::BackendType::Ecs,
            state: crate::model::BackendState::Active,
        };
        GroupTarget {
            load_balancer_id: lb.to_owned(),
            desired: DesiredGroup {
                service_port: 80,
                protocol: Protocol::Tcp,
                v_server_group_id: id.map(str::to_owned),
                name: OwnerDescription::new(80, "web", "default", "c1"),
                backends: vec![backend; backends],
                keep_weights: false,
            },
            drain_window: Duration::from_secs(10),
            emptying: false,
        }
    }

    #[test]
    fn a_port_planned_on_another_group_is_a_move_and_other_changes_are_not() {
        let mut book = GroupBook::default();
        let port = GroupRef::new(ServiceRef::new("default", "web"), 80);
        assert!(
            book.plan(&port, &target("lb-a", None, 1)).is_none(),
            "first plan"
        );
        assert!(
            book.plan(&port, &target("lb-a", None, 3)).is_none(),
            "backends only"
        );
        assert!(book.is_current(&port, &target("lb-a", None, 0)));
        let moved = book.plan(&port, &target("lb-b", Some("rsp-2"), 1)).unwrap();
        assert_eq!(moved.old.load_balancer_id, "lb-a");
        assert!(moved.old.emptying && moved.old.desired.backends.is_empty());
        assert_eq!(
            (moved.current_lb.as_str(), moved.current_id.as_deref()),
            ("lb-b", Some("rsp-2"))
        );
        assert!(
            !book.is_current(&port, &target("lb-a", None, 1)),
            "a pass for the old group"
        );
        assert_eq!(book.planned_of(&port.service).len(), 1);
        book.forget(&port.service);
        assert!(book.planned_of(&port.service).is_empty());
    }
}
