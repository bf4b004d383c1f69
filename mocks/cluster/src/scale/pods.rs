//! The controllers the lab plays for the pods it changes, through mock-kube's API as the
//! real ones act through the API server: the EndpointSlice controller (an endpoint turns
//! terminating at the deletion, leaves when the pod is gone, joins not-ready for a new pod
//! and turns ready with the pod), and the kubelet (preStop `wait-drained` until the agent
//! reports the drain or the wait's timeout, five seconds below the grace period, then the
//! final delete; a new pod's containers ready at once, Ready once its gate is True).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;

use super::objects;
use super::spec::Spec;
use super::tracker::{Marks, Tracker};

/// What became of one pod the lab deleted or created (seconds since the lab started).
#[derive(Debug, Clone, Default)]
pub struct PodRun {
    pub service: usize,
    pub pod: usize,
    /// The delete (or create) call returned.
    pub at: f64,
    /// A created pod's containers were reported ready.
    pub containers_ready: Option<f64>,
    /// The pod's endpoint change (terminating for a deletion, not-ready for a creation)
    /// was written to the Service's EndpointSlice.
    pub endpoint_written: Option<f64>,
    /// The preStop wait ended with the drain reported (`false`: its timeout, the container
    /// was stopped before the agent confirmed anything).
    pub prestop_drained: bool,
    pub marks: Marks,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy)]
struct Ep {
    ready: bool,
    terminating: bool,
}

/// The lab's controllers over one mock-kube.
#[derive(Clone)]
pub struct Controllers {
    client: kube::Client,
    spec: Arc<Spec>,
    pub tracker: Tracker,
    /// Each Service's endpoints as the lab's EndpointSlice controller keeps them.
    slices: Arc<Mutex<HashMap<usize, Endpoints>>>,
}

/// One Service's endpoints by pod index, written as one slice.
type Endpoints = Arc<tokio::sync::Mutex<BTreeMap<usize, Ep>>>;

impl Controllers {
    pub fn new(client: kube::Client, spec: Arc<Spec>, tracker: Tracker) -> Self {
        Controllers {
            client,
            spec,
            tracker,
            slices: Arc::default(),
        }
    }

    fn key(&self, s: usize, p: usize) -> String {
        format!("{}/{}", self.spec.namespace(s), self.spec.pod(s, p))
    }

