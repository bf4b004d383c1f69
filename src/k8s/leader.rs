//! Leader election over a `coordination.k8s.io/v1` Lease, with `kube-lease-manager`.
//!
//! Every replica keeps its caches warm and serves the drain API; only the leader writes to
//! the SLB and to pods. Writers hold a [`watch::Receiver<bool>`] and stop as soon as it
//! turns `false`.
//!
//! Why not `LeaseManager::watch()` as is: when renewing fails (API server unreachable) it
//! logs, backs off and keeps reporting `true`, although the lease may expire and another
//! replica take over. Here any error makes this replica step down at once (`false`), and
//! the manager is rebuilt with the same identity: if the lease is still ours, the fresh
//! manager reports `true` again on its first look, so a passing API hiccup costs a short
//! pause in writes, never two writers.
//!
//! Residual risk, for the operator: a renewal request that hangs (rather than fails)
//! longer than the grace period is not noticed until it fails; give the client used here
//! a read timeout below `--lease-grace`.

use std::time::Duration;

use async_trait::async_trait;
use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::names::{LEASE_NAMESPACE_FLAG, POD_NAMESPACE_ENV};

/// Bound on releasing the lease at shutdown (the pod's grace period is ticking).
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);
const MIN_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(10);

/// Which Lease to hold, as whom, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderConfig {
    pub lease_name: String,
    pub namespace: String,
    /// Unique per replica; the agent's pod name.
    pub identity: String,
    /// Seconds a lease is valid after its last renewal.
    pub duration_secs: u64,
    /// Seconds before expiry the holder renews (also the clock skew tolerated).
    pub grace_secs: u64,
}

/// Why leader election could not start.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error(
        "no namespace for the leader-election Lease: pass {LEASE_NAMESPACE_FLAG} or set \
         {POD_NAMESPACE_ENV} from the downward API (fieldRef metadata.namespace)"
    )]
    MissingNamespace,
    #[error(
        "lease duration {duration_secs}s and grace {grace_secs}s do not fit: both must be \
         positive and the grace shorter than the duration (defaults: 15s and 5s)"
    )]
    BadTiming { duration_secs: u64, grace_secs: u64 },
    #[error(
        "cannot use Lease {namespace}/{lease_name}: {source}; check that the service \
         account may get, create and patch leases.coordination.k8s.io in {namespace}"
    )]
    Lease {
        namespace: String,
        lease_name: String,
        #[source]
        source: kube_lease_manager::LeaseManagerError,
    },
}

impl LeaderConfig {
    /// Checks what `kube-lease-manager` would otherwise panic on.
    pub fn validate(&self) -> Result<(), LeaderError> {
        if self.namespace.is_empty() {
            return Err(LeaderError::MissingNamespace);
        }
        if self.duration_secs == 0 || self.grace_secs == 0 || self.grace_secs >= self.duration_secs
        {
            return Err(LeaderError::BadTiming {
                duration_secs: self.duration_secs,
                grace_secs: self.grace_secs,
            });
        }
        Ok(())
    }

    async fn manager(&self, client: Client) -> Result<LeaseManager, LeaderError> {
        LeaseManagerBuilder::new(client, &self.lease_name)
            .with_namespace(&self.namespace)
            .with_identity(&self.identity)
            .with_field_manager(format!("slb-sync-{}", self.identity))
            .with_duration(self.duration_secs)
            .with_grace(self.grace_secs)
            .build()
            .await
            .map_err(|source| LeaderError::Lease {
                namespace: self.namespace.clone(),
                lease_name: self.lease_name.clone(),
                source,
            })
    }
}

