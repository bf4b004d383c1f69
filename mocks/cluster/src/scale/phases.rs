//! The `full` preset's phases, each on a fresh agent: (a) cold start with the SLB in
//! sync, (b) cold start with a share of groups drifted, (c) a burst of pod deletions and
//! creations across 20 Services while the first full pass (the cold start's resync
//! cycle) is under way, (d) a node pool drained node after node.

use std::time::Duration;

use futures::future::join_all;
use serde::Serialize;
use slb_sync::reconcile::Lane;

use super::agent::Agent;
use super::lab::{cold_start_done, first_call, Costs, Lab, LabError};
use super::pods::PodRun;
use super::recorder::Call;
use super::spec::{Mode, Spec};
use super::stats::Summary;

/// What every phase reports.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Phase {
    pub name: String,
    pub qps: f64,
    pub flags: Vec<String>,
    pub secs: f64,
    /// SLB API calls mock-slb answered in the phase: reads, writes, throttled.
    pub reads: u64,
    pub writes: u64,
    pub throttled: u64,
    /// The agent's start → its first SLB call (the initial list and watch of every kind).
    pub to_first_call_secs: Option<f64>,
    /// The agent's start → every group read once (its cold start).
    pub verify_secs: Option<f64>,
    pub before: Costs,
    pub after: Costs,
    /// The agent's own process (`--agent-process`), at the end: peak RSS, RSS, CPU.
    pub agent_process: Option<super::procs::Usage>,
    /// Lines of findings, in words and figures.
    pub notes: Vec<String>,
}

pub const WRITES: &[&str] = &[
    "AddVServerGroupBackendServers",
    "RemoveVServerGroupBackendServers",
    "SetVServerGroupAttribute",
    "CreateVServerGroup",
    "DeleteVServerGroup",
    "SetLoadBalancerTCPListenerAttribute",
    "SetLoadBalancerUDPListenerAttribute",
];

/// mock-slb's answered calls so far: reads, writes, throttled.
pub async fn counted(lab: &Lab) -> (u64, u64, u64) {
    let (all, throttled) = lab.slb_counters(&[]).await;
    let (writes, _) = lab.slb_counters(WRITES).await;
    (all - writes, writes, throttled)
}

/// Starts a phase: peaks reset, costs and counters taken, the agent started.
pub async fn begin(
    lab: &Lab,
    name: &str,
    flags: &[String],
) -> Result<(Phase, Agent, (u64, u64, u64)), LabError> {
    lab.reset_peaks();
    let before = lab.usage();
    let counts = counted(lab).await;
    let t0 = lab.now();
    let agent = lab.agent(flags).await?;
    let phase = Phase {
        name: name.to_owned(),
        qps: lab.qps,
        flags: flags.to_vec(),
        secs: t0,
        before,
        ..Phase::default()
    };
    Ok((phase, agent, counts))
}

pub async fn end(lab: &Lab, mut phase: Phase, agent: Agent, counts: (u64, u64, u64)) -> Phase {
    let (r, w, t) = counted(lab).await;
    phase.reads = r - counts.0;
    phase.writes = w - counts.1;
    phase.throttled = t - counts.2;
    phase.after = lab.usage();
    phase.secs = lab.now() - phase.secs;
    agent.stop().await;
    phase
}

/// (a) and (b): a cold start; `drift_writes` is the least number of writes the drift
/// needs (0: in sync).
pub async fn cold_start(
    lab: &Lab,
    name: &str,
    flags: &[String],
    drift_writes: u64,
    drain: Duration,
) -> Result<Phase, LabError> {
    let (mut phase, agent, counts) = begin(lab, name, flags).await?;
    let t0 = lab.now();
    let gauge = cold_start_done(&agent, &lab.spec, Duration::from_secs(7200)).await?;
    phase.verify_secs = Some(lab.now() - t0);
    if gauge > 0.0 {
        phase.notes.push(format!(
            "every group read, yet the agent's cold-start gauge still said {gauge} groups"
        ));
    }
    phase.to_first_call_secs = agent.recorder.since(0).first().map(|c| c.at - t0);
    if drift_writes > 0 {
        // Stale backends are removed a drain window after their weight 0.
        tokio::time::sleep(drain + Duration::from_secs(5)).await;
    }
    let groups = lab.spec.services() as f64;
    let mut phase = end(lab, phase, agent, counts).await;
    let budget_secs = phase.reads as f64 / lab.qps;
    phase.notes.push(format!(
        "reads {} = {:.3} per group; writes {} (least needed {drift_writes}); verified in {:.1}s = {:.2} × reads/budget ({budget_secs:.1}s)",
        phase.reads,
        phase.reads as f64 / groups,
        phase.writes,
        phase.verify_secs.unwrap_or(0.0),
        phase.verify_secs.unwrap_or(0.0) / budget_secs.max(1e-9),
    ));
    Ok(phase)
}

