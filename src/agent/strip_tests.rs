use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use crate::agent::pods::{allowance, decide, ledger_from_pods};
use crate::desired::PlannerConfig;
use crate::index::ClusterIndex;
use crate::k8s::drain_state::drain_state;
use crate::model::{StoredPod, StoredPodCondition, StoredPodSpec, StoredPodStatus};

/// A Deployment pod as the API server returns it, mid-deletion, with what other tools
/// leave on pods: annotations, managedFields, owner, containers, kubelet conditions with
/// messages, our gate (and ACK's, and someone else's), the drained condition at fail-open.
fn full_pod() -> Pod {
    let cond = |t: &str, status: &str, reason: &str, message: &str| {
        json!({"type": t, "status": status, "reason": reason, "message": message,
               "lastProbeTime": null, "lastTransitionTime": "2026-01-01T00:00:00Z"})
    };
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "web-7d9f8b6c5-x2k4p", "namespace": "shop", "generateName": "web-7d9f8b6c5-",
            "uid": "0b4e3f0a-8a0c-4a4e-9d1c-3f2b1a0c9d8e", "resourceVersion": "1234567",
            "creationTimestamp": "2026-01-01T00:00:00Z", "generation": 1,
            "deletionTimestamp": "2026-01-01T01:00:30Z", "deletionGracePeriodSeconds": 30,
            "labels": {"app": "web", "pod-template-hash": "7d9f8b6c5", "tier": "front"},
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"v1\"}",
                "kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z",
                "prometheus.io/scrape": "true", "prometheus.io/port": "9102",
                "notslb-sync.io/x": "lookalike domain",
                "slb-sync.io/drain-started-at": "{\"rsp-1:8080\":\"2026-01-01T01:00:01Z\"}",
                "future.slb-sync.io/note": "a subdomain of ours",
            },
            "finalizers": ["example.com/keep", "slb-sync.io/drain"],
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": "web-7d9f8b6c5", "uid": "rs-1", "controller": true,
                "blockOwnerDeletion": true}],
            "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
                "apiVersion": "v1", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:generateName": {}}}}],
        },
        "spec": {
            "nodeName": "node-a", "terminationGracePeriodSeconds": 60,
            "serviceAccountName": "default", "restartPolicy": "Always",
            "readinessGates": [{"conditionType": "registered.slb-sync.io/web"},
                               {"conditionType": "service.readiness.alibabacloud.com/api"},
                               {"conditionType": "example.com/warm"}],
            "containers": [{"name": "app", "image": "registry.example.com/shop/web:1.2.3",
                "ports": [{"containerPort": 8080}],
                "env": [{"name": "MODE", "value": "prod"}],
                "lifecycle": {"preStop": {"exec": {"command": ["/slb-sync/slb-sync", "wait-drained"]}}}}],
            "volumes": [{"name": "slb-sync", "emptyDir": {}}],
        },
        "status": {
            "phase": "Running", "hostIP": "192.168.0.1", "qosClass": "Burstable",
            "startTime": "2026-01-01T00:00:00Z",
            "podIP": "10.0.0.7", "podIPs": [{"ip": "10.0.0.7"}, {"ip": "fd00::7"}],
            "conditions": [
                cond("Initialized", "True", "", ""),
                cond("ContainersReady", "False", "ContainersNotReady",
                     "containers with unready status: [app]"),
                cond("Ready", "False", "ContainersNotReady", "containers with unready status: [app]"),
                cond("registered.slb-sync.io/web", "True", "BackendRegistered",
                     "the pod's backend is in every vServer group of the Service with weight > 0"),
                cond("service.readiness.alibabacloud.com/api", "False", "BackendNotRegistered",
                     "no vServer group of the Service has been reconciled yet"),
                cond("example.com/warm", "True", "Warm", "caches loaded"),
                cond("slb-sync.io/drained", "False", "FailOpen", "released at the deadline"),
            ],
            "containerStatuses": [{"name": "app", "image": "registry.example.com/shop/web:1.2.3",
                "imageID": "", "ready": false, "restartCount": 0}],
        },
    }))
    .unwrap()
}

