//! Lake Formation governance: producer locations registered with the custom registration role,
//! the crawler role's grants (CREATE_TABLE, ALTER and DESCRIBE on the database,
//! DATA_LOCATION_ACCESS on the location), IAM-only defaults revoked from the daemon's
//! databases, and the policy made true: read what Lake Formation holds on the managed tables
//! (table, column and data cells filter grants; the daemon's `lm_` filters), normalise it, diff
//! it with the policy (`policy::diff`) and apply the changes in batches, retrying concurrent
//! modification.
//!
//! Does not own the policy's meaning (`policy`, `lint`) or the Glue catalog (`catalog`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use aws_sdk_lakeformation::types::{
    ColumnWildcard, DataCellsFilter, DataCellsFilterResource, DataLocationResource,
    DatabaseResource, Resource, RowFilter as LfRowFilter, TableResource, TableWildcard,
    TableWithColumnsResource,
};

use crate::aws_error::AwsError;
use crate::backoff::{self, Transient};
use crate::config::{Producer, Settings};
use crate::glue::Glue;
use crate::lakeformation::{BATCH, LakeFormation};
use crate::policy::{
    Change, Columns, FILTER_PREFIX, FilterDef, GrantKey, ManagedTable, Policy, PolicyError, State,
    TABLE_PERMISSIONS, TableRef, Target,
};

/// The principal Lake Formation uses for IAM-only access.
pub const IAM_ALLOWED_PRINCIPALS: &str = "IAM_ALLOWED_PRINCIPALS";
/// What the crawler role gets on each database.
pub const CRAWLER_DATABASE_PERMISSIONS: [&str; 3] = ["ALTER", "CREATE_TABLE", "DESCRIBE"];

/// Why a governance step failed.
#[derive(Debug, thiserror::Error)]
pub enum GovernError {
    /// A Lake Formation or Glue call failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// The policy does not fit the tables.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A batch entry failed.
    #[error("Lake Formation {operation}: {change}: {code}: {message}")]
    Entry {
        /// The batch call.
        operation: &'static str,
        /// The change, as `plan` prints it.
        change: String,
        /// Error code.
        code: String,
        /// Error message.
        message: String,
    },
}

impl Transient for GovernError {
    fn is_transient(&self) -> bool {
        match self {
            Self::Aws(e) => e.is_transient(),
            Self::Policy(_) => false,
            Self::Entry { code, .. } => {
                code == "ConcurrentModificationException" || code.contains("Throttl")
            }
        }
    }
}

impl GovernError {
    /// Whether the step may succeed later.
    pub fn is_transient(&self) -> bool {
        Transient::is_transient(self)
    }
}

/// Governance, shared by every message task.
pub struct Governor {
    lf: LakeFormation,
    glue: Glue,
    settings: Arc<Settings>,
    /// The policy in force; replaced whole by [`Governor::replace_policy`] (SIGHUP), read as
    /// one snapshot per plan.
    policy: std::sync::RwLock<Arc<Policy>>,
    /// Locations and databases already set up by this process (held while one is set up, so
    /// no message goes on before its setup is complete).
    done: tokio::sync::Mutex<BTreeSet<String>>,
    /// One policy application per table at a time.
    tables: Mutex<HashMap<TableRef, Arc<tokio::sync::Mutex<()>>>>,
}

fn table_resource(t: &TableRef) -> Result<Resource, AwsError> {
    let table = TableResource::builder()
        .database_name(&t.database)
        .name(&t.table)
        .build()
        .map_err(|e| {
            AwsError::invalid_answer("Lake Formation", "request", t.to_string(), e.to_string())
        })?;
    Ok(Resource::builder().table(table).build())
}

