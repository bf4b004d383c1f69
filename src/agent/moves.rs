//! Ports whose Service now points at another SLB group: the `id` annotation names another
//! instance, or `vgroup-port` names another group. The backends the agent put in the old
//! group must be drained and removed, or they leak; the old group must *not* be emptied
//! when it is in fact the same group seen another way (found by name before, named by id
//! now), or the agent would fight itself.
//!
//! Pure: the control loop hands in the group ids its passes resolved.

use crate::model::{GroupRef, GroupTarget, RetiredGroup};

/// A port planned on `old` that now points at another group.
#[derive(Debug, Clone)]
pub struct Move {
    /// The port (its [`GroupRef::retired`] is `None`).
    pub port: GroupRef,
    /// The group the port was planned on, without backends: passes over it empty it.
    pub old: GroupTarget,
    /// The instance the port points at now.
    pub current_lb: String,
    /// The group id `vgroup-port` names now; `None` when found or created by name.
    pub current_id: Option<String>,
}

/// What a move calls for, once the ids are known.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The old and the current group are one group: nothing to empty.
    Same,
    /// Empty the old group under this key, whose `retired` names it.
    Retire(GroupRef),
    /// The current group is found by name on the same instance and no pass has resolved
    /// its id yet: decide after the port's next pass.
    Wait,
}

impl Move {
    /// `old_resolved`: the id the port's last pass resolved for the old group (the one
    /// place the id of a group found by name is known). `current_resolved`: the id a pass
    /// resolved for the current group, once there is one.
    pub fn verdict(
        &mut self,
        old_resolved: Option<&str>,
        current_resolved: Option<&str>,
    ) -> Verdict {
        if self.old.desired.v_server_group_id.is_none() {
            self.old.desired.v_server_group_id = old_resolved.map(str::to_owned);
        }
        let old_id = self.old.desired.v_server_group_id.clone();
        if self.old.load_balancer_id != self.current_lb {
            return Verdict::Retire(self.retired_key(old_id.as_deref()));
        }
        let Some(old_id) = old_id else {
            // Never resolved: both sides are found by the owner name on the same instance
            // (one group), or the old one never got a group id, so holds nothing of ours
            // that a pass reported.
            return Verdict::Same;
        };
        match self.current_id.as_deref().or(current_resolved) {
            None => Verdict::Wait,
            Some(current) if current == old_id => Verdict::Same,
            Some(_) => Verdict::Retire(self.retired_key(Some(&old_id))),
        }
    }

    /// The current group, as far as known (`?` for a group not resolved yet).
    pub fn current_identity(&self, current_resolved: Option<&str>) -> RetiredGroup {
        let group = self
            .current_id
            .as_deref()
            .or(current_resolved)
            .unwrap_or("?");
        RetiredGroup::new(&self.current_lb, group)
    }

    fn retired_key(&self, old_id: Option<&str>) -> GroupRef {
        let group = old_id.unwrap_or(self.old.desired.name.as_str());
        GroupRef {
            retired: Some(RetiredGroup::new(&self.old.load_balancer_id, group)),
            ..self.port.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::{DesiredGroup, OwnerDescription, Protocol, ServiceRef};

    fn group(lb: &str, id: Option<&str>) -> GroupTarget {
        GroupTarget {
            load_balancer_id: lb.to_owned(),
            desired: DesiredGroup {
                service_port: 80,
                protocol: Protocol::Tcp,
                v_server_group_id: id.map(str::to_owned),
                name: OwnerDescription::new(80, "web", "default", "c1"),
                backends: Vec::new(),
            },
            drain_window: Duration::from_secs(10),
            emptying: false,
        }
    }

    fn moved(old: GroupTarget, lb: &str, id: Option<&str>) -> Move {
        Move {
            port: GroupRef::new(ServiceRef::new("default", "web"), 80),
            old,
            current_lb: lb.to_owned(),
            current_id: id.map(str::to_owned),
        }
    }

    fn retired(key: &str) -> Verdict {
        let (lb, group) = key.split_once('/').unwrap();
        Verdict::Retire(GroupRef::retired(
            ServiceRef::new("default", "web"),
            80,
            RetiredGroup::new(lb, group),
        ))
    }

    #[test]
    fn another_instance_empties_the_old_group_by_its_resolved_id() {
        let mut m = moved(group("lb-a", None), "lb-b", None);
        assert_eq!(m.verdict(Some("rsp-1"), None), retired("lb-a/rsp-1"));
        assert_eq!(m.old.desired.v_server_group_id.as_deref(), Some("rsp-1"));
        let mut never_resolved = moved(group("lb-a", None), "lb-b", None);
        assert_eq!(
            never_resolved.verdict(None, None),
            retired("lb-a/k8s/80/web/default/c1"),
            "found by name again when emptied"
        );
    }

    #[test]
    fn another_group_id_on_the_same_instance_empties_the_old_one() {
        let mut m = moved(group("lb-a", Some("rsp-1")), "lb-a", Some("rsp-2"));
        assert_eq!(m.verdict(None, None), retired("lb-a/rsp-1"));
    }

    #[test]
    fn naming_by_id_the_group_found_by_name_is_no_move() {
        let mut m = moved(group("lb-a", None), "lb-a", Some("rsp-1"));
        assert_eq!(m.verdict(Some("rsp-1"), None), Verdict::Same);
    }

    #[test]
    fn dropping_vgroup_port_waits_for_the_group_found_by_name() {
        let mut m = moved(group("lb-a", Some("rsp-1")), "lb-a", None);
        assert_eq!(m.verdict(None, None), Verdict::Wait);
        assert_eq!(m.verdict(None, Some("rsp-1")), Verdict::Same);
        assert_eq!(m.verdict(None, Some("rsp-9")), retired("lb-a/rsp-1"));
        assert_eq!(m.current_identity(Some("rsp-9")).to_string(), "lb-a/rsp-9");
    }
}
