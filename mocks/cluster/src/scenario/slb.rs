//! The mock SLB a run starts with: its seed (instances, ENIs, the listener with its
//! drain and health check) and the world's faults (propagation, API faults, outage).

use super::{Policy, Scenario, ScenarioError};
use crate::kubelet::pod_ip;
use crate::sim::{instance_id, node_ip};
use crate::world::{ApiWorld, Ms};

impl Scenario {
    pub(super) fn slb_seed(&self) -> Result<mock_slb::Seed, ScenarioError> {
        let s = &self.sim;
        let ecs: Vec<String> = (1..=s.nodes)
            .map(|i| format!("{{id: {}, ip: {}}}", instance_id(i), node_ip(s.subnet, i)))
            .collect();
        let enis: Vec<String> = (1..=s.nodes)
            .map(|i| {
                let ips: Vec<String> = (2..=254)
                    .map(|n| pod_ip(s.subnet, i, n).to_string())
                    .collect();
                format!("{{id: eni-node{i}, ips: [{}]}}", ips.join(", "))
            })
            .collect();
        let drain = matches!(
            self.policy,
            Policy::SlbSync { .. } | Policy::Sleep { drain: true, .. }
        );
        let health = self.health_check.map_or(String::new(), |h| {
            format!(
                ", health_check: {{interval_ms: {}, timeout_ms: {}, healthy_threshold: {}, \
                 unhealthy_threshold: {}, unchecked_serves: {}}}",
                h.interval_ms,
                h.timeout_ms,
                h.healthy_threshold,
                h.unhealthy_threshold,
                h.unchecked_serves
            )
        });
        let yaml = format!(
            "access_keys: [{{id: labkey, secret: labsecret}}]\necs_instances: [{}]\nenis: [{}]\nload_balancers:\n  - id: lb-lab\n    listeners: [{{port: 80, protocol: tcp, vserver_group_id: rsp-web, connection_drain: {drain}, connection_drain_timeout: {}{health}}}]\n    vserver_groups: [{{id: rsp-web, name: web, backends: []}}]\n",
            ecs.join(", "),
            enis.join(", "),
            self.timings.connection_drain_s,
        );
        let mut seed =
            mock_slb::Seed::parse(&yaml, "lab").map_err(|e| ScenarioError::Slb(e.to_string()))?;
        seed.faults = Some(self.faults(false, false));
        Ok(seed)
    }

    /// The mock SLB's faults: the world's propagation and, with `api`, its API faults,
    /// drawn from the run's seed; `outage`: every call fails as well.
    pub(super) fn faults(&self, api: bool, outage: bool) -> mock_slb::FaultConfig {
        let (propagation_delay_ms, backend_propagation) = self.propagation.mock();
        let none = ApiWorld::default();
        let api = if api { &self.api } else { &none };
        let mut errors = api.errors.clone();
        if outage {
            errors.insert(
                0,
                mock_slb::ErrorFault {
                    action: None,
                    code: "ServiceUnavailable".into(),
                    status: 503,
                    message: Some("The request has failed due to a temporary failure of the server (lab outage).".into()),
                    rate: 1.0,
                },
            );
        }
        mock_slb::FaultConfig {
            errors,
            latency: api
                .latency_ms
                .map(|Ms(min_ms, max_ms)| mock_slb::LatencyFault {
                    action: None,
                    min_ms,
                    max_ms,
                })
                .into_iter()
                .collect(),
            qps_limit: api.qps_limit,
            propagation_delay_ms,
            backend_propagation,
            seed: Some(self.sim.seed),
            ..mock_slb::FaultConfig::default()
        }
    }
}