/// The Lake Formation resource of a normalised target.
pub fn resource(target: &Target, catalog: &str) -> Result<Resource, AwsError> {
    let bad = |e: aws_sdk_lakeformation::error::BuildError| {
        AwsError::invalid_answer(
            "Lake Formation",
            "request",
            target.to_string(),
            e.to_string(),
        )
    };
    Ok(match target {
        Target::Table(t) | Target::Columns(t, Columns::All) => table_resource(t)?,
        Target::Columns(t, cols) => {
            let b = TableWithColumnsResource::builder()
                .database_name(&t.database)
                .name(&t.table);
            let b = match cols {
                Columns::Include(c) => b.set_column_names(Some(c.iter().cloned().collect())),
                Columns::Exclude(c) => b.column_wildcard(
                    ColumnWildcard::builder()
                        .set_excluded_column_names(Some(c.iter().cloned().collect()))
                        .build(),
                ),
                Columns::All => b.column_wildcard(ColumnWildcard::builder().build()),
            };
            Resource::builder()
                .table_with_columns(b.build().map_err(bad)?)
                .build()
        }
        Target::AllTables(d) => Resource::builder()
            .table(
                TableResource::builder()
                    .database_name(d)
                    .table_wildcard(TableWildcard::builder().build())
                    .build()
                    .map_err(bad)?,
            )
            .build(),
        Target::Database(d) => Resource::builder()
            .database(DatabaseResource::builder().name(d).build().map_err(bad)?)
            .build(),
        Target::Filter(t, name) => Resource::builder()
            .data_cells_filter(
                DataCellsFilterResource::builder()
                    .table_catalog_id(catalog)
                    .database_name(&t.database)
                    .table_name(&t.table)
                    .name(name)
                    .build(),
            )
            .build(),
    })
}

/// Normal form of one listed permission (nothing for resources the policy does not manage:
/// locations, the catalog).
pub fn normalise(resource: &Resource, permissions: &[String]) -> Vec<(Target, BTreeSet<String>)> {
    let mut perms: BTreeSet<String> = permissions.iter().cloned().collect();
    if perms.remove("ALL") {
        perms.extend(TABLE_PERMISSIONS.iter().map(|p| (*p).to_owned()));
    }
    if let Some(d) = resource.database() {
        return vec![(Target::Database(d.name().to_owned()), perms)];
    }
    if let Some(t) = resource.table() {
        let Some(name) = t.name() else {
            if t.table_wildcard().is_some() {
                return vec![(Target::AllTables(t.database_name().to_owned()), perms)];
            }
            return Vec::new();
        };
        let table = TableRef {
            database: t.database_name().to_owned(),
            table: name.to_owned(),
        };
        let mut out = Vec::new();
        if perms.remove("SELECT") {
            out.push((
                Target::Columns(table.clone(), Columns::All),
                BTreeSet::from(["SELECT".to_owned()]),
            ));
        }
        if !perms.is_empty() {
            out.push((Target::Table(table), perms));
        }
        return out;
    }
    if let Some(t) = resource.table_with_columns() {
        let table = TableRef {
            database: t.database_name().to_owned(),
            table: t.name().to_owned(),
        };
        let cols = if !t.column_names().is_empty() {
            Columns::include(t.column_names().iter().cloned())
        } else {
            Columns::exclude(
                t.column_wildcard()
                    .map(|w| w.excluded_column_names().to_vec())
                    .unwrap_or_default(),
            )
        };
        return vec![(Target::Columns(table, cols), perms)];
    }
    if let Some(f) = resource.data_cells_filter() {
        let (Some(db), Some(t), Some(name)) = (f.database_name(), f.table_name(), f.name()) else {
            return Vec::new();
        };
        let table = TableRef {
            database: db.to_owned(),
            table: t.to_owned(),
        };
        return vec![(Target::Filter(table, name.to_owned()), perms)];
    }
    Vec::new()
}

fn filter_def(f: &DataCellsFilter) -> FilterDef {
    let columns = if !f.column_names().is_empty() {
        Columns::include(f.column_names().iter().cloned())
    } else {
        Columns::exclude(
            f.column_wildcard()
                .map(|w| w.excluded_column_names().to_vec())
                .unwrap_or_default(),
        )
    };
    FilterDef {
        table: TableRef {
            database: f.database_name().to_owned(),
            table: f.table_name().to_owned(),
        },
        name: f.name().to_owned(),
        expression: f
            .row_filter()
            .and_then(|r| r.filter_expression())
            .unwrap_or_default()
            .to_owned(),
        columns,
    }
}

fn filter_input(d: &FilterDef, catalog: &str) -> Result<DataCellsFilter, AwsError> {
    let b = DataCellsFilter::builder()
        .table_catalog_id(catalog)
        .database_name(&d.table.database)
        .table_name(&d.table.table)
        .name(&d.name)
        .row_filter(
            LfRowFilter::builder()
                .filter_expression(&d.expression)
                .build(),
        );
    let b = match &d.columns {
        Columns::Include(c) => b.set_column_names(Some(c.iter().cloned().collect())),
        Columns::Exclude(c) => b.column_wildcard(
            ColumnWildcard::builder()
                .set_excluded_column_names(Some(c.iter().cloned().collect()))
                .build(),
        ),
        Columns::All => b.column_wildcard(ColumnWildcard::builder().build()),
    };
    b.build().map_err(|e| {
        AwsError::invalid_answer("Lake Formation", "request", d.name.clone(), e.to_string())
    })
}

