//! Service annotations (ACK-compatible keys) → a typed, validated [`LbSpec`].
//!
//! Every bad value becomes an [`AnnotationError`] naming the key, the value and what is
//! accepted, so the Event an operator sees says exactly what to fix. All problems of one
//! Service are reported together rather than one per reconcile.

use std::collections::BTreeMap;

use crate::model::{BackendType, LbSpec};

/// Prefix shared by the ACK-compatible load balancer annotations.
pub const PREFIX: &str = "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-";
/// SLB instance id; required on every managed Service.
pub const LB_ID: &str = "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-id";
/// `rsp-a:80,rsp-b:443`: existing vServer groups to use per Service port.
pub const VGROUP_PORT: &str = "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-vgroup-port";
/// `on`/`off`: listener connection drain.
pub const CONNECTION_DRAIN: &str =
    "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-connection-drain";
/// Seconds, 10–900: listener drain timeout and the agent's drain window.
pub const CONNECTION_DRAIN_TIMEOUT: &str =
    "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-connection-drain-timeout";
/// `on`/`off`: drain and remove nodes marked unschedulable.
pub const REMOVE_UNSCHEDULED_BACKEND: &str =
    "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-remove-unscheduled-backend";
/// `k=v,k2=v2`: only nodes carrying all these labels are backends.
pub const BACKEND_LABEL: &str =
    "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-backend-label";
/// `eni`/`ecs`: `eni` selects ENI mode (pod IPs as backends).
pub const BACKEND_TYPE: &str = "service.beta.kubernetes.io/backend-type";
/// The weight shared by a group's backends, with [`VGROUP_PORT`] (0–100).
pub const WEIGHT: &str = "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-weight";
/// Each backend's weight in Cluster and ENI mode (0–100).
pub const DEFAULT_WEIGHT: &str =
    "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-default-weight";
/// `on`: backends taking traffic keep the weight they have on the SLB.
pub const IGNORE_WEIGHT_UPDATE: &str =
    "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-ignore-weight-update";

/// The older form of [`PREFIX`], which ACK still reads when a key is absent in the new
/// form.
pub const LEGACY_PREFIX: &str = "service.beta.kubernetes.io/alicloud-loadbalancer-";

/// The value of `key` (one of the [`PREFIX`] keys, or another) as ACK reads it: the key,
/// else its [`LEGACY_PREFIX`] form; trimmed; an empty value counts as no value.
pub fn value<'a>(annotations: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    let legacy = key
        .strip_prefix(PREFIX)
        .map(|suffix| format!("{LEGACY_PREFIX}{suffix}"));
    annotations
        .get(key)
        .or_else(|| legacy.and_then(|k| annotations.get(&k)))
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
}

/// ACK annotations of the Service (under [`PREFIX`] or [`LEGACY_PREFIX`]) that slb-sync
/// does not read, in their current form, sorted: every instance and listener setting,
/// which stays with whoever manages the instance, and [`WEIGHT`] without
/// [`VGROUP_PORT`], which ACK does not read either. Set on a managed Service they change
/// nothing here, so the agent says so rather than ignoring them.
pub fn unsupported(annotations: &BTreeMap<String, String>) -> Vec<String> {
    let with_vgroup_port = value(annotations, VGROUP_PORT).is_some();
    let keys: std::collections::BTreeSet<String> = annotations
        .keys()
        .filter_map(|key| {
            let suffix = key
                .strip_prefix(PREFIX)
                .or_else(|| key.strip_prefix(LEGACY_PREFIX))?;
            let current = format!("{PREFIX}{suffix}");
            let read = KNOWN_PREFIXED.contains(&current.as_str())
                && (current != WEIGHT || with_vgroup_port);
            (!read).then_some(current)
        })
        .collect();
    keys.into_iter().collect()
}

/// Drain timeout range the SLB accepts (`ConnectionDrainTimeout`).
pub const DRAIN_TIMEOUT_RANGE: std::ops::RangeInclusive<u32> = 10..=900;

/// A problem with one annotation of a Service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    #[error("annotation {key} is missing: {fix}")]
    Missing {
        key: &'static str,
        fix: &'static str,
    },
    #[error("annotation {key}={value:?} is invalid: expected {expected}")]
    Invalid {
        key: &'static str,
        value: String,
        expected: String,
    },
}

/// Longest part of a bad value quoted in errors and Events: a huge value (a pasted file)
/// would otherwise hide every other problem of the Service and overflow the Event.
const QUOTED_CHARS: usize = 64;

