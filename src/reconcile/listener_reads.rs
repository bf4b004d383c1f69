//! One listener read for the first drains of several instances (docs/architecture.md,
//! "API hygiene").
//!
//! The first drain of an instance after a start reads its listeners: whether they check
//! health decides whether the drain waits for a replacement reported `normal`. A burst of
//! deletions across many Services (a node drained, a cluster-wide rollout) starts the
//! first drain of many instances within a second, and each of those reads stood between a
//! terminating pod and its weight-0 write. `DescribeLoadBalancerListeners` names up to
//! [`LISTENER_READ_BATCH`] instances per call, so:
//!
//! - the first drain that needs an instance's listeners leads a read, which stays open
//!   while its leader waits for the API budget: drains that need listeners meanwhile join
//!   it instead of sending their own (they wait for its end);
//! - once the budget grants the leader its token, the read closes and takes, besides its
//!   members, the instances of other pod-facing passes running now (wanted at their
//!   start, before their group read), oldest first, up to the batch.

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
    /// Instances in a read (open or sent), each with that read's end.
    in_flight: HashMap<String, watch::Receiver<()>>,
    /// The reads whose leaders wait for their token: number, members and end (the
    /// last one takes newcomers while it has room).
    open: Vec<(u64, Vec<String>, watch::Receiver<()>)>,
    reads: u64,
}

/// What a pass that needs an instance's listeners does.
pub(super) enum Turn<'a> {
    /// Lead a read: wait for a token, [`Lead::close`] it, send it. Dropping the lead
    /// ends the read for the passes waiting on it.
    Lead(Lead<'a>),
    /// Wait for the read that has the instance (see [`read_ended`]).
    Wait(watch::Receiver<()>),
}

/// A read of several instances' listeners.
pub(super) struct Lead<'a> {
    reads: &'a ListenerReads,
    number: u64,
    /// Its instances, once closed.
    load_balancer_ids: Vec<String>,
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

    /// The turn of a pass that needs `load_balancer_id`'s listeners now: wait for the
    /// read that has it, join the open read while it has room, or lead a new one.
    pub(super) fn turn(&self, load_balancer_id: &str) -> Turn<'_> {
        let mut state = lock(&self.state);
        if let Some(done) = state.in_flight.get(load_balancer_id) {
            return Turn::Wait(done.clone());
        }
        if let Some((_, members, done)) = state.open.last_mut() {
            if members.len() < LISTENER_READ_BATCH {
                members.push(load_balancer_id.to_owned());
                let done = done.clone();
                state
                    .in_flight
                    .insert(load_balancer_id.to_owned(), done.clone());
                return Turn::Wait(done);
            }
        }
        let (sender, done) = watch::channel(());
        state.reads += 1;
        let number = state.reads;
        state
            .open
            .push((number, vec![load_balancer_id.to_owned()], done.clone()));
        state.in_flight.insert(load_balancer_id.to_owned(), done);
        Turn::Lead(Lead {
            reads: self,
            number,
            load_balancer_ids: Vec::new(),
            _done: sender,
        })
    }
}

