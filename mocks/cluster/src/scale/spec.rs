//! The generated cluster: a pure, deterministic function of a [`Spec`], so the process
//! that serves mock-kube, the one that serves mock-slb and the driver all derive the same
//! names, IPs and placements without passing the objects around.
//!
//! Services are numbered Cluster first, then Local, then ENI. Service `s` is `svc-<s>`
//! in namespace `team-<s % namespaces>`, on SLB instance `lb-<s / packing>` with its own
//! vServer group `rsp-<s>` named by the `vgroup-port` annotation (as ACK's CCM creates
//! them). Its pods are `svc-<s>-<p>`; the first `pods` exist, the next `spare` are the
//! names and IPs the driver creates later (their IPs are already on their node's ENI, as
//! Terway's pool would have them). Node `n` is ECS `i-<n>` with ENI `eni-<n>`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A Service's backend mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mode {
    Cluster,
    Local,
    Eni,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Cluster => "Cluster",
            Mode::Local => "Local",
            Mode::Eni => "ENI",
        }
    }
}

/// Services of one mode and pods each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    pub services: usize,
    pub pods: usize,
}

/// Everything the generated cluster and SLB follow from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    pub nodes: usize,
    /// Node pools (labelled `pool=pool-<k>`, node `n` in pool `n % pools`). Cluster-mode
    /// Services select one with `backend-label` when `pools > 1`.
    pub pools: usize,
    pub namespaces: usize,
    pub cluster: Tier,
    pub local: Tier,
    pub eni: Tier,
    /// Pod names (and ENI IPs) per Service reserved for pods created during a run.
    pub spare: usize,
    /// Services per SLB instance (1: one instance each).
    pub packing: usize,
    /// `terminationGracePeriodSeconds` of every pod.
    pub grace_secs: i64,
    /// ENI Services carry `connection-drain: on` with this timeout, and their instance a
    /// TCP listener with the same drain settings; `None`: no annotation, no listener (the
    /// agent's `--default-drain-seconds` applies).
    pub eni_drain_secs: Option<u32>,
    /// `--cluster-id` of the agent (part of every owner Description).
    pub cluster_id: String,
    /// Share of groups whose SLB state differs from the desired state at start.
    pub drift: f64,
}

pub const CLASS: &str = "slb-sync.io/slb";
pub const ANN: &str = "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-";
pub const FINALIZER: &str = "slb-sync.io/drain";
/// Port of every Service and of its pods' container.
pub const SERVICE_PORT: u16 = 80;
pub const TARGET_PORT: u16 = 8080;

impl Spec {
    pub fn services(&self) -> usize {
        self.cluster.services + self.local.services + self.eni.services
    }

    pub fn mode(&self, s: usize) -> Mode {
        if s < self.cluster.services {
            Mode::Cluster
        } else if s < self.cluster.services + self.local.services {
            Mode::Local
        } else {
            Mode::Eni
        }
    }

    pub fn tier(&self, s: usize) -> Tier {
        match self.mode(s) {
            Mode::Cluster => self.cluster,
            Mode::Local => self.local,
            Mode::Eni => self.eni,
        }
    }

    pub fn pods_of(&self, s: usize) -> usize {
        self.tier(s).pods
    }

    pub fn namespace(&self, s: usize) -> String {
        format!("team-{}", s % self.namespaces.max(1))
    }

    pub fn service(&self, s: usize) -> String {
        format!("svc-{s:05}")
    }

    /// `<namespace>/<name>`.
    pub fn service_key(&self, s: usize) -> String {
        format!("{}/{}", self.namespace(s), self.service(s))
    }

    pub fn lb(&self, s: usize) -> String {
        format!("lb-{:05}", s / self.packing.max(1))
    }

    pub fn group(&self, s: usize) -> String {
        format!("rsp-{s:05}")
    }

    /// The owner Description the agent writes on its backends of Service `s`.
    pub fn owner(&self, s: usize) -> String {
        format!(
            "k8s/{SERVICE_PORT}/{}/{}/{}",
            self.service(s),
            self.namespace(s),
            self.cluster_id
        )
    }

    /// NodePort (Cluster, Local). Real clusters cannot give 10,000 Services distinct ports
    /// from 30000–32767; the agent keys backends per group, so reuse does not matter here.
    pub fn node_port(&self, s: usize) -> u16 {
        30000 + (s % 2768) as u16
    }

