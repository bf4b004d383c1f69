//! Load through the SLB data plane: short requests on new connections, long-lived
//! keep-alive connections at a steady rate and slow keep-alive clients (long polls, slow
//! API calls: every request held by the app for a drawn time), with every failure
//! classified by cause.
//!
//! Causes, as the client can tell them apart:
//! - `not-ready`: a `503` with `X-Lab-Cause: not-ready` (reached an app still starting);
//! - `stopped`: `X-Lab-Cause: stopped` (reached an app after SIGTERM, or a dead pod's IP);
//! - `no-rules`: `X-Lab-Cause: no-rules` (kube-proxy of that node had no endpoint);
//! - `cut`: an established connection closed without `Connection: close` while a request
//!   was outstanding (SLB removal cut it, or the app was killed under it);
//! - `other`: anything else (the SLB had no backend to dial, timeouts, bad answers).
//!
//! A keep-alive connection told `Connection: close` reconnects without any failure.
//!
//! A request cut on a fresh connection before any byte came back stays `other`: the
//! client cannot tell it from an SLB that had nothing to dial. Long polls run on reused
//! connections (each client fetches the state first), so their cuts count as `cut`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::apps::{delay_path, stream_path};
use crate::delay::{rng_for, Delay};
use crate::http::{Conn, ExchangeError, Reply};
use crate::AbortOnDrop;

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cause {
    NotReady,
    Stopped,
    NoRules,
    Cut,
    Other,
}

impl Cause {
    /// Every cause, in table order.
    pub const ALL: [Cause; 5] = [
        Cause::NotReady,
        Cause::Stopped,
        Cause::NoRules,
        Cause::Cut,
        Cause::Other,
    ];

    /// The name used in tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::NotReady => "not-ready",
            Cause::Stopped => "stopped",
            Cause::NoRules => "no-rules",
            Cause::Cut => "cut",
            Cause::Other => "other",
        }
    }
}

/// Classifies one exchange; `None` is a success. `reused` says whether the connection
/// had completed an exchange before (only those can be cut).
pub fn classify(result: &Result<Reply, ExchangeError>, reused: bool) -> Option<Cause> {
    match result {
        Ok(r) if r.status == 200 => None,
        Ok(r) => Some(match r.cause.as_deref() {
            Some("not-ready") => Cause::NotReady,
            Some("stopped") => Cause::Stopped,
            Some("no-rules") => Cause::NoRules,
            _ => Cause::Other,
        }),
        Err(ExchangeError::Closed { received }) if reused || *received > 0 => Some(Cause::Cut),
        Err(_) => Some(Cause::Other),
    }
}

/// Shape of the load.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The SLB listener address.
    pub target: SocketAddr,
    /// One short request (new connection) per interval; `None` for none.
    pub short_every: Option<Duration>,
    /// Number of long-lived keep-alive connections.
    pub keepalive_conns: usize,
    /// Pause between requests on each keep-alive connection (fast and slow).
    pub keepalive_every: Duration,
    /// Number of long-poll keep-alive clients: after a first `GET /` on each new
    /// connection every request is `GET /delay/<ms>`, the app holding it `slow_delay`
    /// (drawn per request) before answering.
    pub slow_conns: usize,
    pub slow_delay: Delay,
    /// Number of stream clients: each opens a connection and one `GET /stream/<ms>`
    /// held `stream_hold` (drawn per stream), then reconnects.
    pub streams: usize,
    pub stream_hold: Delay,
    /// Seeds the slow clients' and streams' draws (`rng_for(seed, "load/slow/<i>")`,
    /// `"load/stream/<i>"`).
    pub seed: u64,
    /// Per-request deadline.
    pub timeout: Duration,
}

/// Totals so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub requests: u64,
    pub ok: u64,
    pub failures: BTreeMap<Cause, u64>,
    /// Latency of the successful fast requests (a slow request's is the hold it asked for).
    pub p50: Duration,
    pub p99: Duration,
    /// The first three failures of each cause, for diagnosis.
    pub samples: Vec<String>,
}

impl LoadReport {
    /// Failures of every cause.
    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }
}

#[derive(Debug, Default)]
struct Tally {
    requests: u64,
    ok: u64,
    failures: BTreeMap<Cause, u64>,
    latencies_us: Vec<u64>,
    samples: Vec<String>,
}

impl Tally {
    /// `took` is `None` for slow requests, which stay out of the latency figures.
    fn record(
        &mut self,
        result: &Result<Reply, ExchangeError>,
        reused: bool,
        took: Option<Duration>,
    ) {
        self.requests += 1;
        match classify(result, reused) {
            None => {
                self.ok += 1;
                if let Some(took) = took {
                    self.latencies_us.push(took.as_micros() as u64);
                }
            }
            Some(c) => {
                let n = self.failures.entry(c).or_default();
                *n += 1;
                if *n <= 3 {
                    self.samples.push(format!("{}: {:?}", c.as_str(), result));
                }
            }
        }
    }
}

