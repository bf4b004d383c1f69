//! Planner benchmark on a synthetic cluster generated in code (issue 2, item 8):
//! 5,000 nodes, 150,000 pods with endpoints, 10,000 Services (5,000 Cluster, 3,000 Local,
//! 2,000 ENI).
//!
//! Reports: full planning of every Service; one endpoint change → its Service re-planned;
//! one node change → every affected Service re-planned; one node change in a set shared
//! by 5,000 Cluster-mode Services; and the index's heap size, measured with a counting
//! global allocator (this file is its own crate, so the lib's `forbid(unsafe_code)` stays).
//!
//! Run: `cargo bench --bench planner`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion};
use k8s_openapi::api::core::v1::{
    Container, Node, NodeSpec, ObjectReference, Pod, PodCondition, PodReadinessGate, PodSpec,
    PodStatus, Service, ServicePort, ServiceSpec, Taint,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use slb_sync::desired::{plan_all, plan_service, PlannerConfig};
use slb_sync::index::{Affected, ClusterIndex, ServiceRef};
use slb_sync::model::DesiredService;

// ---- Heap accounting ----

/// Counts live heap bytes so the index's footprint can be read as a difference.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a
// plain atomic and never affects the returned memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_bytes() -> isize {
    LIVE.load(Ordering::Relaxed)
}

// ---- Synthetic cluster ----

const NODES: usize = 5_000;
const SERVICES: usize = 10_000;
const PODS_PER_SERVICE: usize = 15; // 150,000 pods
const POOLS: usize = 50; // 100 nodes per pool
const NAMESPACES: usize = 100;

const LB_ID: &str = "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-id";
const BACKEND_LABEL: &str = "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-backend-label";
const BACKEND_TYPE: &str = "service.beta.kubernetes.io/backend-type";
const VGROUP_PORT: &str = "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-vgroup-port";
const REMOVE_UNSCHEDULED: &str =
    "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-remove-unscheduled-backend";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Cluster,
    Local,
    Eni,
}

/// 50% Cluster, 30% Local, 20% ENI.
fn kind(s: usize) -> Kind {
    match s % 10 {
        0..=4 => Kind::Cluster,
        5..=7 => Kind::Local,
        _ => Kind::Eni,
    }
}

/// Small deterministic PRNG (splitmix64) so every run builds the same cluster.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn meta(ns: Option<&str>, name: &str, labels: &[(&str, String)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: ns.map(str::to_owned),
        labels: (!labels.is_empty()).then(|| {
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect()
        }),
        resource_version: Some("123456789".into()),
        uid: Some(format!("0000-{name}")),
        ..Default::default()
    }
}

fn node_name(n: usize) -> String {
    format!(
        "cn-hangzhou.10.{}.{}.{}",
        n / 65536,
        (n / 256) % 256,
        n % 256
    )
}

fn mk_node(n: usize, tainted: bool) -> Node {
    let name = node_name(n);
    let mut labels = vec![
        ("kubernetes.io/hostname", name.clone()),
        ("kubernetes.io/os", "linux".into()),
        ("kubernetes.io/arch", "amd64".into()),
        ("node.kubernetes.io/instance-type", "ecs.g7.2xlarge".into()),
        ("topology.kubernetes.io/region", "cn-hangzhou".into()),
        (
            "topology.kubernetes.io/zone",
            format!("cn-hangzhou-{}", n % 3),
        ),
        ("pool", format!("pool-{}", n % POOLS)),
    ];
    if n < 3 {
        labels.push(("node-role.kubernetes.io/control-plane", String::new()));
    }
    let mut taints = Vec::new();
    if tainted || n % 997 == 5 {
        taints.push(Taint {
            key: "ToBeDeletedByClusterAutoscaler".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        });
    }
    Node {
        metadata: meta(None, &name, &labels),
        spec: Some(NodeSpec {
            provider_id: Some(format!("cn-hangzhou.i-{:016x}", mix(n as u64))),
            unschedulable: Some(n % 499 == 7),
            taints: Some(taints),
            ..Default::default()
        }),
        status: None,
    }
}

fn ns_of(s: usize) -> String {
    format!("team-{}", s % NAMESPACES)
}

fn svc_name(s: usize) -> String {
    format!("svc-{s:05}")
}

fn two_ports(s: usize) -> bool {
    s.is_multiple_of(4)
}

