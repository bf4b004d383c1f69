//! The drain API's test fixture: a reflector store fed the way the agent's pod watcher
//! feeds it, and the HTTP state over it.

use std::sync::Arc;

use axum::Router;
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;
use slb_sync::http::{router, HttpState, ReadyFlag};
use slb_sync::k8s::drain_state::ReflectorPodStates;
use slb_sync::k8s::names::{DRAINED_CONDITION, FAIL_OPEN_REASON, POD_FINALIZER};
use slb_sync::model::StoredPod;

/// What the agent's pod watcher does: feed the reflector, then poke the drain states.
pub struct Cluster {
    writer: Writer<StoredPod>,
    states: ReflectorPodStates,
}

impl Cluster {
    /// Applies an event of pods as the API server sends them (the watcher decodes them
    /// into what the store keeps).
    pub fn apply(&mut self, event: watcher::Event<Pod>) {
        use watcher::Event::*;
        let event = match event {
            Apply(pod) => Apply(StoredPod::from(pod)),
            Delete(pod) => Delete(StoredPod::from(pod)),
            Init => Init,
            InitApply(pod) => InitApply(StoredPod::from(pod)),
            InitDone => InitDone,
        };
        self.writer.apply_watcher_event(&event);
        self.states.observe(&event);
    }

    pub fn list(&mut self, pods: Vec<Pod>) {
        self.apply(watcher::Event::Init);
        for pod in pods {
            self.apply(watcher::Event::InitApply(pod));
        }
        self.apply(watcher::Event::InitDone);
    }
}

pub struct Fixture {
    pub cluster: Cluster,
    pub registry: prometheus::Registry,
    pub ready: ReadyFlag,
    pub state: HttpState,
}

pub fn fixture() -> Fixture {
    let (store, writer) = reflector::store::<StoredPod>();
    let states = ReflectorPodStates::new(store);
    let registry = prometheus::Registry::new();
    let ready = ReadyFlag::new();
    let state = HttpState::new(registry.clone(), ready.clone(), Arc::new(states.clone())).unwrap();
    Fixture {
        cluster: Cluster { writer, states },
        registry,
        ready,
        state,
    }
}

impl Fixture {
    pub fn app(&self) -> Router {
        router(self.state.clone())
    }

    pub fn gauge(&self, name: &str) -> f64 {
        self.registry
            .gather()
            .iter()
            .find(|family| family.name() == name)
            .map(|family| family.get_metric()[0].get_gauge().get_value())
            .unwrap_or_default()
    }

    /// Lets spawned requests run until `n` long-polls are waiting, without advancing the
    /// paused clock (yielding does not let it auto-advance).
    pub async fn until_waiting(&self, n: usize) {
        for _ in 0..10_000 {
            if self.gauge("slb_sync_drain_api_waiting") >= n as f64 {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("no long-poll started waiting");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Unheld,
    Active,
    Draining,
    Drained,
    /// Released at its fail-open deadline without a confirmed drain.
    Released,
}

pub fn mk_pod(name: &str, phase: Phase) -> Pod {
    let held = !matches!(phase, Phase::Unheld | Phase::Drained | Phase::Released);
    let deleting = matches!(phase, Phase::Draining | Phase::Drained | Phase::Released);
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("shop".into()),
            finalizers: held.then(|| vec![POD_FINALIZER.to_owned()]),
            deletion_timestamp: deleting.then(|| Time("2026-11-27T10:00:00Z".parse().unwrap())),
            ..ObjectMeta::default()
        },
        status: matches!(phase, Phase::Drained | Phase::Released).then(|| PodStatus {
            conditions: Some(vec![PodCondition {
                type_: DRAINED_CONDITION.into(),
                status: if phase == Phase::Drained {
                    "True"
                } else {
                    "False"
                }
                .into(),
                reason: (phase == Phase::Released).then(|| FAIL_OPEN_REASON.into()),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        }),
        ..Pod::default()
    }
}

impl Fixture {
    /// Real-time variant for tests with other processes: polls until `n` long-polls wait.
    pub async fn until_waiting_within(&self, n: usize, within: std::time::Duration) {
        let deadline = std::time::Instant::now() + within;
        while self.gauge("slb_sync_drain_api_waiting") < n as f64 {
            assert!(
                std::time::Instant::now() < deadline,
                "no long-poll waiting after {within:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}
