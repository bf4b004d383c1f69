//! Time for the imperative shell, derived from tokio's clock so that tests run under
//! `#[tokio::test(start_paused = true)]` and drain windows pass in virtual time.

use std::time::Duration;

use jiff::Timestamp;
use tokio::time::Instant;

/// Wall-clock time as the planner needs it (`now`).
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;

    /// The tokio instant at which `at` will be reached (now, if it has passed).
    fn instant_at(&self, at: Timestamp) -> Instant {
        let wait = self.now().duration_until(at);
        Instant::now() + Duration::try_from(wait).unwrap_or(Duration::ZERO)
    }
}

/// Reads the wall clock once, then advances with tokio's monotonic clock.
///
/// Drain windows are relative durations, so a monotonic source is what they need: a wall
/// clock step (NTP, VM resume) must not shorten a drain. Under a paused tokio runtime the
/// time moves only when the test lets it.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin_wall: Timestamp,
    origin: Instant,
}

impl TokioClock {
    /// Starts at the current wall-clock time.
    pub fn new() -> Self {
        Self::starting_at(Timestamp::now())
    }

    /// Starts at `wall` (tests pick a fixed instant).
    pub fn starting_at(wall: Timestamp) -> Self {
        TokioClock {
            origin_wall: wall,
            origin: Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        let elapsed = Instant::now().saturating_duration_since(self.origin);
        self.origin_wall
            .checked_add(elapsed)
            .unwrap_or(Timestamp::MAX)
    }
}
