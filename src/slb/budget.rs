//! The SLB API budget: one token bucket for every SLB/ECS HTTP request of the process,
//! whose waiters are served by lane first and by arrival within a lane.
//!
//! The production client takes a token per HTTP request ([`super::RpcSlbClient::with_budget`]),
//! so an action that costs several requests (reading listeners) pays for each, and the
//! configured rate is what the API sees; the executor shares the same budget, so its
//! scheduler sees who waits.
//!
//! The account's API quota (a few calls per second) is the agent's scarcest resource,
//! and what a call is for decides who waits: a terminating pod's drain must not queue
//! behind a resync of ten thousand groups. A plain rate limiter (governor's, or a loop
//! of `check` and `sleep`) wakes every waiter whenever a token may be free and lets the
//! first one to run take it; with a resync under way that is usually a bulk call. Here
//! only the first waiter in (lane, arrival) order may take a token, and it alone sleeps
//! until the next token is due: calls go out in priority order at exactly the configured
//! rate. Within a lane, Services take turns by pass (start-time fair queuing: a pass's
//! first waiting call is tagged one past its Service's previous pass, and no earlier
//! than the tag last served), so one Service's burst does not line up ahead of another
//! Service's single pass; the later calls of a pass keep its tag and go before passes
//! that have not started (`caller.rs` says why). No crate offers ordered, prioritised,
//! fair waiting over tokio's (pausable) clock, so the ~150 lines are ours.
//!
//! The burst is kept for pods: calls nobody waits on (the change and bulk lanes) take a
//! token only while the bucket holds more than `burst - 1` (at most 9), so at the
//! default burst they go out at the sustained rate and never spend the burst, and a
//! drain arriving in the middle of a resync finds the burst less one at once instead of
//! an empty bucket. A steady stream of bulk work still gets every token the rate earns.

use std::collections::{BTreeSet, HashMap};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use std::sync::Arc;

use tokio::sync::Notify;
use tokio::time::Instant;

/// What a call is for, most urgent first. Decides the order in which waiting calls get
/// the budget, and the scheduler queue a pass waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lane {
    /// A pod that is going away and waits for its drain: an endpoint that stopped being
    /// ready, a removal whose drain window ended. It has a deadline (its grace period);
    /// nothing else that waits does.
    Drain,
    /// Other work a pod is waiting on: a new pod's readiness gate, a deleted Service's
    /// cleanup (its finalizer holds it), a group a waiting pod depends on.
    Pod,
    /// Changes of the desired state nobody is waiting on yet: nodes, Service settings.
    Change,
    /// Resync and drift checks of groups nothing changed in.
    Bulk,
}

impl Lane {
    pub const COUNT: usize = 4;
    pub const ALL: [Lane; Lane::COUNT] = [Lane::Drain, Lane::Pod, Lane::Change, Lane::Bulk];

    /// Work some pod waits on (the drain and pod lanes).
    pub fn pod_facing(self) -> bool {
        self <= Lane::Pod
    }

