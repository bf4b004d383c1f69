//! The kubelet of one node: runs the pods the scheduler bound to it as real [`App`]s,
//! reports readiness through `pods/status`, and terminates them the way the real kubelet
//! does, because the race lab is about the order of these steps.
//!
//! - Start: allocate the pod IP, start the app (it answers `not-ready` during its
//!   start-up delay), report `Running` with the IP and `Ready=False`.
//! - Readiness: with a `readinessProbe` (any kind; the lab probes HTTP `GET /healthz`)
//!   every `probe_period`, else ready as soon as the container runs; `Ready=True` only when
//!   that holds *and* every `spec.readinessGates` condition is True. Probing continues
//!   while terminating, as upstream.
//! - Deletion: preStop (`lifecycle.preStop.sleep`, or `exec` run as a real process with
//!   `POD_NAME`/`POD_NAMESPACE`/`POD_IP`; its output is discarded), then SIGTERM, then a
//!   kill at the grace deadline (the countdown includes preStop), then the delete with
//!   `gracePeriodSeconds=0` that lets mock-kube (with `graceful_pod_deletion`) remove the
//!   object once its finalizers are gone. From SIGTERM on the pod's address answers
//!   `stopped` (a stand-in for the refused SYN), for the rest of the run.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::{watcher, WatchStreamExt};
use rand::rngs::StdRng;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::apps::{App, AppConfig};
use crate::delay::Delay;
use crate::http::get_once;
use crate::AbortOnDrop;

/// Settings of one node's kubelet; delays are drawn per pod from the node's RNG.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    pub node: String,
    /// Pod IPs are `127.<subnet>.<node_index>.<n>`, n = 2, 3, … never reused within a
    /// run (`.1` is the node's own address); distinct subnets let clusters run side by side.
    pub subnet: u8,
    pub node_index: u8,
    pub namespace: String,
    pub container_port: u16,
    pub startup: Delay,
    pub response: Delay,
    pub idle_close: Duration,
    pub probe_period: Duration,
    /// Where every pod's start-to-Ready and delete-to-stopped times go.
    pub times: PodTimes,
}

/// Pod timings of a run, from every node's kubelet.
#[derive(Debug, Clone, Default)]
pub struct PodTimes(Arc<Mutex<PodTimesInner>>);

#[derive(Debug, Default, Clone)]
pub struct PodTimesInner {
    /// Pod started (the kubelet saw it) → `Ready` True, once per pod (the gate's cost
    /// shows here).
    pub to_ready: Vec<Duration>,
    /// Deletion seen → container stopped (preStop, SIGTERM, exit or kill).
    pub held: Vec<Duration>,
    /// Pods whose container was killed at the end of its grace period.
    pub killed: u64,
    /// Pods whose preStop command did not succeed (`wait-drained` gave up, was told
    /// the pod was released without a confirmed drain, or ran into the grace deadline):
    /// the container stopped without the drain confirmed.
    pub prestop_failed: u64,
}

impl PodTimes {
    fn with(&self, f: impl FnOnce(&mut PodTimesInner)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// What was recorded so far.
    pub fn snapshot(&self) -> PodTimesInner {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The IP the `n`-th pod (n ≥ 2) started on node `node_index` gets (so the lab can
/// declare ENIs).
pub fn pod_ip(subnet: u8, node_index: u8, n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, subnet, node_index, n))
}

/// The pod's preStop hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreStop {
    None,
    Sleep(Duration),
    Exec(Vec<String>),
}

/// Reads the first container's preStop hook.
pub fn pre_stop(pod: &Pod) -> PreStop {
    let hook = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.lifecycle.as_ref())
        .and_then(|l| l.pre_stop.as_ref());
    match hook {
        Some(h) if h.sleep.is_some() => PreStop::Sleep(Duration::from_secs(
            h.sleep.as_ref().map_or(0, |s| s.seconds.max(0) as u64),
        )),
        Some(h) => match h.exec.as_ref().and_then(|e| e.command.clone()) {
            Some(cmd) if !cmd.is_empty() => PreStop::Exec(cmd),
            _ => PreStop::None,
        },
        None => PreStop::None,
    }
}

/// Whether every readiness gate's condition is True.
pub fn gates_pass(pod: &Pod) -> bool {
    let gates = pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.clone())
        .unwrap_or_default();
    let conds = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    gates.iter().all(|g| {
        conds
            .iter()
            .any(|c| c.type_ == g.condition_type && c.status == "True")
    })
}

