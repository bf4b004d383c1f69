//! The periodic resync within the API budget: every group is read again once per
//! `--resync-seconds`, in the bulk lane, spread evenly over the interval rather than
//! queued at once, skipping groups a change passed over recently; a cycle that the
//! budget cannot finish within the interval stretches (the next waits for it) and says
//! so, instead of piling up. The first cycle after gaining the lease is the cold start:
//! its groups are fixed then, each is done once read in any lane or gone, and how many
//! are left is a metric.

use std::collections::HashSet;
use std::time::Duration;

use super::control::Control;
use crate::desired::plan_service;
use crate::index::ServiceRef;
use crate::reconcile::{GroupRef, Lane};

impl Control {
    /// Every Service is looked at again and every group passed over, so drift made
    /// outside the agent is repaired and missed events are made up for.
    pub(super) fn resync(&mut self) {
        if !self.active() {
            return;
        }
        if self.resync_behind() {
            return;
        }
        self.collect_resync();
        self.spread_resync();
    }

    /// Looks at every Service again, collecting a resync trigger for each of its groups
    /// (spread by [`Control::spread_resync`]); forgets Services that are gone.
    pub(super) fn collect_resync(&mut self) {
        self.state.listeners.clear();
        self.state.bulk.clear();
        let mut seen: HashSet<ServiceRef> = HashSet::new();
        for svc in self.services.state() {
            let Some(name) = svc.metadata.name.clone() else {
                continue;
            };
            let r = ServiceRef::new(svc.metadata.namespace.as_deref().unwrap_or("default"), name);
            self.sync_service(&r, Lane::Bulk);
            seen.insert(r);
        }
        // Managed Services the store has not (yet) got still get their passes (planned
        // here alone: the others were planned by `sync_service`).
        let missing: Vec<ServiceRef> = {
            let index = self.index.read().unwrap_or_else(|e| e.into_inner());
            index
                .all_services()
                .map(|(ns, name, _)| ServiceRef::new(ns, name))
                .filter(|r| !seen.contains(r))
                .collect()
        };
        for r in missing {
            let desired = plan_service(&self.index.read().unwrap_or_else(|e| e.into_inner()), &r);
            let Some(ds) = desired else { continue };
            let ports: Vec<u16> = ds.groups.iter().map(|g| g.service_port).collect();
            self.plan_ports(&r, ds);
            for port in ports {
                self.trigger(&r, port, Lane::Bulk);
            }
        }
        let gone: Vec<ServiceRef> = self
            .state
            .cleaning
            .keys()
            .filter(|r| !seen.contains(r))
            .cloned()
            .collect();
        for r in gone {
            self.forget(&r);
        }
    }

    /// True (and said once, with the metric) while the previous cycle still has groups
    /// queued: the next cycle waits rather than queueing every group again.
    pub(super) fn resync_behind(&mut self) -> bool {
        let queued = self
            .state
            .scheduler
            .as_ref()
            .map_or(0, |(handle, _)| handle.stats().queued(Lane::Bulk));
        let behind = queued > 0;
        if behind && self.metrics.resync_behind.get() == 0 {
            tracing::warn!(
                queued,
                interval_secs = self.resync_interval.as_secs(),
                "the resync cannot read every group within its interval on the API budget; \
                 the cycle is stretched (raise --qps if the account's quota allows, or \
                 --resync-seconds)"
            );
        }
        self.metrics.resync_behind.set(i64::from(behind));
        behind
    }

    /// Hands the collected resync triggers to the scheduler, one bulk pass started per
    /// `interval / groups`.
    pub(super) fn spread_resync(&mut self) {
        let groups = std::mem::take(&mut self.state.bulk);
        let Some((handle, _)) = &self.state.scheduler else {
            return;
        };
        let count = u32::try_from(groups.len().max(1)).unwrap_or(u32::MAX);
        // Leave a tenth of the interval so the cycle ends before the next tick. The cold
        // start is not spread: after a restart or failover nothing is verified yet, so
        // its reads take whatever budget the pod and change lanes leave (the limiter
        // serves those first).
        let spacing = if self.state.cold_start {
            Duration::ZERO
        } else {
            (self.resync_interval.mul_f64(0.9) / count).min(Duration::from_secs(5))
        };
        handle.space_bulk(spacing);
        for group in groups {
            handle.trigger_in(group, Lane::Bulk);
        }
    }

    /// Starts the cold start on gaining the lease, with the groups of its first resync
    /// (collected, not yet spread) that exist. Set once: later resync ticks do not touch
    /// it, whether or not it has ended.
    pub(super) fn begin_cold_start(&mut self) {
        let source = self.source.clone();
        self.state.cycle = self
            .state
            .bulk
            .iter()
            .filter(|group| source.target(group).is_some())
            .cloned()
            .collect();
        self.state.cold_start = true;
        self.cold_start_progress();
    }

    /// Notes that `group` was read, in whatever lane, for the cold start's progress.
    pub(super) fn cycle_passed(&mut self, group: &GroupRef) {
        if self.state.cold_start && self.state.cycle.remove(group) {
            self.cold_start_progress();
        }
    }

