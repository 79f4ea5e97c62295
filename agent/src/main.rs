//! `lakemesh-agent`: command line of the producer agent. Parses arguments, loads settings, runs
//! the library and maps the outcome to an exit code (0 ok, 1 error, 2 file rejected).

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
        /// Output root: files go to OUT/{product}/{k=v}/part-{batch}-{n}.parquet.
        #[arg(long)]
        out: PathBuf,
        /// Folder for NAME.error.json / NAME.rejects.csv (default: --out).
        #[arg(long)]
        report_dir: Option<PathBuf>,
        /// Pseudonym key file (0600) for pii = "hmac" columns (default: the config's).
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// Threads (the final encoding runs partitions in parallel); 0 = one per core.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Memory for buffered values before they are written or spilled, in MiB.
        #[arg(long, default_value_t = 64)]
        memory_mib: usize,
        /// Never draw a progress bar.
        #[arg(long)]
        quiet: bool,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    lakemesh_shared::logging::init_stderr();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<ConvertError>()
                .is_some_and(ConvertError::is_rejection)
            {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
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
            println!(
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
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn default_name(file: &Path) -> String {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    lakemesh_shared::names::normalise_header(&stem).unwrap_or_else(|| "product".into())
}
