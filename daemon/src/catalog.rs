//! The Glue side of an announcement: the database (no IAM-only defaults for its tables), one
//! crawler per product on the product folder, crawls coalesced per crawler (announcements that
//! arrive while one runs share one more run), and, with `catalog_mode = "direct"`, the table and
//! its partitions written from the announcement.
//!
//! Retries: `CrawlerRunningException` (another daemon or a schedule started it: wait for it to
//! finish, then start ours), `EntityNotFoundException` right after creation, throttling and
//! role propagation, with capped backoff up to `retry_limit_secs`. A crawl is finished when the
//! crawler is READY again with a new last crawl; SUCCEEDED (or an emulator's COMPLETED) is
//! success, FAILED and CANCELLED are errors.
//!
//! Does not own: Lake Formation (`govern`), deciding what is valid (`validate`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lakemesh_shared::announcement::{Announcement, ProductLocation};
use lakemesh_shared::names::HIVE_DEFAULT_PARTITION;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::aws_error::AwsError;
use crate::backoff::{self, Transient};
use crate::config::{Producer, Settings};
use crate::glue::{CrawlerSpec, Glue, TableView};

/// Why a catalog step failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CatalogError {
    /// A Glue call failed.
    #[error(transparent)]
    Glue(#[from] AwsError),
    /// The crawler's last crawl did not succeed.
    #[error("crawler {crawler}: crawl {status}: {message}")]
    CrawlFailed {
        /// Crawler name.
        crawler: String,
        /// FAILED, CANCELLED.
        status: String,
        /// Glue's error message.
        message: String,
    },
    /// The crawl did not finish in time.
    #[error("crawler {crawler}: no finished crawl after {secs} s")]
    Timeout {
        /// Crawler name.
        crawler: String,
        /// Seconds waited.
        secs: u64,
    },
    /// The product already belongs to another location in this database.
    #[error(
        "crawler {crawler} already targets {existing}, not {wanted}: two locations announce the same product into one database"
    )]
    Conflict {
        /// Crawler name.
        crawler: String,
        /// Its current target.
        existing: String,
        /// The announcement's location.
        wanted: String,
    },
    /// The daemon is shutting down.
    #[error("stopped: the daemon is shutting down")]
    Shutdown,
}

impl CatalogError {
    /// Whether the step may succeed later.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Glue(e) => e.is_transient(),
            Self::CrawlFailed { .. } | Self::Timeout { .. } | Self::Shutdown => true,
            Self::Conflict { .. } => false,
        }
    }
}

impl Transient for CatalogError {
    fn is_transient(&self) -> bool {
        CatalogError::is_transient(self)
    }
}

/// The crawler of a product: `lakemesh-{database}-{product}` (`-` never appears in either).
pub fn crawler_name(database: &str, product: &str) -> String {
    format!("lakemesh-{database}-{product}")
}

/// The crawler Configuration: partitions inherit the table's schema, one table per product
/// folder (compatible schemas combined, table level = the product folder's depth, a crawl that
/// finds more than one table fails).
pub fn crawler_configuration(location: &ProductLocation) -> serde_json::Value {
    // s3://bucket (level 1) / prefix segments / product
    let level = 2 + location.prefix.split('/').filter(|s| !s.is_empty()).count();
    serde_json::json!({
        "Version": 1.0,
        "CrawlerOutput": {
            "Partitions": { "AddOrUpdateBehavior": "InheritFromTable" },
            "Tables": { "TableThreshold": 1 }
        },
        "Grouping": {
            "TableGroupingPolicy": "CombineCompatibleSchemas",
            "TableLevelConfiguration": level
        }
    })
}

#[derive(Default)]
struct SlotState {
    running: bool,
    started: u64,
    requested: u64,
}

struct Slot {
    state: Mutex<SlotState>,
    done: watch::Sender<(u64, Option<Result<(), CatalogError>>)>,
}

/// The catalog steps, shared by every message task.
pub struct Catalog {
    glue: Glue,
    settings: Arc<Settings>,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    stop: CancellationToken,
    /// Crawls started by this process (for reports and tests).
    crawls_started: std::sync::atomic::AtomicU64,
}

