//! Athena adapter for `verify`: one labelled query in the configured workgroup with its own
//! result location, waited for with a bounded poll, and its first page of results.
//!
//! A query is started with a `ClientRequestToken` (idempotent: a retried start does not run it
//! twice) and ends as [`Outcome::Succeeded`] (column names from the result metadata, rows
//! without Athena's header row), [`Outcome::Failed`] (Athena's state change reason) or
//! [`Outcome::Refused`] (StartQueryExecution itself was denied). Other SDK errors are an
//! [`AwsError`]. Does not own what a probe asks or what its answer means (`verify`).

use std::time::{Duration, Instant};

use aws_sdk_athena::Client;
use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState, ResultConfiguration};

use crate::aws_error::AwsError;

const SERVICE: &str = "Athena";

/// Where and how queries run.
#[derive(Debug, Clone)]
pub struct Athena {
    client: Client,
    workgroup: String,
    output_location: String,
    poll: Duration,
    timeout: Duration,
}

/// How a query ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It ran.
    Succeeded {
        /// The query execution id.
        id: String,
        /// Column names of the result, in order.
        columns: Vec<String>,
        /// The rows of the first page, Athena's header row left out.
        rows: Vec<Vec<Option<String>>>,
    },
    /// It was accepted but failed (Lake Formation's refusals end here).
    Failed {
        /// The query execution id.
        id: String,
        /// Athena's reason.
        reason: String,
    },
    /// StartQueryExecution was denied (IAM or Lake Formation).
    Refused {
        /// The service's message.
        reason: String,
    },
}

impl Athena {
    /// A client for queries in `workgroup` writing results under `output_location`.
    pub fn new(
        client: Client,
        workgroup: &str,
        output_location: &str,
        poll: Duration,
        timeout: Duration,
    ) -> Self {
        Self {
            client,
            workgroup: workgroup.to_owned(),
            output_location: output_location.to_owned(),
            poll,
            timeout,
        }
    }

    /// Runs `sql` in `database`, labelled by `token` (32 to 128 characters).
    pub async fn query(&self, sql: &str, database: &str, token: &str) -> Result<Outcome, AwsError> {
        let resource = format!("workgroup {}", self.workgroup);
        let started = self
            .client
            .start_query_execution()
            .query_string(sql)
            .client_request_token(token)
            .work_group(&self.workgroup)
            .query_execution_context(
                QueryExecutionContext::builder()
                    .catalog("AwsDataCatalog")
                    .database(database)
                    .build(),
            )
            .result_configuration(
                ResultConfiguration::builder()
                    .output_location(&self.output_location)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "StartQueryExecution", &resource, e));
        let id = match started {
            Ok(out) => out.query_execution_id().unwrap_or_default().to_owned(),
            Err(e) if is_denial(&e) => {
                return Ok(Outcome::Refused { reason: e.message });
            }
            Err(e) => return Err(e),
        };
        let deadline = Instant::now() + self.timeout;
        let resource = format!("query {id}");
        loop {
            let out = self
                .client
                .get_query_execution()
                .query_execution_id(&id)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(SERVICE, "GetQueryExecution", &resource, e))?;
            let status = out.query_execution().and_then(|q| q.status());
            match status.and_then(|s| s.state()) {
                Some(QueryExecutionState::Succeeded) => break,
                Some(QueryExecutionState::Failed | QueryExecutionState::Cancelled) => {
                    let reason = status
                        .and_then(|s| s.state_change_reason())
                        .unwrap_or("no reason given")
                        .to_owned();
                    return Ok(Outcome::Failed { id, reason });
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                let _ = self
                    .client
                    .stop_query_execution()
                    .query_execution_id(&id)
                    .send()
                    .await;
                return Err(AwsError::invalid_answer(
                    SERVICE,
                    "GetQueryExecution",
                    &resource,
                    format!("still running after {} s; stopped", self.timeout.as_secs()),
                )
                .transient());
            }
            tokio::time::sleep(self.poll).await;
        }
        let out = self
            .client
            .get_query_results()
            .query_execution_id(&id)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "GetQueryResults", &resource, e))?;
        let set = out.result_set();
        let columns: Vec<String> = set
            .and_then(|s| s.result_set_metadata())
            .map(|m| {
                m.column_info()
                    .iter()
                    .map(|c| c.name().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let mut rows: Vec<Vec<Option<String>>> = set
            .map(|s| {
                s.rows()
                    .iter()
                    .map(|r| {
                        r.data()
                            .iter()
                            .map(|d| d.var_char_value().map(str::to_owned))
                            .collect()
                    })
                    .collect()
            })
            .unwrap_or_default();
        // Athena's first row of a SELECT result repeats the column names.
        let header: Vec<Option<String>> = columns.iter().cloned().map(Some).collect();
        if !columns.is_empty() && rows.first() == Some(&header) {
            rows.remove(0);
        }
        Ok(Outcome::Succeeded { id, columns, rows })
    }
}

/// Whether a StartQueryExecution error is a denial of access (not a fault of the request).
fn is_denial(e: &AwsError) -> bool {
    e.is("AccessDeniedException") || (e.is("InvalidRequestException") && is_refusal(&e.message))
}

/// Whether an Athena failure reason says the principal may not read what it asked: Lake
/// Formation's "Insufficient permissions", IAM's "not authorized", or a table or database it
/// may not even see (TABLE_NOT_FOUND, SCHEMA_NOT_FOUND: Lake Formation hides what a principal
/// has no permission on). A missing workgroup or result bucket is not a refusal.
pub fn is_refusal(reason: &str) -> bool {
    let r = reason.to_lowercase();
    [
        "insufficient permission",
        "insufficient lake formation permission",
        "access denied",
        "accessdenied",
        "not authorized",
        "permission denied",
        "table_not_found",
        "schema_not_found",
    ]
    .iter()
    .any(|n| r.contains(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_told_from_other_failures() {
        for reason in [
            "Insufficient permissions to execute the query. Insufficient Lake Formation permission(s) on hospital_stays",
            "TABLE_NOT_FOUND: line 2:15: Table 'awsdatacatalog.db.t' does not exist",
            "SCHEMA_NOT_FOUND: line 2:15: Schema 'db' does not exist",
            "User: arn:aws:sts::1:assumed-role/r/s is not authorized to perform: athena:StartQueryExecution",
            "Access denied when writing output",
        ] {
            assert!(is_refusal(reason), "{reason}");
        }
        for reason in [
            "WorkGroup does not exist",
            "COLUMN_NOT_FOUND: line 1:8: Column 'x' cannot be resolved",
            "SYNTAX_ERROR: line 1:1: mismatched input",
        ] {
            assert!(!is_refusal(reason), "{reason}");
        }
    }
}
