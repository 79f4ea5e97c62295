//! `lakemesh-syncd`: parse arguments, start logging, load the configuration and policy, run
//! the command on a Tokio runtime, map the result to an exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lakemesh_syncd::commands;
use lakemesh_syncd::policy::Change;
use tokio_util::sync::CancellationToken;

/// The lakemesh central sync daemon: announcements to the Glue catalog and the Lake Formation
/// policy.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Configuration file.
    #[arg(long, short, global = true, env = "LAKEMESH_SYNCD_CONFIG", default_value = lakemesh_syncd::config::DEFAULT_PATH)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and validate the configuration and policy, lint the policy, check that SQS, Glue
    /// and Lake Formation answer.
    CheckConfig {
        /// Skip the AWS checks (the service's ExecStartPre: a network outage must not stop the
        /// start; the service waits for the queue before it is ready).
        #[arg(long)]
        offline: bool,
    },
    /// Consume announcements (the service; SIGHUP reloads the policy file).
    Run {
        /// Drain the queue and exit (cron, tests).
        #[arg(long)]
        once: bool,
    },
    /// Print the difference between the policy and what Lake Formation holds.
    Plan {
        /// Exit with status 2 when there are changes to apply (0: none), for drift checks.
        #[arg(long)]
        exit_code: bool,
    },
    /// Make Lake Formation hold what the policy says.
    Apply,
    /// Show what a principal would see of a table under the policy, computed locally from the
    /// product's Parquet (columns, row filter), without Lake Formation.
    Preview {
        /// The table, as DATABASE.TABLE.
        #[arg(long)]
        table: String,
        /// The principal's role or user ARN.
        #[arg(long)]
        principal: String,
        /// The product's Parquet: a local folder (Hive partitions k=v/) or s3://bucket/prefix.
        #[arg(long)]
        data: String,
        /// Sample rows to show.
        #[arg(long, default_value_t = lakemesh_syncd::preview::DEFAULT_LIMIT)]
        limit: usize,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Prove with Athena, as each principal (its role assumed), that Lake Formation enforces
    /// the policy: visible columns, no row outside the filter, ungranted tables refused. Exit
    /// status 0 only when every probe holds.
    Verify {
        /// Another policy file than the configuration's.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Only this principal (role ARN).
        #[arg(long)]
        principal: Option<String>,
        /// Only this table, as DATABASE.TABLE.
        #[arg(long)]
        table: Option<String>,
        /// Print JSON instead of the matrix.
        #[arg(long)]
        json: bool,
    },
    /// Show the queue and dead-letter queue depths, the announcements handled, the last
    /// success and error, recent failures, and whether the policy changed since the last apply.
    Status {
        /// Print JSON (stable keys) instead of text.
        #[arg(long)]
        json: bool,
        /// How many recent failures to list.
        #[arg(long, default_value_t = 10)]
        failures: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Run { .. }) {
        lakemesh_shared::logging::init();
    } else {
        lakemesh_shared::logging::init_stderr();
    }
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "lakemesh-syncd: {}",
                lakemesh_shared::error_chain(e.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    match cli.command {
        Command::Status { json, failures } => {
            // The policy is not parsed: a broken one is what the status may have to show.
            let settings = lakemesh_syncd::config::Settings::load(&cli.config)?;
            let status = runtime.block_on(async {
                let sdk = lakemesh_shared::aws::sdk_config(&settings.aws).await?;
                anyhow::Ok(commands::status(&settings, &sdk, failures).await?)
            })?;
            if json {
                lakemesh_shared::outln!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                lakemesh_shared::out!("{status}");
            }
            // An unreadable state store is reported, with everything else, and is a failure.
            Ok(if status.state_error.is_some() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::CheckConfig { offline: true } => {
            let (settings, policy) = commands::load(&cli.config)?;
            for line in commands::check_config_offline(&settings, &policy)? {
                lakemesh_shared::outln!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        command => {
            let (settings, mut policy) = commands::load(&cli.config)?;
            if let Command::Verify {
                policy: Some(path), ..
            } = &command
            {
                policy = std::sync::Arc::new(lakemesh_syncd::policy::Policy::load(path)?);
                policy.check_registry(&settings)?;
            }
            runtime.block_on(run_online(command, settings, policy))
        }
    }
}

/// The commands that talk to AWS.
async fn run_online(
    command: Command,
    settings: std::sync::Arc<lakemesh_syncd::config::Settings>,
    policy: std::sync::Arc<lakemesh_syncd::policy::Policy>,
) -> anyhow::Result<ExitCode> {
    let sdk = lakemesh_shared::aws::sdk_config(&settings.aws).await?;
    match command {
        Command::CheckConfig { .. } => {
            for line in commands::check_config(&settings, &policy, &sdk).await? {
                lakemesh_shared::outln!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { once } => {
            let shutdown = CancellationToken::new();
            let (reload_tx, reloads) = tokio::sync::mpsc::channel(1);
            let signals = Signals::install().context("installing the signal handlers")?;
            tokio::spawn(signals.forward(shutdown.clone(), reload_tx));
            let report = commands::serve(settings, policy, &sdk, once, shutdown, reloads).await?;
            log::info!(
                "intake stopped: {} received, {} done, {} rejected, {} failed, {} released, {} crawls",
                report.received,
                report.done,
                report.rejections.len(),
                report.failed,
                report.released,
                report.crawls_started
            );
            Ok(if report.failed > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Plan { exit_code } => {
            let changes = commands::plan(settings, policy, &sdk).await?;
            let pending = changes.iter().any(Change::is_applied);
            if !pending {
                lakemesh_shared::outln!("no changes: Lake Formation holds what the policy says");
            }
            for c in &changes {
                lakemesh_shared::outln!("{c}");
            }
            Ok(if exit_code && pending {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Apply => {
            let changes = commands::apply(settings, policy, &sdk).await?;
            lakemesh_shared::outln!(
                "{} changes applied",
                changes.iter().filter(|c| c.is_applied()).count()
            );
            for c in &changes {
                lakemesh_shared::outln!("{c}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Preview {
            table,
            principal,
            data,
            limit,
            json,
        } => {
            let p = commands::preview(&settings, &policy, &sdk, &table, &principal, &data, limit)
                .await?;
            if json {
                lakemesh_shared::outln!(
                    "{}",
                    serde_json::to_string_pretty(&p).context("encoding JSON")?
                );
            } else {
                lakemesh_shared::out!("{}", p.render());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify {
            principal,
            table,
            json,
            ..
        } => {
            let report = commands::verify(
                settings,
                policy,
                &sdk,
                principal.as_deref(),
                table.as_deref(),
            )
            .await?;
            if json {
                lakemesh_shared::outln!(
                    "{}",
                    serde_json::to_string_pretty(&report).context("encoding JSON")?
                );
            } else {
                lakemesh_shared::out!("{}", report.render());
            }
            Ok(if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        // answered by `real_main` without AWS clients of its own
        Command::Status { .. } => Ok(ExitCode::SUCCESS),
    }
}

/// SIGTERM and SIGINT stop the intake (`STOPPING=1`); SIGHUP reloads the policy.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    async fn forward(mut self, shutdown: CancellationToken, reload: tokio::sync::mpsc::Sender<()>) {
        loop {
            let name = tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
                _ = self.hup.recv() => {
                    // One pending reload is enough: the file is read when it runs.
                    let _ = reload.try_send(());
                    continue;
                }
            };
            lakemesh_shared::lifecycle::stopping();
            log::info!("{name}: stopping intake");
            shutdown.cancel();
            break;
        }
    }
}
