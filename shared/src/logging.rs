//! Logging: the `log` facade's backend for both binaries.
//!
//! Today: plain lines on standard error, level from `LAKEMESH_LOG` (`error`, `warn`, `info`
//! (default), `debug`, `trace`). The journald backend for the service (when `JOURNAL_STREAM` is
//! set) is added with the agent service. Owns nothing else.

use std::io::Write;

struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let _ = writeln!(
                std::io::stderr().lock(),
                "{}: {}",
                record.level().as_str().to_ascii_lowercase(),
                record.args()
            );
        }
    }

    fn flush(&self) {}
}

static LOGGER: Stderr = Stderr;

/// The level named by `LAKEMESH_LOG`, `info` when unset or unknown.
pub fn level_from_env() -> log::LevelFilter {
    std::env::var("LAKEMESH_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(log::LevelFilter::Info)
}

/// Installs the stderr logger (once; later calls keep the first).
pub fn init_stderr() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level_from_env());
    }
}
