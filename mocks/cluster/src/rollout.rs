//! A Deployment-style rolling update over bare pods (no ReplicaSets): surge new pods,
//! count a pod available only when Ready (so readiness gates hold the rollout back), and
//! delete old pods only as far as `maxUnavailable` allows.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use tokio::time::Instant;

use crate::endpoints::pod_ready;

/// Label carrying the pod's revision.
pub const REVISION_LABEL: &str = "lab.slb-sync.io/revision";

/// The workload being rolled.
#[derive(Debug, Clone)]
pub struct RolloutConfig {
    pub namespace: String,
    /// Workload name; pods carry `app=<name>` and are named `<name>-r<rev>-<n>`.
    pub name: String,
    pub replicas: usize,
    pub max_surge: usize,
    pub max_unavailable: usize,
    /// How often the controller re-evaluates.
    pub period: Duration,
    /// Give up after this long.
    pub deadline: Duration,
}

/// Why a rollout did not finish.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error("rollout of {name} to revision {revision} not complete after {after:?}: {new_ready}/{replicas} new pods Ready, {old} old left; check the pods' readiness gates and probes")]
    Stuck {
        name: String,
        revision: u32,
        after: Duration,
        new_ready: usize,
        replicas: usize,
        old: usize,
    },
    #[error("kube API call failed during the rollout of {name}: {source}")]
    Api {
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// What one pass decides (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub create: usize,
    /// Old pods to delete, by name, not-Ready first.
    pub delete: Vec<String>,
    pub done: bool,
}

/// One reconcile pass over the live (non-terminating) pods.
pub fn step(cfg: &RolloutConfig, revision: u32, pods: &[Pod]) -> Step {
    let rev = revision.to_string();
    let live: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    let is_new = |p: &&Pod| {
        p.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(REVISION_LABEL))
            == Some(&rev)
    };
    let (new, mut old): (Vec<&Pod>, Vec<&Pod>) = live.iter().copied().partition(is_new);
    let new_ready = new.iter().filter(|p| pod_ready(p)).count();
    let old_ready = old.iter().filter(|p| pod_ready(p)).count();
    let done = new.len() == cfg.replicas && new_ready == cfg.replicas && old.is_empty();
    let room = (cfg.replicas + cfg.max_surge).saturating_sub(live.len());
    let create = room.min(cfg.replicas.saturating_sub(new.len()));
    let min_available = cfg.replicas.saturating_sub(cfg.max_unavailable);
    let mut budget = (new_ready + old_ready).saturating_sub(min_available);
    // Too many pods overall (after a surge): old ones go first.
    old.sort_by_key(|p| (pod_ready(p), p.metadata.name.clone()));
    let mut delete = Vec::new();
    for p in old {
        if !pod_ready(p) {
            delete.push(p.metadata.name.clone().unwrap_or_default());
        } else if budget > 0 {
            budget -= 1;
            delete.push(p.metadata.name.clone().unwrap_or_default());
        }
    }
    Step {
        create,
        delete,
        done,
    }
}

/// Rolls the workload to `revision` with `template` (labels are added) and returns how
/// long it took, measured until every new pod is Ready and no old pod is live.
pub async fn roll(
    client: kube::Client,
    cfg: &RolloutConfig,
    revision: u32,
    template: &Pod,
) -> Result<Duration, RolloutError> {
    let api: Api<Pod> = Api::namespaced(client, &cfg.namespace);
    let lp = ListParams::default().labels(&format!("app={}", cfg.name));
    let err = |source| RolloutError::Api {
        name: cfg.name.clone(),
        source,
    };
    let start = Instant::now();
    let mut seq = 0usize;
    loop {
        let pods = api.list(&lp).await.map_err(err)?.items;
        let s = step(cfg, revision, &pods);
        if s.done {
            return Ok(start.elapsed());
        }
        if start.elapsed() > cfg.deadline {
            let rev = revision.to_string();
            let live = pods
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none());
            let (new, old): (Vec<&Pod>, Vec<&Pod>) = live.partition(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(REVISION_LABEL))
                    == Some(&rev)
            });
            return Err(RolloutError::Stuck {
                name: cfg.name.clone(),
                revision,
                after: start.elapsed(),
                new_ready: new.iter().filter(|p| pod_ready(p)).count(),
                replicas: cfg.replicas,
                old: old.len(),
            });
        }
        for _ in 0..s.create {
            let mut pod = template.clone();
            let name = loop {
                seq += 1;
                let n = format!("{}-r{revision}-{seq}", cfg.name);
                if !pods.iter().any(|p| p.metadata.name.as_deref() == Some(&n)) {
                    break n;
                }
            };
            pod.metadata.name = Some(name);
            pod.metadata.namespace = Some(cfg.namespace.clone());
            let labels = pod.metadata.labels.get_or_insert_with(Default::default);
            labels.insert("app".into(), cfg.name.clone());
            labels.insert(REVISION_LABEL.into(), revision.to_string());
            if let Some(spec) = pod.spec.as_mut() {
                spec.node_name = None;
            }
            api.create(&PostParams::default(), &pod)
                .await
                .map_err(err)?;
        }
        for name in &s.delete {
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(err(e)),
            }
        }
        tokio::time::sleep(cfg.period).await;
    }
}

#[cfg(test)]
#[path = "rollout_tests.rs"]
mod tests;
