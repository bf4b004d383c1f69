//! The agent as a process of its own: the `slb-sync run` binary against the lab's
//! doubles, so that its peak resident set (`VmHWM`) and CPU are the agent's alone. In
//! the lab's process the agent shares those figures with the driver and the generated
//! cluster. Without the in-process recorder, the cold start is followed through mock-slb's
//! call counters and the agent's own `/metrics`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::lab::{Lab, LabError};
use super::phases::{self, Phase};
use super::procs::{self, Usage};

/// A running `slb-sync run`; killed when dropped.
pub struct AgentProcess {
    child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
    kubeconfig: PathBuf,
}

/// The binary next to this one (`target/release/slb-sync` for `target/release/scale-lab`).
pub fn default_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("slb-sync")))
        .unwrap_or_else(|| PathBuf::from("slb-sync"))
}

fn failed(message: String) -> LabError {
    LabError::Timeout(message)
}

/// `flags` with `--http-addr` set to `addr` (the lab's base flags bind port 0, which a
/// separate process could not report back).
fn with_http_addr(flags: &[String], addr: SocketAddr) -> Vec<String> {
    let mut out = Vec::with_capacity(flags.len() + 2);
    let mut it = flags.iter();
    while let Some(f) = it.next() {
        if f == "--http-addr" {
            it.next();
        } else if !f.starts_with("--http-addr=") {
            out.push(f.clone());
        }
    }
    out.extend(["--http-addr".to_owned(), addr.to_string()]);
    out
}

