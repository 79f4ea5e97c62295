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
    CheckConfig,
    /// Consume announcements (the service).
    Run {
        /// Drain the queue and exit (cron, tests).
        #[arg(long)]
        once: bool,
    },
    /// Print the difference between the policy and what Lake Formation holds.
    Plan,
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
}

fn main() -> ExitCode {
    lakemesh_shared::logging::init_stderr();
    let cli = Cli::parse();
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
    let (settings, mut policy) = commands::load(&cli.config)?;
    if let Command::Verify {
        policy: Some(path), ..
    } = &cli.command
    {
        policy = std::sync::Arc::new(lakemesh_syncd::policy::Policy::load(path)?);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    runtime.block_on(async move {
        let sdk = lakemesh_shared::aws::sdk_config(&settings.aws).await?;
        match cli.command {
            Command::CheckConfig => {
                for line in commands::check_config(&settings, &policy, &sdk).await? {
                    lakemesh_shared::outln!("{line}");
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::Run { once } => {
                let shutdown = CancellationToken::new();
                let signals = shutdown.clone();
                tokio::spawn(async move {
                    wait_for_signal().await;
                    log::info!("signal received: stopping intake");
                    signals.cancel();
                });
                let report = commands::run(settings, policy, &sdk, once, shutdown).await?;
                log::info!(
                    "intake stopped: {} received, {} done, {} rejected, {} failed, {} released, {} crawls",
                    report.received,
                    report.done,
                    report.rejections.len(),
                    report.failed,
                    report.released,
                    report.crawls_started
                );
                Ok(if report.failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
            }
            Command::Plan => {
                let changes = commands::plan(settings, policy, &sdk).await?;
                if !changes.iter().any(Change::is_applied) {
                    lakemesh_shared::outln!("no changes: Lake Formation holds what the policy says");
                }
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
                    lakemesh_shared::outln!("{}", serde_json::to_string_pretty(&p).context("encoding JSON")?);
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
                    lakemesh_shared::outln!("{}", serde_json::to_string_pretty(&report).context("encoding JSON")?);
                } else {
                    lakemesh_shared::out!("{}", report.render());
                }
                Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
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
        }
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