/// This replica's leadership. Dropping it stops campaigning without releasing; call
/// [`Leadership::shutdown`] to hand the lease over at once.
pub struct Leadership {
    leader: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Leadership {
    /// Builds the lease manager (creating the Lease if needed) and starts campaigning.
    /// Fails only on the first build, so a misconfiguration surfaces at startup.
    pub async fn start(client: Client, config: LeaderConfig) -> Result<Self, LeaderError> {
        config.validate()?;
        Self::start_with(KubeLeases { client, config }).await
    }

    async fn start_with<S: LeaseSource>(source: S) -> Result<Self, LeaderError> {
        let lease = source.build().await?;
        let (tx, leader) = watch::channel(false);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(campaign(source, lease, tx, stopped));
        Ok(Leadership {
            leader,
            stop: Some(stop),
            task,
        })
    }

    /// True while this replica holds the lease.
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// Turns `false` the moment the lease is lost (or cannot be confirmed).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leader.clone()
    }

    /// Stops writing (`false`), releases the lease so another replica takes over without
    /// waiting for it to expire, and ends the campaign; bounded by a few seconds.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(RELEASE_TIMEOUT * 2, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One campaign for a Lease: what the loop needs from `kube-lease-manager`, so the
/// step-down rules can be tested without an API server.
#[async_trait]
trait Lease: Send + Sync + 'static {
    /// Resolves when this replica's leadership changes (renewing meanwhile).
    async fn changed(&self) -> Result<bool, LeaseManagerError>;
    async fn release(&self) -> Result<(), LeaseManagerError>;
}

#[async_trait]
impl Lease for LeaseManager {
    async fn changed(&self) -> Result<bool, LeaseManagerError> {
        LeaseManager::changed(self).await
    }

    async fn release(&self) -> Result<(), LeaseManagerError> {
        LeaseManager::release(self).await
    }
}

/// Builds a fresh [`Lease`] campaign (with the same identity) after an error.
#[async_trait]
trait LeaseSource: Send + Sync + 'static {
    type Lease: Lease;
    async fn build(&self) -> Result<Self::Lease, LeaderError>;
    fn describe(&self) -> String;
}

struct KubeLeases {
    client: Client,
    config: LeaderConfig,
}

#[async_trait]
impl LeaseSource for KubeLeases {
    type Lease = LeaseManager;

    async fn build(&self) -> Result<LeaseManager, LeaderError> {
        self.config.manager(self.client.clone()).await
    }

    fn describe(&self) -> String {
        format!(
            "{}/{} as {}",
            self.config.namespace, self.config.lease_name, self.config.identity
        )
    }
}

