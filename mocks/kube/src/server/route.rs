//! REST path parsing: `/api/v1/...` and `/apis/<group>/<version>/...`, namespaced and
//! cluster-scoped forms, subresources, and the discovery documents.

use crate::resources::{self, RESOURCES};
use crate::status::ApiError;

/// What a request addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Version,
    CoreVersions,
    GroupList,
    Group(String),
    ResourceList(String, String),
    /// `/openapi/v2`.
    OpenApiV2,
    /// `/openapi/v3`: the index of the group/version documents.
    OpenApiV3Index,
    /// `/openapi/v3/api/<v>` or `/openapi/v3/apis/<group>/<version>`.
    OpenApiV3(String, String),
    Resource(Target),
}

/// A collection, an object or an object's subresource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: usize,
    /// `None`: all namespaces (collection) or a cluster-scoped kind.
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

fn not_found(path: &str) -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        format!("the server could not find the requested resource ({path})"),
    )
}

pub fn parse(path: &str) -> Result<Route, ApiError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return Ok(Route::Version),
        ["openapi", "v2"] => return Ok(Route::OpenApiV2),
        ["openapi", "v3"] => return Ok(Route::OpenApiV3Index),
        ["openapi", "v3", "api", v] => {
            return Ok(Route::OpenApiV3(String::new(), (*v).to_string()))
        }
        ["openapi", "v3", "apis", g, v] => {
            return Ok(Route::OpenApiV3((*g).to_string(), (*v).to_string()))
        }
        ["api"] => return Ok(Route::CoreVersions),
        ["apis"] => return Ok(Route::GroupList),
        ["apis", g] => return Ok(Route::Group((*g).to_string())),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(not_found(path)),
    };
    if rest.is_empty() {
        return Ok(Route::ResourceList(group.to_string(), version.to_string()));
    }
    let lookup =
        |plural: &str| resources::find(group, version, plural).ok_or_else(|| not_found(path));
    let namespaced_form =
        rest.len() >= 3 && rest[0] == "namespaces" && !matches!(rest[2], "status" | "finalize");
    let (namespace, tail) = if namespaced_form {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    let kind = lookup(tail[0])?;
    let def = &RESOURCES[kind];
    if namespace.is_some() && !def.namespaced {
        return Err(not_found(path));
    }
    let name = tail.get(1).map(|s| (*s).to_string());
    if name.is_some() && def.namespaced && namespace.is_none() {
        return Err(not_found(path));
    }
    if tail.len() > 3 || name.as_deref() == Some("") {
        return Err(not_found(path));
    }
    Ok(Route::Resource(Target {
        kind,
        namespace,
        name,
        subresource: tail.get(2).map(|s| (*s).to_string()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str) -> Target {
        match parse(path).unwrap() {
            Route::Resource(t) => t,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn paths() {
        let t = target("/api/v1/namespaces/default/pods/p1/status");
        assert_eq!(RESOURCES[t.kind].plural, "pods");
        assert_eq!(t.namespace.as_deref(), Some("default"));
        assert_eq!(t.name.as_deref(), Some("p1"));
        assert_eq!(t.subresource.as_deref(), Some("status"));

        let t = target("/api/v1/pods");
        assert_eq!(t.namespace, None);
        assert_eq!(t.name, None);

        let t = target("/api/v1/namespaces/kube-system");
        assert_eq!(RESOURCES[t.kind].plural, "namespaces");
        assert_eq!(t.name.as_deref(), Some("kube-system"));

        let t = target("/api/v1/namespaces/kube-system/status");
        assert_eq!(RESOURCES[t.kind].plural, "namespaces");
        assert_eq!(t.subresource.as_deref(), Some("status"));

        let t = target("/apis/coordination.k8s.io/v1/namespaces/ns/leases/l");
        assert_eq!(RESOURCES[t.kind].kind, "Lease");

        let t = target("/api/v1/nodes/n1/status");
        assert_eq!(RESOURCES[t.kind].kind, "Node");
        assert!(parse("/api/v1/namespaces/ns/nodes").is_err());
        assert!(parse("/api/v1/pods/p1").is_err());
        assert_eq!(
            RESOURCES[target("/apis/apps/v1/deployments").kind].kind,
            "Deployment"
        );
        assert!(parse("/apis/apps/v1/daemonsets").is_err());
        assert_eq!(parse("/apis").unwrap(), Route::GroupList);
        assert_eq!(
            parse("/openapi/v3/apis/apps/v1").unwrap(),
            Route::OpenApiV3("apps".into(), "v1".into())
        );
        assert_eq!(
            parse("/openapi/v3/api/v1").unwrap(),
            Route::OpenApiV3(String::new(), "v1".into())
        );
        let t = target("/apis/apps/v1/namespaces/ns/deployments/d/scale");
        assert_eq!(t.subresource.as_deref(), Some("scale"));
        let t = target("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/b");
        assert_eq!(RESOURCES[t.kind].kind, "ClusterRoleBinding");
        assert_eq!(
            parse("/apis/discovery.k8s.io/v1").unwrap(),
            Route::ResourceList("discovery.k8s.io".into(), "v1".into())
        );
    }
}
