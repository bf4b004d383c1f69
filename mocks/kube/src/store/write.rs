//! Writes through the API: create, update (PUT), patch, delete — with the metadata rules
//! controllers depend on (uid, generation, resourceVersion preconditions, finalizers and
//! deletionTimestamp, the status subresource split).

use std::cell::RefCell;

use serde_json::{json, Map, Value};

use super::ownership::{self, Op};
use super::{EventType, Key, Store};
use crate::openapi::{self, FieldValidation};
use crate::patch::{self, PatchKind};
use crate::resources::{StatusOnCreate, RESOURCES};
use crate::status::ApiError;

/// Per-request options shared by create, update and patch.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `fieldValidation`: what to do with fields the kind's schema does not declare.
    pub validation: FieldValidation,
    /// Warnings for the response's `Warning` headers (fields dropped under `Warn`).
    pub warnings: RefCell<Vec<String>>,
    /// `fieldManager`: recorded in `managedFields`; required for apply.
    pub field_manager: Option<String>,
    /// The manager name for non-apply writes without `fieldManager` (the API server
    /// derives it from the User-Agent).
    pub fallback_manager: Option<String>,
    /// `force=true` on apply: take over conflicting fields.
    pub force: bool,
    /// Whether the request went to the `/status` subresource.
    pub status: bool,
    /// `dryRun=All`: validate and answer, store nothing.
    pub dry_run: bool,
}

pub(super) fn meta(obj: &Value) -> &Value {
    obj.get("metadata").unwrap_or(&Value::Null)
}

pub(super) fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    meta(obj).get(field).and_then(Value::as_str)
}

pub(super) fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let m = obj
        .as_object_mut()
        .map(|o| o.entry("metadata").or_insert_with(|| json!({})));
    match m {
        Some(v) => {
            if !v.is_object() {
                *v = json!({});
            }
            v.as_object_mut().expect("metadata was just made an object")
        }
        None => unreachable!("obj was just made an object"),
    }
}

pub(super) fn finalizers(obj: &Value) -> Vec<Value> {
    meta(obj)
        .get("finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The object without metadata, status, kind and apiVersion: what `generation` tracks.
fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        for k in ["metadata", "status", "kind", "apiVersion"] {
            m.remove(k);
        }
    }
    v
}

const NAME_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

impl WriteOptions {
    /// Checks `obj` against the schema of `kind` as the server decodes it (see
    /// [`openapi::validate`]), keeping the warnings for the response.
    fn validate(&self, kind: usize, obj: &mut Value) -> Result<(), ApiError> {
        let warnings = openapi::validate(&RESOURCES[kind], obj, self.validation)?;
        self.warnings.borrow_mut().extend(warnings);
        Ok(())
    }

    fn manager(&self) -> &str {
        self.field_manager
            .as_deref()
            .or(self.fallback_manager.as_deref())
            .unwrap_or("unknown")
    }
}

impl Store {
    pub(super) fn resource_name(kind: usize) -> String {
        RESOURCES[kind].resource_name()
    }

    fn namespace_exists(&self, ns: &str) -> bool {
        let idx = crate::resources::find("", "v1", "namespaces").unwrap_or(usize::MAX);
        self.objects
            .contains_key(&(idx, String::new(), ns.to_string()))
    }

    /// `POST` to a collection.
    pub fn create(
        &mut self,
        kind: usize,
        namespace: &str,
        obj: Value,
        opts: &WriteOptions,
        now: &str,
    ) -> Result<Value, ApiError> {
        self.create_as(kind, namespace, obj, opts, &Op::Update(opts.manager()), now)
    }

