//! The `mock-slb` binary: documented help, and a run from a seed file.

use std::process::Stdio;

use mock_slb::client::Client;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mock-slb");

#[tokio::test]
async fn help_documents_flags_seed_and_admin_api() {
    let out = Command::new(BIN).arg("--help").output().await.unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--listen",
        "--seed",
        "--access-key",
        "load_balancers:",
        "PUT    /admin/faults",
        "GET    /admin/calls",
        "propagation_delay_ms",
    ] {
        assert!(help.contains(needle), "help lacks {needle}");
    }
}

#[tokio::test]
async fn runs_from_a_seed_file() {
    let dir = std::env::temp_dir().join(format!("mock-slb-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seed = dir.join("seed.yaml");
    std::fs::write(&seed, mock_slb::state::seed::SEED_EXAMPLE).unwrap();
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--seed"])
        .arg(&seed)
        .args(["--access-key", "other:othersecret"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines
        .next_line()
        .await
        .unwrap()
        .expect("prints its address");
    let url = first.strip_prefix("mock-slb API on http://").expect(&first);
    let addr = url.trim_end_matches('/').parse().unwrap();
    let listener = lines.next_line().await.unwrap().unwrap();
    assert!(
        listener.starts_with("listener lb-demo:80 on 127.0.0.1:"),
        "{listener}"
    );
    let c = Client::new(addr, "other", "othersecret");
    let a = c
        .slb(
            "DescribeVServerGroupAttribute",
            &[("VServerGroupId", "rsp-web")],
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.body["BackendServers"]["BackendServer"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    child.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn refuses_non_loopback_addresses() {
    let err = mock_slb::MockSlb::start(mock_slb::Config {
        api_addr: "0.0.0.0:0".parse().unwrap(),
        ..mock_slb::Config::default()
    })
    .await
    .err()
    .expect("0.0.0.0 refused");
    assert!(err.to_string().contains("loopback"), "{err}");
    let seed = mock_slb::Seed::parse(
        "load_balancers: [{id: lb, listeners: [{port: 80, bind: '0.0.0.0:0'}]}]",
        "s",
    )
    .unwrap();
    let err = mock_slb::MockSlb::start(mock_slb::Config {
        seed,
        ..mock_slb::Config::default()
    })
    .await
    .err()
    .expect("non-loopback bind refused");
    assert!(err.to_string().contains("loopback"), "{err}");
}