fn mk_service(s: usize, shared_pool: bool) -> Service {
    let mut annotations = BTreeMap::from([(LB_ID.to_owned(), format!("lb-{:012x}", s))]);
    let kind = kind(s);
    if kind == Kind::Eni {
        annotations.insert(BACKEND_TYPE.into(), "eni".into());
    }
    if kind == Kind::Cluster && !shared_pool {
        annotations.insert(BACKEND_LABEL.into(), format!("pool=pool-{}", s % POOLS));
    }
    if s.is_multiple_of(7) {
        annotations.insert(REMOVE_UNSCHEDULED.into(), "on".into());
    }
    if s.is_multiple_of(3) {
        annotations.insert(VGROUP_PORT.into(), format!("rsp-{s:08x}:80"));
    }
    let port = |name: &str, port: i32, target: IntOrString, node_port: i32| ServicePort {
        name: Some(name.into()),
        port,
        protocol: Some("TCP".into()),
        target_port: Some(target),
        node_port: Some(node_port),
        ..Default::default()
    };
    let mut ports = vec![port(
        "http",
        80,
        IntOrString::String("web".into()),
        30000 + (s % 2000) as i32,
    )];
    if two_ports(s) {
        ports.push(port(
            "metrics",
            9100,
            IntOrString::Int(9100),
            32000 + (s % 700) as i32,
        ));
    }
    let mut metadata = meta(Some(&ns_of(s)), &svc_name(s), &[("app", svc_name(s))]);
    metadata.annotations = Some(annotations);
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            load_balancer_class: Some("slb-sync.io/slb".into()),
            external_traffic_policy: Some(
                if kind == Kind::Local {
                    "Local"
                } else {
                    "Cluster"
                }
                .into(),
            ),
            selector: Some(BTreeMap::from([("app".to_owned(), svc_name(s))])),
            ports: Some(ports),
            ..Default::default()
        }),
        status: None,
    }
}

fn pod_name(s: usize, p: usize) -> String {
    format!("{}-7d9f8b6c5-{p:05}", svc_name(s))
}

fn pod_ip(s: usize, p: usize) -> String {
    let n = s * PODS_PER_SERVICE + p;
    format!("10.{}.{}.{}", 64 + n / 65536, (n / 256) % 256, n % 256)
}

fn pod_node(s: usize, p: usize) -> usize {
    (mix((s * PODS_PER_SERVICE + p) as u64) % NODES as u64) as usize
}

/// Pod `p` of Service `s`: mostly ready, one terminating, one waiting on its gate.
fn ep_state(p: usize) -> (bool, bool) {
    match p {
        0 => (false, true),  // terminating
        1 => (false, false), // not ready yet (gate bootstrap decides)
        _ => (true, false),
    }
}

