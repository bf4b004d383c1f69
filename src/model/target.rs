//! One vServer group as a pass should make it, and as it was last seen.

use std::time::Duration;

use super::{DesiredGroup, SlbBackend};

/// One vServer group as the executor should make it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTarget {
    pub load_balancer_id: String,
    pub desired: DesiredGroup,
    /// See [`super::LbSpec::drain_window_secs`].
    pub drain_window: Duration,
    /// Emptied on purpose: the Service is deleted or no longer managed, or the group is
    /// one its port no longer points at. Expected to have no desired backend.
    pub emptying: bool,
}

/// The last SLB members seen for one vServer group of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupObservation {
    pub target: GroupTarget,
    pub backends: Vec<SlbBackend>,
}

impl GroupObservation {
    pub fn owned(&self) -> impl Iterator<Item = &SlbBackend> {
        self.backends
            .iter()
            .filter(|b| self.target.desired.name.owns(&b.description))
    }
}
