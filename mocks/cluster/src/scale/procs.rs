//! Processes and their costs: the doubles run as child processes of the lab's own binary
//! (so the lab process holds the agent and the driver only), and memory and CPU are read
//! from `/proc` per process, and per thread name inside the lab process.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A double serving in a child process; killed when dropped.
pub struct Served {
    pub child: Child,
    pub pid: u32,
    /// What the child printed after `READY `: its address.
    pub addr: String,
}

/// Why a double could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot start `{what}`: {source}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{what}` ended before it was ready (see its stderr above)")]
    NotReady { what: String },
}

/// Runs this binary with `args` (a `serve-…` role), waits for its `READY <addr>` line.
pub async fn serve(args: &[String]) -> Result<Served, ServeError> {
    let what = args.join(" ");
    let exe = std::env::current_exe().map_err(|source| ServeError::Spawn {
        what: what.clone(),
        source,
    })?;
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ServeError::Spawn {
            what: what.clone(),
            source,
        })?;
    let pid = child.id().unwrap_or(0);
    let stdout = child
        .stdout
        .take()
        .ok_or(ServeError::NotReady { what: what.clone() })?;
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(addr) = line.strip_prefix("READY ") {
            // Keep draining stdout so the child never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return Ok(Served {
                child,
                pid,
                addr: addr.trim().to_owned(),
            });
        }
    }
    Err(ServeError::NotReady { what })
}

impl Served {
    /// Asks the child to stop (closes its stdin) and waits up to 10 s, then kills it.
    pub async fn stop(mut self) {
        drop(self.child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

static HEAP: std::sync::OnceLock<fn() -> usize> = std::sync::OnceLock::new();

/// Where live heap bytes of this process are read from (a counting allocator the binary
/// installs; the library cannot, it forbids unsafe code).
pub fn set_heap_probe(probe: fn() -> usize) {
    let _ = HEAP.set(probe);
}

/// Live heap of this process in MiB, when a probe is installed.
pub fn heap_mib() -> Option<f64> {
    HEAP.get().map(|probe| probe() as f64 / (1024.0 * 1024.0))
}

/// Memory and CPU of a process (or of some of its threads) at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Usage {
    /// Peak resident set since start or the last [`reset_peak`], MiB.
    pub hwm_mib: f64,
    pub rss_mib: f64,
    /// User + system CPU seconds.
    pub cpu_secs: f64,
}

fn ticks_per_sec() -> f64 {
    // CLK_TCK is 100 on every Linux this runs on; no libc call without unsafe code.
    100.0
}

fn status_kib(status: &str, key: &str) -> f64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// utime + stime (fields 14 and 15) of a `stat` line, in seconds.
pub fn stat_cpu_secs(stat: &str) -> f64 {
    // The command name may hold spaces: count fields after its closing parenthesis.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    (field(11).unwrap_or(0.0) + field(12).unwrap_or(0.0)) / ticks_per_sec()
}

/// The process's memory and CPU (`pid` 0: this process).
pub fn usage(pid: u32) -> Usage {
    let dir = if pid == 0 {
        "/proc/self".to_owned()
    } else {
        format!("/proc/{pid}")
    };
    let status = std::fs::read_to_string(format!("{dir}/status")).unwrap_or_default();
    let stat = std::fs::read_to_string(format!("{dir}/stat")).unwrap_or_default();
    Usage {
        hwm_mib: status_kib(&status, "VmHWM:") / 1024.0,
        rss_mib: status_kib(&status, "VmRSS:") / 1024.0,
        cpu_secs: stat_cpu_secs(&stat),
    }
}

/// CPU seconds of this process's threads whose name starts with `prefix` (the agent's
/// runtime names its threads, so its CPU is told apart from the driver's).
pub fn thread_cpu_secs(prefix: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|name| name.trim_end().starts_with(prefix))
        })
        .map(|t| stat_cpu_secs(&std::fs::read_to_string(t.path().join("stat")).unwrap_or_default()))
        .sum()
}

/// Resets the peak resident set (`VmHWM`) of `pid` (0: this process) to its current
/// size, so the next reading is the peak of what follows (Linux `clear_refs` value 5).
pub fn reset_peak(pid: u32) {
    let path = if pid == 0 {
        "/proc/self/clear_refs".to_owned()
    } else {
        format!("/proc/{pid}/clear_refs")
    };
    let _ = std::fs::write(Path::new(&path), "5");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_read_after_the_command_name() {
        let stat = "42 (tokio worker 1) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0";
        assert_eq!(stat_cpu_secs(stat), 3.0);
    }

    #[test]
    fn this_process_has_memory_and_cpu() {
        let u = usage(0);
        assert!(u.rss_mib > 0.0 && u.hwm_mib >= u.rss_mib);
    }
}
