//! The generated cluster as Kubernetes objects and as the SLB's seed.
//!
//! Pods look like a Deployment's pods wired the recommended way (readinessProbe, the
//! readiness gate, a preStop `wait-drained`, resources, owner reference, other tools'
//! annotations, managedFields, a status with container statuses and the agent's gate
//! condition with its reason and message): the agent lists them through the real client and strips them, so
//! their size is what its watchers and mock-kube pay for, as in a real cluster.

use serde_json::{json, Value};

use super::spec::{desired_backends, Drift, Mode, Spec, ANN, CLASS, FINALIZER, TARGET_PORT};

pub fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name},
           "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
}

pub fn node(spec: &Spec, n: usize) -> Value {
    let name = spec.node(n);
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64", "node.kubernetes.io/instance-type": "ecs.g7.2xlarge",
            "topology.kubernetes.io/region": "cn-hangzhou",
            "topology.kubernetes.io/zone": format!("cn-hangzhou-{}", n % 3),
            "pool": format!("pool-{}", spec.pool_of_node(n))}},
        "spec": {"providerID": format!("cn-hangzhou.{}", spec.ecs(n)),
                 "podCIDR": format!("172.{}.{}.0/24", 16 + n / 256 % 16, n % 256)},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            "addresses": [{"type": "InternalIP", "address": node_ip(n)},
                          {"type": "Hostname", "address": name}],
            "capacity": {"cpu": "8", "memory": "32Gi", "pods": "64"},
            "allocatable": {"cpu": "7910m", "memory": "28Gi", "pods": "64"},
            "nodeInfo": {"kubeletVersion": "v1.33.1", "containerRuntimeVersion": "containerd://1.6.36",
                         "osImage": "Alibaba Cloud Linux 3", "architecture": "amd64"},
        },
    })
}

fn node_ip(n: usize) -> String {
    format!("192.168.{}.{}", n / 250, n % 250 + 1)
}

pub fn service(spec: &Spec, s: usize) -> Value {
    let mode = spec.mode(s);
    let mut annotations = serde_json::Map::new();
    annotations.insert(format!("{ANN}id"), json!(spec.lb(s)));
    annotations.insert(
        format!("{ANN}vgroup-port"),
        json!(format!("{}:{}", spec.group(s), super::spec::SERVICE_PORT)),
    );
    if mode == Mode::Eni {
        annotations.insert(
            "service.beta.kubernetes.io/backend-type".into(),
            json!("eni"),
        );
        if let Some(secs) = spec.eni_drain_secs {
            annotations.insert(format!("{ANN}connection-drain"), json!("on"));
            annotations.insert(
                format!("{ANN}connection-drain-timeout"),
                json!(secs.to_string()),
            );
        }
    }
    if let Some(pool) = spec.pool_of_service(s) {
        annotations.insert(
            format!("{ANN}backend-label"),
            json!(format!("pool=pool-{pool}")),
        );
    }
    let mut port = json!({"name": "http", "port": super::spec::SERVICE_PORT, "protocol": "TCP",
                          "targetPort": TARGET_PORT});
    if mode != Mode::Eni {
        port["nodePort"] = json!(spec.node_port(s));
    }
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": spec.service(s), "namespace": spec.namespace(s),
                     "labels": {"app": spec.service(s)}, "annotations": annotations,
                     "finalizers": ["slb-sync.io/cleanup"]},
        "spec": {
            "type": "LoadBalancer", "loadBalancerClass": CLASS,
            "externalTrafficPolicy": if mode == Mode::Local { "Local" } else { "Cluster" },
            "allocateLoadBalancerNodePorts": mode != Mode::Eni,
            "selector": {"app": spec.service(s)},
            "ports": [port],
            "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
        },
    })
}

