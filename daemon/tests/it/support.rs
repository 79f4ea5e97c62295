//! Helpers of the daemon's integration tests: a producer's world on the emulator (bucket,
//! queue with its dead-letter queue, configuration and policy files), real Parquet objects and
//! their announcement, sending it, running the daemon once, and a log capture for audit lines.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use arrow_array::{
    ArrayRef, Date32Array, Decimal128Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema};
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use lakemesh_shared::announcement::{
    Announcement, Column, Envelope, Object, Partition, ProductLocation, Source,
};
use lakemesh_shared::testbed::{ACCOUNT_ID, Emulator, MOTO_SENDER_ID};
use lakemesh_syncd::commands;
use lakemesh_syncd::config::Settings;
use lakemesh_syncd::consume::Report;
use lakemesh_syncd::policy::Policy;
use parquet::arrow::ArrowWriter;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

pub const CRAWLER_ROLE: &str = "arn:aws:iam::123456789012:role/lakemesh-crawler";
pub const REGISTRATION_ROLE: &str = "arn:aws:iam::123456789012:role/lakemesh-lf-registration";
pub const ANALYST: &str = "arn:aws:iam::111122223333:role/ministry-statistics";
pub const AGENCY: &str = "arn:aws:iam::444455556666:role/regional-agency-occitanie";

/// DESIGN.md's policy example.
pub const DESIGN_POLICY: &str = r#"
[[grant]]
principal = "arn:aws:iam::111122223333:role/ministry-statistics"
tables = { domain = "DOMAIN" }
permissions = ["SELECT", "DESCRIBE"]
columns = { exclude = ["patient_id"] }

[[grant]]
principal = "arn:aws:iam::444455556666:role/regional-agency-occitanie"
tables = { domain = "DOMAIN" }
permissions = ["SELECT"]
rows = "region_code = '76'"
columns = { exclude = ["patient_id", "birth_year"] }
"#;

// ---- log capture ---------------------------------------------------------------------------

struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        if !r.target().starts_with("lakemesh") {
            return;
        }
        let line = format!("{} {}: {}", r.level(), r.target(), r.args());
        if std::env::var_os("LAKEMESH_TEST_LOG").is_some() {
            eprintln!("{line}");
        }
        if let Ok(mut v) = self.0.lock() {
            v.push(line);
        }
    }
    fn flush(&self) {}
}

static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();

/// Installs the capturing logger (once per test binary).
pub fn capture_logs() {
    CAPTURE.get_or_init(|| {
        let c: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
        let _ = log::set_logger(c);
        log::set_max_level(log::LevelFilter::Debug);
        c
    });
}

/// Captured lines containing every one of `needles`.
pub fn log_lines(needles: &[&str]) -> Vec<String> {
    CAPTURE
        .get()
        .map(|c| {
            c.0.lock()
                .map(|v| {
                    v.iter()
                        .filter(|l| needles.iter().all(|n| l.contains(n)))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

// ---- Parquet and announcements -------------------------------------------------------------

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A small hospital-stays Parquet file (as the agent writes it: partition keys not in the body).
pub fn stays_parquet(rows: usize, seed: i64) -> Vec<u8> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("stay_id", DataType::Int64, false),
        Field::new("patient_id", DataType::Utf8, true),
        Field::new("birth_year", DataType::Int32, true),
        Field::new("region_code", DataType::Utf8, true),
        Field::new("total_cost", DataType::Decimal128(12, 2), true),
        Field::new("admission_date", DataType::Date32, true),
    ]));
    let n = rows as i64;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            (0..n).map(|i| seed * 1000 + i),
        )),
        Arc::new(StringArray::from_iter_values(
            (0..n).map(|i| format!("p{i:04}")),
        )),
        Arc::new(Int32Array::from_iter_values(
            (0..n).map(|i| 1950 + i as i32 % 50),
        )),
        Arc::new(StringArray::from_iter_values(
            (0..n).map(|i| if i % 2 == 0 { "76" } else { "11" }),
        )),
        Arc::new(
            Decimal128Array::from_iter_values((0..n).map(|i| i128::from(i) * 150))
                .with_precision_and_scale(12, 2)
                .expect("valid decimal type"),
        ),
        Arc::new(Date32Array::from_iter_values(
            (0..n).map(|i| 20_000 + i as i32),
        )),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).expect("batch");
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, schema, None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
    buf
}

