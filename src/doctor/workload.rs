//! Deployments and StatefulSets seen the same way: a pod template plus how it rolls.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// How a workload replaces its pods.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Rollout {
    /// Deployment `RollingUpdate` with its (defaulted) surge and unavailability.
    Rolling {
        max_surge: IntOrString,
        max_unavailable: IntOrString,
    },
    /// Deployment `Recreate`: every old pod goes before a new one starts.
    Recreate,
    /// StatefulSet: a pod is deleted before its replacement is created.
    StatefulSet { strategy: String },
}

/// A Deployment or StatefulSet reduced to what the rules read.
#[derive(Debug, Clone)]
pub(super) struct Workload<'a> {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub replicas: i32,
    pub template: &'a PodTemplateSpec,
    pub rollout: Rollout,
    /// Deployment `progressDeadlineSeconds` (default 600); `None` for a StatefulSet.
    pub progress_deadline_secs: Option<i32>,
}

impl fmt::Display for Workload<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// Kubernetes' defaults for a Deployment's rolling update (25% / 25%).
fn default_quarter() -> IntOrString {
    IntOrString::String("25%".to_owned())
}

impl<'a> Workload<'a> {
    pub(super) fn from_deployment(d: &'a Deployment) -> Self {
        let spec = &d.spec;
        let rollout = match spec.strategy.as_ref() {
            Some(s) if s.type_.as_deref() == Some("Recreate") => Rollout::Recreate,
            other => {
                let rolling = other.and_then(|s| s.rolling_update.as_ref());
                Rollout::Rolling {
                    max_surge: rolling
                        .and_then(|r| r.max_surge.clone())
                        .unwrap_or_else(default_quarter),
                    max_unavailable: rolling
                        .and_then(|r| r.max_unavailable.clone())
                        .unwrap_or_else(default_quarter),
                }
            }
        };
        Workload {
            kind: "Deployment",
            namespace: namespace_of(&d.metadata),
            name: d.metadata.name.clone().unwrap_or_default(),
            replicas: spec.replicas.unwrap_or(1),
            template: &spec.template,
            rollout,
            progress_deadline_secs: Some(spec.progress_deadline_seconds.unwrap_or(600)),
        }
    }

    pub(super) fn from_stateful_set(s: &'a StatefulSet) -> Self {
        let spec = &s.spec;
        let strategy = spec
            .update_strategy
            .as_ref()
            .and_then(|u| u.type_.clone())
            .unwrap_or_else(|| "RollingUpdate".to_owned());
        Workload {
            kind: "StatefulSet",
            namespace: namespace_of(&s.metadata),
            name: s.metadata.name.clone().unwrap_or_default(),
            replicas: spec.replicas.unwrap_or(1),
            template: &spec.template,
            rollout: Rollout::StatefulSet { strategy },
            progress_deadline_secs: None,
        }
    }

    pub(super) fn labels(&self) -> Option<&BTreeMap<String, String>> {
        self.template.metadata.as_ref()?.labels.as_ref()
    }

    /// True when every key/value of a Service's selector is among the pod labels.
    pub(super) fn selected_by(&self, selector: &BTreeMap<String, String>) -> bool {
        let Some(labels) = self.labels() else {
            return false;
        };
        !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

fn namespace_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned())
}

/// The value of an `IntOrString` surge/unavailability for `replicas`, as the Deployment
/// controller computes it (surge rounds up, unavailability down); `None` when malformed.
pub(super) fn scaled(value: &IntOrString, replicas: i32, round_up: bool) -> Option<i64> {
    match value {
        IntOrString::Int(n) => Some(i64::from(*n)),
        IntOrString::String(s) => {
            let percent: i64 = s.strip_suffix('%')?.trim().parse().ok()?;
            let total = percent * i64::from(replicas.max(0));
            Some(if round_up {
                (total + 99) / 100
            } else {
                total / 100
            })
        }
    }
}
