//! `lakemesh-agent`: command line of the producer agent. Parses arguments, initialises logging,
//! starts the runtime, runs the library and maps the outcome to an exit code (0 ok, 1 error,
//! 2 file rejected).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use lakemesh_agent::config::AgentConfig;
use lakemesh_agent::contract::{Contract, CsvSettings, RawContract};
use lakemesh_agent::convert::{ConvertError, ConvertOptions, convert_file};
use lakemesh_agent::infer;
use lakemesh_agent::pii::PseudonymKey;
use lakemesh_agent::service::{self, Ingested};

/// Where the service's configuration lives unless `--config` says otherwise.
const DEFAULT_CONFIG: &str = "/etc/lakemesh/agent.toml";

#[derive(Parser)]
#[command(
    name = "lakemesh-agent",
    version,
    about = "lakemesh producer agent: CSV exports to Athena-ready Parquet"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert one CSV export to partitioned Parquet in a local folder (no AWS).
    Convert {
        /// The CSV export.
        file: PathBuf,
        /// A standalone product contract (TOML).
        #[arg(long, conflicts_with_all = ["config", "product"])]
        contract: Option<PathBuf>,
        /// The agent configuration holding the product.
        #[arg(long, requires = "product")]
        config: Option<PathBuf>,
        /// Product name in --config.
        #[arg(long, requires = "config")]
        product: Option<String>,
        /// Output root: files go to OUT/{product}/{k=v}/part-{batch}-N.parquet (N from 0).
        #[arg(long)]
        out: PathBuf,
        /// Folder for NAME.error.json / NAME.rejects.csv (default: --out).
        #[arg(long)]
        report_dir: Option<PathBuf>,
        /// Pseudonym key file (0600) for pii = "hmac" columns (default: the config's).
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// Threads (one parses, the others encode; with two or more, the file is also read and
        /// hashed on a thread beside them); 0 = one per core.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Memory for rows waiting to be encoded, pages and open row groups, in MiB.
        #[arg(long, default_value_t = 64)]
        memory_mib: usize,
        /// Never draw a progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// The service: watch the inboxes, convert, upload, announce (until SIGTERM; SIGHUP reloads).
    Run {
        /// The agent configuration.
        #[arg(long, env = "LAKEMESH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Convert, upload and announce one file now (the file is copied; the original stays).
    Ingest {
        /// The CSV export.
        file: PathBuf,
        /// The product it belongs to.
        #[arg(long)]
        product: String,
        /// Announce it even if the same content was delivered before.
        #[arg(long)]
        force: bool,
        /// The agent configuration.
        #[arg(long, env = "LAKEMESH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Show the backlog, failed files and the last error.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// The agent configuration.
        #[arg(long, env = "LAKEMESH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Send failed files back to the inbox (after the export or the contract was fixed).
    Retry {
        /// The product.
        #[arg(long)]
        product: String,
        /// Names in failed/PRODUCT/ (default: every failed file of the product).
        files: Vec<String>,
        /// The agent configuration.
        #[arg(long, env = "LAKEMESH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Validate the configuration and check that the bucket and the queue answer.
    CheckConfig {
        /// The agent configuration.
        #[arg(long, env = "LAKEMESH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Skip the AWS checks (the service's ExecStartPre: the agent must start, and spool,
        /// while the network is down).
        #[arg(long)]
        offline: bool,
    },
    /// Read every row of an export and print a contract to review and pin.
    Infer {
        file: PathBuf,
        /// Table name (default: from the file name).
        #[arg(long)]
        name: Option<String>,
        /// Domain (data type) of the product.
        #[arg(long, default_value = "unclassified")]
        domain: String,
        /// Delimiter: , ; | \t or auto.
        #[arg(long, default_value = "auto")]
        delimiter: String,
        /// Encoding: auto, utf-8, windows-1252, iso-8859-1, utf-16.
        #[arg(long, default_value = "auto")]
        encoding: String,
        /// Lines to skip before the header.
        #[arg(long, default_value_t = 0)]
        skip_rows: u64,
        /// The file has no header line.
        #[arg(long)]
        no_header: bool,
        /// Write the contract here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { .. }
        | Command::Ingest { .. }
        | Command::Status { .. }
        | Command::Retry { .. }
        | Command::CheckConfig { .. } => {
            if matches!(cli.command, Command::Run { .. }) {
                lakemesh_shared::logging::init();
            } else {
                lakemesh_shared::logging::init_stderr();
            }
            let is_run = matches!(cli.command, Command::Run { .. });
            let r = deliver(cli.command).await;
            if is_run {
                // A conversion abandoned at shutdown may still run on a blocking thread: do
                // not wait for it (the ledger makes the next start convert again).
                let code = exit_code(r);
                log::logger().flush();
                std::process::exit(i32::from(code.1));
            }
            r
        }
        other => {
            lakemesh_shared::logging::init_stderr();
            run(other)
        }
    };
    exit_code(result).0
}

/// The exit code of a command's result, printing the error chain once.
fn exit_code(result: Result<ExitCode>) -> (ExitCode, u8) {
    match result {
        Ok(code) => (code, if code == ExitCode::SUCCESS { 0 } else { 2 }),
        Err(e) => {
            eprintln!("error: {}", lakemesh_shared::error_chain(e.as_ref()));
            if e.downcast_ref::<ConvertError>()
                .is_some_and(ConvertError::is_rejection)
            {
                (ExitCode::from(2), 2)
            } else {
                (ExitCode::from(1), 1)
            }
        }
    }
}

/// The commands that deliver or report on delivery.
async fn deliver(command: Command) -> Result<ExitCode> {
    match command {
        Command::Run { config } => {
            service::run(&config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest {
            file,
            product,
            force,
            config,
        } => match service::ingest(&config, &file, &product, force).await? {
            Ingested::Delivered(d) => {
                lakemesh_shared::outln!(
                    "{}: delivered {} batch {}: {} rows, {} objects, {} bytes (message {})",
                    file.display(),
                    d.product,
                    d.batch_id,
                    d.rows,
                    d.objects,
                    d.bytes,
                    d.message_id
                );
                Ok(ExitCode::SUCCESS)
            }
            Ingested::Duplicate { of } => {
                lakemesh_shared::outln!(
                    "{}: same content as file {of}, delivered already; not announced again (--force sends it again)",
                    file.display()
                );
                Ok(ExitCode::SUCCESS)
            }
            Ingested::Refused { path, reason } => {
                eprintln!("error: {reason}\nthe file is in {}", path.display());
                Ok(ExitCode::from(2))
            }
            Ingested::Spooled { error } => bail!(
                "{error}\n{}: converted and kept in the spool; `lakemesh-agent run` delivers it",
                file.display()
            ),
        },
        Command::Status { json, config } => {
            let cfg = AgentConfig::load(&config)?;
            if !cfg.state_dir.is_dir() {
                bail!(
                    "state_dir {} of {} does not exist: the agent never ran with this configuration (or --config names the wrong file)",
                    cfg.state_dir.display(),
                    config.display()
                );
            }
            let st = lakemesh_agent::status::read(&cfg)?;
            if json {
                lakemesh_shared::outln!("{}", serde_json::to_string_pretty(&st)?);
            } else {
                lakemesh_shared::out!("{}", st.to_text());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Retry {
            product,
            files,
            config,
        } => {
            let cfg = AgentConfig::load(&config)?;
            let moved = lakemesh_agent::retry::retry(&cfg, &product, &files)?;
            for p in &moved {
                lakemesh_shared::outln!("{}: back in the inbox", p.display());
            }
            if moved.is_empty() {
                lakemesh_shared::outln!("no failed file of {product} to retry");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { config, offline } => {
            let cfg = match AgentConfig::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    lakemesh_shared::outln!("FAILED  config {}: {e}", config.display());
                    return Ok(ExitCode::from(1));
                }
            };
            let checks = if offline {
                lakemesh_agent::check::check_local(&cfg)
            } else {
                let sdk = service::sdk_config(&cfg).await?;
                lakemesh_agent::check::check(&cfg, &sdk).await
            };
            for c in &checks {
                lakemesh_shared::outln!("{c}");
            }
            Ok(if checks.iter().all(|c| c.outcome.is_ok()) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        _ => bail!("not a delivery command"),
    }
}

fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Convert {
            file,
            contract,
            config,
            product,
            out,
            report_dir,
            key_file,
            threads,
            memory_mib,
            quiet,
        } => {
            let (contract, cfg_key) = match (contract, config, product) {
                (Some(c), _, _) => (Contract::from_file(&c)?, None),
                (None, Some(cfg), Some(p)) => {
                    let cfg = AgentConfig::load(&cfg)?;
                    (cfg.product(&p)?.clone(), cfg.pseudonym_key_file.clone())
                }
                _ => bail!("give --contract FILE, or --config FILE with --product NAME"),
            };
            let key = match key_file.or(cfg_key) {
                Some(k) if contract.needs_pseudonym_key() => Some(PseudonymKey::load(&k)?),
                _ => None,
            };
            let mut opts = ConvertOptions::new(&out);
            if let Some(r) = report_dir {
                opts.report_dir = r;
            }
            opts.key = key;
            opts.threads = match threads {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                n => n,
            };
            opts.memory_budget_bytes = memory_mib.max(8) * 1024 * 1024;
            let size = std::fs::metadata(&file)
                .with_context(|| format!("cannot read {}", file.display()))?
                .len();
            let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
                let b = indicatif::ProgressBar::new(size);
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{spinner} {bytes}/{total_bytes} {wide_bar} {bytes_per_sec} eta {eta}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                b
            });
            if let Some(b) = &bar {
                let b = b.clone();
                opts.progress = Some(Box::new(move |n| b.set_position(n)));
            }
            let result = convert_file(&contract, &file, &opts);
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            let r = result?;
            let mb = r.source_bytes as f64 / 1e6;
            lakemesh_shared::outln!(
                "{}: {} rows, {} rejected, {} files, {} bytes, {:.2} s, {:.1} MB/s (batch {})",
                file.display(),
                r.rows_written,
                r.rows_rejected,
                r.objects.len(),
                r.output_bytes(),
                r.seconds,
                if r.seconds > 0.0 { mb / r.seconds } else { 0.0 },
                r.batch_id
            );
            if let Some(rej) = &r.rejects_file {
                eprintln!(
                    "warning: {} rejected rows written to {}",
                    r.rows_rejected,
                    rej.display()
                );
                return Ok(ExitCode::from(2));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Infer {
            file,
            name,
            domain,
            delimiter,
            encoding,
            skip_rows,
            no_header,
            output,
        } => {
            let name = match name {
                Some(n) => n,
                None => default_name(&file),
            };
            // Validate the CLI's dialect through the contract rules.
            let raw: RawContract = toml::from_str(&format!(
                "name = {}\ndomain = {}\n[csv]\ndelimiter = {}\nencoding = {}\nheader = {}\nskip_rows = {skip_rows}\n",
                toml::Value::String(name.clone()),
                toml::Value::String(domain.clone()),
                toml::Value::String(delimiter),
                toml::Value::String(encoding),
                !no_header
            ))?;
            let c = Contract::try_from(raw)?;
            let csv: CsvSettings = c.csv.clone();
            let inferred = infer::infer_file(&file, &csv)?;
            let file_name = file
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = infer::render_contract(&inferred, &name, &domain, &csv, &file_name);
            match output {
                Some(o) => {
                    std::fs::write(&o, &text)
                        .with_context(|| format!("cannot write {}", o.display()))?;
                    eprintln!(
                        "{}: {} rows read, contract written to {}",
                        file.display(),
                        inferred.rows,
                        o.display()
                    );
                }
                None => lakemesh_shared::out!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        _ => bail!("not a local command"),
    }
}

fn default_name(file: &Path) -> String {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    lakemesh_shared::names::normalise_header(&stem).unwrap_or_else(|| "product".into())
}
