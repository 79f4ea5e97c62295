//! The ministry policy file (`policy_file`): which principal gets which permissions on which
//! tables, columns and rows; its normalised form; and the difference between it and what Lake
//! Formation holds.
//!
//! ```toml
//! unmanaged_principals = ["arn:aws:iam::999988887777:role/admin"]   # grants left alone
//!
//! [[grant]]
//! principal = "arn:aws:iam::111122223333:role/ministry-statistics"
//! tables = { domain = "hospital_activity" }    # and/or producer, database, table
//! permissions = ["SELECT", "DESCRIBE"]
//! columns = { exclude = ["patient_id"] }       # or include = [...]; default all
//! rows = "region_code = '76'"                  # becomes a data cells filter
//! ```
//!
//! Owns: the file's parsing and lint ([`Policy::load`], [`Policy::lint_tables`]), the normal
//! form of grants ([`GrantKey`], [`Target`], [`Columns`]: `ALL` expanded, SELECT on a table the
//! same as SELECT on all its columns, column lists as sets, an empty exclusion list the same as
//! all columns), what one table should look like ([`Policy::desired`]), the diff
//! ([`diff`]) and its printed form ([`Change`]). Deterministic data cells filter names
//! ([`filter_name`]). Pure: no AWS calls (`govern` reads and applies).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::lint::{FilterError, MAX_FILTERS_PER_TABLE, RowFilter};

/// Permissions a policy may give on a table.
pub const TABLE_PERMISSIONS: [&str; 6] =
    ["ALTER", "DELETE", "DESCRIBE", "DROP", "INSERT", "SELECT"];
/// Prefix of the data cells filters this daemon manages.
pub const FILTER_PREFIX: &str = "lm_";

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// Principals whose grants on managed tables are never revoked (administrators, tools).
    #[serde(default)]
    pub unmanaged_principals: Vec<String>,
    /// The grants.
    #[serde(default, rename = "grant")]
    pub grants: Vec<RawGrant>,
    /// LF-tag for protected columns: `[pii_tag] key = "lakemesh_pii"` tags every column whose
    /// announcement says `pii` is `hmac`, `year` or `truncate:N` with that key and the value
    /// `hmac`, `year` or `truncate`. Optional.
    pub pii_tag: Option<RawPiiTag>,
}

/// `[pii_tag]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPiiTag {
    /// The LF-tag key (1 to 128 characters: letters, digits, `_ . : / = + - @ %`).
    pub key: String,
}

/// Values of the PII LF-tag.
pub const PII_TAG_VALUES: [&str; 3] = ["hmac", "truncate", "year"];

/// The PII LF-tag value of an announcement's `pii` (`None` for `keep`).
pub fn pii_tag_value(pii: &str) -> Option<&'static str> {
    match pii {
        "hmac" => Some("hmac"),
        "year" => Some("year"),
        p if p.starts_with("truncate:") => Some("truncate"),
        _ => None,
    }
}

/// One `[[grant]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGrant {
    /// IAM role or user ARN (`arn:aws:iam::ACCOUNT:role/NAME`).
    pub principal: String,
    /// Which tables: any of `domain`, `producer`, `database`, `table`; all given must match.
    pub tables: TableSelector,
    /// `SELECT`, `DESCRIBE`, `ALTER`, `DROP`, `DELETE`, `INSERT` or `ALL`.
    pub permissions: Vec<String>,
    /// `{ include = [...] }` or `{ exclude = [...] }`; default all columns.
    pub columns: Option<RawColumns>,
    /// A row filter (a data cells filter), e.g. `region_code = '76'`.
    pub rows: Option<String>,
}

/// Which tables a grant covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSelector {
    /// Tables of this domain (data type).
    pub domain: Option<String>,
    /// Tables of this producer.
    pub producer: Option<String>,
    /// Tables of this Glue database.
    pub database: Option<String>,
    /// The table of this name.
    pub table: Option<String>,
}

/// `columns = { include = [...] }` or `{ exclude = [...] }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawColumns {
    /// Only these columns.
    pub include: Option<Vec<String>>,
    /// All columns but these.
    pub exclude: Option<Vec<String>>,
}

/// A column set in normal form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Columns {
    /// Every column.
    All,
    /// Only these.
    Include(BTreeSet<String>),
    /// All but these (never empty: an empty exclusion is [`Columns::All`]).
    Exclude(BTreeSet<String>),
}

impl Columns {
    /// Normal form of an include list.
    pub fn include<I: IntoIterator<Item = S>, S: Into<String>>(cols: I) -> Self {
        Self::Include(cols.into_iter().map(Into::into).collect())
    }

    /// Normal form of an exclude list.
    pub fn exclude<I: IntoIterator<Item = S>, S: Into<String>>(cols: I) -> Self {
        let set: BTreeSet<String> = cols.into_iter().map(Into::into).collect();
        if set.is_empty() {
            Self::All
        } else {
            Self::Exclude(set)
        }
    }

    fn names(&self) -> Option<&BTreeSet<String>> {
        match self {
            Self::All => None,
            Self::Include(s) | Self::Exclude(s) => Some(s),
        }
    }
}

impl fmt::Display for Columns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list =
            |s: &BTreeSet<String>| s.iter().map(String::as_str).collect::<Vec<_>>().join(", ");
        match self {
            Self::All => f.write_str("all columns"),
            Self::Include(s) => write!(f, "columns {}", list(s)),
            Self::Exclude(s) => write!(f, "all columns but {}", list(s)),
        }
    }
}

/// A table, by database and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableRef {
    /// Glue database.
    pub database: String,
    /// Table name.
    pub table: String,
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.database, self.table)
    }
}

/// What a grant is on, in normal form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// The table's permissions other than SELECT.
    Table(TableRef),
    /// SELECT on columns of the table ([`Columns::All`]: the whole table).
    Columns(TableRef, Columns),
    /// SELECT through the data cells filter of this name.
    Filter(TableRef, String),
    /// Every table of the database (a `TableWildcard` grant): never in a policy, so always
    /// revoked from managed principals, since it reads every row and column of every table.
    AllTables(String),
    /// The database itself (`CREATE_TABLE`, `ALTER`, `DROP`, `DESCRIBE`): not managed (the
    /// daemon's own role may hold its creator's permissions there); listed by `plan`.
    Database(String),
}

