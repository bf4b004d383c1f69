//! Removing the agent's finalizers: one object at a time (the agent after a drain or a
//! fail-open deadline), or all of them (`slb-sync release-finalizers`, for uninstall or to
//! free pods stuck behind a broken agent).
//!
//! The write is a JSON patch that `test`s the whole finalizers list before replacing it,
//! so another controller's finalizer added or removed meanwhile is never lost; a failed
//! test (the object changed) is answered by reading the object again and retrying.

use std::fmt::Debug;

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::names::{POD_FINALIZER, SERVICE_FINALIZER};

/// How often a removal re-reads and retries after the object changed under it.
const MAX_ATTEMPTS: usize = 5;
/// Page size of the cluster-wide lists.
const PAGE: u32 = 500;

/// Why a finalizer could not be removed.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(
        "cannot list {kind}s: {source}; check the kubeconfig/in-cluster credentials and that \
         the service account may list and patch {kind}s in all namespaces"
    )]
    List {
        kind: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error(
        "cannot remove finalizer {finalizer} from {kind} {object}: {source}; check that the \
         service account may get and patch {kind}s, or remove it by hand with \
         `kubectl patch {kind_lower} -n <namespace> <name> --type json -p \
         '[{{\"op\":\"remove\",\"path\":\"/metadata/finalizers/<index>\"}}]'`",
        kind_lower = kind.to_lowercase()
    )]
    Patch {
        kind: &'static str,
        object: String,
        finalizer: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error(
        "cannot remove finalizer {finalizer} from {kind} {object}: it kept changing during \
         {MAX_ATTEMPTS} attempts; run the command again"
    )]
    KeptChanging {
        kind: &'static str,
        object: String,
        finalizer: &'static str,
    },
}

/// What a removal did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The finalizer was there and is gone now (or would be, in a dry run).
    Removed,
    /// The object did not carry the finalizer.
    Absent,
    /// The object no longer exists.
    Gone,
}

/// The JSON patch that removes `finalizer` from `current`, guarded by a `test` that the
/// list is still exactly `current`; `None` when `finalizer` is not in it.
pub fn finalizer_removal_patch(current: &[String], finalizer: &str) -> Option<json_patch::Patch> {
    if !current.iter().any(|f| f == finalizer) {
        return None;
    }
    let kept: Vec<&String> = current.iter().filter(|f| *f != finalizer).collect();
    let patch = json!([
        { "op": "test", "path": "/metadata/finalizers", "value": current },
        { "op": "replace", "path": "/metadata/finalizers", "value": kept },
    ]);
    // A list of well-formed operations always deserializes.
    serde_json::from_value(patch).ok()
}

/// Removes `finalizer` from the object `name` of `api`, re-reading and retrying when the
/// object changed between the read and the write.
pub async fn remove_finalizer<K>(
    api: &Api<K>,
    name: &str,
    finalizer: &'static str,
    dry_run: bool,
) -> Result<Removal, ReleaseError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    let kind = kind_of::<K>();
    let patch_error = |source| ReleaseError::Patch {
        kind,
        object: name.to_owned(),
        finalizer,
        source,
    };
    for _ in 0..MAX_ATTEMPTS {
        let Some(object) = api.get_opt(name).await.map_err(patch_error)? else {
            return Ok(Removal::Gone);
        };
        let Some(patch) = finalizer_removal_patch(object.finalizers(), finalizer) else {
            return Ok(Removal::Absent);
        };
        if dry_run {
            return Ok(Removal::Removed);
        }
        match api
            .patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
            .await
        {
            Ok(_) => return Ok(Removal::Removed),
            Err(err) if changed_meanwhile(&err) => continue,
            Err(err) if api_code(&err) == Some(404) => return Ok(Removal::Gone),
            Err(err) => return Err(patch_error(err)),
        }
    }
    Err(ReleaseError::KeptChanging {
        kind,
        object: name.to_owned(),
        finalizer,
    })
}

/// One object whose finalizer was removed (or would be, in a dry run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub finalizer: &'static str,
    /// Nothing was written: a `--dry-run` report.
    pub dry_run: bool,
}

impl std::fmt::Display for Released {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}/{}: {} finalizer {}",
            self.kind.to_lowercase(),
            self.namespace,
            self.name,
            if self.dry_run {
                "would remove"
            } else {
                "removed"
            },
            self.finalizer
        )
    }
}

