//! The error every AWS adapter (`sqs`, `s3`, `glue`, `lakeformation`) returns: the service,
//! the call, the resource, the service's error code and the SDK's whole message, and whether
//! it is transient. The SDK's `SdkError` never leaves an adapter; callers match on
//! [`AwsError::code`] for the cases that mean something (already exists, crawler running, not
//! found, concurrent modification) and ask [`AwsError::is_transient`] for retries.

use std::fmt;

use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Service error codes that a later attempt may not get.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "ConcurrentModificationException",
    "InternalServiceException",
    "InternalFailure",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "OperationTimeoutException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// An AWS call that failed.
#[derive(Debug, Clone, thiserror::Error)]
pub struct AwsError {
    /// `SQS`, `S3`, `Glue`, `Lake Formation`.
    pub service: &'static str,
    /// The API call: `StartCrawler`.
    pub operation: &'static str,
    /// What it was about: a queue, `bucket/key`, a crawler, a table.
    pub resource: String,
    /// The service's error code, when it answered one.
    pub code: Option<String>,
    /// The error with its whole chain.
    pub message: String,
    transient: bool,
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} ({}): {}",
            self.service, self.operation, self.resource, self.message
        )
    }
}

impl AwsError {
    /// Wraps an SDK error: transient when it is a timeout, a connection failure, an
    /// unreadable answer, an HTTP 5xx or 429, or one of the throttling/concurrency codes.
    pub fn from_sdk<E>(
        service: &'static str,
        operation: &'static str,
        resource: impl Into<String>,
        err: SdkError<E>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let code = err.code().map(str::to_owned);
        let transient = match &err {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => true,
            SdkError::ServiceError(_) => {
                code.as_deref()
                    .is_some_and(|c| TRANSIENT_CODES.contains(&c))
                    || status.is_some_and(|s| s >= 500 || s == 429)
            }
            _ => false,
        };
        // A service's own answer reads best as its code and message; anything else (timeouts,
        // connection errors, unreadable answers) with the SDK's whole chain.
        let message = match (&err, &code) {
            (SdkError::ServiceError(_), Some(c)) => format!(
                "{c}: {} (HTTP {})",
                err.message().unwrap_or("no message"),
                status.map_or_else(|| "?".to_owned(), |s| s.to_string())
            ),
            // The chain's messages, each once (DisplayErrorContext would add the SDK's Debug
            // dumps, hundreds of characters of internals, to a connection error).
            _ => {
                let chain = lakemesh_shared::error_chain(&err);
                if chain.len() > 400 {
                    DisplayErrorContext(&err)
                        .to_string()
                        .chars()
                        .take(400)
                        .collect::<String>()
                        + "…"
                } else {
                    chain
                }
            }
        };
        Self {
            service,
            operation,
            resource: resource.into(),
            code,
            message,
            transient,
        }
    }

    /// An error the adapter found itself (an answer missing a field it needs).
    pub fn invalid_answer(
        service: &'static str,
        operation: &'static str,
        resource: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            service,
            operation,
            resource: resource.into(),
            code: None,
            message: message.into(),
            transient: false,
        }
    }

    /// Whether the same call may succeed later.
    pub fn is_transient(&self) -> bool {
        self.transient
    }

    /// Marks the error transient (role propagation, entity just created).
    pub fn transient(mut self) -> Self {
        self.transient = true;
        self
    }

    /// Whether the service answered this error code.
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

impl crate::backoff::Transient for AwsError {
    fn is_transient(&self) -> bool {
        self.transient
    }
}
