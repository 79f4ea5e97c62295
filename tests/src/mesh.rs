//! The local mesh: a small ministry on one machine. Two producers of different kinds (a
//! university hospital and an insurer), each with its own bucket and its own `lakemesh-agent`,
//! and one central `lakemesh-syncd` with a producer registry and the ministry's policy, all
//! against a dedicated local AWS emulator.
//!
//! Owns the scenario's set-up (buckets, the announcements queue and its dead-letter queue, the
//! roles the policy names, configuration files, pseudonym keys), dropping the sample exports of
//! `examples/mesh/` into the agents' inboxes, running the agents until every file is settled and
//! the daemon until the queue is drained. The binaries run as real processes, as an operator
//! starts them. It does not decide anything the programs decide, and it reads results back only
//! in [`crate::report`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_sqs::types::QueueAttributeName;
use lakemesh_agent::ledger::{FileRecord, Ledger};
use lakemesh_shared::testbed::{
    ACCOUNT_ID, Emulator, MOTO_SENDER_ID, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY,
};

/// The role Glue crawlers run as.
pub const CRAWLER_ROLE: &str = "lakemesh-crawler";
/// The role Lake Formation reads registered locations with.
pub const REGISTRATION_ROLE: &str = "lakemesh-lf-registration";
/// The principals of `examples/mesh/ministry/policy.toml`, each in its own account (the
/// ministry's statistics department, the Occitanie regional health agency, the insurers'
/// auditors).
pub const STATISTICS: &str = "arn:aws:iam::111122223333:role/ministry-statistics";
pub const AGENCY: &str = "arn:aws:iam::444455556666:role/regional-agency-occitanie";
pub const AUDITOR: &str = "arn:aws:iam::777788889999:role/insurance-auditor";

/// Every principal of the policy.
pub const PRINCIPALS: [&str; 3] = [STATISTICS, AGENCY, AUDITOR];
/// The Athena workgroup `verify` probes in (one per principal's account).
pub const WORKGROUP: &str = "lakemesh-verify";
/// The bucket of the probes' results.
pub const RESULTS_BUCKET: &str = "ministry-athena-results";

/// The ARN of role `name` in the emulator's account.
pub fn role_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT_ID}:role/{name}")
}

/// One producer of the scenario.
#[derive(Debug, Clone)]
pub struct ProducerSpec {
    /// Registered id.
    pub id: &'static str,
    /// Its own bucket.
    pub bucket: &'static str,
    /// Origin part of its database names.
    pub origin: &'static str,
    /// The domain of its product.
    pub domain: &'static str,
    /// Folder under `examples/mesh/` holding the contract and `exports/`.
    pub folder: &'static str,
    /// Contract file in that folder; its `name` is the product.
    pub contract: &'static str,
}

/// The hospital (Windows-1252 stays) and the insurer (UTF-8 claims).
pub const PRODUCERS: [ProducerSpec; 2] = [
    ProducerSpec {
        id: "chu-lyon",
        bucket: "chu-lyon-datamesh",
        origin: "chu",
        domain: "hospital_activity",
        folder: "chu-lyon",
        contract: "hospital_stays.toml",
    },
    ProducerSpec {
        id: "mutuelle-sud",
        bucket: "mutuelle-sud-datamesh",
        origin: "mutuelle",
        domain: "insurance_claims",
        folder: "mutuelle-sud",
        contract: "claims.toml",
    },
];

/// Where the programs and the sample data are.
#[derive(Debug, Clone)]
pub struct MeshOptions {
    /// Everything the run writes (configurations, state folders, logs); emptied first, so a
    /// second run needs no cleaning by hand.
    pub work_dir: PathBuf,
    pub agent_bin: PathBuf,
    pub syncd_bin: PathBuf,
    /// `examples/mesh` of the repository.
    pub examples: PathBuf,
}

