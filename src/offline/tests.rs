use std::fs;
use std::path::Path;

use super::*;

fn yaml(text: &str) -> Result<ClusterSnapshot, LoadError> {
    let mut loader = Loader::default();
    loader.add_text(Path::new("in.yaml"), text, Format::Yaml)?;
    Ok(loader.finish())
}

fn json(text: &str) -> Result<ClusterSnapshot, LoadError> {
    let mut loader = Loader::default();
    loader.add_text(Path::new("in.json"), text, Format::Json)?;
    Ok(loader.finish())
}

fn names<
    K: k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
>(
    objs: &[K],
) -> Vec<String> {
    objs.iter()
        .map(|o| {
            let m = o.metadata();
            match &m.namespace {
                Some(ns) => format!("{ns}/{}", m.name.as_deref().unwrap_or("")),
                None => m.name.clone().unwrap_or_default(),
            }
        })
        .collect()
}

const NODE_A: &str = "apiVersion: v1\nkind: Node\nmetadata:\n  name: node-a\nspec:\n  providerID: alicloud://cn-hangzhou.i-a\n";

#[test]
fn multi_document_yaml_yields_every_kind_in_order() {
    let snap = yaml(
        "---\n# leading comment and an empty document\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n\
         spec:\n  type: LoadBalancer\n  ports: [{port: 80, nodePort: 30080, targetPort: 8080}]\n\
         ---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: web-abc, namespace: shop}\n\
         addressType: IPv4\nendpoints:\n- addresses: [10.0.0.5]\n  conditions: {ready: true, serving: true, terminating: false}\n  nodeName: node-a\n\
         ---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {name: web-1, namespace: shop}\nspec:\n  containers: [{name: app, image: nginx}]\n\
         ---\n",
    )
    .unwrap();
    assert_eq!(names(&snap.services), ["shop/web"]);
    assert_eq!(names(&snap.endpoint_slices), ["shop/web-abc"]);
    assert_eq!(names(&snap.pods), ["shop/web-1"]);
    assert!(snap.nodes.is_empty());
    let port = &snap.services[0]
        .spec
        .as_ref()
        .unwrap()
        .ports
        .as_ref()
        .unwrap()[0];
    assert_eq!(port.node_port, Some(30080));
    let endpoint = &snap.endpoint_slices[0].endpoints.as_ref().unwrap()[0];
    assert_eq!(endpoint.conditions.as_ref().unwrap().ready, Some(true));
}

#[test]
fn list_and_typed_list_items_are_unwrapped() {
    let snap = yaml(
        "apiVersion: v1\nkind: List\nitems:\n\
         - apiVersion: v1\n  kind: Node\n  metadata: {name: node-a}\n\
         - apiVersion: apps/v1\n  kind: Deployment\n  metadata: {name: web}\n\
         ---\n\
         apiVersion: v1\nkind: NodeList\nmetadata: {resourceVersion: \"12\"}\nitems:\n\
         - metadata: {name: node-b}\n  spec: {providerID: alicloud://cn-hangzhou.i-b}\n",
    )
    .unwrap();
    assert_eq!(names(&snap.nodes), ["node-a", "node-b"]);
    assert_eq!(snap.ignored, 1);
}

#[test]
fn json_single_value_list_and_stream() {
    let snap = json(
        r#"{"apiVersion":"v1","kind":"List","items":[
             {"apiVersion":"v1","kind":"Node","metadata":{"name":"node-a"}}]}
           {"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"ns"}}"#,
    )
    .unwrap();
    assert_eq!(names(&snap.nodes), ["node-a"]);
    assert_eq!(names(&snap.pods), ["ns/p"]);
}

#[test]
fn other_kinds_and_other_groups_are_ignored() {
    let snap = yaml(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {selector: {}, template: {}}\n---\n\
         apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: not-core}\n---\n\
         apiVersion: v1\nkind: Endpoints\nmetadata: {name: legacy}\n",
    )
    .unwrap();
    assert_eq!(snap.ignored, 4);
    assert!(snap.services.is_empty());
}

#[test]
fn namespaced_objects_default_to_the_default_namespace() {
    let snap = yaml(&format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\n---\n{NODE_A}"
    ))
    .unwrap();
    assert_eq!(names(&snap.services), ["default/web"]);
    assert_eq!(names(&snap.nodes), ["node-a"], "nodes are cluster-scoped");
}

