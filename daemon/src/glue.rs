//! Glue adapter: databases, crawlers, tables and partitions of the Data Catalog, in the shapes
//! the daemon uses ([`CrawlerSpec`], [`CrawlerView`], [`TableView`]).

use aws_sdk_glue::Client;
use aws_sdk_glue::types::{
    BatchUpdatePartitionRequestEntry, DeleteBehavior, SerDeInfo, UpdateBehavior,
};
use aws_sdk_glue::types::{
    Column, CrawlerTargets, DatabaseInput, LakeFormationConfiguration, PartitionInput,
    RecrawlBehavior, RecrawlPolicy, S3Target, SchemaChangePolicy, StorageDescriptor, TableInput,
};

use crate::aws_error::AwsError;

const SERVICE: &str = "Glue";
/// Partitions per BatchCreatePartition call (Glue's limit).
pub const PARTITION_BATCH: usize = 100;

/// The Parquet SerDe.
pub const PARQUET_SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";
/// The Parquet input format.
pub const PARQUET_INPUT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";
/// The Parquet output format.
pub const PARQUET_OUTPUT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";

/// A crawler as the daemon wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct CrawlerSpec {
    /// Crawler name.
    pub name: String,
    /// Role it runs as.
    pub role: String,
    /// Target database.
    pub database: String,
    /// The product folder, `s3://bucket/prefix/product/`.
    pub path: String,
    /// The Configuration JSON.
    pub configuration: serde_json::Value,
    /// Account of the data, for cross-account Lake Formation credentials.
    pub lake_formation_account: Option<String>,
    /// Glob patterns (relative to the path) the crawler never reads: the objects of batches
    /// refused for their columns. Sorted, without duplicates.
    pub exclusions: Vec<String>,
}

/// A crawler as Glue reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct CrawlerView {
    /// `READY`, `RUNNING`, `STOPPING`.
    pub state: String,
    /// Identity of the last finished crawl (message prefix and start time), if any.
    pub last_crawl: Option<String>,
    /// `SUCCEEDED`, `FAILED`, `CANCELLED` (or an emulator's spelling).
    pub last_status: Option<String>,
    /// The last crawl's error message.
    pub last_error: Option<String>,
    /// Whether its settings are those of a spec (see [`CrawlerView::matches`]).
    role: Option<String>,
    database: Option<String>,
    paths: Vec<String>,
    configuration: Option<serde_json::Value>,
    recrawl: Option<String>,
    schema_change: (Option<String>, Option<String>),
    lake_formation: Option<(bool, Option<String>)>,
    /// Exclusion patterns of its S3 target.
    pub exclusions: Vec<String>,
}

impl CrawlerView {
    /// The S3 target paths.
    pub fn paths(&self) -> &[String] {
        &self.paths
    }

    /// Whether every setting the daemon manages equals the spec's.
    pub fn matches(&self, spec: &CrawlerSpec) -> bool {
        self.role.as_deref() == Some(spec.role.as_str())
            && self.database.as_deref() == Some(spec.database.as_str())
            && self.paths == [spec.path.clone()]
            && self.configuration.as_ref() == Some(&spec.configuration)
            && self.recrawl.as_deref() == Some("CRAWL_NEW_FOLDERS_ONLY")
            && self.schema_change == (Some("LOG".into()), Some("LOG".into()))
            && self.lake_formation == Some((true, spec.lake_formation_account.clone()))
            && self.exclusions == spec.exclusions
    }
}

/// A table as Glue reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableView {
    /// Table name.
    pub name: String,
    /// Columns (name, type) in order.
    pub columns: Vec<(String, String)>,
    /// Partition keys (name, type) in order.
    pub partition_keys: Vec<(String, String)>,
    /// Storage location.
    pub location: Option<String>,
    /// Serialization library.
    pub serde: Option<String>,
}

/// The Data Catalog.
#[derive(Debug, Clone)]
pub struct Glue {
    client: Client,
}

