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
}
