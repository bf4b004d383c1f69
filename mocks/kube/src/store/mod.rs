//! The object store: every object as JSON, one global resourceVersion counter, and a
//! bounded history of watch events.
//!
//! The store is synchronous and lives behind a `std::sync::Mutex`; no lock is held across
//! an `.await`. Watchers learn about new events through a `tokio::sync::watch` channel
//! carrying the latest resourceVersion, then read the history themselves, so a slow
//! watcher never blocks writers; one that falls behind the retained history gets
//! `410 Gone` exactly as from a compacted etcd.

mod delete;
mod ownership;
mod write;

use std::collections::{BTreeMap, HashSet, VecDeque};

use serde_json::{json, Value};
use tokio::sync::watch;

pub use delete::{DeleteOptions, DeleteOutcome};
pub use write::WriteOptions;

use crate::resources::RESOURCES;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::ApiError;

/// Store key: kind index into [`RESOURCES`], namespace (`""` when cluster-scoped), name.
pub type Key = (usize, String, String);

/// The type of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One retained change. `prev` lets a selector-filtered watch turn a MODIFIED that
/// moves an object into or out of the selection into ADDED or DELETED, as the server does.
#[derive(Debug, Clone)]
pub struct Event {
    pub rv: u64,
    pub kind: usize,
    pub namespace: String,
    pub event_type: EventType,
    pub object: Value,
    pub prev: Option<Value>,
}

/// What a watch or list selects.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub kind: usize,
    /// `None`: every namespace (or a cluster-scoped kind).
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn matches(&self, namespace: &str, obj: &Value) -> bool {
        self.namespace.as_deref().is_none_or(|ns| ns == namespace)
            && self.labels.matches(obj)
            && self.fields.matches(obj)
    }

    /// What a watcher with this filter sees of `ev`, if anything.
    pub fn view(&self, ev: &Event) -> Option<(&'static str, Value)> {
        if ev.kind != self.kind {
            return None;
        }
        let now = self.matches(&ev.namespace, &ev.object);
        let before = ev
            .prev
            .as_ref()
            .is_some_and(|p| self.matches(&ev.namespace, p));
        let t = match (ev.event_type, before, now) {
            (EventType::Modified, true, true) => "MODIFIED",
            (EventType::Modified, false, true) => "ADDED",
            (EventType::Modified, true, false) => "DELETED",
            (EventType::Modified, false, false) => return None,
            (t, _, true) => t.as_str(),
            (_, _, false) => return None,
        };
        Some((t, ev.object.clone()))
    }
}

/// Store settings fixed at start.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub history_limit: usize,
    pub graceful_pod_deletion: bool,
    pub strict_namespaces: bool,
}

/// All objects and the event history.
#[derive(Debug)]
pub struct Store {
    objects: BTreeMap<Key, Value>,
    rv: u64,
    history: VecDeque<Event>,
    history_limit: usize,
    /// Events at or below this resourceVersion may be gone from the history.
    compacted_rv: u64,
    uid_seed: u64,
    uid_counter: u64,
    /// Pods deleted with a grace period, waiting for "kubelet" (a delete with
    /// `gracePeriodSeconds=0`) before they may be removed.
    awaiting_kubelet: HashSet<Key>,
    config: StoreConfig,
    rv_tx: watch::Sender<u64>,
}

impl Store {
    pub fn new(config: StoreConfig, rv_tx: watch::Sender<u64>) -> Self {
        use std::hash::{BuildHasher, RandomState};
        let uid_seed = RandomState::new().hash_one(std::time::SystemTime::now());
        Self {
            objects: BTreeMap::new(),
            rv: 1,
            history: VecDeque::new(),
            history_limit: config.history_limit.max(1),
            compacted_rv: 1,
            uid_seed,
            uid_counter: 0,
            awaiting_kubelet: HashSet::new(),
            config,
            rv_tx,
        }
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Objects of `filter.kind` matching the filter, in (namespace, name) order.
    pub fn list(&self, filter: &Filter) -> Vec<Value> {
        let lo = (filter.kind, String::new(), String::new());
        self.objects
            .range(lo..)
            .take_while(|((k, _, _), _)| *k == filter.kind)
            .filter(|((_, ns, _), obj)| filter.matches(ns, obj))
            .map(|(_, obj)| obj.clone())
            .collect()
    }

    /// Objects of `filter.kind` matching the filter after `(namespace, name)` (all when
    /// `None`), in (namespace, name) order, borrowed: a list page copies only its own.
    pub fn iter_after<'a>(
        &'a self,
        filter: &'a Filter,
        after: Option<(&str, &str)>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        use std::ops::Bound;
        let lo = match after {
            Some((ns, name)) => Bound::Excluded((filter.kind, ns.to_owned(), name.to_owned())),
            None => Bound::Included((filter.kind, String::new(), String::new())),
        };
        self.objects
            .range((lo, Bound::Unbounded))
            .take_while(move |((k, _, _), _)| *k == filter.kind)
            .filter(move |((_, ns, _), obj)| filter.matches(ns, obj))
            .map(|(_, obj)| obj)
    }