    /// Groups of `service` that no longer exist (the Service is gone or no longer
    /// managed, its port was removed, it has no instance) leave the cold start: no pass
    /// will read them.
    pub(super) fn cycle_pruned(&mut self, service: &ServiceRef) {
        if !self.state.cold_start {
            return;
        }
        let gone: Vec<GroupRef> = self
            .state
            .cycle
            .range(GroupRef::new(service.clone(), 0)..)
            .take_while(|group| &group.service == service)
            .filter(|group| self.source.target(group).is_none())
            .cloned()
            .collect();
        if gone.is_empty() {
            return;
        }
        for group in &gone {
            self.state.cycle.remove(group);
        }
        self.cold_start_progress();
    }

    /// The gauge, and the end of the cold start once every group is done.
    fn cold_start_progress(&mut self) {
        self.metrics
            .cold_start_groups
            .set(self.state.cycle.len() as i64);
        if self.state.cold_start && self.state.cycle.is_empty() {
            self.state.cold_start = false;
            tracing::info!("cold start done: every group read since gaining the lease");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex, RwLock};
    use std::time::Duration;

    use k8s_openapi::api::core::v1::Service;
    use kube::runtime::{reflector, watcher};
    use tokio::sync::{mpsc, watch};

    use super::super::control::{Control, LoopState};
    use super::super::drain_timer::DrainTimer;
    use super::super::messages::{Kind, Msg};
    use super::super::metrics::AgentMetrics;
    use super::super::pods::{NoPods, SharedPodSide};
    use super::super::target::{AgentObserver, IndexTargets};
    use super::Lane;
    use crate::desired::PlannerConfig;
    use crate::http::ReadyFlag;
    use crate::index::fixtures::{mk_node, mk_service};
    use crate::index::ClusterIndex;
    use crate::k8s::events::Events;
    use crate::reconcile::memory::MemorySlb;
    use crate::reconcile::{
        ApiLimits, Clock, Executor, ExecutorConfig, SchedulerConfig, TokioClock,
    };
    use crate::slb::SlbApi;

    const RESYNC: Duration = Duration::from_secs(10);

    /// A kube client that reaches no API server: the loop under test has nothing to
    /// write (its Services carry the finalizer already).
    fn offline_client() -> kube::Client {
        let service = tower::service_fn(|_: http::Request<kube::client::Body>| async {
            Err::<http::Response<String>, std::io::Error>(std::io::Error::other(
                "no API server in this test",
            ))
        });
        kube::Client::new(service, "default")
    }

    /// Log lines of the loop, as text.
    #[derive(Clone, Default)]
    struct Logs(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Logs {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Logs {
        /// Captures this thread's log lines until the guard is dropped.
        fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
            let logs = Logs::default();
            let writer = logs.clone();
            let guard = tracing::subscriber::set_default(
                tracing_subscriber::fmt()
                    .with_max_level(tracing::Level::INFO)
                    .with_writer(move || writer.clone())
                    .with_ansi(false)
                    .finish(),
            );
            (logs, guard)
        }

        fn count(&self, line: &str) -> usize {
            String::from_utf8_lossy(&self.0.lock().unwrap())
                .matches(line)
                .count()
        }
    }

    /// A control loop under test, and what a watcher would feed it.
    struct Rig {
        metrics: AgentMetrics,
        leader: watch::Sender<bool>,
        stop: tokio::sync::oneshot::Sender<()>,
        index: Arc<RwLock<ClusterIndex>>,
        store: reflector::store::Writer<Service>,
        tx: mpsc::UnboundedSender<Msg>,
    }

    impl Rig {
        /// Service `default/<name>` is deleted (it had no finalizer left), as its
        /// watcher reports it.
        fn delete_service(&mut self, name: &str) {
            let svc = mk_service(name);
            let affected = self.index.write().unwrap().delete_service(&svc);
            self.store.apply_watcher_event(&watcher::Event::Delete(svc));
            self.tx.send(Msg::Affected(affected, Lane::Change)).unwrap();
        }

        /// The cold-start gauge every half second for `secs`.
        async fn gauge_for(&self, secs: u64) -> Vec<i64> {
            let mut gauge = Vec::new();
            for _ in 0..2 * secs {
                tokio::time::sleep(Duration::from_millis(500)).await;
                gauge.push(self.metrics.cold_start_groups.get());
            }
            gauge
        }
    }

    /// The control loop over `services` managed Services `web-<i>` (one group each, on
    /// an SLB that answers at once) with an API budget of `qps` calls per second and no
    /// burst, resync every [`RESYNC`], its caches synced; not yet leading.
    fn control_loop(services: usize, qps: f64) -> Rig {
        control_loop_with(services, qps, RESYNC)
    }

    /// [`control_loop`] with a resync every `resync`.
    fn control_loop_with(services: usize, qps: f64, resync: Duration) -> Rig {
        let planner = PlannerConfig::default();
        let registry = prometheus::Registry::new();
        let metrics = AgentMetrics::register(&registry).unwrap();
        let mut index = ClusterIndex::new(planner.clone());
        index.apply_node(&mk_node("node-1", "i-1"));
        let (store, mut writer) = reflector::store::<Service>();
        for i in 0..services {
            let mut svc = mk_service(&format!("web-{i}"));
            svc.metadata.finalizers = Some(vec![crate::k8s::names::SERVICE_FINALIZER.into()]);
            index.apply_service(&svc);
            writer.apply_watcher_event(&watcher::Event::Apply(svc));
        }
        let index = Arc::new(RwLock::new(index));
        let index_for_rig = index.clone();
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::new());
        let api: Arc<dyn SlbApi> = Arc::new(MemorySlb::default());
        let executor = Arc::new(Executor::new(
            api,
            clock.clone(),
            ExecutorConfig {
                limits: ApiLimits {
                    qps,
                    burst: std::num::NonZeroU32::new(1).unwrap(),
                    ..ApiLimits::default()
                },
                ..ExecutorConfig::default()
            },
        ));
        let (tx, rx) = mpsc::unbounded_channel();
        let pods: SharedPodSide = Arc::new(NoPods);
        let state = LoopState::default();
        let client = offline_client();
        let control = Control {
            planner,
            default_drain_secs: 30,
            client: client.clone(),
            events: Events::new(client, None),
            index: index.clone(),
            services: store,
            executor,
            source: Arc::new(IndexTargets {
                index,
                emptying: state.groups.emptying.clone(),
                default_drain_secs: 30,
            }),
            observer: Arc::new(AgentObserver {
                pods: pods.clone(),
                metrics: metrics.clone(),
                timer: Arc::new(DrainTimer::new(clock, metrics.clone())),
                tx: tx.clone(),
                slb_propagation: Duration::ZERO,
            }),
            pods,
            metrics: metrics.clone(),
            reconciling: Arc::new(watch::channel(false).0),
            ready: ReadyFlag::new(),
            scheduler_config: SchedulerConfig {
                // As the agent sets it.
                bulk_fresh: resync / 2,
                ..SchedulerConfig::default()
            },
            drift_check: Duration::from_secs(3600),
            resync_interval: resync,
            tx: tx.clone(),
            state,
        };
        for kind in [
            Kind::Services,
            Kind::EndpointSlices,
            Kind::Nodes,
            Kind::Pods,
        ] {
            tx.send(Msg::Synced(kind)).unwrap();
        }
        let (leader, leading) = watch::channel(false);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(control.run(
            rx,
            leading,
            resync,
            async move {
                let _ = stopped.await;
            },
            Duration::from_secs(1),
        ));
        Rig {
            metrics,
            leader,
            stop,
            index: index_for_rig,
            store: writer,
            tx,
        }
    }

    /// Ten groups at one call per second take longer to read than the resync interval,
    /// so resync ticks come during the cold start, some of them with the bulk queue
    /// empty but groups still under way. The cold start still ends, once.
    #[tokio::test(start_paused = true)]
    async fn a_cold_start_longer_than_the_resync_interval_ends() {
        let (logs, _guard) = Logs::capture();
        let rig = control_loop(10, 1.0);
        tokio::time::sleep(Duration::from_millis(100)).await;
        rig.leader.send(true).unwrap();
        let gauge = rig.gauge_for(150).await;
        // Half-second samples: still under way two ticks in.
        assert!(
            gauge[2 * 20] > 0,
            "the cold start outlasts two intervals: {gauge:?}"
        );
        assert_eq!(gauge.last(), Some(&0), "the gauge over time: {gauge:?}");
        assert_eq!(logs.count("cold start done"), 1);
        let _ = rig.stop.send(());
    }

    /// After gaining the lease nothing is verified yet: the cold start reads at the pace
    /// of the budget, not spread over the resync interval as later cycles are (20 groups
    /// over 600 s would be one every 27 s).
    #[tokio::test(start_paused = true)]
    async fn the_cold_start_is_paced_by_the_budget_not_the_interval() {
        let rig = control_loop_with(20, 20.0, Duration::from_secs(600));
        tokio::time::sleep(Duration::from_millis(100)).await;
        rig.leader.send(true).unwrap();
        let gauge = rig.gauge_for(10).await;
        assert_eq!(gauge.last(), Some(&0), "the gauge over time: {gauge:?}");
        let _ = rig.stop.send(());
    }

    /// Groups whose Service is deleted before they were read will never be read: they
    /// leave the cold start, which ends.
    #[tokio::test(start_paused = true)]
    async fn groups_deleted_during_the_cold_start_count_as_done() {
        let (logs, _guard) = Logs::capture();
        let mut rig = control_loop(10, 1.0);
        tokio::time::sleep(Duration::from_millis(100)).await;
        rig.leader.send(true).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(rig.metrics.cold_start_groups.get(), 10);
        for i in 0..5 {
            rig.delete_service(&format!("web-{i}"));
        }
        let gauge = rig.gauge_for(150).await;
        assert_eq!(gauge.last(), Some(&0), "the gauge over time: {gauge:?}");
        assert_eq!(logs.count("cold start done"), 1);
        let _ = rig.stop.send(());
    }
}
