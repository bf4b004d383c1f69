//! Every Kubernetes name the agent writes or reads, in one place.
//!
//! Deploy manifests, `doctor`, tests and users' pod specs rely on these exact strings
//! (docs/architecture.md, "Names users rely on"), so they are constants here and nowhere else.

/// Pod finalizer: held on pods that back a managed Service (any mode) so the agent sees
/// every deletion, even across its own restarts, and releases it only after the pod is
/// drained: its backend drained and removed from the SLB, and in Cluster and Local mode
/// the kube-proxy allowance passed (or on fail-open).
pub const POD_FINALIZER: &str = "slb-sync.io/drain";

/// Service finalizer: held on managed Services so deleting one (or it leaving the agent's
/// management) drains and removes every owned backend first.
pub const SERVICE_FINALIZER: &str = "slb-sync.io/cleanup";

/// Pod condition set True once the pod's backend has been drained and removed. Set
/// *before* the pod finalizer is released, so the drain API can answer `drained` from the
/// Pod object alone.
pub const DRAINED_CONDITION: &str = "slb-sync.io/drained";

/// Reason of the drained condition set `False` when the agent released a pod at its
/// fail-open deadline without confirming the drain (the drain API then answers
/// `released`, and `wait-drained` exits 3).
pub const FAIL_OPEN_REASON: &str = "FailOpen";

/// Prefix of the per-Service readiness gate condition type:
/// `registered.slb-sync.io/<service-name>`.
pub const REGISTERED_GATE_PREFIX: &str = "registered.slb-sync.io/";

/// Prefix of ACK's readiness gate condition type, honoured the same way:
/// `service.readiness.alibabacloud.com/<service-name>`.
pub const ACK_READINESS_GATE_PREFIX: &str = "service.readiness.alibabacloud.com/";

/// Pod annotation recording when the agent started draining the pod's backend (RFC 3339),
/// so a restarted agent or a new leader never cuts a drain window short.
pub const DRAIN_STARTED_AT_ANNOTATION: &str = "slb-sync.io/drain-started-at";

/// Default bind address of the agent's HTTP server (`--http-addr`).
pub const DEFAULT_HTTP_ADDR: &str = "0.0.0.0:8080";

/// Flag naming the HTTP bind address.
pub const HTTP_ADDR_FLAG: &str = "--http-addr";

/// Default name of the leader-election Lease (`--lease-name`).
pub const DEFAULT_LEASE_NAME: &str = "slb-sync";

/// Flag naming the leader-election Lease.
pub const LEASE_NAME_FLAG: &str = "--lease-name";

/// Flag naming the Lease's namespace (`--lease-namespace`).
pub const LEASE_NAMESPACE_FLAG: &str = "--lease-namespace";

/// Environment variable the downward API fills with the pod's namespace; the default of
/// `--lease-namespace` and of `wait-drained --namespace`.
pub const POD_NAMESPACE_ENV: &str = "POD_NAMESPACE";

/// Environment variable the downward API fills with the pod's name; the default of
/// `wait-drained --pod`.
pub const POD_NAME_ENV: &str = "POD_NAME";

/// `reportingController` of the agent's Events.
pub const EVENT_CONTROLLER: &str = "slb-sync";

/// Path prefix of the drain API: `GET /v1/drain/<namespace>/<pod>?timeout=<secs>`.
pub const DRAIN_API_PREFIX: &str = "/v1/drain";

/// Readiness gate condition type for a Service, in the agent's own form.
pub fn registered_gate(service: &str) -> String {
    format!("{REGISTERED_GATE_PREFIX}{service}")
}

/// Readiness gate condition type for a Service, in ACK's form.
pub fn ack_readiness_gate(service: &str) -> String {
    format!("{ACK_READINESS_GATE_PREFIX}{service}")
}

/// The Service a readiness gate condition type refers to, if it is one of ours (either
/// form); `None` for any other condition type.
pub fn gated_service(condition_type: &str) -> Option<&str> {
    condition_type
        .strip_prefix(REGISTERED_GATE_PREFIX)
        .or_else(|| condition_type.strip_prefix(ACK_READINESS_GATE_PREFIX))
        .filter(|service| !service.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_names_round_trip_to_the_service() {
        assert_eq!(registered_gate("web"), "registered.slb-sync.io/web");
        assert_eq!(
            ack_readiness_gate("web"),
            "service.readiness.alibabacloud.com/web"
        );
        assert_eq!(gated_service(&registered_gate("web")), Some("web"));
        assert_eq!(gated_service(&ack_readiness_gate("api")), Some("api"));
        assert_eq!(gated_service("registered.slb-sync.io/"), None);
        assert_eq!(gated_service("Ready"), None);
        assert_eq!(gated_service("example.com/web"), None);
    }
}