/// The Services of the burst: half ENI, half Local (Cluster-mode pods change no backend).
pub fn burst_services(spec: &Spec, count: usize) -> Vec<usize> {
    let enis: Vec<usize> = (0..spec.services())
        .filter(|s| spec.mode(*s) == Mode::Eni)
        .collect();
    let locals: Vec<usize> = (0..spec.services())
        .filter(|s| spec.mode(*s) == Mode::Local)
        .collect();
    let half = count / 2;
    let step = |v: &Vec<usize>, n: usize| -> Vec<usize> {
        let stride = (v.len() / n.max(1)).max(1);
        v.iter().step_by(stride).take(n).copied().collect()
    };
    let mut out = step(&enis, count - half);
    out.extend(step(&locals, half));
    out
}

/// (c): deletions and creations across `services` while the cold start's full pass runs.
pub async fn burst(
    lab: &Lab,
    flags: &[String],
    services: &[usize],
    per_service: usize,
    lone: usize,
    margin: Duration,
    log: Option<&std::path::Path>,
) -> Result<Phase, LabError> {
    for s in services {
        lab.track_service(*s).await;
    }
    let (phase, agent, counts) = begin(lab, "c: burst during a full resync", flags).await?;
    let within = Duration::from_secs(3600);
    super::lab::until("the agent leading", within, || {
        agent.metric("slb_sync_leader", &[]) >= 1.0
    })
    .await?;
    super::lab::until("the resync under way", within, || {
        agent
            .recorder
            .since(0)
            .iter()
            .filter(|c| c.lane == Lane::Bulk)
            .count()
            >= 50
    })
    .await?;
    let t_burst = lab.now();
    let from = agent.recorder.len();
    let spec = &lab.spec;
    let mut work = Vec::new();
    for &s in services {
        for k in 0..per_service {
            let pods = lab.pods.clone();
            work.push(tokio::spawn(async move {
                (true, pods.delete(s, k, margin).await)
            }));
            let pods = lab.pods.clone();
            let p = spec.pods_of(s) + k;
            work.push(tokio::spawn(async move {
                (false, pods.create(s, p, Duration::from_secs(120)).await)
            }));
        }
    }
    let runs: Vec<(bool, PodRun)> = join_all(work).await.into_iter().flatten().collect();
    let burst_end = lab.now();
    // Lone deletions, one at a time, each once the previous one finished.
    let mut lone_runs = Vec::new();
    for k in 0..lone {
        let s = services[k % services.len()];
        lone_runs.push(
            lab.pods
                .delete(s, per_service + k / services.len(), margin)
                .await,
        );
    }
    let calls = agent.recorder.since(from);
    let mut phase = end(lab, phase, agent, counts).await;
    let deletions: Vec<&PodRun> = runs.iter().filter(|(d, _)| *d).map(|(_, r)| r).collect();
    let creations: Vec<&PodRun> = runs.iter().filter(|(d, _)| !*d).map(|(_, r)| r).collect();
    let w0: Vec<f64> = deletions
        .iter()
        .filter_map(|r| to_weight0(spec, &calls, r))
        .collect();
    let lone_w0: Vec<f64> = lone_runs
        .iter()
        .filter_map(|r| to_weight0(spec, &calls, r))
        .collect();
    let gates: Vec<f64> = creations
        .iter()
        .filter_map(|r| Some(r.marks.gate_open? - r.containers_ready?))
        .collect();
    let fail_open = runs
        .iter()
        .chain(
            lone_runs
                .iter()
                .map(|r| (true, r.clone()))
                .collect::<Vec<_>>()
                .iter(),
        )
        .filter(|(_, r)| r.marks.fail_open.is_some())
        .count();
    let errors: Vec<String> = runs
        .iter()
        .filter_map(|(_, r)| r.error.clone())
        .take(3)
        .collect();
    if let Some(path) = log {
        if let Err(e) = std::fs::write(path, burst_log(spec, &runs, &calls)) {
            phase
                .notes
                .push(format!("burst log {}: {e}", path.display()));
        }
    }
    let slots = slot_lateness(&calls, t_burst, lab.qps);
    let bulk_during = calls
        .iter()
        .filter(|c| c.lane == Lane::Bulk && c.at >= t_burst && c.at <= slots.busy_until)
        .count();
    phase.notes.push(format!("burst: {} deletions + {} creations across {} Services at t={t_burst:.1}s, all settled after {:.1}s", deletions.len(), creations.len(), services.len(), burst_end - t_burst));
    phase.notes.push(format!(
        "delete → weight-0 call: {} ({} without one)",
        Summary::of(&w0).show(),
        deletions.len() - w0.len()
    ));
    for mode in [Mode::Eni, Mode::Local] {
        let of_mode: Vec<f64> = deletions
            .iter()
            .filter(|r| spec.mode(r.service) == mode)
            .filter_map(|r| to_weight0(spec, &calls, r))
            .collect();
        phase.notes.push(format!(
            "  {mode:?}: {}; the pod's first call for its group: {}",
            Summary::of(&of_mode).show(),
            Summary::of(
                &deletions
                    .iter()
                    .filter(|r| spec.mode(r.service) == mode)
                    .filter_map(|r| {
                        first_call(&calls, r.at, |c| c.target == spec.group(r.service))
                            .map(|at| at - r.at)
                    })
                    .collect::<Vec<f64>>()
            )
            .show()
        ));
    }
    // The lab's EndpointSlice controller writes one endpoint at a time per Service: how
    // much of the figures above is the slice reaching mock-kube, not the agent.
    let lag = |runs: &[&PodRun]| -> Vec<f64> {
        runs.iter()
            .filter_map(|r| Some(r.endpoint_written? - r.at))
            .collect()
    };
    phase.notes.push(format!(
        "delete → endpoint terminating written: {}; written → weight-0 call: {}",
        Summary::of(&lag(&deletions)).show(),
        Summary::of(
            &deletions
                .iter()
                .filter_map(|r| Some(to_weight0(spec, &calls, r)? - (r.endpoint_written? - r.at)))
                .collect::<Vec<f64>>()
        )
        .show()
    ));
    phase.notes.push(format!(
        "create → endpoint written: {}; written → gate True: {}",
        Summary::of(&lag(&creations)).show(),
        Summary::of(
            &creations
                .iter()
                .filter_map(|r| Some(r.marks.gate_open? - r.endpoint_written?))
                .collect::<Vec<f64>>()
        )
        .show()
    ));
    phase.notes.push(format!(
        "lone deletion → weight-0 call: {}",
        Summary::of(&lone_w0).show()
    ));
    phase.notes.push(format!(
        "ContainersReady → gate True: {} ({} never)",
        Summary::of(&gates).show(),
        creations.len() - gates.len()
    ));
    phase.notes.push(format!("pod-facing calls {} in the busy period up to t={:.1}s: late against their slot (k ÷ budget) {} ; {} later than 1 s; bulk calls issued in that period: {bulk_during}", slots.calls, slots.busy_until, Summary::of(&slots.late).show(), slots.late.iter().filter(|l| **l > 1.0).count()));
    phase.notes.push(format!(
        "fail-open releases: {fail_open}; preStop waits that timed out: {}",
        deletions.iter().filter(|r| !r.prestop_drained).count()
            + lone_runs.iter().filter(|r| !r.prestop_drained).count()
    ));
    if !errors.is_empty() {
        phase
            .notes
            .push(format!("driver errors (first 3): {errors:?}"));
    }
    Ok(phase)
}

