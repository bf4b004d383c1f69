//! Optional TCP health checks: a backend that fails `unhealthy_threshold` connects in a
//! row is abnormal and leaves the rotation until `healthy_threshold` successes.

use std::time::Duration;

use tokio::net::TcpStream;

use super::{DataPlane, HealthState};
use crate::state::HealthCheck;

pub(super) async fn run(dp: DataPlane, key: (String, u16), hc: HealthCheck) {
    let interval = Duration::from_millis(hc.interval_ms.max(1));
    let timeout = Duration::from_millis(hc.timeout_ms.max(1));
    loop {
        let targets: Vec<_> = {
            let inner = dp.lock();
            match inner.listeners.get(&key) {
                Some(rt) => rt.targets.iter().map(|t| (t.key.clone(), t.addr)).collect(),
                None => return,
            }
        };
        for (bkey, addr) in targets {
            let ok = matches!(
                tokio::time::timeout(timeout, TcpStream::connect(addr)).await,
                Ok(Ok(_))
            );
            let mut inner = dp.lock();
            if let Some(rt) = inner.listeners.get_mut(&key) {
                let h = rt.health.entry(bkey).or_insert_with(HealthState::default);
                if ok {
                    h.failures = 0;
                    h.successes += 1;
                    if h.normal != Some(true) && h.successes >= hc.healthy_threshold.max(1) {
                        h.normal = Some(true);
                    }
                } else {
                    h.successes = 0;
                    h.failures += 1;
                    if h.normal != Some(false) && h.failures >= hc.unhealthy_threshold.max(1) {
                        h.normal = Some(false);
                    }
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}