    /// Bounded metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Drain => "drain",
            Lane::Pod => "pod",
            Lane::Change => "change",
            Lane::Bulk => "bulk",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

pub use super::caller::{current_caller, current_lane, Caller, CALLER};

/// Tokens the change and bulk lanes leave in the bucket for pod-facing calls, at most:
/// the burst less one up to this. A larger reserve would hold a drift check or a
/// Service change for `reserve ÷ qps` after every burst of pod work (20 s at a burst
/// of 100 and 5 calls/s), and the group it holds with it.
const POD_RESERVE: f64 = 9.0;

/// A token bucket (`qps` sustained, `burst` at once) with ordered waiters.
pub struct Budget {
    period: Duration,
    burst: f64,
    /// Tokens calls of the change and bulk lanes leave in the bucket (see the module doc).
    reserve: f64,
    state: Mutex<Bucket>,
    /// Wakes waiters when the head of the queue changed.
    changed: Notify,
    /// Tokens handed out so far.
    granted: std::sync::atomic::AtomicU64,
}

/// A waiting call: served in this order: lane, fair-queuing tag, whether its pass has
/// not had a call yet (calls of passes under way first), arrival.
type Ticket = (Lane, u64, bool, u64);

struct Bucket {
    tokens: f64,
    refilled: Instant,
    waiters: BTreeSet<Ticket>,
    next: u64,
    /// Per lane: the tag of the last call served, and each Service's last tag.
    served: [u64; Lane::COUNT],
    tags: [HashMap<Arc<str>, u64>; Lane::COUNT],
}

/// Service tags are forgotten once this many pile up and they are behind the served tag
/// (a tag behind it counts as it anyway).
const TAGS_KEPT: usize = 4096;

impl Bucket {
    /// Queues a call in `lane`, in its turn: a pass's place there if it has one, else
    /// one past its Service's last (no earlier than the last served), else behind every
    /// call waiting in the lane.
    fn ticket(&mut self, lane: Lane, turn: Option<Turn<'_>>) -> Ticket {
        let i = lane.index();
        let served = self.served[i];
        let held = match turn {
            Some(Turn::Pass(caller)) => caller.place_in(lane),
            _ => None,
        };
        let tag = match (held, turn) {
            (Some(tag), _) => tag,
            (None, Some(turn)) => {
                let service = turn.service();
                let last = self.tags[i].get(service).copied();
                let tag = last.map_or(served, |t| t + 1).max(served);
                if self.tags[i].len() >= TAGS_KEPT {
                    self.tags[i].retain(|_, t| *t >= served);
                }
                self.tags[i].insert(service.clone(), tag);
                if let Turn::Pass(caller) = turn {
                    caller.hold_place(lane, tag);
                }
                tag
            }
            (None, None) => self
                .waiters
                .iter()
                .filter(|(l, ..)| *l == lane)
                .map(|(_, t, ..)| *t)
                .max()
                .unwrap_or(served),
        };
        let me = (lane, tag, held.is_none(), self.next);
        self.next += 1;
        self.waiters.insert(me);
        me
    }

