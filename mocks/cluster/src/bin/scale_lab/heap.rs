//! Heap accounting for the lab process: a counting global allocator (this binary is its
//! own crate, so the library's `forbid(unsafe_code)` stays), and the heap of the agent's
//! components rebuilt from the same lists its watchers read.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ListParams;
use kube::runtime::reflector;
use kube::runtime::watcher;
use kube::{Api, Resource};
use mock_cluster::scale::procs;
use mock_cluster::scale::spec::Spec;
use serde::de::DeserializeOwned;
use slb_sync::desired::PlannerConfig;
use slb_sync::index::ClusterIndex;
use slb_sync::model::StoredPod;

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

/// Live heap bytes of this process.
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed).max(0) as usize
}

const MIB: f64 = 1024.0 * 1024.0;

/// Pages through every object of `K`, 500 at a time as the agent's watchers do, handing
/// each page to `each` and dropping it.
async fn pages<K>(client: &kube::Client, mut each: impl FnMut(Vec<K>)) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let api: Api<K> = Api::all(client.clone());
    let mut params = ListParams::default().limit(500);
    loop {
        let list = api.list(&params).await?;
        let next = list.metadata.continue_.clone().filter(|c| !c.is_empty());
        each(list.items);
        match next {
            Some(c) => params.continue_token = Some(c),
            None => return Ok(()),
        }
    }
}

/// The strips the agent's watchers apply (`agent/watch.rs`): pods are decoded as the
/// agent's `StoredPod` (nothing left to strip); managedFields off the others, Service
/// status, Node images and volumes.
fn strip_service(s: &mut Service) {
    s.metadata.managed_fields = None;
    s.status = None;
}
fn strip_node(n: &mut Node) {
    n.metadata.managed_fields = None;
    if let Some(status) = n.status.as_mut() {
        status.images = None;
        status.volumes_attached = None;
        status.volumes_in_use = None;
    }
}
fn strip_slice(s: &mut EndpointSlice) {
    s.metadata.managed_fields = None;
}

async fn store_of<K>(
    client: &kube::Client,
    strip: fn(&mut K),
) -> Result<(reflector::Store<K>, f64), kube::Error>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let before = live_bytes();
    let (store, mut writer) = reflector::store::<K>();
    pages::<K>(client, |items| {
        for mut obj in items {
            strip(&mut obj);
            writer.apply_watcher_event(&watcher::Event::Apply(obj));
        }
    })
    .await?;
    Ok((store, (live_bytes() as f64 - before as f64) / MIB))
}

/// Heap of the agent's four reflector stores and of its cluster index, each built alone
/// from mock-kube loaded with `spec`'s cluster (a process of its own for this): name,
/// MiB, objects (0 for the index).
pub async fn components(
    spec: &Spec,
) -> Result<Vec<(String, f64, usize)>, Box<dyn std::error::Error>> {
    let json = serde_json::to_string(spec)?;
    let kube = procs::serve(&["serve-kube".to_owned(), "--spec".into(), json]).await?;
    let client = kube::Client::try_from(kube::Config::new(kube.addr.parse()?))?;
    let (pods, pods_mib) = store_of::<StoredPod>(&client, |_| {}).await?;
    let (svcs, svcs_mib) = store_of::<Service>(&client, strip_service).await?;
    let (slices, slices_mib) = store_of::<EndpointSlice>(&client, strip_slice).await?;
    let (nodes, nodes_mib) = store_of::<Node>(&client, strip_node).await?;
    let before = live_bytes();
    let mut index = ClusterIndex::new(PlannerConfig {
        cluster_id: spec.cluster_id.clone(),
        ..PlannerConfig::default()
    });
    for n in nodes.state() {
        index.apply_node(&n);
    }
    for s in svcs.state() {
        index.apply_service(&s);
    }
    for s in slices.state() {
        index.apply_endpoint_slice(&s);
    }
    for p in pods.state() {
        index.apply_pod(&p);
    }
    let index_mib = (live_bytes() as f64 - before as f64) / MIB;
    let counts = (
        pods.state().len(),
        svcs.state().len(),
        slices.state().len(),
        nodes.state().len(),
    );
    drop(index);
    kube.stop().await;
    Ok(vec![
        (format!("pod store ({} pods)", counts.0), pods_mib, counts.0),
        (format!("Service store ({})", counts.1), svcs_mib, counts.1),
        (
            format!("EndpointSlice store ({})", counts.2),
            slices_mib,
            counts.2,
        ),
        (format!("Node store ({})", counts.3), nodes_mib, counts.3),
        ("cluster index".to_owned(), index_mib, 0),
    ])
}
