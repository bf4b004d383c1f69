//! `doctor --live`: reads the objects the rules need from the cluster, read-only (list
//! calls only), into the same [`ClusterSnapshot`] that manifest files load into, so the
//! live and the file audit share one rule engine.
//!
//! Keeps only what the audit uses: managed Services; Deployments and StatefulSets in the
//! namespaces that have one; Nodes (labels only, listed as metadata, and only when a
//! managed Service is Local: the node-pool rule). Lists are chunked (`limit`/`continue`)
//! and filtered page by page, so a 5,000-node cluster costs a few requests and holds
//! little memory.

mod error;

use std::collections::BTreeSet;
use std::future::Future;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, ObjectList};
use kube::{Api, Client};

pub use error::{Listing, LiveError, DOCTOR_RBAC};

use super::{is_managed, DoctorConfig};
use crate::offline::ClusterSnapshot;

/// Objects per list request when not configured: what kubectl uses (`--chunk-size`).
pub const DEFAULT_CHUNK_SIZE: u32 = 500;
/// Times a chunked list starts over after its continue token expired (HTTP 410).
const MAX_RESTARTS: usize = 2;

/// What `doctor --live` reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveOptions {
    /// Only this namespace's Services and workloads (`--namespace`); all when `None`.
    pub namespace: Option<String>,
    /// Objects per list request (`--chunk-size`); 0 asks for each list in one response.
    pub chunk_size: u32,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            namespace: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

/// The objects read, and what the user should know about the read (e.g. a kind that was
/// not readable and the rule that therefore could not check everything).
#[derive(Debug)]
pub struct LiveSnapshot {
    pub snapshot: ClusterSnapshot,
    pub notes: Vec<String>,
}

/// Reads the cluster behind `client`; `server` (its URL) is named in errors.
pub async fn load(
    client: &Client,
    server: &str,
    options: &LiveOptions,
    config: &DoctorConfig,
) -> Result<LiveSnapshot, LiveError> {
    let lister = Lister {
        client,
        server,
        options,
    };
    let mut notes = Vec::new();
    let services: Vec<Service> = lister
        .namespaced("services", "", |lp, api: Api<Service>| async move {
            api.list(&lp).await
        })
        .list(|s| is_managed(&s, config).then(|| slim(s)))
        .await?;
    let namespaces: BTreeSet<String> = services
        .iter()
        .filter_map(|s| s.metadata.namespace.clone())
        .collect();
    let mut snapshot = ClusterSnapshot {
        services,
        ..ClusterSnapshot::default()
    };
    if namespaces.is_empty() {
        // The usual cause is a class mismatch; say which Services doctor looked for.
        let scope = match &options.namespace {
            Some(ns) => format!("in namespace {ns}"),
            None => "in any namespace".to_owned(),
        };
        notes.push(format!(
            "no managed Service {scope}: doctor audits LoadBalancer Services with \
             spec.loadBalancerClass {}{}; pass --lb-class if the agent runs with another \
             class{}",
            config.lb_class,
            if config.manage_unclassed {
                " or without a class but with the SLB id annotation"
            } else {
                ""
            },
            if config.manage_unclassed {
                ""
            } else {
                ", or --manage-unclassed for class-less Services with the SLB id annotation"
            },
        ));
        return Ok(LiveSnapshot { snapshot, notes });
    }
    let behind = |ns: &Option<String>| ns.as_ref().is_some_and(|ns| namespaces.contains(ns));
    snapshot.deployments = lister
        .namespaced(
            "deployments",
            "apps",
            |lp, api: Api<Deployment>| async move { api.list(&lp).await },
        )
        .list(|d| behind(&d.metadata.namespace).then(|| slim(d)))
        .await?;
    snapshot.stateful_sets = lister
        .namespaced(
            "statefulsets",
            "apps",
            |lp, api: Api<StatefulSet>| async move { api.list(&lp).await },
        )
        .list(|s| behind(&s.metadata.namespace).then(|| slim(s)))
        .await?;

    let local = snapshot.services.iter().any(|s| {
        s.spec
            .as_ref()
            .and_then(|spec| spec.external_traffic_policy.as_deref())
            == Some("Local")
    });
    if local {
        let nodes = List {
            server,
            chunk_size: options.chunk_size,
            listing: Listing {
                resource: "nodes",
                group: "",
                namespace: None,
                namespaced: false,
            },
            fetch: |lp: ListParams| {
                let api: Api<Node> = Api::all(client.clone());
                async move { api.list_metadata(&lp).await }
            },
        };
        // Only the labels matter (the node-pool rule), so metadata is enough.
        match nodes
            .list(|m| {
                Some(Node {
                    metadata: ObjectMeta {
                        name: m.metadata.name,
                        labels: m.metadata.labels,
                        ..ObjectMeta::default()
                    },
                    ..Node::default()
                })
            })
            .await
        {
            Ok(nodes) => snapshot.nodes = nodes,
            // Application teams often may not list Nodes; the other rules still apply.
            Err(err) if err.is_forbidden() => notes.push(format!(
                "{err}. Without Nodes the local-layout rule cannot count the node pool; its \
                 finding says what to check by hand."
            )),
            Err(err) => return Err(err),
        }
    }
    Ok(LiveSnapshot { snapshot, notes })
}