    fn refill(&mut self, period: Duration, burst: f64) {
        let now = Instant::now();
        let earned =
            now.saturating_duration_since(self.refilled).as_secs_f64() / period.as_secs_f64();
        self.tokens = (self.tokens + earned).min(burst);
        self.refilled = now;
    }
}

tokio::task_local! {
    /// A token taken before the call it pays for was decided (see [`prepaid`]).
    static PREPAID: std::cell::Cell<bool>;
}

/// Runs `call` with a token already taken by [`Budget::acquire_for_current`]: its first
/// request takes no other (a retry, or a second request, takes its own). For a call whose
/// content is best decided once it may go, as a listener read that takes every instance
/// asked for while it waited (`reconcile/listener_reads.rs`).
pub async fn prepaid<F: std::future::Future>(call: F) -> F::Output {
    PREPAID.scope(std::cell::Cell::new(true), call).await
}

impl Budget {
    /// A full bucket. A `qps` that is not a positive number means one call per second.
    pub fn new(qps: f64, burst: NonZeroU32) -> Self {
        let period = if qps.is_finite() && qps > 0.0 {
            Duration::from_secs_f64(1.0 / qps)
        } else {
            Duration::from_secs(1)
        };
        let burst = f64::from(burst.get());
        Budget {
            period: period.max(Duration::from_nanos(1)),
            burst,
            reserve: (burst - 1.0).min(POD_RESERVE),
            state: Mutex::new(Bucket {
                tokens: burst,
                refilled: Instant::now(),
                waiters: BTreeSet::new(),
                next: 0,
                served: [0; Lane::COUNT],
                tags: Default::default(),
            }),
            changed: Notify::new(),
            granted: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn bucket(&self) -> std::sync::MutexGuard<'_, Bucket> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tokens the bucket must hold for a call of `lane` to take one.
    fn needed(&self, lane: Lane) -> f64 {
        if lane.pod_facing() {
            1.0
        } else {
            1.0 + self.reserve
        }
    }

    /// Waits for a token in `lane`, behind every waiter of a more urgent lane and, in
    /// `lane`, in `service`'s turn (`None`: behind every call already waiting there).
    /// Cancel-safe: a dropped wait leaves the queue.
    pub async fn acquire(&self, lane: Lane, service: Option<&Arc<str>>) {
        self.wait(lane, service.map(Turn::Call)).await;
    }

    /// Waits for a token for a call of the current task: in its pass's lane and place
    /// (see `caller.rs`). Inside [`prepaid`], the first call takes none.
    pub async fn acquire_for_current(&self) {
        if PREPAID.try_with(|paid| paid.replace(false)) == Ok(true) {
            return;
        }
        match current_caller() {
            Some(caller) => self.wait(caller.lane(), Some(Turn::Pass(&caller))).await,
            None => self.wait(Lane::Change, None).await,
        }
    }

    async fn wait(&self, lane: Lane, turn: Option<Turn<'_>>) {
        let me = {
            let mut bucket = self.bucket();
            bucket.refill(self.period, self.burst);
            if bucket.waiters.is_empty() && bucket.tokens >= self.needed(lane) {
                bucket.tokens -= 1.0;
                self.granted
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return;
            }
            bucket.ticket(lane, turn)
        };
        // A newcomer may have become the head (a more urgent lane): the old head must
        // stop its timer and look again.
        self.changed.notify_waiters();
        let mut queued = Queued {
            budget: self,
            me,
            done: false,
        };
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wait = {
                let mut bucket = self.bucket();
                bucket.refill(self.period, self.burst);
                // The pass moved to a more urgent lane while this call waited: the call
                // moves with it (seen when the scheduler nudges the waiters, or at the
                // next grant).
                if let Some(Turn::Pass(caller)) = turn {
                    if caller.lane() < queued.me.0 {
                        bucket.waiters.remove(&queued.me);
                        queued.me = bucket.ticket(caller.lane(), turn);
                        // It may be the head now: the old head must look again.
                        self.changed.notify_waiters();
                    }
                }
                let me = queued.me;
                let needed = self.needed(me.0);
                if bucket.waiters.first() != Some(&me) {
                    None
                } else if bucket.tokens >= needed {
                    bucket.tokens -= 1.0;
                    bucket.waiters.remove(&me);
                    let i = me.0.index();
                    bucket.served[i] = bucket.served[i].max(me.1);
                    queued.done = true;
                    drop(bucket);
                    self.granted
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.changed.notify_waiters();
                    return;
                } else {
                    // At most a period: a call whose pass was raised is seen within one
                    // token even if no nudge reached it.
                    Some(self.period.mul_f64((needed - bucket.tokens).min(1.0)))
                }
            };
            match wait {
                Some(wait) => {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = &mut notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Makes every waiting call look at its pass's lane again now: a pass was raised
    /// (see [`Caller::raise`]). Without it the move is seen at the next grant, which may
    /// be far off while the head is a change or bulk call waiting for the bucket to hold
    /// the burst again.
    pub fn nudge(&self) {
        self.changed.notify_waiters();
    }

    /// Tokens handed out since the budget was made.
    pub fn granted(&self) -> u64 {
        self.granted.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The time between two tokens.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Calls waiting for a token, per lane (for metrics and tests).
    pub fn waiting(&self) -> [usize; Lane::COUNT] {
        let mut out = [0; Lane::COUNT];
        for (lane, ..) in &self.bucket().waiters {
            out[lane.index()] += 1;
        }
        out
    }
}

/// Whose turn a waiting call takes in its lane's fair queue.
#[derive(Clone, Copy)]
enum Turn<'a> {
    /// One call of a Service's, tagged on its own.
    Call(&'a Arc<str>),
    /// A call of a pass, which keeps the place its first call was given.
    Pass(&'a Caller),
}

impl Turn<'_> {
    fn service(&self) -> &Arc<str> {
        match self {
            Turn::Call(service) => service,
            Turn::Pass(caller) => &caller.service,
        }
    }
}

/// Removes a waiter whose wait was dropped.
struct Queued<'a> {
    budget: &'a Budget,
    me: Ticket,
    done: bool,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.budget.bucket().waiters.remove(&self.me);
            self.budget.changed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn budget(qps: f64, burst: u32) -> Arc<Budget> {
        Arc::new(Budget::new(qps, NonZeroU32::new(burst).unwrap()))
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_is_what_is_configured_after_the_burst() {
        let b = budget(5.0, 10);
        let start = Instant::now();
        for _ in 0..30 {
            b.acquire(Lane::Drain, None).await;
        }
        // 10 at once, then 20 more at 5/s.
        assert_eq!(start.elapsed(), Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_prepaid_call_takes_no_second_token_but_its_retry_does() {
        let b = budget(1.0, 1);
        let start = Instant::now();
        b.acquire_for_current().await;
        prepaid(async {
            b.acquire_for_current().await;
            assert_eq!(start.elapsed(), Duration::ZERO, "paid for already");
            b.acquire_for_current().await;
        })
        .await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(1),
            "the retry paid its own"
        );
        assert_eq!(b.granted(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn bulk_work_goes_at_the_rate_and_leaves_the_burst_to_pods() {
        let b = budget(5.0, 10);
        let start = Instant::now();
        // A full bucket: bulk calls still go one per period, none at once...
        for _ in 0..10 {
            b.acquire(Lane::Bulk, None).await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(1800));
        // ...and a resync running flat out keeps the bucket at the burst less one.
        let resync = tokio::spawn({
            let b = b.clone();
            async move {
                loop {
                    b.acquire(Lane::Bulk, None).await;
                }
            }
        });
        // 1.8 s → 6.9 s: calls at 2.0, 2.2, … 6.8.
        tokio::time::sleep(Duration::from_millis(5100)).await;
        let granted = b.granted();
        assert_eq!(granted, 10 + 25, "bulk keeps the sustained rate");
        // A drain burst now: nine calls at once, then the rate.
        let burst = Instant::now();
        for _ in 0..9 {
            b.acquire(Lane::Drain, None).await;
        }
        assert!(
            burst.elapsed() < Duration::from_millis(200),
            "{:?}",
            burst.elapsed()
        );
        b.acquire(Lane::Pod, None).await;
        assert!(
            burst.elapsed() <= Duration::from_millis(200),
            "{:?}",
            burst.elapsed()
        );
        resync.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_are_served_by_lane_then_arrival() {
        let b = budget(1.0, 1);
        b.acquire(Lane::Bulk, None).await; // the bucket is now empty
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, lane) in [
            Lane::Bulk,
            Lane::Bulk,
            Lane::Change,
            Lane::Pod,
            Lane::Bulk,
            Lane::Pod,
        ]
        .into_iter()
        .enumerate()
        {
            let (b, order) = (b.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                b.acquire(lane, None).await;
                order.lock().unwrap().push((i, lane, Instant::now()));
            }));
            // Arrival order is spawn order.
            tokio::task::yield_now().await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        let served: Vec<usize> = order.iter().map(|(i, _, _)| *i).collect();
        assert_eq!(served, [3, 5, 2, 0, 1, 4]);
        // One per second, none at once.
        for pair in order.windows(2) {
            assert_eq!(pair[1].2 - pair[0].2, Duration::from_secs(1));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_wait_leaves_the_queue() {
        let b = budget(1.0, 1);
        b.acquire(Lane::Pod, None).await;
        let waiting = tokio::spawn({
            let b = b.clone();
            async move { b.acquire(Lane::Pod, None).await }
        });
        tokio::task::yield_now().await;
        assert_eq!(b.waiting(), [0, 1, 0, 0]);
        waiting.abort();
        let _ = waiting.await;
        assert_eq!(b.waiting(), [0; Lane::COUNT]);
        let start = Instant::now();
        b.acquire(Lane::Bulk, None).await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn services_take_turns_within_a_lane() {
        let b = budget(1.0, 1);
        b.acquire(Lane::Pod, None).await;
        let (busy, web): (Arc<str>, Arc<str>) = ("ns/busy".into(), "ns/web".into());
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Ten calls of one Service queue first, then one of another.
        for (i, service) in std::iter::repeat_n(&busy, 10)
            .chain([&web])
            .cloned()
            .enumerate()
        {
            let (b, order) = (b.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                b.acquire(Lane::Pod, Some(&service)).await;
                order.lock().unwrap().push(i);
            }));
            tokio::task::yield_now().await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(order.iter().position(|i| *i == 10), Some(1), "{order:?}");
    }

    /// Runs a pass of `calls` calls for `service` in `lane`; returns when it ended.
    fn pass(b: &Arc<Budget>, caller: Caller, calls: usize) -> tokio::task::JoinHandle<Instant> {
        let b = b.clone();
        tokio::spawn(CALLER.scope(caller, async move {
            for _ in 0..calls {
                b.acquire_for_current().await;
            }
            Instant::now()
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn a_pass_under_way_finishes_before_passes_queued_behind_it() {
        let b = budget(1.0, 1);
        b.acquire(Lane::Pod, None).await;
        let start = Instant::now();
        let mut passes = Vec::new();
        for service in ["ns/a", "ns/b", "ns/c"] {
            passes.push(pass(&b, Caller::new(Lane::Pod, service.into()), 3));
            tokio::task::yield_now().await;
        }
        let mut ended = Vec::new();
        for p in passes {
            ended.push(p.await.unwrap() - start);
        }
        // Taking turns call by call, every pass would last until the last few tokens
        // (7, 8 and 9 s); one after another, the first is done after its own three.
        let secs = |s| Duration::from_secs(s);
        assert_eq!(ended, [secs(3), secs(6), secs(9)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_call_moves_with_its_pass_to_a_more_urgent_lane() {
        let b = budget(1.0, 1);
        b.acquire(Lane::Pod, None).await;
        let start = Instant::now();
        let gates: Vec<_> = (0..5)
            .map(|n| pass(&b, Caller::new(Lane::Pod, format!("ns/gate{n}").into()), 2))
            .collect();
        tokio::task::yield_now().await;
        let web = Caller::new(Lane::Pod, "ns/web".into());
        let draining = pass(&b, web.clone(), 2);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // A pod of web's starts terminating while web's pass waits behind ten calls.
        web.raise(Lane::Drain);
        let ended = draining.await.unwrap() - start;
        // The next grant (2 s) sees the move; its calls take the two tokens after it.
        // In the pod lane they would have waited for the five gate passes (12 s).
        assert_eq!(ended, Duration::from_secs(4));
        for g in gates {
            g.await.unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_large_burst_keeps_nine_tokens_for_pods() {
        let b = budget(5.0, 100);
        let start = Instant::now();
        for _ in 0..91 {
            b.acquire(Lane::Bulk, None).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "all but nine at once");
        b.acquire(Lane::Change, None).await;
        assert_eq!(start.elapsed(), Duration::from_millis(200));
        for _ in 0..9 {
            b.acquire(Lane::Drain, None).await;
        }
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(200),
            "the nine are there"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_raised_change_pass_does_not_wait_for_the_burst_to_refill() {
        let b = budget(5.0, 10);
        // A burst of pod work empties the bucket.
        for _ in 0..10 {
            b.acquire(Lane::Pod, None).await;
        }
        let start = Instant::now();
        // A drift check of a group waits for the bucket to hold the burst again (2 s).
        let check = Caller::new(Lane::Change, "ns/web".into());
        let drift = pass(&b, check.clone(), 1);
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The group's drain window ends: its removal rides on the pass under way.
        check.raise(Lane::Drain);
        b.nudge();
        let ended = drift.await.unwrap() - start;
        assert_eq!(
            ended,
            Duration::from_millis(300),
            "a token had been earned by then"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_lane_of_a_task_is_its_pass_lane() {
        assert_eq!(current_lane(), Lane::Change);
        let caller = Caller::new(Lane::Pod, "ns/web".into());
        let lane = CALLER.scope(caller.clone(), async { current_lane() }).await;
        assert_eq!(lane, Lane::Pod);
        caller.raise(Lane::Bulk);
        assert_eq!(caller.lane(), Lane::Pod, "a lane never drops");
        caller.raise(Lane::Drain);
        let lane = CALLER.scope(caller, async { current_lane() }).await;
        assert_eq!(lane, Lane::Drain);
    }
}