/// Pod `p` of Service `s`: running and Ready with its gate open (`ready`), or just
/// scheduled with its containers starting (a pod the driver creates).
pub fn pod(spec: &Spec, s: usize, p: usize, ready: bool) -> Value {
    let name = spec.pod(s, p);
    let app = spec.service(s);
    let gate = format!("registered.slb-sync.io/{app}");
    let n = spec.pod_node(s, p);
    let status = if ready {
        let cond = |t: &str| {
            json!({"type": t, "status": "True", "lastProbeTime": null,
                                    "lastTransitionTime": "2026-01-01T00:00:00Z"})
        };
        // The gate as the agent writes it: reason and message.
        let mut gate_cond = cond(&gate);
        gate_cond["reason"] = json!("BackendRegistered");
        gate_cond["message"] = json!(format!(
            "the pod's backend is in every vServer group of the Service {}",
            if spec.mode(s) == Mode::Local {
                "(its node, at weight 0 until an endpoint there is ready)"
            } else {
                "with weight > 0"
            }
        ));
        json!({
            "phase": "Running",
            "conditions": [cond("PodReadyToStartContainers"), cond("Initialized"),
                           cond("ContainersReady"), cond("PodScheduled"), gate_cond, cond("Ready")],
            "hostIP": node_ip(n), "hostIPs": [{"ip": node_ip(n)}],
            "podIP": spec.pod_ip(s, p), "podIPs": [{"ip": spec.pod_ip(s, p)}],
            "startTime": "2026-01-01T00:00:00Z", "qosClass": "Burstable",
            "containerStatuses": [{"name": "app", "ready": true, "started": true, "restartCount": 0,
                "image": "registry.example.com/shop/app:1.2.3",
                "imageID": "registry.example.com/shop/app@sha256:5f1e0c3a9d8b7c6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e",
                "containerID": format!("containerd://{:064x}", super::spec::mix((s * 1000 + p) as u64)),
                "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}],
        })
    } else {
        json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "True"}]})
    };
    let finalizers: Vec<&str> = if ready { vec![FINALIZER] } else { vec![] };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": spec.namespace(s), "generateName": format!("{app}-"),
            "labels": {"app": app, "pod-template-hash": "7d9f8b6c5"},
            "annotations": {"kubernetes.io/psp": "ack.privileged",
                "kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z",
                "prometheus.io/scrape": "true", "prometheus.io/port": "9102",
                "prometheus.io/path": "/metrics"},
            "finalizers": finalizers,
            "managedFields": managed_fields(&gate, &spec.pod_ip(s, p), ready),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": format!("{app}-7d9f8b6c5"), "uid": format!("rs-{s:05}"),
                "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": {
            "nodeName": spec.node(n),
            "terminationGracePeriodSeconds": spec.grace_secs,
            "readinessGates": [{"conditionType": gate}],
            "serviceAccountName": "default", "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
            "containers": [{
                "name": "app", "image": "registry.example.com/shop/app:1.2.3",
                "ports": [{"name": "http", "containerPort": TARGET_PORT, "protocol": "TCP"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                              "limits": {"cpu": "1", "memory": "512Mi"}},
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                                   "periodSeconds": 2, "failureThreshold": 3},
                "lifecycle": {"preStop": {"exec": {"command": ["/slb-sync/slb-sync", "wait-drained",
                    "--timeout", (spec.grace_secs - 5).max(1).to_string()]}}},
                "env": [{"name": "SLB_SYNC_AGENT", "value": "http://slb-sync.kube-system.svc:8080"},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
                "volumeMounts": [{"name": "slb-sync", "mountPath": "/slb-sync"}],
            }],
            "volumes": [{"name": "slb-sync", "emptyDir": {}}],
        },
        "status": status,
    })
}

