//! `lakemesh-syncd verify`: proves, with Athena queries run as each principal, that Lake
//! Formation enforces the policy.
//!
//! For every principal the policy names (or `--principal`) and every managed table it may read
//! (or `--table`), three cheap probes run in the configured workgroup, as the principal (its
//! role assumed through STS, session `lakemesh-verify-RUN`):
//! - **columns**: `SELECT * … LIMIT 0`; the result's columns must equal the granted ones;
//! - **rows** (when a row filter applies): `SELECT count(*) … WHERE NOT coalesce((filter), false)`
//!   must be 0: a row whose condition is FALSE or unknown must never be returned (a NULL
//!   comparison is not TRUE, so such rows are excluded, and so counted here);
//! - **refused**: for the first managed table the principal may not read (and for a
//!   `--table` it may not read), `SELECT * … LIMIT 0` must fail with a denial.
//!
//! Each query starts with a comment naming the run, the principal and the probe, and carries a
//! `ClientRequestToken` made of the run id and the probe number, so Athena's history shows who
//! ran what. A probe that does not hold (or could not be judged for a transient reason) is
//! repeated with capped backoff until `propagation_timeout_secs` has passed (grants take a
//! moment to apply), then reported; a permanent error (a missing workgroup) is reported at once.
//!
//! Owns the plan of probes ([`plan`]), running them ([`run`]) and the [`Report`] (matrix text,
//! JSON, whether everything holds). Does not own the Athena and STS calls (`athena`, `sts`),
//! nor what the policy grants (`policy`).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::athena::{Athena, Outcome, is_refusal};
use crate::aws_error::AwsError;
use crate::backoff;
use crate::policy::{Access, ManagedTable, Policy, PolicyError, TableRef};

/// What a probe checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    /// Visible columns equal the granted ones.
    Columns,
    /// No row outside the filter.
    Rows,
    /// An ungranted table is refused.
    Refused,
}

impl ProbeKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Columns => "columns",
            Self::Rows => "rows",
            Self::Refused => "refused",
        }
    }
}

/// One probe to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The principal.
    pub principal: String,
    /// The table.
    pub table: TableRef,
    /// What it checks.
    pub kind: ProbeKind,
    /// Columns expected (Columns), or the row condition (Rows).
    pub expect: Expect,
}

/// What a probe expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// These columns, as a set.
    Columns(BTreeSet<String>),
    /// No row where this condition is not TRUE.
    Rows(String),
    /// A denial.
    Denial,
    /// Cannot be probed, and why (reported as skipped).
    Skip(String),
}

/// How a probe ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It holds.
    Pass,
    /// It does not hold (after the propagation wait).
    Fail,
    /// It could not be run (the principal could not be assumed, Athena failed).
    Error,
    /// Not applicable (e.g. the filter reads a column the principal cannot see).
    Skipped,
}

/// One probe's result.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeResult {
    /// The principal.
    pub principal: String,
    /// `db.table`.
    pub table: String,
    /// What it checked.
    pub probe: ProbeKind,
    /// How it ended.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// Queries run (1 unless repeated for propagation).
    pub attempts: u32,
    /// Athena query execution ids, for the query history.
    pub query_ids: Vec<String>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The run id in the queries' labels.
    pub run_id: String,
    /// The workgroup.
    pub workgroup: String,
    /// Every probe.
    pub results: Vec<ProbeResult>,
    /// Notes (a principal with no table it must not see).
    pub notes: Vec<String>,
    /// Whether every probe passed (skipped ones aside).
    pub ok: bool,
}

/// Why verification could not start.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The policy does not fit the tables.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Nothing to verify.
    #[error("{0}")]
    Nothing(String),
}

fn quoted(t: &TableRef) -> String {
    format!("\"{}\".\"{}\"", t.database, t.table)
}

