//! The local AWS emulator test bed (feature `testbed`): integration tests of the agent, the
//! daemon and this crate start the project's emulator (`tests/emulator/run`: moto's server with
//! lakemesh's extensions) on a free loopback port and talk to it through the real AWS SDK.
//!
//! Owns:
//! - the emulator process: [`Emulator::start`] (one for the caller, stopped on drop: its stdin is
//!   closed, its process group gets SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]) and
//!   [`Emulator::shared`] (one per test binary, never dropped: the launcher runs with
//!   `--watch-parent` and exits when this process does, by stdin end-of-file or parent-pid change,
//!   so none outlives the test binary);
//! - the emulator's pinned venv, created once per process before the first start
//!   (`tests/emulator/run --prepare`), so its first-time `pip install` is not counted against
//!   the readiness wait;
//! - SDK configuration for it ([`Emulator::settings`], [`Emulator::sdk_config`]): built by
//!   [`crate::aws::config_loader`] like production, with static test credentials and an empty
//!   environment (the machine's `AWS_*` variables and profiles are never read);
//! - per-test resources with unique names ([`Emulator::fresh_bucket`], [`Emulator::fresh_queue`])
//!   and IAM principals for least-privilege tests ([`Emulator::create_user`],
//!   [`Emulator::sdk_config_as`], [`Emulator::reset_auth`]);
//! - moto's state-manager transitions on dedicated emulators ([`Emulator::set_transition`]:
//!   how fast Glue crawls run), and its queued Athena results ([`Emulator::queue_athena_results`]).
//!
//! Does not own: any AWS behaviour (moto's, or an extension's in `tests/emulator/lakemesh_moto`),
//! nor the project's adapters under test. Clients are built per test and must not be kept across
//! tests: each `#[tokio::test]` has its own runtime, and a client's connection pool belongs to the
//! runtime that used it first.
//!
//! `start` and `shared` block (up to [`READY_TIMEOUT`], plus the venv's first build); call them
//! at the top of a test.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::Credentials;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use aws_sdk_sqs::types::QueueAttributeName;
use aws_types::SdkConfig;

use crate::aws::{self, AwsSettings};

/// Region every test bed client uses.
pub const REGION: &str = "eu-west-3";
/// The account moto puts everything in.
pub const ACCOUNT_ID: &str = "123456789012";
/// The static access key id of [`Emulator::sdk_config`] (moto accepts any while auth is off).
pub const TEST_ACCESS_KEY_ID: &str = "testing";
/// The static secret access key of [`Emulator::sdk_config`].
pub const TEST_SECRET_ACCESS_KEY: &str = "testing";
/// The `SenderId` moto reports for every SQS message, whoever sent it.
pub const MOTO_SENDER_ID: &str = "AIDAIT2UOQQY3AUEKVGXU";
/// Longest wait for the "ready" line once the launcher runs (the venv already built).
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// Longest wait for the first-time venv build (`pip install` of the pinned requirements).
pub const PREPARE_TIMEOUT: Duration = Duration::from_secs(900);
/// Grace period between SIGTERM and SIGKILL when an emulator is dropped.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Lines of the emulator's stderr kept for error messages.
const LOG_LINES: usize = 200;

