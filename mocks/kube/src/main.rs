//! `mock-kube`: runs the Kubernetes API double on loopback until Ctrl-C, for demos and
//! manual runs of the agent (`KUBECONFIG=<written file> slb-sync run ...`) and of the
//! docs' kubectl commands (`KUBECONFIG=<written file> kubectl apply -k deploy/overlays/...`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(version, about = "Kubernetes API test double on loopback")]
struct Args {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "MOCK_KUBE_BIND", default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    /// Write a kubeconfig pointing at the server to this file.
    #[arg(long, env = "MOCK_KUBE_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Watch events retained; older resourceVersions get 410 Gone.
    #[arg(long, env = "MOCK_KUBE_HISTORY_LIMIT", default_value_t = 10_000)]
    history_limit: usize,
    /// Keep deleted scheduled pods Terminating until deleted with gracePeriodSeconds=0.
    #[arg(long, env = "MOCK_KUBE_GRACEFUL_POD_DELETION")]
    graceful_pod_deletion: bool,
    /// Serve the Prometheus Operator's ServiceMonitor and PrometheusRule, as if its CRDs
    /// were installed (the install manifests create one of each); `false` for a bare
    /// cluster.
    #[arg(long, env = "MOCK_KUBE_PROMETHEUS_OPERATOR_CRDS", default_value_t = true, action = clap::ArgAction::Set)]
    prometheus_operator_crds: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let kube = mock_kube::MockKube::builder()
        .bind(args.bind)
        .history_limit(args.history_limit)
        .graceful_pod_deletion(args.graceful_pod_deletion)
        .prometheus_operator_crds(args.prometheus_operator_crds)
        .serve()
        .await?;
    println!("mock-kube listening on {}", kube.url());
    if let Some(path) = &args.kubeconfig {
        kube.write_kubeconfig(path)?;
        println!("kubeconfig written to {}", path.display());
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    kube.shutdown().await;
    Ok(())
}