/// The probes for `tables` (each with its columns), restricted to `only_principal` and
/// `only_table`, and notes about principals that have no table to be refused.
pub fn plan(
    policy: &Policy,
    tables: &[ManagedTable],
    only_principal: Option<&str>,
    only_table: Option<&TableRef>,
) -> Result<(Vec<Probe>, Vec<String>), VerifyError> {
    policy.lint_tables(tables)?;
    if tables.is_empty() {
        return Err(VerifyError::Nothing(
            "no managed tables in the catalog yet: nothing to verify".into(),
        ));
    }
    let principals: Vec<String> = match only_principal {
        Some(p) => vec![p.to_owned()],
        None => policy.principals().into_iter().map(str::to_owned).collect(),
    };
    if principals.is_empty() {
        return Err(VerifyError::Nothing("the policy names no principal".into()));
    }
    if let Some(t) = only_table
        && !tables.iter().any(|m| m.table == *t)
    {
        return Err(VerifyError::Nothing(format!(
            "table {t} is not a managed table in the catalog"
        )));
    }
    let mut probes = Vec::new();
    let mut notes = Vec::new();
    for p in &principals {
        let mut refused_one = false;
        let mut ungranted = Vec::new();
        for t in tables {
            if only_table.is_some_and(|o| *o != t.table) {
                continue;
            }
            match policy.access(t, p)? {
                Access::None | Access::NoSelect { .. } => ungranted.push(t),
                access @ Access::Select { .. } => {
                    let all: Vec<String> = t.columns.keys().cloned().collect();
                    let visible: BTreeSet<String> = access
                        .visible(&all)
                        .into_iter()
                        .map(str::to_owned)
                        .collect();
                    probes.push(Probe {
                        principal: p.clone(),
                        table: t.table.clone(),
                        kind: ProbeKind::Columns,
                        expect: Expect::Columns(visible.clone()),
                    });
                    if let (
                        Some(rows),
                        Access::Select {
                            rows: Some(filters),
                            ..
                        },
                    ) = (access.rows_sql(), &access)
                    {
                        let hidden: Vec<&str> = filters
                            .iter()
                            .flat_map(|f| f.columns.iter())
                            .filter(|c| !visible.contains(*c))
                            .map(String::as_str)
                            .collect();
                        let expect = if hidden.is_empty() {
                            Expect::Rows(rows)
                        } else {
                            Expect::Skip(format!(
                                "the filter reads {}, which the principal cannot see, so it cannot count rows outside it",
                                hidden.join(", ")
                            ))
                        };
                        probes.push(Probe {
                            principal: p.clone(),
                            table: t.table.clone(),
                            kind: ProbeKind::Rows,
                            expect,
                        });
                    }
                }
            }
        }
        // Every --table the principal may not read; otherwise the first one.
        for t in ungranted {
            if refused_one && only_table.is_none() {
                break;
            }
            refused_one = true;
            probes.push(Probe {
                principal: p.clone(),
                table: t.table.clone(),
                kind: ProbeKind::Refused,
                expect: Expect::Denial,
            });
        }
        if !refused_one && only_table.is_none() {
            notes.push(format!(
                "{p} may read every managed table: no table to prove a refusal on"
            ));
        }
    }
    Ok((probes, notes))
}

/// The run id: seconds since the epoch and the process id, in hex.
pub fn run_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{secs:x}{:x}", std::process::id())
}

/// A probe's verdict on one query, before the propagation retry.
enum Verdict {
    Holds(String),
    DoesNot(String),
    /// Could not be judged; may work on a later attempt (throttling, a failed query).
    Broken(String),
    /// Could not be judged, and never will be by trying again (a missing workgroup).
    Fatal(String),
}