/// Why the test bed could not do what a test asked. Messages carry the launcher's stderr tail,
/// the bucket, queue or user, and the SDK's full error chain.
#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    /// A process could not be started.
    #[error("cannot run {command}: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The OS error.
        source: io::Error,
    },
    /// `tests/emulator/run --prepare` failed or hung.
    #[error("emulator venv: `{command}` {outcome}; its stderr ends with:\n{stderr}")]
    Prepare {
        /// The command line.
        command: String,
        /// "exited with status 1", "timed out after 900 s".
        outcome: String,
        /// The last lines it printed.
        stderr: String,
    },
    /// The launcher did not print its ready line, or the emulator did not answer after it.
    #[error("emulator ({command}) not ready: {what}; its stderr ends with:\n{stderr}")]
    NotReady {
        /// The command line.
        command: String,
        /// What happened instead.
        what: String,
        /// The last lines it printed.
        stderr: String,
    },
    /// The shared emulator failed to start earlier in this test binary.
    #[error("the shared emulator of this test binary is unavailable: {0}")]
    SharedUnavailable(String),
    /// A request that changes what every test sees was made on the shared emulator.
    #[error(
        "{what} on the shared emulator would change what every test of this binary sees; \
         start a dedicated one with Emulator::start()"
    )]
    SharedState {
        /// The request (`reset-auth`, `set-transition`).
        what: &'static str,
    },
    /// A control request (`/moto-api/…`, `/_lakemesh/…`) failed.
    #[error("emulator {endpoint}: {request}: {reason}")]
    Control {
        /// The emulator's endpoint.
        endpoint: String,
        /// `POST /moto-api/reset-auth`.
        request: String,
        /// What went wrong.
        reason: String,
    },
    /// A name prefix for [`Emulator::fresh_bucket`] and friends is unusable.
    #[error("name prefix {prefix:?}: {reason}")]
    Prefix {
        /// The prefix given.
        prefix: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// An S3 call failed.
    #[error("S3 bucket {bucket}: {operation}: {message}")]
    S3 {
        /// The bucket.
        bucket: String,
        /// The API call.
        operation: &'static str,
        /// The SDK's error with its whole chain.
        message: String,
    },
    /// An SQS call failed.
    #[error("SQS queue {queue}: {operation}: {message}")]
    Sqs {
        /// The queue name.
        queue: String,
        /// The API call.
        operation: &'static str,
        /// The SDK's error with its whole chain.
        message: String,
    },
    /// An IAM call failed.
    #[error("IAM user {user}: {operation}: {message}")]
    Iam {
        /// The user name.
        user: String,
        /// The API call.
        operation: &'static str,
        /// The SDK's error with its whole chain.
        message: String,
    },
}

/// An IAM user made by [`Emulator::create_user`], with its access key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestUser {
    /// User name.
    pub name: String,
    /// `arn:aws:iam::123456789012:user/NAME`.
    pub arn: String,
    /// The user's unique id (`AIDA…`).
    pub user_id: String,
    /// Its access key id.
    pub access_key_id: String,
    /// Its secret access key.
    pub secret_access_key: String,
}

/// A running emulator. See the module documentation.
pub struct Emulator {
    endpoint: String,
    port: u16,
    command: String,
    shared: bool,
    log: Arc<Mutex<VecDeque<String>>>,
    child: Mutex<Option<Child>>,
    stdin: Mutex<Option<ChildStdin>>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("endpoint", &self.endpoint)
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

/// The repository's root, found at run time: `LAKEMESH_REPO` when set, else the parent of the
/// running test's package (cargo sets `CARGO_MANIFEST_DIR` for test processes; every crate of
/// the workspace is one folder deep), else the parent of this crate's folder when it was built.
///
/// The build-time path alone is not enough: cargo shares the artefacts of a workspace between
/// clones that use the same target directory, so a library built in one clone can carry that
/// clone's path into another's tests.
pub fn repo_root() -> PathBuf {
    let is_repo = |p: &Path| p.join("tests").join("emulator").join("run").is_file();
    if let Some(p) = std::env::var_os("LAKEMESH_REPO").map(PathBuf::from) {
        return p;
    }
    if let Some(p) = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .and_then(|m| m.parent().map(Path::to_path_buf))
        .filter(|p| is_repo(p))
    {
        return p;
    }
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    shared
        .parent()
        .map_or_else(|| shared.clone(), PathBuf::from)
}

/// `tests/emulator/run` of this checkout.
pub fn launcher() -> PathBuf {
    repo_root().join("tests").join("emulator").join("run")
}

static PREPARED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
static SHARED: OnceLock<Result<Emulator, String>> = OnceLock::new();
static NAMES: AtomicU64 = AtomicU64::new(0);

/// Creates the emulator's venv once per process (`run --prepare`) and returns its path.
pub fn prepare_venv() -> Result<PathBuf, TestbedError> {
    let result = PREPARED.get_or_init(|| run_prepare().map_err(|e| e.to_string()));
    result.clone().map_err(|message| TestbedError::Prepare {
        command: format!("{} --prepare", launcher().display()),
        outcome: "failed earlier in this process".into(),
        stderr: message,
    })
}

fn run_prepare() -> Result<PathBuf, TestbedError> {
    let run = launcher();
    let command = format!("{} --prepare", run.display());
    let mut child = Command::new(&run)
        .arg("--prepare")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| TestbedError::Spawn {
            command: command.clone(),
            source,
        })?;
    let stdout = read_all_in_thread(child.stdout.take());
    let stderr = read_all_in_thread(child.stderr.take());
    let status = wait_bounded(&mut child, PREPARE_TIMEOUT);
    let out = stdout.join().unwrap_or_default();
    let err = stderr.join().unwrap_or_default();
    let fail = |outcome: String| TestbedError::Prepare {
        command: command.clone(),
        outcome,
        stderr: tail(&err, 30),
    };
    match status {
        Some(s) if s.success() => {
            let path = out.trim();
            if path.is_empty() {
                Err(fail("printed no venv path".into()))
            } else {
                Ok(PathBuf::from(path))
            }
        }
        Some(s) => Err(fail(format!("exited with {s}"))),
        None => Err(fail(format!(
            "timed out after {} s",
            PREPARE_TIMEOUT.as_secs()
        ))),
    }
}

