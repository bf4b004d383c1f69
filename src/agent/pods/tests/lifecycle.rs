//! The fail-open deadline, the drained condition and the drain journal annotation.

use super::*;

#[test]
fn fail_open_deadline_is_the_kill_time_plus_margin() {
    // deletionTimestamp already carries the grace period (deletion time + grace).
    let mut pod = mk_deleting(mk_pod("web-0", &[]), "2026-01-01T00:00:30Z");
    pod.metadata.deletion_grace_period_seconds = Some(30);
    let margin = Duration::from_secs(15);
    let allowance = Duration::from_secs(5);
    assert_eq!(
        fail_open_deadline(&pod, margin, allowance),
        Some("2026-01-01T00:00:45Z".parse().unwrap())
    );
    // The spec's grace period is not added a second time.
    pod.spec.as_mut().unwrap().termination_grace_period_seconds = Some(120);
    assert_eq!(
        fail_open_deadline(&pod, margin, allowance),
        Some("2026-01-01T00:00:45Z".parse().unwrap())
    );
    assert_eq!(
        fail_open_deadline(&mk_pod("web-0", &[]), margin, allowance),
        None
    );
}

#[test]
fn fail_open_deadline_never_comes_before_the_kube_proxy_allowance_ends() {
    // Deleted at 00:00:00 (stamp truncated: up to 00:00:01) with a 10 s grace period, a
    // 60 s allowance: the handshake could complete at 00:01:01 at the earliest, so the
    // margin counts from there.
    let mut pod = mk_deleting(mk_pod("web-0", &[]), "2026-01-01T00:00:10Z");
    pod.metadata.deletion_grace_period_seconds = Some(10);
    assert_eq!(
        fail_open_deadline(&pod, Duration::from_secs(15), Duration::from_secs(60)),
        Some("2026-01-01T00:01:16Z".parse().unwrap())
    );
}

#[test]
fn drained_reads_the_condition() {
    let mut pod = mk_deleting(mk_pod("web-0", &[]), "2026-01-01T00:00:00Z");
    assert!(!is_drained(&pod));
    pod.status.as_mut().unwrap().conditions = Some(vec![StoredPodCondition {
        type_: DRAINED_CONDITION.into(),
        status: "True".into(),
        ..StoredPodCondition::default()
    }]);
    assert!(is_drained(&pod));
}

