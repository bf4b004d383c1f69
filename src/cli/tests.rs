use std::path::PathBuf;

use clap::{CommandFactory, Parser};

use super::{Cli, Command};
use crate::desired::PlannerConfig;

#[test]
fn cli_definition_is_consistent() {
    Cli::command().debug_assert();
}

/// Every flag can be set from the environment (how the agent is configured in a pod);
/// the pod's own name and namespace come from the downward API's usual variables.
#[test]
fn every_flag_reads_an_slb_sync_env_var() {
    const DOWNWARD_API: [&str; 2] = ["POD_NAMESPACE", "POD_NAME"];
    // Variables the Kubernetes and Alibaba Cloud tools already use.
    const STANDARD: [&str; 2] = ["KUBECONFIG", "ALIBABA_CLOUD_"];
    let cli = Cli::command();
    for sub in cli.get_subcommands() {
        for arg in sub.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            assert!(
                env.as_deref().is_some_and(|e| e.starts_with("SLB_SYNC_")
                    || DOWNWARD_API.contains(&e)
                    || STANDARD.iter().any(|s| e.starts_with(s))),
                "{} --{id} has env {env:?}",
                sub.get_name()
            );
        }
    }
}

#[test]
fn run_documents_every_flag_and_defaults_to_the_documented_values() {
    let cli = Cli::command();
    let run = cli.find_subcommand("run").unwrap();
    for arg in run.get_arguments() {
        let id = arg.get_id().as_str();
        assert!(
            id == "help" || arg.get_help().is_some(),
            "run --{id} has no help text"
        );
    }
    let cli = Cli::try_parse_from(["slb-sync", "run", "--region", "cn-hangzhou"]).unwrap();
    let Command::Run(args) = cli.command else {
        panic!("parsed as {:?}", cli.command)
    };
    let config = args
        .agent_config(prometheus::Registry::new())
        .expect("metrics register");
    assert_eq!(config.default_drain_secs, 30);
    assert_eq!(config.resync, std::time::Duration::from_secs(600));
    assert_eq!(
        config.kube_proxy_allowance,
        crate::agent::pods::allowance::DEFAULT_KUBE_PROXY_ALLOWANCE
    );
    assert_eq!(config.http_addr.to_string(), "0.0.0.0:8080");
    assert_eq!(config.leader.lease_name, "slb-sync");
    assert_eq!(config.planner, PlannerConfig::default());
    assert_eq!(args.slb.rpc_config().region_id, "cn-hangzhou");
}

#[test]
fn planner_defaults_match_the_documented_ones() {
    let cli = Cli::command();
    let plan = cli.find_subcommand("plan").unwrap();
    let default = |id: &str| {
        let arg = plan.get_arguments().find(|a| a.get_id() == id).unwrap();
        arg.get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
    };
    let config = PlannerConfig::default();
    assert_eq!(default("cluster_id"), [config.cluster_id]);
    assert_eq!(default("lb_class"), [config.lb_class]);
}

#[test]
fn plan_flags_become_the_planner_config() {
    let cli = Cli::try_parse_from([
        "slb-sync",
        "plan",
        "--offline",
        "a.yaml",
        "dir/",
        "--cluster-id",
        "prod-hz",
        "--lb-class",
        "example.com/lb",
        "--manage-unclassed",
    ])
    .unwrap();
    let Command::Plan(args) = cli.command else {
        panic!("parsed as {:?}", cli.command)
    };
    assert_eq!(
        args.offline,
        [PathBuf::from("a.yaml"), PathBuf::from("dir/")]
    );
    assert_eq!(
        args.planner.config(),
        PlannerConfig {
            cluster_id: "prod-hz".to_owned(),
            lb_class: "example.com/lb".to_owned(),
            manage_unclassed: true,
        }
    );
}

/// A call rate of zero or less (or not a number) is refused with the flag named, rather
/// than silently becoming one call per second.
#[test]
fn a_call_rate_that_is_not_above_zero_is_refused() {
    for bad in ["0", "-1", "NaN", "fast"] {
        let flag = format!("--qps={bad}");
        let err = Cli::try_parse_from(["slb-sync", "run", "--region", "cn-hangzhou", &flag])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--qps"), "{bad}: {err}");
    }
    let ok = Cli::try_parse_from(["slb-sync", "run", "--region", "cn-hangzhou", "--qps", "0.5"]);
    assert!(ok.is_ok(), "{:?}", ok.err());
}