impl Emulator {
    /// Starts a dedicated emulator on a free loopback port (the launcher binds port 0 and reports
    /// the kernel's choice, so no other process can take it in between) and waits until it
    /// answers. Stopped when dropped.
    pub fn start() -> Result<Self, TestbedError> {
        Self::launch(false, 0)
    }

    /// Starts a dedicated emulator on `port` (the port of one that was stopped: an outage and
    /// its end, as clients see them). It starts empty: moto keeps its state in memory.
    pub fn start_on(port: u16) -> Result<Self, TestbedError> {
        Self::launch(false, port)
    }

    /// The emulator shared by every test of this test binary, started on first use. Tests keep
    /// apart by using [`Emulator::fresh_bucket`]/[`Emulator::fresh_queue`]; requests that change
    /// global state ([`Emulator::reset_auth`]) are refused on it.
    pub fn shared() -> Result<&'static Self, TestbedError> {
        match SHARED.get_or_init(|| Self::launch(true, 0).map_err(|e| e.to_string())) {
            Ok(e) => Ok(e),
            Err(message) => Err(TestbedError::SharedUnavailable(message.clone())),
        }
    }

    fn launch(shared: bool, port: u16) -> Result<Self, TestbedError> {
        prepare_venv()?;
        let run = launcher();
        let port = port.to_string();
        let args = ["--port", port.as_str(), "--watch-parent"];
        let command = format!("{} {}", run.display(), args.join(" "));
        let mut child = Command::new(&run)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so dropping the emulator can signal everything it started.
            .process_group(0)
            .spawn()
            .map_err(|source| TestbedError::Spawn {
                command: command.clone(),
                source,
            })?;
        let log = Arc::new(Mutex::new(VecDeque::with_capacity(LOG_LINES)));
        let echo = std::env::var_os("LAKEMESH_EMULATOR_LOG").is_some();
        let stderr_thread = child
            .stderr
            .take()
            .map(|s| spawn_log_reader(s, Arc::clone(&log), echo));
        let (ready_tx, ready_rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                if let Some(Ok(first)) = lines.next() {
                    let _ = ready_tx.send(first);
                }
                for line in lines.map_while(Result::ok) {
                    push_line(&log, line);
                }
            });
        }
        let stdin = child.stdin.take();
        let not_ready = |child: &mut Child, what: String| {
            let _ = child.kill();
            let _ = child.wait();
            if let Some(t) = stderr_thread {
                let _ = t.join();
            }
            TestbedError::NotReady {
                command: command.clone(),
                what,
                stderr: log_tail(&log, 30),
            }
        };
        let line = match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let what = format!("no ready line within {} s", READY_TIMEOUT.as_secs());
                return Err(not_ready(&mut child, what));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = wait_bounded(&mut child, STOP_TIMEOUT).map_or_else(
                    || "closed its stdout".to_string(),
                    |s| format!("exited with {s}"),
                );
                return Err(not_ready(
                    &mut child,
                    format!("the launcher {status} before it was ready"),
                ));
            }
        };
        let Some(port) = parse_ready_line(&line) else {
            return Err(not_ready(
                &mut child,
                format!("unexpected first line {line:?}"),
            ));
        };
        let emulator = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            command: command.clone(),
            shared,
            log: Arc::clone(&log),
            child: Mutex::new(Some(child)),
            stdin: Mutex::new(stdin),
        };
        match emulator.control("GET", "/_lakemesh/health", "") {
            Ok((200, body)) if body.contains("\"ready\": true") => Ok(emulator),
            Ok((status, body)) => Err(TestbedError::NotReady {
                command,
                what: format!("GET /_lakemesh/health answered {status}: {body}"),
                stderr: emulator.stderr_tail(30),
            }),
            Err(e) => Err(TestbedError::NotReady {
                command,
                what: e.to_string(),
                stderr: emulator.stderr_tail(30),
            }),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The TCP port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The last `lines` lines of its stderr (moto's request log, errors).
    pub fn stderr_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// `[aws]` settings pointing at this emulator: region [`REGION`], its endpoint, path-style
    /// S3, default retry and timeouts.
    pub fn settings(&self) -> AwsSettings {
        AwsSettings {
            region: Some(REGION.into()),
            endpoint_url: Some(self.endpoint.clone()),
            force_path_style: true,
            ..AwsSettings::default()
        }
    }

    /// An [`SdkConfig`] for this emulator with the static test credentials.
    pub async fn sdk_config(&self) -> SdkConfig {
        self.sdk_config_with(Credentials::new(
            TEST_ACCESS_KEY_ID,
            TEST_SECRET_ACCESS_KEY,
            None,
            None,
            "lakemesh-testbed",
        ))
        .await
    }

    /// An [`SdkConfig`] for this emulator signing as `user` (see [`Emulator::create_user`]).
    pub async fn sdk_config_as(&self, user: &TestUser) -> SdkConfig {
        self.sdk_config_with(Credentials::new(
            user.access_key_id.clone(),
            user.secret_access_key.clone(),
            None,
            None,
            "lakemesh-testbed-user",
        ))
        .await
    }

    async fn sdk_config_with(&self, credentials: Credentials) -> SdkConfig {
        #[allow(clippy::expect_used)]
        let loader = aws::config_loader(&self.settings())
            // Invariant: settings() holds the constant REGION and `http://127.0.0.1:{port}` with a
            // port parsed as a non-zero u16, which validate() always accepts.
            .expect("the test bed's settings are valid");
        loader
            .empty_test_environment()
            .credentials_provider(credentials)
            .load()
            .await
    }

    /// An S3 client (path-style) for `sdk` (from [`Emulator::sdk_config`] or `sdk_config_as`).
    pub fn s3(&self, sdk: &SdkConfig) -> aws_sdk_s3::Client {
        aws::s3_client(sdk, &self.settings())
    }

    /// An SQS client for `sdk`.
    pub fn sqs(&self, sdk: &SdkConfig) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(sdk)
    }

    /// An IAM client for `sdk`.
    pub fn iam(&self, sdk: &SdkConfig) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(sdk)
    }

    /// Creates a bucket named `{prefix}-{pid}-{n}` (unique in this process) in [`REGION`] and
    /// returns its name. `prefix`: 1 to 30 characters `a-z 0-9 -`, starting with a letter.
    pub async fn fresh_bucket(&self, prefix: &str) -> Result<String, TestbedError> {
        self.create_bucket(&unique_name(prefix)?).await
    }

    /// Creates the bucket `bucket` in [`REGION`] (on an emulator restarted after an outage, the
    /// bucket that was there) and returns its name.
    pub async fn create_bucket(&self, bucket: &str) -> Result<String, TestbedError> {
        let bucket = bucket.to_owned();
        let s3 = self.s3(&self.sdk_config().await);
        s3.create_bucket()
            .bucket(&bucket)
            .create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(REGION))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| TestbedError::S3 {
                bucket: bucket.clone(),
                operation: "CreateBucket",
                message: DisplayErrorContext(&e).to_string(),
            })?;
        Ok(bucket)
    }

    /// Creates a standard queue named `{prefix}-{pid}-{n}` and returns its URL.
    pub async fn fresh_queue(&self, prefix: &str) -> Result<String, TestbedError> {
        self.fresh_queue_with(prefix, &[]).await
    }

    /// Like [`Emulator::fresh_queue`], with queue attributes (`VisibilityTimeout`,
    /// `RedrivePolicy`…).
    pub async fn fresh_queue_with(
        &self,
        prefix: &str,
        attributes: &[(QueueAttributeName, String)],
    ) -> Result<String, TestbedError> {
        self.create_queue(&unique_name(prefix)?, attributes).await
    }

    /// Creates the standard queue `queue` (on an emulator restarted after an outage, the queue
    /// that was there) and returns its URL.
    pub async fn create_queue(
        &self,
        queue: &str,
        attributes: &[(QueueAttributeName, String)],
    ) -> Result<String, TestbedError> {
        let queue = queue.to_owned();
        let sqs = self.sqs(&self.sdk_config().await);
        let mut req = sqs.create_queue().queue_name(&queue);
        for (k, v) in attributes {
            req = req.attributes(k.clone(), v.clone());
        }
        let out = req.send().await.map_err(|e| TestbedError::Sqs {
            queue: queue.clone(),
            operation: "CreateQueue",
            message: DisplayErrorContext(&e).to_string(),
        })?;
        out.queue_url.ok_or_else(|| TestbedError::Sqs {
            queue,
            operation: "CreateQueue",
            message: "the answer has no QueueUrl".into(),
        })
    }

    /// Creates an IAM user `{prefix}-{pid}-{n}` whose only permissions are the inline policy
    /// `policy_document` (JSON), and an access key for it. Sign as it with
    /// [`Emulator::sdk_config_as`]; the policy is enforced once [`Emulator::reset_auth`] is on.
    pub async fn create_user(
        &self,
        prefix: &str,
        policy_document: &str,
    ) -> Result<TestUser, TestbedError> {
        let name = unique_name(prefix)?;
        let iam = self.iam(&self.sdk_config().await);
        let fail = |operation: &'static str, message: String| TestbedError::Iam {
            user: name.clone(),
            operation,
            message,
        };
        let user = iam
            .create_user()
            .user_name(&name)
            .send()
            .await
            .map_err(|e| fail("CreateUser", DisplayErrorContext(&e).to_string()))?
            .user
            .ok_or_else(|| fail("CreateUser", "the answer has no User".into()))?;
        iam.put_user_policy()
            .user_name(&name)
            .policy_name("lakemesh-test")
            .policy_document(policy_document)
            .send()
            .await
            .map_err(|e| fail("PutUserPolicy", DisplayErrorContext(&e).to_string()))?;
        let key = iam
            .create_access_key()
            .user_name(&name)
            .send()
            .await
            .map_err(|e| fail("CreateAccessKey", DisplayErrorContext(&e).to_string()))?
            .access_key
            .ok_or_else(|| fail("CreateAccessKey", "the answer has no AccessKey".into()))?;
        Ok(TestUser {
            arn: user.arn,
            user_id: user.user_id,
            access_key_id: key.access_key_id,
            secret_access_key: key.secret_access_key,
            name,
        })
    }

    /// Turns IAM enforcement on after `unauthenticated_requests` more requests
    /// (`POST /moto-api/reset-auth`; moto 5.2.5 reads the count as the plain-text body). With
    /// 0, every following request must be signed by a known access key and allowed by its
    /// policies; the static test credentials are then refused. Dedicated emulators only.
    pub fn reset_auth(&self, unauthenticated_requests: u64) -> Result<(), TestbedError> {
        self.set_auth(&unauthenticated_requests.to_string())
    }

    /// Turns IAM enforcement off again (moto's default). Dedicated emulators only.
    pub fn disable_auth(&self) -> Result<(), TestbedError> {
        self.set_auth("inf")
    }

    fn set_auth(&self, body: &str) -> Result<(), TestbedError> {
        if self.shared {
            return Err(TestbedError::SharedState { what: "reset-auth" });
        }
        let path = "/moto-api/reset-auth";
        match self.control("POST", path, body)? {
            (200, answer) if answer.contains("\"status\": \"ok\"") => Ok(()),
            (status, answer) => Err(TestbedError::Control {
                endpoint: self.endpoint.clone(),
                request: format!("POST {path}"),
                reason: format!("answered {status}: {answer}"),
            }),
        }
    }

    /// Sets the state-manager transition of a moto model (`POST
    /// /moto-api/state-manager/set-transition`), e.g. `set_transition("glue::crawl",
    /// r#"{"progression": "time", "seconds": 5}"#)` for crawls that run five seconds, then
    /// finish for five more. Dedicated emulators only: it applies to every client.
    pub fn set_transition(
        &self,
        model_name: &str,
        transition_json: &str,
    ) -> Result<(), TestbedError> {
        if self.shared {
            return Err(TestbedError::SharedState {
                what: "set-transition",
            });
        }
        let path = "/moto-api/state-manager/set-transition";
        let body = format!("{{\"model_name\": {model_name:?}, \"transition\": {transition_json}}}");
        match self.control("POST", path, &body)? {
            (200 | 201, _) => Ok(()),
            (status, answer) => Err(TestbedError::Control {
                endpoint: self.endpoint.clone(),
                request: format!("POST {path}"),
                reason: format!("answered {status}: {answer}"),
            }),
        }
    }

    /// Queues Athena query results (`POST /moto-api/static/athena/query-results`): the next
    /// queries started in `account_id` and `region` take them in order, one each
    /// (`results_json` is a JSON array of `{"rows": [...], "column_info": [...]}` as moto reads
    /// them). Queues are per account, so tests on the shared emulator keep apart by using
    /// accounts of their own.
    pub fn queue_athena_results(
        &self,
        account_id: &str,
        region: &str,
        results_json: &str,
    ) -> Result<(), TestbedError> {
        let path = "/moto-api/static/athena/query-results";
        let body = format!(
            "{{\"account_id\": {account_id:?}, \"region\": {region:?}, \"results\": {results_json}}}"
        );
        match self.control("POST", path, &body)? {
            (200 | 201, _) => Ok(()),
            (status, answer) => Err(TestbedError::Control {
                endpoint: self.endpoint.clone(),
                request: format!("POST {path}"),
                reason: format!("answered {status}: {answer}"),
            }),
        }
    }

    /// One HTTP/1.1 request to the emulator's control endpoints; returns status and body.
    fn control(&self, method: &str, path: &str, body: &str) -> Result<(u16, String), TestbedError> {
        let request = format!("{method} {path}");
        let fail = |reason: String| TestbedError::Control {
            endpoint: self.endpoint.clone(),
            request: request.clone(),
            reason,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|e| fail(format!("connect: {e}")))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .and_then(|()| stream.set_write_timeout(Some(Duration::from_secs(30))))
            .map_err(|e| fail(format!("socket: {e}")))?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: text/plain\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        );
        stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body.as_bytes()))
            .map_err(|e| fail(format!("send: {e}")))?;
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .map_err(|e| fail(format!("read: {e}")))?;
        let text = String::from_utf8_lossy(&answer);
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| fail(format!("not an HTTP answer: {:?}", truncate(&text, 200))))?;
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        Ok((status, body.to_owned()))
    }

    /// Stops the emulator: closes its stdin, sends SIGTERM to its process group, waits up to
    /// [`STOP_TIMEOUT`], then SIGKILL. Returns its exit status (`None` if it had to be killed or
    /// was already reaped).
    fn stop(&self) -> Option<ExitStatus> {
        if let Ok(mut stdin) = self.stdin.lock() {
            stdin.take();
        }
        let mut child = self.child.lock().ok()?.take()?;
        // The child is not reaped before the end of this function, so its pid (the group id)
        // cannot have been reused.
        signal_group(child.id(), "-TERM");
        if let Some(status) = wait_bounded(&mut child, STOP_TIMEOUT) {
            return Some(status);
        }
        signal_group(child.id(), "-KILL");
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if self.stop().is_none() {
            eprintln!(
                "testbed: emulator {} ({}) did not stop within {} s and was killed",
                self.endpoint,
                self.command,
                STOP_TIMEOUT.as_secs()
            );
        }
    }
}

