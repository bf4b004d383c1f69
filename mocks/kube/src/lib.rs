//! Kubernetes API test double: a loopback HTTP server that a real `kube::Client` talks to.
//!
//! No kube-apiserver can run where slb-sync's tests run, so this crate speaks enough of the
//! Kubernetes REST API, with the semantics controllers depend on, that the agent's real
//! watchers, finalizer helper, status patches, event recorder and lease manager can be
//! exercised end to end.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let kube = mock_kube::MockKube::start().await?;
//! let client = kube.client()?; // or kube.write_kubeconfig(path) for another process
//! # let _ = client; Ok(()) }
//! ```
//!
//! # What it implements
//!
//! - **Kinds**: core/v1 `pods`, `services`, `nodes`, `namespaces` (each with `/status`),
//!   `events`, `serviceaccounts`, `secrets`, `configmaps`; `discovery.k8s.io/v1`
//!   `endpointslices`; `coordination.k8s.io/v1` `leases`; `events.k8s.io/v1` `events` (the
//!   same objects as core/v1 Events, converted both ways, see `events`); `apps/v1`
//!   `deployments` and `statefulsets` (with `/status` and `/scale`; stored only, no
//!   controller acts on them); `policy/v1` `poddisruptionbudgets`;
//!   `rbac.authorization.k8s.io/v1` roles and bindings (stored, not enforced); with
//!   [`MockKube::prometheus_operator_crds`], `monitoring.coreos.com/v1` `servicemonitors`
//!   and `prometheusrules`. Namespaced and cluster-scoped paths, lists across all
//!   namespaces (`/api/v1/pods`). Objects are stored as JSON, not typed.
//! - **Discovery**: `/version`, `/api`, `/apis`, `/apis/<group>`, `/api/v1`,
//!   `/apis/<group>/<version>` (legacy, non-aggregated documents).
//! - **OpenAPI** ([`openapi`]): `/openapi/v3` and each group/version's document with the
//!   `fieldValidation` parameter and Kubernetes' own schemas, so kubectl validates through
//!   the server; every write is checked against the same schemas (wrong types refused,
//!   undeclared fields dropped with a warning, or refused under `fieldValidation=Strict`).
//! - **Content negotiation**: JSON for clients that also accept it (protobuf-preferring
//!   typed clients), `406` for those that accept nothing else; protobuf bodies of the RBAC
//!   kinds (`kubectl create clusterrolebinding`), `415` for other protobuf bodies;
//!   `as=Table` answers (what `kubectl get` prints) and `as=PartialObjectMetadata`.
//! - **List** with `labelSelector` (`=`, `==`, `!=`, `in`, `notin`, exists, `!`exists) and
//!   `fieldSelector` (`=`, `==`, `!=` on `metadata.name`, `metadata.namespace` and the
//!   fields the real server indexes per kind, e.g. pods' `spec.nodeName`, `status.phase`;
//!   an unsupported field is `400 BadRequest`). The list carries
//!   `metadata.resourceVersion`. `limit`/`continue` chunking: a page of at most `limit`
//!   objects with a `continue` token (and `remainingItemCount` without selectors); pages
//!   are read from the current state, not from a consistent snapshot.
//! - **Watch** (`watch=true|1`): from a resourceVersion, or from "now" with synthetic
//!   `ADDED` events when it is unset or `0`; `ADDED`/`MODIFIED`/`DELETED` (an object moving
//!   into or out of the selectors is `ADDED`/`DELETED`, as on the real server); periodic
//!   `BOOKMARK`s with `allowWatchBookmarks`; `sendInitialEvents` (initial `ADDED`s then a
//!   bookmark annotated `k8s.io/initial-events-end`); `timeoutSeconds`. The event history
//!   is bounded ([`MockKube::history_limit`]); a watch from a resourceVersion older than it
//!   gets an `ERROR` event with a `410 Expired` Status, so kube-runtime's watcher re-lists.
//!   [`MockKubeHandle::compact_history`] forces that.
//! - **Writes**: create (`409 AlreadyExists`, `generateName`, `uid`, `creationTimestamp`,
//!   `generation: 1`, status reset as the real strategies do: pods `Pending`, services
//!   empty, nodes kept); replace/`PUT` with a `resourceVersion` precondition
//!   (`409 Conflict`); patch: JSON merge, JSON patch (a failed `test` is `422 Invalid`),
//!   strategic merge and server-side apply (both approximated, see [`patch`]); `dryRun=All`.
//!   Server-side apply tracks field ownership per leaf field in `managedFields`
//!   (`FieldsV1` format) and answers `409 Conflict` when an apply would change a field
//!   another manager owns, unless `force=true` — leader election with kube-lease-manager
//!   depends on it. Fields a manager applied before and leaves out of its next apply are
//!   removed unless another manager owns them. Entries are kept per (manager, operation,
//!   subresource). Writes without `fieldManager` are owned by the User-Agent's product
//!   name, as on the real server.
//!   `generation` increments when anything outside `metadata` and `status` changes. A
//!   no-op write does not bump the resourceVersion.
//! - **Status subresource**: writes to `/status` change only `.status`; the main endpoint
//!   ignores `.status` changes for kinds that have the subresource.
//! - **Delete**: with finalizers, sets `deletionTimestamp` (now + grace) and
//!   `deletionGracePeriodSeconds`, bumps `generation`, and keeps the object until an update
//!   or patch removes the last finalizer — that write becomes the deletion (one `DELETED`
//!   event); no new finalizers may be added meanwhile (`422`). Without finalizers the
//!   object is removed at once. `preconditions` (uid, resourceVersion) are checked.
//!   Optionally ([`MockKube::graceful_pod_deletion`]) a scheduled pod deleted with a grace
//!   period stays until "kubelet" confirms (a delete with `gracePeriodSeconds=0`, or
//!   [`MockKubeHandle::finish_pod_termination`]). `deletecollection` with selectors.
//! - **Errors** are `Status` objects with the real codes and reasons (`404 NotFound`,
//!   `409 Conflict`/`AlreadyExists`, `422 Invalid`, `410 Expired`, `400 BadRequest`,
//!   `415 UnsupportedMediaType`).
//! - **Test hooks** on [`MockKubeHandle`], direct rather than over HTTP: put/get/list/remove
//!   objects, request counts per (verb, resource), injected latency or failure per path
//!   ([`Fault`]), history compaction.
//!
//! # What it does not implement
//!
//! No authentication, authorization or TLS; no admission (no defaulting beyond the
//! metadata above, no semantic validation or immutability checks, only the schema
//! checks); no garbage collection (`ownerReferences`, `propagationPolicy` ignored) and no
//! namespace cascade deletion; no controllers (nothing schedules pods, creates
//! EndpointSlices or runs kubelet, so `kubectl logs`/`exec`/`port-forward` cannot work);
//! strategic merge is approximated by field name rather than by schema, and server-side
//! apply's ownership model uses the same keys (lists without a known merge key are
//! atomic; the FieldsV1 `.` markers are not written); list
//! `resourceVersion`/`resourceVersionMatch` are ignored (lists are always current);
//! CBOR bodies and protobuf bodies beyond the RBAC kinds, other kinds and API groups,
//! aggregated discovery and the `exec`/`log`/`eviction`/`binding` subresources are not
//! served; namespaces are not required to exist unless [`MockKube::strict_namespaces`]
//! is on. The crate's README lists what kubectl users meet of this.
#![forbid(unsafe_code)]

