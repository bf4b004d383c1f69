//! The child processes' side: mock-kube loaded with the generated cluster through its
//! in-process `put` hook (HTTP creates of 150,000 pods would take minutes and test
//! nothing of the agent), and mock-slb seeded with the generated SLB. Each prints
//! `READY <address>` and serves until its standard input closes (the lab ended or died).

use std::time::Instant;

use tokio::io::AsyncReadExt;

use super::objects;
use super::spec::Spec;

/// Watch events mock-kube keeps: far more than a run writes, so no watch of the agent's
/// is ever answered `410 Gone` (a re-list would be a cost of the double, not the agent).
const HISTORY: usize = 200_000;

async fn until_stdin_closes() {
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
}

/// Serves the generated cluster from mock-kube.
pub async fn kube(spec: &Spec) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let mut namespaces: Vec<String> = (0..spec.namespaces.max(1))
        .map(|i| format!("team-{i}"))
        .collect();
    namespaces.extend(["default".to_owned(), "kube-system".to_owned()]);
    let kube = mock_kube::MockKube::builder()
        .history_limit(HISTORY)
        .graceful_pod_deletion(true)
        .namespaces(namespaces)
        .serve()
        .await?;
    for n in 0..spec.nodes {
        kube.put(&objects::node(spec, n))?;
    }
    for s in 0..spec.services() {
        kube.put(&objects::service(spec, s))?;
        for p in 0..spec.pods_of(s) {
            kube.put(&objects::pod(spec, s, p, true))?;
        }
        kube.put(&objects::ready_slice(spec, s))?;
    }
    eprintln!(
        "mock-kube: {} nodes, {} Services, {} pods loaded in {:.1}s",
        spec.nodes,
        spec.services(),
        (0..spec.services()).map(|s| spec.pods_of(s)).sum::<usize>(),
        started.elapsed().as_secs_f64()
    );
    println!("READY {}", kube.url());
    until_stdin_closes().await;
    kube.shutdown().await;
    Ok(())
}

/// Serves the generated SLB from mock-slb with an account-wide limit of `qps` calls per
/// second, `burst` at once.
pub async fn slb(spec: &Spec, qps: f64, burst: f64) -> Result<(), Box<dyn std::error::Error>> {
    let mut seed: mock_slb::Seed = serde_json::from_value(objects::slb_seed(spec))?;
    seed.faults = Some(mock_slb::FaultConfig {
        qps_limit: Some(qps),
        qps_burst: Some(burst),
        ..mock_slb::FaultConfig::default()
    });
    let slb = mock_slb::MockSlb::start(mock_slb::Config {
        seed,
        ..mock_slb::Config::default()
    })
    .await?;
    println!("READY {}", slb.api_url());
    until_stdin_closes().await;
    slb.shutdown().await;
    Ok(())
}
