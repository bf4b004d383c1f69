//! The in-cluster agent (`slb-sync run`).
//!
//! # Flow
//!
//! One object change travels this way (docs/architecture.md, "Flow of the agent"):
//!
//! 1. **Event** — a watcher (`watch.rs`) applies a Service, EndpointSlice,
//!    Node or Pod change to the cluster index (`crate::index`) and sends the Services it
//!    affected to the control loop as a `Msg` (`messages.rs`).
//! 2. **Index → plan** — the control loop (`control.rs`) decides per Service what the
//!    finalizer calls for (`finalizer.rs`: add, apply, clean up, forget); to apply, it
//!    plans the Service (`crate::desired`) and records where each port is planned in the
//!    one book of group state (`groups.rs`), which notices moved ports (`moves.rs`,
//!    `retiring.rs`) and removed ones; a deleted Service's groups are emptied
//!    (`cleanup.rs`).
//! 3. **Lane** — each group is triggered in a lane of the scheduler
//!    (`crate::reconcile::scheduler`, `queue.rs`): pod-facing work before changes before
//!    resync (`resync.rs` spreads the latter), and the same lane orders its API calls
//!    for the budget (`crate::slb::budget`).
//! 4. **Pass** — a pass reads the group's target (`target.rs`, a pure read of the
//!    index and of the groups being emptied), reads the SLB, plans steps
//!    (`crate::plan`) and runs them make-before-break (`crate::reconcile::executor`).
//! 5. **Pod side** — the pass's outcome goes first to the pod side (`pods/`: readiness
//!    gates, the drained condition and the pod finalizer), which names the pods the pass
//!    concerns to its keyed reconciler (`pods/reconciler.rs`), then back to the control loop
//!    as a `PassReport` (`messages.rs`; group ids, moves, listeners: `listeners.rs`;
//!    Events: `reports.rs`; drains over their window: `drain_timer.rs`).
//!
//! Only the leader runs the scheduler and writes. [`run`] is the whole agent as a
//! library call, so integration tests run it in-process against the Kubernetes and SLB
//! doubles; `slb-sync run` (`crate::cli::run`) only builds the clients.

pub mod args;
mod cleanup;
mod control;
mod drain_timer;
mod finalizer;
mod groups;
pub mod health;
mod listeners;
mod messages;
pub mod metrics;
mod moves;
pub mod pods;
mod reports;
mod resync;
mod retiring;
mod strip;
mod target;
mod watch;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kube::runtime::reflector;
use tokio::sync::mpsc;

pub use drain_timer::OVER_WINDOW_SLACK;
pub use finalizer::finalizer_add_patch;

use crate::desired::PlannerConfig;
use crate::http::{HttpError, HttpServer, HttpState, ReadyFlag};
use crate::index::ClusterIndex;
use crate::k8s::drain_state::ReflectorPodStates;
use crate::k8s::events::Events;
use crate::k8s::leader::{LeaderConfig, LeaderError, Leadership};
use crate::reconcile::{
    ApiLimits, Clock, Executor, ExecutorConfig, ReconcileMetrics, SchedulerConfig, TokioClock,
};
use crate::slb::SlbApi;
pub use metrics::AgentMetrics;
use pods::{NoPods, PodLifecycle, PodLifecycleConfig, PodStores, SharedPodSide};

/// Called with the HTTP server's address once bound (tests bind port 0).
pub type OnBound = Arc<dyn Fn(SocketAddr) + Send + Sync>;