#[test]
fn identical_duplicates_are_merged_and_conflicting_ones_rejected() {
    let snap = yaml(&format!("{NODE_A}---\n{NODE_A}")).unwrap();
    assert_eq!(snap.nodes.len(), 1);

    let other = NODE_A.replace("i-a", "i-other");
    let err = yaml(&format!("{NODE_A}---\n{other}")).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, LoadError::Conflict { .. }), "{msg}");
    assert!(msg.contains("Node node-a is defined twice"), "{msg}");
    assert!(msg.contains("in.yaml, document 1 (line 1)"), "{msg}");
    assert!(msg.contains("in.yaml, document 2 (line 8)"), "{msg}");
}

#[test]
fn a_document_without_kind_is_an_error_naming_file_and_document() {
    let err = yaml(&format!(
        "{NODE_A}---\napiVersion: v1\nmetadata: {{name: x}}\n"
    ))
    .unwrap_err();
    assert!(matches!(err, LoadError::NotAnObject { .. }));
    let msg = err.to_string();
    assert!(
        msg.starts_with("in.yaml, document 2 (line 8): not a Kubernetes object (kind is missing)"),
        "{msg}"
    );

    let err = yaml("just: some\nconfig: true\n").unwrap_err();
    assert!(err.to_string().contains("document 1"), "{err}");
    assert!(err.to_string().contains("apiVersion is missing"), "{err}");

    let err = yaml("- a\n- b\n").unwrap_err();
    assert!(err.to_string().contains("the document is a list"), "{err}");

    let err = json(r#"{"apiVersion": "v1", "kind": 3}"#).unwrap_err();
    assert!(err.to_string().contains("kind is a number"), "{err}");
}

#[test]
fn list_items_that_are_not_objects_name_the_item() {
    let err = yaml("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Node\n  metadata: {name: a}\n- 42\n")
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("in.yaml, document 1 (line 1), items[1]: not a Kubernetes object (the document is a number)"), "{msg}");

    let err = yaml("apiVersion: v1\nkind: List\nitems: 3\n").unwrap_err();
    assert!(
        err.to_string()
            .contains("List items is a number, not a list"),
        "{err}"
    );
    assert_eq!(
        yaml("apiVersion: v1\nkind: List\nitems: []\n").unwrap(),
        ClusterSnapshot::default()
    );
}

#[test]
fn a_malformed_field_names_the_object_and_the_field() {
    let err = yaml("apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec:\n  ports: [{port: eighty}]\n")
        .unwrap_err();
    let msg = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(matches!(err, LoadError::Invalid { .. }));
    assert!(
        msg.contains(
            "in.yaml, document 1 (line 1): Service web does not match the v1 Service schema"
        ),
        "{msg}"
    );
}

#[test]
fn an_object_without_a_name_is_an_error() {
    let err = yaml("apiVersion: v1\nkind: Pod\nmetadata: {namespace: shop}\n").unwrap_err();
    assert!(
        err.to_string().contains("Pod has no metadata.name"),
        "{err}"
    );
}

#[test]
fn an_old_endpointslice_version_is_an_error_not_silently_skipped() {
    let err = yaml("apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata: {name: s}\naddressType: IPv4\nendpoints: []\n")
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("EndpointSlice apiVersion discovery.k8s.io/v1beta1 is not supported; use discovery.k8s.io/v1"), "{msg}");
}

#[test]
fn invalid_yaml_and_json_name_the_file() {
    let err = yaml("apiVersion: v1\nkind: [unclosed\n").unwrap_err();
    assert!(matches!(err, LoadError::Yaml { .. }));
    assert_eq!(err.to_string(), "in.yaml is not valid YAML");
    let err = json("{\"apiVersion\": ").unwrap_err();
    assert!(matches!(err, LoadError::Json { .. }));
    assert_eq!(err.to_string(), "in.json is not valid JSON");
}

#[test]
fn an_empty_file_has_no_objects() {
    assert_eq!(yaml("").unwrap(), ClusterSnapshot::default());
    assert_eq!(
        yaml("# only a comment\n---\n").unwrap(),
        ClusterSnapshot::default()
    );
    assert_eq!(json("").unwrap(), ClusterSnapshot::default());
}

