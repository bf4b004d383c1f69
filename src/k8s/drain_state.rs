//! A pod's drain state as the drain API reports it, read from the Pod object alone.
//!
//! Any replica can answer (not just the leader) and the answer survives leader changes,
//! because the state lives in the API object, not in the agent's memory:
//!
//! | Pod object                                                   | state       |
//! |--------------------------------------------------------------|-------------|
//! | condition `slb-sync.io/drained` = `True`                     | `drained`   |
//! | condition `slb-sync.io/drained` = `False`, reason `FailOpen` | `released`  |
//! | `deletionTimestamp` set and finalizer `slb-sync.io/drain`    | `draining`  |
//! | finalizer `slb-sync.io/drain`, not being deleted             | `active`    |
//! | no `slb-sync.io/drain` finalizer, or no such pod             | `unmanaged` |
//!
//! Why this is safe for the preStop handshake: the agent sets the `drained` condition
//! *before* it removes its finalizer, and the pod object outlives its containers' preStop
//! hooks (the kubelet deletes it only after the containers stopped). So a pod whose backend
//! the agent drained is seen as `drained`, never as `unmanaged`. A pod without our
//! finalizer was never held by the agent (it backs no managed Service, or the agent had
//! not reached it yet): nothing waits on its removal, so `wait-drained`
//! returns at once. A pod that is absent was force-deleted or never existed: holding its
//! container would protect nothing.
//!
//! An answer is only meaningful once the pod cache holds a complete list; before that a
//! missing pod says nothing, so [`PodStateSource::drain_state`] answers `None` then.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::names::{DRAINED_CONDITION, FAIL_OPEN_REASON, POD_FINALIZER};
use crate::model::StoredPod;

/// Where a pod stands in the confirmed-removal handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DrainState {
    /// Backs a managed Service and is not being deleted.
    Active,
    /// Deleted; its backend is being drained and removed.
    Draining,
    /// Its backend has been drained and removed: the application may stop.
    Drained,
    /// The agent released it at its fail-open deadline without confirming the drain: the
    /// application may stop, but the SLB may still have sent it traffic.
    Released,
    /// Not held by the agent: nothing to wait for.
    Unmanaged,
}

impl DrainState {
    /// Every state, for pre-registering metric label values.
    pub const ALL: [DrainState; 5] = [
        DrainState::Active,
        DrainState::Draining,
        DrainState::Drained,
        DrainState::Released,
        DrainState::Unmanaged,
    ];

    /// The wire and metric-label form.
    pub fn as_str(self) -> &'static str {
        match self {
            DrainState::Active => "active",
            DrainState::Draining => "draining",
            DrainState::Drained => "drained",
            DrainState::Released => "released",
            DrainState::Unmanaged => "unmanaged",
        }
    }

    /// True when a waiter can stop waiting: the pod is drained, released or was never
    /// held.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DrainState::Drained | DrainState::Released | DrainState::Unmanaged
        )
    }
}

impl std::fmt::Display for DrainState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The drain state of a pod object (`None`: no such pod). See the module docs for the
/// mapping and why it holds.
pub fn drain_state(pod: Option<&StoredPod>) -> DrainState {
    let Some(pod) = pod else {
        return DrainState::Unmanaged;
    };
    let drained = pod
        .status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .and_then(|conditions| conditions.iter().find(|c| c.type_ == DRAINED_CONDITION));
    match drained {
        Some(c) if c.status == "True" => return DrainState::Drained,
        Some(c) if c.status == "False" && c.reason.as_deref() == Some(FAIL_OPEN_REASON) => {
            return DrainState::Released
        }
        _ => {}
    }
    let held = pod
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|finalizers| finalizers.iter().any(|f| f == POD_FINALIZER));
    match (held, pod.metadata.deletion_timestamp.is_some()) {
        (false, _) => DrainState::Unmanaged,
        (true, true) => DrainState::Draining,
        (true, false) => DrainState::Active,
    }
}

/// Answers the drain state of pods and says when it may have changed, so long-polls wake
/// on changes rather than by polling.
pub trait PodStateSource: Send + Sync + 'static {
    /// The pod's drain state, or `None` while the source has not seen a complete list of
    /// pods yet (a missing pod would then be a guess).
    fn drain_state(&self, namespace: &str, pod: &str) -> Option<DrainState>;

    /// A receiver that is marked changed whenever any pod (or the sync state) changed.
    /// Callers mark it seen *before* reading the state, so no change is missed.
    fn subscribe(&self) -> watch::Receiver<()>;
}

/// [`PodStateSource`] over a kube-runtime reflector [`Store<Pod>`].
///
/// The pod watcher calls [`ReflectorPodStates::observe`] with every watcher event after the
/// reflector applied it; that wakes the waiting long-polls and records when the first full
/// list is in.
#[derive(Clone)]
pub struct ReflectorPodStates {
    store: Store<StoredPod>,
    synced: Arc<AtomicBool>,
    changes: Arc<watch::Sender<()>>,
}

impl ReflectorPodStates {
    pub fn new(store: Store<StoredPod>) -> Self {
        ReflectorPodStates {
            store,
            synced: Arc::new(AtomicBool::new(false)),
            changes: Arc::new(watch::channel(()).0),
        }
    }