/// Everything `slb-sync run` is configured with, once the clients are built.
#[derive(Clone)]
pub struct AgentConfig {
    /// Which Services are managed and how owned backends are named.
    pub planner: PlannerConfig,
    /// Drain window of Services without `connection-drain` on (`--default-drain-seconds`).
    pub default_drain_secs: u32,
    /// Every group is passed over this often (`--resync-seconds`).
    pub resync: Duration,
    /// Groups that pods wait on are passed over this often (`--drift-check-seconds`).
    pub drift_check: Duration,
    /// kube-proxy's sync lag the handshake allows for in Cluster and Local mode
    /// (`--kube-proxy-allowance-seconds`, see [`pods::allowance`]).
    pub kube_proxy_allowance: Duration,
    /// How long the SLB may take to carry a write to its forwarders
    /// (`--slb-propagation-seconds`, see [`crate::plan::PlanConfig::propagation`]).
    pub slb_propagation: Duration,
    /// What readiness gates wait for (`--gate-on`, `--health-gate-timeout-seconds`).
    pub health_gate: health::HealthGateConfig,
    /// `--http-addr`.
    pub http_addr: SocketAddr,
    pub on_bound: Option<OnBound>,
    /// The leader-election Lease and this replica's identity (also the Events instance).
    pub leader: LeaderConfig,
    pub limits: ApiLimits,
    /// How long a backend the SLB refuses is held out before it is tried again.
    pub hold: crate::plan::HoldPolicy,
    pub scheduler: SchedulerConfig,
    /// How long running passes may take to finish at shutdown.
    pub shutdown_grace: Duration,
    /// `/metrics` serves this registry; the agent registers its reconcile and HTTP metrics
    /// in it (the caller registers [`crate::slb::SlbMetrics`] with its SLB client).
    pub registry: prometheus::Registry,
    /// Registered in `registry` by the caller, who shares them with the pod side.
    pub metrics: AgentMetrics,
    /// `true` while this replica leads and reconciles, `false` otherwise (from the moment
    /// the lease is lost). The pod side [`run`] builds subscribes to it and writes to pods
    /// only while it is `true`.
    pub reconciling: Arc<tokio::sync::watch::Sender<bool>>,
}

impl AgentConfig {
    /// Defaults matching the flags' defaults; `registry` gets the [`AgentMetrics`].
    pub fn new(
        planner: PlannerConfig,
        leader: LeaderConfig,
        registry: prometheus::Registry,
    ) -> prometheus::Result<Self> {
        let metrics = AgentMetrics::register(&registry)?;
        Ok(AgentConfig {
            planner,
            default_drain_secs: 30,
            resync: Duration::from_secs(600),
            drift_check: Duration::from_secs(10),
            kube_proxy_allowance: pods::allowance::DEFAULT_KUBE_PROXY_ALLOWANCE,
            slb_propagation: crate::reconcile::DEFAULT_SLB_PROPAGATION,
            health_gate: health::HealthGateConfig::default(),
            http_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            on_bound: None,
            leader,
            limits: ApiLimits::default(),
            hold: crate::plan::HoldPolicy::default(),
            scheduler: SchedulerConfig::default(),
            shutdown_grace: Duration::from_secs(10),
            registry,
            metrics,
            reconciling: Arc::new(tokio::sync::watch::channel(false).0),
        })
    }
}

