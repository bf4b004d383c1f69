//! The agent's SLB client, recorded: every call the agent issues, when it issued it and
//! when the answer came (the client takes its tokens of the API budget in between, one
//! per HTTP request), in which lane, for which group and backends, and how it ended.
//!
//! mock-slb's own counters say what the SLB saw (throttling included); this log adds what
//! only the agent knows, the lane a call waited in, so "no bulk call while pod-facing work
//! waits" can be checked call by call.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use slb_sync::model::{ObservedGroup, SlbBackend};
use slb_sync::reconcile::{current_lane, Lane};
use slb_sync::slb::budget::Budget;
use slb_sync::slb::{BackendHealth, Listener, SlbApi, SlbError, VServerGroupSummary};

/// One call as the agent issued it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Call {
    /// When the answer came, seconds since the recorder was made: the call went out
    /// after its token of the API budget, so this is when it took effect. The log is in
    /// this order.
    pub at: f64,
    /// When the agent issued the call (before waiting for the budget).
    pub issued: f64,
    pub action: &'static str,
    #[serde(serialize_with = "lane_name")]
    pub lane: Lane,
    /// Group id, instance id, or empty.
    pub target: String,
    /// Written backends: (server id, server ip, weight).
    pub backends: Vec<(String, Option<IpAddr>, u8)>,
    pub ok: bool,
}

fn lane_name<S: serde::Serializer>(lane: &Lane, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(lane.as_str())
}

impl Call {
    pub fn is_write(&self) -> bool {
        matches!(
            self.action,
            "AddVServerGroupBackendServers"
                | "RemoveVServerGroupBackendServers"
                | "SetVServerGroupAttribute"
                | "CreateVServerGroup"
                | "DeleteVServerGroup"
                | "SetListenerDrain"
        )
    }
}

/// Wraps the production client; cheap to clone the log out of.
pub struct Recorder {
    inner: Arc<dyn SlbApi>,
    start: Instant,
    log: Mutex<Vec<Call>>,
    /// Groups read (an answered DescribeVServerGroupAttribute) since the recorder was made.
    read: Mutex<HashSet<String>>,
}

impl Recorder {
    pub fn new(inner: Arc<dyn SlbApi>, start: Instant) -> Self {
        Recorder {
            inner,
            start,
            log: Mutex::new(Vec::new()),
            read: Mutex::new(HashSet::new()),
        }
    }

    /// How many of `groups` the agent has read since the recorder was made.
    pub fn read_of<'a>(&self, groups: impl IntoIterator<Item = &'a String>) -> usize {
        let read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        groups.into_iter().filter(|g| read.contains(*g)).count()
    }

    /// The calls from index `from` on.
    pub fn since(&self, from: usize) -> Vec<Call> {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.get(from..).map(<[Call]>::to_vec).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn record<T>(
        &self,
        issued: f64,
        action: &'static str,
        lane: Lane,
        target: &str,
        backends: &[SlbBackend],
        result: &Result<T, SlbError>,
    ) {
        let mut call = Call {
            at: 0.0,
            issued,
            action,
            lane,
            target: target.to_owned(),
            backends: backends
                .iter()
                .map(|b| (b.server_id.clone(), b.server_ip, b.weight.get()))
                .collect(),
            ok: result.is_ok(),
        };
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        // Read under the lock: the log stays in answer order.
        call.at = self.now();
        log.push(call);
    }

    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}