fn columns(cols: &[Column]) -> Vec<(String, String)> {
    cols.iter()
        .map(|c| {
            (
                c.name().to_owned(),
                c.r#type().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn build_err(operation: &'static str, resource: &str, e: impl std::fmt::Display) -> AwsError {
    AwsError::invalid_answer(
        SERVICE,
        operation,
        resource,
        format!("request not built: {e}"),
    )
}

impl Glue {
    /// Wraps a client.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// One page of database names (for `check-config`).
    pub async fn list_some_databases(&self) -> Result<Vec<String>, AwsError> {
        let out = self
            .client
            .get_databases()
            .max_results(10)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "GetDatabases", "catalog", e))?;
        Ok(out
            .database_list()
            .iter()
            .map(|d| d.name().to_owned())
            .collect())
    }

    /// Whether the database exists, and its `CreateTableDefaultPermissions` count.
    pub async fn get_database(&self, name: &str) -> Result<Option<usize>, AwsError> {
        match self.client.get_database().name(name).send().await {
            Ok(out) => Ok(Some(
                out.database()
                    .map_or(0, |d| d.create_table_default_permissions().len()),
            )),
            Err(e) => {
                let e = AwsError::from_sdk(SERVICE, "GetDatabase", name, e);
                if e.is("EntityNotFoundException") {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Creates a database whose new tables get no IAM-only default permissions
    /// (`CreateTableDefaultPermissions` empty). `Ok(false)` when it already existed.
    pub async fn create_database(&self, name: &str, description: &str) -> Result<bool, AwsError> {
        let input = DatabaseInput::builder()
            .name(name)
            .description(description)
            .set_create_table_default_permissions(Some(Vec::new()))
            .build()
            .map_err(|e| build_err("CreateDatabase", name, e))?;
        match self
            .client
            .create_database()
            .database_input(input)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = AwsError::from_sdk(SERVICE, "CreateDatabase", name, e);
                if e.is("AlreadyExistsException") {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// A crawler, or `None`.
    pub async fn get_crawler(&self, name: &str) -> Result<Option<CrawlerView>, AwsError> {
        let out = match self.client.get_crawler().name(name).send().await {
            Ok(out) => out,
            Err(e) => {
                let e = AwsError::from_sdk(SERVICE, "GetCrawler", name, e);
                return if e.is("EntityNotFoundException") {
                    Ok(None)
                } else {
                    Err(e)
                };
            }
        };
        let Some(c) = out.crawler() else {
            return Ok(None);
        };
        let last = c.last_crawl();
        Ok(Some(CrawlerView {
            state: c.state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
            last_crawl: last.map(|l| {
                format!(
                    "{}@{}",
                    l.message_prefix().unwrap_or_default(),
                    l.start_time().map(|t| t.as_secs_f64()).unwrap_or_default()
                )
            }),
            last_status: last.and_then(|l| l.status()).map(|s| s.as_str().to_owned()),
            last_error: last.and_then(|l| l.error_message()).map(str::to_owned),
            role: c.role().map(str::to_owned),
            database: c.database_name().map(str::to_owned),
            paths: c
                .targets()
                .map(|t| {
                    t.s3_targets()
                        .iter()
                        .filter_map(|s| s.path().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            exclusions: {
                let mut v: Vec<String> = c
                    .targets()
                    .map(|t| {
                        t.s3_targets()
                            .iter()
                            .flat_map(|s| s.exclusions().iter().cloned())
                            .collect()
                    })
                    .unwrap_or_default();
                v.sort();
                v.dedup();
                v
            },
            configuration: c.configuration().and_then(|s| serde_json::from_str(s).ok()),
            recrawl: c
                .recrawl_policy()
                .and_then(|r| r.recrawl_behavior())
                .map(|b| b.as_str().to_owned()),
            schema_change: (
                c.schema_change_policy()
                    .and_then(|p| p.update_behavior())
                    .map(|b| b.as_str().to_owned()),
                c.schema_change_policy()
                    .and_then(|p| p.delete_behavior())
                    .map(|b| b.as_str().to_owned()),
            ),
            lake_formation: c.lake_formation_configuration().map(|l| {
                (
                    l.use_lake_formation_credentials().unwrap_or(false),
                    l.account_id().map(str::to_owned),
                )
            }),
        }))
    }

    fn parts(
        spec: &CrawlerSpec,
    ) -> (
        CrawlerTargets,
        SchemaChangePolicy,
        RecrawlPolicy,
        LakeFormationConfiguration,
    ) {
        (
            CrawlerTargets::builder()
                .s3_targets(
                    S3Target::builder()
                        .path(&spec.path)
                        .set_exclusions(
                            (!spec.exclusions.is_empty()).then(|| spec.exclusions.clone()),
                        )
                        .build(),
                )
                .build(),
            SchemaChangePolicy::builder()
                .update_behavior(UpdateBehavior::Log)
                .delete_behavior(DeleteBehavior::Log)
                .build(),
            RecrawlPolicy::builder()
                .recrawl_behavior(RecrawlBehavior::CrawlNewFoldersOnly)
                .build(),
            LakeFormationConfiguration::builder()
                .use_lake_formation_credentials(true)
                .set_account_id(spec.lake_formation_account.clone())
                .build(),
        )
    }

    /// Creates a crawler. A role Glue cannot assume yet (just created) is transient.
    /// `Ok(false)` when one of that name already exists.
    pub async fn create_crawler(&self, spec: &CrawlerSpec) -> Result<bool, AwsError> {
        let (targets, schema, recrawl, lf) = Self::parts(spec);
        let r = self
            .client
            .create_crawler()
            .name(&spec.name)
            .role(&spec.role)
            .database_name(&spec.database)
            .description("lakemesh: one table per product folder")
            .targets(targets)
            .schema_change_policy(schema)
            .recrawl_policy(recrawl)
            .lake_formation_configuration(lf)
            .configuration(spec.configuration.to_string())
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) => {
                let e =
                    role_propagation(AwsError::from_sdk(SERVICE, "CreateCrawler", &spec.name, e));
                if e.is("AlreadyExistsException") {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Updates a crawler's settings to the spec (fails with `CrawlerRunningException` while it
    /// runs).
    pub async fn update_crawler(&self, spec: &CrawlerSpec) -> Result<(), AwsError> {
        let (targets, schema, recrawl, lf) = Self::parts(spec);
        self.client
            .update_crawler()
            .name(&spec.name)
            .role(&spec.role)
            .database_name(&spec.database)
            .targets(targets)
            .schema_change_policy(schema)
            .recrawl_policy(recrawl)
            .lake_formation_configuration(lf)
            .configuration(spec.configuration.to_string())
            .send()
            .await
            .map_err(|e| {
                role_propagation(AwsError::from_sdk(SERVICE, "UpdateCrawler", &spec.name, e))
            })?;
        Ok(())
    }

    /// Starts a crawl. Errors keep their codes (`CrawlerRunningException`,
    /// `EntityNotFoundException`) for the caller's retry decisions.
    pub async fn start_crawler(&self, name: &str) -> Result<(), AwsError> {
        self.client
            .start_crawler()
            .name(name)
            .send()
            .await
            .map_err(|e| role_propagation(AwsError::from_sdk(SERVICE, "StartCrawler", name, e)))?;
        Ok(())
    }

    /// Every table of a database (`None` when the database does not exist).
    pub async fn get_tables(&self, database: &str) -> Result<Option<Vec<TableView>>, AwsError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = match self
                .client
                .get_tables()
                .database_name(database)
                .set_next_token(token)
                .send()
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    let e = AwsError::from_sdk(SERVICE, "GetTables", database, e);
                    return if e.is("EntityNotFoundException") {
                        Ok(None)
                    } else {
                        Err(e)
                    };
                }
            };
            for t in page.table_list() {
                let sd = t.storage_descriptor();
                out.push(TableView {
                    name: t.name().to_owned(),
                    columns: sd.map(|s| columns(s.columns())).unwrap_or_default(),
                    partition_keys: columns(t.partition_keys()),
                    location: sd.and_then(|s| s.location()).map(str::to_owned),
                    serde: sd
                        .and_then(|s| s.serde_info())
                        .and_then(|s| s.serialization_library())
                        .map(str::to_owned),
                });
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(Some(out));
            }
        }
    }

    /// One table, or `None`.
    pub async fn get_table(
        &self,
        database: &str,
        name: &str,
    ) -> Result<Option<TableView>, AwsError> {
        Ok(self
            .get_tables(database)
            .await?
            .and_then(|ts| ts.into_iter().find(|t| t.name == name)))
    }

    /// Appends `new` columns (name, type) to the table as it is (its crawler's settings,
    /// parameters and partition keys kept): what a crawler that crawls new folders only never
    /// does (its schema change policy must then be LOG).
    pub async fn add_columns(
        &self,
        database: &str,
        name: &str,
        new: &[(String, String)],
    ) -> Result<(), AwsError> {
        let resource = format!("{database}.{name}");
        let got = self
            .client
            .get_table()
            .database_name(database)
            .name(name)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "GetTable", &resource, e))?;
        let Some(t) = got.table() else {
            return Err(AwsError::invalid_answer(
                SERVICE,
                "GetTable",
                &resource,
                "no table in the answer",
            ));
        };
        let mut sd = t
            .storage_descriptor()
            .cloned()
            .unwrap_or_else(|| aws_sdk_glue::types::StorageDescriptor::builder().build());
        let mut cols = sd.columns().to_vec();
        for (n, ty) in new {
            cols.push(
                Column::builder()
                    .name(n)
                    .r#type(ty)
                    .build()
                    .map_err(|e| build_err("UpdateTable", &resource, e))?,
            );
        }
        sd.columns = Some(cols);
        let input = TableInput::builder()
            .name(t.name())
            .set_description(t.description().map(str::to_owned))
            .set_owner(t.owner().map(str::to_owned))
            .retention(t.retention())
            .storage_descriptor(sd)
            .set_partition_keys(Some(t.partition_keys().to_vec()))
            .set_table_type(t.table_type().map(str::to_owned))
            .set_parameters(t.parameters().cloned())
            .build()
            .map_err(|e| build_err("UpdateTable", &resource, e))?;
        self.client
            .update_table()
            .database_name(database)
            .table_input(input)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "UpdateTable", &resource, e))?;
        Ok(())
    }

    /// Creates or replaces a Parquet table: columns and string partition keys, the location.
    pub async fn put_parquet_table(
        &self,
        database: &str,
        view: &TableView,
        exists: bool,
    ) -> Result<(), AwsError> {
        let resource = format!("{database}.{}", view.name);
        let col = |(n, t): &(String, String)| {
            Column::builder()
                .name(n)
                .r#type(t)
                .build()
                .map_err(|e| build_err("CreateTable", &resource, e))
        };
        let cols = view
            .columns
            .iter()
            .map(col)
            .collect::<Result<Vec<_>, _>>()?;
        let keys = view
            .partition_keys
            .iter()
            .map(col)
            .collect::<Result<Vec<_>, _>>()?;
        let input = TableInput::builder()
            .name(&view.name)
            .table_type("EXTERNAL_TABLE")
            .parameters("classification", "parquet")
            .parameters("lakemesh.catalog_mode", "direct")
            .storage_descriptor(parquet_sd(cols, view.location.clone().unwrap_or_default()))
            .set_partition_keys(Some(keys))
            .build()
            .map_err(|e| build_err("CreateTable", &resource, e))?;
        if exists {
            self.client
                .update_table()
                .database_name(database)
                .table_input(input)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(SERVICE, "UpdateTable", &resource, e))?;
        } else {
            self.client
                .create_table()
                .database_name(database)
                .table_input(input)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(SERVICE, "CreateTable", &resource, e))?;
        }
        Ok(())
    }

    /// Adds partitions (values, location) with the table's columns, [`PARTITION_BATCH`] per
    /// call. Partitions that exist already are left as they are, unless `update_existing`:
    /// then their storage descriptor is replaced (the table's columns changed). Returns how many
    /// were added and how many updated.
    pub async fn put_partitions(
        &self,
        database: &str,
        table: &str,
        columns: &[(String, String)],
        partitions: &[(Vec<String>, String)],
        update_existing: bool,
    ) -> Result<(usize, usize), AwsError> {
        let resource = format!("{database}.{table}");
        let input = |values: &[String], location: &str| -> Result<PartitionInput, AwsError> {
            let cols = columns
                .iter()
                .map(|(n, t)| {
                    Column::builder()
                        .name(n)
                        .r#type(t)
                        .build()
                        .map_err(|e| build_err("BatchCreatePartition", &resource, e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(PartitionInput::builder()
                .set_values(Some(values.to_vec()))
                .storage_descriptor(parquet_sd(cols, location.to_owned()))
                .build())
        };
        let (mut added, mut updated) = (0, 0);
        for chunk in partitions.chunks(PARTITION_BATCH) {
            let inputs = chunk
                .iter()
                .map(|(v, l)| input(v, l))
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .batch_create_partition()
                .database_name(database)
                .table_name(table)
                .set_partition_input_list(Some(inputs))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(SERVICE, "BatchCreatePartition", &resource, e))?;
            let mut existing = Vec::new();
            for err in out.errors() {
                let code = err
                    .error_detail()
                    .and_then(|d| d.error_code())
                    .unwrap_or_default();
                if code != "AlreadyExistsException" {
                    return Err(AwsError::invalid_answer(
                        SERVICE,
                        "BatchCreatePartition",
                        &resource,
                        format!(
                            "partition {:?}: {code}: {}",
                            err.partition_values(),
                            err.error_detail()
                                .and_then(|d| d.error_message())
                                .unwrap_or_default()
                        ),
                    ));
                }
                existing.push(err.partition_values().to_vec());
            }
            added += chunk.len() - existing.len();
            if !update_existing || existing.is_empty() {
                continue;
            }
            let mut entries = Vec::new();
            for (values, location) in chunk.iter().filter(|(v, _)| existing.contains(v)) {
                entries.push(
                    BatchUpdatePartitionRequestEntry::builder()
                        .set_partition_value_list(Some(values.clone()))
                        .partition_input(input(values, location)?)
                        .build()
                        .map_err(|e| build_err("BatchUpdatePartition", &resource, e))?,
                );
            }
            let n = entries.len();
            let out = self
                .client
                .batch_update_partition()
                .database_name(database)
                .table_name(table)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(SERVICE, "BatchUpdatePartition", &resource, e))?;
            if let Some(err) = out.errors().first() {
                return Err(AwsError::invalid_answer(
                    SERVICE,
                    "BatchUpdatePartition",
                    &resource,
                    format!(
                        "partition {:?}: {}: {}",
                        err.partition_value_list(),
                        err.error_detail()
                            .and_then(|d| d.error_code())
                            .unwrap_or_default(),
                        err.error_detail()
                            .and_then(|d| d.error_message())
                            .unwrap_or_default()
                    ),
                ));
            }
            updated += n;
        }
        Ok((added, updated))
    }
}

fn parquet_sd(columns: Vec<Column>, location: String) -> StorageDescriptor {
    StorageDescriptor::builder()
        .set_columns(Some(columns))
        .location(location)
        .input_format(PARQUET_INPUT)
        .output_format(PARQUET_OUTPUT)
        .compressed(false)
        .number_of_buckets(-1)
        .serde_info(
            SerDeInfo::builder()
                .serialization_library(PARQUET_SERDE)
                .parameters("serialization.format", "1")
                .build(),
        )
        .parameters("classification", "parquet")
        .build()
}

/// Glue refuses a role it cannot assume yet (IAM propagation) with InvalidInputException or
/// AccessDeniedException naming the role: transient.
fn role_propagation(e: AwsError) -> AwsError {
    let m = e.message.to_ascii_lowercase();
    if (e.is("InvalidInputException") || e.is("AccessDeniedException"))
        && m.contains("unable to assume")
    {
        e.transient()
    } else {
        e
    }
}