impl Catalog {
    /// A catalog; `stop` ends crawl waits at shutdown.
    pub fn new(glue: Glue, settings: Arc<Settings>, stop: CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            glue,
            settings,
            slots: Mutex::new(HashMap::new()),
            stop,
            crawls_started: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// How many crawls this process started.
    pub fn crawls_started(&self) -> u64 {
        self.crawls_started
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The Glue adapter.
    pub fn glue(&self) -> &Glue {
        &self.glue
    }

    /// Creates the database if needed (its tables get no IAM-only default permissions).
    /// `true` when this call created it.
    pub async fn ensure_database(
        &self,
        database: &str,
        producer: &Producer,
        domain: &str,
    ) -> Result<bool, CatalogError> {
        if self.glue.get_database(database).await?.is_some() {
            return Ok(false);
        }
        let description = format!(
            "lakemesh: {domain} data of origin {} (producer {})",
            producer.origin, producer.id
        );
        let created = backoff::retry(
            &format!("database {database}"),
            self.settings.retry_limit,
            || self.glue.create_database(database, &description),
        )
        .await?;
        if created {
            log::info!("database={database}: created (CreateTableDefaultPermissions empty)");
        }
        Ok(created)
    }

    /// The crawler spec of a product.
    pub fn crawler_spec(
        &self,
        database: &str,
        location: &ProductLocation,
        producer: &Producer,
    ) -> Option<CrawlerSpec> {
        let role = self.settings.crawler_role_arn.clone()?;
        Some(CrawlerSpec {
            name: crawler_name(database, &location.product),
            role,
            database: database.to_owned(),
            path: location.uri(),
            configuration: crawler_configuration(location),
            lake_formation_account: (producer.account_id != self.settings.account_id)
                .then(|| producer.account_id.clone()),
            exclusions: Vec::new(),
        })
    }

    /// Creates the product's crawler, or updates it to the spec; returns its name. Exclusions
    /// the crawler already has are kept (they are added, never removed).
    pub async fn ensure_crawler(&self, spec: &CrawlerSpec) -> Result<String, CatalogError> {
        let mut merged = spec.clone();
        if let Some(c) = self.glue.get_crawler(&spec.name).await? {
            merged.exclusions.extend(c.exclusions.iter().cloned());
        }
        merged.exclusions.sort();
        merged.exclusions.dedup();
        let spec = &merged;
        let limit = self.settings.retry_limit;
        let what = format!("crawler {}", spec.name);
        let existing = match self.glue.get_crawler(&spec.name).await? {
            Some(c) => Some(c),
            None => {
                let created =
                    backoff::retry(&what, limit, || self.glue.create_crawler(spec)).await?;
                if created {
                    log::info!("crawler={}: created on {}", spec.name, spec.path);
                    return Ok(spec.name.clone());
                }
                self.glue.get_crawler(&spec.name).await?
            }
        };
        let Some(c) = existing else {
            return Ok(spec.name.clone());
        };
        if c.paths().iter().any(|p| *p != spec.path) {
            return Err(CatalogError::Conflict {
                crawler: spec.name.clone(),
                existing: c.paths().join(", "),
                wanted: spec.path.clone(),
            });
        }
        if !c.matches(spec) {
            let deadline = Instant::now() + self.settings.crawl_timeout;
            loop {
                match self.glue.update_crawler(spec).await {
                    Ok(()) => {
                        log::info!("crawler={}: settings updated", spec.name);
                        break;
                    }
                    Err(e) if e.is("CrawlerRunningException") && Instant::now() < deadline => {
                        self.pause(self.settings.crawler_poll).await?;
                    }
                    Err(e) if e.is_transient() && Instant::now() < deadline => {
                        log::warn!("{what}: {e}; retrying");
                        self.pause(backoff::delay(2)).await?;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(spec.name.clone())
    }

    async fn pause(&self, d: Duration) -> Result<(), CatalogError> {
        tokio::select! {
            () = tokio::time::sleep(d) => Ok(()),
            () = self.stop.cancelled() => Err(CatalogError::Shutdown),
        }
    }

    /// Waits for a crawl of `crawler` that starts after this call: announcements that arrive
    /// while a crawl runs share the next one.
    pub async fn crawl(self: &Arc<Self>, crawler: &str) -> Result<(), CatalogError> {
        let slot = {
            let mut slots = self
                .slots
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(slots.entry(crawler.to_owned()).or_insert_with(|| {
                Arc::new(Slot {
                    state: Mutex::new(SlotState::default()),
                    done: watch::channel((0, None)).0,
                })
            }))
        };
        let mut rx = slot.done.subscribe();
        let target = {
            let mut st = slot
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let target = st.started + 1;
            st.requested = st.requested.max(target);
            if !st.running {
                st.running = true;
                let me = Arc::clone(self);
                let slot = Arc::clone(&slot);
                let name = crawler.to_owned();
                tokio::spawn(async move { me.runner(name, slot).await });
            }
            target
        };
        loop {
            {
                let (generation, result) = &*rx.borrow_and_update();
                if *generation >= target
                    && let Some(r) = result
                {
                    return r.clone();
                }
            }
            if rx.changed().await.is_err() {
                return Err(CatalogError::Shutdown);
            }
        }
    }

    async fn runner(self: Arc<Self>, crawler: String, slot: Arc<Slot>) {
        loop {
            let generation = {
                let mut st = slot
                    .state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                st.started += 1;
                st.started
            };
            let result = self.crawl_once(&crawler).await;
            slot.done.send_replace((generation, Some(result)));
            let mut st = slot
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if st.requested <= generation {
                st.running = false;
                return;
            }
        }
    }

    /// Starts one crawl and waits until it finished.
    async fn crawl_once(&self, crawler: &str) -> Result<(), CatalogError> {
        let started = Instant::now();
        let deadline = started + self.settings.crawl_timeout;
        let timeout = || CatalogError::Timeout {
            crawler: crawler.to_owned(),
            secs: self.settings.crawl_timeout.as_secs(),
        };
        let mut attempt = 0;
        let before = loop {
            let before = self
                .glue
                .get_crawler(crawler)
                .await?
                .and_then(|c| c.last_crawl);
            match self.glue.start_crawler(crawler).await {
                Ok(()) => break before,
                Err(e) if e.is("CrawlerRunningException") => {
                    // Running for someone else: its crawl may have started before our data
                    // arrived, so wait for it and start another.
                    log::debug!("crawler={crawler}: already running; waiting for it to finish");
                    if Instant::now() > deadline {
                        return Err(timeout());
                    }
                    self.pause(self.settings.crawler_poll).await?;
                }
                Err(e)
                    if (e.is("EntityNotFoundException") || e.is_transient())
                        && started.elapsed() + backoff::delay(attempt)
                            <= self.settings.retry_limit =>
                {
                    log::warn!(
                        "crawler={crawler}: StartCrawler: {e}; retrying in {:?}",
                        backoff::delay(attempt)
                    );
                    self.pause(backoff::delay(attempt)).await?;
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        };
        self.crawls_started
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        log::info!("crawler={crawler}: crawl started");
        loop {
            self.pause(self.settings.crawler_poll).await?;
            let Some(c) = self.glue.get_crawler(crawler).await? else {
                return Err(AwsError::invalid_answer(
                    "Glue",
                    "GetCrawler",
                    crawler,
                    "the crawler disappeared",
                )
                .into());
            };
            if c.state == "READY" && c.last_crawl.is_some() && c.last_crawl != before {
                return match c.last_status.as_deref() {
                    Some("SUCCEEDED" | "COMPLETED") => {
                        log::info!(
                            "crawler={crawler}: crawl succeeded in {:.1} s",
                            started.elapsed().as_secs_f64()
                        );
                        Ok(())
                    }
                    other => Err(CatalogError::CrawlFailed {
                        crawler: crawler.to_owned(),
                        status: other.unwrap_or("UNKNOWN").to_owned(),
                        message: c.last_error.unwrap_or_default(),
                    }),
                };
            }
            if Instant::now() > deadline {
                return Err(timeout());
            }
        }
    }

    /// `catalog_mode = "direct"`: writes the table (Parquet SerDe, the announcement's columns,
    /// string partition keys) and adds the announcement's partitions (BatchCreatePartition;
    /// when the table's columns changed, the announced partitions that existed are updated to
    /// them with BatchUpdatePartition). Returns partitions added.
    pub async fn write_direct(
        &self,
        database: &str,
        a: &Announcement,
    ) -> Result<usize, CatalogError> {
        let view = TableView {
            name: a.product.clone(),
            columns: a
                .columns
                .iter()
                .map(|c| (c.name.clone(), c.ty.clone()))
                .collect(),
            partition_keys: a
                .partition_keys
                .iter()
                .map(|k| (k.clone(), "string".to_owned()))
                .collect(),
            location: Some(a.location.clone()),
            serde: Some(crate::glue::PARQUET_SERDE.to_owned()),
        };
        let limit = self.settings.retry_limit;
        let what = format!("table {database}.{}", a.product);
        let existing = self.glue.get_table(database, &a.product).await?;
        let changed = existing.as_ref().is_some_and(|t| *t != view);
        match &existing {
            Some(t) if *t == view => {}
            Some(_) => {
                backoff::retry(&what, limit, || {
                    self.glue.put_parquet_table(database, &view, true)
                })
                .await?;
                log::info!(
                    "table={database}.{}: updated from announcement {}",
                    a.product,
                    a.announcement_id
                );
            }
            None => {
                if let Err(e) = self.glue.put_parquet_table(database, &view, false).await {
                    if !e.is("AlreadyExistsException") {
                        return Err(e.into());
                    }
                    backoff::retry(&what, limit, || {
                        self.glue.put_parquet_table(database, &view, true)
                    })
                    .await?;
                }
                log::info!(
                    "table={database}.{}: created from announcement {}",
                    a.product,
                    a.announcement_id
                );
            }
        }
        let mut partitions: Vec<(Vec<String>, String)> = Vec::new();
        for o in a.objects.as_deref().unwrap_or_default() {
            let values: Vec<String> = o.partition.0.iter().map(|(_, v)| unescape(v)).collect();
            let folder: String = o
                .partition
                .0
                .iter()
                .map(|(k, v)| format!("{k}={v}/"))
                .collect();
            if !partitions.iter().any(|(v, _)| *v == values) {
                partitions.push((values, format!("{}{folder}", a.location)));
            }
        }
        if a.partition_keys.is_empty() {
            return Ok(0);
        }
        let (added, updated) = backoff::retry(&what, limit, || {
            self.glue
                .put_partitions(database, &a.product, &view.columns, &partitions, changed)
        })
        .await?;
        if updated > 0 {
            log::info!(
                "table={database}.{}: {updated} partitions updated to the new columns",
                a.product
            );
        }
        Ok(added)
    }
}

/// A partition value as Glue stores it: Hive's `%XX` escapes decoded (the folder keeps them);
/// `__HIVE_DEFAULT_PARTITION__` as is.
fn unescape(v: &str) -> String {
    if v == HIVE_DEFAULT_PARTITION {
        return v.to_owned();
    }
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(h) = v
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(h);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crawler_settings_follow_the_folder_depth() {
        let loc = ProductLocation::parse("s3://bucket/products/hospital_stays/", "hospital_stays")
            .unwrap();
        let c = crawler_configuration(&loc);
        assert_eq!(c["Grouping"]["TableLevelConfiguration"], 3);
        assert_eq!(
            c["CrawlerOutput"]["Partitions"]["AddOrUpdateBehavior"],
            "InheritFromTable"
        );
        assert_eq!(c["CrawlerOutput"]["Tables"]["TableThreshold"], 1);
        assert_eq!(
            c["Grouping"]["TableGroupingPolicy"],
            "CombineCompatibleSchemas"
        );
        let root = ProductLocation::parse("s3://bucket/hospital_stays/", "hospital_stays").unwrap();
        assert_eq!(
            crawler_configuration(&root)["Grouping"]["TableLevelConfiguration"],
            2
        );
        let deep = ProductLocation::parse("s3://bucket/a/b/c/t/", "t").unwrap();
        assert_eq!(
            crawler_configuration(&deep)["Grouping"]["TableLevelConfiguration"],
            5
        );
        assert_eq!(
            crawler_name("hospital_activity_chu", "stays"),
            "lakemesh-hospital_activity_chu-stays"
        );
    }

    #[test]
    fn partition_values_are_unescaped() {
        assert_eq!(unescape("2026"), "2026");
        assert_eq!(unescape("a%2Fb"), "a/b");
        assert_eq!(unescape("100%"), "100%");
        assert_eq!(unescape(HIVE_DEFAULT_PARTITION), HIVE_DEFAULT_PARTITION);
    }
}
