//! `slb-sync demo`: the race lab run from beside this binary ([`crate::demo`]).

use std::process::ExitCode;

use crate::demo::DemoArgs;

/// The lab printed its own table and errors: its exit status is the demo's.
pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let status = crate::demo::run(&args)?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}
