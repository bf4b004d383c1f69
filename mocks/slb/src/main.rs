//! `mock-slb`: runs the SLB simulator until interrupted.
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::{CommandFactory as _, FromArgMatches as _, Parser};
use mock_slb::{Config, MockSlb, Seed};

const ABOUT: &str = "Stateful Alibaba Cloud SLB OpenAPI simulator with a TCP data plane";

const LONG_ABOUT: &str = "\
Stateful Alibaba Cloud SLB OpenAPI simulator with a TCP data plane, for slb-sync's tests
and demo. It listens on loopback only.

API: one RPC endpoint (GET query or POST form, any path outside /admin) serves SLB
2014-05-15 actions (DescribeVServerGroups, DescribeVServerGroupAttribute,
CreateVServerGroup, DeleteVServerGroup, AddVServerGroupBackendServers,
RemoveVServerGroupBackendServers, SetVServerGroupAttribute, DescribeHealthStatus,
DescribeLoadBalancerListeners, DescribeLoadBalancerAttribute,
DescribeLoadBalancer{TCP,UDP,HTTP,HTTPS}ListenerAttribute,
SetLoadBalancer{TCP,UDP}ListenerAttribute) and ECS 2014-05-26 DescribeNetworkInterfaces.
Every call must be signed (signature v1, HMAC-SHA1, key = secret + \"&\") with a key pair
from the seed; RegionId is required. Errors answer {Code, Message, RequestId, HostId,
Recommend} with the real HTTP status.

Data plane: every TCP (and HTTP, as plain TCP) listener binds its `bind` address
(default 127.0.0.1 on an ephemeral port; see GET /admin/dataplane) and forwards by smooth
weighted round robin to the backends of its vServer group as applied: ECS backends at the
instance IP and backend port, ENI backends at their ServerIp. Weight 0 takes no new
connections; removal closes established ones at once, or after ConnectionDrainTimeout
when ConnectionDrain is on.";

const AFTER_HELP_HEAD: &str = "SEED FILE (JSON, or YAML when it does not start with '{'; every section optional;\nthe `faults` section has the shape of PUT /admin/faults):\n";

const AFTER_HELP: &str = r#"
ADMIN API (JSON, unauthenticated, same address as the API):

  GET    /admin/state       control-plane state (instances, listeners, groups, ECS, ENIs)
  GET    /admin/dataplane   listeners: bound address, applied backends, counters
  GET    /admin/counters    {"api": {Action: {calls, ok, errors: {Code: n}}},
                             "dataplane": [{load_balancer_id, port, counters: {accepted,
                             forwarded, refused, connect_failed, cut, active}}]}
  GET    /admin/calls       call log (action, params without Signature, status, code)
  DELETE /admin/calls       clear the call log and counters
  GET    /admin/faults      current faults
  PUT    /admin/faults      replace faults:
           {"errors": [{"action": "AddVServerGroupBackendServers", "code": "SystemBusy",
                        "status": 503, "message": "...", "rate": 0.5}],
            "latency": [{"action": null, "min_ms": 10, "max_ms": 50}],
            "qps_limit": 5.0, "qps_burst": 10.0, "action_qps_limits": {"CreateVServerGroup": 1.5},
            "throttling_code": "Throttling",
            "group_write_gap_ms": 1000,
            "propagation_delay_ms": 2000}
           errors: checked in order after authentication; action null = every action.
           qps_limit: token bucket over all actions (qps_burst at once, default one
             second's worth), action_qps_limits: one per action;
             over a limit the call answers 400 Throttling (or throttling_code).
           group_write_gap_ms: writes to one vServer group closer than this answer
             400 VServerGroupProcessing.
           propagation_delay_ms: writes succeed at once; the data plane applies them later.
  POST   /admin/seed        merge a seed document (JSON or YAML body)
  DELETE /admin/access-keys/ID   revoke a key pair (credential rotation tests)

EXAMPLE:
  mock-slb --listen 127.0.0.1:18000 --seed seed.yaml --access-key testid:testsecret
"#;

#[derive(Debug, Parser)]
#[command(name = "mock-slb", version, about = ABOUT, long_about = LONG_ABOUT)]
struct Args {
    /// Address of the API and admin API (loopback).
    #[arg(long, env = "MOCK_SLB_LISTEN", default_value = "127.0.0.1:18000")]
    listen: SocketAddr,
    /// Seed file (JSON or YAML) with key pairs, instances, listeners, groups, ECS
    /// instances, ENIs and faults.
    #[arg(long, env = "MOCK_SLB_SEED")]
    seed: Option<String>,
    /// Add a key pair `ID:SECRET` (repeatable), in addition to the seed's.
    #[arg(
        long = "access-key",
        env = "MOCK_SLB_ACCESS_KEYS",
        value_delimiter = ','
    )]
    access_keys: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs go to stderr: stdout carries the bound addresses for scripts.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let help = format!(
        "{AFTER_HELP_HEAD}\n{}{AFTER_HELP}",
        mock_slb::state::seed::SEED_EXAMPLE
    );
    let matches = Args::command().after_help(help).get_matches();
    let args = Args::from_arg_matches(&matches)?;
    let mut seed = match &args.seed {
        Some(path) => Seed::load(path)?,
        None => Seed::default(),
    };
    for pair in &args.access_keys {
        let (id, secret) = pair
            .split_once(':')
            .with_context(|| "--access-key must be ID:SECRET")?;
        seed.access_keys.push(mock_slb::state::seed::AccessKey {
            id: id.to_string(),
            secret: secret.to_string(),
            security_token: None,
        });
    }
    let handle = MockSlb::start(Config {
        api_addr: args.listen,
        seed,
    })
    .await?;
    println!("mock-slb API on {}", handle.api_url());
    for l in handle.dataplane() {
        println!("listener {}:{} on {}", l.load_balancer_id, l.port, l.addr);
    }
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await;
    Ok(())
}
