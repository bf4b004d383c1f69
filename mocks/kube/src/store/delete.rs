//! Deletion: immediate, or held by finalizers (and, optionally, a pod's grace period).

use serde_json::{json, Value};

use super::write::{finalizers, meta, meta_mut, meta_str};
use super::{EventType, Key, Store};
use crate::resources::RESOURCES;
use crate::status::ApiError;

/// The `DeleteOptions` fields the double honours.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    pub dry_run: bool,
}

/// Result of a delete.
#[derive(Debug, Clone)]
pub enum DeleteOutcome {
    /// The object is gone; its last state.
    Deleted(Value),
    /// Finalizers (or a pod's grace period) hold it; its state with deletionTimestamp.
    Pending(Value),
}

impl Store {
    /// `DELETE` of one object.
    pub fn delete(&mut self, key: &Key, opts: &DeleteOptions) -> Result<DeleteOutcome, ApiError> {
        let def = &RESOURCES[key.0];
        let resource = Self::resource_name(key.0);
        let Some(current) = self.objects.get(key).cloned() else {
            return Err(ApiError::not_found(&resource, &key.2));
        };
        if let Some(uid) = &opts.precondition_uid {
            if meta_str(&current, "uid") != Some(uid.as_str()) {
                return Err(ApiError::conflict(
                    &resource,
                    &key.2,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta_str(&current, "uid").unwrap_or_default()
                    ),
                ));
            }
        }
        if let Some(rv) = &opts.precondition_resource_version {
            if meta_str(&current, "resourceVersion") != Some(rv.as_str()) {
                return Err(ApiError::conflict(
                    &resource,
                    &key.2,
                    &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}", meta_str(&current, "resourceVersion").unwrap_or_default()),
                ));
            }
        }
        if opts.dry_run {
            return Ok(DeleteOutcome::Pending(current));
        }
        let is_pod = def.kind == "Pod" && def.group.is_empty();
        let grace = opts.grace_period_seconds.unwrap_or_else(|| {
            if is_pod {
                current
                    .pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(30)
            } else {
                0
            }
        });
        let graceful_pod = is_pod
            && self.config.graceful_pod_deletion
            && current
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
        let already_deleting = meta(&current).get("deletionTimestamp").is_some();
        if graceful_pod && grace == 0 {
            self.awaiting_kubelet.remove(key);
        } else if graceful_pod && grace > 0 && !already_deleting {
            self.awaiting_kubelet.insert(key.clone());
        }
        let held = !finalizers(&current).is_empty() || self.awaiting_kubelet.contains(key);
        if !held {
            return Ok(DeleteOutcome::Deleted(self.commit(
                key.clone(),
                None,
                EventType::Deleted,
            )));
        }
        if already_deleting {
            return Ok(DeleteOutcome::Pending(current));
        }
        let mut obj = current;
        let m = meta_mut(&mut obj);
        m.insert(
            "deletionTimestamp".into(),
            json!(super::rfc3339_plus(grace.max(0))),
        );
        m.insert("deletionGracePeriodSeconds".into(), json!(grace.max(0)));
        let g = m.get("generation").and_then(Value::as_i64).unwrap_or(0);
        m.insert("generation".into(), json!(g + 1));
        Ok(DeleteOutcome::Pending(self.commit(
            key.clone(),
            Some(obj),
            EventType::Modified,
        )))
    }
}
