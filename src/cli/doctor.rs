//! `slb-sync doctor`: the audit of the workloads behind managed Services, from files or
//! the live cluster. Its flags are the doctor's own ([`DoctorArgs`]).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use crate::doctor::cli::{DoctorArgs, DoctorOutput};
use crate::doctor::DoctorConfig;
use crate::k8s::client;
use crate::offline::ClusterSnapshot;

/// Prints the report; fails (without an error line: the findings said why) when any
/// finding is an error.
pub async fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let config = args.config();
    let snapshot = if args.live {
        live(&args, &config).await?
    } else {
        crate::offline::load_paths_with_workloads(&args.paths)
            .context("cannot read the Kubernetes objects given to doctor")?
    };
    let report = crate::doctor::audit(&snapshot, &config);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match args.output {
        DoctorOutput::Table => crate::doctor::render_table(&report, &mut out),
        DoctorOutput::Json => crate::doctor::render_json(&report, &mut out),
    }
    .context("cannot write the doctor report")?;
    out.flush().context("cannot write the doctor report")?;
    Ok(if report.has_errors() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Reads what `doctor` audits from the cluster; notes about the read go to stderr.
async fn live(args: &DoctorArgs, config: &DoctorConfig) -> anyhow::Result<ClusterSnapshot> {
    let kube_config = client::config(args.kubeconfig.as_deref()).await.context(
        "doctor --live needs a cluster connection (or audit manifest files instead: \
         slb-sync doctor PATH...)",
    )?;
    let server = kube_config.cluster_url.to_string();
    let client = client::client(kube_config)?;
    let live = crate::doctor::live::load(&client, &server, &args.live_options(), config)
        .await
        .context("cannot read the cluster for doctor")?;
    for note in &live.notes {
        eprintln!("warning: {note}");
    }
    Ok(live.snapshot)
}
