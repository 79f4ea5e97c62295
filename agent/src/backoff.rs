//! Capped exponential backoff for the delivery loops (the one outer retry layer on top of the
//! SDK's own per-call retries): `initial`, doubled after every further failure up to `max`, with
//! up to a quarter of jitter taken off so several agents behind one uplink do not retry in step.
//!
//! Pure: it computes waits, it does not sleep.

use std::time::Duration;

/// The retry state of one step.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    /// A fresh backoff (no failure yet). `max` below `initial` is raised to `initial`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            failures: 0,
        }
    }

    /// Failures recorded since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The wait before the next attempt after `failures` failures, without jitter:
    /// `initial * 2^(failures-1)`, at most `max`; zero before the first failure.
    pub fn delay_for(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// Records a failure and returns how long to wait: the capped delay less up to 25 %
    /// jitter (`jitter` in 0..=1, e.g. from the clock's sub-second digits).
    pub fn fail(&mut self, jitter: f64) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let d = self.delay_for(self.failures);
        d.mul_f64(1.0 - 0.25 * jitter.clamp(0.0, 1.0))
    }

    /// Records a success: the next failure waits `initial` again.
    pub fn succeed(&mut self) {
        self.failures = 0;
    }
}

/// A number in 0..1 from the clock's nanoseconds: enough jitter for retries.
pub fn clock_jitter() -> f64 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(n % 1000) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let b = Backoff::new(Duration::from_secs(2), Duration::from_secs(30));
        let d: Vec<u64> = (0..8).map(|n| b.delay_for(n).as_secs()).collect();
        assert_eq!(d, [0, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(b.delay_for(200), Duration::from_secs(30));
    }

    #[test]
    fn jitter_takes_off_at_most_a_quarter_and_success_resets() {
        let mut b = Backoff::new(Duration::from_secs(4), Duration::from_secs(60));
        assert_eq!(b.fail(0.0), Duration::from_secs(4));
        assert_eq!(b.fail(1.0), Duration::from_secs(6));
        assert_eq!(b.failures(), 2);
        b.succeed();
        assert_eq!(b.failures(), 0);
        assert_eq!(b.fail(0.5), Duration::from_millis(3500));
    }

    #[test]
    fn max_below_initial_is_raised() {
        let b = Backoff::new(Duration::from_secs(5), Duration::from_secs(1));
        assert_eq!(b.delay_for(3), Duration::from_secs(5));
    }
}