/// Drops what the rules never read and a large list would carry many times.
fn slim<K: kube::Resource>(mut obj: K) -> K {
    obj.meta_mut().managed_fields = None;
    obj
}

/// Builds the list calls of one `doctor --live` run.
struct Lister<'a> {
    client: &'a Client,
    server: &'a str,
    options: &'a LiveOptions,
}

impl<'a> Lister<'a> {
    /// A namespaced kind, in `--namespace` or in all namespaces.
    fn namespaced<K, F, Fut>(
        &self,
        resource: &'static str,
        group: &'static str,
        call: F,
    ) -> List<'a, impl FnMut(ListParams) -> Fut>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
        F: Fn(ListParams, Api<K>) -> Fut,
        Fut: Future,
    {
        let namespace = self.options.namespace.clone();
        let client = self.client.clone();
        let api = move || match &namespace {
            Some(ns) => Api::<K>::namespaced(client.clone(), ns),
            None => Api::<K>::all(client.clone()),
        };
        List {
            server: self.server,
            chunk_size: self.options.chunk_size,
            listing: Listing {
                resource,
                group,
                namespace: self.options.namespace.clone(),
                namespaced: true,
            },
            fetch: move |lp| call(lp, api()),
        }
    }
}

/// One chunked list call: `fetch` gets one page per call.
struct List<'a, F> {
    server: &'a str,
    chunk_size: u32,
    listing: Listing,
    fetch: F,
}

