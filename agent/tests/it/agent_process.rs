//! Support for the delivery tests: an agent configuration pointing at an emulator, the real
//! `lakemesh-agent` binary as a child process, and readers of the bucket, the queue and the
//! ledger. Fixtures are tiny CSV exports written inline, named for what they show.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::MessageSystemAttributeName;
use lakemesh_agent::ledger::{FileRecord, Ledger, State};
use lakemesh_shared::announcement::Announcement;
use lakemesh_shared::testbed::{Emulator, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY};

/// Two rows in two years: two objects (`year=2023`, `year=2024`).
pub const TWO_YEARS: &str = "id,adm\n1,2024-01-02\n2,2023-05-06\n";
/// A date the contract's format does not read: the file is rejected.
pub const BAD_DATE: &str = "id,adm\n1,02/01/2024\n";

/// The product every delivery test uses (`{extra}` lands in the product table).
pub fn product_toml(extra: &str) -> String {
    format!(
        r#"
[[product]]
name = "stays"
domain = "hospital_activity"
partition_by = [ {{ column = "adm", transform = "year" }} ]
columns = [ {{ name = "id", type = "bigint", source = "id" }}, {{ name = "adm", type = "date", formats = ["%Y-%m-%d"] }} ]
{extra}
"#
    )
}

/// One agent's folders, configuration and credentials.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub bucket: String,
    pub queue: String,
    pub endpoint: String,
    /// Top-level keys added to the configuration (`settle_secs = 1`…).
    pub settings: String,
    pub product_extra: String,
    pub prefix: String,
    pub credentials: (String, String),
    /// More environment for the agent process.
    pub extra_env: Vec<(String, String)>,
}

impl Site {
    /// A site with a fresh bucket and queue on `e`.
    pub async fn new(e: &Emulator, name: &str) -> Self {
        let bucket = e.fresh_bucket(name).await.unwrap();
        let queue = e.fresh_queue(name).await.unwrap();
        Self {
            dir: tempfile::tempdir().unwrap(),
            bucket,
            queue,
            endpoint: e.endpoint().to_owned(),
            settings: String::new(),
            product_extra: String::new(),
            prefix: "products".into(),
            credentials: (TEST_ACCESS_KEY_ID.into(), TEST_SECRET_ACCESS_KEY.into()),
            extra_env: Vec::new(),
        }
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("agent.toml")
    }

    pub fn inbox(&self) -> PathBuf {
        self.state().join("inbox").join("stays")
    }

    pub fn failed(&self) -> PathBuf {
        self.state().join("failed").join("stays")
    }

    /// Writes `agent.toml` (again): short settle and retry times for tests.
    pub fn write_config(&self) -> PathBuf {
        let text = format!(
            r#"producer_id = "chu-lyon"
bucket = "{bucket}"
prefix = "{prefix}"
queue_url = "{queue}"
state_dir = "{state}"
settle_secs = 1
rescan_secs = 1
retry_initial_secs = 1
retry_max_secs = 2
shutdown_grace_secs = 10
{settings}

[aws]
region = "eu-west-3"
endpoint_url = "{endpoint}"
force_path_style = true
max_attempts = 1
connect_timeout_secs = 2
operation_timeout_secs = 30
{product}"#,
            bucket = self.bucket,
            prefix = self.prefix,
            queue = self.queue,
            state = self.state().display(),
            settings = self.settings,
            endpoint = self.endpoint,
            product = product_toml(&self.product_extra),
        );
        std::fs::write(self.config_path(), text).unwrap();
        self.config_path()
    }