pub mod discovery;
mod events;
mod hooks;
pub mod openapi;
pub mod patch;
pub mod resources;
pub mod selectors;
mod server;
mod status;
mod store;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;

pub use hooks::{Fault, FaultId};
pub use status::ApiError;

use server::Shared;
use store::{Filter, Store, StoreConfig};

/// Why the double could not start or answer a hook.
#[derive(Debug, thiserror::Error)]
pub enum MockKubeError {
    #[error("cannot bind the mock Kubernetes API on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write kubeconfig to {path}: {source}")]
    Kubeconfig {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[cfg(feature = "client")]
    #[error("cannot build a kube client for {url}: {source}")]
    Client {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{0}")]
    Api(#[from] ApiError),
}

/// Builder for the double; [`MockKube::start`] starts one with the defaults.
#[derive(Debug, Clone)]
pub struct MockKube {
    bind: SocketAddr,
    history_limit: usize,
    bookmark_interval: Duration,
    graceful_pod_deletion: bool,
    strict_namespaces: bool,
    namespaces: Vec<String>,
    prometheus_operator_crds: bool,
}

impl Default for MockKube {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            history_limit: 10_000,
            bookmark_interval: Duration::from_secs(5),
            graceful_pod_deletion: false,
            strict_namespaces: false,
            namespaces: vec!["default".into(), "kube-system".into()],
            prometheus_operator_crds: false,
        }
    }
}

impl MockKube {
    /// A builder with the defaults: 127.0.0.1 on a free port, 10 000 retained events,
    /// bookmarks every 5 s, pods deleted at once, namespaces not enforced, namespaces
    /// `default` and `kube-system` created.
    pub fn builder() -> Self {
        Self::default()
    }

