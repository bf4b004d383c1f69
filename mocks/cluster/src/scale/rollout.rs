//! The `rollout-400` preset: 400 Cluster-mode Services, each on its own SLB instance, and
//! one ENI Service whose pods are deleted (30 s grace, preStop `wait-drained`) in four
//! situations of the agent: during its cold start, at a resync tick, in steady state with
//! `--resync-seconds 60`, and idle. For each deletion: delete → the weight-0 call, → the
//! removal call (from the agent's SLB calls, when the SLB answered them), and how the pod
//! was released; for each situation, the readiness gates the agent closed on running pods
//! from its start on.

use std::time::Duration;

use futures::future::join_all;
use serde::Serialize;

use super::gates::{Closures, GateWatch};
use super::lab::{cold_start_done, first_call, until, Lab, LabError};
use super::pods::PodRun;
use super::recorder::Call;
use super::spec::{Spec, Tier};
use super::stats::Summary;

/// Settings of the preset (flags of `scale-lab --preset rollout-400`).
#[derive(Debug, Clone)]
pub struct RolloutOptions {
    pub qps: f64,
    pub burst: u32,
    pub cluster_services: usize,
    /// Deletions per situation.
    pub deletions: usize,
    /// Seconds between two deletions.
    pub interval: f64,
    /// The ENI Service's drain window (its listener's ConnectionDrainTimeout).
    pub drain_secs: u32,
    /// `--finalizer-grace-margin-seconds` of the agent.
    pub margin_secs: u64,
    /// More agent flags for every situation.
    pub agent_flags: Vec<String>,
    /// The situations to run, by [`SITUATIONS`] name (empty: all four).
    pub situations: Vec<String>,
}

/// The situations' short names, in the order they run.
pub const SITUATIONS: [&str; 4] = ["cold", "tick", "steady", "idle"];

/// One situation's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub situation: String,
    pub flags: Vec<String>,
    pub to_weight0: Summary,
    pub to_removal: Summary,
    pub confirmed: usize,
    pub fail_open: usize,
    /// preStop waits that ended at their timeout (the app stopped unconfirmed).
    pub prestop_timeouts: usize,
    pub weight0_missing: usize,
    pub removal_missing: usize,
    pub deletions: usize,
    /// SLB calls the agent issued during the situation, and throttled answers.
    pub slb_calls: u64,
    pub throttled: u64,
    /// Throttled answers by action over the whole run so far.
    pub throttled_by_action: std::collections::BTreeMap<String, u64>,
    /// The agent's calls from the first deletion on.
    pub calls: Vec<Call>,
    /// The agent's cold-start gauge when the lab saw every group read (situations that
    /// wait for the cold start to end): anything but 0 means the agent disagrees.
    pub agent_cold_start_gauge: Option<f64>,
    /// Readiness gates the agent closed on running pods, from its start to the end of
    /// the situation.
    pub gates_closed: Closures,
}

/// The cluster of the preset: `cluster` Services of 2 pods on 10 nodes, and one ENI
/// Service with enough pods for every deletion of the four situations.
pub fn spec(o: &RolloutOptions) -> Spec {
    Spec {
        nodes: 10,
        pools: 1,
        namespaces: 4,
        cluster: Tier {
            services: o.cluster_services,
            pods: 2,
        },
        local: Tier {
            services: 0,
            pods: 0,
        },
        eni: Tier {
            services: 1,
            pods: 4 * o.deletions + 10,
        },
        spare: 0,
        packing: 1,
        grace_secs: 30,
        eni_drain_secs: Some(o.drain_secs),
        cluster_id: "scale".into(),
        drift: 0.0,
    }
}

/// When the deletions of a situation start.
#[derive(Debug, Clone, Copy)]
enum Moment {
    /// As soon as the agent leads (its cold start is queued).
    ColdStart,
    /// When the first resync cycle after the cold start is queued: the bulk queue, once
    /// empty after the cold start, fills again.
    ResyncTick,
    /// This long after the cold start ended (every group read).
    After(Duration),
}

