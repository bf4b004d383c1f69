//! What a relist returned, so the index can drop what it lacks without anyone holding
//! the whole list (see [`Listed`]).

use std::collections::{HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::meta_key;

/// The objects of one kind a list returned, by `(namespace, name)` (Nodes: `("", name)`).
/// A relist applies each object as it comes and then drops what the list lacks
/// ([`ClusterIndex::retain_pods`] and its siblings), so nobody holds the whole list at once.
#[derive(Debug, Default)]
pub struct Listed(HashMap<Box<str>, HashSet<Box<str>>>);

impl Listed {
    /// Notes a listed object (namespaced kinds).
    pub fn note(&mut self, meta: &ObjectMeta) {
        if let Some((ns, name)) = meta_key(meta) {
            self.insert(ns, name);
        }
    }

    /// Notes a listed Node.
    pub fn note_node(&mut self, meta: &ObjectMeta) {
        if let Some(name) = meta.name.as_deref() {
            self.insert("", name);
        }
    }

    fn insert(&mut self, ns: &str, name: &str) {
        match self.0.get_mut(ns) {
            Some(names) => {
                names.insert(name.into());
            }
            None => {
                self.0.insert(ns.into(), HashSet::from([name.into()]));
            }
        }
    }

    pub(super) fn has(&self, ns: &str, name: &str) -> bool {
        self.0.get(ns).is_some_and(|names| names.contains(name))
    }

    pub(super) fn of(all: &[impl k8s_openapi::Metadata<Ty = ObjectMeta>]) -> Self {
        let mut listed = Listed::default();
        for obj in all {
            listed.note(obj.metadata());
        }
        listed
    }
}
