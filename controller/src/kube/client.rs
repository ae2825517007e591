//! Connecting to the API server: `--kubeconfig` (or `KUBECONFIG`), else the in-cluster
//! service account.

use ::kube::config::{KubeConfigOptions, Kubeconfig};
use ::kube::{Client, Config};
use std::path::Path;

/// Why no client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig file could not be read or parsed.
    #[error("cannot read kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// What went wrong.
        source: ::kube::config::KubeconfigError,
    },
    /// Neither a kubeconfig nor the in-cluster environment is available.
    #[error(
        "no Kubernetes configuration: pass --kubeconfig (or set KUBECONFIG), run inside a \
         cluster, or serve files with --manifests ({0})"
    )]
    InCluster(::kube::config::InClusterError),
    /// The configuration is unusable (e.g. bad TLS material).
    #[error("cannot build a Kubernetes client: {0}")]
    Client(::kube::Error),
}

/// Builds a client. Must run inside a tokio runtime: the client spawns its connection worker.
pub async fn connect(kubeconfig: Option<&Path>) -> Result<Client, ClientError> {
    let config = match kubeconfig {
        Some(path) => {
            let wrap = |source| ClientError::Kubeconfig {
                path: path.display().to_string(),
                source,
            };
            let file = Kubeconfig::read_from(path).map_err(wrap)?;
            Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(wrap)?
        }
        None => Config::incluster().map_err(ClientError::InCluster)?,
    };
    Client::try_from(config).map_err(ClientError::Client)
}