/// Which pod side [`run`] builds over the stores its watchers fill.
#[derive(Debug, Clone)]
pub enum PodSideChoice {
    /// No pod finalizer, readiness gates or drained condition (tests of the control loop).
    None,
    /// The real pod side ([`PodLifecycle`]); a deleted pod's finalizer is released
    /// without a confirmed drain `fail_open_margin` after its grace period.
    Lifecycle { fail_open_margin: Duration },
}

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("cannot start leader election: {0}")]
    Leader(#[from] LeaderError),
    #[error("cannot register the agent's metrics: {0}; a metric of that name exists already")]
    Metrics(#[from] prometheus::Error),
}

/// Runs the agent until `shutdown` resolves: serves HTTP, watches the cluster, campaigns
/// for the lease and, while leading, reconciles. On shutdown it stops taking work, lets
/// running passes finish within `config.shutdown_grace` and releases the lease.
pub async fn run(
    config: AgentConfig,
    client: kube::Client,
    slb: Arc<dyn SlbApi>,
    pod_side: PodSideChoice,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AgentError> {
    let ready = ReadyFlag::new();
    let (service_store, service_writer) = reflector::store();
    let (pod_store, pod_writer) = reflector::store();
    let index = Arc::new(RwLock::new(ClusterIndex::new(config.planner.clone())));
    let (node_store, node_writer) = reflector::store();
    let pod_states = ReflectorPodStates::new(pod_store.clone());
    // Read by the pod side's gates and the executor's drains; filled by the pod side's
    // poller, which only the real pod side under `--gate-on healthy` runs.
    let health_board = (matches!(pod_side, PodSideChoice::Lifecycle { .. })
        && config.health_gate.gate_on == health::GateOn::Healthy)
        .then(|| Arc::new(health::HealthBoard::new()));
    let pods: SharedPodSide = match pod_side {
        PodSideChoice::None => Arc::new(NoPods),
        PodSideChoice::Lifecycle { fail_open_margin } => Arc::new(PodLifecycle::new(
            client.clone(),
            Events::new(client.clone(), Some(config.leader.identity.clone())),
            config.metrics.clone(),
            PodStores {
                pods: pod_store,
                services: service_store.clone(),
                nodes: node_store,
                index: index.clone(),
            },
            PodLifecycleConfig {
                kube_proxy_allowance: config.kube_proxy_allowance,
                health_gate: config.health_gate,
                ..PodLifecycleConfig::new(config.planner.clone(), fail_open_margin)
            },
            config.reconciling.subscribe(),
            health_board.clone().map(|board| (slb.clone(), board)),
        )),
    };

    let http_state = HttpState::new(
        config.registry.clone(),
        ready.clone(),
        Arc::new(pod_states.clone()),
    )?;
    let server = HttpServer::bind(config.http_addr, http_state).await?;
    let addr = server.local_addr()?;
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz and the drain API");
    if let Some(on_bound) = &config.on_bound {
        on_bound(addr);
    }
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(server.run(async move {
        let _ = http_stopped.await;
    }));

    let reconcile_metrics = ReconcileMetrics::register(&config.registry)?;
    metrics::init_reconcile_series(&reconcile_metrics);
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::new());
    let timer = Arc::new(drain_timer::DrainTimer::new(
        clock.clone(),
        config.metrics.clone(),
    ));
    let executor: Arc<Executor<dyn SlbApi>> = Arc::new({
        let executor = Executor::new(
            slb,
            clock,
            ExecutorConfig {
                limits: config.limits.clone(),
                hold: config.hold,
                // Drift is found within the drift check's interval either way (it reads
                // in the change lane, which never reuses a read).
                reuse_read: config.drift_check,
                slb_propagation: config.slb_propagation,
                kube_proxy_allowance: config.kube_proxy_allowance,
                ..ExecutorConfig::default()
            },
        )
        .with_metrics(reconcile_metrics)
        .with_journal(match pods.journal() {
            Some(pod_journal) => Arc::new(drain_timer::FanOut(vec![timer.clone(), pod_journal])),
            None => timer.clone(),
        });
        match health_board {
            Some(board) => executor.with_health(board),
            None => executor,
        }
    });

    let groups = groups::GroupBook::default();
    let (tx, rx) = mpsc::unbounded_channel();
    let watchers = watch::spawn_all(
        watch::WatchContext {
            index: index.clone(),
            tx: tx.clone(),
        },
        client.clone(),
        watch::Writers {
            services: service_writer,
            nodes: node_writer,
            pods: pod_writer,
        },
        pods.clone(),
        pod_states,
    );

    let leadership = match Leadership::start(client.clone(), config.leader.clone()).await {
        Ok(leadership) => leadership,
        Err(err) => {
            watchers.iter().for_each(|w| w.abort());
            let _ = http_stop.send(());
            let _ = http.await;
            return Err(err.into());
        }
    };
    config.metrics.leader.set(0);

    let control = control::Control {
        planner: config.planner.clone(),
        default_drain_secs: config.default_drain_secs,
        client: client.clone(),
        events: Events::new(client, Some(config.leader.identity.clone())),
        index: index.clone(),
        services: service_store,
        executor,
        source: Arc::new(target::IndexTargets {
            index,
            emptying: groups.emptying.clone(),
            default_drain_secs: config.default_drain_secs,
        }),
        observer: Arc::new(target::AgentObserver {
            pods: pods.clone(),
            metrics: config.metrics.clone(),
            timer,
            tx: tx.clone(),
            slb_propagation: config.slb_propagation,
        }),
        pods,
        metrics: config.metrics.clone(),
        reconciling: config.reconciling.clone(),
        ready,
        scheduler_config: SchedulerConfig {
            // A resync need not read again what a change read within half its interval.
            bulk_fresh: config.resync / 2,
            ..config.scheduler.clone()
        },
        drift_check: config.drift_check,
        resync_interval: config.resync,
        tx,
        state: control::LoopState {
            groups,
            ..control::LoopState::default()
        },
    };
    control
        .run(
            rx,
            leadership.subscribe(),
            config.resync,
            shutdown,
            config.shutdown_grace,
        )
        .await;

    tracing::info!("shutting down: releasing the lease");
    leadership.shutdown().await;
    watchers.iter().for_each(|w| w.abort());
    let _ = http_stop.send(());
    // A server that does not finish in time is abandoned; its error, if any, is ours.
    if let Ok(Ok(result)) = tokio::time::timeout(Duration::from_secs(5), http).await {
        result?;
    }
    Ok(())
}