    /// Starts a double with the defaults.
    pub async fn start() -> Result<MockKubeHandle, MockKubeError> {
        Self::default().serve().await
    }

    /// Address to bind (loopback only is the point; the default picks a free port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// How many watch events are retained; older resourceVersions get `410 Gone`.
    pub fn history_limit(mut self, n: usize) -> Self {
        self.history_limit = n;
        self
    }

    /// How often watches with `allowWatchBookmarks` get a `BOOKMARK`.
    pub fn bookmark_interval(mut self, d: Duration) -> Self {
        self.bookmark_interval = d.max(Duration::from_millis(1));
        self
    }

    /// Scheduled pods deleted with a grace period stay (Terminating) until a delete with
    /// `gracePeriodSeconds=0` or [`MockKubeHandle::finish_pod_termination`], like kubelet.
    pub fn graceful_pod_deletion(mut self, on: bool) -> Self {
        self.graceful_pod_deletion = on;
        self
    }

    /// Creating a namespaced object in a namespace that does not exist is `404`.
    pub fn strict_namespaces(mut self, on: bool) -> Self {
        self.strict_namespaces = on;
        self
    }

    /// Namespaces that exist at start (replaces the default list).
    pub fn namespaces<I: IntoIterator<Item = S>, S: Into<String>>(mut self, ns: I) -> Self {
        self.namespaces = ns.into_iter().map(Into::into).collect();
        self
    }

    /// Serves the Prometheus Operator's `monitoring.coreos.com/v1` ServiceMonitor and
    /// PrometheusRule, as a cluster with the operator's CRDs installed does (the install
    /// manifests create one of each). Off by default, like a bare cluster.
    pub fn prometheus_operator_crds(mut self, on: bool) -> Self {
        self.prometheus_operator_crds = on;
        self
    }

    /// Binds and serves in a background task until the handle is shut down or dropped.
    pub async fn serve(self) -> Result<MockKubeHandle, MockKubeError> {
        let listener = tokio::net::TcpListener::bind(self.bind)
            .await
            .map_err(|source| MockKubeError::Bind {
                addr: self.bind,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| MockKubeError::Bind {
                addr: self.bind,
                source,
            })?;
        let (rv_tx, rv_rx) = tokio::sync::watch::channel(1);
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        let mut store = Store::new(
            StoreConfig {
                history_limit: self.history_limit,
                graceful_pod_deletion: self.graceful_pod_deletion,
                strict_namespaces: self.strict_namespaces,
            },
            rv_tx,
        );
        let now = store::now_rfc3339();
        for ns in &self.namespaces {
            store.put(
                serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": ns}, "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"}}),
                &now,
            )?;
        }
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            hooks: Mutex::new(hooks::Hooks::default()),
            rv_rx,
            shutdown_rx: shutdown_rx.clone(),
            disconnect_tx: tokio::sync::watch::channel(0).0,
            bookmark_interval: self.bookmark_interval,
            address: addr.to_string(),
            served: discovery::Served {
                custom_resources: self.prometheus_operator_crds,
            },
        });
        let app = server::router(shared.clone());
        let mut stop = shutdown_rx;
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::warn!(error = %e, "mock-kube server stopped");
            }
        });
        Ok(MockKubeHandle {
            addr,
            shared,
            shutdown_tx,
            task: Some(task),
        })
    }
}

/// A running double. Dropping it stops the server.
#[derive(Debug)]
pub struct MockKubeHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown_tx: tokio::sync::watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

mod handle;
