//! What `slb-sync plan` prints: the desired backends of every managed Service.

use serde::Serialize;

use super::ClusterSnapshot;
use crate::desired::{plan_all, PlannerConfig};
use crate::index::ClusterIndex;
use crate::model::DesiredService;

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