/// Removes `slb-sync.io/drain` from every pod and `slb-sync.io/cleanup` from every Service
/// in all namespaces, calling `report` for each object changed (or that would be, with
/// `dry_run`). Keeps going past single failures and returns them all at the end, so one
/// forbidden namespace does not leave the rest stuck.
pub async fn release_all(
    client: Client,
    dry_run: bool,
    mut report: impl FnMut(&Released),
) -> Result<usize, Vec<ReleaseError>> {
    let mut changed = 0;
    let mut errors = Vec::new();
    release_kind::<Pod>(
        &client,
        POD_FINALIZER,
        dry_run,
        &mut report,
        &mut changed,
        &mut errors,
    )
    .await;
    release_kind::<Service>(
        &client,
        SERVICE_FINALIZER,
        dry_run,
        &mut report,
        &mut changed,
        &mut errors,
    )
    .await;
    if errors.is_empty() {
        Ok(changed)
    } else {
        Err(errors)
    }
}

async fn release_kind<K>(
    client: &Client,
    finalizer: &'static str,
    dry_run: bool,
    report: &mut impl FnMut(&Released),
    changed: &mut usize,
    errors: &mut Vec<ReleaseError>,
) where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    let kind = kind_of::<K>();
    let all: Api<K> = Api::all(client.clone());
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = match all.list(&params).await {
            Ok(page) => page,
            Err(source) => {
                errors.push(ReleaseError::List { kind, source });
                return;
            }
        };
        for object in &page.items {
            if !object.finalizers().iter().any(|f| f == finalizer) {
                continue;
            }
            let namespace = object.namespace().unwrap_or_default();
            let name = object.name_any();
            let api: Api<K> = Api::namespaced(client.clone(), &namespace);
            match remove_finalizer(&api, &name, finalizer, dry_run).await {
                Ok(Removal::Removed) => {
                    *changed += 1;
                    report(&Released {
                        kind,
                        namespace,
                        name,
                        finalizer,
                        dry_run,
                    });
                }
                Ok(Removal::Absent | Removal::Gone) => {}
                Err(err) => errors.push(err),
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return,
        }
    }
}

fn kind_of<K: Resource>() -> &'static str
where
    K::DynamicType: Default,
{
    // Only the built-in kinds this module handles; a static name keeps errors cheap.
    match K::kind(&K::DynamicType::default()).as_ref() {
        "Pod" => "Pod",
        "Service" => "Service",
        _ => "object",
    }
}

fn api_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// 409 Conflict, or 422 from a failed JSON patch `test`: the object changed since we read
/// it.
fn changed_meanwhile(err: &kube::Error) -> bool {
    matches!(api_code(err), Some(409 | 422))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn patch_tests_the_whole_list_and_keeps_other_finalizers() {
        let current = list(&["example.com/keep", POD_FINALIZER, "other.io/x"]);
        let patch = finalizer_removal_patch(&current, POD_FINALIZER).unwrap();
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            json!([
                { "op": "test", "path": "/metadata/finalizers",
                  "value": ["example.com/keep", POD_FINALIZER, "other.io/x"] },
                { "op": "replace", "path": "/metadata/finalizers",
                  "value": ["example.com/keep", "other.io/x"] },
            ])
        );
    }

    #[test]
    fn patch_applies_only_to_the_list_it_was_built_from() {
        let current = list(&[POD_FINALIZER, "other.io/x"]);
        let patch = finalizer_removal_patch(&current, POD_FINALIZER).unwrap();
        let mut object = json!({ "metadata": { "finalizers": current } });
        json_patch::patch(&mut object, &patch).unwrap();
        assert_eq!(
            object,
            json!({ "metadata": { "finalizers": ["other.io/x"] } })
        );

        // Someone added a finalizer after we read the object: the test must fail rather
        // than drop theirs.
        let mut changed = json!({ "metadata": { "finalizers":
            [POD_FINALIZER, "other.io/x", "late.io/y"] } });
        assert!(json_patch::patch(&mut changed, &patch).is_err());
    }

    #[test]
    fn no_patch_when_the_finalizer_is_absent() {
        assert!(finalizer_removal_patch(&[], POD_FINALIZER).is_none());
        assert!(finalizer_removal_patch(&list(&[SERVICE_FINALIZER]), POD_FINALIZER).is_none());
    }

    #[test]
    fn released_line_names_kind_object_and_finalizer() {
        let mut released = Released {
            kind: "Pod",
            namespace: "shop".into(),
            name: "web-0".into(),
            finalizer: POD_FINALIZER,
            dry_run: false,
        };
        assert_eq!(
            released.to_string(),
            "pod shop/web-0: removed finalizer slb-sync.io/drain"
        );
        released.dry_run = true;
        assert_eq!(
            released.to_string(),
            "pod shop/web-0: would remove finalizer slb-sync.io/drain"
        );
    }

    #[test]
    fn kinds_are_named() {
        assert_eq!(kind_of::<Pod>(), "Pod");
        assert_eq!(kind_of::<Service>(), "Service");
    }
}
