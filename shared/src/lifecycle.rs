//! Service lifecycle under systemd: readiness, reloads, stopping and the watchdog, told to the
//! service manager through `$NOTIFY_SOCKET` (`Type=notify` units).
//!
//! Owns the sd_notify protocol messages both binaries send and the watchdog interval systemd asks
//! for (`WatchdogSec=` sets `$WATCHDOG_USEC`). Outside systemd (no `$NOTIFY_SOCKET`) every call
//! is a no-op, so the same binary runs by hand, in tests and in containers. It does not own
//! signals or the services' loops: the binaries call these at the right moments.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState<'_>]) {
    // Best effort: a service must not stop because the manager's socket went away.
    if let Err(e) = sd_notify::notify(false, states) {
        log::debug!("sd_notify: {e}");
    }
}

/// Startup finished: the service is doing its job (`READY=1`), with a one-line status.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A new one-line status for `systemctl status`.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// The configuration is being reloaded (`RELOADING=1`); call [`ready`] when done.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// Shutdown began (`STOPPING=1`).
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// The service is alive (`WATCHDOG=1`).
pub fn watchdog_ping() {
    send(&[NotifyState::Watchdog]);
}

/// How often to ping the watchdog: half the interval systemd asked for, or `None` when no
/// watchdog is configured for this process.
///
/// As libsystemd's `sd_watchdog_enabled`: `$WATCHDOG_USEC` set, and `$WATCHDOG_PID` either unset
/// or this process (systemd sets it to the main process so that children do not ping).
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2).max(Duration::from_millis(100)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_systemd_nothing_happens() {
        // no NOTIFY_SOCKET in the test environment: calls are harmless no-ops
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            ready("test");
            status("test");
            reloading();
            stopping();
            watchdog_ping();
        }
        if std::env::var_os("WATCHDOG_USEC").is_none() {
            assert_eq!(watchdog_interval(), None);
        }
    }
}