/// What the API server records of a Deployment pod's writers (the ReplicaSet controller
/// creating it, the kubelet's status, the agent's finalizer and gate), in its usual shape:
/// a few KiB per pod in a real cluster, read and dropped by the agent's watcher.
fn managed_fields(gate: &str, ip: &str, ready: bool) -> Value {
    let at = "2026-01-01T00:00:00Z";
    let set = |keys: &[&str]| -> Value {
        let mut m = serde_json::Map::new();
        m.insert(".".into(), json!({}));
        for k in keys {
            m.insert(format!("f:{k}"), json!({}));
        }
        Value::Object(m)
    };
    let condition = set(&["lastProbeTime", "lastTransitionTime", "status", "type"]);
    let mut conditions = serde_json::Map::new();
    for t in [
        "ContainersReady",
        "Initialized",
        "PodReadyToStartContainers",
        "PodScheduled",
        "Ready",
    ] {
        conditions.insert(format!("k:{{\"type\":\"{t}\"}}"), condition.clone());
    }
    let mut out = vec![
        json!({"manager": "kube-controller-manager", "operation": "Update",
        "apiVersion": "v1", "time": at, "fieldsType": "FieldsV1", "fieldsV1": {
        "f:metadata": {"f:generateName": {}, "f:labels": set(&["app", "pod-template-hash"]),
            "f:annotations": set(&["kubectl.kubernetes.io/restartedAt", "prometheus.io/path",
                                   "prometheus.io/port", "prometheus.io/scrape"]),
            "f:ownerReferences": {".": {}, "k:{\"uid\":\"rs\"}": {}}},
        "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {},
                "f:env": {".": {}, "k:{\"name\":\"POD_NAME\"}": set(&["name", "valueFrom"]),
                    "k:{\"name\":\"POD_NAMESPACE\"}": set(&["name", "valueFrom"]),
                    "k:{\"name\":\"SLB_SYNC_AGENT\"}": set(&["name", "value"])},
                "f:image": {}, "f:imagePullPolicy": {}, "f:name": {},
                "f:lifecycle": {".": {}, "f:preStop": {".": {}, "f:exec": set(&["command"])}},
                "f:ports": {".": {}, "k:{\"containerPort\":8080,\"protocol\":\"TCP\"}":
                    set(&["containerPort", "name", "protocol"])},
                "f:readinessProbe": {".": {}, "f:failureThreshold": {}, "f:periodSeconds": {},
                    "f:httpGet": set(&["path", "port", "scheme"])},
                "f:resources": {".": {}, "f:limits": set(&["cpu", "memory"]),
                    "f:requests": set(&["cpu", "memory"])},
                "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {},
                "f:volumeMounts": {".": {}, "k:{\"mountPath\":\"/slb-sync\"}": set(&["mountPath", "name"])}}},
            "f:dnsPolicy": {}, "f:enableServiceLinks": {}, "f:readinessGates": {},
            "f:restartPolicy": {}, "f:schedulerName": {}, "f:securityContext": {},
            "f:terminationGracePeriodSeconds": {},
            "f:volumes": {".": {}, "k:{\"name\":\"slb-sync\"}": set(&["emptyDir", "name"])}}}}),
    ];
    if ready {
        out.push(
            json!({"manager": "kubelet", "operation": "Update", "apiVersion": "v1",
            "time": at, "fieldsType": "FieldsV1", "subresource": "status", "fieldsV1": {
            "f:status": {"f:conditions": conditions, "f:containerStatuses": {}, "f:hostIP": {},
                "f:hostIPs": {}, "f:phase": {}, "f:podIP": {}, "f:startTime": {},
                "f:podIPs": {".": {}, format!("k:{{\"ip\":\"{ip}\"}}"): set(&["ip"])}}}}),
        );
        out.push(
            json!({"manager": "slb-sync", "operation": "Update", "apiVersion": "v1",
            "time": at, "fieldsType": "FieldsV1", "fieldsV1": {
            "f:metadata": {"f:finalizers": {".": {}, "v:\"slb-sync.io/drain\"": {}}}}}),
        );
        out.push(
            json!({"manager": "slb-sync", "operation": "Update", "apiVersion": "v1",
            "time": at, "fieldsType": "FieldsV1", "subresource": "status", "fieldsV1": {
            "f:status": {"f:conditions": {format!("k:{{\"type\":\"{gate}\"}}"):
                set(&["lastTransitionTime", "message", "reason", "status", "type"])}}}}),
        );
    }
    Value::Array(out)
}

/// An endpoint of a pod in its Service's slice.
pub fn endpoint(spec: &Spec, s: usize, p: usize, ready: bool, terminating: bool) -> Value {
    let n = spec.pod_node(s, p);
    json!({
        "addresses": [spec.pod_ip(s, p)],
        "conditions": {"ready": ready && !terminating, "serving": ready, "terminating": terminating},
        "nodeName": spec.node(n),
        "zone": format!("cn-hangzhou-{}", n % 3),
        "targetRef": {"kind": "Pod", "namespace": spec.namespace(s), "name": spec.pod(s, p)},
    })
}

