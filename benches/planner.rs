//! Planner benchmark on a synthetic cluster generated in code:
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
use slb_sync::desired::{plan_all, plan_service, PlannerConfig};
use slb_sync::index::{Affected, ClusterIndex, ServiceRef};
use slb_sync::model::{DesiredService, StoredPod};

// Not a bench target of its own: Cargo only discovers `benches/*.rs` and `benches/*/main.rs`.
#[path = "planner/cluster.rs"]
mod cluster;
use cluster::*;

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
            index.apply_pod(&StoredPod::from(mk_pod(s, p)));
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

fn main() {
    let t = Instant::now();
    let (mut index, index_bytes) = build_cluster();
    let build_time = t.elapsed();
    // The first planning also computes the shared node sets (one per pool, with and
    // without remove-unscheduled: 100); time that part on its own.
    let t = Instant::now();
    // Every (pool, remove-unscheduled) pair occurs among the first 7 × 10 × POOLS.
    let mut first_plans = 0;
    for s in (0..7 * 10 * POOLS).filter(|s| kind(*s) == Kind::Cluster) {
        let svc = ServiceRef::new(ns_of(s), svc_name(s));
        first_plans += plan_service(&index, &svc).is_some() as usize;
    }
    let node_sets_time = t.elapsed();
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
        "first node-set computations (plus {} plans): {node_sets_time:?}, {} sets",
        first_plans,
        index.stats().cached_node_sets
    );
    println!(
        "first plan_all: {cold_plan:?}; {backends} backends, {errors} errors, output {:.1} MiB",
        output_bytes as f64 / (1024.0 * 1024.0)
    );

    // The pod side asks, for every pod on a resync, which managed Services select it:
    // answered from the index's selector filing, not by scanning 10,000 Services.
    let pods: Vec<(String, BTreeMap<String, String>)> = (0..SERVICES)
        .flat_map(|s| (0..PODS_PER_SERVICE).map(move |p| (s, p)))
        .map(|(s, p)| {
            let pod = mk_pod(s, p);
            (ns_of(s), pod.metadata.labels.unwrap_or_default())
        })
        .collect();
    let t = Instant::now();
    let selected: usize = pods
        .iter()
        .map(|(ns, labels)| index.services_selecting(ns, labels).len())
        .sum();
    println!(
        "pod side: Services selecting each of {} pods: {:?} in all ({selected} matches)",
        pods.len(),
        t.elapsed()
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