fn mk_pod(s: usize, p: usize) -> Pod {
    let gated = kind(s) != Kind::Cluster;
    Pod {
        metadata: meta(Some(&ns_of(s)), &pod_name(s, p), &[("app", svc_name(s))]),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("registry.example.com/app:1.2.3".into()),
                ..Default::default()
            }],
            node_name: Some(node_name(pod_node(s, p))),
            readiness_gates: gated.then(|| {
                vec![PodReadinessGate {
                    condition_type: format!("registered.slb-sync.io/{}", svc_name(s)),
                }]
            }),
            ..Default::default()
        }),
        status: Some(PodStatus {
            pod_ip: Some(pod_ip(s, p)),
            conditions: Some(vec![PodCondition {
                type_: "ContainersReady".into(),
                status: if p % 2 == 1 { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

/// The Service's IPv4 slice; `flip` toggles the readiness of endpoint 2.
fn mk_slice(s: usize, flip: bool) -> EndpointSlice {
    let endpoints = (0..PODS_PER_SERVICE)
        .map(|p| {
            let (mut ready, terminating) = ep_state(p);
            if p == 2 && flip {
                ready = !ready;
            }
            Endpoint {
                addresses: vec![pod_ip(s, p)],
                conditions: Some(EndpointConditions {
                    ready: Some(ready),
                    serving: Some(ready || terminating),
                    terminating: Some(terminating),
                }),
                node_name: Some(node_name(pod_node(s, p))),
                target_ref: Some(ObjectReference {
                    kind: Some("Pod".into()),
                    name: Some(pod_name(s, p)),
                    namespace: Some(ns_of(s)),
                    uid: Some(format!("uid-{}", pod_name(s, p))),
                    ..Default::default()
                }),
                zone: Some(format!("cn-hangzhou-{}", pod_node(s, p) % 3)),
                ..Default::default()
            }
        })
        .collect();
    let mut ports = vec![EndpointPort {
        name: Some("http".into()),
        port: Some(8080),
        protocol: Some("TCP".into()),
        ..Default::default()
    }];
    if two_ports(s) {
        ports.push(EndpointPort {
            name: Some("metrics".into()),
            port: Some(9100),
            protocol: Some("TCP".into()),
            ..Default::default()
        });
    }
    EndpointSlice {
        metadata: meta(
            Some(&ns_of(s)),
            &format!("{}-abcde", svc_name(s)),
            &[
                ("kubernetes.io/service-name", svc_name(s)),
                (
                    "endpointslice.kubernetes.io/managed-by",
                    "endpointslice-controller.k8s.io".into(),
                ),
            ],
        ),
        address_type: "IPv4".into(),
        endpoints: Some(endpoints),
        ports: Some(ports),
    }
}

/// Every tenth ENI Service is dual-stack: a second slice with IPv6 addresses.
fn mk_slice_v6(s: usize) -> Option<EndpointSlice> {
    if kind(s) != Kind::Eni || s % 10 != 8 || !(s / 10).is_multiple_of(10) {
        return None;
    }
    let mut slice = mk_slice(s, false);
    slice.metadata.name = Some(format!("{}-v6xyz", svc_name(s)));
    slice.address_type = "IPv6".into();
    for (p, ep) in slice.endpoints.iter_mut().flatten().enumerate() {
        ep.addresses = vec![format!("fd00::{:x}", s * PODS_PER_SERVICE + p)];
    }
    Some(slice)
}

/// Builds the index object by object (each generated, applied and dropped), so the live
/// heap difference is the index alone.
fn build_cluster() -> (ClusterIndex, isize) {
    let before = live_bytes();
    let mut index = ClusterIndex::new(PlannerConfig::default());
    for n in 0..NODES {
        index.apply_node(&mk_node(n, false));
    }
    for s in 0..SERVICES {
        index.apply_service(&mk_service(s, false));
        for p in 0..PODS_PER_SERVICE {
            index.apply_pod(&mk_pod(s, p));
        }
        index.apply_endpoint_slice(&mk_slice(s, false));
        if let Some(v6) = mk_slice_v6(s) {
            index.apply_endpoint_slice(&v6);
        }
    }
    let bytes = live_bytes() - before;
    (index, bytes)
}

/// 5,000 nodes and 5,000 Cluster-mode Services that all share the full node set.
fn build_shared_cluster() -> ClusterIndex {
    let mut index = ClusterIndex::new(PlannerConfig::default());
    for n in 0..NODES {
        index.apply_node(&mk_node(n, false));
    }
    for s in (0..SERVICES).filter(|s| kind(*s) == Kind::Cluster) {
        let mut svc = mk_service(s, true);
        // One selector for all: drop the remove-unscheduled variation too.
        svc.metadata
            .annotations
            .as_mut()
            .unwrap()
            .remove(REMOVE_UNSCHEDULED);
        index.apply_service(&svc);
    }
    index
}

/// Re-plans every affected Service; the plans are returned so that dropping them is not
/// timed (the consumer owns them).
fn replan(index: &ClusterIndex, affected: &Affected) -> Vec<DesiredService> {
    affected
        .services
        .iter()
        .filter_map(|s| plan_service(index, s))
        .collect()
}

/// Nodes whose removal taint is the only thing that changes them (not control-plane,
/// not already tainted or unschedulable), so toggling it always changes the plan.
fn plain_nodes() -> Vec<usize> {
    (3..NODES)
        .filter(|n| n % 997 != 5 && n % 499 != 7)
        .collect()
}

fn main() {
    let t = Instant::now();
    let (mut index, index_bytes) = build_cluster();
    let build_time = t.elapsed();
    let t = Instant::now();
    let first = plan_all(&index);
    let cold_plan = t.elapsed();
    let backends: usize = first
        .iter()
        .flat_map(|d| &d.groups)
        .map(|g| g.backends.len())
        .sum();
    let errors: usize = first.iter().map(|d| d.errors.len()).sum();
    let output_bytes = {
        let before = live_bytes();
        let again = plan_all(&index);
        let bytes = live_bytes() - before;
        drop(again);
        bytes
    };
    drop(first);
    println!("synthetic cluster: {:?}", index.stats());
    println!(
        "index heap: {:.1} MiB ({index_bytes} bytes); built in {build_time:?}",
        index_bytes as f64 / (1024.0 * 1024.0)
    );
    println!(
        "first plan_all (computes 100 node sets): {cold_plan:?}; {backends} backends, \
         {errors} errors, output {:.1} MiB",
        output_bytes as f64 / (1024.0 * 1024.0)
    );

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();

    c.benchmark_group("planner")
        .sample_size(10)
        .bench_function("full_plan_10k_services", |b| {
            b.iter_with_large_drop(|| plan_all(&index))
        });

    // One endpoint flips readiness in a Local or ENI Service; apply it and re-plan what
    // it affects (that one Service).
    let endpoint_services: Vec<usize> = (0..SERVICES)
        .filter(|s| kind(*s) != Kind::Cluster)
        .collect();
    let mut flipped = vec![false; SERVICES];
    let mut next = 0;
    c.benchmark_group("planner")
        .sample_size(100)
        .bench_function("endpoint_change_replan", |b| {
            b.iter_batched_ref(
                || {
                    let s = endpoint_services[next % endpoint_services.len()];
                    next += 1;
                    flipped[s] = !flipped[s];
                    mk_slice(s, flipped[s])
                },
                |slice| {
                    let affected = index.apply_endpoint_slice(slice);
                    assert_eq!(affected.services.len(), 1);
                    assert!(!affected.is_empty());
                    replan(&index, &affected)
                },
                BatchSize::SmallInput,
            )
        });

    // The two halves of the above, for diagnosis: the index update alone, and planning
    // one Local and one ENI Service from an unchanged index.
    c.benchmark_group("planner").sample_size(50).bench_function(
        "endpoint_change_index_only",
        |b| {
            b.iter_batched_ref(
                || {
                    let s = endpoint_services[next % endpoint_services.len()];
                    next += 1;
                    flipped[s] = !flipped[s];
                    mk_slice(s, flipped[s])
                },
                |slice| index.apply_endpoint_slice(slice),
                BatchSize::SmallInput,
            )
        },
    );
    for s in [5, 8] {
        let svc = ServiceRef::new(ns_of(s), svc_name(s));
        let label = if kind(s) == Kind::Local {
            "plan_one_local_service"
        } else {
            "plan_one_eni_service"
        };
        c.benchmark_group("planner")
            .sample_size(50)
            .bench_function(label, |b| b.iter(|| plan_service(&index, &svc)));
    }

    // One node gets (or loses) the autoscaler's removal taint: its pool's 100 Cluster
    // Services (two node sets) and the Local Services with pods on it are re-planned.
    let plain = plain_nodes();
    let mut tainted = vec![false; NODES];
    let mut next = 0;
    c.benchmark_group("planner").sample_size(20).bench_function(
        "node_change_replan_affected",
        |b| {
            b.iter_batched_ref(
                || {
                    let n = plain[next % plain.len()];
                    next += 37;
                    tainted[n] = !tainted[n];
                    mk_node(n, tainted[n])
                },
                |node| {
                    let affected = index.apply_node(node);
                    assert!(!affected.is_empty());
                    replan(&index, &affected)
                },
                BatchSize::SmallInput,
            )
        },
    );
    let sample = index.apply_node(&mk_node(plain[1], !tainted[plain[1]]));
    println!(
        "node change in the pooled cluster affects {} Services ({} node sets)",
        sample.services.len(),
        sample.node_sets.len()
    );

    // 5,000 Cluster-mode Services sharing all 5,000 nodes: the index update, the
    // affected list (all 5,000), one recomputation of the shared eligible-node set and
    // one Service's plan from it. Materialising all 5,000 plans (25M backends) is output
    // size, not planning; `Affected::node_sets` lets a consumer apply it as one delta.
    let mut shared = build_shared_cluster();
    let probe = ServiceRef::new(ns_of(0), svc_name(0));
    let plain = plain_nodes();
    let mut tainted = vec![false; NODES];
    let mut next = 0;
    c.benchmark_group("planner").sample_size(20).bench_function(
        "node_change_shared_set_5000_cluster_services",
        |b| {
            b.iter_batched_ref(
                || {
                    let n = plain[next % plain.len()];
                    next += 37;
                    tainted[n] = !tainted[n];
                    mk_node(n, tainted[n])
                },
                |node| {
                    let affected = shared.apply_node(node);
                    assert_eq!(affected.services.len(), 5_000);
                    (affected, plan_service(&shared, &probe))
                },
                BatchSize::SmallInput,
            )
        },
    );

    c.final_summary();
}