/// `{prefix}-{pid}-{n}`, after checking the prefix.
fn unique_name(prefix: &str) -> Result<String, TestbedError> {
    let bad = |reason| {
        Err(TestbedError::Prefix {
            prefix: prefix.to_owned(),
            reason,
        })
    };
    if prefix.is_empty() || prefix.len() > 30 {
        return bad("use 1 to 30 characters");
    }
    if !prefix.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad("start with a letter a-z");
    }
    if !prefix
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return bad("use only a-z, 0-9 and -");
    }
    let n = NAMES.fetch_add(1, Ordering::Relaxed);
    Ok(format!("{prefix}-{}-{n}", std::process::id()))
}

/// The port of `lakemesh-emulator: ready http://127.0.0.1:PORT moto … extensions: …`.
fn parse_ready_line(line: &str) -> Option<u16> {
    let url = line
        .strip_prefix("lakemesh-emulator: ready ")?
        .split(' ')
        .next()?;
    let port = url.strip_prefix("http://127.0.0.1:")?.parse::<u16>().ok()?;
    (port != 0).then_some(port)
}

/// `kill SIGNAL -- -PGID`, best effort (the `kill` program; without it, nothing).
fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Waits for `child` at most `limit`; `None` if it still runs.
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(25)),
            _ => return None,
        }
    }
}

