//! The kube-proxy allowance of the confirmed-removal handshake, as pure decisions.
//!
//! In Cluster and Local mode the SLB sends traffic to a node port, and kube-proxy on
//! every node forwards it to a pod from its own view of the EndpointSlices. kube-proxy
//! applies slice changes in periodic syncs of iptables/IPVS (`minSyncPeriod`, the time an
//! iptables-restore of a large rule set takes, a busy node), so after a pod turned
//! terminating it can still forward new connections to it for a while, whatever the SLB
//! does. A pod of a Cluster or Local Service is therefore reported drained only when its
//! SLB side is confirmed *and* it has been terminating for at least the allowance. ENI
//! backends are pod IPs the SLB reaches directly, without kube-proxy: no allowance.
//!
//! The allowance is measured from the moment the pod turned terminating, which the pod
//! object itself carries (`deletionTimestamp - deletionGracePeriodSeconds`): it survives
//! agent restarts and leader changes with no state of ours, and the API server set it at
//! the same moment the EndpointSlice controller starts marking the endpoint terminating.
//! `metav1.Time` has whole seconds (the stamp is truncated), so the moment is taken as
//! the latest it can have been, one second later: the allowance is never cut short by
//! the rounding. (The API server's and the agent's clocks are assumed to agree, as NTP
//! keeps them; a skew shortens or lengthens the allowance by as much.)

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::decide::BackedService;
use crate::model::{Mode, StoredPod};

/// The production default of `--kube-proxy-allowance-seconds`: above kube-proxy's usual
/// sync lag (its default `minSyncPeriod` is 1 s; a busy node takes a few seconds more).
pub const DEFAULT_KUBE_PROXY_ALLOWANCE: Duration = Duration::from_secs(5);

/// The grace period the API server applies when a pod names none (Kubernetes' default).
const DEFAULT_GRACE_SECONDS: i64 = 30;
/// `metav1.Time`'s precision: a `deletionTimestamp` is up to this much before the true
/// kill time.
const TIMESTAMP_PRECISION: SignedDuration = SignedDuration::from_secs(1);

/// Whether traffic to this Service's backends passes through kube-proxy on a node.
pub fn via_kube_proxy(service: &BackedService) -> bool {
    matches!(service.mode, Mode::Cluster | Mode::Local)
}

/// The allowance a deleted pod backing `backed` must wait out: `allowance` when any of the
/// Services reaches it through kube-proxy, zero otherwise (ENI only, or none).
pub fn allowance_for(backed: &[BackedService], allowance: Duration) -> Duration {
    if backed.iter().any(via_kube_proxy) {
        allowance
    } else {
        Duration::ZERO
    }
}

/// The latest moment the pod can have turned terminating: its `deletionTimestamp` (the
/// kill time, deletion time plus grace, truncated to the second) minus
/// `deletionGracePeriodSeconds` (without that field, the pod's
/// `terminationGracePeriodSeconds`, or Kubernetes' default 30 s), plus the second the
/// truncation may have taken off. `None` when the pod is not being deleted.
pub fn terminating_since(pod: &StoredPod) -> Option<Timestamp> {
    let kill_at = pod.metadata.deletion_timestamp.as_ref()?.0;
    let grace = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| pod.spec.as_ref()?.termination_grace_period_seconds)
        .unwrap_or(DEFAULT_GRACE_SECONDS)
        .max(0);
    let since = kill_at
        .checked_sub(SignedDuration::from_secs(grace))
        .unwrap_or(Timestamp::MIN);
    Some(since.checked_add(TIMESTAMP_PRECISION).unwrap_or(since))
}

/// When kube-proxy on every node is taken to have dropped the pod: `allowance` after it
/// turned terminating. `None` when the pod is not being deleted.
pub fn kube_proxy_settled_at(pod: &StoredPod, allowance: Duration) -> Option<Timestamp> {
    let since = terminating_since(pod)?;
    Some(since.checked_add(allowance).unwrap_or(Timestamp::MAX))
}