#[test]
fn journal_annotation_merges_entries_and_goes_when_empty() {
    let t1: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let t2: jiff::Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
    let one = merge_journal(None, "rsp-1:8080", Some(t1))
        .unwrap()
        .unwrap();
    assert_eq!(one, r#"{"rsp-1:8080":"2026-01-01T00:00:00Z"}"#);
    let two = merge_journal(Some(&one), "rsp-2:8080", Some(t2))
        .unwrap()
        .unwrap();
    assert_eq!(
        two,
        r#"{"rsp-1:8080":"2026-01-01T00:00:00Z","rsp-2:8080":"2026-01-01T00:01:00Z"}"#
    );
    assert_eq!(merge_journal(Some(&two), "rsp-2:8080", Some(t2)), None);
    let back = merge_journal(Some(&two), "rsp-2:8080", None).unwrap();
    assert_eq!(back.as_deref(), Some(one.as_str()));
    assert_eq!(merge_journal(Some(&one), "rsp-1:8080", None), Some(None));
    assert_eq!(merge_journal(Some(&one), "rsp-9:1", None), None);
    // Garbage is not fatal: it is replaced.
    assert!(merge_journal(Some("not json"), "rsp-1:8080", Some(t1)).is_some());
    assert_eq!(split_journal_key("rsp-1:8080"), Some(("rsp-1", 8080)));
    assert_eq!(split_journal_key("rsp-1"), None);
    assert_eq!(split_journal_key(":80"), None);
}

#[test]
fn ledger_is_restored_from_journal_annotations() {
    let mut pod = mk_pod("web-0", &[]);
    pod.metadata.annotations = Some(labels(&[(
        DRAIN_STARTED_AT_ANNOTATION,
        r#"{"rsp-1:8080":"2026-01-01T00:00:00Z","bad":"x"}"#,
    )]));
    let plain = mk_pod("web-1", &[]);
    let ledger = ledger_from_pods([&pod, &plain]);
    assert_eq!(ledger.len(), 1);
    let key = BackendKey::Eni {
        server_ip: "10.0.0.7".parse().unwrap(),
        port: 8080,
    };
    assert_eq!(
        ledger.started_at("rsp-1", &key),
        Some("2026-01-01T00:00:00Z".parse().unwrap())
    );
}

fn at(text: &str) -> jiff::Timestamp {
    text.parse().unwrap()
}

#[test]
fn a_held_pod_wakes_at_its_next_deadline_and_is_released_at_the_last() {
    use crate::agent::pods::step::{pod_step, HoldRules, PodFacts, PodWrite};
    // Deleted at 00:00:00 with a 10 s grace period: killed at 00:00:10; a Local Service,
    // so kube-proxy's 5 s allowance runs to 00:00:06 (the stamp is truncated: +1 s).
    let mut pod = mk_deleting(mk_pod("web-0", &[]), "2026-01-01T00:00:10Z");
    pod.metadata.deletion_grace_period_seconds = Some(10);
    let rules = HoldRules {
        fail_open_margin: Duration::from_secs(15),
        kube_proxy_allowance: Duration::from_secs(5),
    };
    let backed = vec![BackedService {
        name: "web".into(),
        mode: Mode::Local,
    }];
    let waiting = PodFacts {
        backed: backed.clone(),
        drain_confirmed: false,
        ..PodFacts::default()
    };
    // Not confirmed: nothing to write, woken at the fail-open deadline.
    let step = pod_step(&pod, &waiting, rules, at("2026-01-01T00:00:02Z"));
    assert!(step.writes.is_empty());
    assert_eq!(step.wake_at, Some(at("2026-01-01T00:00:25Z")));
    // Confirmed inside the allowance: woken when it ends, not before.
    let confirmed = PodFacts {
        drain_confirmed: true,
        ..waiting.clone()
    };
    let step = pod_step(&pod, &confirmed, rules, at("2026-01-01T00:00:02Z"));
    assert!(step.writes.is_empty());
    assert_eq!(step.wake_at, Some(at("2026-01-01T00:00:06Z")));
    // ... and released then.
    let step = pod_step(&pod, &confirmed, rules, at("2026-01-01T00:00:06Z"));
    assert_eq!(step.writes, [PodWrite::Complete]);
    // Never confirmed: released fail-open at the deadline, the hold counted from the
    // deletion.
    let step = pod_step(&pod, &waiting, rules, at("2026-01-01T00:00:25Z"));
    assert_eq!(step.writes, [PodWrite::FailOpen { held_secs: 25 }]);
    assert_eq!(step.wake_at, None);
    // A pod already released asks for nothing.
    pod.metadata.finalizers = None;
    assert_eq!(
        pod_step(&pod, &waiting, rules, at("2026-01-01T00:00:25Z")),
        Default::default()
    );
}

#[test]
fn a_live_pod_gets_the_finalizer_and_its_gates_written_once() {
    use crate::agent::pods::step::{pod_step, HoldRules, PodFacts, PodWrite};
    let rules = HoldRules {
        fail_open_margin: Duration::from_secs(15),
        kube_proxy_allowance: Duration::from_secs(5),
    };
    let mut pod = mk_pod("web-0", &[("app", "web")]);
    let gate = GateCondition {
        condition_type: "registered.slb-sync.io/web".into(),
        status: true,
        reason: REASON_REGISTERED,
        message: "in".into(),
    };
    let facts = PodFacts {
        backed: vec![BackedService {
            name: "web".into(),
            mode: Mode::Eni,
        }],
        gates: vec![gate.clone()],
        drain_confirmed: false,
    };
    let now = at("2026-01-01T00:00:00Z");
    let step = pod_step(&pod, &facts, rules, now);
    assert_eq!(
        step.writes,
        [PodWrite::AddFinalizer, PodWrite::Gate(gate.clone())]
    );
    assert_eq!(step.wake_at, None);
    // Both written: nothing more.
    pod.metadata.finalizers = Some(vec![POD_FINALIZER.into()]);
    pod.status.as_mut().unwrap().conditions = Some(vec![StoredPodCondition {
        type_: gate.condition_type.clone(),
        status: "True".into(),
        reason: Some(REASON_REGISTERED.into()),
        ..StoredPodCondition::default()
    }]);
    assert!(pod_step(&pod, &facts, rules, now).writes.is_empty());
}
