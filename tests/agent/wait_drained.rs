//! `slb-sync wait-drained` end to end: the built binary against the in-process drain
//! server on loopback, checking exit codes and what it prints.

use support::drain_fixture;

use std::net::SocketAddr;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use drain_fixture::{fixture, mk_pod, Fixture, Phase};
use kube::runtime::watcher;
use slb_sync::http::HttpServer;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// Generous bound for a child process to react (2 shared cores under load); the figures
/// printed are what it actually took.
const REACT: Duration = Duration::from_secs(10);

struct Agent {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

async fn serve(fx: &Fixture, addr: SocketAddr) -> Agent {
    let server = HttpServer::bind(addr, fx.state.clone()).await.unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    Agent { addr, _stop: stop }
}

fn wait_drained(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slb-sync"));
    cmd.arg("wait-drained")
        .args(args)
        .env_remove("POD_NAMESPACE")
        .env_remove("POD_NAME")
        .env_remove("SLB_SYNC_AGENT")
        .env_remove("SLB_SYNC_WAIT_TIMEOUT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

fn spawn_for(agent: SocketAddr, timeout: &str) -> Child {
    let url = format!("http://{agent}");
    wait_drained(&[
        "--agent",
        &url,
        "--namespace",
        "shop",
        "--pod",
        "web-0",
        "--timeout",
        timeout,
    ])
    .spawn()
    .unwrap()
}

async fn finish(child: Child) -> (Output, String, String) {
    let output = tokio::time::timeout(REACT * 3, child.wait_with_output())
        .await
        .expect("wait-drained did not exit")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returns_exactly_when_the_pod_is_drained() {
    let mut fx = fixture();
    fx.cluster.list(vec![mk_pod("web-0", Phase::Draining)]);
    let agent = serve(&fx, "127.0.0.1:0".parse().unwrap()).await;
    let mut child = spawn_for(agent.addr, "60");

    fx.until_waiting_within(1, REACT).await;
    assert!(child.try_wait().unwrap().is_none(), "exited while draining");

    let drained_at = Instant::now();
    fx.cluster
        .apply(watcher::Event::Apply(mk_pod("web-0", Phase::Drained)));
    let (output, stdout, stderr) = finish(child).await;
    let latency = drained_at.elapsed();
    eprintln!("wait-drained exited {latency:?} after the pod was marked drained");
    assert!(output.status.success(), "{stderr}");
    assert_eq!(stdout.trim(), "pod shop/web-0 is drained");
    assert!(latency < REACT, "{latency:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_released_without_a_confirmed_drain_exits_3_and_says_so() {
    let mut fx = fixture();
    fx.cluster.list(vec![mk_pod("web-0", Phase::Draining)]);
    let agent = serve(&fx, "127.0.0.1:0".parse().unwrap()).await;
    let child = spawn_for(agent.addr, "60");
    fx.until_waiting_within(1, REACT).await;
    fx.cluster
        .apply(watcher::Event::Apply(mk_pod("web-0", Phase::Released)));
    let (output, stdout, stderr) = finish(child).await;
    assert_eq!(output.status.code(), Some(3), "{stdout}{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("released by the agent without a confirmed drain")
            && stderr.contains("FailOpenRelease"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmanaged_pod_returns_at_once_using_the_downward_api_env() {
    let mut fx = fixture();
    fx.cluster.list(vec![mk_pod("web-0", Phase::Unheld)]);
    let agent = serve(&fx, "127.0.0.1:0".parse().unwrap()).await;
    let url = format!("http://{}", agent.addr);
    let started = Instant::now();
    let child = wait_drained(&["--agent", &url, "--timeout", "60"])
        .env("POD_NAMESPACE", "shop")
        .env("POD_NAME", "web-0")
        .spawn()
        .unwrap();
    let (output, stdout, stderr) = finish(child).await;
    eprintln!(
        "wait-drained for an unmanaged pod took {:?}",
        started.elapsed()
    );
    assert!(output.status.success(), "{stderr}");
    assert_eq!(stdout.trim(), "pod shop/web-0 is unmanaged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gives_up_at_the_deadline_and_says_it_fails_open() {
    let mut fx = fixture();
    fx.cluster.list(vec![mk_pod("web-0", Phase::Draining)]);
    let agent = serve(&fx, "127.0.0.1:0".parse().unwrap()).await;
    let started = Instant::now();
    let child = spawn_for(agent.addr, "1.5");
    let (output, stdout, stderr) = finish(child).await;
    let took = started.elapsed();
    eprintln!("wait-drained --timeout 1.5 gave up after {took:?}");
    assert!(!output.status.success());
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("shop/web-0 was not reported drained")
            && stderr.contains("last state: draining")
            && stderr.contains("fail-open")
            && stderr.contains("--timeout"),
        "{stderr}"
    );
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    assert!(took < Duration::from_millis(1500) + REACT, "{took:?}");
}

/// The agent may be restarting when the pod is deleted: connection errors are retried
/// until the deadline, and the answer of the agent once up ends the wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_until_the_agent_answers() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let mut child = spawn_for(addr, "60");
    // Let it meet a refused connection or two.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(child.try_wait().unwrap().is_none());

    let mut fx = fixture();
    let _agent = serve(&fx, addr).await;
    // Up but not synced yet: 503s are retried too.
    fx.until_waiting_within(1, REACT).await;
    let drained_at = Instant::now();
    fx.cluster.list(vec![mk_pod("web-0", Phase::Drained)]);
    let (output, stdout, stderr) = finish(child).await;
    eprintln!(
        "wait-drained exited {:?} after the restarted agent listed the pod drained",
        drained_at.elapsed()
    );
    assert!(output.status.success(), "{stderr}");
    assert_eq!(stdout.trim(), "pod shop/web-0 is drained");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_agent_it_fails_at_the_deadline_naming_the_problem() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let (output, _, stderr) = finish(spawn_for(addr, "1")).await;
    assert!(!output.status.success());
    assert!(
        stderr.contains("last problem") && stderr.contains("fail-open"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_agent_refuses_fails_at_once() {
    let mut fx = fixture();
    fx.cluster.list(vec![]);
    let agent = serve(&fx, "127.0.0.1:0".parse().unwrap()).await;
    let url = format!("http://{}", agent.addr);
    let started = Instant::now();
    let child = wait_drained(&[
        "--agent",
        &url,
        "--namespace",
        "shop",
        "--pod",
        "Web_0",
        "--timeout",
        "60",
    ])
    .spawn()
    .unwrap();
    let (output, _, stderr) = finish(child).await;
    assert!(!output.status.success());
    assert!(
        stderr.contains("refused the drain request")
            && stderr.contains("`Web_0` is not a pod name"),
        "{stderr}"
    );
    assert!(started.elapsed() < REACT);
}

#[tokio::test]
async fn missing_inputs_are_named_with_the_fix() {
    let url = "http://127.0.0.1:9";
    for (args, needles) in [
        (
            vec!["--agent", url, "--pod", "web-0", "--timeout", "5"],
            ["--namespace", "POD_NAMESPACE"],
        ),
        (
            vec!["--agent", url, "--namespace", "shop", "--timeout", "5"],
            ["--pod", "POD_NAME"],
        ),
        (
            vec![
                "--agent",
                "slb-sync:8080",
                "--namespace",
                "shop",
                "--pod",
                "p",
                "--timeout",
                "5",
            ],
            ["--agent `slb-sync:8080`", "http://"],
        ),
        (
            vec![
                "--agent",
                url,
                "--namespace",
                "shop",
                "--pod",
                "p",
                "--timeout",
                "0",
            ],
            ["--timeout `0`", "terminationGracePeriodSeconds"],
        ),
    ] {
        let (output, _, stderr) = finish(wait_drained(&args).spawn().unwrap()).await;
        assert!(!output.status.success(), "{args:?}");
        for needle in needles {
            assert!(stderr.contains(needle), "{args:?}: {stderr}");
        }
    }
}