pub fn slice_name(spec: &Spec, s: usize) -> String {
    format!("{}-abcde", spec.service(s))
}

/// The Service's EndpointSlice with `endpoints`.
pub fn slice(spec: &Spec, s: usize, endpoints: Vec<Value>) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": slice_name(spec, s), "namespace": spec.namespace(s),
            "labels": {"kubernetes.io/service-name": spec.service(s),
                       "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": TARGET_PORT, "protocol": "TCP"}],
    })
}

/// The slice of Service `s` with every existing pod ready.
pub fn ready_slice(spec: &Spec, s: usize) -> Value {
    let endpoints = (0..spec.pods_of(s))
        .map(|p| endpoint(spec, s, p, true, false))
        .collect();
    slice(spec, s, endpoints)
}

/// Access key the generated SLB accepts.
pub const KEY_ID: &str = "LTAI-scale-lab";
pub const KEY_SECRET: &str = "scale-lab-secret-0123456789";

/// The SLB seed: every ECS instance and ENI (with the spare IPs), one instance per
/// `packing` Services, each Service's group as the agent would have left it, drifted
/// where the spec says so.
pub fn slb_seed(spec: &Spec) -> Value {
    let ecs: Vec<Value> = (0..spec.nodes)
        .map(|n| json!({"id": spec.ecs(n), "ip": format!("127.1.{}.{}", n / 250, n % 250 + 1)}))
        .collect();
    let mut eni_ips: Vec<Vec<String>> = vec![Vec::new(); spec.nodes];
    for s in 0..spec.services() {
        for p in 0..spec.pods_of(s) + spec.spare {
            eni_ips[spec.pod_node(s, p)].push(spec.pod_ip(s, p));
        }
    }
    let enis: Vec<Value> = eni_ips
        .into_iter()
        .enumerate()
        .map(|(n, mut ips)| {
            // The ENI's own primary IP first, then the pods' secondary IPs.
            ips.insert(0, format!("192.168.{}.{}", 128 + n / 250, n % 250 + 1));
            json!({"id": spec.eni_id(n), "ips": ips})
        })
        .collect();
    let mut lbs: Vec<Value> = Vec::new();
    for s in 0..spec.services() {
        let lb = spec.lb(s);
        if lbs.last().is_none_or(|l| l["id"] != json!(lb)) {
            lbs.push(
                json!({"id": lb, "backend_quota": 100_000, "listeners": [], "vserver_groups": []}),
            );
        }
        let owner = spec.owner(s);
        let mut backends: Vec<Value> = desired_backends(spec, s)
            .into_iter()
            .map(|b| {
                json!({"server_id": b.server_id, "server_ip": b.server_ip, "port": b.port,
                       "weight": b.weight, "type": if b.eni { "eni" } else { "ecs" },
                       "description": owner})
            })
            .collect();
        match spec.drift_of(s) {
            Some(Drift::Missing) => {
                backends.pop();
            }
            Some(Drift::Weight) => {
                if let Some(b) = backends.first_mut() {
                    b["weight"] = json!(if b["weight"] == json!(50) { 60 } else { 50 });
                }
            }
            Some(Drift::Stale) => backends.push(stale_backend(spec, s, &owner)),
            None => {}
        }
        let Some(last) = lbs.last_mut() else { continue };
        if let (Mode::Eni, Some(secs)) = (spec.mode(s), spec.eni_drain_secs) {
            last["listeners"].as_array_mut().into_iter().for_each(|l| {
                l.push(json!({"port": super::spec::SERVICE_PORT, "protocol": "tcp",
                    "vserver_group_id": spec.group(s), "connection_drain": true,
                    "connection_drain_timeout": secs}))
            });
        }
        if let Some(groups) = last["vserver_groups"].as_array_mut() {
            groups.push(json!({"id": spec.group(s), "name": owner, "backends": backends}));
        }
    }
    json!({
        "access_keys": [{"id": KEY_ID, "secret": KEY_SECRET}],
        "ecs_instances": ecs,
        "enis": enis,
        "load_balancers": lbs,
    })
}

