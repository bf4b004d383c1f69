//! The `full` preset: Kubernetes' scale envelope (5,000 nodes, 150,000 pods, 10,000
//! Services) and its phases, plus (d) the node pool upgrade.
//!
//! The mode mix is mostly ENI and Local with a hundred Cluster-mode Services, each of
//! those on one 100-node pool (`backend-label`): a Cluster-mode group holds every eligible
//! node, and an ECS instance may back only 50 SLB instances by default, so large clusters
//! keep Cluster mode for few Services on labelled pools.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::Node;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::Api;
use serde_json::json;

use super::agent_process;
use super::lab::{cold_start_done, Lab, LabError};
use super::phases::{self, to_weight0, Phase};
use super::pods::PodRun;
use super::spec::{desired_backends, Mode, Spec, Tier};
use super::stats::Summary;

/// Settings of the preset (flags of `scale-lab --preset full`).
#[derive(Debug, Clone)]
pub struct FullOptions {
    pub spec: Spec,
    /// Budget of phases a, b and d (agent `--qps`, mock-slb's account limit).
    pub qps: f64,
    pub burst: u32,
    /// Budget of phase c.
    pub qps_c: f64,
    pub phases: Vec<char>,
    /// Agent drain window (`--default-drain-seconds`).
    pub drain_secs: u32,
    pub margin_secs: u64,
    pub agent_flags: Vec<String>,
    /// Phase c: Services, and deletions and creations per Service; lone deletions after.
    pub burst_services: usize,
    pub per_service: usize,
    pub lone: usize,
    /// Phase d: nodes drained, and seconds between two drain starts.
    pub drained_nodes: usize,
    pub node_interval: f64,
    /// Run the agent as this `slb-sync` binary in a process of its own (cold starts only).
    pub agent_bin: Option<std::path::PathBuf>,
    /// Phase c: where to write each pod's and each call's times (see `phases::burst`).
    pub burst_log: Option<std::path::PathBuf>,
}

/// The envelope: 5,000 nodes in 50 pools, 10,000 Services (100 Cluster, 3,900 Local,
/// 6,000 ENI) of 15 pods each, 5 spare pod slots per Service, one instance per Service.
pub fn envelope() -> Spec {
    Spec {
        nodes: 5_000,
        pools: 50,
        namespaces: 100,
        cluster: Tier {
            services: 100,
            pods: 15,
        },
        local: Tier {
            services: 3_900,
            pods: 15,
        },
        eni: Tier {
            services: 6_000,
            pods: 15,
        },
        spare: 5,
        packing: 1,
        grace_secs: 30,
        eni_drain_secs: None,
        cluster_id: "scale".into(),
        drift: 0.0,
    }
}

fn flags(o: &FullOptions) -> Vec<String> {
    let mut f = vec![
        "--default-drain-seconds".to_owned(),
        o.drain_secs.to_string(),
        "--finalizer-grace-margin-seconds".into(),
        o.margin_secs.to_string(),
    ];
    f.extend(o.agent_flags.iter().cloned());
    f
}

/// Runs the phases asked for, in order, on one pair of doubles.
pub async fn run(o: &FullOptions) -> Result<Vec<Phase>, LabError> {
    let mut lab = Lab::start(o.spec.clone(), o.qps, o.burst).await?;
    eprintln!("doubles up in {:.1}s", lab.load_secs);
    let flags = flags(o);
    let drain = Duration::from_secs(u64::from(o.drain_secs));
    let margin = Duration::from_secs(o.margin_secs);
    let mut out = Vec::new();
    for phase in &o.phases {
        eprintln!("phase {phase}: starting");
        let result = match (phase, &o.agent_bin) {
            ('a', Some(bin)) => {
                let name = "a: cold start, SLB in sync";
                agent_process::cold_start(&lab, bin, name, &flags, 0, drain).await?
            }
            ('c' | 'd', Some(_)) => {
                eprintln!("phase {phase}: needs the in-process agent's SLB call log, skipped");
                continue;
            }
            ('a', None) => {
                phases::cold_start(&lab, "a: cold start, SLB in sync", &flags, 0, drain).await?
            }
            ('b', bin) => {
                let drifted = Spec {
                    drift: 0.05,
                    ..o.spec.clone()
                };
                let least: u64 = (0..drifted.services())
                    .filter_map(|s| drifted.drift_of(s))
                    .map(|d| d.writes())
                    .sum();
                lab.restart_slb(&drifted).await?;
                let name = "b: cold start, 5% of groups drifted";
                let p = match bin {
                    Some(bin) => {
                        agent_process::cold_start(&lab, bin, name, &flags, least, drain).await?
                    }
                    None => phases::cold_start(&lab, name, &flags, least, drain).await?,
                };
                lab.restart_slb(&o.spec).await?;
                p
            }
            ('c', None) => {
                let qps = lab.qps;
                lab.qps = o.qps_c;
                lab.restart_slb(&o.spec).await?;
                let services = phases::burst_services(&lab.spec, o.burst_services);
                let p = phases::burst(
                    &lab,
                    &flags,
                    &services,
                    o.per_service,
                    o.lone,
                    margin,
                    o.burst_log.as_deref(),
                )
                .await?;
                lab.qps = qps;
                lab.restart_slb(&o.spec).await?;
                p
            }
            ('d', None) => drain_pool(&lab, o, &flags, margin).await?,
            (other, _) => {
                eprintln!("phase {other}: unknown, skipped");
                continue;
            }
        };
        eprintln!("{}", show(&result));
        out.push(result);
    }
    lab.stop().await;
    Ok(out)
}