#[async_trait]
impl SlbApi for Recorder {
    async fn list_vserver_groups(&self, lb: &str) -> Result<Vec<VServerGroupSummary>, SlbError> {
        let (at, lane) = (self.now(), current_lane());
        let r = self.inner.list_vserver_groups(lb).await;
        self.record(at, "DescribeVServerGroups", lane, lb, &[], &r);
        r
    }
    async fn describe_vserver_group(&self, group: &str) -> Result<ObservedGroup, SlbError> {
        let (at, lane) = (self.now(), current_lane());
        let r = self.inner.describe_vserver_group(group).await;
        if r.is_ok() {
            self.read
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(group.to_owned());
        }
        self.record(at, "DescribeVServerGroupAttribute", lane, group, &[], &r);
        r
    }
    async fn create_vserver_group(&self, lb: &str, name: &str) -> Result<String, SlbError> {
        let (at, lane) = (self.now(), current_lane());
        let r = self.inner.create_vserver_group(lb, name).await;
        self.record(at, "CreateVServerGroup", lane, lb, &[], &r);
        r
    }
    async fn delete_vserver_group(&self, group: &str) -> Result<(), SlbError> {
        let (at, lane) = (self.now(), current_lane());
        let r = self.inner.delete_vserver_group(group).await;
        self.record(at, "DeleteVServerGroup", lane, group, &[], &r);
        r
    }
    async fn add_backends(&self, group: &str, backends: &[SlbBackend]) -> Result<(), SlbError> {
        let (at, lane) = (self.now(), current_lane());
        let r = self.inner.add_backends(group, backends).await;
        self.record(
            at,
            "AddVServerGroupBackendServers",
            lane,
            group,
            backends,
            &r,
        );
        r
    }
    async fn remove_backends(&self, group: &str, backends: &[SlbBackend]) -> Result<(), SlbError> {
        let (at, lane) = (self.now(), current_lane());
        let r = self.inner.remove_backends(group, backends).await;
        let action = "RemoveVServerGroupBackendServers";
        self.record(at, action, lane, group, backends, &r);
        r
    }
    async fn set_backends(&self, group: &str, backends: &[SlbBackend]) -> Result<(), SlbError> {
        let (at, lane) = (self.now(), current_lane());
        let r = self.inner.set_backends(group, backends).await;
        self.record(at, "SetVServerGroupAttribute", lane, group, backends, &r);
        r
    }
    async fn describe_health(
        &self,
        lb: &str,
        port: Option<u16>,
    ) -> Result<Vec<BackendHealth>, SlbError> {
        let (at, lane) = (self.now(), current_lane());
        let r = self.inner.describe_health(lb, port).await;
        self.record(at, "DescribeHealthStatus", lane, lb, &[], &r);
        r
    }
    async fn describe_listeners(&self, lb: &str) -> Result<Vec<Listener>, SlbError> {
        let (at, lane) = (self.now(), current_lane());
        let r = self.inner.describe_listeners(lb).await;
        self.record(at, "DescribeListeners", lane, lb, &[], &r);
        r
    }
    async fn describe_listeners_of(
        &self,
        lbs: &[String],
    ) -> Result<HashMap<String, Vec<Listener>>, SlbError> {
        let (at, lane) = (self.now(), current_lane());
        let r = self.inner.describe_listeners_of(lbs).await;
        self.record(at, "DescribeListeners", lane, &lbs.join(","), &[], &r);
        r
    }
    async fn set_listener_drain(
        &self,
        lb: &str,
        listener: &Listener,
        drain: bool,
        timeout_secs: Option<u32>,
    ) -> Result<(), SlbError> {
        let (at, lane) = (self.now(), current_lane());
        let r = self
            .inner
            .set_listener_drain(lb, listener, drain, timeout_secs)
            .await;
        self.record(at, "SetListenerDrain", lane, lb, &[], &r);
        r
    }
    async fn resolve_eni_ids(&self, ips: &[IpAddr]) -> Result<HashMap<IpAddr, String>, SlbError> {
        let (at, lane) = (self.now(), current_lane());
        let r = self.inner.resolve_eni_ids(ips).await;
        self.record(at, "DescribeNetworkInterfaces", lane, "", &[], &r);
        r
    }
    /// The client's budget: the executor must wait on the one the client takes tokens of,
    /// not pace the calls a second time with one of its own.
    fn budget(&self) -> Option<Arc<Budget>> {
        self.inner.budget()
    }
}