    /// Events after `since` that `filter` sees, or `410 Gone` when the history no longer
    /// reaches back that far.
    pub fn events_since(
        &self,
        since: u64,
        filter: &Filter,
    ) -> Result<Vec<(&'static str, Value)>, ApiError> {
        if since < self.compacted_rv {
            return Err(ApiError::gone(format!(
                "too old resource version: {since} ({})",
                self.compacted_rv
            )));
        }
        // The history is ordered by resourceVersion: skip what the watcher has seen.
        let start = self.history.partition_point(|e| e.rv <= since);
        Ok(self
            .history
            .range(start..)
            .filter_map(|e| filter.view(e))
            .collect())
    }

    /// Drops the whole event history: every watch from an older resourceVersion gets
    /// `410 Gone` and has to re-list.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted_rv = self.rv;
    }

    pub fn set_history_limit(&mut self, limit: usize) {
        self.history_limit = limit.max(1);
        self.trim_history();
    }

    fn trim_history(&mut self) {
        while self.history.len() > self.history_limit {
            if let Some(e) = self.history.pop_front() {
                self.compacted_rv = e.rv;
            }
        }
    }

    fn next_uid(&mut self) -> String {
        self.uid_counter += 1;
        let a = self.uid_seed;
        let c = self.uid_counter;
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (a >> 32) as u32,
            (a >> 16) as u16,
            (a & 0xfff) as u16,
            (c >> 48) & 0xfff,
            c & 0xffff_ffff_ffff
        )
    }

    /// Stores `new` (or removes the key when `new` is `None`), stamps the next
    /// resourceVersion, records the event and wakes watchers. Returns the stored object
    /// (for a deletion: the last state, carrying the deletion's resourceVersion).
    fn commit(&mut self, key: Key, new: Option<Value>, event_type: EventType) -> Value {
        self.rv += 1;
        let rv = self.rv;
        let prev = self.objects.get(&key).cloned();
        let mut object = match new {
            Some(v) => v,
            None => prev.clone().unwrap_or(Value::Null),
        };
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), json!(rv.to_string()));
        }
        if event_type == EventType::Deleted {
            self.objects.remove(&key);
            self.awaiting_kubelet.remove(&key);
        } else {
            self.objects.insert(key.clone(), object.clone());
        }
        self.history.push_back(Event {
            rv,
            kind: key.0,
            namespace: key.1,
            event_type,
            object: object.clone(),
            prev,
        });
        self.trim_history();
        self.rv_tx.send_replace(rv);
        object
    }

    /// Direct write used by test hooks: upserts the object as given (status included),
    /// filling in uid, creationTimestamp and generation when missing.
    pub fn put(&mut self, mut obj: Value, now: &str) -> Result<Value, ApiError> {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        let idx = crate::resources::find_by_kind(&api_version, &kind).ok_or_else(|| {
            ApiError::bad_request(format!(
                "put: apiVersion {api_version:?} kind {kind:?} is not served"
            ))
        })?;
        let def = &RESOURCES[idx];
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            return Err(ApiError::invalid("put: metadata.name is required"));
        }
        let ns = if def.namespaced {
            obj.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_string()
        } else {
            String::new()
        };
        let key = (idx, ns.clone(), name);
        let existing = self.objects.get(&key).cloned();
        let uid = existing
            .as_ref()
            .and_then(|e| e.pointer("/metadata/uid").cloned())
            .unwrap_or_else(|| json!(self.next_uid()));
        let meta = obj
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("put: object must be a JSON object"))?
            .entry("metadata")
            .or_insert_with(|| json!({}));
        if let Some(m) = meta.as_object_mut() {
            if def.namespaced {
                m.insert("namespace".into(), json!(ns));
            } else {
                m.remove("namespace");
            }
            m.entry("uid").or_insert(uid);
            m.entry("creationTimestamp").or_insert(json!(now));
            m.entry("generation").or_insert(json!(1));
        }
        let t = if existing.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        Ok(self.commit(key, Some(obj), t))
    }

    /// Direct removal used by test hooks (ignores finalizers).
    pub fn remove(&mut self, key: &Key) -> Option<Value> {
        self.objects
            .contains_key(key)
            .then(|| self.commit(key.clone(), None, EventType::Deleted))
    }
}

/// The current time as the API server writes `metav1.Time` (RFC 3339, seconds).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// `now + secs` in the same format.
pub fn rfc3339_plus(secs: i64) -> String {
    let t = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(secs))
        .unwrap_or_else(|_| jiff::Timestamp::now());
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