/// One producer's site on this machine.
#[derive(Debug)]
pub struct Site {
    pub spec: ProducerSpec,
    /// The product (table) name, from the contract.
    pub product: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    /// The exports this site drops.
    pub exports: Vec<PathBuf>,
}

impl Site {
    pub fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    pub fn inbox(&self) -> PathBuf {
        self.state().join("inbox").join(&self.product)
    }

    /// The agent's ledger: every file it claimed, and where it stands.
    pub fn files(&self) -> Result<Vec<FileRecord>> {
        let path = self.state().join("ledger.sqlite");
        if !path.exists() {
            return Ok(Vec::new());
        }
        let ledger = Ledger::open(&path).with_context(|| format!("ledger {}", path.display()))?;
        ledger
            .all_files()
            .with_context(|| format!("ledger {}", path.display()))
    }
}

/// The running scenario.
pub struct Mesh {
    pub emulator: Emulator,
    pub opts: MeshOptions,
    pub sites: Vec<Site>,
    pub queue_url: String,
    pub dlq_url: String,
    pub syncd_config: PathBuf,
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, bytes).with_context(|| format!("write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 600 {}", path.display()))
}

/// A pseudonym key derived from the site (fixed, so two runs give the same pseudonyms).
fn key_for(id: &str) -> Vec<u8> {
    format!("local mesh pseudonym key of {id}: not for production use\n").into_bytes()
}