/// The groups that hold node `n` and need two writes (weight 0, removal) when it goes:
/// Cluster-mode groups of its pool, and Local and ENI groups with pods on it.
fn groups_on(
    spec: &Spec,
    n: usize,
    pods_on: &BTreeMap<usize, Vec<(usize, usize)>>,
) -> HashSet<usize> {
    let mut groups: HashSet<usize> = (0..spec.cluster.services)
        .filter(|s| {
            desired_backends(spec, *s)
                .iter()
                .any(|b| b.server_id == spec.ecs(n))
        })
        .collect();
    groups.extend(pods_on.get(&n).into_iter().flatten().map(|(s, _)| *s));
    groups
}

/// (d): `drained_nodes` nodes of pool 0, one drain starting every `node_interval`
/// seconds: the node is tainted `ToBeDeletedByClusterAutoscaler` and cordoned, its pods
/// evicted (deleted with their grace period, preStop and all), then the node deleted.
pub async fn drain_pool(
    lab: &Lab,
    o: &FullOptions,
    flags: &[String],
    margin: Duration,
) -> Result<Phase, LabError> {
    let spec = lab.spec.clone();
    let nodes: Vec<usize> = (0..spec.nodes)
        .filter(|n| spec.pool_of_node(*n) == 0)
        .take(o.drained_nodes)
        .collect();
    let wanted: HashSet<usize> = nodes.iter().copied().collect();
    let mut pods_on: BTreeMap<usize, Vec<(usize, usize)>> = BTreeMap::new();
    for s in 0..spec.services() {
        for p in 0..spec.pods_of(s) {
            let n = spec.pod_node(s, p);
            if wanted.contains(&n) {
                pods_on.entry(n).or_default().push((s, p));
            }
        }
    }
    let least: u64 = nodes
        .iter()
        .map(|n| 2 * groups_on(&spec, *n, &pods_on).len() as u64)
        .sum();
    for n in &nodes {
        lab.track_node(*n).await;
    }
    let name = "d: node pool upgrade (drain node after node)";
    let (phase, agent, counts) = phases::begin(lab, name, flags).await?;
    cold_start_done(&agent, &spec, Duration::from_secs(7200)).await?;
    let from = agent.recorder.len();
    let (_, writes_before, _) = counted_writes(lab).await;
    let t_drain = lab.now();
    let mut work = Vec::new();
    for (i, n) in nodes.iter().copied().enumerate() {
        let delay = Duration::from_secs_f64(o.node_interval * i as f64);
        let pods = lab.pods.clone();
        let client = lab.client.clone();
        let name = spec.node(n);
        let evict = pods_on.get(&n).cloned().unwrap_or_default();
        work.push(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let nodes: Api<Node> = Api::all(client);
            let taint = json!({"spec": {"unschedulable": true, "taints": [
                {"key": "ToBeDeletedByClusterAutoscaler", "value": "1", "effect": "NoSchedule"}]}});
            let _ = nodes
                .patch(&name, &PatchParams::default(), &Patch::Merge(taint))
                .await;
            let runs = join_all(evict.iter().map(|(s, p)| pods.delete(*s, *p, margin))).await;
            let _ = nodes.delete(&name, &DeleteParams::default()).await;
            runs
        }));
    }
    let runs: Vec<_> = join_all(work)
        .await
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    let settled = lab.now() - t_drain;
    // The last Cluster-mode removals follow the last node's drain window.
    tokio::time::sleep(Duration::from_secs(u64::from(o.drain_secs) + 5)).await;
    let (_, writes_after, _) = counted_writes(lab).await;
    let calls = agent.recorder.since(from);
    let mut phase = phases::end(lab, phase, agent, counts).await;
    // A pod an earlier phase deleted (phase c's burst) cannot be evicted: its run has no
    // deletion time, and is no eviction to measure.
    let (runs, failed): (Vec<PodRun>, Vec<PodRun>) =
        runs.into_iter().partition(|r| r.error.is_none());
    if !failed.is_empty() {
        phase.notes.push(format!(
            "{} pods not evicted (gone already, or the delete failed): {:?}",
            failed.len(),
            failed
                .first()
                .and_then(|r| r.error.as_deref())
                .unwrap_or_default()
        ));
    }
    let writes = writes_after - writes_before;
    let w0: Vec<f64> = runs
        .iter()
        .filter_map(|r| to_weight0(&spec, &calls, r))
        .collect();
    let fail_open = runs.iter().filter(|r| r.marks.fail_open.is_some()).count();
    let by_mode = |m: Mode| runs.iter().filter(|r| spec.mode(r.service) == m).count();
    phase.notes.push(format!(
        "{} nodes drained {:.1}s apart; {} pods evicted (Cluster {}, Local {}, ENI {}), settled after {settled:.1}s",
        nodes.len(), o.node_interval, runs.len(), by_mode(Mode::Cluster), by_mode(Mode::Local), by_mode(Mode::Eni)
    ));
    phase.notes.push(format!(
        "SLB writes during the drains {writes}; least needed {least} (2 per group per drained node) = {:.3} × the bound",
        writes as f64 / (least.max(1)) as f64
    ));
    phase.notes.push(format!("evicted pod → weight-0 call: {}; fail-open releases: {fail_open}; preStop waits that timed out: {}",
        Summary::of(&w0).show(), runs.iter().filter(|r| !r.prestop_drained).count()));
    Ok(phase)
}

