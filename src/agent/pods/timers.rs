//! One timer task per held pod, for each kind of deadline the pod side keeps (fail-open
//! release, end of the kube-proxy allowance): a newer one replaces and aborts the older,
//! and all are aborted when the pod goes or the pod side stops.

use std::collections::HashMap;

use jiff::Timestamp;
use tokio::task::JoinHandle;

use super::writer::PodKey;

/// A timer armed for one pod: the pod's uid, when it fires and its task.
pub(super) struct Armed {
    pub uid: String,
    pub at: Timestamp,
    pub task: JoinHandle<()>,
}

#[derive(Default)]
pub(super) struct PodTimers(HashMap<PodKey, Armed>);

impl PodTimers {
    pub fn get(&self, key: &PodKey) -> Option<&Armed> {
        self.0.get(key)
    }

    /// Arms `armed` for `key`, aborting the timer it replaces.
    pub fn set(&mut self, key: PodKey, armed: Armed) {
        if let Some(old) = self.0.insert(key, armed) {
            old.task.abort();
        }
    }

    pub fn cancel(&mut self, key: &PodKey) {
        if let Some(old) = self.0.remove(key) {
            old.task.abort();
        }
    }

    /// Forgets timers that fired (or were aborted), so they are armed again if needed.
    pub fn forget_finished(&mut self) {
        self.0.retain(|_, armed| !armed.task.is_finished());
    }

    pub fn abort_all(&mut self) {
        for (_, armed) in self.0.drain() {
            armed.task.abort();
        }
    }
}
