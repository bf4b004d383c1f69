//! ACK's backend weights (`…-weight`, `…-default-weight`): the weight an active backend
//! gets, computed as ACK's cloud controller manager computes it (docs/configuration.md,
//! "ACK compatibility of backend selection"). Draining backends stay at 0 whatever the
//! rule.

use crate::model::{Backend, BackendState, LbSpec, Weight};

/// How a Service's active backends are weighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WeightRule {
    /// Every backend the same (Cluster and ENI; `…-default-weight`, else 100). Local mode
    /// weighs nodes by their pods instead, as ACK does whatever the default.
    Each(u32),
    /// `…-weight` (with `…-vgroup-port`): the group's share, split over its backends:
    /// `max(1, W / n)` each in Cluster and ENI mode, `max(1, W × pods on the node / pods)`
    /// per node in Local mode; all 0 when W is 0.
    Shared(u32),
}

impl WeightRule {
    pub(super) fn of(spec: &LbSpec) -> Self {
        match spec.weight {
            Some(shared) => WeightRule::Shared(shared),
            None => WeightRule::Each(spec.default_weight.unwrap_or(100)),
        }
    }

    /// Weighs the active backends of a Cluster or ENI group.
    pub(super) fn apply_each(self, backends: &mut [Backend]) {
        let active = backends
            .iter()
            .filter(|b| b.state == BackendState::Active)
            .count();
        let each = match self {
            WeightRule::Each(weight) => weight,
            WeightRule::Shared(0) => 0,
            WeightRule::Shared(shared) => (shared / active.max(1) as u32).max(1),
        };
        let each = weight(each);
        for backend in backends
            .iter_mut()
            .filter(|b| b.state == BackendState::Active)
        {
            backend.weight = each;
        }
    }

    /// A Local-mode node's share of `Shared` for `pods` of `total` counted endpoints;
    /// `None` for `Each` (nodes are weighed by their pods).
    pub(super) fn node_share(self, pods: u32, total: u32) -> Option<Weight> {
        match self {
            WeightRule::Each(_) => None,
            WeightRule::Shared(shared) if pods == 0 || shared == 0 => Some(Weight::ZERO),
            WeightRule::Shared(shared) => {
                let share = u64::from(shared) * u64::from(pods) / u64::from(total.max(1));
                Some(weight(share.max(1) as u32))
            }
        }
    }
}

impl WeightRule {
    /// A Local-mode pod on a virtual node (an ENI backend of its own) of `total` counted
    /// pods: 1 (ACK weighs such a pod as one pod), or its share of `Shared`.
    pub(super) fn pod_share(self, total: u32) -> Weight {
        self.node_share(1, total).unwrap_or(weight(1))
    }
}

fn weight(value: u32) -> Weight {
    Weight::new(value.min(100)).unwrap_or(Weight::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(active: usize, draining: usize) -> Vec<Backend> {
        let mk = |n: usize, state| Backend::ecs(format!("i-{n}"), 30080, Weight::MAX, state);
        (0..active)
            .map(|n| mk(n, BackendState::Active))
            .chain((active..active + draining).map(|n| mk(n, BackendState::Draining)))
            .collect()
    }

    fn weights(backends: &[Backend]) -> Vec<u32> {
        backends.iter().map(|b| u32::from(b.weight.get())).collect()
    }

    #[test]
    fn cluster_and_eni_backends_get_the_default_or_their_share_as_ack_computes_them() {
        let spec = |weight, default_weight| LbSpec {
            weight,
            default_weight,
            ..LbSpec::default()
        };
        let weighed = |rule: WeightRule, active, draining| {
            let mut b = backends(active, draining);
            if draining > 0 {
                b[active].weight = Weight::ZERO;
            }
            rule.apply_each(&mut b);
            weights(&b)
        };
        assert_eq!(weighed(WeightRule::of(&spec(None, None)), 2, 0), [100, 100]);
        assert_eq!(
            weighed(WeightRule::of(&spec(None, Some(30))), 2, 1),
            [30, 30, 0]
        );
        assert_eq!(weighed(WeightRule::of(&spec(None, Some(0))), 2, 0), [0, 0]);
        // The shared weight wins over the default: 60 / 4 = 15 each.
        assert_eq!(
            weighed(WeightRule::of(&spec(Some(60), Some(30))), 4, 1),
            [15, 15, 15, 15, 0]
        );
        // Integer division as ACK's, never below 1; 0 takes the group out of traffic.
        assert_eq!(weighed(WeightRule::Shared(10), 3, 0), [3, 3, 3]);
        assert_eq!(weighed(WeightRule::Shared(2), 3, 0), [1, 1, 1]);
        assert_eq!(weighed(WeightRule::Shared(0), 2, 0), [0, 0]);
    }

    #[test]
    fn local_nodes_get_their_pods_share_of_the_shared_weight() {
        let share = |rule: WeightRule, pods, total| {
            rule.node_share(pods, total).map(|w| u32::from(w.get()))
        };
        assert_eq!(share(WeightRule::Each(30), 3, 4), None, "by pods, as ACK");
        assert_eq!(share(WeightRule::Shared(80), 3, 4), Some(60));
        assert_eq!(share(WeightRule::Shared(80), 1, 4), Some(20));
        assert_eq!(
            share(WeightRule::Shared(10), 1, 40),
            Some(1),
            "never below 1"
        );
        assert_eq!(share(WeightRule::Shared(0), 3, 4), Some(0));
        assert_eq!(share(WeightRule::Shared(80), 0, 4), Some(0), "warming up");
    }
}