impl Lead<'_> {
    /// Closes the read (its leader has its token): its members, then the oldest wanted
    /// instances that `unknown` admits and no other read has, up to the batch.
    pub(super) fn close(&mut self, unknown: impl Fn(&str) -> bool) -> &[String] {
        let mut state = lock(&self.reads.state);
        let state = &mut *state;
        let Some(at) = state.open.iter().position(|(n, ..)| *n == self.number) else {
            // Closed already: the read is what it was.
            return &self.load_balancer_ids;
        };
        let (_, mut ids, done) = state.open.remove(at);
        let mut others: Vec<(u64, &String)> = state
            .wanted
            .iter()
            .filter(|(id, _)| !state.in_flight.contains_key(*id) && unknown(id))
            .map(|(id, (_, asked))| (*asked, id))
            .collect();
        others.sort_unstable();
        let room = LISTENER_READ_BATCH.saturating_sub(ids.len());
        for (_, id) in others.into_iter().take(room) {
            ids.push(id.clone());
        }
        for id in &ids {
            state.in_flight.insert(id.clone(), done.clone());
        }
        self.load_balancer_ids = ids;
        &self.load_balancer_ids
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        let mut state = lock(&self.reads.state);
        if let Some(at) = state.open.iter().position(|(n, ..)| *n == self.number) {
            // Dropped before it was sent (the pass was cancelled).
            self.load_balancer_ids = state.open.remove(at).1;
        }
        for id in &self.load_balancer_ids {
            state.in_flight.remove(id);
        }
        // `_done` drops after this: the waiters wake with the instances out of flight.
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

/// Waits for the read a [`Turn::Wait`] names to end, however it ended.
pub(super) async fn read_ended(mut done: watch::Receiver<()>) {
    // The sender never sends: `changed` returns once it is dropped.
    while done.changed().await.is_ok() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead(turn: Turn<'_>) -> Lead<'_> {
        match turn {
            Turn::Lead(lead) => lead,
            Turn::Wait(_) => panic!("expected to lead"),
        }
    }

    fn waits(turn: Turn<'_>) -> watch::Receiver<()> {
        match turn {
            Turn::Wait(done) => done,
            Turn::Lead(_) => panic!("expected to wait"),
        }
    }

    fn wanted(reads: &ListenerReads) -> Vec<String> {
        let mut wanted: Vec<_> = lock(&reads.state).wanted.keys().cloned().collect();
        wanted.sort();
        wanted
    }

    #[test]
    fn a_read_takes_the_drains_that_joined_it_then_the_oldest_wanted_up_to_the_batch() {
        let reads = ListenerReads::default();
        let passes: Vec<_> = (0..14).map(|n| reads.want(&format!("lb-{n:02}"))).collect();
        let again = reads.want("lb-03"); // a second pass over one instance
        let mut first = lead(reads.turn("lb-05"));
        // Drains that need listeners while the leader waits for its token join.
        let joined = waits(reads.turn("lb-12"));
        assert!(matches!(reads.turn("lb-05"), Turn::Wait(_)));
        let ids = first.close(|id| id != "lb-01").to_vec();
        assert_eq!(
            ids,
            [
                "lb-05", "lb-12", "lb-00", "lb-02", "lb-03", "lb-04", "lb-06", "lb-07", "lb-08",
                "lb-09"
            ],
            "its members, then the oldest wanted; lb-01 is known already"
        );
        // Closed: a pass over one of its instances waits for it, another leads anew.
        let waiting = waits(reads.turn("lb-07"));
        let mut next = lead(reads.turn("lb-13"));
        assert_eq!(next.close(|id| id != "lb-01"), ["lb-13", "lb-10", "lb-11"]);
        drop(first);
        for done in [joined, waiting] {
            assert!(
                done.has_changed().is_err(),
                "the read's end wakes its waiters"
            );
        }
        assert!(matches!(reads.turn("lb-07"), Turn::Lead(_)));
        // Passes that end stop wanting their instance; one of two leaves it wanted.
        drop(passes);
        assert_eq!(wanted(&reads), ["lb-03"]);
        drop(again);
        assert!(wanted(&reads).is_empty());
    }

    #[test]
    fn a_full_read_is_not_joined_and_a_lead_dropped_unsent_frees_its_members() {
        let reads = ListenerReads::default();
        let first = lead(reads.turn("lb-00"));
        let members: Vec<_> = (1..LISTENER_READ_BATCH)
            .map(|n| waits(reads.turn(&format!("lb-{n:02}"))))
            .collect();
        let mut second = lead(reads.turn("lb-10"));
        drop(first);
        assert!(members.iter().all(|m| m.has_changed().is_err()));
        // Out of flight, it joins the read still open.
        let _joined = waits(reads.turn("lb-01"));
        assert_eq!(second.close(|_| true), ["lb-10", "lb-01"]);
    }

    #[tokio::test]
    async fn a_waiter_wakes_when_the_read_ends() {
        let reads = ListenerReads::default();
        let lead = reads.turn("lb-1");
        let waiter = tokio::spawn(read_ended(waits(reads.turn("lb-1"))));
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(lead);
        waiter.await.unwrap();
    }
}