impl AnnotationError {
    fn invalid(key: &'static str, value: &str, expected: impl Into<String>) -> Self {
        AnnotationError::Invalid {
            key,
            value: quoted(value),
            expected: expected.into(),
        }
    }
}

/// `value`, cut to its first [`QUOTED_CHARS`] characters with its full size when longer.
fn quoted(value: &str) -> String {
    match value.char_indices().nth(QUOTED_CHARS) {
        None => value.to_owned(),
        Some((end, _)) => format!("{}… ({} bytes)", &value[..end], value.len()),
    }
}

/// True when the Service carries an SLB id annotation, which `--manage-unclassed` uses to
/// pick up Services that have no `loadBalancerClass`.
/// An empty id counts as none, as everywhere (see [`parse`]).
pub fn has_lb_id(annotations: &BTreeMap<String, String>) -> bool {
    value(annotations, LB_ID).is_some()
}

/// Parses a Service's annotations into an [`LbSpec`], or every problem found.
///
/// Keys are read as ACK reads them ([`value`]): a key whose value is empty (or blank)
/// counts as absent (manifests written for ACK set `backend-label: ""` to mean "no
/// filter", and templating tools render unset values that way), and a key absent in the
/// current form is read in its older `alicloud-loadbalancer-` form.
pub fn parse(annotations: &BTreeMap<String, String>) -> Result<LbSpec, Vec<AnnotationError>> {
    let mut errors = Vec::new();
    let mut spec = LbSpec::default();
    let get = |key: &str| value(annotations, key);

    match get(LB_ID) {
        None => errors.push(AnnotationError::Missing {
            key: LB_ID,
            fix: "set it to the SLB instance id, e.g. lb-2zeexample",
        }),
        Some(id) if is_cloud_id(id) => spec.load_balancer_id = id.to_owned(),
        Some(id) => errors.push(AnnotationError::invalid(
            LB_ID,
            id,
            "an SLB instance id such as lb-2zeexample (letters, digits, '-' and '_', at most 64)",
        )),
    }
    if let Some(v) = get(VGROUP_PORT) {
        match parse_vgroup_ports(v) {
            Ok(ports) => spec.vgroup_ports = ports,
            Err(expected) => errors.push(AnnotationError::invalid(VGROUP_PORT, v, expected)),
        }
    }
    if let Some(v) = get(CONNECTION_DRAIN) {
        match parse_on_off(v) {
            Some(on) => spec.connection_drain = Some(on),
            None => errors.push(AnnotationError::invalid(CONNECTION_DRAIN, v, "on or off")),
        }
    }
    if let Some(v) = get(CONNECTION_DRAIN_TIMEOUT) {
        match v.parse::<u32>() {
            Ok(secs) if DRAIN_TIMEOUT_RANGE.contains(&secs) => {
                spec.connection_drain_timeout = Some(secs)
            }
            _ => errors.push(AnnotationError::invalid(
                CONNECTION_DRAIN_TIMEOUT,
                v,
                "whole seconds from 10 to 900",
            )),
        }
    }
    if spec.connection_drain == Some(true)
        && spec.connection_drain_timeout.is_none()
        && get(CONNECTION_DRAIN_TIMEOUT).is_none()
    {
        errors.push(AnnotationError::Missing {
            key: CONNECTION_DRAIN_TIMEOUT,
            fix: "connection-drain is on, so set the drain timeout in seconds (10-900)",
        });
    }
    if let Some(v) = get(REMOVE_UNSCHEDULED_BACKEND) {
        match parse_on_off(v) {
            Some(on) => spec.remove_unscheduled_backend = on,
            None => errors.push(AnnotationError::invalid(
                REMOVE_UNSCHEDULED_BACKEND,
                v,
                "on or off",
            )),
        }
    }
    if let Some(v) = get(BACKEND_LABEL) {
        match parse_labels(v) {
            Ok(labels) => spec.backend_labels = labels,
            Err(expected) => errors.push(AnnotationError::invalid(BACKEND_LABEL, v, expected)),
        }
    }
    if let Some(v) = get(BACKEND_TYPE) {
        match v.to_ascii_lowercase().as_str() {
            "eni" => spec.backend_type = Some(BackendType::Eni),
            "ecs" => spec.backend_type = Some(BackendType::Ecs),
            _ => errors.push(AnnotationError::invalid(BACKEND_TYPE, v, "eni or ecs")),
        }
    }
    let percent = |key: &'static str, errors: &mut Vec<AnnotationError>| {
        let v = get(key)?;
        match v.parse::<u32>() {
            Ok(w) if w <= 100 => Some(w),
            _ => {
                errors.push(AnnotationError::invalid(
                    key,
                    v,
                    "a whole number from 0 to 100",
                ));
                None
            }
        }
    };
    if get(VGROUP_PORT).is_some() {
        spec.weight = percent(WEIGHT, &mut errors);
    }
    spec.default_weight = percent(DEFAULT_WEIGHT, &mut errors);
    if let Some(v) = get(IGNORE_WEIGHT_UPDATE) {
        match parse_on_off(v) {
            Some(on) => spec.ignore_weight_update = on,
            None => errors.push(AnnotationError::invalid(
                IGNORE_WEIGHT_UPDATE,
                v,
                "on or off",
            )),
        }
    }
    for key in unsupported(annotations) {
        tracing::debug!(%key, "ignoring annotation this agent does not interpret");
    }

    if errors.is_empty() {
        Ok(spec)
    } else {
        Err(errors)
    }
}