    /// The agent binary with this site's configuration and credentials, and nothing from the
    /// machine's AWS environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_lakemesh-agent"));
        c.args(args)
            .arg("--config")
            .arg(self.config_path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_ACCESS_KEY_ID", &self.credentials.0)
            .env("AWS_SECRET_ACCESS_KEY", &self.credentials.1)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", self.dir.path().join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.dir.path().join("no-aws-credentials"),
            )
            .env("LAKEMESH_LOG", "debug")
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Runs a command to its end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Starts `lakemesh-agent run` (with `failpoint` armed if given).
    pub fn start(&self, failpoint: Option<&str>) -> AgentProcess {
        let mut c = self.command(&["run"]);
        if let Some(f) = failpoint {
            c.env("LAKEMESH_FAILPOINT", f);
        }
        let log = self.dir.path().join(format!(
            "agent-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let f = std::fs::File::create(&log).unwrap();
        let child = c
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .unwrap();
        AgentProcess {
            child: Some(child),
            log,
        }
    }

    /// Drops `content` into the inbox as `name` (written beside it, then renamed in, as an
    /// export job that finished would).
    pub fn drop_file(&self, name: &str, content: &str) -> PathBuf {
        std::fs::create_dir_all(self.inbox()).unwrap();
        let tmp = self.inbox().join(format!(".{name}.writing"));
        std::fs::write(&tmp, content).unwrap();
        let dest = self.inbox().join(name);
        std::fs::rename(&tmp, &dest).unwrap();
        dest
    }

    /// Every file of the ledger (empty before the first start).
    pub fn files(&self) -> Vec<FileRecord> {
        let p = self.state().join("ledger.sqlite");
        if !p.exists() {
            return Vec::new();
        }
        Ledger::open(&p).unwrap().all_files().unwrap()
    }

    /// Waits until the ledger holds `n` files and none is pending.
    pub fn wait_settled(
        &self,
        n: usize,
        agent: &mut AgentProcess,
        limit: Duration,
    ) -> Vec<FileRecord> {
        wait_for(limit, || {
            agent.assert_running();
            let f = self.files();
            (f.len() == n && f.iter().all(|r| !r.state.is_pending())).then_some(f)
        })
        .unwrap_or_else(|| {
            panic!(
                "not settled: {:#?}\nagent log:\n{}",
                self.files(),
                agent.log()
            )
        })
    }

    /// Every key of the bucket.
    pub async fn keys(&self, e: &Emulator) -> Vec<String> {
        let s3 = e.s3(&e.sdk_config().await);
        let mut keys: Vec<String> = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = s3
                .list_objects_v2()
                .bucket(&self.bucket)
                .set_continuation_token(token.take())
                .send()
                .await
                .unwrap();
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            match out.next_continuation_token() {
                Some(t) => token = Some(t.to_owned()),
                None => break,
            }
        }
        keys.sort();
        keys
    }

    /// Every message in the queue (received and deleted), bodies parsed and validated.
    pub async fn announcements(&self, e: &Emulator) -> Vec<Announcement> {
        let sqs = e.sqs(&e.sdk_config().await);
        let mut out = Vec::new();
        loop {
            let got = sqs
                .receive_message()
                .queue_url(&self.queue)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::SenderId)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            if got.messages().is_empty() {
                return out;
            }
            for m in got.messages() {
                let body = m.body().unwrap();
                let a = Announcement::from_json(body.as_bytes()).unwrap();
                let attr = |n: &str| {
                    m.message_attributes()
                        .and_then(|a| a.get(n))
                        .and_then(|v| v.string_value())
                };
                a.check_message_attributes(attr("producer_id"), attr("announcement_version"))
                    .unwrap();
                check_schema(body);
                sqs.delete_message()
                    .queue_url(&self.queue)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
                out.push(a);
            }
        }
    }

    /// Files under `archive/stays/` (any day).
    pub fn archived(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let root = self.state().join("archive").join("stays");
        for day in std::fs::read_dir(root).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(day.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                out.push(f.path());
            }
        }
        out.sort();
        out
    }
}

/// A running `lakemesh-agent run`; SIGKILLed on drop if still running.
pub struct AgentProcess {
    child: Option<Child>,
    log: PathBuf,
}

impl AgentProcess {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics (with its log) if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
            panic!("the agent exited with {status}; log:\n{}", self.log());
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    /// Waits for the process to end by itself.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        let status = wait_for(limit, || child.try_wait().unwrap());
        status.unwrap_or_else(|| panic!("the agent did not exit; log:\n{}", self.log()))
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(&mut self) {
        self.signal("-TERM");
        let status = self.wait(Duration::from_secs(20));
        assert!(status.success(), "{status}; log:\n{}", self.log());
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take()
            && c.try_wait().ok().flatten().is_none()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `f` every 100 ms until it gives a value or `limit` passes.
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Checks a body against `shared/schema/announcement-v1.schema.json` with the emulator venv's
/// jsonschema (the independent reading of the contract).
pub fn check_schema(body: &str) {
    let venv = lakemesh_shared::testbed::prepare_venv().unwrap();
    let schema =
        lakemesh_shared::testbed::repo_root().join("shared/schema/announcement-v1.schema.json");
    let out = Command::new(venv.join("bin/python"))
        .args([
            "-c",
            "import json, sys, jsonschema\n\
             schema = json.load(open(sys.argv[1]))\n\
             jsonschema.Draft202012Validator(schema).validate(json.loads(sys.stdin.read()))",
        ])
        .arg(&schema)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(body.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "announcement fails the JSON Schema: {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The keys the two-row fixture yields for batch `batch` under `products/`.
pub fn two_year_keys(batch: &str) -> Vec<String> {
    vec![
        format!("products/stays/year=2023/part-{batch}-0.parquet"),
        format!("products/stays/year=2024/part-{batch}-0.parquet"),
    ]
}

/// Batch id of `content`.
pub fn batch_of(content: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(content.as_bytes()))[..16].to_string()
}

/// `State` of each file, in claim order.
pub fn states(files: &[FileRecord]) -> Vec<State> {
    files.iter().map(|f| f.state).collect()
}

/// A path's file name.
pub fn name_of(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}
