//! `slb-sync release-finalizers`: removes the agent's finalizers from every pod and
//! Service (uninstall, stuck pods).

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;

#[derive(Debug, Args)]
pub struct ReleaseFinalizersArgs {
    /// Only print what would be removed.
    #[arg(
        long,
        env = "SLB_SYNC_DRY_RUN",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    pub dry_run: bool,
}

/// One line per object on stdout, the count on stderr; every object that could not be
/// released is reported before it fails.
pub async fn run(args: ReleaseFinalizersArgs) -> anyhow::Result<ExitCode> {
    let client = kube::Client::try_default().await.context(
        "cannot connect to the cluster; set KUBECONFIG or run inside a pod with a service \
         account",
    )?;
    let result =
        crate::k8s::release::release_all(client, args.dry_run, |released| println!("{released}"))
            .await;
    match result {
        Ok(count) => {
            let done = if args.dry_run {
                "would be removed"
            } else {
                "removed"
            };
            eprintln!("{count} finalizer(s) {done}");
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for err in &errors {
                eprintln!("error: {err}");
            }
            bail!(
                "{} object(s) could not be released; see above",
                errors.len()
            )
        }
    }
}
