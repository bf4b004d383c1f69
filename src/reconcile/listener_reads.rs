//! One listener read for the first drains of several instances (docs/architecture.md,
//! "API hygiene").
//!
//! The first drain of an instance after a start reads its listeners: whether they check
//! health decides whether the drain waits for a replacement reported `normal`. A burst of
//! deletions across many Services (a node drained, a cluster-wide rollout) starts the
//! first drain of many instances within a second, and each of those reads stood between a
//! terminating pod and its weight-0 write. `DescribeLoadBalancerListeners` names up to
//! [`LISTENER_READ_BATCH`] instances per call, so the pod-facing passes say early which
//! instances they may need (before their group read), and the first pass that needs one
//! reads it together with the others wanted then; a pass whose instance is in a read
//! already in flight waits for that read instead of sending its own.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

use super::executor::lock;
use crate::slb::LISTENER_READ_BATCH;

/// Instances whose listeners pod-facing passes may need, and the reads in flight.
#[derive(Debug, Default)]
pub(super) struct ListenerReads {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Instances of the pod-facing passes running now: how many passes each, and when
    /// the first of them asked (reads take the oldest first).
    wanted: HashMap<String, (usize, u64)>,
    asked: u64,
    /// Instances in a read in flight, each with that read's end.
    in_flight: HashMap<String, watch::Receiver<()>>,
}

/// What a pass that needs an instance's listeners does.
pub(super) enum Turn<'a> {
    /// Read these instances (its own first); dropping the lead ends the read for the
    /// passes waiting on it.
    Lead(Lead<'a>),
    /// Wait for the read in flight that includes the instance.
    Wait(watch::Receiver<()>),
}

/// A read of several instances' listeners in flight.
pub(super) struct Lead<'a> {
    pub(super) load_balancer_ids: Vec<String>,
    reads: &'a ListenerReads,
    _done: watch::Sender<()>,
}

impl ListenerReads {
    /// A pod-facing pass over `load_balancer_id` runs and may need its listeners soon;
    /// it stops wanting them when the returned guard drops (the pass ended).
    pub(super) fn want<'a>(&'a self, load_balancer_id: &str) -> Wanted<'a> {
        let mut state = lock(&self.state);
        state.asked += 1;
        let asked = state.asked;
        state
            .wanted
            .entry(load_balancer_id.to_owned())
            .or_insert((0, asked))
            .0 += 1;
        Wanted {
            reads: self,
            load_balancer_id: load_balancer_id.to_owned(),
        }
    }

    /// The turn of a pass that needs `load_balancer_id`'s listeners now: lead a read of
    /// it and of up to [`LISTENER_READ_BATCH`] − 1 other wanted instances that `unknown`
    /// admits (oldest first), or wait for the read in flight that has it.
    pub(super) fn turn(&self, load_balancer_id: &str, unknown: impl Fn(&str) -> bool) -> Turn<'_> {
        let mut state = lock(&self.state);
        if let Some(done) = state.in_flight.get(load_balancer_id) {
            return Turn::Wait(done.clone());
        }
        let mut others: Vec<(u64, &String)> = state
            .wanted
            .iter()
            .filter(|(id, _)| {
                id.as_str() != load_balancer_id && !state.in_flight.contains_key(*id) && unknown(id)
            })
            .map(|(id, (_, asked))| (*asked, id))
            .collect();
        others.sort_unstable();
        let ids: Vec<String> = std::iter::once(load_balancer_id.to_owned())
            .chain(others.into_iter().map(|(_, id)| id.clone()))
            .take(LISTENER_READ_BATCH)
            .collect();
        let (done, waiting) = watch::channel(());
        for id in &ids {
            state.in_flight.insert(id.clone(), waiting.clone());
        }
        Turn::Lead(Lead {
            load_balancer_ids: ids,
            reads: self,
            _done: done,
        })
    }

    fn end(&self, load_balancer_ids: &[String]) {
        let mut state = lock(&self.state);
        for id in load_balancer_ids {
            state.in_flight.remove(id);
        }
    }

    #[cfg(test)]
    fn wanted(&self) -> Vec<String> {
        let mut wanted: Vec<_> = lock(&self.state).wanted.keys().cloned().collect();
        wanted.sort();
        wanted
    }
}

/// A running pass's want of an instance's listeners (see [`ListenerReads::want`]).
pub(super) struct Wanted<'a> {
    reads: &'a ListenerReads,
    load_balancer_id: String,
}

impl Drop for Wanted<'_> {
    fn drop(&mut self) {
        let mut state = lock(&self.reads.state);
        if let Some((passes, _)) = state.wanted.get_mut(&self.load_balancer_id) {
            *passes -= 1;
            if *passes == 0 {
                state.wanted.remove(&self.load_balancer_id);
            }
        }
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        self.reads.end(&self.load_balancer_ids);
        // `_done` drops after this: the waiters wake with the instances out of flight.
    }
}

/// Waits for the read a [`Turn::Wait`] names to end, however it ended.
pub(super) async fn read_ended(mut done: watch::Receiver<()>) {
    // The sender never sends: `changed` returns once it is dropped.
    while done.changed().await.is_ok() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(turn: &Turn) -> Vec<String> {
        match turn {
            Turn::Lead(lead) => lead.load_balancer_ids.clone(),
            Turn::Wait(_) => panic!("expected to lead"),
        }
    }

    #[test]
    fn the_first_pass_that_needs_listeners_reads_every_wanted_instance_up_to_the_batch() {
        let reads = ListenerReads::default();
        let passes: Vec<_> = (0..12).map(|n| reads.want(&format!("lb-{n:02}"))).collect();
        let again = reads.want("lb-03"); // a second pass over one instance
        let lead = reads.turn("lb-05", |id| id != "lb-01");
        assert_eq!(
            ids(&lead),
            [
                "lb-05", "lb-00", "lb-02", "lb-03", "lb-04", "lb-06", "lb-07", "lb-08", "lb-09",
                "lb-10"
            ],
            "its own first, then the oldest wanted; lb-01 is known already"
        );
        // A pass over an instance in the read waits for it.
        let Turn::Wait(done) = reads.turn("lb-07", |_| true) else {
            panic!("lb-07 is in the read in flight");
        };
        // The next read takes what was left.
        let next = reads.turn("lb-11", |id| id != "lb-01");
        assert_eq!(ids(&next), ["lb-11"]);
        drop(lead);
        assert!(
            done.has_changed().is_err(),
            "the read's end wakes its waiters"
        );
        assert!(matches!(reads.turn("lb-07", |_| true), Turn::Lead(_)));
        // Passes that end stop wanting their instance; one of two leaves it wanted.
        drop(passes);
        assert_eq!(reads.wanted(), ["lb-03"]);
        drop(again);
        assert!(reads.wanted().is_empty());
    }

    #[tokio::test]
    async fn a_waiter_wakes_when_the_read_ends() {
        let reads = ListenerReads::default();
        let lead = reads.turn("lb-1", |_| true);
        let Turn::Wait(done) = reads.turn("lb-1", |_| true) else {
            panic!("in flight");
        };
        let waiter = tokio::spawn(read_ended(done));
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(lead);
        waiter.await.unwrap();
    }
}
