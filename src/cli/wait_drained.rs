//! `slb-sync wait-drained`: a pod's preStop hook blocks here until the agent reports the
//! pod drained.

use std::process::ExitCode;

use clap::Args;

use crate::http::wait_drained::WaitDrained;
use crate::k8s::drain_state::DrainState;

/// `wait-drained`'s exit status when the agent released the pod without a confirmed
/// drain (distinct from 0, a drain, and from 1, no answer).
const RELEASED_EXIT: u8 = 3;

#[derive(Debug, Args)]
pub struct WaitDrainedArgs {
    /// The agent's HTTP address, e.g. http://slb-sync.kube-system.svc:8080.
    #[arg(long, value_name = "URL", env = "SLB_SYNC_AGENT")]
    pub agent: String,
    /// This pod's namespace (downward API `metadata.namespace`).
    #[arg(long, value_name = "NS", env = "POD_NAMESPACE")]
    pub namespace: Option<String>,
    /// This pod's name (downward API `metadata.name`).
    #[arg(long, value_name = "NAME", env = "POD_NAME")]
    pub pod: Option<String>,
    /// Give up after this many seconds; keep it below terminationGracePeriodSeconds.
    #[arg(long, value_name = "SECONDS", env = "SLB_SYNC_WAIT_TIMEOUT")]
    pub timeout: String,
}

pub async fn run(args: WaitDrainedArgs) -> anyhow::Result<ExitCode> {
    let wait = WaitDrained::new(&args.agent, args.namespace, args.pod, &args.timeout)?;
    let state = wait.run().await?;
    if state == DrainState::Released {
        eprintln!(
            "pod {}/{} was released by the agent without a confirmed drain (fail-open): the \
             SLB may still have sent it traffic; see the pod's FailOpenRelease Event",
            wait.namespace, wait.pod
        );
        return Ok(ExitCode::from(RELEASED_EXIT));
    }
    println!("pod {}/{} is {state}", wait.namespace, wait.pod);
    Ok(ExitCode::SUCCESS)
}