impl AgentProcess {
    /// Starts `bin run <flags>` against mock-kube at `kube_url`; returns once its
    /// `/metrics` answers.
    pub async fn start(bin: &Path, flags: &[String], kube_url: &str) -> Result<Self, LabError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| failed(format!("no free port for the agent: {e}")))?;
        let kubeconfig =
            std::env::temp_dir().join(format!("scale-lab-{}-kubeconfig", std::process::id()));
        let config = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: lab\n\
             clusters: [{{name: lab, cluster: {{server: \"{kube_url}\"}}}}]\n\
             users: [{{name: lab, user: {{}}}}]\n\
             contexts: [{{name: lab, context: {{cluster: lab, user: lab, namespace: default}}}}]\n"
        );
        std::fs::write(&kubeconfig, config)
            .map_err(|e| failed(format!("cannot write {}: {e}", kubeconfig.display())))?;
        let child = Command::new(bin)
            .arg("run")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(with_http_addr(flags, port))
            .env("RUST_LOG", "warn,slb_sync::agent=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed(format!("cannot start {}: {e}", bin.display())))?;
        let agent = AgentProcess {
            pid: child.id().unwrap_or(0),
            child,
            addr: port,
            kubeconfig,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while agent.metrics().await.is_none() {
            if Instant::now() > deadline {
                return Err(failed(format!(
                    "{} did not answer /metrics on {port} within 30 s",
                    bin.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(agent)
    }

    async fn metrics(&self) -> Option<String> {
        let reply = crate::http::get_once(self.addr, "/metrics", Duration::from_secs(10))
            .await
            .ok()?;
        (reply.status == 200).then_some(reply.body)
    }

    /// Sum of a counter or gauge over the series whose labels contain every pair (0 when
    /// `/metrics` does not answer).
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let text = self.metrics().await.unwrap_or_default();
        sum_metric(&text, name, labels)
    }

    pub fn usage(&self) -> Usage {
        procs::usage(self.pid)
    }

    /// SIGTERM (the agent releases its lease and finishes its passes), then a kill after
    /// 30 s.
    pub async fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

/// Sum of `name`'s samples in Prometheus text whose labels include `labels`.
pub fn sum_metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            let wanted = metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            wanted.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// (a) or (b) with the agent in its own process: waits until it leads, mock-slb answered
/// at least one DescribeVServerGroupAttribute per group since it started, and its
/// cold-start gauge is 0.
pub async fn cold_start(
    lab: &Lab,
    bin: &Path,
    name: &str,
    flags: &[String],
    drift_writes: u64,
    drain: Duration,
) -> Result<Phase, LabError> {
    lab.reset_peaks();
    let before = lab.usage();
    let counts = phases::counted(lab).await;
    let (describes, _) = lab.slb_counters(&["DescribeVServerGroupAttribute"]).await;
    let (calls, _) = lab.slb_counters(&[]).await;
    let t0 = lab.now();
    let mut all = base_flags(lab);
    all.extend(flags.iter().cloned());
    let agent = AgentProcess::start(bin, &all, &lab.kube.addr).await?;
    let groups = lab.spec.services() as u64;
    let mut first_call = None;
    let mut said = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(7200);
    loop {
        let (now_calls, _) = lab.slb_counters(&[]).await;
        if first_call.is_none() && now_calls > calls {
            first_call = Some(lab.now() - t0);
        }
        let (read, _) = lab.slb_counters(&["DescribeVServerGroupAttribute"]).await;
        let read = read - describes;
        if read >= groups
            && agent.metric("slb_sync_leader", &[]).await >= 1.0
            && agent.metric("slb_sync_cold_start_groups", &[]).await == 0.0
        {
            break;
        }
        if said.elapsed() >= Duration::from_secs(30) {
            said = Instant::now();
            eprintln!(
                "  cold start (agent pid {}), {:.0}s in: group reads {read}/{groups}, peak RSS {:.0} MiB",
                agent.pid,
                lab.now() - t0,
                agent.usage().hwm_mib
            );
        }
        if Instant::now() > deadline {
            agent.stop().await;
            return Err(failed(format!("{name}: the cold start did not end")));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let verify = lab.now() - t0;
    if drift_writes > 0 {
        tokio::time::sleep(drain + Duration::from_secs(5)).await;
    }
    let (r, w, t) = phases::counted(lab).await;
    let usage = agent.usage();
    agent.stop().await;
    let reads = r - counts.0;
    let budget_secs = reads as f64 / lab.qps;
    Ok(Phase {
        name: format!("{name} (agent process)"),
        qps: lab.qps,
        flags: flags.to_vec(),
        secs: lab.now() - t0,
        reads,
        writes: w - counts.1,
        throttled: t - counts.2,
        to_first_call_secs: first_call,
        verify_secs: Some(verify),
        before,
        after: lab.usage(),
        agent_process: Some(usage),
        notes: vec![format!(
            "reads {reads} = {:.3} per group; writes {} (least needed {drift_writes}); verified in {verify:.1}s = {:.2} × reads/budget ({budget_secs:.1}s)",
            reads as f64 / groups.max(1) as f64,
            w - counts.1,
            verify / budget_secs.max(1e-9),
        )],
    })
}

/// The lab's agent flags (as [`Lab::agent`] gives them) for a process of its own.
fn base_flags(lab: &Lab) -> Vec<String> {
    let mut flags = super::agent::base_flags(&lab.slb.addr, &lab.spec.cluster_id);
    flags.extend([
        "--qps".to_owned(),
        lab.qps.to_string(),
        "--burst".into(),
        lab.burst.to_string(),
    ]);
    flags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_address_is_replaced() {
        let flags: Vec<String> = ["--qps", "5", "--http-addr", "127.0.0.1:0", "--x"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let addr: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        assert_eq!(
            with_http_addr(&flags, addr),
            ["--qps", "5", "--x", "--http-addr", "127.0.0.1:9000"]
        );
    }

    #[test]
    fn metrics_are_summed_over_matching_series() {
        let text = "# HELP x\nslb_sync_leader 1\nq{lane=\"bulk\"} 3\nq{lane=\"pod\"} 2\nqq 7\n";
        assert_eq!(sum_metric(text, "slb_sync_leader", &[]), 1.0);
        assert_eq!(sum_metric(text, "q", &[]), 5.0);
        assert_eq!(sum_metric(text, "q", &[("lane", "bulk")]), 3.0);
    }
}
