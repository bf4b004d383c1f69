//! What the planner needs to know about a Node, and whether it may back a Service.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;

use super::intern::Interner;

/// Labels that take a node out of every load balancer (docs/architecture.md, "Node eligibility").
/// Presence excludes, whatever the value: that is how Kubernetes reads
/// `node.kubernetes.io/exclude-from-external-load-balancers` and the role labels.
/// ACK reads both of its labels, the current one and the deprecated
/// `service.beta.kubernetes.io/exclude-node`, the same way.
pub const EXCLUDE_LABELS: [&str; 6] = [
    "node.kubernetes.io/exclude-from-external-load-balancers",
    "service.alibabacloud.com/exclude-node",
    "alpha.service-controller.kubernetes.io/exclude-balancer",
    "node-role.kubernetes.io/control-plane",
    "node-role.kubernetes.io/master",
    "service.beta.kubernetes.io/exclude-node",
];

/// `spec.providerID` prefix of ACK's hybrid-cloud nodes (machines outside the VPC): no
/// SLB can reach them, so ACK leaves them out of every group and so does the planner.
pub const HYBRID_PROVIDER_PREFIX: &str = "ack-hybrid://";

/// The label of a virtual node (virtual-kubelet, whose pods run on ECI): no ECS instance
/// behind it, so it is never a node backend; its pods join Cluster and Local groups as
/// ENI backends at their own IP, as ACK adds them.
pub const VIRTUAL_NODE_LABEL: (&str, &str) = ("type", "virtual-kubelet");

/// Whether `node` is a virtual node ([`VIRTUAL_NODE_LABEL`]).
pub fn is_virtual_node(node: &Node) -> bool {
    node.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(VIRTUAL_NODE_LABEL.0))
        .is_some_and(|v| v == VIRTUAL_NODE_LABEL.1)
}

/// Taints that announce a node's removal; its backends are drained, not dropped.
pub const DRAIN_TAINTS: [&str; 2] = ["ToBeDeletedByClusterAutoscaler", "karpenter.sh/disrupted"];

/// Which nodes a Service may use: its `backend-label` selector and whether unschedulable
/// nodes are drained. Cluster-mode Services with the same selector share one computed
/// eligible-node set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub(crate) struct NodeSelector {
    /// Sorted by key, then value.
    pub(crate) labels: Box<[(Arc<str>, Arc<str>)]>,
    pub(crate) remove_unscheduled: bool,
}

impl NodeSelector {
    pub(crate) fn new(
        labels: &[(String, String)],
        remove_unscheduled: bool,
        interner: &mut Interner,
    ) -> Self {
        let mut labels: Vec<_> = labels
            .iter()
            .map(|(k, v)| (interner.get(k), interner.get(v)))
            .collect();
        labels.sort();
        labels.dedup();
        NodeSelector {
            labels: labels.into_boxed_slice(),
            remove_unscheduled,
        }
    }
}

/// The fields of a Node the planner reads; nothing else is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeInfo {
    pub(crate) name: Arc<str>,
    /// All labels, sorted by key (backend-label selectors may name any of them).
    labels: Box<[(Arc<str>, Arc<str>)]>,
    /// Carries one of [`EXCLUDE_LABELS`], or is a hybrid-cloud node.
    excluded: bool,
    /// A virtual node ([`VIRTUAL_NODE_LABEL`]).
    pub(crate) virtual_node: bool,
    /// The ECS instance id from `spec.providerID`, or the raw value when it is unusable.
    pub(crate) instance: Result<Arc<str>, Option<Box<str>>>,
    unschedulable: bool,
    drain_taint: bool,
}

/// A node's standing for one [`NodeSelector`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NodeStatus {
    /// Not a backend: exclusion label, control-plane role, virtual node or
    /// backend-label miss.
    Excluded,
    /// Would be a backend but its providerID gives no instance id.
    NoInstance,
    Active(Arc<str>),
    Draining(Arc<str>),
}

impl NodeInfo {
    pub(crate) fn from_node(node: &Node, interner: &mut Interner) -> Option<Self> {
        let name = node.metadata.name.as_deref()?;
        let mut labels: Vec<_> = node
            .metadata
            .labels
            .iter()
            .flatten()
            .map(|(k, v)| (interner.get(k), interner.get(v)))
            .collect();
        labels.sort();
        let excluded = EXCLUDE_LABELS.iter().any(|l| {
            node.metadata
                .labels
                .as_ref()
                .is_some_and(|m| m.contains_key(*l))
        });
        let spec = node.spec.as_ref();
        let provider_id = spec.and_then(|s| s.provider_id.as_deref());
        let excluded =
            excluded || provider_id.is_some_and(|id| id.starts_with(HYBRID_PROVIDER_PREFIX));
        let instance = match provider_id.and_then(parse_provider_id) {
            Some(id) => Ok(interner.get(id)),
            None => Err(provider_id.map(Box::from)),
        };
        let drain_taint = spec
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|ts| ts.iter().any(|t| DRAIN_TAINTS.contains(&t.key.as_str())));
        Some(NodeInfo {
            name: interner.get(name),
            labels: labels.into_boxed_slice(),
            excluded,
            virtual_node: is_virtual_node(node),
            instance,
            unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            drain_taint,
        })
    }

    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &*self.labels[i].1)
    }

    fn label_miss(&self, selector: &NodeSelector) -> bool {
        selector
            .labels
            .iter()
            .any(|(k, v)| self.label(k) != Some(&**v))
    }

    /// A virtual node whose pods back Services that use `selector` (as ENI backends):
    /// its `backend-label`s count, its exclusion labels do not (ACK's order).
    pub(crate) fn virtual_for(&self, selector: &NodeSelector) -> bool {
        self.virtual_node && !self.label_miss(selector)
    }

    /// Whether and how this node backs Services that use `selector`.
    pub(crate) fn status(&self, selector: &NodeSelector) -> NodeStatus {
        let label_miss = self.label_miss(selector);
        if self.excluded || self.virtual_node || label_miss {
            return NodeStatus::Excluded;
        }
        let Ok(instance) = &self.instance else {
            return NodeStatus::NoInstance;
        };
        if self.drain_taint || (self.unschedulable && selector.remove_unscheduled) {
            NodeStatus::Draining(Arc::clone(instance))
        } else {
            NodeStatus::Active(Arc::clone(instance))
        }
    }

    /// The error a Service shows for this node when its providerID is unusable.
    pub(crate) fn instance_error(&self) -> String {
        match &self.instance {
            Ok(_) => String::new(),
            Err(None) => format!(
                "node {} has no spec.providerID, so it is left out: set it to \
                 <region>.<instance-id> (the cloud controller normally does)",
                self.name
            ),
            Err(Some(raw)) => format!(
                "node {} has providerID {raw:?}, which is not [scheme://]<region>.<instance-id>, \
                 so it is left out",
                self.name
            ),
        }
    }
}

/// `[scheme://]<region>.<instance-id>` → the instance id, e.g.
/// `alicloud://cn-hangzhou.i-abc` → `i-abc`.
pub fn parse_provider_id(value: &str) -> Option<&str> {
    let rest = match value.split_once("://") {
        Some((scheme, rest)) if !scheme.is_empty() => rest,
        Some(_) => return None,
        None => value,
    };
    let (region, instance) = rest.split_once('.')?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    (ok(region) && ok(instance)).then_some(instance)
}
