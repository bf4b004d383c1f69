//! [`PodBook`]: what the pod side remembers between reconciles — the last SLB members
//! seen per group, lookups of pods by IP, label and hold, drain journal entries and
//! Events waiting to be written, and write failures for the retry backoff.
//!
//! The lookups are kept from pod watch events so that nothing on the pod side scans every
//! pod or every Service: at 150,000 pods and 10,000 Services a scan per pass or per pod
//! is what keeps an agent from ever reaching its SLB calls.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use jiff::Timestamp;

use super::decide;
use crate::k8s::events::AgentEvent;
use crate::model::{GroupObservation, GroupRef, ServiceRef, StoredPod};

/// `(namespace, name)` of a pod.
pub type PodKey = (String, String);

pub(super) fn pod_key(pod: &StoredPod) -> Option<PodKey> {
    Some((
        pod.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        pod.metadata.name.clone()?,
    ))
}

/// A name, label key or label value, shared by every lookup that holds it: at 150,000
/// pods each copy counts (`filed` and `by_label` hold the same strings).
type Shared = Arc<str>;

/// What a pod is filed under in the lookups; kept to unfile it when it changes or goes.
///
/// Small on purpose: a `BTreeMap`/`BTreeSet` allocates a node for eleven entries even
/// for one or two, which made this book cost about 1.7 KiB per pod.
#[derive(Debug)]
struct Filed {
    /// The pod's name as held in the label and hold sets.
    name: Shared,
    ips: Box<[IpAddr]>,
    /// Label keys and values as held in `by_label`, in key order.
    labels: Box<[(Shared, Shared)]>,
    held: bool,
    /// Filed in `waiting`.
    waits: bool,
}

impl Filed {
    /// True when `pod` would be filed exactly as this.
    fn matches(
        &self,
        ips: &[IpAddr],
        labels: &BTreeMap<String, String>,
        held: bool,
        waits: bool,
    ) -> bool {
        self.held == held
            && self.waits == waits
            && *self.ips == *ips
            && self.labels.len() == labels.len()
            && self
                .labels
                .iter()
                .zip(labels)
                .all(|((k, v), (pk, pv))| **k == **pk && **v == **pv)
    }
}

/// The shared copy of `s` among `map`'s keys, or a new one.
fn shared<V>(map: &HashMap<Shared, V>, s: &str) -> Shared {
    map.get_key_value(s)
        .map_or_else(|| Shared::from(s), |(k, _)| k.clone())
}

#[derive(Default)]
pub(super) struct PodBook {
    /// The last members seen per group, by Service (failed passes keep the previous
    /// reading). Retired groups of a Service sit next to its live ones.
    observed: HashMap<ServiceRef, BTreeMap<GroupRef, GroupObservation>>,
    filed: HashMap<PodKey, Filed>,
    /// Pods by IP: one, unless an IP was reused while its old pod is still listed.
    by_ip: HashMap<IpAddr, Vec<PodKey>>,
    /// namespace → label key → label value → pod names.
    by_label: HashMap<String, HashMap<Shared, HashMap<Shared, BTreeSet<Shared>>>>,
    /// namespace → deleted pods still held.
    held: HashMap<String, BTreeSet<Shared>>,
    /// Pods waiting on the agent ([`super::waiting::waits`]): the few whose Services the
    /// drift checks read often, found without a look at every pod.
    waiting: HashSet<PodKey>,
    /// Drain journal entries to write on a pod: set (`Some`) or remove (`None`).
    pub(super) journal: HashMap<PodKey, BTreeMap<String, Option<Timestamp>>>,
    /// Events to publish on a pod.
    pub(super) events: HashMap<PodKey, Vec<AgentEvent>>,
    /// Consecutive failed reconciles per pod, for the retry backoff.
    pub(super) failures: HashMap<PodKey, u32>,
}

impl PodBook {
    // ---- SLB members seen ----

    pub(super) fn observe(&mut self, group: &GroupRef, observation: GroupObservation) {
        self.observed
            .entry(group.service.clone())
            .or_default()
            .insert(group.clone(), observation);
    }

    /// Its observations would only ever hold a later drain back.
    pub(super) fn forget_service(&mut self, service: &ServiceRef) {
        self.observed.remove(service);
    }

