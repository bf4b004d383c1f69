//! The handle's API: where to connect, and the direct test hooks.

use super::*;

impl MockKubeHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A `kube::Client` for the double: plain HTTP, no auth, default namespace `default`.
    #[cfg(feature = "client")]
    pub fn client(&self) -> Result<kube::Client, MockKubeError> {
        let url = self.url();
        let uri: axum::http::Uri = url.parse().map_err(|e| MockKubeError::Client {
            url: url.clone(),
            source: Box::new(e),
        })?;
        let config = kube::Config::new(uri);
        kube::Client::try_from(config).map_err(|e| MockKubeError::Client {
            url,
            source: Box::new(e),
        })
    }

    /// A kubeconfig (YAML) pointing at the double, for another process (the agent binary).
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: mock-kube\n  cluster:\n    server: {url}\nusers:\n- name: mock-kube\n  user: {{}}\ncontexts:\n- name: mock-kube\n  context:\n    cluster: mock-kube\n    user: mock-kube\n    namespace: default\ncurrent-context: mock-kube\npreferences: {{}}\n",
            url = self.url()
        )
    }

    /// Writes [`Self::kubeconfig_yaml`] to `path`.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> Result<(), MockKubeError> {
        let path = path.as_ref();
        std::fs::write(path, self.kubeconfig_yaml()).map_err(|source| MockKubeError::Kubeconfig {
            path: path.display().to_string(),
            source,
        })
    }

    /// Upserts an object as given, status included, bypassing the API rules (no status
    /// reset, no resourceVersion precondition, finalizers ignored). Watchers see it.
    /// Accepts any `Serialize`, e.g. a `k8s_openapi` object with `apiVersion` and `kind`.
    pub fn put<T: serde::Serialize>(&self, obj: &T) -> Result<Value, MockKubeError> {
        let v = serde_json::to_value(obj)
            .map_err(|e| ApiError::bad_request(format!("put: not serialisable: {e}")))?;
        let now = store::now_rfc3339();
        let def = resources::find_by_kind(
            v["apiVersion"].as_str().unwrap_or_default(),
            v["kind"].as_str().unwrap_or_default(),
        )
        .map(|i| &resources::RESOURCES[i]);
        match def {
            Some(def) if def.stored_as.is_some() => {
                let stored = self.shared.store().put(def.to_stored(v), &now)?;
                Ok(def.to_view(stored))
            }
            _ => Ok(self.shared.store().put(v, &now)?),
        }
    }

    /// The stored key of an object (events.k8s.io Events are stored as core/v1 Events).
    fn key(api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<store::Key> {
        let idx = resources::find_by_kind(api_version, kind)?;
        let ns = if resources::RESOURCES[idx].namespaced {
            namespace.to_string()
        } else {
            String::new()
        };
        Some((resources::storage_of(idx), ns, name.to_string()))
    }

    /// One object, e.g. `get("v1", "Pod", "default", "web-0")` (namespace ignored for
    /// cluster-scoped kinds), in the form `api_version` serves it.
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let def = &resources::RESOURCES[resources::find_by_kind(api_version, kind)?];
        let key = Self::key(api_version, kind, namespace, name)?;
        let stored = self.shared.store().get(&key).cloned()?;
        Some(def.to_view(stored))
    }

    /// Every object of a kind, in one namespace or all (`None`).
    pub fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let Some(idx) = resources::find_by_kind(api_version, kind) else {
            return Vec::new();
        };
        let def = &resources::RESOURCES[idx];
        let filter = Filter {
            kind: resources::storage_of(idx),
            namespace: namespace.map(str::to_string),
            ..Filter::default()
        };
        let stored = self.shared.store().list(&filter);
        stored.into_iter().map(|o| def.to_view(o)).collect()
    }

    /// Removes an object at once, ignoring finalizers; watchers see `DELETED`.
    pub fn remove(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let key = Self::key(api_version, kind, namespace, name)?;
        self.shared.store().remove(&key)
    }

    /// What kubelet does when a Terminating pod's containers are gone: a delete with
    /// `gracePeriodSeconds=0`. The pod goes once its finalizers are gone too.
    pub fn finish_pod_termination(&self, namespace: &str, name: &str) -> Result<(), MockKubeError> {
        let key = Self::key("v1", "Pod", namespace, name)
            .ok_or_else(|| ApiError::not_found("pods", name))?;
        let opts = store::DeleteOptions {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        self.shared.store().delete(&key, &opts)?;
        Ok(())
    }

    /// The latest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store().resource_version()
    }

    /// Drops the retained watch history: watches resuming from an older resourceVersion
    /// get `410 Gone` and must re-list.
    pub fn compact_history(&self) {
        self.shared.store().compact();
    }

    /// Ends every open watch stream, as a dropped connection or an API server restart
    /// would; clients resume from their last resourceVersion (and get `410 Gone` if
    /// [`Self::compact_history`] ran in between).
    pub fn disconnect_watches(&self) {
        self.shared.disconnect_tx.send_modify(|e| *e += 1);
    }

    /// Changes how many watch events are retained (trimming at once if lower).
    pub fn set_history_limit(&self, n: usize) {
        self.shared.store().set_history_limit(n);
    }

    /// Requests served for (verb, resource), e.g. `("patch", "pods/status")`. Verbs:
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub fn request_count(&self, verb: &str, resource: &str) -> u64 {
        self.shared
            .hooks()
            .counts()
            .get(&(verb.to_string(), resource.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// Every (verb, resource) counter.
    pub fn request_counts(&self) -> BTreeMap<(String, String), u64> {
        self.shared.hooks().counts()
    }

    pub fn reset_request_counts(&self) {
        self.shared.hooks().reset_counts();
    }

    /// Adds a latency/failure rule; see [`Fault`].
    pub fn inject_fault(&self, fault: Fault) -> FaultId {
        self.shared.hooks().add_fault(fault)
    }

    pub fn remove_fault(&self, id: FaultId) {
        self.shared.hooks().remove_fault(id);
    }

    pub fn clear_faults(&self) {
        self.shared.hooks().clear_faults();
    }

    /// Ends every watch stream and stops the server, waiting for open requests to finish.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockKubeHandle {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