/// The announcement's columns for [`stays_parquet`].
pub fn stays_columns() -> Vec<Column> {
    [
        ("stay_id", "bigint", "keep"),
        ("patient_id", "string", "hmac"),
        ("birth_year", "int", "year"),
        ("region_code", "string", "keep"),
        ("total_cost", "decimal(12,2)", "keep"),
        ("admission_date", "date", "keep"),
    ]
    .into_iter()
    .map(|(n, t, p)| Column {
        name: n.into(),
        ty: t.into(),
        pii: p.into(),
        source_name: n.to_uppercase(),
    })
    .collect()
}

// ---- the world ---------------------------------------------------------------------------

/// One producer, its bucket, a queue with a dead-letter queue, config and policy files.
pub struct World {
    pub emulator: &'static Emulator,
    pub sdk: lakemesh_shared::aws::SdkConfig,
    pub bucket: String,
    pub queue_url: String,
    pub dlq_url: String,
    pub producer: String,
    pub domain: String,
    pub origin: String,
    pub dir: tempfile::TempDir,
    /// Extra top-level configuration keys.
    pub extra: String,
    /// The `sender_ids` of the producer.
    pub sender_ids: Vec<String>,
}

static WORLDS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl World {
    /// A world on `emulator`; `max_receive` is the queue's redrive `maxReceiveCount`.
    pub async fn new(emulator: &'static Emulator, max_receive: u32) -> Self {
        capture_logs();
        let n = WORLDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sdk = emulator.sdk_config().await;
        let bucket = emulator.fresh_bucket("producer").await.expect("bucket");
        let dlq_url = emulator.fresh_queue("dlq").await.expect("dlq");
        let sqs = emulator.sqs(&sdk);
        let dlq_arn = sqs
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("dlq attributes")
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .expect("QueueArn");
        let queue_url = emulator
            .fresh_queue_with(
                "announcements",
                &[(
                    QueueAttributeName::RedrivePolicy,
                    format!(
                        r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{max_receive}"}}"#
                    ),
                )],
            )
            .await
            .expect("queue");
        let pid = std::process::id();
        Self {
            emulator,
            sdk,
            bucket,
            queue_url,
            dlq_url,
            producer: format!("chu-{pid}-{n}"),
            domain: format!("activity{n}"),
            origin: format!("chu{pid}"),
            dir: tempfile::tempdir().expect("tempdir"),
            extra: String::new(),
            sender_ids: vec![MOTO_SENDER_ID.to_owned()],
        }
    }

    pub fn database(&self) -> String {
        format!("{}_{}", self.domain, self.origin)
    }

    pub fn location(&self, product: &str) -> ProductLocation {
        ProductLocation {
            bucket: self.bucket.clone(),
            prefix: "products".into(),
            product: product.into(),
        }
    }

    /// Writes the policy file (DOMAIN replaced by this world's domain).
    pub fn write_policy(&self, text: &str) {
        std::fs::write(
            self.dir.path().join("policy.toml"),
            text.replace("DOMAIN", &self.domain),
        )
        .expect("policy");
    }

    pub fn config_text(&self) -> String {
        let e = self.emulator.settings();
        format!(
            r#"
queue_url = "{queue}"
dead_letter_queue_url = "{dlq}"
policy_file = "policy.toml"
crawler_role_arn = "{CRAWLER_ROLE}"
registration_role_arn = "{REGISTRATION_ROLE}"
state_dir = "{state_dir}"
{defaults}
{extra}

[aws]
region = "{region}"
endpoint_url = "{endpoint}"
force_path_style = true

[[producer]]
id = "{producer}"
account_id = "{ACCOUNT_ID}"
sender_ids = {senders:?}
origin = "{origin}"
bucket = "{bucket}"
prefix = "products"
domains = ["{domain}"]
"#,
            queue = self.queue_url,
            dlq = self.dlq_url,
            defaults = [
                "wait_time_secs = 1",
                "crawler_poll_secs = 1",
                "retry_limit_secs = 5",
                "visibility_timeout_secs = 30"
            ]
            .iter()
            .filter(|d| !self
                .extra
                .contains(d.split(" =").next().unwrap_or_default()))
            .copied()
            .collect::<Vec<_>>()
            .join("\n"),
            extra = self.extra,
            state_dir = self.dir.path().join("state").display(),
            region = e.region.unwrap_or_default(),
            endpoint = e.endpoint_url.unwrap_or_default(),
            producer = self.producer,
            senders = self.sender_ids,
            origin = self.origin,
            bucket = self.bucket,
            domain = self.domain,
        )
    }

    pub fn config_path(&self) -> PathBuf {
        let path = self.dir.path().join("syncd.toml");
        let mut f = std::fs::File::create(&path).expect("config");
        f.write_all(self.config_text().as_bytes()).expect("config");
        path
    }

    pub fn load(&self) -> (Arc<Settings>, Arc<Policy>) {
        if !self.dir.path().join("policy.toml").exists() {
            self.write_policy(DESIGN_POLICY);
        }
        commands::load(&self.config_path()).expect("config and policy load")
    }

    /// Runs the daemon once (drains the queue).
    pub async fn run_once(&self) -> Report {
        let (settings, policy) = self.load();
        commands::run(settings, policy, &self.sdk, true, CancellationToken::new())
            .await
            .expect("run --once")
    }

    /// Uploads `files` Parquet objects of `product` (one per month) and returns the
    /// announcement (source hash from `seed`).
    pub async fn upload(&self, product: &str, months: &[u32], seed: i64) -> Announcement {
        self.upload_file(
            product,
            months,
            seed,
            &stays_parquet(4, seed),
            stays_columns(),
        )
        .await
    }

    /// [`World::upload`] with the given Parquet file (4 rows) and announced columns.
    pub async fn upload_file(
        &self,
        product: &str,
        months: &[u32],
        seed: i64,
        parquet: &[u8],
        columns: Vec<Column>,
    ) -> Announcement {
        let source_sha = sha256_hex(format!("{} {product} {seed}", self.bucket).as_bytes());
        let id = source_sha[..16].to_owned();
        let loc = self.location(product);
        let s3 = self.emulator.s3(&self.sdk);
        let mut objects = Vec::new();
        for (i, m) in months.iter().enumerate() {
            let bytes = parquet.to_vec();
            let month = format!("{m:02}");
            let key = format!(
                "{}year=2026/month={month}/part-{id}-{i}.parquet",
                loc.product_key_prefix()
            );
            s3.put_object()
                .bucket(&self.bucket)
                .key(&key)
                .body(bytes.clone().into())
                .send()
                .await
                .expect("put parquet");
            objects.push(Object {
                key,
                bytes: bytes.len() as u64,
                rows: 4,
                sha256: sha256_hex(&bytes),
                partition: Partition(vec![
                    ("year".into(), "2026".into()),
                    ("month".into(), month),
                ]),
            });
        }
        Announcement {
            version: 1,
            announcement_id: id,
            producer_id: self.producer.clone(),
            domain: self.domain.clone(),
            product: product.into(),
            location: loc.uri(),
            partition_keys: vec!["year".into(), "month".into()],
            columns,
            rows: 4 * objects.len() as u64,
            objects: Some(objects),
            manifest: None,
            source: Source {
                file: "sejours.csv".into(),
                bytes: 1234,
                sha256: source_sha,
            },
            produced_at: "2026-12-03T10:00:00Z".into(),
            agent_version: "0.1.0".into(),
        }
    }

    /// Sends an announcement as the agent does (claim check when large).
    pub async fn send(&self, a: &Announcement) {
        match a.envelope().expect("valid announcement") {
            Envelope::Inline { body } => self.send_raw(&body, Some(&a.producer_id)).await,
            Envelope::ClaimCheck {
                body,
                manifest_bucket,
                manifest_key,
                manifest,
            } => {
                self.emulator
                    .s3(&self.sdk)
                    .put_object()
                    .bucket(manifest_bucket)
                    .key(manifest_key)
                    .body(manifest.into())
                    .send()
                    .await
                    .expect("manifest");
                self.send_raw(&body, Some(&a.producer_id)).await;
            }
        }
    }

    /// Sends any body, with the producer attribute when given and version 1.
    pub async fn send_raw(&self, body: &str, producer: Option<&str>) {
        let sqs = self.emulator.sqs(&self.sdk);
        let mut req = sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body);
        if let Some(p) = producer {
            req = req.message_attributes(
                "producer_id",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(p)
                    .build()
                    .expect("attr"),
            );
        }
        req = req.message_attributes(
            "announcement_version",
            MessageAttributeValue::builder()
                .data_type("Number")
                .string_value("1")
                .build()
                .expect("attr"),
        );
        req.send().await.expect("send");
    }

    /// Messages visible in a queue (approximate count attribute).
    pub async fn depth(&self, url: &str) -> u64 {
        let sqs = self.emulator.sqs(&self.sdk);
        let out = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .expect("attributes");
        let get = |n: QueueAttributeName| {
            out.attributes()
                .and_then(|a| a.get(&n))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        get(QueueAttributeName::ApproximateNumberOfMessages)
            + get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
    }

    pub fn glue(&self) -> aws_sdk_glue::Client {
        aws_sdk_glue::Client::new(&self.sdk)
    }

    pub fn lf(&self) -> aws_sdk_lakeformation::Client {
        aws_sdk_lakeformation::Client::new(&self.sdk)
    }
}
