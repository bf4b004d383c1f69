//! Backends, their identity and the desired set of a vServer group.

use std::cmp::Ordering;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// How a Service's backends are chosen (docs/architecture.md, "Mode").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Mode {
    /// Every eligible node at its NodePort (`externalTrafficPolicy: Cluster`).
    Cluster,
    /// Nodes hosting a serving endpoint, weighted by their count (`externalTrafficPolicy: Local`).
    Local,
    /// Each pod IP directly at its target port (`backend-type: eni`).
    #[serde(rename = "ENI")]
    Eni,
}

impl Mode {
    /// Stable label for logs and bounded metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Cluster => "Cluster",
            Mode::Local => "Local",
            Mode::Eni => "ENI",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The SLB's backend `Type`: an ECS instance or an elastic network interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendType {
    Ecs,
    Eni,
}

impl BackendType {
    /// The value the SLB API uses in `BackendServers[].Type`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendType::Ecs => "ecs",
            BackendType::Eni => "eni",
        }
    }
}

impl fmt::Display for BackendType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Listener protocol of a Service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// Parses a Kubernetes `ServicePort.protocol` (absent means TCP).
    pub fn from_k8s(value: Option<&str>) -> Option<Protocol> {
        match value.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

/// Whether a backend should take new connections or is on its way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendState {
    /// Takes traffic at its weight.
    Active,
    /// Kept at weight 0 until its drain window has passed, then removed.
    Draining,
}

/// SLB backend weight, 0–100. Weight 0 takes no new connections; established ones continue.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(try_from = "u32", into = "u32")]
pub struct Weight(u8);

impl Weight {
    pub const ZERO: Weight = Weight(0);
    pub const MAX: Weight = Weight(100);

    /// Returns `None` above 100, the SLB's limit.
    pub fn new(value: u32) -> Option<Weight> {
        (value <= 100).then_some(Weight(value as u8))
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u32> for Weight {
    type Error = String;
    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Weight::new(value).ok_or_else(|| format!("weight {value} is outside 0-100"))
    }
}

impl From<Weight> for u32 {
    fn from(w: Weight) -> u32 {
        u32::from(w.0)
    }
}

impl fmt::Display for Weight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The identity of a backend inside one vServer group (docs/architecture.md, "Identity"):
/// ECS backends by (serverId, port), ENI backends by (serverIp, port). The ENI id is
/// resolved late by the SLB layer, so it is not part of an ENI backend's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BackendKey {
    Ecs { server_id: String, port: u16 },
    Eni { server_ip: IpAddr, port: u16 },
}

impl BackendKey {
    pub fn backend_type(&self) -> BackendType {
        match self {
            BackendKey::Ecs { .. } => BackendType::Ecs,
            BackendKey::Eni { .. } => BackendType::Eni,
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            BackendKey::Ecs { port, .. } | BackendKey::Eni { port, .. } => *port,
        }
    }
}

impl fmt::Display for BackendKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendKey::Ecs { server_id, port } => write!(f, "ecs/{server_id}:{port}"),
            BackendKey::Eni {
                server_ip: IpAddr::V6(ip),
                port,
            } => write!(f, "eni/[{ip}]:{port}"),
            BackendKey::Eni { server_ip, port } => write!(f, "eni/{server_ip}:{port}"),
        }
    }
}

/// The documented output order (docs/architecture.md, "Order"): (type, serverId, serverIp, port),
/// comparing ids and IPs as the text the JSON shows, absent before present.
impl Ord for BackendKey {
    fn cmp(&self, other: &Self) -> Ordering {
        fn parts(k: &BackendKey) -> (BackendType, Option<&str>, Option<String>, u16) {
            match k {
                BackendKey::Ecs { server_id, port } => {
                    (BackendType::Ecs, Some(server_id.as_str()), None, *port)
                }
                BackendKey::Eni { server_ip, port } => {
                    (BackendType::Eni, None, Some(server_ip.to_string()), *port)
                }
            }
        }
        parts(self).cmp(&parts(other))
    }
}

impl PartialOrd for BackendKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One backend as the agent wants it in a vServer group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    /// ECS instance id, or the ENI id once resolved (`None` for ENI until then).
    pub server_id: Option<String>,
    /// Pod IP for ENI backends; `None` for ECS.
    pub server_ip: Option<IpAddr>,
    pub port: u16,
    pub weight: Weight,
    #[serde(rename = "type")]
    pub backend_type: BackendType,
    pub state: BackendState,
}

impl Backend {
    /// An ECS (node) backend.
    pub fn ecs(
        server_id: impl Into<String>,
        port: u16,
        weight: Weight,
        state: BackendState,
    ) -> Self {
        Backend {
            server_id: Some(server_id.into()),
            server_ip: None,
            port,
            weight,
            backend_type: BackendType::Ecs,
            state,
        }
    }

