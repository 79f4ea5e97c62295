//! STS adapter for `verify`: assume a principal's role and build an Athena client that runs as
//! it. The session name carries the verification run's id, so CloudTrail and Athena's query
//! history show which run asked what. Does not own which principals are probed (`verify`).

use aws_sdk_athena::config::Credentials;
use aws_sdk_sts::Client;
use lakemesh_shared::aws::SdkConfig;

use crate::aws_error::AwsError;

const SERVICE: &str = "STS";

/// An STS client.
#[derive(Debug, Clone)]
pub struct Sts {
    client: Client,
}

/// Temporary credentials of an assumed role.
#[derive(Debug, Clone)]
pub struct Session {
    /// The assumed-role ARN STS answered (`arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`).
    pub assumed_role_arn: String,
    /// The credentials.
    pub credentials: Credentials,
}

impl Sts {
    /// Wraps a client.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// Assumes `role_arn` as session `session_name` (2 to 64 characters of `\w+=,.@-`).
    pub async fn assume_role(
        &self,
        role_arn: &str,
        session_name: &str,
    ) -> Result<Session, AwsError> {
        let out = self
            .client
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(session_name)
            .duration_seconds(900)
            .send()
            .await
            .map_err(|e| {
                let e = AwsError::from_sdk(SERVICE, "AssumeRole", role_arn, e);
                // A role just created or just trusted is not assumable for a few seconds.
                if e.is("AccessDenied") {
                    e.transient()
                } else {
                    e
                }
            })?;
        let c = out.credentials().ok_or_else(|| {
            AwsError::invalid_answer(
                SERVICE,
                "AssumeRole",
                role_arn,
                "no credentials in the answer",
            )
        })?;
        Ok(Session {
            assumed_role_arn: out
                .assumed_role_user()
                .map(|u| u.arn().to_owned())
                .unwrap_or_default(),
            credentials: Credentials::new(
                c.access_key_id(),
                c.secret_access_key(),
                Some(c.session_token().to_owned()),
                std::time::SystemTime::try_from(*c.expiration()).ok(),
                "lakemesh-verify",
            ),
        })
    }
}

/// An Athena client of `sdk`'s settings (region, endpoint, retry, timeouts) running as `session`.
pub fn athena_client(sdk: &SdkConfig, session: &Session) -> aws_sdk_athena::Client {
    let config = aws_sdk_athena::config::Builder::from(sdk)
        .credentials_provider(session.credentials.clone())
        .build();
    aws_sdk_athena::Client::from_conf(config)
}