/// Runs the four situations; each on a fresh agent, the doubles shared.
pub async fn run(o: &RolloutOptions) -> Result<Vec<Row>, LabError> {
    let spec = spec(o);
    let eni = spec.services() - 1;
    let lab = Lab::start(spec, o.qps, o.burst).await?;
    eprintln!("doubles up in {:.1}s", lab.load_secs);
    lab.track_service(eni).await;
    let gates = GateWatch::start(lab.client.clone(), lab.start).await;
    let margin = vec![
        "--finalizer-grace-margin-seconds".to_owned(),
        o.margin_secs.to_string(),
    ];
    let situations: [(&str, Vec<&str>, Moment); 4] = [
        ("during cold start", vec![], Moment::ColdStart),
        (
            "at a resync tick (--resync-seconds 90)",
            vec!["--resync-seconds", "90"],
            Moment::ResyncTick,
        ),
        (
            "steady state, --resync-seconds 60",
            vec!["--resync-seconds", "60"],
            Moment::After(Duration::from_secs(20)),
        ),
        ("agent idle", vec![], Moment::After(Duration::from_secs(5))),
    ];
    let mut rows = Vec::new();
    for (i, (situation, flags, moment)) in situations.into_iter().enumerate() {
        if !o.situations.is_empty() && !o.situations.iter().any(|s| s == SITUATIONS[i]) {
            continue;
        }
        let mut extra = margin.clone();
        extra.extend(flags.iter().map(|f| (*f).to_owned()));
        extra.extend(o.agent_flags.iter().cloned());
        eprintln!("{situation}: starting the agent ({})", extra.join(" "));
        let agent_start = lab.now();
        let agent = lab.agent(&extra).await?;
        let within = Duration::from_secs(900);
        let mut gauge = None;
        match moment {
            Moment::ColdStart => {
                until("the agent leading", within, || {
                    agent.metric("slb_sync_leader", &[]) >= 1.0
                })
                .await?
            }
            Moment::ResyncTick => {
                gauge = Some(cold_start_done(&agent, &lab.spec, within).await?);
                // Passes of the cold start's groups queued again while they ran may
                // still wait: the tick is the queue filling again once it was empty.
                let bulk = || agent.metric("slb_sync_queue_depth", &[("lane", "bulk")]);
                until("the bulk queue emptying", within, || bulk() == 0.0).await?;
                until("a resync tick", within, || bulk() > 0.0).await?
            }
            Moment::After(wait) => {
                gauge = Some(cold_start_done(&agent, &lab.spec, within).await?);
                tokio::time::sleep(wait).await;
            }
        }
        let (calls_before, throttled_before) = lab.slb_counters(&[]).await;
        let from = agent.recorder.len();
        let margin = Duration::from_secs(o.margin_secs);
        let deletions = (0..o.deletions).map(|k| {
            let p = i * o.deletions + k;
            let delay = Duration::from_secs_f64(o.interval * k as f64);
            let pods = lab.pods.clone();
            async move {
                tokio::time::sleep(delay).await;
                pods.delete(eni, p, margin).await
            }
        });
        eprintln!(
            "{situation}: deleting {} pods, {:.1}s after the agent started",
            o.deletions,
            lab.now() - agent_start
        );
        let runs = join_all(deletions).await;
        let calls = agent.recorder.since(from);
        let (calls_after, throttled_after) = lab.slb_counters(&[]).await;
        let mut row = summarize(&lab.spec, eni, situation, &runs, &calls);
        row.flags = extra;
        row.slb_calls = calls_after.saturating_sub(calls_before);
        row.throttled = throttled_after.saturating_sub(throttled_before);
        row.throttled_by_action = lab.throttled_by_action().await;
        row.calls = calls;
        row.agent_cold_start_gauge = gauge;
        row.gates_closed = gates.since(agent_start);
        eprintln!("{}", show_row(&row));
        rows.push(row);
        agent.stop().await;
    }
    lab.stop().await;
    Ok(rows)
}

/// Delete → weight-0 call and → removal call of each deleted ENI pod, and its release.
fn summarize(spec: &Spec, s: usize, situation: &str, runs: &[PodRun], calls: &[Call]) -> Row {
    let group = spec.group(s);
    let mut w0 = Vec::new();
    let mut rm = Vec::new();
    let mut row = Row {
        situation: situation.to_owned(),
        flags: Vec::new(),
        to_weight0: Summary::default(),
        to_removal: Summary::default(),
        confirmed: 0,
        fail_open: 0,
        prestop_timeouts: 0,
        weight0_missing: 0,
        removal_missing: 0,
        deletions: runs.len(),
        slb_calls: 0,
        throttled: 0,
        throttled_by_action: Default::default(),
        calls: Vec::new(),
        agent_cold_start_gauge: None,
        gates_closed: Closures::default(),
    };
    for run in runs {
        let ip = spec.pod_ip(s, run.pod);
        let has_ip = |c: &Call, weight0: bool| {
            c.target == group
                && c.backends.iter().any(|(_, bip, w)| {
                    bip.is_some_and(|b| b.to_string() == ip) && (!weight0 || *w == 0)
                })
        };
        match first_call(calls, run.at, |c| {
            c.action == "SetVServerGroupAttribute" && has_ip(c, true)
        }) {
            Some(at) => w0.push(at - run.at),
            None => row.weight0_missing += 1,
        }
        match first_call(calls, run.at, |c| {
            c.action == "RemoveVServerGroupBackendServers" && has_ip(c, false)
        }) {
            Some(at) => rm.push(at - run.at),
            None => row.removal_missing += 1,
        }
        if run.marks.drained.is_some() {
            row.confirmed += 1;
        }
        if run.marks.fail_open.is_some() {
            row.fail_open += 1;
        }
        if !run.prestop_drained {
            row.prestop_timeouts += 1;
        }
    }
    row.to_weight0 = Summary::of(&w0);
    row.to_removal = Summary::of(&rm);
    row
}

/// One line per situation: p50 / p99 / max of each figure.
pub fn show_row(r: &Row) -> String {
    let mut out = format!(
        "{:<40} weight 0 {:<28} removal {:<28} confirmed {}/{} fail-open {} preStop timeouts {} (missing: w0 {}, removal {}); SLB calls {} throttled {}; gates closed on running pods {}",
        r.situation,
        r.to_weight0.show(),
        r.to_removal.show(),
        r.confirmed,
        r.deletions,
        r.fail_open,
        r.prestop_timeouts,
        r.weight0_missing,
        r.removal_missing,
        r.slb_calls,
        r.throttled,
        r.gates_closed.pods,
    );
    if r.gates_closed.pods > 0 {
        out.push_str(&format!(
            " (closed for {}, {} still closed)",
            r.gates_closed.closed_secs.show(),
            r.gates_closed.still_closed
        ));
    }
    if let Some(g) = r.agent_cold_start_gauge.filter(|g| *g > 0.0) {
        out.push_str(&format!(
            "; every group read, yet the agent's cold-start gauge said {g}"
        ));
    }
    out
}
