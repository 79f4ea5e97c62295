//! The daemon's one outer retry layer: capped exponential backoff around a whole step (an AWS
//! call that the SDK's own retries gave up on, a crawler that is still starting), bounded by a
//! total time. Owns nothing else; which errors are worth retrying is the error's
//! [`Transient::is_transient`].

use std::future::Future;
use std::time::{Duration, Instant};

/// First wait.
pub const FIRST: Duration = Duration::from_millis(250);
/// Longest single wait.
pub const CAP: Duration = Duration::from_secs(20);

/// An error that can say whether a retry may help.
pub trait Transient {
    /// Whether the same step may succeed later.
    fn is_transient(&self) -> bool;
}

/// The `n`th wait (0-based): 250 ms doubled each time, at most [`CAP`].
pub fn delay(n: u32) -> Duration {
    FIRST.saturating_mul(1u32 << n.min(16)).min(CAP)
}

/// Runs `step` until it succeeds, fails with a permanent error, or `limit` has passed; logs each
/// retry at WARN with `what`.
pub async fn retry<T, E, F, Fut>(what: &str, limit: Duration, mut step: F) -> Result<T, E>
where
    E: Transient + std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let start = Instant::now();
    let mut n = 0;
    loop {
        match step().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && start.elapsed() + delay(n) <= limit => {
                log::warn!("{what}: {e}; retrying in {:?}", delay(n));
                tokio::time::sleep(delay(n)).await;
                n += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        assert_eq!(delay(0), Duration::from_millis(250));
        assert_eq!(delay(1), Duration::from_millis(500));
        assert_eq!(delay(4), Duration::from_secs(4));
        assert_eq!(delay(7), CAP);
        assert_eq!(delay(40), CAP);
    }
}