#[test]
fn directories_are_searched_recursively_in_sorted_order() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("b/nested")).unwrap();
    fs::create_dir_all(root.join("a")).unwrap();
    let node = |name: &str| format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\n");
    fs::write(root.join("b/nested/z.yml"), node("n3")).unwrap();
    fs::write(root.join("b/a.yaml"), node("n2")).unwrap();
    fs::write(
        root.join("a/x.json"),
        r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"n1"}}"#,
    )
    .unwrap();
    fs::write(root.join("c.yaml"), node("n4")).unwrap();
    fs::write(root.join("README.md"), "not a manifest: ignored").unwrap();
    fs::write(root.join("notes.txt"), "- neither").unwrap();

    let snap = load_paths(&[root]).unwrap();
    assert_eq!(names(&snap.nodes), ["n1", "n2", "n3", "n4"]);

    // The same files reached twice (a directory and a file inside it) are read once.
    let snap = load_paths(&[root.to_path_buf(), root.join("c.yaml")]).unwrap();
    assert_eq!(snap.nodes.len(), 4);
}

#[test]
fn an_explicit_file_is_read_whatever_its_extension() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snapshot.txt");
    fs::write(&file, NODE_A).unwrap();
    assert_eq!(load_paths(&[&file]).unwrap().nodes.len(), 1);
}

#[test]
fn missing_paths_and_empty_directories_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yaml");
    let err = load_paths(&[&missing]).unwrap_err();
    assert!(matches!(err, LoadError::Read { .. }));
    assert!(err.to_string().contains("nope.yaml"), "{err}");

    let err = load_paths(&[dir.path()]).unwrap_err();
    assert!(matches!(err, LoadError::EmptyDirectory { .. }), "{err}");
}

#[test]
fn errors_in_a_directory_name_the_offending_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("good.yaml"), NODE_A).unwrap();
    fs::write(dir.path().join("zz-bad.yaml"), "kind: Node\n").unwrap();
    let err = load_paths(&[dir.path()]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("zz-bad.yaml, document 1"), "{msg}");
    assert!(msg.contains("apiVersion is missing"), "{msg}");
}

/// A cluster dump is far larger than a config file: more documents (1,100) and YAML nodes
/// (260,000) than the YAML parser's default budget (1,024 and 250,000) must load.
#[test]
fn large_multi_document_files_load() {
    let mut text = String::new();
    for i in 0..1100 {
        text.push_str(&format!(
            "---\napiVersion: v1\nkind: Node\nmetadata: {{name: n{i}}}\n"
        ));
    }
    text.push_str("---\napiVersion: v1\nkind: Node\nmetadata:\n  name: big\n  labels:\n");
    for i in 0..130_000 {
        text.push_str(&format!("    l{i}: v\n"));
    }
    let snap = yaml(&text).unwrap();
    assert_eq!(snap.nodes.len(), 1101);
    let labels = snap.nodes[1100].metadata.labels.as_ref().unwrap();
    assert_eq!(labels.len(), 130_000);
}

#[test]
fn workloads_are_kept_only_when_asked() {
    let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n\
                spec: {selector: {}, template: {}}\n---\n\
                apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db, namespace: shop}\n\
                spec: {selector: {}, template: {}, serviceName: db}\n---\n\
                apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n";
    let plain = yaml(text).unwrap();
    assert!(plain.deployments.is_empty() && plain.stateful_sets.is_empty());
    assert_eq!(plain.ignored, 3);

    let mut loader = Loader::with_workloads();
    loader
        .add_text(Path::new("w.yaml"), text, Format::Yaml)
        .unwrap();
    let snap = loader.finish();
    assert_eq!(names(&snap.deployments), ["default/web"]);
    assert_eq!(names(&snap.stateful_sets), ["shop/db"]);
    assert_eq!(snap.ignored, 1);

    let mut loader = Loader::with_workloads();
    let err = loader
        .add_text(
            Path::new("w.yaml"),
            "apiVersion: apps/v1beta2\nkind: Deployment\nmetadata: {name: web}\n",
            Format::Yaml,
        )
        .unwrap_err();
    assert!(err.to_string().contains("use apps/v1"), "{err}");
}