/// The [`PREFIX`] keys slb-sync reads.
const KNOWN_PREFIXED: [&str; 9] = [
    LB_ID,
    VGROUP_PORT,
    CONNECTION_DRAIN,
    CONNECTION_DRAIN_TIMEOUT,
    REMOVE_UNSCHEDULED_BACKEND,
    BACKEND_LABEL,
    WEIGHT,
    DEFAULT_WEIGHT,
    IGNORE_WEIGHT_UPDATE,
];

fn parse_on_off(value: &str) -> Option<bool> {
    if value.eq_ignore_ascii_case("on") {
        Some(true)
    } else if value.eq_ignore_ascii_case("off") {
        Some(false)
    } else {
        None
    }
}

/// Ids of SLB instances and vServer groups: short, made of letters, digits, '-' and '_'.
fn is_cloud_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn parse_vgroup_ports(value: &str) -> Result<BTreeMap<u16, String>, String> {
    const FORMAT: &str =
        "comma-separated <vServerGroupId>:<servicePort> pairs, e.g. rsp-a:80,rsp-b:443";
    let mut ports = BTreeMap::new();
    for item in value.split(',').map(str::trim) {
        let (id, port) = item
            .rsplit_once(':')
            .ok_or_else(|| format!("{FORMAT}; {:?} has no ':'", quoted(item)))?;
        let (id, port) = (id.trim(), port.trim());
        if !is_cloud_id(id) {
            return Err(format!(
                "{FORMAT}; {:?} is not a vServer group id",
                quoted(id)
            ));
        }
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{FORMAT}; port {:?} is not 1-65535", quoted(port)))?;
        if ports.insert(port, id.to_owned()).is_some() {
            return Err(format!("{FORMAT}; port {port} is listed twice"));
        }
    }
    Ok(ports)
}

fn parse_labels(value: &str) -> Result<Vec<(String, String)>, String> {
    const FORMAT: &str = "comma-separated key=value node labels, e.g. pool=web,zone=a";
    let mut labels = Vec::new();
    for item in value.split(',').map(str::trim) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("{FORMAT}; {:?} has no '='", quoted(item)))?;
        let (k, v) = (k.trim(), v.trim());
        if !is_label_key(k) {
            return Err(format!(
                "{FORMAT}; {:?} is not a valid label key",
                quoted(k)
            ));
        }
        if !is_label_value(v) {
            return Err(format!(
                "{FORMAT}; {:?} is not a valid label value",
                quoted(v)
            ));
        }
        labels.push((k.to_owned(), v.to_owned()));
    }
    Ok(labels)
}

/// Kubernetes label name: ≤ 63 of `[A-Za-z0-9._-]`, alphanumeric at both ends.
fn is_label_name(s: &str) -> bool {
    !s.is_empty() && is_label_value(s)
}

/// Kubernetes label value: empty, or a label name.
fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric())
}

/// Kubernetes label key: `[prefix/]name`, prefix a DNS subdomain of ≤ 253 characters.
fn is_label_key(s: &str) -> bool {
    match s.split_once('/') {
        None => is_label_name(s),
        Some((prefix, name)) => {
            !prefix.is_empty()
                && prefix.len() <= 253
                && prefix.split('.').all(|part| {
                    !part.is_empty()
                        && part
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                        && !part.starts_with('-')
                        && !part.ends_with('-')
                })
                && is_label_name(name)
        }
    }
}

#[cfg(test)]
mod tests;
