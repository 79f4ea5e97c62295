//! What the mesh holds after a run, read back from AWS itself (never from the programs' own
//! accounts of it): Glue databases, tables, partitions and row counts (from the Parquet footers
//! of the objects in S3); per principal, the tables, columns and rows Lake Formation grants; and
//! where each source file ended up, from each agent's ledger. Rendered as text for people and as
//! JSON for tests.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context, Result};
use aws_sdk_lakeformation::types::{PrincipalResourcePermissions, Resource};
use aws_sdk_sqs::types::QueueAttributeName;
use bytes::Bytes;
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde::Serialize;

use crate::mesh::Mesh;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TableReport {
    pub database: String,
    pub table: String,
    pub location: String,
    /// `name type` of the body columns.
    pub columns: Vec<String>,
    pub partition_keys: Vec<String>,
    /// Partition values, `k=v/k=v`.
    pub partitions: Vec<String>,
    /// Parquet objects under the location, and their rows.
    pub objects: usize,
    pub rows: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AccessReport {
    pub principal: String,
    /// `db.table`.
    pub table: String,
    pub permissions: Vec<String>,
    /// `all`, `all but a, b` or `only a, b`.
    pub columns: String,
    /// The row filter, or `all`.
    pub rows: String,
    /// The data cells filter carrying the rows and columns, when there is one.
    pub filter: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FileReport {
    pub producer: String,
    pub file: String,
    /// The ledger state (`done`, `failed`, …).
    pub state: String,
    pub batch: Option<String>,
    pub rows: Option<u64>,
    /// Object keys in the producer's bucket.
    pub objects: Vec<String>,
    /// Where the source file is now (archive or failed folder).
    pub now_at: Option<String>,
    /// The converter's report beside a failed file.
    pub error_report: Option<String>,
    pub first_error: Option<String>,
    /// The product the file was dropped for.
    pub product: String,
    /// The configuration of the agent that holds the file.
    pub agent_config: Option<String>,
}

/// What `lakemesh-syncd preview` shows one principal of one table (the policy enforced
/// locally on the product's Parquet in S3).
#[derive(Debug, Clone, Serialize)]
pub struct PreviewReport {
    pub principal: String,
    pub table: String,
    /// `None`: the policy gives the principal nothing on the table (preview refuses).
    pub rows_visible: Option<u64>,
    pub rows_total: Option<u64>,
    pub hidden_columns: Vec<String>,
    pub row_filter: Option<String>,
    /// The refusal, when refused.
    pub refused: Option<String>,
}

/// One probe of `lakemesh-syncd verify`.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    pub principal: String,
    pub table: String,
    pub probe: String,
    pub status: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tables: Vec<TableReport>,
    pub access: Vec<AccessReport>,
    pub files: Vec<FileReport>,
    pub queue_waiting: u64,
    pub dead_letters: u64,
    /// Per principal and table, what preview shows (filled by [`Report::check_access`]).
    pub previews: Vec<PreviewReport>,
    /// verify's probes against the emulator (filled by [`Report::check_access`]).
    pub probes: Vec<ProbeReport>,
}

fn columns_of(r: &Resource) -> String {
    if let Some(t) = r.table_with_columns() {
        if let Some(w) = t.column_wildcard() {
            let ex = w.excluded_column_names();
            return if ex.is_empty() {
                "all".into()
            } else {
                let mut ex = ex.to_vec();
                ex.sort();
                format!("all but {}", ex.join(", "))
            };
        }
        let mut cols = t.column_names().to_vec();
        cols.sort();
        return format!("only {}", cols.join(", "));
    }
    "all".into()
}

async fn queue_depth(mesh: &Mesh, url: &str) -> Result<u64> {
    let sqs = mesh.emulator.sqs(&mesh.emulator.sdk_config().await);
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .with_context(|| format!("attributes of {url}"))?;
    Ok(out
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

impl Report {
    /// Reads everything back.
    pub async fn collect(mesh: &Mesh) -> Result<Self> {
        let sdk = mesh.emulator.sdk_config().await;
        let glue = aws_sdk_glue::Client::new(&sdk);
        let s3 = mesh.emulator.s3(&sdk);
        let lf = aws_sdk_lakeformation::Client::new(&sdk);

        // Catalog.
        let mut tables = Vec::new();
        let dbs = glue.get_databases().send().await.context("GetDatabases")?;
        let mut names: Vec<String> = dbs
            .database_list()
            .iter()
            .map(|d| d.name().to_owned())
            .collect();
        names.sort();
        for db in names {
            let ts = glue
                .get_tables()
                .database_name(&db)
                .send()
                .await
                .with_context(|| format!("GetTables {db}"))?;
            for t in ts.table_list() {
                let sd = t.storage_descriptor();
                let location = sd.and_then(|s| s.location()).unwrap_or_default().to_owned();
                let columns = sd
                    .map(|s| {
                        s.columns()
                            .iter()
                            .map(|c| format!("{} {}", c.name(), c.r#type().unwrap_or("?")))
                            .collect()
                    })
                    .unwrap_or_default();
                let partition_keys: Vec<String> = t
                    .partition_keys()
                    .iter()
                    .map(|k| k.name().to_owned())
                    .collect();
                let mut partitions = Vec::new();
                let mut token = None;
                loop {
                    let out = glue
                        .get_partitions()
                        .database_name(&db)
                        .table_name(t.name())
                        .set_next_token(token)
                        .send()
                        .await
                        .with_context(|| format!("GetPartitions {db}.{}", t.name()))?;
                    for p in out.partitions() {
                        partitions.push(
                            partition_keys
                                .iter()
                                .zip(p.values())
                                .map(|(k, v)| format!("{k}={v}"))
                                .collect::<Vec<_>>()
                                .join("/"),
                        );
                    }
                    token = out.next_token().map(str::to_owned);
                    if token.is_none() {
                        break;
                    }
                }
                partitions.sort();
                // Rows: the Parquet footers of the objects under the location.
                let (bucket, prefix) = location
                    .strip_prefix("s3://")
                    .and_then(|r| r.split_once('/'))
                    .unwrap_or_default();
                let mut objects = 0;
                let mut rows = 0u64;
                let mut token = None;
                loop {
                    let out = s3
                        .list_objects_v2()
                        .bucket(bucket)
                        .prefix(prefix)
                        .set_continuation_token(token)
                        .send()
                        .await
                        .with_context(|| format!("ListObjectsV2 {location}"))?;
                    for o in out.contents() {
                        let key = o.key().unwrap_or_default();
                        if !key.ends_with(".parquet") {
                            continue;
                        }
                        let body = s3
                            .get_object()
                            .bucket(bucket)
                            .key(key)
                            .send()
                            .await
                            .with_context(|| format!("GetObject s3://{bucket}/{key}"))?
                            .body
                            .collect()
                            .await
                            .with_context(|| format!("read s3://{bucket}/{key}"))?
                            .into_bytes();
                        let reader = SerializedFileReader::new(Bytes::from(body.to_vec()))
                            .with_context(|| format!("Parquet s3://{bucket}/{key}"))?;
                        rows += reader.metadata().file_metadata().num_rows() as u64;
                        objects += 1;
                    }
                    token = out.next_continuation_token().map(str::to_owned);
                    if token.is_none() {
                        break;
                    }
                }
                tables.push(TableReport {
                    database: db.clone(),
                    table: t.name().to_owned(),
                    location,
                    columns,
                    partition_keys,
                    partitions,
                    objects,
                    rows,
                });
            }
        }

        // Access: every principal the policy names.
        // ListPermissions with a principal needs a resource too (on AWS as in the emulator):
        // list everything once and keep each principal's entries.
        let mut listed: Vec<PrincipalResourcePermissions> = Vec::new();
        let mut token = None;
        loop {
            let out = lf
                .list_permissions()
                .set_next_token(token)
                .send()
                .await
                .context("ListPermissions")?;
            listed.extend(out.principal_resource_permissions().iter().cloned());
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        let mut access = Vec::new();
        let daemon_roles = [
            crate::mesh::role_arn(crate::mesh::CRAWLER_ROLE),
            crate::mesh::role_arn(crate::mesh::REGISTRATION_ROLE),
            "IAM_ALLOWED_PRINCIPALS".to_owned(),
        ];
        let mut principals: Vec<String> = listed
            .iter()
            .filter_map(|p| {
                p.principal()
                    .and_then(|x| x.data_lake_principal_identifier())
            })
            .filter(|p| !daemon_roles.iter().any(|d| d == p))
            .map(str::to_owned)
            .collect();
        principals.sort();
        principals.dedup();
        for principal in principals {
            for p in &listed {
                if p.principal()
                    .and_then(|x| x.data_lake_principal_identifier())
                    != Some(principal.as_str())
                {
                    continue;
                }
                let Some(r) = p.resource() else { continue };
                let mut perms: Vec<String> = p
                    .permissions()
                    .iter()
                    .map(|x| x.as_str().to_owned())
                    .collect();
                perms.sort();
                if let Some(f) = r.data_cells_filter() {
                    let (db, t, name) = (
                        f.database_name().unwrap_or_default(),
                        f.table_name().unwrap_or_default(),
                        f.name().unwrap_or_default(),
                    );
                    let def = lf
                        .get_data_cells_filter()
                        .table_catalog_id(
                            f.table_catalog_id()
                                .unwrap_or(lakemesh_shared::testbed::ACCOUNT_ID),
                        )
                        .database_name(db)
                        .table_name(t)
                        .name(name)
                        .send()
                        .await
                        .with_context(|| format!("GetDataCellsFilter {name}"))?;
                    let d = def.data_cells_filter();
                    let rows = d
                        .and_then(|d| d.row_filter())
                        .and_then(|r| r.filter_expression())
                        .unwrap_or("all")
                        .to_owned();
                    let columns = match d {
                        Some(d) if d.column_wildcard().is_some() => {
                            let mut ex = d
                                .column_wildcard()
                                .map(|w| w.excluded_column_names().to_vec())
                                .unwrap_or_default();
                            ex.sort();
                            if ex.is_empty() {
                                "all".into()
                            } else {
                                format!("all but {}", ex.join(", "))
                            }
                        }
                        Some(d) => {
                            let mut c = d.column_names().to_vec();
                            c.sort();
                            format!("only {}", c.join(", "))
                        }
                        None => "?".into(),
                    };
                    access.push(AccessReport {
                        principal: principal.clone(),
                        table: format!("{db}.{t}"),
                        permissions: perms,
                        columns,
                        rows,
                        filter: Some(name.to_owned()),
                    });
                } else if let Some(t) = r.table_with_columns() {
                    access.push(AccessReport {
                        principal: principal.clone(),
                        table: format!("{}.{}", t.database_name(), t.name()),
                        permissions: perms,
                        columns: columns_of(r),
                        rows: "all".into(),
                        filter: None,
                    });
                } else if let Some(t) = r.table() {
                    access.push(AccessReport {
                        principal: principal.clone(),
                        table: format!("{}.{}", t.database_name(), t.name().unwrap_or("*")),
                        permissions: perms,
                        columns: "all".into(),
                        rows: "all".into(),
                        filter: None,
                    });
                }
            }
        }
        access.sort_by(|a, b| {
            (&a.principal, &a.table, &a.permissions).cmp(&(&b.principal, &b.table, &b.permissions))
        });

        // Files.
        let mut files = Vec::new();
        for site in &mesh.sites {
            let path = site.state().join("ledger.sqlite");
            let ledger = lakemesh_agent::ledger::Ledger::open(&path)
                .with_context(|| format!("ledger {}", path.display()))?;
            for f in ledger.all_files()? {
                let objects = ledger
                    .objects(f.id)?
                    .into_iter()
                    .map(|o| o.key)
                    .collect::<Vec<_>>();
                let now_at = f.final_path.as_ref().map(|p| p.display().to_string());
                let error_report = f.final_path.as_ref().and_then(|p| {
                    let r = p.with_file_name(format!("{}.error.json", f.name));
                    r.exists().then(|| r.display().to_string())
                });
                let first_error = error_report.as_ref().and_then(|r| {
                    let v: serde_json::Value =
                        serde_json::from_slice(&std::fs::read(r).ok()?).ok()?;
                    let e = &v["errors"][0];
                    Some(format!(
                        "line {}, column {}, value {}: {}",
                        e["line"],
                        e["column"].as_str().unwrap_or("?"),
                        e["value"],
                        e["reason"].as_str().unwrap_or("?")
                    ))
                });
                files.push(FileReport {
                    producer: site.spec.id.to_owned(),
                    file: f.name.clone(),
                    state: f.state.as_str().to_owned(),
                    batch: f.batch_id.clone(),
                    rows: f.rows,
                    objects,
                    now_at,
                    error_report,
                    first_error,
                    product: site.product.clone(),
                    agent_config: Some(site.config.display().to_string()),
                });
            }
        }
        Ok(Self {
            tables,
            access,
            files,
            queue_waiting: queue_depth(mesh, &mesh.queue_url).await?,
            dead_letters: queue_depth(mesh, &mesh.dlq_url).await?,
            previews: Vec::new(),
            probes: Vec::new(),
        })
    }

    /// Checks the policy two ways: `preview` of every table for every principal (enforced
    /// locally, on the objects in S3), then `verify` (Athena probes as each principal, against
    /// the emulator's queued answers: see [`Mesh::queue_verify_answers`]).
    pub async fn check_access(&mut self, mesh: &Mesh) -> Result<()> {
        let mut previews = Vec::new();
        for principal in crate::mesh::PRINCIPALS {
            for t in &self.tables {
                let table = format!("{}.{}", t.database, t.table);
                let p = match mesh.preview(&table, principal, &t.location)? {
                    Ok(v) => PreviewReport {
                        principal: principal.to_owned(),
                        table: table.clone(),
                        rows_visible: v["rows_visible"].as_u64(),
                        rows_total: v["rows_total"].as_u64(),
                        hidden_columns: v["hidden_columns"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(|x| x.as_str().map(str::to_owned))
                                    .collect()
                            })
                            .unwrap_or_default(),
                        row_filter: v["row_filter"].as_str().map(str::to_owned),
                        refused: None,
                    },
                    Err(why) => PreviewReport {
                        principal: principal.to_owned(),
                        table: table.clone(),
                        rows_visible: None,
                        rows_total: None,
                        hidden_columns: Vec::new(),
                        row_filter: None,
                        refused: Some(why),
                    },
                };
                previews.push(p);
            }
        }
        let hidden = |principal: &str, table: &str| {
            previews
                .iter()
                .find(|p| p.principal == principal && p.table == table)
                .and_then(|p| Some(p.rows_total? - p.rows_visible?))
                .unwrap_or(0)
        };
        mesh.queue_verify_answers(&self.access, &hidden).await?;
        let v = mesh.verify()?;
        let s = |x: &serde_json::Value| x.as_str().unwrap_or_default().to_owned();
        self.probes = v["results"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| ProbeReport {
                        principal: s(&r["principal"]),
                        table: s(&r["table"]),
                        probe: s(&r["probe"]),
                        status: s(&r["status"]),
                        detail: s(&r["detail"]),
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.previews = previews;
        Ok(())
    }

    /// For people.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "== Catalog (Glue): databases, tables, partitions, rows");
        let mut by_db: BTreeMap<&str, Vec<&TableReport>> = BTreeMap::new();
        for t in &self.tables {
            by_db.entry(&t.database).or_default().push(t);
        }
        for (db, ts) in by_db {
            let _ = writeln!(s, "{db}");
            for t in ts {
                let _ = writeln!(
                    s,
                    "  {}  {}  {} ({}), {}, {}",
                    t.table,
                    t.location,
                    plural(t.partitions.len() as u64, "partition"),
                    t.partition_keys.join(", "),
                    plural(t.objects as u64, "object"),
                    plural(t.rows, "row")
                );
                let _ = writeln!(s, "    columns: {}", t.columns.join(", "));
                let _ = writeln!(s, "    partitions: {}", t.partitions.join("  "));
            }
        }
        let _ = writeln!(
            s,
            "\n== Access (Lake Formation): per role, tables, columns, rows"
        );
        let mut by_principal: BTreeMap<&str, BTreeMap<&str, Vec<&AccessReport>>> = BTreeMap::new();
        for a in &self.access {
            by_principal
                .entry(&a.principal)
                .or_default()
                .entry(&a.table)
                .or_default()
                .push(a);
        }
        for (principal, tables) in &by_principal {
            let _ = writeln!(s, "{principal}");
            for (table, entries) in tables {
                let mut perms: Vec<&str> = entries
                    .iter()
                    .flat_map(|a| a.permissions.iter().map(String::as_str))
                    .collect();
                perms.sort_unstable();
                perms.dedup();
                // Columns and rows are those of the entry that reads data (SELECT); a
                // DESCRIBE-only entry is metadata.
                match entries
                    .iter()
                    .find(|a| a.permissions.iter().any(|p| p == "SELECT"))
                {
                    Some(a) => {
                        let _ = writeln!(
                            s,
                            "  {table}  {}  columns: {}  rows: {}{}",
                            perms.join("+"),
                            a.columns,
                            a.rows,
                            a.filter
                                .as_ref()
                                .map(|f| format!("  (data cells filter {f})"))
                                .unwrap_or_default()
                        );
                    }
                    None => {
                        let _ = writeln!(s, "  {table}  {}  metadata only", perms.join("+"));
                    }
                }
            }
            for t in &self.tables {
                let name = format!("{}.{}", t.database, t.table);
                if !tables.contains_key(name.as_str()) {
                    let _ = writeln!(s, "  {name}  no access");
                }
            }
        }
        let _ = writeln!(s, "\n== Source files: where each one ended up");
        for f in &self.files {
            match f.state.as_str() {
                "done" => {
                    let _ = writeln!(
                        s,
                        "{}  {}  delivered as batch {}: {} in {}, source archived at {}",
                        f.producer,
                        f.file,
                        f.batch.as_deref().unwrap_or("?"),
                        plural(f.rows.unwrap_or(0), "row"),
                        plural(f.objects.len() as u64, "object"),
                        f.now_at.as_deref().unwrap_or("?")
                    );
                    for k in &f.objects {
                        let _ = writeln!(s, "      {k}");
                    }
                }
                other => {
                    let _ = writeln!(
                        s,
                        "{}  {}  {}: {}; source at {}; report {}",
                        f.producer,
                        f.file,
                        other.to_uppercase(),
                        f.first_error.as_deref().unwrap_or("(no report)"),
                        f.now_at.as_deref().unwrap_or("?"),
                        f.error_report.as_deref().unwrap_or("-")
                    );
                    if let Some(config) = &f.agent_config {
                        let _ = writeln!(
                            s,
                            "      once the export is fixed: lakemesh-agent retry --config {config} --product {} {}",
                            f.product, f.file
                        );
                    }
                }
            }
        }
        let _ = writeln!(
            s,
            "\n== Queues: {} announcements waiting, {} in the dead-letter queue",
            self.queue_waiting, self.dead_letters
        );
        if !self.previews.is_empty() {
            let _ = writeln!(
                s,
                "\n== preview: what each role sees of the data (the policy enforced locally, on the Parquet in S3)"
            );
            for p in &self.previews {
                match (&p.refused, p.rows_visible, p.rows_total) {
                    (None, Some(v), Some(t)) => {
                        let _ = writeln!(
                            s,
                            "{}  {}  {v} of {t} rows{}{}",
                            p.principal,
                            p.table,
                            p.row_filter
                                .as_ref()
                                .map(|f| format!(
                                    " (rows where {})",
                                    f.trim_start_matches('(').trim_end_matches(')')
                                ))
                                .unwrap_or_default(),
                            if p.hidden_columns.is_empty() {
                                String::new()
                            } else {
                                format!(", never {}", p.hidden_columns.join(", "))
                            }
                        );
                    }
                    _ => {
                        let _ = writeln!(s, "{}  {}  refused: no grant", p.principal, p.table);
                    }
                }
            }
        }
        if !self.probes.is_empty() {
            let _ = writeln!(
                s,
                "\n== verify: Athena probes as each role (here against the emulator's queued answers, built from what Lake Formation holds)"
            );
            for p in &self.probes {
                let _ = writeln!(
                    s,
                    "{:<5} {}  {}  {}: {}",
                    p.status.to_uppercase(),
                    p.principal,
                    p.table,
                    p.probe,
                    p.detail
                );
            }
            let _ = writeln!(
                s,
                "   The emulator does not enforce Lake Formation: a role reads every table there, so each \"refused\" probe fails here by design; preview above is the enforcement, and on AWS verify proves it."
            );
        }
        s
    }
}

/// `1 row`, `2 rows`.
fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