impl Target {
    /// The table it belongs to (none for database-wide targets).
    pub fn table(&self) -> Option<&TableRef> {
        match self {
            Self::Table(t) | Self::Columns(t, _) | Self::Filter(t, _) => Some(t),
            Self::AllTables(_) | Self::Database(_) => None,
        }
    }

    /// The database it belongs to.
    pub fn database(&self) -> &str {
        match self {
            Self::Table(t) | Self::Columns(t, _) | Self::Filter(t, _) => &t.database,
            Self::AllTables(d) | Self::Database(d) => d,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Table(t) => write!(f, "table {t}"),
            Self::Columns(t, c) => write!(f, "table {t} ({c})"),
            Self::Filter(t, name) => write!(f, "data cells filter {name} of {t}"),
            Self::AllTables(d) => write!(f, "every table of {d} (table wildcard)"),
            Self::Database(d) => write!(f, "database {d}"),
        }
    }
}

/// One principal's grants on one target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GrantKey {
    /// The principal.
    pub principal: String,
    /// The target.
    pub target: Target,
}

/// A data cells filter, in normal form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FilterDef {
    /// Its table.
    pub table: TableRef,
    /// `lm_` + hash (see [`filter_name`]).
    pub name: String,
    /// The row filter expression.
    pub expression: String,
    /// The columns it lets through.
    pub columns: Columns,
}

/// What Lake Formation should hold (or holds) for a set of tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Grants: permissions per principal and target.
    pub grants: BTreeMap<GrantKey, BTreeSet<String>>,
    /// Filters managed by the daemon, by table and name.
    pub filters: BTreeMap<(TableRef, String), FilterDef>,
}

/// One step from what Lake Formation holds to the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A filter to create.
    CreateFilter(FilterDef),
    /// A filter whose rows or columns changed.
    UpdateFilter {
        /// As it is.
        old: FilterDef,
        /// As it should be.
        new: FilterDef,
    },
    /// A managed filter no grant uses any more.
    DeleteFilter(FilterDef),
    /// Permissions to grant.
    Grant {
        /// Principal and target.
        key: GrantKey,
        /// Permissions.
        permissions: BTreeSet<String>,
    },
    /// Permissions to revoke.
    Revoke {
        /// Principal and target.
        key: GrantKey,
        /// Permissions.
        permissions: BTreeSet<String>,
    },
    /// Permissions on a governed database that the daemon does not manage (database-level
    /// grants): shown so that a person decides; never applied.
    Unmanaged {
        /// Principal and target.
        key: GrantKey,
        /// Permissions.
        permissions: BTreeSet<String>,
    },
}

impl Change {
    /// Whether `apply` acts on it.
    pub fn is_applied(&self) -> bool {
        !matches!(self, Self::Unmanaged { .. })
    }
}

fn join(set: &BTreeSet<String>) -> String {
    set.iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CreateFilter(d) => write!(
                f,
                "+ create data cells filter {} on {}: rows {:?}, {}",
                d.name, d.table, d.expression, d.columns
            ),
            Self::UpdateFilter { old, new } => write!(
                f,
                "~ update data cells filter {} on {}: rows {:?}, {} (was rows {:?}, {})",
                new.name, new.table, new.expression, new.columns, old.expression, old.columns
            ),
            Self::DeleteFilter(d) => {
                write!(f, "- delete data cells filter {} on {}", d.name, d.table)
            }
            Self::Grant { key, permissions } => write!(
                f,
                "+ grant {} on {} to {}",
                join(permissions),
                key.target,
                key.principal
            ),
            Self::Revoke { key, permissions } => write!(
                f,
                "- revoke {} on {} from {}",
                join(permissions),
                key.target,
                key.principal
            ),
            Self::Unmanaged { key, permissions } => write!(
                f,
                "! not managed: {} holds {} on {} (revoke it by hand, or list the principal in unmanaged_principals)",
                key.principal,
                join(permissions),
                key.target
            ),
        }
    }
}

/// A grant, validated (its row filter parsed).
#[derive(Debug, Clone)]
pub struct Grant {
    /// 1-based position in the file, for messages.
    pub index: usize,
    /// The principal.
    pub principal: String,
    /// Which tables.
    pub tables: TableSelector,
    /// Permissions, `ALL` expanded.
    pub permissions: BTreeSet<String>,
    /// Columns of SELECT.
    pub columns: Columns,
    /// The row filter.
    pub rows: Option<RowFilter>,
}

/// The validated policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Principals left alone.
    pub unmanaged_principals: BTreeSet<String>,
    /// Grants in file order.
    pub grants: Vec<Grant>,
    /// The PII LF-tag key, if any.
    pub pii_tag: Option<String>,
    /// SHA-256 (hex) of the text it was read from (empty when built otherwise): recorded with
    /// each policy run, so that `status` can tell whether the file changed since.
    pub source_sha256: String,
}

/// A table the daemon manages, as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedTable {
    /// Database and name.
    pub table: TableRef,
    /// Its domain.
    pub domain: String,
    /// Its producer.
    pub producer: String,
    /// Column name → Athena type, partition keys included.
    pub columns: BTreeMap<String, String>,
}

