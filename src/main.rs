//! `slb-sync` command line: wiring only. The subcommands and their flags live in
//! [`slb_sync::cli`], the work in the rest of the library.
#![forbid(unsafe_code)]

use std::future::Future;
use std::process::ExitCode;

use clap::Parser;

use slb_sync::cli::{self, Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // doctor reports a failed API call itself, with the fix; kube's own log line about it
    // would only repeat it, less clearly.
    let default_filter = match cli.command {
        Command::Doctor(_) => "warn,kube_client=off",
        _ => "warn",
    };
    slb_sync::logging::init(cli.log_format, default_filter);
    let result = match cli.command {
        Command::Run(args) => {
            cli::multi_thread_runtime().and_then(|rt| rt.block_on(cli::run::run(*args)))
        }
        Command::Plan(args) => cli::plan::run(args),
        Command::Doctor(args) => one_shot(cli::doctor::run(args)),
        Command::WaitDrained(args) => one_shot(cli::wait_drained::run(args)),
        Command::ReleaseFinalizers(args) => one_shot(cli::release_finalizers::run(args)),
        Command::Demo(args) => cli::demo::run(args),
    };
    result.unwrap_or_else(|err| cli::report(&err))
}

/// Runs a one-shot subcommand on a current-thread runtime.
fn one_shot(
    subcommand: impl Future<Output = anyhow::Result<ExitCode>>,
) -> anyhow::Result<ExitCode> {
    cli::current_thread_runtime()?.block_on(subcommand)
}