async fn campaign<S: LeaseSource>(
    source: S,
    mut lease: S::Lease,
    leader: watch::Sender<bool>,
    mut stopped: oneshot::Receiver<()>,
) {
    let name = source.describe();
    let mut retry = MIN_RETRY;
    loop {
        tokio::select! {
            biased;
            _ = &mut stopped => {
                leader.send_replace(false);
                match tokio::time::timeout(RELEASE_TIMEOUT, lease.release()).await {
                    Ok(Ok(())) => tracing::info!(lease = %name, "released the lease"),
                    Ok(Err(err)) => tracing::warn!(lease = %name, error = %err, "cannot release the lease; it expires by itself"),
                    Err(_) => tracing::warn!(lease = %name, "releasing the lease timed out; it expires by itself"),
                }
                return;
            }
            changed = lease.changed() => match changed {
                Ok(is_leader) => {
                    retry = MIN_RETRY;
                    tracing::info!(lease = %name, is_leader, "leadership changed");
                    leader.send_replace(is_leader);
                }
                Err(err) => {
                    // Cannot confirm the lease: stop writing now, then start over.
                    if leader.send_replace(false) {
                        tracing::warn!(lease = %name, error = %err, "cannot confirm the lease; stepping down");
                    } else {
                        tracing::warn!(lease = %name, error = %err, "leader election failed; retrying");
                    }
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(MAX_RETRY);
                    match source.build().await {
                        Ok(fresh) => lease = fresh,
                        Err(err) => tracing::warn!(lease = %name, error = %err, "cannot rebuild the lease manager; retrying"),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tokio::sync::{mpsc, Mutex};

    use super::*;

    /// A lease whose `changed()` answers are scripted by the test.
    #[derive(Clone)]
    struct Scripted {
        answers: Arc<Mutex<mpsc::UnboundedReceiver<Result<bool, LeaseManagerError>>>>,
        builds: Arc<AtomicUsize>,
        releases: Arc<AtomicUsize>,
    }

    #[async_trait]
    impl Lease for Scripted {
        async fn changed(&self) -> Result<bool, LeaseManagerError> {
            match self.answers.lock().await.recv().await {
                Some(answer) => answer,
                None => std::future::pending().await,
            }
        }

        async fn release(&self) -> Result<(), LeaseManagerError> {
            self.releases.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[async_trait]
    impl LeaseSource for Scripted {
        type Lease = Scripted;

        async fn build(&self) -> Result<Scripted, LeaderError> {
            self.builds.fetch_add(1, Ordering::SeqCst);
            Ok(self.clone())
        }

        fn describe(&self) -> String {
            "test/slb-sync".into()
        }
    }

    fn scripted() -> (
        Scripted,
        mpsc::UnboundedSender<Result<bool, LeaseManagerError>>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let lease = Scripted {
            answers: Arc::new(Mutex::new(rx)),
            builds: Arc::default(),
            releases: Arc::default(),
        };
        (lease, tx)
    }

    fn api_down() -> LeaseManagerError {
        LeaseManagerError::InconsistentState("API server unreachable".into())
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_steps_down_at_once_and_a_fresh_campaign_resumes() {
        let (lease, answers) = scripted();
        let leadership = Leadership::start_with(lease.clone()).await.unwrap();
        let mut leader = leadership.subscribe();
        assert!(!leadership.is_leader());

        answers.send(Ok(true)).unwrap();
        leader.wait_for(|l| *l).await.unwrap();
        assert!(leadership.is_leader());

        // Renewal fails: writers see `false` before any retry delay passes.
        let start = tokio::time::Instant::now();
        answers.send(Err(api_down())).unwrap();
        leader.wait_for(|l| !*l).await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(lease.builds.load(Ordering::SeqCst), 1);

        // After the retry delay a fresh manager is built; it finds the lease still ours.
        answers.send(Ok(true)).unwrap();
        leader.wait_for(|l| *l).await.unwrap();
        assert_eq!(start.elapsed(), MIN_RETRY);
        assert_eq!(lease.builds.load(Ordering::SeqCst), 2);

        // Lost to another replica.
        answers.send(Ok(false)).unwrap();
        leader.wait_for(|l| !*l).await.unwrap();
        assert_eq!(lease.releases.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_writes_and_releases_the_lease() {
        let (lease, answers) = scripted();
        let leadership = Leadership::start_with(lease.clone()).await.unwrap();
        let leader = leadership.subscribe();
        answers.send(Ok(true)).unwrap();
        leader.clone().wait_for(|l| *l).await.unwrap();

        leadership.shutdown().await;
        assert!(!*leader.borrow());
        assert_eq!(lease.releases.load(Ordering::SeqCst), 1);
    }

    fn config(duration_secs: u64, grace_secs: u64, namespace: &str) -> LeaderConfig {
        LeaderConfig {
            lease_name: "slb-sync".into(),
            namespace: namespace.into(),
            identity: "slb-sync-abc".into(),
            duration_secs,
            grace_secs,
        }
    }

    #[test]
    fn timing_the_lease_manager_would_panic_on_is_an_error() {
        assert!(config(15, 5, "kube-system").validate().is_ok());
        for (d, g) in [(0, 0), (15, 0), (5, 5), (5, 10)] {
            let err = config(d, g, "kube-system")
                .validate()
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("duration {d}s and grace {g}s")),
                "{err}"
            );
        }
        let err = config(15, 5, "").validate().unwrap_err().to_string();
        assert!(
            err.contains("--lease-namespace") && err.contains("POD_NAMESPACE"),
            "{err}"
        );
    }
}
