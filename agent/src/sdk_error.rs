//! What an AWS SDK error means for a retry decision, shared by the [`crate::s3`] and
//! [`crate::sqs`] adapters (the only modules that see `SdkError`).
//!
//! Transient: no answer (connection refused or reset, DNS, timeout), an unreadable answer,
//! HTTP 5xx, HTTP 429 and the throttling and timeout codes (`SlowDown`, `Throttling`,
//! `RequestTimeout`, `BadDigest`…). Everything else (access denied, no such bucket or queue,
//! invalid request) needs an operator and is permanent for this attempt.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// An SDK error reduced to what callers need: the text (whole chain), the service's code and
/// HTTP status when it answered, and whether trying again may succeed.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The error with its whole source chain.
    pub message: String,
    /// The service's error code (`AccessDenied`, `NoSuchBucket`), when it answered with one.
    pub code: Option<String>,
    /// The HTTP status, when it answered.
    pub status: Option<u16>,
    /// Whether trying again later may succeed.
    pub transient: bool,
}

/// Error codes AWS services use for throttling and server-side trouble.
const TRANSIENT_CODES: [&str; 14] = [
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "ServiceUnavailable",
    "BadDigest",
    "OperationAborted",
];

/// Whether a service answer with `status` and `code` is worth retrying.
pub fn is_transient_answer(status: u16, code: Option<&str>) -> bool {
    status >= 500 || status == 429 || code.is_some_and(|c| TRANSIENT_CODES.contains(&c))
}

/// Classifies `e` (from any SDK client: S3 and SQS share the type).
pub fn classify<E>(e: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = DisplayErrorContext(e).to_string();
    match e {
        SdkError::ConstructionFailure(_) => Failure {
            message,
            code: None,
            status: None,
            transient: false,
        },
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let code = ctx.err().code().map(str::to_owned).or_else(|| {
                // An answer the SDK could not parse (moto's XML to a JSON client): name the status.
                (status == 403).then(|| "AccessDenied".to_owned())
            });
            Failure {
                transient: is_transient_answer(status, code.as_deref()),
                message,
                code,
                status: Some(status),
            }
        }
        // Timeouts, dispatch failures (connection refused, reset, DNS), unreadable answers.
        _ => Failure {
            message,
            code: None,
            status: e.raw_response().map(|r| r.status().as_u16()),
            transient: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_server_errors_are_transient() {
        assert!(is_transient_answer(503, None));
        assert!(is_transient_answer(500, Some("InternalError")));
        assert!(is_transient_answer(429, None));
        assert!(is_transient_answer(400, Some("RequestTimeout")));
        assert!(is_transient_answer(400, Some("ThrottlingException")));
        assert!(is_transient_answer(400, Some("BadDigest")));
        assert!(!is_transient_answer(403, Some("AccessDenied")));
        assert!(!is_transient_answer(404, Some("NoSuchBucket")));
        assert!(!is_transient_answer(400, Some("InvalidArgument")));
    }
}
