//! What `slb-sync plan` prints: the desired backends of every managed Service and, with
//! an SLB snapshot, the steps that would bring the SLB there.

use jiff::Timestamp;
use serde::Serialize;

use super::ClusterSnapshot;
use crate::annotations;
use crate::desired::{plan_all, PlannerConfig};
use crate::index::ClusterIndex;
use crate::model::{DesiredGroup, DesiredService, Mode};
use crate::plan::{plan_offline, GroupPlan, OfflineOptions, SlbState, StateError};

/// `{"services":[…]}`: the planner's output for every managed Service, sorted by
/// `<namespace>/<name>`. Wrapped in an object so fields can be added without breaking
/// readers of the JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanReport {
    pub services: Vec<DesiredService>,
}

/// Feeds a snapshot to a fresh index and plans every managed Service.
pub fn plan(snapshot: &ClusterSnapshot, config: PlannerConfig) -> PlanReport {
    let mut index = ClusterIndex::new(config);
    index.reset_services(&snapshot.services);
    index.reset_endpoint_slices(&snapshot.endpoint_slices);
    index.reset_nodes(&snapshot.nodes);
    index.reset_pods(&snapshot.pods);
    PlanReport {
        services: plan_all(&index),
    }
}

/// The report of `plan --offline --slb-state`: each group also carries the steps that
/// would move the SLB from `state` to the desired backends at `now`.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub services: Vec<ServiceSteps>,
}

/// One Service of a [`StepReport`]: the desired fields, with groups extended by steps.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSteps {
    pub service: String,
    pub load_balancer_id: Option<String>,
    pub mode: Mode,
    pub groups: Vec<GroupSteps>,
    pub errors: Vec<String>,
    /// As in [`DesiredService::unsupported_annotations`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unsupported_annotations: Vec<String>,
}

/// A desired group plus `steps`, `requeueAt` and the planner's `warnings`.
#[derive(Debug, Clone, Serialize)]
pub struct GroupSteps {
    #[serde(flatten)]
    pub desired: DesiredGroup,
    #[serde(flatten)]
    pub plan: GroupPlan,
    pub warnings: Vec<String>,
}