impl Mesh {
    /// Starts the emulator and sets up both producers and the central account.
    pub async fn up(opts: MeshOptions) -> Result<Self> {
        if opts.work_dir.exists() {
            std::fs::remove_dir_all(&opts.work_dir)
                .with_context(|| format!("empty {}", opts.work_dir.display()))?;
        }
        std::fs::create_dir_all(&opts.work_dir)
            .with_context(|| format!("create {}", opts.work_dir.display()))?;
        for bin in [&opts.agent_bin, &opts.syncd_bin] {
            if !bin.is_file() {
                bail!("{} not found: build the workspace first", bin.display());
            }
        }
        let emulator = Emulator::start().context("start the local AWS emulator")?;
        let sdk = emulator.sdk_config().await;

        // Central account: the announcements queue with its dead-letter queue, the roles.
        let dlq_url = emulator
            .create_queue("lakemesh-announcements-dlq", &[])
            .await
            .context("create the dead-letter queue")?;
        let sqs = emulator.sqs(&sdk);
        let dlq_arn = sqs
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .context("dead-letter queue attributes")?
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .context("dead-letter queue has no QueueArn")?;
        let queue_url = emulator
            .create_queue(
                "lakemesh-announcements",
                &[(
                    QueueAttributeName::RedrivePolicy,
                    format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"3"}}"#),
                )],
            )
            .await
            .context("create the announcements queue")?;
        let iam = emulator.iam(&sdk);
        for (role, service) in [
            (CRAWLER_ROLE, "glue.amazonaws.com"),
            (REGISTRATION_ROLE, "lakeformation.amazonaws.com"),
        ] {
            let trust = format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Service":"{service}","AWS":"arn:aws:iam::{ACCOUNT_ID}:root"}},"Action":"sts:AssumeRole"}}]}}"#
            );
            iam.create_role()
                .role_name(role)
                .assume_role_policy_document(trust)
                .send()
                .await
                .with_context(|| format!("create role {role}"))?;
        }

        emulator
            .create_bucket(RESULTS_BUCKET)
            .await
            .context("create the Athena results bucket")?;

        // Producers: a bucket, a site folder, an agent configuration each.
        let endpoint = emulator.endpoint().to_owned();
        let mut sites = Vec::new();
        for spec in PRODUCERS {
            emulator
                .create_bucket(spec.bucket)
                .await
                .with_context(|| format!("create bucket {}", spec.bucket))?;
            let src = opts.examples.join(spec.folder);
            let contract_path = src.join(spec.contract);
            let contract_text = std::fs::read_to_string(&contract_path)
                .with_context(|| format!("read {}", contract_path.display()))?;
            let contract: toml::Table = toml::from_str(&contract_text)
                .with_context(|| format!("parse {}", contract_path.display()))?;
            let product = contract
                .get("name")
                .and_then(|v| v.as_str())
                .with_context(|| format!("{}: no name", contract_path.display()))?
                .to_owned();
            let dir = opts.work_dir.join(spec.id);
            std::fs::create_dir_all(&dir)?;
            let key = dir.join("pseudonym.key");
            write_private(&key, &key_for(spec.id))?;
            let mut cfg = toml::Table::new();
            let s = |v: &str| toml::Value::String(v.to_owned());
            cfg.insert("producer_id".into(), s(spec.id));
            cfg.insert("bucket".into(), s(spec.bucket));
            cfg.insert("prefix".into(), s("products"));
            cfg.insert("queue_url".into(), s(&queue_url));
            cfg.insert("pseudonym_key_file".into(), s(&key.display().to_string()));
            cfg.insert(
                "state_dir".into(),
                s(&dir.join("state").display().to_string()),
            );
            for (k, v) in [
                ("settle_secs", 1),
                ("rescan_secs", 1),
                ("retry_initial_secs", 1),
                ("retry_max_secs", 5),
            ] {
                cfg.insert(k.into(), toml::Value::Integer(v));
            }
            let mut aws = toml::Table::new();
            aws.insert("region".into(), s(lakemesh_shared::testbed::REGION));
            aws.insert("endpoint_url".into(), s(&endpoint));
            aws.insert("force_path_style".into(), toml::Value::Boolean(true));
            cfg.insert("aws".into(), toml::Value::Table(aws));
            cfg.insert(
                "product".into(),
                toml::Value::Array(vec![toml::Value::Table(contract)]),
            );
            let config = dir.join("agent.toml");
            std::fs::write(
                &config,
                format!(
                    "# The agent of {} in the local mesh (written by lakemesh-mesh).\n{}",
                    spec.id,
                    toml::to_string(&cfg)?
                ),
            )?;
            let mut exports: Vec<PathBuf> = std::fs::read_dir(src.join("exports"))
                .with_context(|| format!("read {}", src.join("exports").display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            exports.sort();
            sites.push(Site {
                spec,
                product,
                dir,
                config,
                exports,
            });
        }

        // The central daemon: registry and policy.
        let central = opts.work_dir.join("ministry");
        std::fs::create_dir_all(&central)?;
        let policy = opts.examples.join("ministry").join("policy.toml");
        let mut text = format!(
            r#"# The ministry's lakemesh-syncd in the local mesh (written by lakemesh-mesh).
queue_url = "{queue_url}"
dead_letter_queue_url = "{dlq_url}"
policy_file = "{policy}"
state_dir = "{state}"
crawler_role_arn = "{crawler}"
registration_role_arn = "{registration}"
wait_time_secs = 1
crawler_poll_secs = 1
retry_limit_secs = 20
visibility_timeout_secs = 120

# verify runs Athena probes as each principal; the emulator answers what Mesh::queue_answers
# queued (it neither runs queries nor enforces Lake Formation).
[verify]
workgroup = "{workgroup}"
output_location = "s3://{results}/verify/"
propagation_timeout_secs = 2
poll_interval_ms = 100

[aws]
region = "{region}"
endpoint_url = "{endpoint}"
force_path_style = true
"#,
            policy = policy.display(),
            state = central.join("state").display(),
            workgroup = WORKGROUP,
            results = RESULTS_BUCKET,
            crawler = role_arn(CRAWLER_ROLE),
            registration = role_arn(REGISTRATION_ROLE),
            region = lakemesh_shared::testbed::REGION,
        );
        for spec in PRODUCERS {
            // moto reports one SenderId for every sender; on AWS each agent role has its own
            text.push_str(&format!(
                r#"
[[producer]]
id = "{id}"
account_id = "{ACCOUNT_ID}"
sender_ids = ["{MOTO_SENDER_ID}"]
origin = "{origin}"
bucket = "{bucket}"
prefix = "products"
domains = ["{domain}"]
"#,
                id = spec.id,
                origin = spec.origin,
                bucket = spec.bucket,
                domain = spec.domain,
            ));
        }
        let syncd_config = central.join("syncd.toml");
        std::fs::write(&syncd_config, text)?;
        Ok(Self {
            emulator,
            opts,
            sites,
            queue_url,
            dlq_url,
            syncd_config,
        })
    }

    /// A command with the emulator's test credentials and nothing of the machine's AWS set-up.
    fn command(&self, bin: &Path, dir: &Path) -> Command {
        let mut c = Command::new(bin);
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                dir.join("no-aws-credentials"),
            )
            .env(
                "LAKEMESH_LOG",
                std::env::var("LAKEMESH_LOG").unwrap_or_else(|_| "info".into()),
            );
        c
    }

    /// Drops every sample export into its site's inbox, the way an export job does (written
    /// under a temporary name, then renamed).
    pub fn drop_exports(&self) -> Result<usize> {
        let mut n = 0;
        for site in &self.sites {
            std::fs::create_dir_all(site.inbox())?;
            for f in &site.exports {
                let Some(name) = f.file_name() else { continue };
                let tmp = site
                    .inbox()
                    .join(format!(".{}.part", name.to_string_lossy()));
                std::fs::copy(f, &tmp)
                    .with_context(|| format!("copy {} to {}", f.display(), tmp.display()))?;
                std::fs::rename(&tmp, site.inbox().join(name))?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Runs every agent until each has settled every file it was given (delivered or failed),
    /// then stops them with SIGTERM, as systemd would.
    pub fn deliver(&self, limit: Duration) -> Result<()> {
        let mut agents: Vec<(Child, &Site)> = Vec::new();
        for site in &self.sites {
            let log = std::fs::File::create(site.dir.join("agent.log"))?;
            let child = self
                .command(&self.opts.agent_bin, &site.dir)
                .args(["run", "--config"])
                .arg(&site.config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .with_context(|| format!("start {}", self.opts.agent_bin.display()))?;
            agents.push((child, site));
        }
        let deadline = Instant::now() + limit;
        let result = loop {
            let mut all = true;
            for (child, site) in agents.iter_mut() {
                if let Some(status) = child.try_wait()? {
                    break_with_log(
                        site,
                        &format!("the agent of {} exited: {status}", site.spec.id),
                    )?;
                }
                let files = site.files()?;
                let settled = files.len() == site.exports.len()
                    && files.iter().all(|f| !f.state.is_pending());
                all &= settled;
            }
            if all {
                break Ok(());
            }
            if Instant::now() > deadline {
                break Err(anyhow::anyhow!(
                    "the agents did not settle within {} s; logs in {}",
                    limit.as_secs(),
                    self.opts.work_dir.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        for (child, site) in agents.iter_mut() {
            stop(child).with_context(|| format!("stop the agent of {}", site.spec.id))?;
        }
        result
    }

    /// The ministry's folder (its configuration, state and logs).
    fn central_dir(&self) -> &Path {
        self.syncd_config.parent().unwrap_or(Path::new("."))
    }

    /// `lakemesh-syncd --config … ARGS`, as the operator runs it; its output.
    fn syncd(&self, args: &[&str]) -> Result<std::process::Output> {
        self.command(&self.opts.syncd_bin, self.central_dir())
            .arg("--config")
            .arg(&self.syncd_config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("run {} {}", self.opts.syncd_bin.display(), args.join(" ")))
    }

    /// Runs the daemon until the queue is drained (`run --once`); returns its log.
    pub fn sync(&self) -> Result<String> {
        let out = self.syncd(&["run", "--once"])?;
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        std::fs::write(self.central_dir().join("syncd.log"), &log)?;
        if !out.status.success() {
            bail!(
                "lakemesh-syncd run --once: {}\n{}",
                out.status,
                tail(&log, 40)
            );
        }
        Ok(log)
    }

    /// `lakemesh-syncd preview --json` of `table` for `principal` on the product's objects in
    /// S3: `Ok(json)`, or `Err(message)` when the policy gives it no access.
    pub fn preview(
        &self,
        table: &str,
        principal: &str,
        data: &str,
    ) -> Result<std::result::Result<serde_json::Value, String>> {
        let out = self.syncd(&[
            "preview",
            "--table",
            table,
            "--principal",
            principal,
            "--data",
            data,
            "--limit",
            "3",
            "--json",
        ])?;
        if out.status.success() {
            return Ok(Ok(
                serde_json::from_slice(&out.stdout).context("lakemesh-syncd preview --json")?
            ));
        }
        let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if out.status.code() == Some(1) && err.contains("no grant") {
            return Ok(Err(err));
        }
        bail!("lakemesh-syncd preview: {}\n{err}", out.status)
    }

    /// Prepares the emulator for `verify`: the workgroup in each principal's account (moto
    /// switches account on AssumeRole), and, in the order verify probes, the answers Lake
    /// Formation would give *as it holds the grants now* (read back in `access`): the columns
    /// its grants let through, and no row outside the filter when it holds the policy's data
    /// cells filter (else every row the filter should have hidden). Refusal probes get no
    /// answer: the emulator does not enforce Lake Formation, so they read the table and fail.
    pub async fn queue_verify_answers(
        &self,
        access: &[crate::report::AccessReport],
        rows_hidden: &dyn Fn(&str, &str) -> u64,
    ) -> Result<usize> {
        let sdk = self.emulator.sdk_config().await;
        let (settings, policy) = lakemesh_syncd::commands::load(&self.syncd_config)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let clients =
            lakemesh_syncd::consume::Clients::new(&sdk, &settings.aws, &settings.queue_url);
        let daemon = lakemesh_syncd::consume::Daemon::new(
            settings,
            std::sync::Arc::clone(&policy),
            clients,
            None,
        );
        let tables = daemon
            .governor()
            .managed_tables(None)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let (probes, _) = lakemesh_syncd::verify::plan(&policy, &tables, None, None)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let sts = aws_sdk_sts::Client::new(&sdk);
        let mut by_account: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for principal in PRINCIPALS {
            let c = sts
                .assume_role()
                .role_arn(principal)
                .role_session_name("lakemesh-mesh-setup")
                .send()
                .await
                .with_context(|| format!("AssumeRole {principal}"))?
                .credentials
                .context("AssumeRole: no credentials")?;
            let creds = aws_sdk_athena::config::Credentials::new(
                c.access_key_id(),
                c.secret_access_key(),
                Some(c.session_token().to_owned()),
                None,
                "lakemesh-mesh",
            );
            let athena = aws_sdk_athena::Client::from_conf(
                aws_sdk_athena::config::Builder::from(&sdk)
                    .credentials_provider(creds)
                    .build(),
            );
            let exists = athena
                .get_work_group()
                .work_group(WORKGROUP)
                .send()
                .await
                .ok()
                .and_then(|o| o.work_group)
                .is_some();
            if !exists {
                athena
                    .create_work_group()
                    .name(WORKGROUP)
                    .send()
                    .await
                    .with_context(|| format!("CreateWorkGroup as {principal}"))?;
            }
        }
        let answer = |columns: &[String], rows: &[Vec<String>]| {
            let cell = |v: &str| serde_json::json!({ "VarCharValue": v });
            let mut data = vec![
                serde_json::json!({ "Data": columns.iter().map(|c| cell(c)).collect::<Vec<_>>() }),
            ];
            data.extend(rows.iter().map(
                |r| serde_json::json!({ "Data": r.iter().map(|v| cell(v)).collect::<Vec<_>>() }),
            ));
            serde_json::json!({
                "rows": data,
                "column_info": columns.iter().map(|c| serde_json::json!({"Name": c, "Label": c, "Type": "varchar"})).collect::<Vec<_>>(),
            })
            .to_string()
        };
        let mut queued = 0;
        for probe in &probes {
            let table = probe.table.to_string();
            let held = access.iter().find(|a| {
                a.principal == probe.principal
                    && a.table == table
                    && a.permissions.iter().any(|p| p == "SELECT")
            });
            let Some(held) = held else { continue };
            let Some(t) = tables.iter().find(|t| t.table == probe.table) else {
                continue;
            };
            let all: Vec<String> = t.columns.keys().cloned().collect();
            let text = match probe.kind {
                lakemesh_syncd::verify::ProbeKind::Columns => {
                    let visible: Vec<String> =
                        if let Some(only) = held.columns.strip_prefix("only ") {
                            only.split(", ").map(str::to_owned).collect()
                        } else {
                            let hidden: Vec<&str> = held
                                .columns
                                .strip_prefix("all but ")
                                .map(|x| x.split(", ").collect())
                                .unwrap_or_default();
                            all.iter()
                                .filter(|c| !hidden.contains(&c.as_str()))
                                .cloned()
                                .collect()
                        };
                    answer(&visible, &[])
                }
                lakemesh_syncd::verify::ProbeKind::Rows => {
                    let want = match &probe.expect {
                        lakemesh_syncd::verify::Expect::Rows(c) => {
                            c.trim_matches(|c| c == '(' || c == ')').to_owned()
                        }
                        _ => String::new(),
                    };
                    let outside = if held.rows == want {
                        0
                    } else {
                        rows_hidden(&probe.principal, &table)
                    };
                    answer(&["_col0".to_owned()], &[vec![outside.to_string()]])
                }
                lakemesh_syncd::verify::ProbeKind::Refused => continue,
            };
            let account = probe
                .principal
                .split(':')
                .nth(4)
                .unwrap_or_default()
                .to_owned();
            by_account.entry(account).or_default().push(text);
            queued += 1;
        }
        for (account, results) in by_account {
            self.emulator
                .queue_athena_results(
                    &account,
                    lakemesh_shared::testbed::REGION,
                    &format!("[{}]", results.join(",")),
                )
                .with_context(|| format!("queue Athena answers for account {account}"))?;
        }
        Ok(queued)
    }

    /// `lakemesh-syncd verify --json`: the report (its exit code is in `ok`).
    pub fn verify(&self) -> Result<serde_json::Value> {
        let out = self.syncd(&["verify", "--json"])?;
        std::fs::write(self.central_dir().join("verify.log"), &out.stderr)?;
        serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "lakemesh-syncd verify: {}\n{}",
                out.status,
                tail(&String::from_utf8_lossy(&out.stderr), 20)
            )
        })
    }

    /// `lakemesh-syncd plan`: what apply would still change (nothing, after a sync).
    pub fn plan(&self) -> Result<String> {
        let out = self.syncd(&["plan"])?;
        if !out.status.success() {
            bail!(
                "lakemesh-syncd plan: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn break_with_log(site: &Site, what: &str) -> Result<()> {
    let log = std::fs::read_to_string(site.dir.join("agent.log")).unwrap_or_default();
    bail!("{what}\n{}", tail(&log, 40))
}

fn tail(text: &str, lines: usize) -> String {
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// SIGTERM, then wait (SIGKILL after 30 s).
fn stop(child: &mut Child) -> Result<()> {
    if child.try_wait()?.is_some() {
        return Ok(());
    }
    let pid = i32::try_from(child.id()).context("pid")?;
    // A signal to our own child: no memory is touched, only the process is asked to stop.
    let rc = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    if !rc.success() {
        bail!("kill -TERM {pid} failed");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill()?;
    child.wait()?;
    bail!("did not stop within 30 s of SIGTERM")
}