    fn create_as(
        &mut self,
        kind: usize,
        namespace: &str,
        mut obj: Value,
        opts: &WriteOptions,
        op: &Op<'_>,
        now: &str,
    ) -> Result<Value, ApiError> {
        let def = &RESOURCES[kind];
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        opts.validate(kind, &mut obj)?;
        if def.namespaced
            && meta_str(&obj, "namespace").is_some_and(|ns| !ns.is_empty() && ns != namespace)
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if def.namespaced && self.config.strict_namespaces && !self.namespace_exists(namespace) {
            return Err(ApiError::not_found("namespaces", namespace));
        }
        if meta_str(&obj, "resourceVersion").is_some_and(|rv| !rv.is_empty()) {
            return Err(ApiError::new(
                500,
                "InternalError",
                "resourceVersion should not be set on objects to be created",
            ));
        }
        let mut name = meta_str(&obj, "name").unwrap_or_default().to_string();
        if name.is_empty() {
            let prefix = meta_str(&obj, "generateName")
                .unwrap_or_default()
                .to_string();
            if prefix.is_empty() {
                return Err(ApiError::invalid(format!(
                    "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                    def.kind
                )));
            }
            let mut n = self.uid_seed ^ self.rv.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let suffix: String = (0..5)
                .map(|_| {
                    let c = NAME_CHARS[(n % NAME_CHARS.len() as u64) as usize] as char;
                    n /= NAME_CHARS.len() as u64;
                    c
                })
                .collect();
            name = format!("{prefix}{suffix}");
        }
        let key: Key = (
            kind,
            if def.namespaced {
                namespace.to_string()
            } else {
                String::new()
            },
            name.clone(),
        );
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&Self::resource_name(kind), &name));
        }
        let uid = self.next_uid();
        {
            let o = obj.as_object_mut().expect("checked object above");
            o.insert("apiVersion".into(), json!(def.api_version()));
            o.insert("kind".into(), json!(def.kind));
        }
        let m = meta_mut(&mut obj);
        m.insert("name".into(), json!(name));
        if def.namespaced {
            m.insert("namespace".into(), json!(namespace));
        } else {
            m.remove("namespace");
        }
        m.insert("uid".into(), json!(uid));
        m.insert("creationTimestamp".into(), json!(now));
        m.insert("generation".into(), json!(1));
        m.remove("deletionTimestamp");
        m.remove("deletionGracePeriodSeconds");
        m.remove("managedFields");
        if def.status_subresource {
            let o = obj.as_object_mut().expect("checked object above");
            match def.status_on_create {
                StatusOnCreate::Keep => None,
                StatusOnCreate::Clear => o.insert("status".into(), json!({})),
                StatusOnCreate::PodPending => {
                    o.insert("status".into(), json!({"phase": "Pending"}))
                }
                StatusOnCreate::NamespaceActive => {
                    o.insert("status".into(), json!({"phase": "Active"}))
                }
            };
        }
        ownership::record(None, &mut obj, op, "", &def.api_version(), now);
        if opts.dry_run {
            return Ok(obj);
        }
        Ok(self.commit(key, Some(obj), EventType::Added))
    }

    /// Writes `new` over the existing object at `key` with the update rules: identity
    /// fields kept, resourceVersion precondition, status split, generation, no new
    /// finalizers while deleting, removal once the last finalizer is gone.
    fn write_existing(
        &mut self,
        key: &Key,
        mut new: Value,
        opts: &WriteOptions,
        op: &Op<'_>,
        now: &str,
    ) -> Result<Value, ApiError> {
        let def = &RESOURCES[key.0];
        let resource = Self::resource_name(key.0);
        let old = self
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&resource, &key.2))?;
        if !new.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        if let Some(n) = meta_str(&new, "name") {
            if !n.is_empty() && n != key.2 {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({})",
                    key.2
                )));
            }
        }
        let old_rv = meta_str(&old, "resourceVersion").unwrap_or_default();
        if let Some(rv) = meta_str(&new, "resourceVersion") {
            if !rv.is_empty() && rv != old_rv {
                return Err(ApiError::conflict(
                    &resource,
                    &key.2,
                    "the object has been modified; please apply your changes to the latest version and try again",
                ));
            }
        }
        if let Some(uid) = meta_str(&new, "uid") {
            if !uid.is_empty() && Some(uid) != meta_str(&old, "uid") {
                return Err(ApiError::conflict(
                    &resource,
                    &key.2,
                    "Precondition failed: UID in precondition does not match the UID in record",
                ));
            }
        }
        if opts.status {
            // Only .status moves through the status subresource.
            let status = new.get("status").cloned();
            new = old.clone();
            match status {
                Some(s) => new["status"] = s,
                None => {
                    if let Some(o) = new.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        } else if def.status_subresource {
            // The main endpoint ignores .status when a status subresource exists.
            let o = new.as_object_mut().expect("checked object above");
            match old.get("status") {
                Some(s) => o.insert("status".into(), s.clone()),
                None => o.remove("status"),
            };
        }
        opts.validate(key.0, &mut new)?;
        {
            let o = new.as_object_mut().expect("checked object above");
            o.insert("apiVersion".into(), json!(def.api_version()));
            o.insert("kind".into(), json!(def.kind));
        }
        let old_meta = meta(&old).clone();
        let m = meta_mut(&mut new);
        m.insert("name".into(), json!(key.2));
        if def.namespaced {
            m.insert("namespace".into(), json!(key.1));
        }
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "managedFields",
        ] {
            match old_meta.get(field) {
                Some(v) => m.insert(field.into(), v.clone()),
                None => m.remove(field),
            };
        }
        m.insert("resourceVersion".into(), json!(old_rv));
        if m.get("finalizers")
            .is_some_and(|f| f.as_array().is_some_and(Vec::is_empty))
        {
            m.remove("finalizers");
        }
        if old_meta.get("deletionTimestamp").is_some() {
            let before = finalizers(&old);
            if let Some(added) = finalizers(&new).iter().find(|f| !before.contains(f)) {
                return Err(ApiError::invalid(format!(
                    "{} \"{}\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers [{}]",
                    def.kind,
                    key.2,
                    added.as_str().unwrap_or_default()
                )));
            }
        }
        if spec_part(&new) != spec_part(&old) {
            let g = old_meta
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta_mut(&mut new).insert("generation".into(), json!(g + 1));
        }
        let sub = if opts.status { "status" } else { "" };
        ownership::record(Some(&old), &mut new, op, sub, &def.api_version(), now);
        if new == old {
            // A no-op write does not bump the resourceVersion or wake watchers.
            return Ok(old);
        }
        if opts.dry_run {
            return Ok(new);
        }
        let deleting = meta(&new).get("deletionTimestamp").is_some();
        if deleting && finalizers(&new).is_empty() && !self.awaiting_kubelet.contains(key) {
            // As the real store does, the update becomes the deletion: one DELETED event
            // carrying the final state.
            return Ok(self.commit(key.clone(), Some(new), EventType::Deleted));
        }
        Ok(self.commit(key.clone(), Some(new), EventType::Modified))
    }

    /// `PUT` to an object (or its `/status`).
    pub fn update(
        &mut self,
        key: &Key,
        new: Value,
        opts: &WriteOptions,
        now: &str,
    ) -> Result<Value, ApiError> {
        self.write_existing(key, new, opts, &Op::Update(opts.manager()), now)
    }

    /// `PATCH` to an object (or its `/status`). Apply creates a missing object; the bool
    /// is true when it did.
    pub fn patch(
        &mut self,
        key: &Key,
        kind: PatchKind,
        body: &Value,
        opts: &WriteOptions,
        now: &str,
    ) -> Result<(Value, bool), ApiError> {
        let resource = Self::resource_name(key.0);
        let Some(current) = self.objects.get(key).cloned() else {
            if kind == PatchKind::Apply && !opts.status {
                let Some(manager) = opts.field_manager.as_deref() else {
                    return Err(ApiError::bad_request(
                        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                    ));
                };
                let mut obj = body.clone();
                patch::strategic_merge(&mut obj, &json!({}));
                meta_mut(&mut obj).insert("name".into(), json!(key.2));
                let op = Op::Apply {
                    manager,
                    leaves: ownership::leaves(body),
                    force: opts.force,
                };
                let created = self.create_as(key.0, &key.1, obj, opts, &op, now)?;
                return Ok((created, true));
            }
            return Err(ApiError::not_found(&resource, &key.2));
        };
        if kind == PatchKind::Apply && opts.field_manager.is_none() {
            return Err(ApiError::bad_request(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        }
        let apply_manager = match (kind, opts.field_manager.as_deref()) {
            (PatchKind::Apply, Some(m)) => {
                if !opts.force {
                    ownership::check_apply(&current, body, m, &resource, &key.2)?;
                }
                Some(m)
            }
            _ => None,
        };
        let mut patched = current.clone();
        patch::apply(kind, &mut patched, body)?;
        if let Some(m) = apply_manager {
            let sub = if opts.status { "status" } else { "" };
            ownership::prune_unapplied(&current, &mut patched, m, sub, &ownership::leaves(body));
        }
        // A patch that names a resourceVersion is a precondition on it.
        let wanted_rv = meta_str(&patched, "resourceVersion").map(str::to_string);
        let current_rv = meta_str(&current, "resourceVersion").map(str::to_string);
        if wanted_rv.is_some() && wanted_rv != current_rv {
            return Err(ApiError::conflict(
                &resource,
                &key.2,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        let op = match apply_manager {
            Some(manager) => Op::Apply {
                manager,
                leaves: ownership::leaves(body),
                force: opts.force,
            },
            None => Op::Update(opts.manager()),
        };
        Ok((self.write_existing(key, patched, opts, &op, now)?, false))
    }
}