/// Running load; `stop` ends it and returns the totals.
#[derive(Debug)]
pub struct Load {
    tally: Arc<Mutex<Tally>>,
    stop: watch::Sender<bool>,
    tasks: Vec<AbortOnDrop>,
}

fn percentile(sorted: &[u64], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Duration::from_micros(sorted[i.min(sorted.len() - 1)])
}

impl Load {
    /// Starts the clients.
    pub fn start(cfg: LoadConfig) -> Load {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        if let Some(every) = cfg.short_every {
            let (t, mut s, c) = (tally.clone(), stop_rx.clone(), cfg.clone());
            tasks.push(AbortOnDrop(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! { _ = tick.tick() => {}, _ = s.changed() => return }
                    let (t, c) = (t.clone(), c.clone());
                    tokio::spawn(async move {
                        let start = Instant::now();
                        let r = match Conn::connect(c.target, c.timeout).await {
                            Ok(mut conn) => conn.get("/", c.timeout).await,
                            Err(e) => Err(e),
                        };
                        lock(&t).record(&r, false, Some(start.elapsed()));
                    });
                }
            })));
        }
        for _ in 0..cfg.keepalive_conns {
            let (t, s, c) = (tally.clone(), stop_rx.clone(), cfg.clone());
            tasks.push(AbortOnDrop(tokio::spawn(keepalive(c, None, t, s))));
        }
        for i in 0..cfg.slow_conns {
            let (t, s, c) = (tally.clone(), stop_rx.clone(), cfg.clone());
            let slow = Some((cfg.slow_delay, rng_for(cfg.seed, &format!("load/slow/{i}"))));
            tasks.push(AbortOnDrop(tokio::spawn(keepalive(c, slow, t, s))));
        }
        for i in 0..cfg.streams {
            let (t, s, c) = (tally.clone(), stop_rx.clone(), cfg.clone());
            let rng = rng_for(cfg.seed, &format!("load/stream/{i}"));
            tasks.push(AbortOnDrop(tokio::spawn(stream(c, rng, t, s))));
        }
        Load { tally, stop, tasks }
    }

    /// Totals so far.
    pub fn report(&self) -> LoadReport {
        let t = lock(&self.tally);
        let mut l = t.latencies_us.clone();
        l.sort_unstable();
        LoadReport {
            requests: t.requests,
            ok: t.ok,
            failures: t.failures.clone(),
            p50: percentile(&l, 0.50),
            p99: percentile(&l, 0.99),
            samples: t.samples.clone(),
        }
    }

    /// Stops the clients (outstanding short requests may still land) and reports.
    pub fn stop(self) -> LoadReport {
        self.stop.send_replace(true);
        let r = self.report();
        drop(self.tasks);
        r
    }
}

fn lock(t: &Mutex<Tally>) -> std::sync::MutexGuard<'_, Tally> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

/// One long-lived client: reconnects after a polite close or a failure. With `slow` it is
/// a long-poll client: on each new connection it first fetches the current state
/// (`GET /`), then polls on that connection, every poll held by the app a drawn time
/// (`GET /delay/<ms>`).
async fn keepalive(
    c: LoadConfig,
    mut slow: Option<(Delay, StdRng)>,
    t: Arc<Mutex<Tally>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conn: Option<Conn> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        let start = Instant::now();
        let (r, reused, poll) = match conn.take() {
            Some(mut k) => {
                let path = match &mut slow {
                    Some((d, rng)) => delay_path(d.sample(rng)),
                    None => "/".to_string(),
                };
                let r = k.get(&path, c.timeout).await;
                if matches!(&r, Ok(reply) if !reply.close) {
                    conn = Some(k);
                }
                (r, true, slow.is_some())
            }
            None => match Conn::connect(c.target, c.timeout).await {
                Ok(mut k) => {
                    let r = k.get("/", c.timeout).await;
                    if matches!(&r, Ok(reply) if !reply.close) {
                        conn = Some(k);
                    }
                    (r, false, false)
                }
                Err(e) => (Err(e), false, false),
            },
        };
        let took = (!poll).then(|| start.elapsed());
        lock(&t).record(&r, reused, took);
        tokio::select! { _ = tokio::time::sleep(c.keepalive_every) => {}, _ = stop.changed() => return }
    }
}

/// One stream client: a new connection per stream, each held a drawn time by the app
/// (or ended by its SIGTERM), then the next at once. Streams stay out of the latency
/// figures; one in flight when the load stops is not counted.
async fn stream(
    c: LoadConfig,
    mut rng: StdRng,
    t: Arc<Mutex<Tally>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let hold = c.stream_hold.sample(&mut rng);
        let r = match Conn::connect(c.target, c.timeout).await {
            Ok(mut k) => k.get(&stream_path(hold), hold + c.timeout).await,
            Err(e) => Err(e),
        };
        if *stop.borrow() {
            return;
        }
        lock(&t).record(&r, false, None);
        tokio::select! { _ = tokio::time::sleep(c.keepalive_every) => {}, _ = stop.changed() => return }
    }
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
