//! The Service finalizer `slb-sync.io/cleanup`: added to managed Services before any
//! backend is written for them, released once a deleted (or no longer managed) Service's
//! backends are drained and removed (see [`super::cleanup`]).

use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::index::ServiceRef;
use crate::k8s::names::SERVICE_FINALIZER;

/// What a Service calls for, decided as kube-runtime's `finalizer` helper decides it:
/// the finalizer goes on before anything is applied, and comes off only after cleanup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalizerStep {
    /// Managed, without the finalizer yet: add it (nothing is written before).
    Add,
    /// Managed and finalized: reconcile its groups.
    Apply,
    /// Deleted or no longer managed, finalizer still on: drain and remove its backends,
    /// then release the finalizer.
    Cleanup,
    /// Neither managed nor finalized: nothing of ours to do or keep.
    Forget,
}

/// The step for a Service that is `managed` (valid, of our class), being `deleting`, and
/// `finalized` (carries the cleanup finalizer).
pub fn finalizer_step(managed: bool, deleting: bool, finalized: bool) -> FinalizerStep {
    match (managed && !deleting, finalized) {
        (true, false) => FinalizerStep::Add,
        (true, true) => FinalizerStep::Apply,
        (false, true) => FinalizerStep::Cleanup,
        (false, false) => FinalizerStep::Forget,
    }
}

/// True when the Service carries the agent's cleanup finalizer.
pub fn has_finalizer(svc: &Service) -> bool {
    svc.finalizers().iter().any(|f| f == SERVICE_FINALIZER)
}

/// The JSON patch that appends the cleanup finalizer, guarded by a `test` that the list is
/// still `current` (a concurrent writer makes it fail instead of being overwritten).
pub fn finalizer_add_patch(current: Option<&[String]>) -> Option<json_patch::Patch> {
    let patch = match current {
        None => json!([
            { "op": "add", "path": "/metadata/finalizers", "value": [SERVICE_FINALIZER] },
        ]),
        Some(list) if list.iter().any(|f| f == SERVICE_FINALIZER) => return None,
        Some(list) => json!([
            { "op": "test", "path": "/metadata/finalizers", "value": list },
            { "op": "add", "path": "/metadata/finalizers/-", "value": SERVICE_FINALIZER },
        ]),
    };
    serde_json::from_value(patch).ok()
}

/// Adds the cleanup finalizer to `svc`; a failure is logged and retried at the next
/// event or resync of the Service.
pub async fn add_finalizer(client: kube::Client, svc: &Service) {
    let Some(patch) = finalizer_add_patch(svc.metadata.finalizers.as_deref()) else {
        return;
    };
    let namespace = svc.namespace().unwrap_or_else(|| "default".into());
    let name = svc.name_any();
    let api: Api<Service> = Api::namespaced(client, &namespace);
    match api
        .patch(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
    {
        Ok(_) => tracing::info!(%namespace, service = %name, "added the cleanup finalizer"),
        Err(err) => tracing::warn!(
            %namespace, service = %name, error = %err,
            "cannot add the cleanup finalizer; retrying at the next change or resync"
        ),
    }
}

/// Removes the cleanup finalizer (re-reading and retrying on concurrent changes).
pub async fn release_finalizer(client: kube::Client, service: &ServiceRef) {
    let api: Api<Service> = Api::namespaced(client, &service.namespace);
    match crate::k8s::release::remove_finalizer(&api, &service.name, SERVICE_FINALIZER, false).await
    {
        Ok(removal) => tracing::info!(
            namespace = %service.namespace, service = %service.name, ?removal,
            "released the cleanup finalizer"
        ),
        Err(err) => tracing::warn!(
            namespace = %service.namespace, service = %service.name, error = %err,
            "cannot release the cleanup finalizer; retrying at the next change or resync"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_finalizer_goes_on_before_apply_and_comes_off_after_cleanup() {
        use FinalizerStep::*;
        assert_eq!(finalizer_step(true, false, false), Add);
        assert_eq!(finalizer_step(true, false, true), Apply);
        // Deleted: cleanup while our finalizer holds it, however valid it still is.
        assert_eq!(finalizer_step(true, true, true), Cleanup);
        assert_eq!(finalizer_step(false, false, true), Cleanup);
        assert_eq!(finalizer_step(true, true, false), Forget);
        assert_eq!(finalizer_step(false, false, false), Forget);
    }

    #[test]
    fn add_patch_appends_once() {
        assert!(finalizer_add_patch(Some(&[SERVICE_FINALIZER.to_owned()])).is_none());
        let mut obj = json!({"metadata": {"finalizers": ["a"]}});
        json_patch::patch(&mut obj, &finalizer_add_patch(Some(&["a".into()])).unwrap()).unwrap();
        assert_eq!(
            obj["metadata"]["finalizers"],
            json!(["a", SERVICE_FINALIZER])
        );
        let mut obj = json!({"metadata": {}});
        json_patch::patch(&mut obj, &finalizer_add_patch(None).unwrap()).unwrap();
        assert_eq!(obj["metadata"]["finalizers"], json!([SERVICE_FINALIZER]));
    }
}