/// What the handshake says about a deleted, held pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The SLB side is not confirmed yet: a later pass decides.
    Waiting,
    /// The SLB side is confirmed, kube-proxy's allowance runs until the given time: decide
    /// again then.
    Settling(Timestamp),
    /// The pod is drained: the application may stop.
    Drained,
}

/// Combines the SLB confirmation with the allowance's end (`None`: no allowance) at `now`.
pub fn verdict(slb_confirmed: bool, settled_at: Option<Timestamp>, now: Timestamp) -> Verdict {
    if !slb_confirmed {
        return Verdict::Waiting;
    }
    match settled_at {
        Some(at) if now < at => Verdict::Settling(at),
        _ => Verdict::Drained,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::StoredPodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn deleted(kill_at: &str, deletion_grace: Option<i64>, spec_grace: Option<i64>) -> StoredPod {
        StoredPod {
            metadata: ObjectMeta {
                deletion_timestamp: Some(Time(ts(kill_at))),
                deletion_grace_period_seconds: deletion_grace,
                ..ObjectMeta::default()
            },
            spec: Some(StoredPodSpec {
                termination_grace_period_seconds: spec_grace,
                ..StoredPodSpec::default()
            }),
            ..StoredPod::default()
        }
    }

    fn service(mode: Mode) -> BackedService {
        BackedService {
            name: "web".into(),
            mode,
        }
    }

    #[test]
    fn terminating_since_is_the_kill_time_minus_the_grace_period_rounded_up() {
        // The API server's own grace first, then the spec's, then Kubernetes' default;
        // one second added for the stamp's truncation to whole seconds.
        let pod = deleted("2026-01-01T00:01:00Z", Some(40), Some(90));
        assert_eq!(terminating_since(&pod), Some(ts("2026-01-01T00:00:21Z")));
        let pod = deleted("2026-01-01T00:01:00Z", None, Some(50));
        assert_eq!(terminating_since(&pod), Some(ts("2026-01-01T00:00:11Z")));
        let pod = deleted("2026-01-01T00:01:00Z", None, None);
        assert_eq!(terminating_since(&pod), Some(ts("2026-01-01T00:00:31Z")));
        // Grace 0 (force delete): terminating since the kill time itself.
        let pod = deleted("2026-01-01T00:01:00Z", Some(0), Some(30));
        assert_eq!(terminating_since(&pod), Some(ts("2026-01-01T00:01:01Z")));
        assert_eq!(terminating_since(&StoredPod::default()), None);
    }

    #[test]
    fn allowance_runs_from_the_start_of_termination() {
        let pod = deleted("2026-01-01T00:00:30Z", Some(30), None);
        assert_eq!(
            kube_proxy_settled_at(&pod, Duration::from_secs(5)),
            Some(ts("2026-01-01T00:00:06Z"))
        );
        assert_eq!(
            kube_proxy_settled_at(&StoredPod::default(), Duration::from_secs(5)),
            None
        );
    }

    #[test]
    fn only_services_behind_kube_proxy_need_the_allowance() {
        let five = Duration::from_secs(5);
        assert_eq!(allowance_for(&[service(Mode::Cluster)], five), five);
        assert_eq!(allowance_for(&[service(Mode::Local)], five), five);
        assert_eq!(allowance_for(&[service(Mode::Eni)], five), Duration::ZERO);
        assert_eq!(
            allowance_for(&[service(Mode::Eni), service(Mode::Local)], five),
            five
        );
        assert_eq!(allowance_for(&[], five), Duration::ZERO);
    }

    #[test]
    fn drained_needs_the_slb_side_and_the_allowance() {
        let at = ts("2026-01-01T00:00:05Z");
        let before = ts("2026-01-01T00:00:04Z");
        // The SLB side first: no allowance makes an unconfirmed drain final.
        assert_eq!(verdict(false, Some(at), at), Verdict::Waiting);
        assert_eq!(verdict(false, None, at), Verdict::Waiting);
        // Confirmed within the allowance: decide again when it ends.
        assert_eq!(verdict(true, Some(at), before), Verdict::Settling(at));
        // At its end (inclusive) or without one: drained.
        assert_eq!(verdict(true, Some(at), at), Verdict::Drained);
        assert_eq!(verdict(true, None, before), Verdict::Drained);
    }
}