    /// An ENI (pod IP) backend whose ENI id is not yet known.
    pub fn eni(server_ip: IpAddr, port: u16, weight: Weight, state: BackendState) -> Self {
        Backend {
            server_id: None,
            server_ip: Some(server_ip),
            port,
            weight,
            backend_type: BackendType::Eni,
            state,
        }
    }

    /// The identity used to match this backend against what the SLB holds.
    ///
    /// # Panics
    /// Never for backends built with [`Backend::ecs`] / [`Backend::eni`]; a hand-built
    /// ECS backend without a server id or ENI backend without an IP is a programming error.
    pub fn key(&self) -> BackendKey {
        match self.backend_type {
            BackendType::Ecs => BackendKey::Ecs {
                server_id: self.server_id.clone().expect("ECS backend has a server id"),
                port: self.port,
            },
            BackendType::Eni => BackendKey::Eni {
                server_ip: self.server_ip.expect("ENI backend has a server IP"),
                port: self.port,
            },
        }
    }
}

/// The Description the agent writes on every backend it owns, and the name of the vServer
/// groups it creates: `k8s/<servicePort>/<service>/<namespace>/<cluster-id>` (ACK's convention).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OwnerDescription(String);

impl OwnerDescription {
    pub fn new(service_port: u16, service: &str, namespace: &str, cluster_id: &str) -> Self {
        OwnerDescription(format!(
            "k8s/{service_port}/{service}/{namespace}/{cluster_id}"
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Longest Description the SLB accepts.
    pub const MAX_LEN: usize = 80;

    /// Why the SLB would refuse this as a backend Description (1–80 characters of
    /// `[A-Za-z0-9-/._]`), or `None` when it is acceptable.
    pub fn slb_problem(&self) -> Option<String> {
        if self.0.len() > Self::MAX_LEN {
            return Some(format!(
                "{} characters, more than the SLB's {}",
                self.0.len(),
                Self::MAX_LEN
            ));
        }
        self.0
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '/' | '.' | '_')))
            .map(|c| format!("character {c:?} is not one of A-Z a-z 0-9 - / . _"))
    }

    /// The service port of `description` when it is the owner Description of some port
    /// of `namespace/service` in `cluster_id` (how backends the agent wrote are found on
    /// an SLB without knowing which ports the Service had).
    pub fn port_of(
        description: &str,
        service: &str,
        namespace: &str,
        cluster_id: &str,
    ) -> Option<u16> {
        let rest = description.strip_prefix("k8s/")?;
        let (port, tail) = rest.split_once('/')?;
        let port: u16 = port.parse().ok()?;
        (tail == format!("{service}/{namespace}/{cluster_id}")
            && description == Self::new(port, service, namespace, cluster_id).0)
            .then_some(port)
    }

    /// True when `description` is exactly this owner's: other clusters' and users'
    /// backends are foreign and never touched.
    pub fn owns(&self, description: &str) -> bool {
        self.0 == description
    }
}

#[cfg(test)]
mod owner_tests {
    use super::OwnerDescription;

    #[test]
    fn the_port_is_read_back_only_from_the_services_own_descriptions() {
        let port = |d: &str| OwnerDescription::port_of(d, "web", "shop", "c1");
        assert_eq!(port("k8s/443/web/shop/c1"), Some(443));
        assert_eq!(port("k8s/443/web/shop/c2"), None, "another cluster");
        assert_eq!(port("k8s/443/web2/shop/c1"), None);
        assert_eq!(
            port("k8s/0443/web/shop/c1"),
            None,
            "not as the agent writes it"
        );
        assert_eq!(port("k8s/x/web/shop/c1"), None);
        assert_eq!(port("my backend"), None);
    }
}

impl fmt::Display for OwnerDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The desired backends of one vServer group (one Service port).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredGroup {
    pub service_port: u16,
    pub protocol: Protocol,
    /// Group id named by the `vgroup-port` annotation; `None` means found or created by `name`.
    pub v_server_group_id: Option<String>,
    /// The owner Description, also the group's name when the agent creates it.
    pub name: OwnerDescription,
    /// Sorted by [`BackendKey`] order, one entry per key.
    pub backends: Vec<Backend>,
    /// `…-ignore-weight-update: on`: a member already taking traffic keeps its weight on
    /// the SLB; only backends joining, leaving or rising from 0 get the desired one.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub keep_weights: bool,
}

/// Everything the planner decided for one managed Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredService {
    /// `<namespace>/<name>`.
    pub service: String,
    pub load_balancer_id: Option<String>,
    pub mode: Mode,
    /// Sorted by service port. Empty when the Service has an annotation error.
    pub groups: Vec<DesiredGroup>,
    /// Problems found for this Service; they never stop other Services.
    pub errors: Vec<String>,
    /// ACK annotations the Service sets that slb-sync does not read (ACK's weights, the
    /// instance's and listeners' settings): they change nothing here. Left out of the
    /// JSON when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unsupported_annotations: Vec<String>,
}