    /// Notes a watcher event the reflector has already applied to the store.
    pub fn observe(&self, event: &watcher::Event<StoredPod>) {
        match event {
            // Objects of a (re)list land in the store only at `InitDone`.
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
            watcher::Event::InitDone => {
                self.synced.store(true, Ordering::Release);
                self.changes.send_replace(());
            }
            watcher::Event::Apply(_) | watcher::Event::Delete(_) => {
                self.changes.send_replace(());
            }
        }
    }

    /// True once the store holds a complete list of pods.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }
}

impl PodStateSource for ReflectorPodStates {
    fn drain_state(&self, namespace: &str, pod: &str) -> Option<DrainState> {
        if !self.is_synced() {
            return None;
        }
        let key = ObjectRef::new(pod).within(namespace);
        Some(drain_state(self.store.get(&key).as_deref()))
    }

    fn subscribe(&self) -> watch::Receiver<()> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{StoredPodCondition, StoredPodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    use super::*;

    fn mk_pod(finalizers: &[&str], deleting: bool, drained: Option<&str>) -> StoredPod {
        StoredPod {
            metadata: ObjectMeta {
                name: Some("web-0".into()),
                namespace: Some("shop".into()),
                finalizers: Some(finalizers.iter().map(|f| f.to_string()).collect()),
                deletion_timestamp: deleting.then(|| Time("2026-01-01T00:00:00Z".parse().unwrap())),
                ..ObjectMeta::default()
            },
            status: Some(StoredPodStatus {
                conditions: Some(
                    drained
                        .map(|status| StoredPodCondition {
                            type_: DRAINED_CONDITION.into(),
                            status: status.into(),
                            ..StoredPodCondition::default()
                        })
                        .into_iter()
                        .collect(),
                ),
                ..StoredPodStatus::default()
            }),
            ..StoredPod::default()
        }
    }

    #[test]
    fn held_pod_not_deleting_is_active() {
        let pod = mk_pod(&["example.com/other", POD_FINALIZER], false, None);
        assert_eq!(drain_state(Some(&pod)), DrainState::Active);
    }

    #[test]
    fn held_pod_being_deleted_is_draining() {
        let pod = mk_pod(&[POD_FINALIZER], true, None);
        assert_eq!(drain_state(Some(&pod)), DrainState::Draining);
        let pod = mk_pod(&[POD_FINALIZER], true, Some("False"));
        assert_eq!(drain_state(Some(&pod)), DrainState::Draining);
    }

    /// The agent sets the condition, then releases the finalizer: both orders of the two
    /// writes' visibility must read as drained.
    #[test]
    fn drained_condition_wins_with_or_without_the_finalizer() {
        let pod = mk_pod(&[POD_FINALIZER], true, Some("True"));
        assert_eq!(drain_state(Some(&pod)), DrainState::Drained);
        let pod = mk_pod(&[], true, Some("True"));
        assert_eq!(drain_state(Some(&pod)), DrainState::Drained);
    }

    /// A fail-open release says so on the pod before the finalizer goes, so a waiter
    /// never takes it for a pod the agent never held.
    #[test]
    fn a_fail_open_release_reads_as_released_not_unmanaged() {
        let mut pod = mk_pod(&[], true, Some("False"));
        if let Some(c) = pod
            .status
            .as_mut()
            .and_then(|s| s.conditions.as_mut())
            .and_then(|c| c.first_mut())
        {
            c.reason = Some(FAIL_OPEN_REASON.into());
        }
        assert_eq!(drain_state(Some(&pod)), DrainState::Released);
        pod.metadata.finalizers = Some(vec![POD_FINALIZER.into()]);
        assert_eq!(drain_state(Some(&pod)), DrainState::Released);
        assert_eq!(
            serde_json::to_string(&DrainState::Released).unwrap(),
            "\"released\""
        );
    }

    #[test]
    fn pod_without_our_finalizer_or_absent_is_unmanaged() {
        let pod = mk_pod(&["example.com/other"], true, None);
        assert_eq!(drain_state(Some(&pod)), DrainState::Unmanaged);
        let pod = mk_pod(&[], false, None);
        assert_eq!(drain_state(Some(&pod)), DrainState::Unmanaged);
        assert_eq!(
            drain_state(Some(&StoredPod::default())),
            DrainState::Unmanaged
        );
        assert_eq!(drain_state(None), DrainState::Unmanaged);
    }

    #[test]
    fn final_states_are_drained_released_and_unmanaged() {
        let finals: Vec<_> = DrainState::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .collect();
        assert_eq!(
            finals,
            [
                DrainState::Drained,
                DrainState::Released,
                DrainState::Unmanaged
            ]
        );
        assert_eq!(
            serde_json::to_string(&DrainState::Draining).unwrap(),
            "\"draining\""
        );
    }

    #[test]
    fn reflector_source_answers_only_after_the_first_full_list() {
        let (store, mut writer) = kube::runtime::reflector::store::<StoredPod>();
        let states = ReflectorPodStates::new(store);
        let mut changes = states.subscribe();
        changes.mark_unchanged();
        assert_eq!(states.drain_state("shop", "web-0"), None);

        let pod = mk_pod(&[POD_FINALIZER], false, None);
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(pod),
            watcher::Event::InitDone,
        ] {
            writer.apply_watcher_event(&event);
            states.observe(&event);
        }
        assert!(changes.has_changed().unwrap());
        assert_eq!(
            states.drain_state("shop", "web-0"),
            Some(DrainState::Active)
        );
        assert_eq!(
            states.drain_state("shop", "web-1"),
            Some(DrainState::Unmanaged)
        );
    }
}