    fn pods(&self, s: usize) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.spec.namespace(s))
    }

    fn endpoints(&self, s: usize) -> Endpoints {
        let mut slices = self.slices.lock().unwrap_or_else(|e| e.into_inner());
        slices
            .entry(s)
            .or_insert_with(|| {
                let all = (0..self.spec.pods_of(s))
                    .map(|p| {
                        (
                            p,
                            Ep {
                                ready: true,
                                terminating: false,
                            },
                        )
                    })
                    .collect();
                Arc::new(tokio::sync::Mutex::new(all))
            })
            .clone()
    }

    /// Changes pod `p`'s endpoint (`None`: removes it) and writes the Service's slice.
    async fn set_endpoint(&self, s: usize, p: usize, ep: Option<Ep>) -> Result<(), kube::Error> {
        let eps = self.endpoints(s);
        let mut eps = eps.lock().await;
        match ep {
            Some(ep) => eps.insert(p, ep),
            None => eps.remove(&p),
        };
        let list: Vec<_> = eps
            .iter()
            .map(|(p, e)| objects::endpoint(&self.spec, s, *p, e.ready, e.terminating))
            .collect();
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &self.spec.namespace(s));
        api.patch(
            &objects::slice_name(&self.spec, s),
            &PatchParams::default(),
            &Patch::Merge(json!({"endpoints": list})),
        )
        .await
        .map(|_| ())
    }

    /// Deletes pod `p` of Service `s` with its grace period and plays its termination
    /// to the end: returns once it is gone (or a minute after its fail-open deadline).
    pub async fn delete(&self, s: usize, p: usize, fail_open_margin: Duration) -> PodRun {
        let key = self.key(s, p);
        let grace = self.spec.grace_secs;
        let mut run = PodRun {
            service: s,
            pod: p,
            ..PodRun::default()
        };
        let params = DeleteParams {
            grace_period_seconds: Some(grace as u32),
            ..DeleteParams::default()
        };
        if let Err(e) = self.pods(s).delete(&self.spec.pod(s, p), &params).await {
            run.error = Some(format!("delete: {e}"));
            return run;
        }
        run.at = self.tracker.elapsed();
        let terminating = Ep {
            ready: true,
            terminating: true,
        };
        match self.set_endpoint(s, p, Some(terminating)).await {
            Ok(()) => run.endpoint_written = Some(self.tracker.elapsed()),
            Err(e) => run.error = Some(format!("endpoint terminating: {e}")),
        }
        // preStop: `wait-drained --timeout <grace - 5>`.
        let wait = Duration::from_secs((grace - 5).max(1) as u64);
        let m = self
            .tracker
            .wait(&key, wait, |m| m.drained.is_some() || m.fail_open.is_some())
            .await;
        run.prestop_drained = m.drained.is_some();
        // The container stops; kubelet's final delete.
        let now = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        let _ = self.pods(s).delete(&self.spec.pod(s, p), &now).await;
        let until_gone =
            Duration::from_secs(grace as u64) + fail_open_margin + Duration::from_secs(60);
        let m = self
            .tracker
            .wait(&key, until_gone, |m| m.gone.is_some())
            .await;
        if let Err(e) = self.set_endpoint(s, p, None).await {
            run.error.get_or_insert(format!("endpoint removal: {e}"));
        }
        run.marks = m;
        run
    }

    /// Creates pod `p` of Service `s` on its node, reports its containers ready, and
    /// Ready once the agent opened its gate; returns then (or after `within`).
    pub async fn create(&self, s: usize, p: usize, within: Duration) -> PodRun {
        let key = self.key(s, p);
        let name = self.spec.pod(s, p);
        let mut run = PodRun {
            service: s,
            pod: p,
            ..PodRun::default()
        };
        let pod: Pod = match serde_json::from_value(objects::pod(&self.spec, s, p, false)) {
            Ok(pod) => pod,
            Err(e) => {
                run.error = Some(format!("pod: {e}"));
                return run;
            }
        };
        if let Err(e) = self.pods(s).create(&PostParams::default(), &pod).await {
            run.error = Some(format!("create: {e}"));
            return run;
        }
        run.at = self.tracker.elapsed();
        let not_ready = Ep {
            ready: false,
            terminating: false,
        };
        let ip = self.spec.pod_ip(s, p);
        let status = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
            "conditions": [{"type": "ContainersReady", "status": "True"},
                           {"type": "Ready", "status": "False", "reason": "ReadinessGatesNotReady"}]}});
        if let Err(e) = self
            .pods(s)
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(status))
            .await
        {
            run.error = Some(format!("containers ready: {e}"));
            return run;
        }
        run.containers_ready = Some(self.tracker.elapsed());
        match self.set_endpoint(s, p, Some(not_ready)).await {
            Ok(()) => run.endpoint_written = Some(self.tracker.elapsed()),
            Err(e) => run.error = Some(format!("endpoint: {e}")),
        }
        let m = self
            .tracker
            .wait(&key, within, |m| m.gate_open.is_some())
            .await;
        if m.gate_open.is_some() {
            let ready = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
            let _ = self
                .pods(s)
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(ready))
                .await;
            let ready = Ep {
                ready: true,
                terminating: false,
            };
            if let Err(e) = self.set_endpoint(s, p, Some(ready)).await {
                run.error.get_or_insert(format!("endpoint ready: {e}"));
            }
        }
        run.marks = m;
        run
    }
}