/// Plans a snapshot and the steps against an SLB snapshot. The drain window of each
/// Service comes from its annotations (`connection-drain-timeout` when drain is on),
/// else `default_drain_secs`.
pub fn plan_steps(
    snapshot: &ClusterSnapshot,
    config: PlannerConfig,
    state: &SlbState,
    now: Timestamp,
    default_drain_secs: u32,
    slb_propagation: std::time::Duration,
) -> Result<StepReport, StateError> {
    let desired = plan(snapshot, config).services;
    let specs: Vec<(String, _)> = snapshot
        .services
        .iter()
        .filter_map(|svc| {
            let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
            let name = svc.metadata.name.as_deref()?;
            let spec = annotations::parse(svc.metadata.annotations.as_ref()?).ok()?;
            Some((format!("{ns}/{name}"), spec))
        })
        .collect();
    let options = OfflineOptions {
        slb_propagation,
        ..OfflineOptions::with_specs(
            default_drain_secs,
            specs.iter().map(|(service, spec)| (service.clone(), spec)),
        )
    };
    let plans = plan_offline(&desired, state, now, &options)?;
    let services = desired
        .into_iter()
        .zip(plans)
        .map(|(service, plan)| {
            debug_assert_eq!(service.service, plan.service);
            let groups = service
                .groups
                .into_iter()
                .zip(plan.groups)
                .map(|(desired, matched)| {
                    let mut plan = matched.plan;
                    let warnings = std::mem::take(&mut plan.warnings);
                    GroupSteps {
                        desired,
                        plan,
                        warnings,
                    }
                })
                .collect();
            ServiceSteps {
                service: service.service,
                load_balancer_id: service.load_balancer_id,
                mode: service.mode,
                groups,
                errors: service.errors,
                unsupported_annotations: service.unsupported_annotations,
            }
        })
        .collect();
    Ok(StepReport { services })
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use serde_json::json;

    use super::*;
    use crate::model::{
        Backend, BackendState, DesiredGroup, Mode, OwnerDescription, Protocol, Weight,
    };

    /// The field names, value spellings and explicit nulls of the documented output
    /// (README "Reading plan output") that scripts depend on.
    #[test]
    fn report_json_has_the_documented_shape() {
        let ip: IpAddr = "10.0.32.16".parse().unwrap();
        let report = PlanReport {
            services: vec![
                DesiredService {
                    service: "demo/web-cluster".to_owned(),
                    load_balancer_id: Some("lb-a".to_owned()),
                    mode: Mode::Cluster,
                    groups: vec![DesiredGroup {
                        service_port: 80,
                        protocol: Protocol::Tcp,
                        v_server_group_id: Some("rsp-a".to_owned()),
                        name: OwnerDescription::new(80, "web-cluster", "demo", "kubernetes"),
                        backends: vec![
                            Backend::ecs("i-a", 30080, Weight::MAX, BackendState::Active),
                            Backend::ecs("i-b", 30080, Weight::ZERO, BackendState::Draining),
                        ],
                        keep_weights: false,
                    }],
                    errors: vec![],
                    unsupported_annotations: vec![],
                },
                DesiredService {
                    service: "demo/web-eni".to_owned(),
                    load_balancer_id: Some("lb-b".to_owned()),
                    mode: Mode::Eni,
                    groups: vec![DesiredGroup {
                        service_port: 53,
                        protocol: Protocol::Udp,
                        v_server_group_id: None,
                        name: OwnerDescription::new(53, "web-eni", "demo", "prod"),
                        backends: vec![Backend::eni(
                            ip,
                            8053,
                            Weight::new(7).unwrap(),
                            BackendState::Active,
                        )],
                        keep_weights: false,
                    }],
                    errors: vec![],
                    unsupported_annotations: vec![],
                },
                DesiredService {
                    service: "demo/broken".to_owned(),
                    load_balancer_id: None,
                    mode: Mode::Local,
                    groups: vec![],
                    errors: vec!["annotation … is missing".to_owned()],
                    unsupported_annotations: vec![
                        "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-weight".to_owned(),
                    ],
                },
            ],
        };
        let expected = json!({"services": [
            {"service": "demo/web-cluster", "loadBalancerId": "lb-a", "mode": "Cluster",
             "groups": [{"servicePort": 80, "protocol": "TCP", "vServerGroupId": "rsp-a",
                         "name": "k8s/80/web-cluster/demo/kubernetes",
                         "backends": [
                {"serverId": "i-a", "serverIp": null, "port": 30080, "weight": 100,
                 "type": "ecs", "state": "active"},
                {"serverId": "i-b", "serverIp": null, "port": 30080, "weight": 0,
                 "type": "ecs", "state": "draining"}]}],
             "errors": []},
            {"service": "demo/web-eni", "loadBalancerId": "lb-b", "mode": "ENI",
             "groups": [{"servicePort": 53, "protocol": "UDP", "vServerGroupId": null,
                         "name": "k8s/53/web-eni/demo/prod",
                         "backends": [
                {"serverId": null, "serverIp": "10.0.32.16", "port": 8053, "weight": 7,
                 "type": "eni", "state": "active"}]}],
             "errors": []},
            {"service": "demo/broken", "loadBalancerId": null, "mode": "Local",
             "groups": [], "errors": ["annotation … is missing"],
             "unsupportedAnnotations": [
                 "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-weight"]}
        ]});
        assert_eq!(serde_json::to_value(&report).unwrap(), expected);

        // Field order as documented, so the pretty output reads top-down.
        let text = serde_json::to_string(&report.services[0].groups[0].backends[0]).unwrap();
        assert_eq!(
            text,
            r#"{"serverId":"i-a","serverIp":null,"port":30080,"weight":100,"type":"ecs","state":"active"}"#
        );
        let text = serde_json::to_string(&report.services[2]).unwrap();
        assert_eq!(
            text,
            r#"{"service":"demo/broken","loadBalancerId":null,"mode":"Local","groups":[],"errors":["annotation … is missing"],"unsupportedAnnotations":["service.beta.kubernetes.io/alibaba-cloud-loadbalancer-weight"]}"#
        );
    }
}
