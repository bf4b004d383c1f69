//! How the agent names Services and their vServer groups.

/// A Service by namespace and name; shown as `<namespace>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
}

impl ServiceRef {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ServiceRef {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// From `<namespace>/<name>`; `None` without a `/`.
    pub fn parse(key: &str) -> Option<Self> {
        let (namespace, name) = key.split_once('/')?;
        Some(ServiceRef::new(namespace, name))
    }
}

impl std::fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One vServer group of one Service: what triggers name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupRef {
    pub service: ServiceRef,
    pub service_port: u16,
    /// A group the Service's port no longer points at (its `id` or `vgroup-port`
    /// annotation changed): passes over it drain and empty the agent's backends there, so
    /// the move leaks nothing. `None` for the group the port points at now.
    pub retired: Option<RetiredGroup>,
}

impl GroupRef {
    /// The group a Service's port points at now.
    pub fn new(service: ServiceRef, service_port: u16) -> Self {
        Self {
            service,
            service_port,
            retired: None,
        }
    }

    /// The group of `service_port` that was left for `retired`.
    pub fn retired(service: ServiceRef, service_port: u16, retired: RetiredGroup) -> Self {
        Self {
            service,
            service_port,
            retired: Some(retired),
        }
    }
}

/// A vServer group a Service's port left: the load balancer it is on and the group's id
/// (or, before it was ever resolved, its name). Shown as `<lb-id>/<group>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RetiredGroup {
    pub load_balancer_id: String,
    pub group: String,
}

impl RetiredGroup {
    pub fn new(load_balancer_id: impl Into<String>, group: impl Into<String>) -> Self {
        RetiredGroup {
            load_balancer_id: load_balancer_id.into(),
            group: group.into(),
        }
    }
}

impl std::fmt::Display for RetiredGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.load_balancer_id, self.group)
    }
}
