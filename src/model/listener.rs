//! The listeners of an SLB instance, as far as the planner reads them.

/// Listener protocol as the SLB names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ListenerProtocol {
    Tcp,
    Udp,
    Http,
    Https,
}

/// A listener of an SLB instance and its drain settings (TCP/UDP only have them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub port: u16,
    pub protocol: ListenerProtocol,
    pub v_server_group_id: Option<String>,
    /// `None` for HTTP/HTTPS, which have no connection drain setting.
    pub connection_drain: Option<bool>,
    pub connection_drain_timeout: Option<u32>,
    /// The listener's health check, `None` when it is off (the SLB then reports every
    /// backend `unavailable` and sends traffic to every backend with weight > 0).
    pub health_check: Option<HealthCheck>,
}

/// A listener's health-check settings, as `Describe*ListenerAttribute` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthCheck {
    /// `HealthCheckInterval`, seconds between two checks of a backend.
    pub interval_secs: u32,
    /// `HealthyThreshold`: consecutive successes before a backend is `normal`.
    pub healthy_threshold: u32,
    /// `UnhealthyThreshold`: consecutive failures before a backend is `abnormal`.
    pub unhealthy_threshold: u32,
}

impl HealthCheck {
    /// The API's defaults (interval 2 s, thresholds 3), for answers that omit a field.
    pub const DEFAULT: HealthCheck = HealthCheck {
        interval_secs: 2,
        healthy_threshold: 3,
        unhealthy_threshold: 3,
    };
}

/// What the listeners' health checks say of one vServer group's backends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum GroupHealth {
    /// No listener that forwards to the group checks health (or that is not known yet):
    /// a backend at weight > 0 takes traffic.
    #[default]
    Unchecked,
    /// A listener checks health, and no reading of it is known yet.
    Unread,
    /// The backends every checking listener of the group last reported `normal`; any
    /// other backend may get no traffic (a newly added one is `unavailable` at first).
    Normal(std::collections::BTreeSet<super::BackendKey>),
}
