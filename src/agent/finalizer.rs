//! The Service finalizer `slb-sync.io/cleanup`: added to managed Services before any
//! backend is written for them, released once a deleted (or no longer managed) Service's
//! backends are drained and removed (see [`super::cleanup`]).

use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::index::ServiceRef;
use crate::k8s::names::SERVICE_FINALIZER;

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