#[test]
fn a_full_pod_keeps_only_what_the_agent_reads() {
    let pod = StoredPod::from(full_pod());
    let meta = &pod.metadata;
    assert_eq!(meta.name.as_deref(), Some("web-7d9f8b6c5-x2k4p"));
    assert_eq!(meta.namespace.as_deref(), Some("shop"));
    assert_eq!(meta.labels.as_ref().unwrap().len(), 3);
    let annotations: Vec<&str> = meta
        .annotations
        .iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        annotations,
        ["future.slb-sync.io/note", "slb-sync.io/drain-started-at"]
    );
    assert_eq!(meta.finalizers.as_ref().unwrap().len(), 2);
    assert!(meta.deletion_timestamp.is_some());
    assert_eq!(meta.deletion_grace_period_seconds, Some(30));
    assert!(meta.uid.is_none());
    // The watcher resumes from the last object's version; without it every pod event
    // would end in a `NoResourceVersion` error and a relist of every pod.
    assert_eq!(meta.resource_version.as_deref(), Some("1234567"));
    assert!(meta.generate_name.is_none() && meta.creation_timestamp.is_none());
    assert!(meta.owner_references.is_none() && meta.managed_fields.is_none());
    assert!(meta.generation.is_none());

    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.node_name.as_deref(), Some("node-a"));
    assert_eq!(spec.termination_grace_period_seconds, Some(60));
    let gates: Vec<&str> = spec
        .readiness_gates
        .iter()
        .flatten()
        .map(|g| g.condition_type.as_str())
        .collect();
    assert_eq!(
        gates,
        [
            "registered.slb-sync.io/web",
            "service.readiness.alibabacloud.com/api"
        ]
    );

    let status = pod.status.as_ref().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    // podIP is one of podIPs: the union of the two is unchanged without it.
    assert!(status.pod_ip.is_none());
    assert_eq!(status.pod_ips.as_ref().unwrap().len(), 2);
    let conditions: Vec<(&str, &str, Option<&str>)> = status
        .conditions
        .iter()
        .flatten()
        .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_deref()))
        .collect();
    assert_eq!(
        conditions,
        [
            ("ContainersReady", "False", None),
            (
                "registered.slb-sync.io/web",
                "True",
                Some("BackendRegistered")
            ),
            (
                "service.readiness.alibabacloud.com/api",
                "False",
                Some("BackendNotRegistered")
            ),
            ("slb-sync.io/drained", "False", Some("FailOpen")),
        ]
    );
    for c in status.conditions.iter().flatten() {
        // Only the kubelet's ContainersReady keeps its time: the health gate's timeout
        // counts from it.
        assert_eq!(
            c.last_transition_time.is_some(),
            c.type_ == "ContainersReady",
            "{}",
            c.type_
        );
    }
}

/// Everything the index, the pod side and the drain API read of a pod.
fn reading(pod: &StoredPod) -> String {
    let mut index = ClusterIndex::new(PlannerConfig::default());
    index.apply_pod(pod);
    let gates = decide::declared_gates(pod);
    let statuses: Vec<_> = gates
        .iter()
        .map(|(t, _)| decide::condition_status(pod, t))
        .chain([decide::condition_status(
            pod,
            crate::k8s::names::DRAINED_CONDITION,
        )])
        .collect();
    format!(
        "{:?}",
        (
            (decide::pod_place(pod, None).ips, &gates, statuses),
            (
                decide::has_finalizer(pod),
                decide::is_deleting(pod),
                decide::is_terminal(pod)
            ),
            (decide::is_drained(pod), allowance::terminating_since(pod)),
            (
                drain_state(Some(pod)),
                index.pod_gates("shop", "web-7d9f8b6c5-x2k4p")
            ),
            (&pod.metadata.labels, ledger_from_pods([pod])),
            pod.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        )
    )
}

/// `pod` in the stored shape with nothing filtered: every annotation, gate and condition
/// (each with the fields the stored type has), `podIP` even when `podIPs` has it.
fn unfiltered(pod: &Pod) -> StoredPod {
    let spec = pod.spec.as_ref().unwrap();
    let status = pod.status.as_ref().unwrap();
    StoredPod {
        metadata: pod.metadata.clone(),
        spec: Some(StoredPodSpec {
            node_name: spec.node_name.clone(),
            readiness_gates: spec.readiness_gates.clone(),
            termination_grace_period_seconds: spec.termination_grace_period_seconds,
        }),
        status: Some(StoredPodStatus {
            conditions: status.conditions.as_ref().map(|cs| {
                cs.iter()
                    .map(|c| StoredPodCondition {
                        type_: c.type_.clone(),
                        status: c.status.clone(),
                        reason: c.reason.clone(),
                        last_transition_time: c.last_transition_time.clone(),
                    })
                    .collect()
            }),
            phase: status.phase.clone(),
            pod_ip: status.pod_ip.clone(),
            pod_ips: status.pod_ips.clone(),
        }),
    }
}

/// What the conversion filters out (other tools' annotations, gates and conditions,
/// messages and times, a podIP repeated in podIPs) changes nothing the agent reads.
#[test]
fn the_agent_reads_the_same_of_a_stored_pod() {
    let full = full_pod();
    let stored = StoredPod::from(full.clone());
    assert_eq!(reading(&stored), reading(&unfiltered(&full)));

    // Not deleting, every condition True, an address only in podIP, no annotation.
    let mut other = full_pod();
    other.metadata.deletion_timestamp = None;
    other.metadata.annotations = None;
    let status = other.status.as_mut().unwrap();
    status.pod_ip = Some("10.0.0.9".into());
    for c in status.conditions.iter_mut().flatten() {
        c.status = "True".into();
    }
    let stored = StoredPod::from(other.clone());
    assert_eq!(
        stored.status.as_ref().unwrap().pod_ip.as_deref(),
        Some("10.0.0.9")
    );
    assert_eq!(reading(&stored), reading(&unfiltered(&other)));
    assert!(stored.metadata.annotations.is_none());
}
