//! Readiness gates closed on running pods: a watch of every pod that notes each
//! `registered.slb-sync.io/*` condition going from True to False on a pod that is not
//! being deleted, and when it opened again. A closed gate makes the kubelet report the
//! pod not Ready, and its endpoints follow: the pod stops serving although nothing
//! about it changed. (The lab's kubelet does not play that part; the closures are
//! counted, not acted on.) Rollout preset only: a watch of the `full` preset's pods would
//! weigh on the lab process whose memory is measured.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use serde::Serialize;

use super::stats::Summary;
use crate::AbortOnDrop;

const GATE_PREFIX: &str = "registered.slb-sync.io/";

/// One gate closed on a running pod.
#[derive(Debug, Clone)]
struct Closure {
    /// `<namespace>/<pod>/<condition type>`.
    key: String,
    /// Seconds since the lab started.
    at: f64,
    reopened: Option<f64>,
}

#[derive(Default)]
struct State {
    /// Last seen status of each gate, by `<namespace>/<pod>/<condition type>`.
    open: HashMap<String, bool>,
    closures: Vec<Closure>,
}

/// The watch; stops when dropped.
pub struct GateWatch {
    start: Instant,
    state: Arc<Mutex<State>>,
    _task: AbortOnDrop,
}

/// Gates closed on running pods from some moment on.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Closures {
    /// Pods with at least one gate closed.
    pub pods: usize,
    /// Gates still closed now.
    pub still_closed: usize,
    /// How long each stayed closed (until now for those still closed).
    pub closed_secs: Summary,
}

impl GateWatch {
    /// Watches every pod; returns once the initial list is in (at most a minute).
    pub async fn start(client: kube::Client, start: Instant) -> GateWatch {
        let state = Arc::new(Mutex::new(State::default()));
        let (listed_tx, listed) = tokio::sync::oneshot::channel::<()>();
        let s = state.clone();
        let task = tokio::spawn(async move {
            let mut listed_tx = Some(listed_tx);
            let api: Api<Pod> = Api::all(client);
            let stream = watcher(api, watcher::Config::default()).default_backoff();
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(watcher::Event::InitApply(pod)) => saw(&s, &pod, None),
                    Ok(watcher::Event::Apply(pod)) => {
                        saw(&s, &pod, Some(start.elapsed().as_secs_f64()))
                    }
                    Ok(watcher::Event::InitDone) => {
                        if let Some(tx) = listed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(watcher::Event::Delete(_) | watcher::Event::Init) | Err(_) => {}
                }
            }
        });
        let _ = tokio::time::timeout(Duration::from_secs(60), listed).await;
        GateWatch {
            start,
            state,
            _task: AbortOnDrop(task),
        }
    }

    /// Gates closed on running pods at or after `from` (seconds since the lab started).
    pub fn since(&self, from: f64) -> Closures {
        let now = self.start.elapsed().as_secs_f64();
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let closures: Vec<&Closure> = state.closures.iter().filter(|c| c.at >= from).collect();
        let mut pods: Vec<&str> = closures
            .iter()
            .map(|c| {
                c.key
                    .rsplit_once('/')
                    .map_or(c.key.as_str(), |(pod, _)| pod)
            })
            .collect();
        pods.sort_unstable();
        pods.dedup();
        let secs: Vec<f64> = closures
            .iter()
            .map(|c| c.reopened.unwrap_or(now) - c.at)
            .collect();
        Closures {
            pods: pods.len(),
            still_closed: closures.iter().filter(|c| c.reopened.is_none()).count(),
            closed_secs: Summary::of(&secs),
        }
    }
}

/// Notes the pod's gates; `at` is `None` for the initial list (no transition).
fn saw(state: &Mutex<State>, pod: &Pod, at: Option<f64>) {
    let deleting = pod.metadata.deletion_timestamp.is_some();
    let name = format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    );
    let conditions = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    for c in conditions {
        if !c.type_.starts_with(GATE_PREFIX) {
            continue;
        }
        let key = format!("{name}/{}", c.type_);
        let open = c.status == "True";
        let was = state.open.insert(key.clone(), open);
        let Some(at) = at else { continue };
        match (was, open) {
            (Some(true), false) if !deleting => state.closures.push(Closure {
                key,
                at,
                reopened: None,
            }),
            (Some(false), true) => {
                if let Some(c) = state
                    .closures
                    .iter_mut()
                    .rev()
                    .find(|c| c.key == key && c.reopened.is_none())
                {
                    c.reopened = Some(at);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(gate: &str, deleting: bool) -> Pod {
        let mut meta = json!({"name": "web-0", "namespace": "team-0"});
        if deleting {
            meta["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        serde_json::from_value(json!({
            "metadata": meta,
            "status": {"conditions": [
                {"type": "registered.slb-sync.io/web", "status": gate},
                {"type": "Ready", "status": "True"}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_gate_closed_on_a_running_pod_is_counted_until_it_opens_again() {
        let state = Mutex::new(State::default());
        saw(&state, &pod("True", false), None);
        saw(&state, &pod("True", false), Some(1.0));
        saw(&state, &pod("False", false), Some(2.0));
        saw(&state, &pod("False", false), Some(3.0));
        saw(&state, &pod("True", false), Some(4.5));
        let state = state.into_inner().unwrap();
        assert_eq!(state.closures.len(), 1);
        assert_eq!(state.closures[0].at, 2.0);
        assert_eq!(state.closures[0].reopened, Some(4.5));
    }

    #[test]
    fn the_initial_list_and_deleting_pods_are_no_closures() {
        let state = Mutex::new(State::default());
        saw(&state, &pod("True", false), None);
        saw(&state, &pod("False", false), None);
        saw(&state, &pod("True", false), Some(1.0));
        saw(&state, &pod("False", true), Some(2.0));
        assert!(state.into_inner().unwrap().closures.is_empty());
    }
}