struct Ctx {
    cfg: KubeletConfig,
    api: Api<Pod>,
    rng: Mutex<StdRng>,
    next_ip: AtomicU8,
    graveyard: Mutex<Vec<App>>,
}

/// A running kubelet; dropping it stops every pod it runs (their apps are dropped).
#[derive(Debug)]
pub struct Kubelet {
    _task: AbortOnDrop,
}

impl Kubelet {
    /// Starts watching the pods bound to `cfg.node`.
    pub fn start(client: kube::Client, cfg: KubeletConfig, rng: StdRng) -> Kubelet {
        let api: Api<Pod> = Api::namespaced(client, &cfg.namespace);
        let wcfg = watcher::Config::default().fields(&format!("spec.nodeName={}", cfg.node));
        let ctx = Arc::new(Ctx {
            cfg,
            api: api.clone(),
            rng: Mutex::new(rng),
            next_ip: AtomicU8::new(2),
            graveyard: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(async move {
            let mut workers: HashMap<String, (watch::Sender<Arc<Pod>>, AbortOnDrop)> =
                HashMap::new();
            let mut events = std::pin::pin!(watcher(api, wcfg).default_backoff());
            while let Some(ev) = events.next().await {
                let pod = match ev {
                    Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
                    Ok(watcher::Event::Delete(p)) => {
                        workers.remove(&p.metadata.uid.unwrap_or_default());
                        continue;
                    }
                    _ => continue,
                };
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                let pod = Arc::new(pod);
                match workers.get(&uid) {
                    Some((tx, _)) => {
                        tx.send_replace(pod);
                    }
                    None => {
                        let (tx, rx) = watch::channel(pod);
                        let worker = AbortOnDrop(tokio::spawn(run_pod(ctx.clone(), rx)));
                        workers.insert(uid, (tx, worker));
                    }
                }
            }
        });
        Kubelet {
            _task: AbortOnDrop(task),
        }
    }
}

async fn patch_status(ctx: &Ctx, name: &str, status: serde_json::Value) {
    let patch = json!({"status": status});
    if let Err(e) = ctx
        .api
        .patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
    {
        tracing::debug!(error = %e, pod = %name, "status patch failed");
    }
}

/// `ContainersReady` is the probe alone; `Ready` also needs the readiness gates.
fn ready_conditions(containers: bool, ready: bool) -> serde_json::Value {
    let word = |b: bool| if b { "True" } else { "False" };
    let now = jiff_now();
    json!([{"type": "ContainersReady", "status": word(containers), "lastTransitionTime": now},
           {"type": "Ready", "status": word(ready), "lastTransitionTime": now}])
}

fn jiff_now() -> String {
    jiff::Timestamp::now().to_string()
}

/// One pod from start to removal.
async fn run_pod(ctx: Arc<Ctx>, mut rx: watch::Receiver<Arc<Pod>>) {
    let pod = rx.borrow_and_update().clone();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let (startup, response) = {
        let mut rng = ctx.rng.lock().unwrap_or_else(|p| p.into_inner());
        (
            ctx.cfg.startup.sample(&mut *rng),
            ctx.cfg.response.sample(&mut *rng),
        )
    };
    let started = Instant::now();
    let mut ready_seen = false;
    let n = ctx.next_ip.fetch_add(1, Ordering::Relaxed);
    let ip = pod_ip(ctx.cfg.subnet, ctx.cfg.node_index, n);
    let app = if pod.metadata.deletion_timestamp.is_none() {
        let cfg = AppConfig {
            name: name.clone(),
            addr: SocketAddr::new(ip, ctx.cfg.container_port),
            startup_delay: startup,
            response_delay: response,
            idle_close: ctx.cfg.idle_close,
        };
        match App::start(cfg).await {
            Ok(app) => Some(app),
            Err(e) => {
                tracing::warn!(error = %e, pod = %name, %ip, "app failed to bind");
                None
            }
        }
    } else {
        None
    };
    let Some(app) = app else {
        confirm_deleted(&ctx, &name).await;
        return;
    };
    patch_status(
        &ctx,
        &name,
        json!({"phase": "Running", "podIP": ip.to_string(), "podIPs": [{"ip": ip.to_string()}],
        "hostIP": "127.0.0.1", "conditions": ready_conditions(false, false)}),
    )
    .await;
    let mut written = (false, false);
    // Without a readinessProbe a container counts as ready as soon as it runs.
    let has_probe = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .is_some_and(|c| c.readiness_probe.is_some());
    let mut probe_ok = !has_probe;
    let mut tick = tokio::time::interval(ctx.cfg.probe_period);
    let mut term: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>> =
        None;
    loop {
        tokio::select! {
            _ = tick.tick(), if has_probe => {
                probe_ok = get_once(app.addr(), "/healthz", ctx.cfg.probe_period.max(Duration::from_millis(500)))
                    .await.is_ok_and(|r| r.status == 200);
            }
            changed = rx.changed() => if changed.is_err() { return },
            _ = async { term.as_mut().unwrap().await }, if term.is_some() => break,
        }
        let pod = rx.borrow().clone();
        let now = (probe_ok, probe_ok && gates_pass(&pod));
        if now != written {
            patch_status(
                &ctx,
                &name,
                json!({"conditions": ready_conditions(now.0, now.1)}),
            )
            .await;
            written = now;
            if now.1 && !ready_seen {
                ready_seen = true;
                ctx.cfg.times.with(|t| t.to_ready.push(started.elapsed()));
            }
        }
        if term.is_none() && pod.metadata.deletion_timestamp.is_some() {
            let grace = pod
                .metadata
                .deletion_grace_period_seconds
                .or_else(|| {
                    pod.spec
                        .as_ref()
                        .and_then(|s| s.termination_grace_period_seconds)
                })
                .unwrap_or(30)
                .max(0) as u64;
            let deadline = Instant::now() + Duration::from_secs(grace);
            let hook = pre_stop(&pod);
            let times = ctx.cfg.times.clone();
            let (app, name, ns) = (&app, &name, &ctx.cfg.namespace);
            term = Some(Box::pin(async move {
                let seen = Instant::now();
                let (prestop_ok, killed) = terminate(app, hook, deadline, name, ns, ip).await;
                times.with(|t| {
                    t.held.push(seen.elapsed());
                    t.killed += u64::from(killed);
                    t.prestop_failed += u64::from(!prestop_ok);
                });
            }));
        }
    }
    drop(term);
    patch_status(
        &ctx,
        &name,
        json!({"phase": "Succeeded", "conditions": ready_conditions(false, false)}),
    )
    .await;
    // A dead pod's IP keeps refusing (answering `stopped`) for the rest of the run; IPs
    // are never reused, so a late SLB or kube-proxy rule still finds it. Moved out before
    // the final delete, whose DELETED event drops this worker.
    ctx.graveyard
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(app);
    confirm_deleted(&ctx, &name).await;
}

/// Runs the termination: whether the preStop hook succeeded (no hook, a sleep, or a
/// command that exited 0 before the deadline) and whether the container had to be killed
/// at the deadline.
async fn terminate(
    app: &App,
    hook: PreStop,
    deadline: Instant,
    name: &str,
    ns: &str,
    ip: IpAddr,
) -> (bool, bool) {
    let mut prestop_ok = true;
    match hook {
        PreStop::None => {}
        PreStop::Sleep(d) => tokio::time::sleep_until(deadline.min(Instant::now() + d)).await,
        PreStop::Exec(cmd) => {
            let mut c = tokio::process::Command::new(&cmd[0]);
            c.args(&cmd[1..])
                .env("POD_NAME", name)
                .env("POD_NAMESPACE", ns)
                .env("POD_IP", ip.to_string())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true);
            match c.spawn() {
                Ok(mut child) => {
                    prestop_ok = tokio::time::timeout_at(deadline, child.wait())
                        .await
                        .is_ok_and(|status| status.is_ok_and(|s| s.success()));
                }
                Err(e) => {
                    prestop_ok = false;
                    tracing::warn!(error = %e, pod = %name, "preStop exec failed to start")
                }
            }
        }
    }
    app.sigterm();
    let exited = tokio::time::timeout_at(deadline, app.exited())
        .await
        .is_ok();
    app.kill();
    (prestop_ok, !exited)
}

/// The kubelet's final delete; the object goes once finalizers allow.
async fn confirm_deleted(ctx: &Ctx, name: &str) {
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    if let Err(e) = ctx.api.delete(name, &dp).await {
        tracing::debug!(error = %e, pod = %name, "final delete failed");
    }
}

#[cfg(test)]
#[path = "kubelet_tests.rs"]
mod tests;