fn judge(probe: &Probe, outcome: &Result<Outcome, AwsError>) -> Verdict {
    match (&probe.expect, outcome) {
        (Expect::Skip(why), _) => Verdict::Holds(why.clone()),
        (Expect::Denial, Ok(Outcome::Refused { reason } | Outcome::Failed { reason, .. }))
            if is_refusal(reason) =>
        {
            Verdict::Holds(format!("refused: {reason}"))
        }
        (Expect::Denial, Ok(Outcome::Succeeded { columns, .. })) => {
            Verdict::DoesNot(if columns.is_empty() {
                "readable: the query succeeded".into()
            } else {
                format!(
                    "readable: the query succeeded with columns {}",
                    columns.join(", ")
                )
            })
        }
        (_, Ok(Outcome::Refused { reason })) => {
            Verdict::DoesNot(format!("refused though granted: {reason}"))
        }
        (_, Ok(Outcome::Failed { reason, .. })) if is_refusal(reason) => {
            Verdict::DoesNot(format!("refused though granted: {reason}"))
        }
        (_, Ok(Outcome::Failed { reason, .. })) => {
            Verdict::Broken(format!("query failed: {reason}"))
        }
        (_, Err(e)) if e.is_transient() => Verdict::Broken(e.to_string()),
        (_, Err(e)) => Verdict::Fatal(e.to_string()),
        (Expect::Columns(want), Ok(Outcome::Succeeded { columns, .. })) => {
            let got: BTreeSet<String> = columns.iter().map(|c| c.to_lowercase()).collect();
            let extra: Vec<&str> = got.difference(want).map(String::as_str).collect();
            let missing: Vec<&str> = want.difference(&got).map(String::as_str).collect();
            if extra.is_empty() && missing.is_empty() {
                Verdict::Holds(format!("{} columns as granted", want.len()))
            } else {
                let mut parts = Vec::new();
                if !extra.is_empty() {
                    parts.push(format!("visible but not granted: {}", extra.join(", ")));
                }
                if !missing.is_empty() {
                    parts.push(format!("granted but not visible: {}", missing.join(", ")));
                }
                Verdict::DoesNot(parts.join("; "))
            }
        }
        (Expect::Rows(_), Ok(Outcome::Succeeded { rows, .. })) => {
            match rows
                .first()
                .and_then(|r| r.first())
                .and_then(|v| v.as_deref())
                .map(str::parse::<u64>)
            {
                Some(Ok(0)) => Verdict::Holds("0 rows outside the filter".into()),
                Some(Ok(n)) => Verdict::DoesNot(format!("{n} rows outside the filter are visible")),
                _ => Verdict::Broken(format!("count(*) answered {rows:?}")),
            }
        }
    }
}

fn sql_of(probe: &Probe, run: &str) -> Option<String> {
    let label = format!(
        "-- lakemesh verify run={run} principal={} probe={}\n",
        probe.principal,
        probe.kind.as_str()
    );
    let t = quoted(&probe.table);
    match &probe.expect {
        Expect::Columns(_) | Expect::Denial => Some(format!("{label}SELECT * FROM {t} LIMIT 0")),
        Expect::Rows(cond) => Some(format!(
            "{label}SELECT count(*) FROM {t} WHERE NOT coalesce(({cond}), false)"
        )),
        Expect::Skip(_) => None,
    }
}

/// Runs `probes` with clients from `connect` (one per principal: the role assumed, or an
/// error naming why not), repeating those that do not hold until `propagation` has passed.
pub async fn run<F, Fut>(
    probes: &[Probe],
    notes: Vec<String>,
    run_id: &str,
    workgroup: &str,
    propagation: Duration,
    connect: F,
) -> Report
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<Athena, AwsError>>,
{
    let mut clients: BTreeMap<String, Result<Athena, String>> = BTreeMap::new();
    let mut results = Vec::new();
    for (n, probe) in probes.iter().enumerate() {
        let base = |status, detail: String, attempts, query_ids| ProbeResult {
            principal: probe.principal.clone(),
            table: probe.table.to_string(),
            probe: probe.kind,
            status,
            detail,
            attempts,
            query_ids,
        };
        let Some(sql) = sql_of(probe, run_id) else {
            let Expect::Skip(why) = &probe.expect else {
                continue;
            };
            results.push(base(Status::Skipped, why.clone(), 0, Vec::new()));
            continue;
        };
        if !clients.contains_key(&probe.principal) {
            let c = if probe.principal.contains(":user/") {
                Err("an IAM user cannot be assumed: verify probes roles".to_owned())
            } else {
                connect(probe.principal.clone())
                    .await
                    .map_err(|e| format!("cannot assume the role: {e}"))
            };
            clients.insert(probe.principal.clone(), c);
        }
        let athena = match &clients[&probe.principal] {
            Ok(a) => a,
            Err(e) => {
                results.push(base(Status::Error, e.clone(), 0, Vec::new()));
                continue;
            }
        };
        let started = Instant::now();
        let mut attempt: u32 = 0;
        let mut ids = Vec::new();
        let result = loop {
            attempt += 1;
            // 32 to 128 characters, unique per query and attempt.
            let token = format!("lakemesh-verify-{run_id}-{n:04}-{attempt:03}");
            let outcome = athena.query(&sql, &probe.table.database, &token).await;
            if let Ok(Outcome::Succeeded { id, .. } | Outcome::Failed { id, .. }) = &outcome {
                ids.push(id.clone());
            }
            let verdict = judge(probe, &outcome);
            let wait = backoff::delay(attempt.saturating_sub(1));
            let left = propagation.saturating_sub(started.elapsed());
            match verdict {
                Verdict::Holds(d) => break base(Status::Pass, d, attempt, ids),
                Verdict::Fatal(d) => break base(Status::Error, d, attempt, ids),
                Verdict::DoesNot(d) if left.is_zero() => break base(Status::Fail, d, attempt, ids),
                Verdict::Broken(d) if left.is_zero() => break base(Status::Error, d, attempt, ids),
                Verdict::DoesNot(d) | Verdict::Broken(d) => {
                    log::info!(
                        "verify: {} on {} ({}): does not hold yet ({d}); again in {} ms",
                        probe.kind.as_str(),
                        probe.table,
                        probe.principal,
                        wait.min(left).as_millis()
                    );
                    tokio::time::sleep(wait.min(left)).await;
                }
            }
        };
        results.push(result);
    }
    let ok = results
        .iter()
        .all(|r| matches!(r.status, Status::Pass | Status::Skipped));
    Report {
        run_id: run_id.to_owned(),
        workgroup: workgroup.to_owned(),
        results,
        notes,
        ok,
    }
}