    pub fn node(&self, n: usize) -> String {
        format!("node-{n:05}")
    }

    pub fn ecs(&self, n: usize) -> String {
        format!("i-{n:05}")
    }

    pub fn eni_id(&self, n: usize) -> String {
        format!("eni-{n:05}")
    }

    pub fn pool_of_node(&self, n: usize) -> usize {
        n % self.pools.max(1)
    }

    /// The pool a Cluster-mode Service selects (`None`: every node).
    pub fn pool_of_service(&self, s: usize) -> Option<usize> {
        (self.pools > 1 && self.mode(s) == Mode::Cluster).then(|| s % self.pools)
    }

    /// Nodes a Cluster-mode Service's group holds, in order.
    pub fn cluster_nodes(&self, s: usize) -> Vec<usize> {
        match self.pool_of_service(s) {
            Some(pool) => (pool..self.nodes).step_by(self.pools).collect(),
            None => (0..self.nodes).collect(),
        }
    }

    /// Pods slots of all Services before `s` (existing and spare): the base of `s`'s IPs.
    fn slot_base(&self, s: usize) -> usize {
        let per = |t: Tier| t.pods + self.spare;
        let c = s.min(self.cluster.services);
        let l = s
            .saturating_sub(self.cluster.services)
            .min(self.local.services);
        let e = s.saturating_sub(self.cluster.services + self.local.services);
        c * per(self.cluster) + l * per(self.local) + e * per(self.eni)
    }

    pub fn pod(&self, s: usize, p: usize) -> String {
        format!("{}-{p:03}", self.service(s))
    }

    /// Pod IP, unique over the cluster (spare slots included): 10.64.0.0/10.
    pub fn pod_ip(&self, s: usize, p: usize) -> String {
        let n = self.slot_base(s) + p;
        format!("10.{}.{}.{}", 64 + n / 65536, (n / 256) % 256, n % 256)
    }

    /// The node pod `p` of Service `s` runs on: spread by a hash, inside the Service's
    /// pool for Cluster mode (so a node pool upgrade touches the Services on it).
    pub fn pod_node(&self, s: usize, p: usize) -> usize {
        let h = mix((self.slot_base(s) + p) as u64) as usize;
        match self.pool_of_service(s) {
            Some(pool) => {
                let in_pool = self.nodes.div_ceil(self.pools);
                let k = h % in_pool;
                (pool + k * self.pools).min(self.nodes - 1)
            }
            None => h % self.nodes.max(1),
        }
    }

    /// Whether group `s` starts drifted, and how (cycling through the three kinds).
    pub fn drift_of(&self, s: usize) -> Option<Drift> {
        if self.drift <= 0.0 {
            return None;
        }
        let every = (1.0 / self.drift).round().max(1.0) as usize;
        if s % every != every / 2 {
            return None;
        }
        Some(match (s / every) % 3 {
            0 => Drift::Missing,
            1 => Drift::Weight,
            _ => Drift::Stale,
        })
    }
}

/// How a drifted group differs from the desired state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Drift {
    /// One desired backend is absent (one Add repairs it).
    Missing,
    /// One backend has another weight (one SetVServerGroupAttribute).
    Weight,
    /// One owned backend that is not desired (weight 0, a drain window, then removal).
    Stale,
}

impl Drift {
    /// SLB writes the least repair of this drift takes.
    pub fn writes(self) -> u64 {
        match self {
            Drift::Missing | Drift::Weight => 1,
            Drift::Stale => 2,
        }
    }
}

/// splitmix64: the same placements in every process and run.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// One desired backend of a group as the SLB seed writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedBackend {
    pub server_id: String,
    pub server_ip: Option<String>,
    pub port: u16,
    pub weight: u8,
    pub eni: bool,
}

