//! What the `aliyun-openapi-core-rust-sdk` transport costs per call, against a loopback
//! `wiremock` server answering like the SLB: the SDK path (sign, build a new HTTP client,
//! connect, send, read) vs. one reused `reqwest` client (connection kept alive), plus the
//! two parts of the difference measured alone (client construction; a fresh connection).
//!
//! Run: `cargo run --example sdk_transport_cost [calls]` (add `--release` for optimised
//! figures). Prints median / p90 / p99 per path in microseconds.
//!
//! Figures (2-core machine, load average ~7 from parallel builds, debug build, loopback):
//! SDK median 111–132 ms per call, reused client 0.4–0.6 ms, reused client with a new
//! connection per call 0.8 ms, `Client::build()` alone 131 ms (106 ms in a release build);
//! ~53 ms of CPU per client build, spent in OpenSSL 3 loading the system CA bundle.
//! Why the SDK stays anyway: `src/slb/rpc/transport.rs`.

use std::time::{Duration, Instant};

use aliyun_openapi_core_rust_sdk::client::rpc::RPClient;
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pick = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i].as_micros()
    };
    println!(
        "{name:<44} median {:>7} us   p90 {:>7} us   p99 {:>7} us   (n={})",
        pick(0.5),
        pick(0.9),
        pick(0.99),
        samples.len()
    );
}

#[tokio::main]
async fn main() {
    let calls: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(500);
    let server = MockServer::start().await;
    let body = json!({"RequestId": "R", "VServerGroups": {"VServerGroup": [
        {"VServerGroupId": "rsp-1", "VServerGroupName": "k8s/80/web/default/c1"}]}});
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;
    let endpoint = format!("{}/", server.uri());
    let params = [
        ("RegionId", "cn-hangzhou"),
        ("LoadBalancerId", "lb-bp1qjwo61pqz3ahltv0mw"),
    ];

    // Warm-up of every path (lazy statics, first connection).
    for _ in 0..5 {
        RPClient::new("LTAIbench", "secret", endpoint.as_str())
            .version("2014-05-15")
            .get("DescribeVServerGroups")
            .query(params)
            .timeout(Duration::from_secs(5))
            .text()
            .await
            .expect("SDK call");
    }

    let mut sdk = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        RPClient::new("LTAIbench", "secret", endpoint.as_str())
            .version("2014-05-15")
            .get("DescribeVServerGroups")
            .query(params)
            .timeout(Duration::from_secs(5))
            .text()
            .await
            .expect("SDK call");
        sdk.push(t.elapsed());
    }

    let url = format!(
        "{endpoint}?Action=DescribeVServerGroups&Version=2014-05-15&Format=JSON\
         &RegionId=cn-hangzhou&LoadBalancerId=lb-bp1qjwo61pqz3ahltv0mw"
    );
    let reused = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    reused.get(&url).send().await.expect("warm-up");
    let mut kept = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        let r = reused.get(&url).send().await.expect("reused call");
        r.text().await.expect("body");
        kept.push(t.elapsed());
    }

    let no_pool = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let mut fresh_conn = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        let r = no_pool.get(&url).send().await.expect("no-pool call");
        r.text().await.expect("body");
        fresh_conn.push(t.elapsed());
    }

    let mut build = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        build.push(t.elapsed());
        drop(client);
    }

    println!("{calls} sequential calls against {endpoint} (loopback HTTP)");
    summary("SDK (sign + new client + connect + call)", sdk);
    summary("reused reqwest client (keep-alive)", kept);
    summary("reused client, new connection per call", fresh_conn);
    summary("reqwest::Client::build() alone", build);
}
