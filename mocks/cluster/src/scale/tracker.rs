//! What happened to the pods the driver touches, as seen through watches of them (by a
//! Service's label or a node's name, so the driver never holds the whole cluster): when
//! a readiness gate opened, when the agent reported a drain (`slb-sync.io/drained` True)
//! or released a pod at its fail-open deadline (False, reason `FailOpen`), when the
//! finalizer went and when the pod was gone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use tokio::sync::watch;

use crate::AbortOnDrop;

const DRAINED: &str = "slb-sync.io/drained";
const FINALIZER: &str = "slb-sync.io/drain";

/// Seconds since the lab started at which each thing was first seen.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Marks {
    pub gate_open: Option<f64>,
    pub drained: Option<f64>,
    pub fail_open: Option<f64>,
    pub finalized: bool,
    pub released: Option<f64>,
    pub gone: Option<f64>,
}

/// Pods by `<namespace>/<name>`.
#[derive(Clone)]
pub struct Tracker {
    start: Instant,
    marks: Arc<Mutex<HashMap<String, Marks>>>,
    changed: Arc<watch::Sender<u64>>,
    watches: Arc<Mutex<Vec<AbortOnDrop>>>,
}

impl Tracker {
    pub fn new(start: Instant) -> Self {
        Tracker {
            start,
            marks: Arc::default(),
            changed: Arc::new(watch::channel(0).0),
            watches: Arc::default(),
        }
    }

    /// Watches the pods `api` and `config` select from now on; returns once the initial
    /// list is in.
    pub async fn watch(&self, api: Api<Pod>, config: watcher::Config) {
        let (listed_tx, listed) = tokio::sync::oneshot::channel::<()>();
        let me = self.clone();
        let task = tokio::spawn(async move {
            let mut listed_tx = Some(listed_tx);
            let stream = watcher(api, config).default_backoff();
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                        me.saw(&pod, false)
                    }
                    Ok(watcher::Event::Delete(pod)) => me.saw(&pod, true),
                    Ok(watcher::Event::InitDone) => {
                        if let Some(tx) = listed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(watcher::Event::Init) | Err(_) => {}
                }
            }
        });
        self.watches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(AbortOnDrop(task));
        let _ = tokio::time::timeout(Duration::from_secs(60), listed).await;
    }

    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn saw(&self, pod: &Pod, deleted: bool) {
        let key = format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.name.as_deref().unwrap_or_default()
        );
        let now = self.now();
        let mut marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        let m = marks.entry(key).or_default();
        let conditions = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .map(Vec::as_slice)
            .unwrap_or_default();
        for c in conditions {
            if c.type_.starts_with("registered.slb-sync.io/") && c.status == "True" {
                m.gate_open.get_or_insert(now);
            }
            if c.type_ == DRAINED && c.status == "True" {
                m.drained.get_or_insert(now);
            }
            if c.type_ == DRAINED && c.status == "False" && c.reason.as_deref() == Some("FailOpen")
            {
                m.fail_open.get_or_insert(now);
            }
        }
        let has = pod
            .metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f == FINALIZER));
        if has {
            m.finalized = true;
        } else if m.finalized {
            m.released.get_or_insert(now);
        }
        if deleted {
            m.gone.get_or_insert(now);
            if m.finalized {
                m.released.get_or_insert(now);
            }
        }
        drop(marks);
        self.changed.send_modify(|n| *n += 1);
    }

    /// The marks of a pod (all empty if never seen).
    pub fn marks(&self, key: &str) -> Marks {
        self.marks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied()
            .unwrap_or_default()
    }

    /// Waits until `done` holds for the pod's marks, or `within` passes; the marks then.
    pub async fn wait(&self, key: &str, within: Duration, done: impl Fn(&Marks) -> bool) -> Marks {
        let mut rx = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let m = self.marks(key);
            if done(&m) {
                return m;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return self.marks(key);
            }
        }
    }

    /// Seconds since the lab started.
    pub fn elapsed(&self) -> f64 {
        self.now()
    }
}