    /// The observed groups of `service` for the ports it has now (a port removed from
    /// the Service leaves an observation no pass updates any more), by port.
    pub(super) fn observations(
        &self,
        service: &ServiceRef,
        ports: &[u16],
    ) -> Vec<&GroupObservation> {
        let mut groups: Vec<(&GroupRef, &GroupObservation)> = self
            .observed
            .get(service)
            .into_iter()
            .flatten()
            .filter(|(g, _)| ports.contains(&g.service_port))
            .collect();
        groups.sort_by_key(|(g, _)| g.service_port);
        groups.into_iter().map(|(_, o)| o).collect()
    }

    /// The group whose SLB id is `v_server_group_id`, and what was seen of it.
    pub(super) fn group_with_id(
        &self,
        v_server_group_id: &str,
    ) -> Option<(&GroupRef, &GroupObservation)> {
        self.observed
            .values()
            .flatten()
            .find(|(_, o)| o.target.desired.v_server_group_id.as_deref() == Some(v_server_group_id))
    }

    // ---- pod lookups ----

    /// Files `pod` (after a watch event applied it), unfiling what it was before.
    pub(super) fn file(&mut self, pod: &StoredPod) {
        let Some(key) = pod_key(pod) else { return };
        let ips = decide::pod_place(pod, None).ips;
        let no_labels = BTreeMap::new();
        let labels = pod.metadata.labels.as_ref().unwrap_or(&no_labels);
        // Deleted and still carrying our finalizer: a pass may confirm its drain.
        let held = decide::is_deleting(pod) && decide::has_finalizer(pod);
        let waits = super::waiting::waits(pod);
        if self
            .filed
            .get(&key)
            .is_some_and(|f| f.matches(&ips, labels, held, waits))
        {
            return;
        }
        self.unfile(&key);
        for ip in &ips {
            self.by_ip.entry(*ip).or_default().push(key.clone());
        }
        let name = Shared::from(key.1.as_str());
        let by_key = self.by_label.entry(key.0.clone()).or_default();
        let mut filed_labels = Vec::with_capacity(labels.len());
        for (k, v) in labels {
            let k = shared(by_key, k);
            let values = by_key.entry(k.clone()).or_default();
            let v = shared(values, v);
            values.entry(v.clone()).or_default().insert(name.clone());
            filed_labels.push((k, v));
        }
        if held {
            self.held
                .entry(key.0.clone())
                .or_default()
                .insert(name.clone());
        }
        if waits {
            self.waiting.insert(key.clone());
        }
        let filed = Filed {
            name,
            ips: ips.into_boxed_slice(),
            labels: filed_labels.into_boxed_slice(),
            held,
            waits,
        };
        self.filed.insert(key, filed);
    }

    /// Forgets a pod that left the store, with what it still had to write.
    pub(super) fn unfile(&mut self, key: &PodKey) {
        let Some(old) = self.filed.remove(key) else {
            return;
        };
        if old.waits {
            self.waiting.remove(key);
        }
        for ip in &old.ips {
            if let Some(keys) = self.by_ip.get_mut(ip) {
                keys.retain(|k| k != key);
                if keys.is_empty() {
                    self.by_ip.remove(ip);
                }
            }
        }
        if let Some(labels) = self.by_label.get_mut(&key.0) {
            for (k, v) in &old.labels {
                let Some(values) = labels.get_mut(k) else {
                    continue;
                };
                if let Some(names) = values.get_mut(v) {
                    names.remove(&old.name);
                    if names.is_empty() {
                        values.remove(v);
                    }
                }
                if values.is_empty() {
                    labels.remove(k);
                }
            }
            if labels.is_empty() {
                self.by_label.remove(&key.0);
            }
        }
        if old.held {
            if let Some(names) = self.held.get_mut(&key.0) {
                names.remove(&old.name);
                if names.is_empty() {
                    self.held.remove(&key.0);
                }
            }
        }
    }

