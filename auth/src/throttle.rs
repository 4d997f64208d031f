//! Rate-limited logging: a dependency that is down would otherwise log one warning per request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Allows one event per `every_secs` (per static instance, across threads).
#[derive(Debug)]
pub(crate) struct Throttle {
    every_secs: u64,
    last: AtomicU64,
}

impl Throttle {
    pub(crate) const fn new(every_secs: u64) -> Self {
        Self {
            every_secs,
            last: AtomicU64::new(0),
        }
    }

    /// True at most once per period: the caller logs, the others stay quiet.
    pub(crate) fn ready(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.last.load(Ordering::Relaxed);
        now >= last.saturating_add(self.every_secs)
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_once_per_period() {
        let throttle = Throttle::new(3600);
        assert!(throttle.ready());
        assert!(!throttle.ready());
    }
}
