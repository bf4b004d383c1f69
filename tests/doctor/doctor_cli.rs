//! `slb-sync doctor` from the command line, on files: the shipped examples (no errors),
//! `deploy/doctor-fixtures/bad/` (every rule), exit codes and input errors.

use std::process::{Command, Output};

use serde_json::Value;
use slb_sync::doctor::Rule;

use support::doctor::*;
use support::manifests::repo_path;

// ---- The CLI. ----

fn slb_sync(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slb-sync"));
    cmd.args(args).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    cmd.output().expect("the slb-sync binary runs")
}

#[test]
fn cli_doctor_on_the_examples_reports_no_errors() {
    let examples = repo_path("deploy/examples").display().to_string();
    let out = slb_sync(&["doctor", &examples]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The only notes: ports whose group is found or created by name need a listener,
    // which doctor cannot see from the cluster.
    assert!(
        stdout.contains(
            "0 error(s), 0 warning(s), 3 info across 3 managed Service(s) and 3 workload(s)"
        ),
        "{stdout}"
    );
    assert_eq!(stdout.matches("group-listener").count(), 3, "{stdout}");
}

#[test]
fn cli_doctor_on_the_bad_fixtures_reports_every_rule_and_fails() {
    let bad = repo_path("deploy/doctor-fixtures/bad")
        .display()
        .to_string();
    let out = slb_sync(&["doctor", "--output", "json", &bad]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let rules: std::collections::BTreeSet<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    for rule in Rule::ALL {
        assert!(
            rules.contains(rule.as_str()),
            "{rule} not reported: {rules:?}"
        );
    }
    assert!(report["summary"]["errors"].as_u64().unwrap() > 0);
    for f in report["findings"].as_array().unwrap() {
        for key in ["severity", "object", "rule", "finding", "fix"] {
            assert!(
                f[key].as_str().is_some_and(|s| !s.is_empty()),
                "{key} in {f}"
            );
        }
    }

    // The table has one header and names the same rules.
    let out = slb_sync(&["doctor", &bad]);
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("SEVERITY  OBJECT"), "{table}");
    assert!(table.contains("ERROR     cluster"), "{table}");
}

#[test]
fn cli_doctor_warnings_alone_exit_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut docs = example("local");
    remove(pod_spec(&mut docs), "affinity");
    let text: String = docs.iter().map(|d| format!("{d}\n")).collect();
    let file = dir.path().join("w.json");
    std::fs::write(&file, text).unwrap();
    let out = slb_sync(&["doctor", file.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 error(s), 1 warning(s)"));
}

#[test]
fn cli_doctor_input_problems_are_errors_naming_the_path() {
    let out = slb_sync(&["doctor", "/nonexistent/manifests"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/manifests"), "{err}");

    // A path or --live is required: the live cluster is never read unless asked for.
    let out = slb_sync(&["doctor"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("<PATH|--live>"));
    let help = slb_sync(&["doctor", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("slb-sync doctor --live"));
    // Both at once is ambiguous, and the live-only flags need --live.
    let out = slb_sync(&["doctor", "--live", "x.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let out = slb_sync(&["doctor", "--namespace", "shop", "x.yaml"]);
    assert_eq!(out.status.code(), Some(2));
}
