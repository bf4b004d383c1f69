//! `slb-sync demo`: the race lab, run from beside this binary.
//!
//! The lab (`race-lab` in the source tree's `mocks/cluster`) builds on this crate, so it
//! cannot be part of this binary without a dependency cycle; `demo` runs the one built in
//! the same directory, passing every argument on and naming this binary as the simulated
//! pods' `wait-drained`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use clap::Args;

/// Arguments of `slb-sync demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Arguments for race-lab, e.g. `--seeds 5 --policy slb-sync`.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        num_args = 0..,
        env = "SLB_SYNC_DEMO_ARGS",
        value_delimiter = ' '
    )]
    pub args: Vec<String>,
}

/// Why the lab did not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot locate the slb-sync binary: {0}")]
    NoExe(#[source] std::io::Error),
    #[error(
        "the demo is the race lab (`race-lab` from mocks/cluster in the slb-sync source tree) \
         and there is none beside {exe}: in the source tree run `cargo run -p mock-cluster \
         --bin race-lab`, or build it with `cargo build -p mock-cluster --bin race-lab` and \
         run `slb-sync demo` again"
    )]
    NoLab { exe: PathBuf },
    #[error("cannot start {lab}: {source}")]
    Start {
        lab: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Runs `race-lab` from the directory of the running binary; its status is the demo's.
pub fn run(args: &DemoArgs) -> Result<ExitStatus, DemoError> {
    let exe = std::env::current_exe().map_err(DemoError::NoExe)?;
    run_beside(&exe, &args.args)
}

fn run_beside(exe: &Path, args: &[String]) -> Result<ExitStatus, DemoError> {
    let lab = exe.with_file_name(format!("race-lab{}", std::env::consts::EXE_SUFFIX));
    if !lab.is_file() {
        return Err(DemoError::NoLab {
            exe: exe.to_owned(),
        });
    }
    Command::new(&lab)
        .args(args)
        .env("SLB_SYNC_BIN", exe)
        .status()
        .map_err(|source| DemoError::Start { lab, source })
}
