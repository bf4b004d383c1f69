//! OpenAPI schemas of the Prometheus Operator's ServiceMonitor and PrometheusRule, the
//! custom resources the install manifests create.
//!
//! Written for the double from the operator's documented `monitoring.coreos.com/v1` API,
//! not copied from its CRDs: every field of `spec`, of a ServiceMonitor endpoint, of a
//! rule group and of a rule is declared (so a misspelt one is refused as the real CRD
//! would refuse it), while nested structures the manifests never use (TLS, auth,
//! relabelings) are accepted as they are.

use serde_json::{json, Map, Value};

const META: &str = "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const SELECTOR: &str = "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector";

fn string() -> Value {
    json!({"type": "string"})
}

fn strings() -> Value {
    json!({"type": "array", "items": {"type": "string"}})
}

fn integer() -> Value {
    json!({"type": "integer", "format": "int64"})
}

fn boolean() -> Value {
    json!({"type": "boolean"})
}

fn int_or_string() -> Value {
    json!({"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]})
}

/// An object whose content is not checked (the nested structures named above).
fn opaque() -> Value {
    json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

fn string_map() -> Value {
    json!({"type": "object", "additionalProperties": {"type": "string"}})
}

fn object(props: &[(&str, Value)]) -> Value {
    let properties: Map<String, Value> = props
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect();
    json!({"type": "object", "properties": properties})
}

fn resource(kind: &str, spec: Value) -> Value {
    json!({
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": string(),
            "kind": string(),
            "metadata": {"$ref": META},
            "spec": spec,
        },
        "x-kubernetes-group-version-kind": [
            {"group": "monitoring.coreos.com", "version": "v1", "kind": kind}
        ],
    })
}

fn service_monitor() -> Value {
    let endpoint = object(&[
        ("port", string()),
        ("targetPort", int_or_string()),
        ("path", string()),
        ("scheme", string()),
        (
            "params",
            json!({"type": "object", "additionalProperties": strings()}),
        ),
        ("interval", string()),
        ("scrapeTimeout", string()),
        ("tlsConfig", opaque()),
        ("bearerTokenFile", string()),
        ("bearerTokenSecret", opaque()),
        ("authorization", opaque()),
        ("honorLabels", boolean()),
        ("honorTimestamps", boolean()),
        ("trackTimestampsStaleness", boolean()),
        ("basicAuth", opaque()),
        ("oauth2", opaque()),
        (
            "metricRelabelings",
            json!({"type": "array", "items": opaque()}),
        ),
        ("relabelings", json!({"type": "array", "items": opaque()})),
        ("proxyUrl", string()),
        ("noProxy", string()),
        ("proxyFromEnvironment", boolean()),
        ("proxyConnectHeader", opaque()),
        ("followRedirects", boolean()),
        ("enableHttp2", boolean()),
        ("filterRunning", boolean()),
    ]);
    let spec = object(&[
        ("jobLabel", string()),
        ("targetLabels", strings()),
        ("podTargetLabels", strings()),
        ("endpoints", json!({"type": "array", "items": endpoint})),
        ("selector", json!({"$ref": SELECTOR})),
        ("selectorMechanism", string()),
        (
            "namespaceSelector",
            object(&[("any", boolean()), ("matchNames", strings())]),
        ),
        ("sampleLimit", integer()),
        ("scrapeProtocols", strings()),
        ("fallbackScrapeProtocol", string()),
        ("targetLimit", integer()),
        ("labelLimit", integer()),
        ("labelNameLengthLimit", integer()),
        ("labelValueLengthLimit", integer()),
        ("nativeHistogramBucketLimit", integer()),
        ("nativeHistogramMinBucketFactor", int_or_string()),
        ("scrapeClassicHistograms", boolean()),
        ("convertClassicHistogramsToNHCB", boolean()),
        ("keepDroppedTargets", integer()),
        ("attachMetadata", object(&[("node", boolean())])),
        ("scrapeClass", string()),
        ("bodySizeLimit", string()),
        ("serviceDiscoveryRole", string()),
    ]);
    resource("ServiceMonitor", spec)
}

fn prometheus_rule() -> Value {
    let rule = object(&[
        ("record", string()),
        ("alert", string()),
        ("expr", int_or_string()),
        ("for", string()),
        ("keep_firing_for", string()),
        ("labels", string_map()),
        ("annotations", string_map()),
    ]);
    let group = object(&[
        ("name", string()),
        ("labels", string_map()),
        ("interval", string()),
        ("query_offset", string()),
        ("rules", json!({"type": "array", "items": rule})),
        ("partial_response_strategy", string()),
        ("limit", integer()),
    ]);
    let spec = object(&[("groups", json!({"type": "array", "items": group}))]);
    resource("PrometheusRule", spec)
}

/// The component schemas, by the names the resource table refers to.
pub fn schemas() -> Vec<(String, Value)> {
    vec![
        (
            "com.coreos.monitoring.v1.ServiceMonitor".into(),
            service_monitor(),
        ),
        (
            "com.coreos.monitoring.v1.PrometheusRule".into(),
            prometheus_rule(),
        ),
    ]
}