/// Each pod of the burst (seconds since the lab started) and each SLB call, a line each.
fn burst_log(spec: &Spec, runs: &[(bool, PodRun)], calls: &[Call]) -> String {
    let mut out = String::new();
    let secs = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
    for (deleted, r) in runs {
        out.push_str(&format!(
            "pod {} group={} service={} pod={} at={:.3} endpoint={} gate={} weight0_after={}\n",
            if *deleted { "deleted" } else { "created" },
            spec.group(r.service),
            r.service,
            r.pod,
            r.at,
            secs(r.endpoint_written),
            secs(r.marks.gate_open),
            secs(to_weight0(spec, calls, r)),
        ));
    }
    for c in calls {
        out.push_str(&format!(
            "call at={:.3} issued={:.3} {} lane={} target={} ok={} {:?}\n",
            c.at,
            c.issued,
            c.action,
            c.lane.as_str(),
            c.target,
            c.ok,
            c.backends
        ));
    }
    out
}

/// Delete → the first write that takes the pod's backend down: an ENI pod's IP at weight
/// 0, or a Local node's lower weight (0 when it was the node's last pod) or removal.
pub fn to_weight0(spec: &Spec, calls: &[Call], run: &PodRun) -> Option<f64> {
    let s = run.service;
    let group = spec.group(s);
    let at = match spec.mode(s) {
        Mode::Eni => {
            let ip = spec.pod_ip(s, run.pod);
            first_call(calls, run.at, |c| {
                c.target == group
                    && c.action == "SetVServerGroupAttribute"
                    && c.backends
                        .iter()
                        .any(|(_, b, w)| *w == 0 && b.is_some_and(|b| b.to_string() == ip))
            })
        }
        Mode::Local | Mode::Cluster => {
            let ecs = spec.ecs(spec.pod_node(s, run.pod));
            first_call(calls, run.at, |c| {
                c.target == group
                    && (c.action == "SetVServerGroupAttribute"
                        || c.action == "RemoveVServerGroupBackendServers")
                    && c.backends.iter().any(|(id, _, _)| *id == ecs)
            })
        }
    }?;
    Some(at - run.at)
}