impl Report {
    /// The matrix: a line per principal and table with each probe's status, then the details of
    /// what did not pass, the notes, and the verdict.
    pub fn render(&self) -> String {
        let mut rows: BTreeMap<(&str, &str), BTreeMap<ProbeKind, Status>> = BTreeMap::new();
        for r in &self.results {
            rows.entry((&r.principal, &r.table))
                .or_default()
                .insert(r.probe, r.status);
        }
        let pw = rows.keys().map(|(p, _)| p.len()).max().unwrap_or(9).max(9);
        let tw = rows.keys().map(|(_, t)| t.len()).max().unwrap_or(5).max(5);
        let cell = |s: Option<&Status>| match s {
            None => "-",
            Some(Status::Pass) => "pass",
            Some(Status::Fail) => "FAIL",
            Some(Status::Error) => "ERROR",
            Some(Status::Skipped) => "skip",
        };
        let mut out = format!(
            "verify run {} (workgroup {})\n{:<pw$}  {:<tw$}  {:<7}  {:<7}  refused\n",
            self.run_id, self.workgroup, "principal", "table", "columns", "rows"
        );
        for ((p, t), probes) in &rows {
            out.push_str(
                format!(
                    "{p:<pw$}  {t:<tw$}  {:<7}  {:<7}  {:<7}",
                    cell(probes.get(&ProbeKind::Columns)),
                    cell(probes.get(&ProbeKind::Rows)),
                    cell(probes.get(&ProbeKind::Refused)),
                )
                .trim_end(),
            );
            out.push('\n');
        }
        for r in self.results.iter().filter(|r| r.status != Status::Pass) {
            out.push_str(&format!(
                "{}: {} {} on {}: {}{}\n",
                match r.status {
                    Status::Fail => "FAIL",
                    Status::Error => "ERROR",
                    _ => "skipped",
                },
                r.principal,
                r.probe.as_str(),
                r.table,
                r.detail,
                if r.attempts > 1 {
                    format!(" (after {} attempts)", r.attempts)
                } else {
                    String::new()
                }
            ));
        }
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        let failed = self
            .results
            .iter()
            .filter(|r| matches!(r.status, Status::Fail | Status::Error))
            .count();
        if self.ok {
            out.push_str(&format!("ok: {} probes hold\n", self.results.len()));
        } else {
            out.push_str(&format!(
                "not ok: {failed} of {} probes do not hold\n",
                self.results.len()
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

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

[[grant]]
principal = "arn:aws:iam::444455556666:role/hidden-filter"
tables = { domain = "hospital_activity" }
permissions = ["SELECT"]
rows = "region_code = '76'"
columns = { exclude = ["region_code"] }
"#;

    fn table(db: &str, name: &str, domain: &str) -> ManagedTable {
        ManagedTable {
            table: TableRef {
                database: db.into(),
                table: name.into(),
            },
            domain: domain.into(),
            producer: "p".into(),
            columns: [
                ("patient_id", "string"),
                ("birth_year", "int"),
                ("region_code", "string"),
            ]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect(),
        }
    }

    #[test]
    fn plan_probes_granted_tables_and_one_refusal_per_principal() {
        let policy = Policy::from_toml(DESIGN, Path::new("p.toml")).unwrap();
        let tables = [
            table("hospital_activity_chu", "stays", "hospital_activity"),
            table("claims_mut", "claims", "claims"),
            table("claims_mut", "other", "claims"),
        ];
        let (probes, notes) = plan(&policy, &tables, None, None).unwrap();
        let got: Vec<(String, String, ProbeKind)> = probes
            .iter()
            .map(|p| {
                (
                    p.principal.rsplit('/').next().unwrap().to_owned(),
                    p.table.to_string(),
                    p.kind,
                )
            })
            .collect();
        let s = |a: &str, b: &str, k| (a.to_owned(), b.to_owned(), k);
        assert_eq!(
            got,
            [
                s(
                    "ministry-statistics",
                    "hospital_activity_chu.stays",
                    ProbeKind::Columns
                ),
                s(
                    "ministry-statistics",
                    "claims_mut.claims",
                    ProbeKind::Refused
                ),
                s(
                    "hidden-filter",
                    "hospital_activity_chu.stays",
                    ProbeKind::Columns
                ),
                s(
                    "hidden-filter",
                    "hospital_activity_chu.stays",
                    ProbeKind::Rows
                ),
                s("hidden-filter", "claims_mut.claims", ProbeKind::Refused),
                s(
                    "regional-agency-occitanie",
                    "hospital_activity_chu.stays",
                    ProbeKind::Columns
                ),
                s(
                    "regional-agency-occitanie",
                    "hospital_activity_chu.stays",
                    ProbeKind::Rows
                ),
                s(
                    "regional-agency-occitanie",
                    "claims_mut.claims",
                    ProbeKind::Refused
                ),
            ]
        );
        assert!(notes.is_empty());
        assert_eq!(
            probes[5].expect,
            Expect::Columns(BTreeSet::from(["region_code".to_owned()]))
        );
        assert_eq!(
            probes[6].expect,
            Expect::Rows("(region_code = '76')".into())
        );
        assert!(matches!(&probes[3].expect, Expect::Skip(w) if w.contains("region_code")));
        let sql = sql_of(&probes[6], "run1").unwrap();
        assert_eq!(
            sql,
            "-- lakemesh verify run=run1 principal=arn:aws:iam::444455556666:role/regional-agency-occitanie probe=rows\n\
             SELECT count(*) FROM \"hospital_activity_chu\".\"stays\" WHERE NOT coalesce(((region_code = '76')), false)"
        );
        // Only one principal and one table; a principal with nothing ungranted gets a note.
        let (probes, notes) = plan(
            &policy,
            &tables[..1],
            Some("arn:aws:iam::111122223333:role/ministry-statistics"),
            None,
        )
        .unwrap();
        assert_eq!(probes.len(), 1);
        assert!(
            notes[0].contains("no table to prove a refusal on"),
            "{notes:?}"
        );
        let e = plan(
            &policy,
            &tables,
            None,
            Some(&TableRef {
                database: "x".into(),
                table: "y".into(),
            }),
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a managed table"), "{e}");
    }

    /// Lake Formation's refusals, which the emulator cannot produce: a query that fails with
    /// "Insufficient permissions" and a start refused outright, both counted as the refusal
    /// the probe expects; and a granted table refused, which is a failure.
    #[tokio::test]
    async fn refusals_from_athena_pass_the_refused_probe_and_fail_a_granted_one() {
        use aws_sdk_athena::Client;
        use aws_sdk_athena::operation::get_query_execution::GetQueryExecutionOutput;
        use aws_sdk_athena::operation::start_query_execution::{
            StartQueryExecutionError, StartQueryExecutionOutput,
        };
        use aws_sdk_athena::types::error::InvalidRequestException;
        use aws_sdk_athena::types::{QueryExecution, QueryExecutionState, QueryExecutionStatus};
        use aws_smithy_mocks::{RuleMode, mock, mock_client};

        let start = mock!(Client::start_query_execution).then_output(|| {
            StartQueryExecutionOutput::builder()
                .query_execution_id("q-denied")
                .build()
        });
        let failed = mock!(Client::get_query_execution).then_output(|| {
            GetQueryExecutionOutput::builder()
                .query_execution(
                    QueryExecution::builder()
                        .query_execution_id("q-denied")
                        .status(
                            QueryExecutionStatus::builder()
                                .state(QueryExecutionState::Failed)
                                .state_change_reason(
                                    "Insufficient Lake Formation permission(s) on claims_mut.claims",
                                )
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
        let refused_start = || {
            mock!(Client::start_query_execution).then_error(|| {
                let message = "User: arn:aws:sts::444455556666:assumed-role/x/y is not authorized to perform: glue:GetTable";
                StartQueryExecutionError::InvalidRequestException(
                    InvalidRequestException::builder()
                        .message(message)
                        .meta(
                            aws_sdk_athena::error::ErrorMetadata::builder()
                                .code("InvalidRequestException")
                                .message(message)
                                .build(),
                        )
                        .build(),
                )
            })
        };
        let (r1, r2) = (refused_start(), refused_start());
        let client = mock_client!(
            aws_sdk_athena,
            RuleMode::Sequential,
            [&start, &failed, &r1, &r2]
        );
        let athena = Athena::new(
            client,
            "lakemesh-verify",
            "s3://results/verify/",
            Duration::from_millis(1),
            Duration::from_secs(5),
        );
        let t = |name: &str| TableRef {
            database: "claims_mut".into(),
            table: name.into(),
        };
        let probe = |table: &str, kind, expect| Probe {
            principal: "arn:aws:iam::444455556666:role/regional-agency-occitanie".into(),
            table: t(table),
            kind,
            expect,
        };
        let probes = [
            probe("claims", ProbeKind::Refused, Expect::Denial),
            probe("other", ProbeKind::Refused, Expect::Denial),
            probe(
                "granted",
                ProbeKind::Columns,
                Expect::Columns(BTreeSet::from(["a".to_owned()])),
            ),
        ];
        let report = run(
            &probes,
            Vec::new(),
            "r1",
            "lakemesh-verify",
            Duration::ZERO,
            |_| {
                let a = athena.clone();
                async move { Ok(a) }
            },
        )
        .await;
        let statuses: Vec<Status> = report.results.iter().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            [Status::Pass, Status::Pass, Status::Fail],
            "{report:#?}"
        );
        assert!(
            report.results[0]
                .detail
                .contains("Insufficient Lake Formation")
        );
        assert_eq!(report.results[0].query_ids, ["q-denied"]);
        assert!(report.results[1].detail.contains("not authorized"));
        assert!(report.results[2].detail.contains("refused though granted"));
        assert!(!report.ok);
        let text = report.render();
        assert!(text.contains("not ok: 1 of 3 probes do not hold"), "{text}");
    }

    /// A permanent error (here a missing workgroup) is reported at once, not retried for the
    /// whole propagation wait; it is an error, not a refusal.
    #[tokio::test]
    async fn a_missing_workgroup_is_an_error_reported_at_once() {
        use aws_sdk_athena::Client;
        use aws_sdk_athena::operation::start_query_execution::StartQueryExecutionError;
        use aws_sdk_athena::types::error::InvalidRequestException;
        use aws_smithy_mocks::{RuleMode, mock, mock_client};

        let missing = mock!(Client::start_query_execution).then_error(|| {
            StartQueryExecutionError::InvalidRequestException(
                InvalidRequestException::builder()
                    .message("WorkGroup does not exist")
                    .meta(
                        aws_sdk_athena::error::ErrorMetadata::builder()
                            .code("InvalidRequestException")
                            .message("WorkGroup does not exist")
                            .build(),
                    )
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_athena, RuleMode::MatchAny, [&missing]);
        let athena = Athena::new(
            client,
            "nope",
            "s3://results/verify/",
            Duration::from_millis(1),
            Duration::from_secs(5),
        );
        let probes = [Probe {
            principal: "arn:aws:iam::444455556666:role/regional-agency-occitanie".into(),
            table: TableRef {
                database: "claims_mut".into(),
                table: "claims".into(),
            },
            kind: ProbeKind::Refused,
            expect: Expect::Denial,
        }];
        let started = Instant::now();
        let report = run(
            &probes,
            Vec::new(),
            "r2",
            "nope",
            Duration::from_secs(60),
            |_| {
                let a = athena.clone();
                async move { Ok(a) }
            },
        )
        .await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(report.results[0].status, Status::Error, "{report:#?}");
        assert_eq!(report.results[0].attempts, 1);
        assert!(
            report.results[0]
                .detail
                .contains("WorkGroup does not exist")
        );
        assert!(!report.ok);
    }
}