fn read_all_in_thread<R: Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut p) = pipe {
            let mut bytes = Vec::new();
            let _ = p.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    })
}

fn spawn_log_reader<R: Read + Send + 'static>(
    pipe: R,
    log: Arc<Mutex<VecDeque<String>>>,
    echo: bool,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if echo {
                eprintln!("emulator: {line}");
            }
            push_line(&log, line);
        }
    })
}

fn push_line(log: &Mutex<VecDeque<String>>, line: String) {
    if let Ok(mut log) = log.lock() {
        if log.len() == LOG_LINES {
            log.pop_front();
        }
        log.push_back(line);
    }
}

fn log_tail(log: &Mutex<VecDeque<String>>, lines: usize) -> String {
    let Ok(log) = log.lock() else {
        return String::from("(log unavailable)");
    };
    let skip = log.len().saturating_sub(lines);
    let text: Vec<&str> = log.iter().skip(skip).map(String::as_str).collect();
    if text.is_empty() {
        "(nothing)".into()
    } else {
        text.join("\n")
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let t = all[all.len().saturating_sub(lines)..].join("\n");
    if t.is_empty() { "(nothing)".into() } else { t }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_line() {
        assert_eq!(
            parse_ready_line(
                "lakemesh-emulator: ready http://127.0.0.1:40111 moto 5.2.5 extensions: none"
            ),
            Some(40111)
        );
        assert_eq!(
            parse_ready_line("lakemesh-emulator: ready http://127.0.0.1:0 moto"),
            None
        );
        assert_eq!(parse_ready_line("Starting a new Thread"), None);
        assert_eq!(
            parse_ready_line("lakemesh-emulator: ready http://0.0.0.0:5000 moto"),
            None
        );
    }

    #[test]
    fn unique_names_check_the_prefix() {
        let a = unique_name("probe").unwrap();
        let b = unique_name("probe").unwrap();
        assert_ne!(a, b);
        assert!(
            a.starts_with(&format!("probe-{}-", std::process::id())),
            "{a}"
        );
        for bad in ["", "Probe", "9probe", "pro_be", &"p".repeat(31)] {
            assert!(unique_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn launcher_is_in_this_checkout() {
        assert!(launcher().is_file(), "{}", launcher().display());
    }
}
