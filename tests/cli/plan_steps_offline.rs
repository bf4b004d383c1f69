//! `plan --offline --slb-state`: the steps that would bring a recorded SLB group to the
//! desired backends, in make-before-break order, and when the group is due again.

use std::process::Command;

use serde_json::{json, Value};

fn plan_with_state(now: &str) -> Value {
    plan_with_state_and(now, &[])
}

fn plan_with_state_and(now: &str, extra: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_slb-sync"))
        .args([
            "plan",
            "--offline",
            "deploy/examples/eni",
            "--slb-state",
            "tests/fixtures/slb-state-eni.json",
            "--now",
            now,
        ])
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run slb-sync");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

fn eni(id: &str, ip: &str, weight: u32) -> Value {
    json!({"serverId": id, "serverIp": ip, "port": 8080, "weight": weight, "type": "eni",
           "description": "k8s/80/web-eni/demo/kubernetes"})
}

#[test]
fn steps_add_first_then_weights_then_removals_of_elapsed_drains() {
    let report = plan_with_state("2026-11-27T12:00:00Z");
    let group = &report["services"][0]["groups"][0];
    // The desired fields are still there.
    assert_eq!(group["name"], "k8s/80/web-eni/demo/kubernetes");
    assert_eq!(group["backends"].as_array().unwrap().len(), 5);
    assert_eq!(
        group["steps"],
        json!([
            // Absent desired pods, with the ENI ids the state file supplies.
            {"action": "add", "backends": [eni("eni-d", "10.0.32.22", 100), eni("eni-e", "10.0.32.23", 100)]},
            // The pod back from draining is restored in place; the terminating one goes to 0.
            {"action": "setWeight", "backends": [eni("eni-b", "10.0.32.17", 100), eni("eni-a", "10.0.32.16", 0)]},
            // Only the backend whose 30 s window started 60 s ago is removed; the foreign
            // member (description "user-managed") is never touched.
            {"action": "remove", "backends": [eni("eni-x", "10.0.32.9", 0)]},
        ])
    );
    // eni-z's drain (weight 0 at 11:59:45) ends first: 5 s for the SLB to carry the
    // weight (`--slb-propagation-seconds`' default), then its 30 s window.
    assert_eq!(group["requeueAt"], "2026-11-27T12:00:20Z");
    let group = &plan_with_state_and("2026-11-27T12:00:00Z", &["--slb-propagation-seconds", "0"])
        ["services"][0]["groups"][0];
    assert_eq!(group["requeueAt"], "2026-11-27T12:00:15Z");
}

#[test]
fn a_drain_is_removed_exactly_when_propagation_and_window_have_elapsed() {
    let before = plan_with_state("2026-11-27T12:00:19Z");
    let removes = |report: &Value| -> Vec<String> {
        report["services"][0]["groups"][0]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["action"] == "remove")
            .flat_map(|s| s["backends"].as_array().unwrap().clone())
            .map(|b| b["serverId"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(removes(&before), ["eni-x"]);
    let at = plan_with_state("2026-11-27T12:00:20Z");
    // Backends in a step are in identity order (ENI: by IP text).
    assert_eq!(removes(&at), ["eni-z", "eni-x"]);
}

#[test]
fn unreadable_state_file_is_named_in_the_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_slb-sync"))
        .args([
            "plan",
            "--offline",
            "deploy/examples/eni",
            "--slb-state",
            "tests/fixtures/no-such-state.json",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run slb-sync");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no-such-state.json"), "{stderr}");
}