async fn counted_writes(lab: &Lab) -> (u64, u64, u64) {
    let (writes, throttled) = lab.slb_counters(phases::WRITES).await;
    (0, writes, throttled)
}

fn mib(v: f64) -> String {
    format!("{v:.0} MiB")
}

/// A phase in a few lines.
pub fn show(p: &Phase) -> String {
    let cpu = |a: f64, b: f64| format!("{:.1}", b - a);
    if let Some(agent) = &p.agent_process {
        return show_process(p, agent);
    }
    let mut out = format!(
        "{} (budget {} calls/s, {:.1}s): SLB reads {}, writes {}, throttled {}\n  agent process peak RSS {} (now {}), agent CPU {} s (process {} s); mock-kube peak {} CPU {} s; mock-slb peak {} CPU {} s",
        p.name, p.qps, p.secs, p.reads, p.writes, p.throttled,
        mib(p.after.lab.hwm_mib), mib(p.after.lab.rss_mib),
        cpu(p.before.agent_cpu_secs, p.after.agent_cpu_secs),
        cpu(p.before.lab.cpu_secs, p.after.lab.cpu_secs),
        mib(p.after.kube.hwm_mib), cpu(p.before.kube.cpu_secs, p.after.kube.cpu_secs),
        mib(p.after.slb.hwm_mib), cpu(p.before.slb.cpu_secs, p.after.slb.cpu_secs),
    );
    push_notes(&mut out, p);
    out
}

fn push_notes(out: &mut String, p: &Phase) {
    if let Some(t) = p.to_first_call_secs {
        out.push_str(&format!(
            "\n  start → first SLB call (initial lists): {t:.1}s"
        ));
    }
    for note in &p.notes {
        out.push_str("\n  ");
        out.push_str(note);
    }
}

/// A phase whose agent ran in its own process: that process's figures are the agent's.
fn show_process(p: &Phase, agent: &super::procs::Usage) -> String {
    let cpu = |a: f64, b: f64| format!("{:.1}", b - a);
    let mut out = format!(
        "{} (budget {} calls/s, {:.1}s): SLB reads {}, writes {}, throttled {}\n  agent process (slb-sync run) peak RSS {} (now {}), CPU {:.1} s; lab process peak {}; mock-kube peak {} CPU {} s; mock-slb peak {} CPU {} s",
        p.name, p.qps, p.secs, p.reads, p.writes, p.throttled,
        mib(agent.hwm_mib), mib(agent.rss_mib), agent.cpu_secs,
        mib(p.after.lab.hwm_mib),
        mib(p.after.kube.hwm_mib), cpu(p.before.kube.cpu_secs, p.after.kube.cpu_secs),
        mib(p.after.slb.hwm_mib), cpu(p.before.slb.cpu_secs, p.after.slb.cpu_secs),
    );
    push_notes(&mut out, p);
    out
}
