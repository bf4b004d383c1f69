//! Fixtures of the `doctor` tests: the examples in `deploy/examples/` as JSON documents,
//! edits of them, and the audit run in-process.

use std::path::Path;

use serde_json::{json, Value};
use slb_sync::doctor::{audit, DoctorConfig, Finding, Report, Rule, Severity};
use slb_sync::offline::{Format, Loader};

use crate::manifests::{documents, repo_path};

/// The example's workload and cluster state (Nodes, pods, slices) as JSON documents.
pub fn example(mode: &str) -> Vec<Value> {
    let dir = repo_path("deploy/examples").join(mode);
    let mut docs = documents(&dir.join("workload.yaml"));
    docs.extend(documents(&dir.join("cluster-state.yaml")));
    docs
}

pub fn without_nodes(docs: Vec<Value>) -> Vec<Value> {
    docs.into_iter().filter(|d| d["kind"] != "Node").collect()
}

/// Every finding, the `group-listener` notes included.
pub fn run_all(docs: &[Value], config: &DoctorConfig) -> Report {
    let text: String = docs.iter().map(|d| format!("{d}\n")).collect();
    let mut loader = Loader::with_workloads();
    loader
        .add_text(Path::new("input.json"), &text, Format::Json)
        .expect("fixtures are valid objects");
    audit(&loader.finish(), config)
}

/// The findings of the workload rules: without the `group-listener` note that every
/// Service port found or created by name gets (it is about the SLB, tested on its own).
pub fn run(docs: &[Value], config: &DoctorConfig) -> Report {
    let mut report = run_all(docs, config);
    let before = report.findings.len();
    report.findings.retain(|f| f.rule != Rule::GroupListener);
    report.summary.infos -= before - report.findings.len();
    report
}

pub fn audit_docs(docs: &[Value]) -> Report {
    run(docs, &DoctorConfig::default())
}

pub fn of_rule(report: &Report, rule: Rule) -> Vec<&Finding> {
    report.findings.iter().filter(|f| f.rule == rule).collect()
}

/// The single finding of `rule`, which must have `severity`.
pub fn one(report: &Report, rule: Rule, severity: Severity) -> Finding {
    let found = of_rule(report, rule);
    assert_eq!(found.len(), 1, "{rule}: {:#?}", report.findings);
    assert_eq!(found[0].severity, severity, "{:#?}", found[0]);
    found[0].clone()
}

pub fn kind_mut<'a>(docs: &'a mut [Value], kind: &str) -> &'a mut Value {
    docs.iter_mut().find(|d| d["kind"] == kind).unwrap()
}

pub fn pod_spec(docs: &mut [Value]) -> &mut Value {
    &mut kind_mut(docs, "Deployment")["spec"]["template"]["spec"]
}

pub fn app(docs: &mut [Value]) -> &mut Value {
    &mut pod_spec(docs)["containers"][0]
}

pub fn remove(v: &mut Value, key: &str) {
    v.as_object_mut().unwrap().remove(key);
}

pub fn set_annotation(docs: &mut [Value], key: &str, value: Option<&str>) {
    let annotations = kind_mut(docs, "Service")["metadata"]["annotations"]
        .as_object_mut()
        .unwrap();
    match value {
        Some(v) => annotations.insert(key.to_owned(), json!(v)),
        None => annotations.remove(key),
    };
}

pub const DRAIN: &str = "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-connection-drain";