/// The desired backends of Service `s` with every existing pod ready.
pub fn desired_backends(spec: &Spec, s: usize) -> Vec<SeedBackend> {
    match spec.mode(s) {
        Mode::Cluster => spec
            .cluster_nodes(s)
            .into_iter()
            .map(|n| SeedBackend {
                server_id: spec.ecs(n),
                server_ip: None,
                port: spec.node_port(s),
                weight: 100,
                eni: false,
            })
            .collect(),
        Mode::Local => {
            let mut per_node: BTreeMap<usize, u32> = BTreeMap::new();
            for p in 0..spec.pods_of(s) {
                *per_node.entry(spec.pod_node(s, p)).or_default() += 1;
            }
            let largest = per_node.values().copied().max().unwrap_or(1);
            per_node
                .into_iter()
                .map(|(n, count)| SeedBackend {
                    server_id: spec.ecs(n),
                    server_ip: None,
                    port: spec.node_port(s),
                    weight: local_weight(count, largest),
                    eni: false,
                })
                .collect()
        }
        Mode::Eni => (0..spec.pods_of(s))
            .map(|p| SeedBackend {
                server_id: spec.eni_id(spec.pod_node(s, p)),
                server_ip: Some(spec.pod_ip(s, p)),
                port: TARGET_PORT,
                weight: 100,
                eni: true,
            })
            .collect(),
    }
}

/// The planner's Local weight: the count, scaled to at most 100 when the largest exceeds it.
pub fn local_weight(count: u32, largest: u32) -> u8 {
    if largest <= 100 {
        return count.min(100) as u8;
    }
    let scaled = (f64::from(count) * 100.0 / f64::from(largest)).round();
    scaled.clamp(1.0, 100.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn small() -> Spec {
        Spec {
            nodes: 10,
            pools: 2,
            namespaces: 3,
            cluster: Tier {
                services: 2,
                pods: 2,
            },
            local: Tier {
                services: 3,
                pods: 4,
            },
            eni: Tier {
                services: 2,
                pods: 5,
            },
            spare: 2,
            packing: 1,
            grace_secs: 30,
            eni_drain_secs: None,
            cluster_id: "scale".into(),
            drift: 0.0,
        }
    }

    #[test]
    fn modes_follow_the_tiers_in_order() {
        let spec = small();
        let modes: Vec<Mode> = (0..spec.services()).map(|s| spec.mode(s)).collect();
        use Mode::*;
        assert_eq!(modes, [Cluster, Cluster, Local, Local, Local, Eni, Eni]);
    }

    #[test]
    fn pod_ips_are_unique_spares_included() {
        let spec = small();
        let mut ips = std::collections::HashSet::new();
        for s in 0..spec.services() {
            for p in 0..spec.pods_of(s) + spec.spare {
                assert!(ips.insert(spec.pod_ip(s, p)), "{s}/{p}");
            }
        }
        assert_eq!(ips.len(), 2 * 4 + 3 * 6 + 2 * 7);
    }

    #[test]
    fn cluster_services_stay_in_their_pool() {
        let spec = small();
        for s in 0..spec.cluster.services {
            let pool = spec.pool_of_service(s).unwrap();
            assert_eq!(spec.cluster_nodes(s).len(), 5);
            for p in 0..spec.pods_of(s) + spec.spare {
                assert_eq!(spec.pool_of_node(spec.pod_node(s, p)), pool);
            }
        }
        assert_eq!(spec.pool_of_service(spec.cluster.services), None);
    }

    #[test]
    fn desired_backends_per_mode() {
        let spec = small();
        assert_eq!(desired_backends(&spec, 0).len(), 5);
        let local = desired_backends(&spec, 2);
        assert_eq!(local.iter().map(|b| u32::from(b.weight)).sum::<u32>(), 4);
        let eni = desired_backends(&spec, 5);
        assert_eq!(eni.len(), 5);
        assert!(eni.iter().all(|b| b.eni && b.port == TARGET_PORT));
    }

    #[test]
    fn local_weights_scale_like_the_planner() {
        assert_eq!(local_weight(3, 5), 3);
        assert_eq!(local_weight(1, 300), 1);
        assert_eq!(local_weight(150, 300), 50);
        assert_eq!(local_weight(300, 300), 100);
    }

    #[test]
    fn drift_hits_the_share_asked_for() {
        let spec = Spec {
            drift: 0.05,
            cluster: Tier {
                services: 1000,
                pods: 1,
            },
            ..small()
        };
        let drifted: Vec<Drift> = (0..spec.services())
            .filter_map(|s| spec.drift_of(s))
            .collect();
        assert_eq!(drifted.len(), 50);
        assert!(drifted.contains(&Drift::Missing) && drifted.contains(&Drift::Stale));
    }
}