impl<F> List<'_, F> {
    /// Every object of every page that `keep` keeps; pages are filtered as they arrive.
    async fn list<T, U, Fut>(
        mut self,
        mut keep: impl FnMut(T) -> Option<U>,
    ) -> Result<Vec<U>, LiveError>
    where
        T: Clone,
        F: FnMut(ListParams) -> Fut,
        Fut: Future<Output = Result<ObjectList<T>, kube::Error>>,
    {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        let mut restarts = 0;
        let mut pages = 0usize;
        loop {
            let mut lp = ListParams::default();
            if self.chunk_size > 0 {
                lp = lp.limit(self.chunk_size);
            }
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            match (self.fetch)(lp).await {
                Ok(page) => {
                    pages += 1;
                    out.extend(page.items.into_iter().filter_map(&mut keep));
                    token = page.metadata.continue_.filter(|t| !t.is_empty());
                    if token.is_none() {
                        tracing::debug!(listing = %self.listing, pages, kept = out.len(), "listed");
                        return Ok(out);
                    }
                }
                // The continue token outlived the API server's snapshot (a slow read of a
                // huge list): the only consistent answer is to start over.
                Err(kube::Error::Api(status))
                    if status.code == 410 && token.is_some() && restarts < MAX_RESTARTS =>
                {
                    restarts += 1;
                    tracing::warn!(listing = %self.listing, restarts, "continue token expired; listing again");
                    out.clear();
                    token = None;
                }
                Err(err) => return Err(LiveError::from_kube(self.server, &self.listing, err)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
    use kube::core::{Status, TypeMeta};

    use super::*;

    fn page(items: &[u32], next: Option<&str>) -> Result<ObjectList<u32>, kube::Error> {
        Ok(ObjectList {
            types: TypeMeta::default(),
            metadata: ListMeta {
                continue_: next.map(str::to_owned),
                ..ListMeta::default()
            },
            items: items.to_vec(),
        })
    }

    fn gone() -> Result<ObjectList<u32>, kube::Error> {
        Err(kube::Error::Api(Box::new(
            Status::failure("continue token too old", "Expired").with_code(410),
        )))
    }

    fn services() -> Listing {
        Listing {
            resource: "services",
            group: "",
            namespace: None,
            namespaced: true,
        }
    }

    /// Runs a chunked list over canned answers; returns the result and each request's
    /// (limit, continue).
    async fn run(
        chunk_size: u32,
        answers: Vec<Result<ObjectList<u32>, kube::Error>>,
    ) -> (
        Result<Vec<u32>, LiveError>,
        Vec<(Option<u32>, Option<String>)>,
    ) {
        let answers = RefCell::new(answers.into_iter());
        let requests = RefCell::new(Vec::new());
        let list = List {
            server: "https://k8s:6443/",
            chunk_size,
            listing: services(),
            fetch: |lp: ListParams| {
                requests
                    .borrow_mut()
                    .push((lp.limit, lp.continue_token.clone()));
                let answer = answers.borrow_mut().next().expect("no more answers");
                async move { answer }
            },
        };
        let result = list.list(|n| (n % 2 == 1).then_some(n * 10)).await;
        (result, requests.into_inner())
    }

    #[tokio::test]
    async fn pages_are_followed_and_filtered_as_they_arrive() {
        let (result, requests) = run(
            2,
            vec![
                page(&[1, 2], Some("t1")),
                page(&[3, 4], Some("t2")),
                page(&[5], None),
            ],
        )
        .await;
        assert_eq!(result.unwrap(), [10, 30, 50]);
        assert_eq!(
            requests,
            [
                (Some(2), None),
                (Some(2), Some("t1".to_owned())),
                (Some(2), Some("t2".to_owned()))
            ]
        );
        // Chunk size 0: one request without a limit.
        let (result, requests) = run(0, vec![page(&[1, 3], None)]).await;
        assert_eq!(result.unwrap(), [10, 30]);
        assert_eq!(requests, [(None, None)]);
    }

    #[tokio::test]
    async fn an_expired_continue_token_starts_the_list_over_a_bounded_number_of_times() {
        let (result, requests) = run(
            1,
            vec![
                page(&[1], Some("t1")),
                gone(),
                page(&[1], Some("t1")),
                page(&[3], None),
            ],
        )
        .await;
        assert_eq!(result.unwrap(), [10, 30], "nothing twice after the restart");
        assert_eq!(requests[2], (Some(1), None));

        let mut answers = Vec::new();
        for _ in 0..=MAX_RESTARTS {
            answers.push(page(&[1], Some("t1")));
            answers.push(gone());
        }
        let (result, requests) = run(1, answers).await;
        assert!(
            matches!(result, Err(LiveError::Api { code: 410, .. })),
            "{result:?}"
        );
        assert_eq!(requests.len(), 2 * (MAX_RESTARTS + 1));

        // A 410 on the first page is not an expired token: no retry.
        let (result, requests) = run(1, vec![gone()]).await;
        assert!(result.is_err());
        assert_eq!(requests.len(), 1);
    }
}