/// An owned backend the group should not have: a node outside a Cluster Service's set
/// (or without the Local Service's pods), or a spare pod IP of an ENI Service.
fn stale_backend(spec: &Spec, s: usize, owner: &str) -> Value {
    match spec.mode(s) {
        Mode::Eni => {
            let p = spec.pods_of(s) + spec.spare.saturating_sub(1);
            json!({"server_id": spec.eni_id(spec.pod_node(s, p)), "server_ip": spec.pod_ip(s, p),
                   "port": TARGET_PORT, "weight": 100, "type": "eni", "description": owner})
        }
        _ => {
            let used: std::collections::HashSet<String> = desired_backends(spec, s)
                .into_iter()
                .map(|b| b.server_id)
                .collect();
            let n = (0..spec.nodes)
                .rev()
                .find(|n| !used.contains(&spec.ecs(*n)))
                .unwrap_or(0);
            json!({"server_id": spec.ecs(n), "port": spec.node_port(s), "weight": 100,
                   "type": "ecs", "description": owner})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scale::spec::Tier;

    fn spec() -> Spec {
        Spec {
            nodes: 6,
            pools: 1,
            namespaces: 2,
            cluster: Tier {
                services: 2,
                pods: 1,
            },
            local: Tier {
                services: 1,
                pods: 3,
            },
            eni: Tier {
                services: 1,
                pods: 3,
            },
            spare: 1,
            packing: 1,
            grace_secs: 30,
            eni_drain_secs: Some(10),
            cluster_id: "scale".into(),
            drift: 0.0,
        }
    }

    #[test]
    fn the_seed_is_valid_for_mock_slb_and_in_sync() {
        let spec = spec();
        let seed: mock_slb::Seed = serde_json::from_value(slb_seed(&spec)).unwrap();
        assert_eq!(seed.load_balancers.len(), 4);
        let eni_lb = &seed.load_balancers[3];
        assert_eq!(eni_lb.listeners.len(), 1);
        assert_eq!(eni_lb.vserver_groups[0].backends.len(), 3);
        let mut state = mock_slb::state::State::default();
        seed.apply(&mut state).unwrap();
        assert_eq!(state.v_server_groups.len(), 4);
    }

    #[test]
    fn objects_parse_as_the_kubernetes_types() {
        let spec = spec();
        let _: k8s_openapi::api::core::v1::Node = serde_json::from_value(node(&spec, 0)).unwrap();
        let svc: k8s_openapi::api::core::v1::Service =
            serde_json::from_value(service(&spec, 3)).unwrap();
        assert_eq!(svc.metadata.annotations.unwrap().len(), 5);
        let pod: k8s_openapi::api::core::v1::Pod =
            serde_json::from_value(pod(&spec, 3, 0, true)).unwrap();
        // As a real pod: other tools' annotations, writers' managedFields, an owner.
        assert_eq!(pod.metadata.annotations.unwrap().len(), 5);
        assert_eq!(pod.metadata.managed_fields.unwrap().len(), 4);
        assert_eq!(pod.metadata.owner_references.unwrap().len(), 1);
        assert_eq!(pod.status.unwrap().conditions.unwrap().len(), 6);
        let _: k8s_openapi::api::discovery::v1::EndpointSlice =
            serde_json::from_value(ready_slice(&spec, 3)).unwrap();
    }

    #[test]
    fn drifted_groups_differ_from_the_desired_state() {
        let spec = Spec {
            drift: 1.0,
            ..spec()
        };
        let seed = slb_seed(&spec);
        let groups = |i: usize| seed["load_balancers"][i]["vserver_groups"][0]["backends"].clone();
        // Service 0: every 1st group drifts, kinds cycle Missing, Weight, Stale.
        assert_eq!(groups(0).as_array().unwrap().len(), 5);
        assert_eq!(groups(1)[0]["weight"], 50);
        let local = crate::scale::spec::desired_backends(&spec, 2).len();
        assert_eq!(groups(2).as_array().unwrap().len(), local + 1);
    }
}