/// Why a policy cannot be used. Grant errors name the grant (1-based), its principal and, when
/// the problem is with one table, the table.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file cannot be read.
    #[error("cannot read policy {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not TOML or not the expected keys.
    #[error("policy {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A grant is unusable.
    #[error("policy: grant #{index} (principal {principal}{}): {problem}", table.as_ref().map(|t| format!(", table {t}")).unwrap_or_default())]
    Grant {
        /// 1-based position.
        index: usize,
        /// Its principal.
        principal: String,
        /// The table concerned, if one.
        table: Option<String>,
        /// What is wrong.
        problem: String,
    },
    /// A top-level key is unusable.
    #[error("policy: key `{key}`: {reason}")]
    Invalid {
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// `lm_` and the first 12 hex digits of SHA-256 over principal, database, table and expression.
pub fn filter_name(principal: &str, table: &TableRef, expression: &str) -> String {
    let mut h = Sha256::new();
    for part in [principal, &table.database, &table.table, expression] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    format!("{FILTER_PREFIX}{}", &hex::encode(h.finalize())[..12])
}

fn check_principal(p: &str) -> Result<(), String> {
    let parts: Vec<&str> = p.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && (parts[5].starts_with("role/") || parts[5].starts_with("user/"))
        && parts[5].len() > 5;
    if ok {
        Ok(())
    } else if p.len() == 12 && p.bytes().all(|b| b.is_ascii_digit()) {
        Err(format!(
            "{p:?} is an account: granting to an account is not granting to a role in it; name the role (arn:aws:iam::{p}:role/NAME)"
        ))
    } else {
        Err(format!(
            "{p:?} is not an IAM role or user ARN (arn:aws:iam::ACCOUNT:role/NAME)"
        ))
    }
}

impl Policy {
    /// Reads and validates a policy file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses and validates policy text.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, PolicyError> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| PolicyError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let mut policy = Self::try_from_raw(raw)?;
        policy.source_sha256 = hex::encode(Sha256::digest(text.as_bytes()));
        Ok(policy)
    }

    /// Validates a parsed policy: principals, selectors, permissions, column lists, row
    /// filters (parsed and checked by `lint`), and that grants of one principal agree.
    pub fn try_from_raw(raw: RawPolicy) -> Result<Self, PolicyError> {
        let mut unmanaged = BTreeSet::new();
        for (i, p) in raw.unmanaged_principals.iter().enumerate() {
            check_principal(p).map_err(|reason| PolicyError::Invalid {
                key: format!("unmanaged_principals[{i}]"),
                reason,
            })?;
            unmanaged.insert(p.clone());
        }
        let mut grants = Vec::new();
        for (i, g) in raw.grants.into_iter().enumerate() {
            let index = i + 1;
            let bad = |problem: String| PolicyError::Grant {
                index,
                principal: g.principal.clone(),
                table: None,
                problem,
            };
            check_principal(&g.principal).map_err(bad)?;
            if unmanaged.contains(&g.principal) {
                return Err(bad("the principal is also in unmanaged_principals".into()));
            }
            let s = &g.tables;
            if s.domain.is_none() && s.producer.is_none() && s.database.is_none() {
                return Err(bad(
                    "`tables` needs a domain, producer or database (a table name alone is ambiguous)"
                        .into(),
                ));
            }
            for (k, v) in [
                ("domain", &s.domain),
                ("database", &s.database),
                ("table", &s.table),
            ] {
                if let Some(v) = v {
                    lakemesh_shared::names::check_identifier(v)
                        .map_err(|e| bad(format!("tables.{k}: {e}")))?;
                }
            }
            if g.permissions.is_empty() {
                return Err(bad("`permissions` is empty".into()));
            }
            let mut permissions = BTreeSet::new();
            for p in &g.permissions {
                match p.as_str() {
                    "ALL" => permissions.extend(TABLE_PERMISSIONS.iter().map(|s| (*s).to_owned())),
                    p if TABLE_PERMISSIONS.contains(&p) => {
                        permissions.insert(p.to_owned());
                    }
                    other => {
                        return Err(bad(format!(
                            "permission {other:?} is not one of ALL, {}",
                            TABLE_PERMISSIONS.join(", ")
                        )));
                    }
                }
            }
            let columns = match &g.columns {
                None => Columns::All,
                Some(RawColumns {
                    include: Some(_),
                    exclude: Some(_),
                }) => return Err(bad("`columns` takes include or exclude, not both".into())),
                Some(RawColumns {
                    include: Some(cols),
                    ..
                }) => {
                    if cols.is_empty() {
                        return Err(bad("`columns.include` is empty".into()));
                    }
                    Columns::include(cols.iter().cloned())
                }
                Some(RawColumns {
                    exclude: Some(cols),
                    ..
                }) => Columns::exclude(cols.iter().cloned()),
                Some(_) => return Err(bad("`columns` needs include or exclude".into())),
            };
            if let Some(names) = columns.names() {
                for c in names {
                    lakemesh_shared::names::check_identifier(c)
                        .map_err(|e| bad(format!("columns: {e}")))?;
                }
            }
            let restricted = columns != Columns::All || g.rows.is_some();
            if restricted && !permissions.contains("SELECT") {
                return Err(bad(
                    "`columns` and `rows` restrict SELECT, which `permissions` does not give"
                        .into(),
                ));
            }
            if restricted && g.permissions.iter().any(|p| p == "ALL") {
                return Err(bad(
                    "ALL gives SELECT on every column and row; list the permissions instead".into(),
                ));
            }
            let rows = match &g.rows {
                None => None,
                Some(text) => Some(
                    RowFilter::parse(text).map_err(|e| bad(format!("row filter {text:?}: {e}")))?,
                ),
            };
            grants.push(Grant {
                index,
                principal: g.principal,
                tables: g.tables,
                permissions,
                columns,
                rows,
            });
        }
        let pii_tag = match raw.pii_tag {
            None => None,
            Some(t) => {
                let ok = (1..=128).contains(&t.key.len())
                    && t.key
                        .chars()
                        .all(|c| c.is_alphanumeric() || "_.:/=+-@%".contains(c));
                if !ok {
                    return Err(PolicyError::Invalid {
                        key: "pii_tag.key".into(),
                        reason: format!(
                            "{:?} is not an LF-tag key (1 to 128 letters, digits and _ . : / = + - @ %)",
                            t.key
                        ),
                    });
                }
                Some(t.key)
            }
        };
        Ok(Self {
            unmanaged_principals: unmanaged,
            grants,
            pii_tag,
            source_sha256: String::new(),
        })
    }

    /// Whether a grant covers a table.
    /// Checks every grant's table selector against the producer registry: a producer, domain
    /// or database no registered producer has would silently match nothing (a typo).
    pub fn check_registry(&self, settings: &crate::config::Settings) -> Result<(), PolicyError> {
        let databases = settings.databases();
        for g in &self.grants {
            let bad = |problem: String| PolicyError::Grant {
                index: g.index,
                principal: g.principal.clone(),
                table: None,
                problem,
            };
            let sel = &g.tables;
            if let Some(p) = &sel.producer
                && !settings.producers.contains_key(p)
            {
                return Err(bad(format!(
                    "tables.producer {p:?} is not a registered producer (registered: {})",
                    settings
                        .producers
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            if let Some(d) = &sel.domain
                && !settings.producers.values().any(|p| p.domains.contains(d))
            {
                let mut known: Vec<&str> = settings
                    .producers
                    .values()
                    .flat_map(|p| p.domains.iter().map(String::as_str))
                    .collect();
                known.sort_unstable();
                known.dedup();
                return Err(bad(format!(
                    "tables.domain {d:?} is no registered producer's domain (known: {})",
                    known.join(", ")
                )));
            }
            if let Some(d) = &sel.database
                && !databases.contains_key(d)
            {
                return Err(bad(format!(
                    "tables.database {d:?} is not one of the daemon's databases ({})",
                    databases.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
            if let (Some(p), Some(d)) = (&sel.producer, &sel.domain)
                && settings
                    .producers
                    .get(p)
                    .is_some_and(|p| !p.domains.contains(d))
            {
                return Err(bad(format!("producer {p:?} does not publish domain {d:?}")));
            }
        }
        Ok(())
    }

    /// The grants that match none of `tables` (not an error: their tables may not exist yet).
    pub fn unmatched(&self, tables: &[ManagedTable]) -> Vec<&Grant> {
        self.grants
            .iter()
            .filter(|g| !tables.iter().any(|t| Self::matches(&g.tables, t)))
            .collect()
    }

    fn matches(sel: &TableSelector, t: &ManagedTable) -> bool {
        sel.domain.as_ref().is_none_or(|d| *d == t.domain)
            && sel.producer.as_ref().is_none_or(|p| *p == t.producer)
            && sel.database.as_ref().is_none_or(|d| *d == t.table.database)
            && sel.table.as_ref().is_none_or(|n| *n == t.table.table)
    }

    /// Checks every grant against the tables it covers: named columns exist, row filters read
    /// usable columns with the right literals, at most [`MAX_FILTERS_PER_TABLE`] filters per
    /// principal and table, one column set per principal and table for unfiltered SELECT.
    pub fn lint_tables(&self, tables: &[ManagedTable]) -> Result<(), PolicyError> {
        for t in tables {
            let mut filters: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
            let mut selects: BTreeMap<&str, (usize, &Columns)> = BTreeMap::new();
            for g in self.grants.iter().filter(|g| Self::matches(&g.tables, t)) {
                let bad = |problem: String| PolicyError::Grant {
                    index: g.index,
                    principal: g.principal.clone(),
                    table: Some(t.table.to_string()),
                    problem,
                };
                if let Some(names) = g.columns.names() {
                    let missing: Vec<&str> = names
                        .iter()
                        .filter(|c| !t.columns.contains_key(*c))
                        .map(String::as_str)
                        .collect();
                    if !missing.is_empty() {
                        return Err(bad(format!(
                            "columns {} are not in the table",
                            missing.join(", ")
                        )));
                    }
                    if let Columns::Exclude(ex) = &g.columns
                        && ex.len() == t.columns.len()
                    {
                        return Err(bad("the exclusion leaves no column".into()));
                    }
                }
                if let Some(rows) = &g.rows {
                    rows.check_columns(&t.columns).map_err(|e: FilterError| {
                        bad(format!("row filter {:?}: {e}", rows.text))
                    })?;
                    let n = filters.entry(&g.principal).or_default();
                    n.push(g.index);
                    if n.len() > MAX_FILTERS_PER_TABLE {
                        return Err(bad(format!(
                            "more than {MAX_FILTERS_PER_TABLE} row filters for this principal and table (grants {})",
                            n.iter()
                                .map(|i| format!("#{i}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )));
                    }
                } else if g.permissions.contains("SELECT") {
                    if let Some((other, cols)) = selects.get(g.principal.as_str())
                        && **cols != g.columns
                    {
                        return Err(bad(format!(
                            "grant #{other} gives SELECT on {cols} of this table to the same principal, this one on {}; give one column set",
                            g.columns
                        )));
                    }
                    selects.insert(&g.principal, (g.index, &g.columns));
                }
            }
            // Lake Formation adds a principal's grants up: a SELECT without rows beside one
            // with rows gives every row (and the unfiltered grant's columns), silently
            // undoing the filter.
            for (principal, rows) in &filters {
                if let Some((plain, cols)) = selects.get(principal) {
                    let g = rows[0];
                    return Err(PolicyError::Grant {
                        index: g,
                        principal: (*principal).to_owned(),
                        table: Some(t.table.to_string()),
                        problem: format!(
                            "grant #{plain} also gives SELECT on {cols} of this table to the same principal without a row filter; Lake Formation adds grants up, so that grant would give every row: drop it or give it the row filter too"
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// What Lake Formation should hold for `tables` (lint them first).
    pub fn desired(&self, tables: &[ManagedTable]) -> State {
        let mut state = State::default();
        for t in tables {
            for g in self.grants.iter().filter(|g| Self::matches(&g.tables, t)) {
                let others: BTreeSet<String> = g
                    .permissions
                    .iter()
                    .filter(|p| *p != "SELECT")
                    .cloned()
                    .collect();
                if !others.is_empty() {
                    state
                        .grants
                        .entry(GrantKey {
                            principal: g.principal.clone(),
                            target: Target::Table(t.table.clone()),
                        })
                        .or_default()
                        .extend(others);
                }
                if !g.permissions.contains("SELECT") {
                    continue;
                }
                let target = match &g.rows {
                    None => Target::Columns(t.table.clone(), g.columns.clone()),
                    Some(rows) => {
                        let name = filter_name(&g.principal, &t.table, &rows.text);
                        state.filters.insert(
                            (t.table.clone(), name.clone()),
                            FilterDef {
                                table: t.table.clone(),
                                name: name.clone(),
                                expression: rows.text.clone(),
                                columns: g.columns.clone(),
                            },
                        );
                        Target::Filter(t.table.clone(), name)
                    }
                };
                state
                    .grants
                    .entry(GrantKey {
                        principal: g.principal.clone(),
                        target,
                    })
                    .or_default()
                    .insert("SELECT".into());
            }
        }
        state
    }
}

/// What one principal may read of one table under the policy, as Lake Formation resolves its
/// grants: see [`Policy::access`].
#[derive(Debug, Clone, PartialEq)]
pub enum Access {
    /// No grant covers the table: Lake Formation refuses it (and hides it).
    None,
    /// Grants without SELECT (e.g. DESCRIBE): the table is listed, queries are refused.
    NoSelect {
        /// The permissions held.
        permissions: BTreeSet<String>,
    },
    /// SELECT on these columns (data and partition columns alike) of the rows where any of the
    /// filters holds (`None`: every row).
    Select {
        /// The column set.
        columns: Columns,
        /// Row filters, OR-ed; `None` when a grant gives every row.
        rows: Option<Vec<RowFilter>>,
    },
}

impl Access {
    /// The visible columns of a table whose columns are `all` (in table order), in that order.
    pub fn visible<'a>(&self, all: &'a [String]) -> Vec<&'a str> {
        match self {
            Self::Select { columns, .. } => all
                .iter()
                .filter(|c| match columns {
                    Columns::All => true,
                    Columns::Include(s) => s.contains(*c),
                    Columns::Exclude(s) => !s.contains(*c),
                })
                .map(String::as_str)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The row condition in SQL (the filters OR-ed, each parenthesised), or `None` for all rows.
    pub fn rows_sql(&self) -> Option<String> {
        match self {
            Self::Select {
                rows: Some(filters),
                ..
            } => Some(
                filters
                    .iter()
                    .map(|f| format!("({})", f.text))
                    .collect::<Vec<_>>()
                    .join(" OR "),
            ),
            _ => None,
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("no grant"),
            Self::NoSelect { permissions } => {
                write!(f, "{} without SELECT", join(permissions))
            }
            Self::Select { columns, .. } => match self.rows_sql() {
                None => write!(f, "SELECT on {columns}, all rows"),
                Some(rows) => write!(f, "SELECT on {columns}, rows where {rows}"),
            },
        }
    }
}

impl Policy {
    /// What `principal` may read of `table`: every grant of the principal that covers the
    /// table, combined as Lake Formation combines them (permissions add up; the rows of
    /// several filters are their union). Several SELECT grants with different column sets
    /// would make the visible columns depend on the row (cell-level union), which this does
    /// not model: that is an error naming the grants, not a guess.
    pub fn access(&self, table: &ManagedTable, principal: &str) -> Result<Access, PolicyError> {
        let grants: Vec<&Grant> = self
            .grants
            .iter()
            .filter(|g| g.principal == principal && Self::matches(&g.tables, table))
            .collect();
        if grants.is_empty() {
            return Ok(Access::None);
        }
        let selects: Vec<&&Grant> = grants
            .iter()
            .filter(|g| g.permissions.contains("SELECT"))
            .collect();
        let Some(first) = selects.first() else {
            return Ok(Access::NoSelect {
                permissions: grants
                    .iter()
                    .flat_map(|g| g.permissions.iter().cloned())
                    .collect(),
            });
        };
        if let Some(other) = selects.iter().find(|g| g.columns != first.columns) {
            return Err(PolicyError::Grant {
                index: other.index,
                principal: principal.to_owned(),
                table: Some(table.table.to_string()),
                problem: format!(
                    "grant #{} gives SELECT on {} and this one on {}: which cells are visible \
                     would depend on the row (a cell-level union), which lakemesh does not model; \
                     give both grants one column set",
                    first.index, first.columns, other.columns
                ),
            });
        }
        let rows = if selects.iter().any(|g| g.rows.is_none()) {
            None
        } else {
            Some(selects.iter().filter_map(|g| g.rows.clone()).collect())
        };
        Ok(Access::Select {
            columns: first.columns.clone(),
            rows,
        })
    }

    /// The principals the policy names, in order.
    pub fn principals(&self) -> BTreeSet<&str> {
        self.grants.iter().map(|g| g.principal.as_str()).collect()
    }
}

/// The changes that take `actual` to `desired`, in the order to apply them: filters created
/// or updated, revokes, grants, then filters deleted, then database-level grants the daemon
/// does not manage ([`Change::Unmanaged`]). Grants of `ignored` principals are left alone;
/// grants on filters the daemon did not make and on every table of a database are revoked.
pub fn diff(desired: &State, actual: &State, ignored: &BTreeSet<String>) -> Vec<Change> {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for (k, d) in &desired.filters {
        match actual.filters.get(k) {
            None => out.push(Change::CreateFilter(d.clone())),
            Some(a) if a != d => out.push(Change::UpdateFilter {
                old: a.clone(),
                new: d.clone(),
            }),
            Some(_) => {}
        }
    }
    for (key, have) in &actual.grants {
        if ignored.contains(&key.principal) {
            continue;
        }
        // Grants on filters the daemon did not make are revoked like any other: they read the
        // table's rows (the filters themselves are left alone).
        if let Target::Database(_) = &key.target {
            notes.push(Change::Unmanaged {
                key: key.clone(),
                permissions: have.clone(),
            });
            continue;
        }
        let want = desired.grants.get(key).cloned().unwrap_or_default();
        let extra: BTreeSet<String> = have.difference(&want).cloned().collect();
        if !extra.is_empty() {
            out.push(Change::Revoke {
                key: key.clone(),
                permissions: extra,
            });
        }
    }
    for (key, want) in &desired.grants {
        let have = actual.grants.get(key).cloned().unwrap_or_default();
        let missing: BTreeSet<String> = want.difference(&have).cloned().collect();
        if !missing.is_empty() {
            out.push(Change::Grant {
                key: key.clone(),
                permissions: missing,
            });
        }
    }
    for (k, a) in &actual.filters {
        if !desired.filters.contains_key(k) {
            out.push(Change::DeleteFilter(a.clone()));
        }
    }
    out.extend(notes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANALYST: &str = "arn:aws:iam::111122223333:role/ministry-statistics";
    const AGENCY: &str = "arn:aws:iam::444455556666:role/regional-agency-occitanie";

    const DESIGN: &str = r#"
[[grant]]
principal = "arn:aws:iam::111122223333:role/ministry-statistics"
tables = { domain = "hospital_activity" }
permissions = ["SELECT", "DESCRIBE"]
columns = { exclude = ["patient_id"] }

[[grant]]
principal = "arn:aws:iam::444455556666:role/regional-agency-occitanie"
tables = { domain = "hospital_activity" }
permissions = ["SELECT"]
rows = "region_code = '76'"
columns = { exclude = ["patient_id", "birth_year"] }
"#;

    fn policy(text: &str) -> Result<Policy, PolicyError> {
        Policy::from_toml(text, Path::new("policy.toml"))
    }

    fn stays() -> ManagedTable {
        ManagedTable {
            table: TableRef {
                database: "hospital_activity_chu".into(),
                table: "hospital_stays".into(),
            },
            domain: "hospital_activity".into(),
            producer: "chu-lyon".into(),
            columns: [
                ("patient_id", "string"),
                ("birth_year", "int"),
                ("region_code", "string"),
                ("cost", "decimal(12,2)"),
                ("year", "string"),
            ]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect(),
        }
    }

    fn t() -> TableRef {
        stays().table
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn key(p: &str, target: Target) -> GrantKey {
        GrantKey {
            principal: p.into(),
            target,
        }
    }

    #[test]
    fn design_policy_gives_columns_filters_and_describe() {
        let p = policy(DESIGN).unwrap();
        p.lint_tables(&[stays()]).unwrap();
        let d = p.desired(&[stays()]);
        let fname = filter_name(AGENCY, &t(), "region_code = '76'");
        assert!(fname.starts_with("lm_") && fname.len() == 15, "{fname}");
        assert_eq!(
            d.grants,
            BTreeMap::from([
                (key(ANALYST, Target::Table(t())), set(&["DESCRIBE"])),
                (
                    key(
                        ANALYST,
                        Target::Columns(t(), Columns::exclude(["patient_id"]))
                    ),
                    set(&["SELECT"])
                ),
                (
                    key(AGENCY, Target::Filter(t(), fname.clone())),
                    set(&["SELECT"])
                ),
            ])
        );
        assert_eq!(
            d.filters[&(t(), fname.clone())].columns,
            Columns::exclude(["birth_year", "patient_id"])
        );
        // Applying the plan to an empty Lake Formation, then planning again: nothing.
        let first = diff(&d, &State::default(), &BTreeSet::new());
        assert_eq!(first.len(), 4);
        assert!(matches!(first[0], Change::CreateFilter(_)));
        assert_eq!(diff(&d, &d, &BTreeSet::new()), vec![]);
    }

    #[test]
    fn normal_forms_compare_equal() {
        assert_eq!(Columns::exclude(Vec::<String>::new()), Columns::All);
        assert_eq!(
            Columns::include(["b", "a"]),
            Columns::include(["a", "b", "a"])
        );
        let all = policy(&DESIGN.replace(
            "permissions = [\"SELECT\", \"DESCRIBE\"]\ncolumns = { exclude = [\"patient_id\"] }",
            "permissions = [\"ALL\"]",
        ))
        .unwrap();
        let explicit = policy(&DESIGN.replace(
            "permissions = [\"SELECT\", \"DESCRIBE\"]\ncolumns = { exclude = [\"patient_id\"] }",
            "permissions = [\"SELECT\", \"INSERT\", \"DROP\", \"DELETE\", \"DESCRIBE\", \"ALTER\"]\ncolumns = { exclude = [] }",
        ))
        .unwrap();
        assert_eq!(all.desired(&[stays()]), explicit.desired(&[stays()]));
    }

    #[test]
    fn diff_is_precise() {
        let before = policy(DESIGN).unwrap().desired(&[stays()]);
        // Drop a column from the analyst's grant.
        let after = policy(&DESIGN.replace(
            "exclude = [\"patient_id\"]",
            "exclude = [\"patient_id\", \"cost\"]",
        ))
        .unwrap()
        .desired(&[stays()]);
        let changes = diff(&after, &before, &BTreeSet::new());
        assert_eq!(
            changes,
            vec![
                Change::Revoke {
                    key: key(
                        ANALYST,
                        Target::Columns(t(), Columns::exclude(["patient_id"]))
                    ),
                    permissions: set(&["SELECT"]),
                },
                Change::Grant {
                    key: key(
                        ANALYST,
                        Target::Columns(t(), Columns::exclude(["patient_id", "cost"]))
                    ),
                    permissions: set(&["SELECT"]),
                },
            ]
        );
        assert_eq!(
            changes[1].to_string(),
            format!(
                "+ grant SELECT on table hospital_activity_chu.hospital_stays (all columns but cost, patient_id) to {ANALYST}"
            )
        );
        // Change the filter: a new filter replaces the old one.
        let after = policy(&DESIGN.replace("'76'", "'11'"))
            .unwrap()
            .desired(&[stays()]);
        let old = filter_name(AGENCY, &t(), "region_code = '76'");
        let new = filter_name(AGENCY, &t(), "region_code = '11'");
        let changes: Vec<String> = diff(&after, &before, &BTreeSet::new())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            changes,
            vec![
                format!(
                    "+ create data cells filter {new} on hospital_activity_chu.hospital_stays: rows \"region_code = '11'\", all columns but birth_year, patient_id"
                ),
                format!(
                    "- revoke SELECT on data cells filter {old} of hospital_activity_chu.hospital_stays from {AGENCY}"
                ),
                format!(
                    "+ grant SELECT on data cells filter {new} of hospital_activity_chu.hospital_stays to {AGENCY}"
                ),
                format!("- delete data cells filter {old} on hospital_activity_chu.hospital_stays"),
            ]
        );
        // Change only the filter's columns: the same filter is updated.
        let after = policy(&DESIGN.replace("\"patient_id\", \"birth_year\"", "\"patient_id\""))
            .unwrap()
            .desired(&[stays()]);
        let changes = diff(&after, &before, &BTreeSet::new());
        assert!(
            matches!(&changes[..], [Change::UpdateFilter { .. }]),
            "{changes:?}"
        );
        // Remove a principal: everything it had is revoked, the filter deleted.
        let only_analyst = DESIGN
            .split("\n[[grant]]")
            .nth(1)
            .map(|g| format!("[[grant]]{g}"))
            .unwrap();
        let after = policy(&only_analyst).unwrap().desired(&[stays()]);
        let changes: Vec<String> = diff(&after, &before, &BTreeSet::new())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(changes[0].starts_with("- revoke SELECT on data cells filter"));
        assert!(changes[1].starts_with("- delete data cells filter"));
    }

    #[test]
    fn extra_grants_are_revoked_but_ignored_principals_kept_and_database_grants_listed() {
        let desired = policy(DESIGN).unwrap().desired(&[stays()]);
        let mut actual = desired.clone();
        let intruder = "arn:aws:iam::999999999999:role/intruder";
        actual.grants.insert(
            key(intruder, Target::Columns(t(), Columns::All)),
            set(&["SELECT"]),
        );
        actual.grants.insert(
            key("arn:aws:iam::999988887777:role/admin", Target::Table(t())),
            set(&["ALTER"]),
        );
        // A grant on a filter someone made by hand reads the table's rows: revoked (the filter
        // itself is not the daemon's and stays).
        actual.grants.insert(
            key(intruder, Target::Filter(t(), "hand_made".into())),
            set(&["SELECT"]),
        );
        // SELECT on every table of the database at once: revoked.
        actual.grants.insert(
            key(intruder, Target::AllTables("hospital_activity_chu".into())),
            set(&["SELECT"]),
        );
        // Database-level permissions: listed for a person to decide, never applied.
        actual.grants.insert(
            key(intruder, Target::Database("hospital_activity_chu".into())),
            set(&["CREATE_TABLE", "DROP"]),
        );
        actual.grants.insert(
            key(
                "arn:aws:iam::999988887777:role/admin",
                Target::Database("hospital_activity_chu".into()),
            ),
            set(&["ALTER"]),
        );
        actual
            .grants
            .get_mut(&key(ANALYST, Target::Table(t())))
            .unwrap()
            .insert("DROP".into());
        let ignored = set(&["arn:aws:iam::999988887777:role/admin"]);
        let changes = diff(&desired, &actual, &ignored);
        let text: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            vec![
                format!(
                    "- revoke DROP on table hospital_activity_chu.hospital_stays from {ANALYST}"
                ),
                format!(
                    "- revoke SELECT on table hospital_activity_chu.hospital_stays (all columns) from {intruder}"
                ),
                format!(
                    "- revoke SELECT on data cells filter hand_made of hospital_activity_chu.hospital_stays from {intruder}"
                ),
                format!(
                    "- revoke SELECT on every table of hospital_activity_chu (table wildcard) from {intruder}"
                ),
                format!(
                    "! not managed: {intruder} holds CREATE_TABLE, DROP on database hospital_activity_chu (revoke it by hand, or list the principal in unmanaged_principals)"
                ),
            ]
        );
        assert_eq!(
            changes.iter().filter(|c| c.is_applied()).count(),
            4,
            "notes are not applied"
        );
    }

    #[test]
    fn selectors_must_name_registered_producers_domains_and_databases() {
        let settings = crate::config::Settings::from_toml(
            r#"
queue_url = "https://sqs.eu-west-3.amazonaws.com/999988887777/lakemesh-announcements"
policy_file = "policy.toml"
crawler_role_arn = "arn:aws:iam::999988887777:role/lakemesh-crawler"
registration_role_arn = "arn:aws:iam::999988887777:role/lakemesh-lf-registration"

[[producer]]
id = "chu-lyon"
account_id = "111122223333"
sender_ids = ["AROAEXAMPLEAGENTROLE"]
origin = "chu"
bucket = "chu-lyon-datamesh"
domains = ["hospital_activity"]
"#,
            std::path::Path::new("syncd.toml"),
        )
        .unwrap();
        let check = |tables: &str| {
            policy(&format!(
                "[[grant]]\nprincipal = \"{AGENCY}\"\ntables = {tables}\npermissions = [\"SELECT\"]\n"
            ))
            .unwrap()
            .check_registry(&settings)
            .map_err(|e| e.to_string())
        };
        check(r#"{ domain = "hospital_activity" }"#).unwrap();
        check(r#"{ producer = "chu-lyon", database = "hospital_activity_chu" }"#).unwrap();
        let e = check(r#"{ domain = "hospital_activty" }"#).unwrap_err();
        assert!(
            e.contains("grant #1")
                && e.contains("hospital_activty")
                && e.contains("known: hospital_activity"),
            "{e}"
        );
        let e = check(r#"{ producer = "chu-lyonn" }"#).unwrap_err();
        assert!(e.contains("not a registered producer"), "{e}");
        let e = check(r#"{ database = "no_such_db" }"#).unwrap_err();
        assert!(e.contains("hospital_activity_chu"), "{e}");
        let e = check(r#"{ producer = "chu-lyon", domain = "insurance_claims" }"#).unwrap_err();
        assert!(
            e.contains("no registered producer's domain") || e.contains("does not publish"),
            "{e}"
        );
    }

    #[test]
    fn an_unfiltered_select_beside_a_row_filter_is_refused() {
        // Lake Formation adds the grants up: the plain one would give every row.
        let p = policy(&format!(
            r#"
[[grant]]
principal = "{AGENCY}"
tables = {{ domain = "hospital_activity" }}
permissions = ["SELECT"]
rows = "region_code = '76'"
columns = {{ exclude = ["patient_id"] }}

[[grant]]
principal = "{AGENCY}"
tables = {{ domain = "hospital_activity" }}
permissions = ["SELECT"]
"#
        ))
        .unwrap();
        let e = p.lint_tables(&[stays()]).unwrap_err().to_string();
        assert!(e.contains("grant #1") && e.contains("grant #2"), "{e}");
        assert!(e.contains("every row"), "{e}");
        // Two row filters for one principal are Lake Formation's OR, and allowed; a plain
        // DESCRIBE beside a filter reads no rows.
        let p = policy(&format!(
            r#"
[[grant]]
principal = "{AGENCY}"
tables = {{ domain = "hospital_activity" }}
permissions = ["SELECT"]
rows = "region_code = '76'"

[[grant]]
principal = "{AGENCY}"
tables = {{ domain = "hospital_activity" }}
permissions = ["SELECT"]
rows = "region_code = '11'"

[[grant]]
principal = "{AGENCY}"
tables = {{ domain = "hospital_activity" }}
permissions = ["DESCRIBE"]
"#
        ))
        .unwrap();
        p.lint_tables(&[stays()]).unwrap();
    }

    #[test]
    fn grant_errors_name_the_grant() {
        let cases = [
            (
                DESIGN.replace("role/ministry-statistics", "user"),
                "grant #1",
                "not an IAM role",
            ),
            (
                DESIGN.replace(
                    "\"arn:aws:iam::111122223333:role/ministry-statistics\"",
                    "\"111122223333\"",
                ),
                "grant #1",
                "is an account",
            ),
            (
                DESIGN.replace("\"SELECT\", \"DESCRIBE\"", "\"READ\""),
                "grant #1",
                "permission \"READ\"",
            ),
            (
                DESIGN.replace("permissions = [\"SELECT\"]", "permissions = [\"DESCRIBE\"]"),
                "grant #2",
                "restrict SELECT",
            ),
            (
                DESIGN.replace("'76'", "lower('76')"),
                "grant #2",
                "row filter",
            ),
            (
                DESIGN.replace(
                    "domain = \"hospital_activity\" }\npermissions = [\"SELECT\"]",
                    "table = \"hospital_stays\" }\npermissions = [\"SELECT\"]",
                ),
                "grant #2",
                "ambiguous",
            ),
            (
                DESIGN.replace(
                    "columns = { exclude = [\"patient_id\"] }",
                    "columns = { include = [] }",
                ),
                "grant #1",
                "empty",
            ),
        ];
        for (text, grant, problem) in cases {
            let e = policy(&text).unwrap_err().to_string();
            assert!(e.contains(grant) && e.contains(problem), "{e}");
        }
        let e = policy("[[grant]]\nprincipal = \"x\"\ntables = {}\npermissions = []\ncolour = 1\n")
            .unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
    }

    #[test]
    fn pii_tag_key_and_values() {
        let p = policy(&format!("{DESIGN}\n[pii_tag]\nkey = \"lakemesh_pii\"\n")).unwrap();
        assert_eq!(p.pii_tag.as_deref(), Some("lakemesh_pii"));
        let e = policy("[pii_tag]\nkey = \"bad key!\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("pii_tag.key"), "{e}");
        assert_eq!(pii_tag_value("hmac"), Some("hmac"));
        assert_eq!(pii_tag_value("truncate:5"), Some("truncate"));
        assert_eq!(pii_tag_value("year"), Some("year"));
        assert_eq!(pii_tag_value("keep"), None);
    }

    #[test]
    fn access_resolves_grants_per_principal_and_table() {
        let p = policy(DESIGN).unwrap();
        let all: Vec<String> = ["patient_id", "birth_year", "region_code", "cost", "year"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let analyst = p.access(&stays(), ANALYST).unwrap();
        assert_eq!(
            analyst.visible(&all),
            ["birth_year", "region_code", "cost", "year"]
        );
        assert_eq!(analyst.rows_sql(), None);
        let agency = p.access(&stays(), AGENCY).unwrap();
        assert_eq!(agency.visible(&all), ["region_code", "cost", "year"]);
        assert_eq!(agency.rows_sql().as_deref(), Some("(region_code = '76')"));
        assert_eq!(
            agency.to_string(),
            "SELECT on all columns but birth_year, patient_id, rows where (region_code = '76')"
        );
        assert_eq!(
            p.access(&stays(), "arn:aws:iam::999999999999:role/nobody")
                .unwrap(),
            Access::None
        );
        // DESCRIBE alone: listed, not readable.
        let describe = policy(&DESIGN.replace(
            "permissions = [\"SELECT\", \"DESCRIBE\"]\ncolumns = { exclude = [\"patient_id\"] }",
            "permissions = [\"DESCRIBE\"]",
        ))
        .unwrap();
        assert!(matches!(
            describe.access(&stays(), ANALYST).unwrap(),
            Access::NoSelect { .. }
        ));
        // Two filters: their rows add up.
        let two = format!(
            "{DESIGN}\n[[grant]]\nprincipal = \"{AGENCY}\"\ntables = {{ domain = \"hospital_activity\" }}\npermissions = [\"SELECT\"]\nrows = \"region_code = '11'\"\ncolumns = {{ exclude = [\"patient_id\", \"birth_year\"] }}\n"
        );
        assert_eq!(
            policy(&two)
                .unwrap()
                .access(&stays(), AGENCY)
                .unwrap()
                .rows_sql()
                .as_deref(),
            Some("(region_code = '76') OR (region_code = '11')")
        );
        // Different column sets on two filters: refused, not guessed.
        let cells = two.replacen(
            "rows = \"region_code = '11'\"\ncolumns = { exclude = [\"patient_id\", \"birth_year\"] }",
            "rows = \"region_code = '11'\"\ncolumns = { exclude = [\"patient_id\"] }",
            1,
        );
        let e = policy(&cells)
            .unwrap()
            .access(&stays(), AGENCY)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cell-level union") && e.contains("grant #3"),
            "{e}"
        );
    }

    #[test]
    fn lint_checks_against_the_table() {
        let e = |text: String| {
            policy(&text)
                .unwrap()
                .lint_tables(&[stays()])
                .unwrap_err()
                .to_string()
        };
        let msg = e(DESIGN.replace("\"patient_id\"]", "\"nope\"]"));
        assert!(
            msg.contains("grant #1")
                && msg.contains("table hospital_activity_chu.hospital_stays")
                && msg.contains("nope"),
            "{msg}"
        );
        let msg = e(DESIGN.replace("region_code = '76'", "cost = '76'"));
        assert!(
            msg.contains("grant #2") && msg.contains("unquoted number"),
            "{msg}"
        );
        let msg = e(DESIGN.replace("region_code = '76'", "missing = '76'"));
        assert!(msg.contains("not in the table"), "{msg}");
        let mut many = String::new();
        for n in 0..11 {
            many.push_str(&format!("[[grant]]\nprincipal = \"{AGENCY}\"\ntables = {{ domain = \"hospital_activity\" }}\npermissions = [\"SELECT\"]\nrows = \"region_code = '{n}'\"\n"));
        }
        let msg = e(many);
        assert!(
            msg.contains("more than 10 row filters") && msg.contains("grant #11"),
            "{msg}"
        );
        let two = format!(
            "{DESIGN}\n[[grant]]\nprincipal = \"{ANALYST}\"\ntables = {{ database = \"hospital_activity_chu\" }}\npermissions = [\"SELECT\"]\n"
        );
        let msg = e(two);
        assert!(
            msg.contains("grant #3") && msg.contains("one column set"),
            "{msg}"
        );
        // A grant whose selector matches nothing is fine.
        policy(&DESIGN.replace("domain = \"hospital_activity\"", "domain = \"claims\""))
            .unwrap()
            .lint_tables(&[stays()])
            .unwrap();
    }

    /// The packaged policies: the conffile grants nothing (a fresh install opens nothing), the
    /// example is valid and hashed.
    #[test]
    fn the_packaged_policies_load() {
        let shipped = Policy::from_toml(
            include_str!("../../packaging/config/policy.toml"),
            Path::new("policy.toml"),
        )
        .unwrap();
        assert!(shipped.grants.is_empty() && shipped.unmanaged_principals.is_empty());
        let text = include_str!("../../packaging/policy/example-policy.toml");
        let example = Policy::from_toml(text, Path::new("example-policy.toml")).unwrap();
        assert_eq!(example.grants.len(), 3);
        assert_eq!(example.pii_tag.as_deref(), Some("lakemesh_pii"));
        assert_eq!(
            example.source_sha256,
            hex::encode(Sha256::digest(text.as_bytes()))
        );
    }
}