    /// Files every pod again (after a re-list), dropping those no longer there.
    pub(super) fn refile<'a>(&mut self, pods: impl IntoIterator<Item = &'a StoredPod>) {
        let mut seen = BTreeSet::new();
        for pod in pods {
            self.file(pod);
            if let Some(key) = pod_key(pod) {
                seen.insert(key);
            }
        }
        let gone: Vec<PodKey> = self
            .filed
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            self.unfile(&key);
            self.forget_writes(&key);
        }
    }

    pub(super) fn forget_writes(&mut self, key: &PodKey) {
        self.journal.remove(key);
        self.events.remove(key);
        self.failures.remove(key);
    }

    /// Pods with `ip` (one, unless an IP was reused while its old pod is still listed).
    pub(super) fn with_ip(&self, ip: IpAddr) -> impl Iterator<Item = &PodKey> {
        self.by_ip.get(&ip).into_iter().flatten()
    }

    /// Pods of `namespace` whose labels satisfy `selector` (non-empty).
    pub(super) fn selected(&self, namespace: &str, selector: &[(String, String)]) -> Vec<PodKey> {
        let Some(labels) = self.by_label.get(namespace) else {
            return Vec::new();
        };
        let mut sets = selector.iter().map(|(k, v)| {
            labels
                .get(k.as_str())
                .and_then(|values| values.get(v.as_str()))
        });
        let Some(Some(first)) = sets.next() else {
            return Vec::new();
        };
        let rest: Option<Vec<&BTreeSet<Shared>>> = sets.collect();
        let Some(rest) = rest else {
            return Vec::new();
        };
        first
            .iter()
            .filter(|name| rest.iter().all(|set| set.contains(*name)))
            .map(|name| (namespace.to_owned(), name.to_string()))
            .collect()
    }

    /// Pods waiting on the agent, in no order.
    pub(super) fn waiting(&self) -> impl Iterator<Item = &PodKey> {
        self.waiting.iter()
    }

    /// Deleted pods of `namespace` still held.
    pub(super) fn held_in(&self, namespace: &str) -> Vec<PodKey> {
        self.held
            .get(namespace)
            .into_iter()
            .flatten()
            .map(|name| (namespace.to_owned(), name.to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(name: &str, app: &str, ip: &str, held: bool) -> StoredPod {
        let mut p = json!({
            "metadata": {"name": name, "namespace": "shop",
                         "labels": {"app": app, "tier": "web"}},
            "status": {"podIP": ip},
        });
        if held {
            p["metadata"]["finalizers"] = json!(["slb-sync.io/drain"]);
            p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        serde_json::from_value(p).unwrap()
    }

    fn waiting(book: &PodBook) -> Vec<String> {
        let mut names: Vec<String> = book.waiting().map(|(_, n)| n.clone()).collect();
        names.sort();
        names
    }

    fn names(keys: Vec<PodKey>) -> Vec<String> {
        keys.into_iter().map(|(_, n)| n).collect()
    }

    #[test]
    fn pods_are_found_by_selector_ip_and_hold_and_forgotten_when_they_change() {
        let mut book = PodBook::default();
        book.file(&pod("web-1", "web", "10.0.0.1", false));
        book.file(&pod("web-2", "web", "10.0.0.2", true));
        book.file(&pod("api-1", "api", "10.0.0.3", false));
        let web = [
            ("app".to_owned(), "web".to_owned()),
            ("tier".into(), "web".into()),
        ];
        assert_eq!(names(book.selected("shop", &web)), ["web-1", "web-2"]);
        assert!(book.selected("other", &web).is_empty());
        assert_eq!(names(book.held_in("shop")), ["web-2"]);
        let ip = "10.0.0.3".parse().unwrap();
        assert_eq!(book.with_ip(ip).count(), 1);

        // Relabelled and released: filed anew, the old entries gone.
        book.file(&pod("web-2", "api", "10.0.0.9", false));
        assert_eq!(names(book.selected("shop", &web)), ["web-1"]);
        assert!(book.held_in("shop").is_empty());
        assert_eq!(book.with_ip("10.0.0.2".parse().unwrap()).count(), 0);

        // An IP reused while its old pod is still listed names both, then the one left.
        book.file(&pod("api-2", "api", "10.0.0.3", false));
        assert_eq!(book.with_ip(ip).count(), 2);
        book.unfile(&("shop".to_owned(), "api-1".to_owned()));
        assert_eq!(names(book.with_ip(ip).cloned().collect()), ["api-2"]);
        book.unfile(&("shop".to_owned(), "api-2".to_owned()));

        // Waiting: held and not drained (web-2 while deleted), not web-1 (no gate).
        book.file(&pod("web-2", "web", "10.0.0.2", true));
        assert_eq!(waiting(&book), ["web-2"]);
        book.file(&pod("web-2", "api", "10.0.0.9", false));
        assert!(waiting(&book).is_empty());

        // A re-list without web-1 forgets it.
        book.refile([&pod("web-2", "api", "10.0.0.9", false)]);
        assert!(book.selected("shop", &web).is_empty());
        assert_eq!(book.filed.len(), 1);
    }
}
