//! The group as the last pod-facing pass left it, so that the passes of one burst of pod
//! changes do not each read the group again (docs/architecture.md, "API hygiene").
//!
//! A rolling update touches a group many times within seconds: an endpoint terminates
//! (weight 0), a new pod is listed (add), becomes ready (weight up), the drain window
//! ends (remove). Each is a pass, and each pass used to begin with
//! `DescribeVServerGroupAttribute`: at a few calls per second, half the budget of a burst
//! went to reading back what the agent itself had just written. The agent owns its
//! backends and every write's answer confirms it, so a pass of the drain or pod lane
//! plans from the group as the previous such pass left it, when that pass's read is
//! younger than `reuse`. A write the SLB refuses because the group changed behind the
//! agent's back (a backend already there, or gone) fails the pass, which forgets the
//! entry and reads again; and the drift check reads every group a pod waits on each
//! `--drift-check-seconds` in the change lane, which never reuses, so a change made
//! outside the agent is still seen within that bound.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::executor::lock;
use crate::model::ObservedGroup;

/// Groups by id, as the last pod-facing pass left them, with when they were last read.
#[derive(Debug, Default)]
pub(super) struct LastReads {
    entries: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    groups: HashMap<String, (ObservedGroup, Instant)>,
    /// Stale entries are swept when the map grows past this (amortised: the map holds
    /// at most about the groups read within `reuse`).
    sweep_at: usize,
}

const MIN_SWEEP: usize = 64;

impl LastReads {
    /// The group as last left, with when it was read, if that was less than `reuse` ago.
    pub(super) fn fresh(
        &self,
        group_id: &str,
        reuse: Duration,
    ) -> Option<(ObservedGroup, Instant)> {
        if reuse.is_zero() {
            return None;
        }
        let entries = lock(&self.entries);
        let (group, read_at) = entries.groups.get(group_id)?;
        (read_at.elapsed() < reuse).then(|| (group.clone(), *read_at))
    }

    /// Updates a group already remembered (a pass of another lane read it again).
    pub(super) fn refresh(&self, group: ObservedGroup, read_at: Instant) {
        let mut entries = lock(&self.entries);
        if let Some(entry) = entries.groups.get_mut(&group.v_server_group_id) {
            *entry = (group, read_at);
        }
    }

    /// Remembers the group after a pass: `read_at` is when it was last actually read
    /// (a pass that planned from a remembered group keeps that group's read time, so a
    /// group under constant change is still read every `reuse`).
    pub(super) fn keep(&self, group: ObservedGroup, read_at: Instant, reuse: Duration) {
        if reuse.is_zero() {
            return;
        }
        let mut entries = lock(&self.entries);
        if entries.groups.len() >= entries.sweep_at {
            entries.groups.retain(|_, (_, at)| at.elapsed() < reuse);
            entries.sweep_at = (2 * entries.groups.len()).max(MIN_SWEEP);
        }
        entries
            .groups
            .insert(group.v_server_group_id.clone(), (group, read_at));
    }

    /// Forgets a group: a pass failed, so the next one reads what is really there.
    pub(super) fn forget(&self, group_id: &str) {
        lock(&self.entries).groups.remove(group_id);
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        lock(&self.entries).groups.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(id: &str) -> ObservedGroup {
        ObservedGroup {
            v_server_group_id: id.to_owned(),
            v_server_group_name: String::new(),
            load_balancer_id: "lb-1".to_owned(),
            backends: Vec::new(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_is_reused_until_it_is_older_than_the_bound() {
        let reads = LastReads::default();
        let reuse = Duration::from_secs(10);
        let read_at = Instant::now();
        reads.keep(group("rsp-1"), read_at, reuse);
        tokio::time::advance(Duration::from_secs(6)).await;
        // A later pass wrote to the group without reading: the read time stays.
        reads.keep(group("rsp-1"), read_at, reuse);
        assert!(reads.fresh("rsp-1", reuse).is_some());
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(reads.fresh("rsp-1", reuse).is_none(), "read 10 s ago");
        assert!(reads.fresh("rsp-2", reuse).is_none(), "never read");
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_kept_when_reuse_is_off_and_stale_entries_are_swept() {
        let reads = LastReads::default();
        reads.keep(group("rsp-1"), Instant::now(), Duration::ZERO);
        assert_eq!(reads.len(), 0);
        let reuse = Duration::from_secs(1);
        for n in 0..MIN_SWEEP {
            reads.keep(group(&format!("old-{n}")), Instant::now(), reuse);
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        reads.keep(group("new"), Instant::now(), reuse);
        assert_eq!(reads.len(), 1, "the stale entries went with the sweep");
        reads.forget("new");
        assert_eq!(reads.len(), 0);
    }
}
