//! `slb-sync` command line: wiring only; the work lives in the library.
#![forbid(unsafe_code)]

use clap::Parser;

/// Keeps Alibaba Cloud SLB backend groups in sync with Kubernetes so rolling updates lose
/// no requests.
#[derive(Debug, Parser)]
#[command(name = "slb-sync", version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