/// Pod-facing calls (drain and pod lanes) against their ideal slots: the k-th after `start`
/// should go at `start + k / qps`; the busy period ends at the first gap of more than
/// two slots between pod-lane calls (later calls wait on drain windows, not the budget).
pub struct Slots {
    pub calls: usize,
    pub late: Vec<f64>,
    pub busy_until: f64,
}

pub fn slot_lateness(calls: &[Call], start: f64, qps: f64) -> Slots {
    let period = 1.0 / qps.max(1e-9);
    let pod: Vec<f64> = calls
        .iter()
        .filter(|c| c.lane.pod_facing() && c.at >= start)
        .map(|c| c.at)
        .collect();
    let mut late = Vec::new();
    let mut busy_until = start;
    for (k, at) in pod.iter().enumerate() {
        if k > 0 && at - pod[k - 1] > 2.0 * period + 1.0 {
            break;
        }
        late.push((at - (start + k as f64 * period)).max(0.0));
        busy_until = *at;
    }
    Slots {
        calls: late.len(),
        late,
        busy_until,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(at: f64, lane: Lane) -> Call {
        Call {
            at,
            issued: at,
            action: "DescribeVServerGroupAttribute",
            lane,
            target: String::new(),
            backends: Vec::new(),
            ok: true,
        }
    }

    #[test]
    fn pod_calls_are_measured_against_their_slots_until_the_first_gap() {
        let calls = vec![
            call(10.0, Lane::Pod),
            call(10.1, Lane::Bulk),
            call(10.2, Lane::Drain),
            call(11.5, Lane::Pod),
            call(30.0, Lane::Pod),
        ];
        let s = slot_lateness(&calls, 10.0, 5.0);
        assert_eq!(s.calls, 3);
        assert_eq!(s.busy_until, 11.5);
        let late: Vec<f64> = s.late.iter().map(|l| (l * 10.0).round() / 10.0).collect();
        assert_eq!(late, [0.0, 0.0, 1.1]);
    }
}
