//! Rough throughput of the double through a real `kube::Client`: N pod creates, one list,
//! N status patches, while a kube-runtime watcher follows along.
//!
//! `cargo run -p mock-kube --example load -- 1000`

use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::Api;
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let kube = mock_kube::MockKube::start().await?;
    let pods: Api<Pod> = Api::namespaced(kube.client()?, "default");
    let watch = tokio::spawn({
        let pods = pods.clone();
        async move {
            let mut w = watcher(pods, watcher::Config::default()).boxed();
            let mut applies = 0;
            while let Some(Ok(ev)) = w.next().await {
                if matches!(ev, watcher::Event::Apply(_)) {
                    applies += 1;
                    if applies == 2 * n {
                        return applies;
                    }
                }
            }
            applies
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    let t = Instant::now();
    for i in 0..n {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("p{i}"), "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "x"}]}
        }))?;
        pods.create(&PostParams::default(), &pod).await?;
    }
    let create = t.elapsed();
    let t = Instant::now();
    let listed = pods
        .list(&ListParams::default().labels("app=web"))
        .await?
        .items
        .len();
    let list = t.elapsed();
    let t = Instant::now();
    for i in 0..n {
        let p = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        pods.patch_status(
            &format!("p{i}"),
            &PatchParams::default(),
            &Patch::Strategic(&p),
        )
        .await?;
    }
    let patch = t.elapsed();
    let applies = watch.await?;
    println!(
        "n={n} create: {:.0}/s, list of {listed}: {:?}, status patch: {:.0}/s, watcher applies seen: {applies}",
        n as f64 / create.as_secs_f64(),
        list,
        n as f64 / patch.as_secs_f64()
    );
    Ok(())
}
