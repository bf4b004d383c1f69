//! The connection to the cluster: a kubeconfig named by a flag, else KUBECONFIG,
//! ~/.kube/config or the in-cluster service account.

use std::path::{Path, PathBuf};

use kube::config::{InferConfigError, KubeconfigError};

/// Why there is no cluster connection; each message says which setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read the kubeconfig {}", path.display())]
    ReadKubeconfig {
        path: PathBuf,
        #[source]
        source: KubeconfigError,
    },
    #[error("the kubeconfig {} is not usable", path.display())]
    UnusableKubeconfig {
        path: PathBuf,
        #[source]
        source: KubeconfigError,
    },
    #[error(
        "cannot find the cluster: set --kubeconfig / KUBECONFIG or run inside a pod with a \
         service account"
    )]
    NoCluster(#[source] InferConfigError),
    #[error("cannot build the Kubernetes client")]
    Build(#[source] kube::Error),
}

/// The connection settings from `kubeconfig`, or KUBECONFIG / ~/.kube/config / in-cluster.
pub async fn config(kubeconfig: Option<&Path>) -> Result<kube::Config, ClientError> {
    let Some(path) = kubeconfig else {
        return kube::Config::infer().await.map_err(ClientError::NoCluster);
    };
    let file = kube::config::Kubeconfig::read_from(path).map_err(|source| {
        ClientError::ReadKubeconfig {
            path: path.to_owned(),
            source,
        }
    })?;
    kube::Config::from_custom_kubeconfig(file, &Default::default())
        .await
        .map_err(|source| ClientError::UnusableKubeconfig {
            path: path.to_owned(),
            source,
        })
}

/// A client for `config`.
pub fn client(config: kube::Config) -> Result<kube::Client, ClientError> {
    kube::Client::try_from(config).map_err(ClientError::Build)
}