impl Governor {
    /// A governor applying `policy`.
    pub fn new(
        lf: LakeFormation,
        glue: Glue,
        settings: Arc<Settings>,
        policy: Arc<Policy>,
    ) -> Arc<Self> {
        Arc::new(Self {
            lf,
            glue,
            settings,
            policy: std::sync::RwLock::new(policy),
            done: tokio::sync::Mutex::new(BTreeSet::new()),
            tables: Mutex::new(HashMap::new()),
        })
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        Arc::clone(
            &self
                .policy
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Puts `policy` in force for every plan from now on (a plan running keeps its snapshot).
    pub fn replace_policy(&self, policy: Arc<Policy>) {
        *self
            .policy
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = policy;
    }

    /// The Lake Formation adapter.
    pub fn lake_formation(&self) -> &LakeFormation {
        &self.lf
    }

    /// Registers the producer's location with the registration role (once per process).
    pub async fn register_location(&self, producer: &Producer) -> Result<(), GovernError> {
        let arn = producer.location_arn();
        let key = format!("location {arn}");
        let mut done = self.done.lock().await;
        if done.contains(&key) {
            return Ok(());
        }
        let role = &self.settings.registration_role_arn;
        let r = async {
            match self.lf.registered_role(&arn).await? {
                Some(r) if r == *role => Ok(()),
                Some(r) => {
                    log::warn!(
                        "location={arn}: registered with role {r:?}, not the configured {role:?}; \
                         deregister it and let the daemon register it again"
                    );
                    Ok(())
                }
                None => {
                    let limit = self.settings.retry_limit;
                    if backoff::retry(&format!("register {arn}"), limit, || {
                        self.lf.register(&arn, role)
                    })
                    .await?
                    {
                        log::info!("location={arn}: registered with role {role}");
                    }
                    Ok(())
                }
            }
        }
        .await;
        if r.is_ok() {
            done.insert(key);
        }
        r
    }

    /// Grants the crawler role what it needs on the database and the producer's location, and
    /// revokes IAM_ALLOWED_PRINCIPALS from the database (once per process and database).
    pub async fn prepare_database(
        &self,
        database: &str,
        producer: &Producer,
    ) -> Result<(), GovernError> {
        let key = format!("database {database} {}", producer.id);
        let mut done = self.done.lock().await;
        if done.contains(&key) {
            return Ok(());
        }
        let r = self.prepare_database_now(database, producer).await;
        if r.is_ok() {
            done.insert(key);
        }
        r
    }

    async fn prepare_database_now(
        &self,
        database: &str,
        producer: &Producer,
    ) -> Result<(), GovernError> {
        let limit = self.settings.retry_limit;
        let db = Resource::builder()
            .database(
                DatabaseResource::builder()
                    .name(database)
                    .build()
                    .map_err(|e| {
                        AwsError::invalid_answer(
                            "Lake Formation",
                            "request",
                            database,
                            e.to_string(),
                        )
                    })?,
            )
            .build();
        for (who, _, perms) in self.lf.list(&db, database).await? {
            if who == IAM_ALLOWED_PRINCIPALS && !perms.is_empty() {
                self.lf.revoke(&who, db.clone(), &perms, database).await?;
                log::info!("database={database}: revoked IAM_ALLOWED_PRINCIPALS {perms:?}");
            }
        }
        if let Some(role) = &self.settings.crawler_role_arn {
            backoff::retry(&format!("grant crawler role on {database}"), limit, || {
                self.lf
                    .grant(role, db.clone(), &CRAWLER_DATABASE_PERMISSIONS, database)
            })
            .await?;
            let location = Resource::builder()
                .data_location(
                    DataLocationResource::builder()
                        .resource_arn(producer.location_arn())
                        .build()
                        .map_err(|e| {
                            AwsError::invalid_answer(
                                "Lake Formation",
                                "request",
                                database,
                                e.to_string(),
                            )
                        })?,
                )
                .build();
            backoff::retry(
                &format!("grant crawler role on {}", producer.location_arn()),
                limit,
                || {
                    self.lf
                        .grant(role, location.clone(), &["DATA_LOCATION_ACCESS"], database)
                },
            )
            .await?;
            log::info!(
                "database={database}: crawler role {role} has {} and DATA_LOCATION_ACCESS on {}",
                CRAWLER_DATABASE_PERMISSIONS.join(", "),
                producer.location_arn()
            );
        }
        Ok(())
    }

    /// Every managed table (of the databases the registry names), or only `only`.
    pub async fn managed_tables(
        &self,
        only: Option<&TableRef>,
    ) -> Result<Vec<ManagedTable>, GovernError> {
        let mut out = Vec::new();
        for (database, feeders) in self.settings.databases() {
            if only.is_some_and(|t| t.database != database) {
                continue;
            }
            let Some(tables) = self.glue.get_tables(&database).await? else {
                continue;
            };
            for t in tables {
                if only.is_some_and(|o| o.table != t.name) {
                    continue;
                }
                let location = t.location.clone().unwrap_or_default();
                let feeder = feeders
                    .iter()
                    .find(|(p, _)| {
                        let root = if p.prefix.is_empty() {
                            format!("s3://{}/", p.bucket)
                        } else {
                            format!("s3://{}/{}/", p.bucket, p.prefix)
                        };
                        location.starts_with(&root)
                    })
                    .or(feeders.first());
                let Some((producer, domain)) = feeder else {
                    continue;
                };
                let mut columns = BTreeMap::new();
                for (n, ty) in t.columns.iter().chain(&t.partition_keys) {
                    columns.insert(n.clone(), ty.clone());
                }
                out.push(ManagedTable {
                    table: TableRef {
                        database: database.clone(),
                        table: t.name.clone(),
                    },
                    domain: (*domain).to_owned(),
                    producer: producer.id.clone(),
                    columns,
                });
            }
        }
        Ok(out)
    }

    /// What Lake Formation holds on `tables` and their databases, normalised (filter
    /// definitions: `lm_` ones only; grants: on every filter).
    pub async fn actual(&self, tables: &[ManagedTable]) -> Result<State, GovernError> {
        let catalog = &self.settings.account_id;
        let mut state = State::default();
        let add = |state: &mut State, who: String, target: Target, perms: BTreeSet<String>| {
            if !perms.is_empty() {
                state
                    .grants
                    .entry(GrantKey {
                        principal: who,
                        target,
                    })
                    .or_default()
                    .extend(perms);
            }
        };
        for t in tables {
            let what = t.table.to_string();
            for (who, res, perms) in self.lf.list(&table_resource(&t.table)?, &what).await? {
                for (target, p) in normalise(&res, &perms) {
                    if target.table() == Some(&t.table) {
                        add(&mut state, who.clone(), target, p);
                    }
                }
            }
            for f in self
                .lf
                .filters(catalog, &t.table.database, &t.table.table)
                .await?
            {
                let def = filter_def(&f);
                let target = Target::Filter(t.table.clone(), def.name.clone());
                for (who, _, perms) in self.lf.list(&resource(&target, catalog)?, &what).await? {
                    add(&mut state, who, target.clone(), perms.into_iter().collect());
                }
                if def.name.starts_with(FILTER_PREFIX) {
                    state
                        .filters
                        .insert((t.table.clone(), def.name.clone()), def);
                }
            }
        }
        // Database-wide grants: every table at once (table wildcard), and the database itself.
        let databases: BTreeSet<&str> = tables.iter().map(|t| t.table.database.as_str()).collect();
        for db in databases {
            for target in [
                Target::AllTables(db.to_owned()),
                Target::Database(db.to_owned()),
            ] {
                for (who, res, perms) in self.lf.list(&resource(&target, catalog)?, db).await? {
                    for (listed, p) in normalise(&res, &perms) {
                        if listed == target {
                            add(&mut state, who.clone(), listed, p);
                        }
                    }
                }
            }
        }
        Ok(state)
    }

    /// Principals whose grants the diff leaves alone: the policy's unmanaged ones and the
    /// crawler role.
    pub fn ignored(&self) -> BTreeSet<String> {
        self.ignored_by(&self.policy())
    }

    fn ignored_by(&self, policy: &Policy) -> BTreeSet<String> {
        let mut s = policy.unmanaged_principals.clone();
        s.extend(self.settings.crawler_role_arn.clone());
        s
    }

    /// The changes that make Lake Formation match the policy on `tables` (linted first).
    pub async fn plan(&self, tables: &[ManagedTable]) -> Result<Vec<Change>, GovernError> {
        let policy = self.policy();
        policy.lint_tables(tables)?;
        let desired = policy.desired(tables);
        let actual = self.actual(tables).await?;
        Ok(crate::policy::diff(
            &desired,
            &actual,
            &self.ignored_by(&policy),
        ))
    }

    /// Applies changes in order: filters created or updated, revokes and grants in batches of
    /// [`BATCH`] (entries failing with ConcurrentModificationException retried), filters
    /// deleted.
    pub async fn apply(&self, changes: &[Change]) -> Result<(), GovernError> {
        let catalog = self.settings.account_id.clone();
        let limit = self.settings.retry_limit;
        for c in changes {
            match c {
                Change::CreateFilter(d) => {
                    let input = filter_input(d, &catalog)?;
                    let created = backoff::retry(&c.to_string(), limit, || {
                        self.lf.create_filter(input.clone())
                    })
                    .await?;
                    if !created {
                        // Another daemon made it first; make sure it says what ours says.
                        backoff::retry(&c.to_string(), limit, || {
                            self.lf.update_filter(input.clone())
                        })
                        .await?;
                    }
                }
                Change::UpdateFilter { new, .. } => {
                    let input = filter_input(new, &catalog)?;
                    backoff::retry(&c.to_string(), limit, || {
                        self.lf.update_filter(input.clone())
                    })
                    .await?;
                }
                _ => {}
            }
        }
        for revoke in [true, false] {
            let batch: Vec<&Change> = changes
                .iter()
                .filter(|c| match c {
                    Change::Revoke { .. } => revoke,
                    Change::Grant { .. } => !revoke,
                    _ => false,
                })
                .collect();
            for chunk in batch.chunks(BATCH) {
                let mut entries = Vec::new();
                for c in chunk {
                    let (Change::Grant { key, permissions } | Change::Revoke { key, permissions }) =
                        c
                    else {
                        continue;
                    };
                    entries.push((
                        key.principal.clone(),
                        resource(&key.target, &catalog)?,
                        permissions.iter().cloned().collect::<Vec<_>>(),
                    ));
                }
                backoff::retry("Lake Formation batch", limit, || {
                    self.batch_once(revoke, chunk, &entries)
                })
                .await?;
            }
        }
        for c in changes {
            if let Change::DeleteFilter(d) = c {
                backoff::retry(&c.to_string(), limit, || {
                    self.lf
                        .delete_filter(&catalog, &d.table.database, &d.table.table, &d.name)
                })
                .await?;
            }
        }
        for c in changes {
            if c.is_applied() {
                log::info!("policy: {c}");
            } else {
                log::debug!("policy: {c}");
            }
        }
        Ok(())
    }

    async fn batch_once(
        &self,
        revoke: bool,
        chunk: &[&Change],
        entries: &[(String, Resource, Vec<String>)],
    ) -> Result<(), GovernError> {
        let failures = self.lf.batch(revoke, entries).await?;
        // Transient failures first, so the retry covers them; the batch calls are idempotent.
        let mut worst: Option<GovernError> = None;
        for f in failures {
            let err = GovernError::Entry {
                operation: if revoke {
                    "BatchRevokePermissions"
                } else {
                    "BatchGrantPermissions"
                },
                change: chunk
                    .get(f.index)
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                code: f.code,
                message: f.message,
            };
            if worst
                .as_ref()
                .is_none_or(|w| w.is_transient() && !err.is_transient())
            {
                worst = Some(err);
            }
        }
        worst.map_or(Ok(()), Err)
    }

    /// Plans and applies the policy for one table (after its crawl). One at a time per table.
    pub async fn apply_table(&self, table: &TableRef) -> Result<usize, GovernError> {
        let lock = {
            let mut m = self
                .tables
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(m.entry(table.clone()).or_default())
        };
        let _guard = lock.lock().await;
        let tables = self.managed_tables(Some(table)).await?;
        if tables.is_empty() {
            log::warn!("table={table}: not in the catalog after cataloging; no policy applied");
            return Ok(0);
        }
        let changes = self.plan(&tables).await?;
        self.apply(&changes).await?;
        Ok(changes.iter().filter(|c| c.is_applied()).count())
    }

    /// With `[pii_tag]` in the policy: tags the announced columns whose `pii` is not `keep`
    /// (LF-tag created or completed first). Returns the columns tagged.
    pub async fn tag_pii_columns(
        &self,
        table: &TableRef,
        columns: &[lakemesh_shared::announcement::Column],
    ) -> Result<usize, GovernError> {
        let policy = self.policy();
        let Some(key) = &policy.pii_tag else {
            return Ok(0);
        };
        let mut by_value: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for c in columns {
            if let Some(v) = crate::policy::pii_tag_value(&c.pii) {
                by_value.entry(v).or_default().push(c.name.clone());
            }
        }
        if by_value.is_empty() {
            return Ok(0);
        }
        let limit = self.settings.retry_limit;
        backoff::retry(&format!("LF-tag {key}"), limit, || {
            self.lf.ensure_tag(key, &crate::policy::PII_TAG_VALUES)
        })
        .await?;
        let mut n = 0;
        for (value, cols) in &by_value {
            backoff::retry(&format!("tag {table} {cols:?}"), limit, || {
                self.lf
                    .tag_columns(&table.database, &table.table, cols, key, value)
            })
            .await?;
            n += cols.len();
        }
        log::info!("table={table}: LF-tag {key} on {n} protected columns");
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> TableRef {
        TableRef {
            database: "db".into(),
            table: "stays".into(),
        }
    }

    fn perms(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| (*s).to_owned()).collect()
    }

    fn set(p: &[&str]) -> BTreeSet<String> {
        p.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn listed_grants_normalise_all_wildcards_and_column_order() {
        let table = resource(&Target::Table(t()), "1").unwrap();
        assert_eq!(
            normalise(&table, &perms(&["ALL"])),
            vec![
                (Target::Columns(t(), Columns::All), set(&["SELECT"])),
                (
                    Target::Table(t()),
                    set(&["ALTER", "DELETE", "DESCRIBE", "DROP", "INSERT"])
                ),
            ]
        );
        let wildcard = Resource::builder()
            .table_with_columns(
                TableWithColumnsResource::builder()
                    .database_name("db")
                    .name("stays")
                    .column_wildcard(ColumnWildcard::builder().build())
                    .build()
                    .unwrap(),
            )
            .build();
        assert_eq!(
            normalise(&wildcard, &perms(&["SELECT"])),
            vec![(Target::Columns(t(), Columns::All), set(&["SELECT"]))]
        );
        let unordered = Resource::builder()
            .table_with_columns(
                TableWithColumnsResource::builder()
                    .database_name("db")
                    .name("stays")
                    .column_names("b")
                    .column_names("a")
                    .build()
                    .unwrap(),
            )
            .build();
        assert_eq!(
            normalise(&unordered, &perms(&["SELECT"])),
            vec![(
                Target::Columns(t(), Columns::include(["a", "b"])),
                set(&["SELECT"])
            )]
        );
    }

    #[test]
    fn targets_round_trip_through_lake_formation_resources() {
        for target in [
            Target::Table(t()),
            Target::Columns(t(), Columns::All),
            Target::Columns(t(), Columns::include(["x", "y"])),
            Target::Columns(t(), Columns::exclude(["patient_id"])),
            Target::Filter(t(), "lm_0123456789ab".into()),
            Target::AllTables("db".into()),
            Target::Database("db".into()),
        ] {
            let p = if matches!(target, Target::Table(_) | Target::Database(_)) {
                "DESCRIBE"
            } else {
                "SELECT"
            };
            let r = resource(&target, "123456789012").unwrap();
            assert_eq!(
                normalise(&r, &perms(&[p])),
                vec![(target.clone(), set(&[p]))],
                "{target}"
            );
        }
        let filter = FilterDef {
            table: t(),
            name: "lm_0123456789ab".into(),
            expression: "region_code = '76'".into(),
            columns: Columns::exclude(["b", "a"]),
        };
        assert_eq!(filter_def(&filter_input(&filter, "1").unwrap()), filter);
        // Location grants are not the policy's.
        let location = Resource::builder()
            .data_location(
                DataLocationResource::builder()
                    .resource_arn("arn:aws:s3:::b/p")
                    .build()
                    .unwrap(),
            )
            .build();
        assert!(normalise(&location, &perms(&["DATA_LOCATION_ACCESS"])).is_empty());
    }
}
