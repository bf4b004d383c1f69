//! Why reading the live cluster failed, each with the fix: the person running `doctor` is
//! often not the cluster admin, so a refusal must say which permission to ask for.

use std::fmt;

/// One list call: the resource and where it was listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Plural name, e.g. `deployments`.
    pub resource: &'static str,
    /// API group; empty for the core group.
    pub group: &'static str,
    /// The namespace listed; `None` for all namespaces or a cluster-scoped kind.
    pub namespace: Option<String>,
    /// Whether the kind is namespaced (decides `-A` in the `kubectl auth can-i` hint).
    pub namespaced: bool,
}

impl Listing {
    /// `deployments.apps`, `services`: how `kubectl` and RBAC name the resource.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_owned()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// The `kubectl auth can-i` command that checks this permission.
    pub fn can_i(&self) -> String {
        let scope = match (&self.namespace, self.namespaced) {
            (Some(ns), _) => format!(" -n {ns}"),
            (None, true) => " -A".to_owned(),
            (None, false) => String::new(),
        };
        format!("kubectl auth can-i list {}{scope}", self.qualified())
    }
}

impl fmt::Display for Listing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.namespace, self.namespaced) {
            (Some(ns), _) => write!(f, "{} in namespace {ns}", self.qualified()),
            (None, true) => write!(f, "{} in all namespaces", self.qualified()),
            (None, false) => f.write_str(&self.qualified()),
        }
    }
}

/// Where the read-only ClusterRole for `doctor --live` is shipped.
pub const DOCTOR_RBAC: &str = "deploy/doctor-rbac.yaml";

/// A failed list call against the live cluster.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(
        "the API server at {server} forbids listing {listing} (403 Forbidden: {message}); the \
         user running doctor needs the read-only `list` permission on {resource}: apply \
         {DOCTOR_RBAC} (ClusterRole slb-sync-doctor) and bind it to yourself, e.g. `kubectl \
         create clusterrolebinding slb-sync-doctor-<you> --clusterrole=slb-sync-doctor \
         --user=<you>`, then check with `{can_i}`",
        resource = listing.qualified(),
        can_i = listing.can_i()
    )]
    Forbidden {
        server: String,
        listing: Listing,
        message: String,
    },
    #[error(
        "the API server at {server} rejected the credentials while listing {listing} (401 \
         Unauthorized: {message}); renew them (log in again, or refresh the token or client \
         certificate in the kubeconfig) and retry"
    )]
    Unauthorized {
        server: String,
        listing: Listing,
        message: String,
    },
    #[error(
        "cannot reach the API server at {server} to list {listing}; check the server address \
         of the kubeconfig in use (KUBECONFIG or --kubeconfig), the network or VPN, and that \
         `kubectl cluster-info` works; or audit manifest files instead: slb-sync doctor PATH..."
    )]
    Unreachable {
        server: String,
        listing: Listing,
        #[source]
        source: kube::Error,
    },
    #[error(
        "the API server at {server} answered the list of {listing} with {code} {reason}: \
         {message}"
    )]
    Api {
        server: String,
        listing: Listing,
        code: u16,
        reason: String,
        message: String,
    },
    #[error(
        "listing {listing} from {server} failed; is {server} a Kubernetes API server? Check \
         the kubeconfig in use (KUBECONFIG or --kubeconfig)"
    )]
    Other {
        server: String,
        listing: Listing,
        #[source]
        source: kube::Error,
    },
}

impl LiveError {
    /// Classifies a kube error from listing `listing` on `server`.
    pub(super) fn from_kube(server: &str, listing: &Listing, err: kube::Error) -> Self {
        let server = server.to_owned();
        let listing = listing.clone();
        match err {
            kube::Error::Api(status) => {
                let message = status.message.clone();
                match status.code {
                    403 => LiveError::Forbidden {
                        server,
                        listing,
                        message,
                    },
                    401 => LiveError::Unauthorized {
                        server,
                        listing,
                        message,
                    },
                    code => LiveError::Api {
                        server,
                        listing,
                        code,
                        reason: status.reason.clone(),
                        message,
                    },
                }
            }
            source @ (kube::Error::HyperError(_) | kube::Error::Service(_)) => {
                LiveError::Unreachable {
                    server,
                    listing,
                    source,
                }
            }
            source => LiveError::Other {
                server,
                listing,
                source,
            },
        }
    }

    /// Whether the API server refused the call for lack of permission.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, LiveError::Forbidden { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(namespace: Option<&str>) -> Listing {
        Listing {
            resource: "deployments",
            group: "apps",
            namespace: namespace.map(str::to_owned),
            namespaced: true,
        }
    }

    #[test]
    fn a_forbidden_list_names_the_permission_and_how_to_check_it() {
        let status = kube::core::Status::failure("deployments.apps is forbidden", "Forbidden")
            .with_code(403);
        let err = LiveError::from_kube(
            "https://k8s:6443/",
            &listing(Some("shop")),
            kube::Error::Api(Box::new(status)),
        );
        assert!(err.is_forbidden());
        let text = err.to_string();
        for part in [
            "https://k8s:6443/",
            "deployments.apps in namespace shop",
            "`list` permission on deployments.apps",
            DOCTOR_RBAC,
            "kubectl auth can-i list deployments.apps -n shop",
        ] {
            assert!(text.contains(part), "{part:?} not in {text}");
        }
        let all = listing(None);
        assert_eq!(all.can_i(), "kubectl auth can-i list deployments.apps -A");
        let nodes = Listing {
            resource: "nodes",
            group: "",
            namespace: None,
            namespaced: false,
        };
        assert_eq!(nodes.to_string(), "nodes");
        assert_eq!(nodes.can_i(), "kubectl auth can-i list nodes");
    }

    #[test]
    fn other_api_answers_keep_code_and_reason() {
        let status = kube::core::Status::failure("etcd is down", "InternalError").with_code(500);
        let err = LiveError::from_kube("s", &listing(None), kube::Error::Api(Box::new(status)));
        assert!(!err.is_forbidden());
        assert!(err.to_string().contains("500 InternalError: etcd is down"));
    }
}
