//! The subcommands behind `main.rs`: `check-config` (parse, validate, lint the policy, and a
//! cheap reachability check of SQS, Glue and Lake Formation), `run` (the service or `--once`),
//! `plan`, `apply`, `preview` and `verify`. Each returns what to print; `main` prints and picks
//! the exit code.

use std::path::Path;
use std::sync::Arc;

use lakemesh_shared::aws::SdkConfig;
use tokio_util::sync::CancellationToken;

use crate::aws_error::AwsError;
use crate::config::{ConfigError, Settings};
use crate::consume::{Clients, ConsumeError, Daemon, Report};
use crate::govern::GovernError;
use crate::policy::{Change, Policy, PolicyError};
use crate::preview::{DataSource, Preview, PreviewError};
use crate::sqs::redrive;

/// Why a command failed (large errors boxed: this travels up to `main`).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The configuration file.
    #[error(transparent)]
    Config(Box<ConfigError>),
    /// The policy file.
    #[error(transparent)]
    Policy(Box<PolicyError>),
    /// An AWS call.
    #[error(transparent)]
    Aws(Box<AwsError>),
    /// Governance.
    #[error(transparent)]
    Govern(Box<GovernError>),
    /// The intake.
    #[error(transparent)]
    Consume(Box<ConsumeError>),
    /// A reachability check found a problem.
    #[error("{0}")]
    Check(String),
    /// `preview`.
    #[error(transparent)]
    Preview(Box<PreviewError>),
    /// A command-line argument is unusable.
    #[error("{0}")]
    Usage(String),
    /// `verify` could not start.
    #[error(transparent)]
    Verify(Box<crate::verify::VerifyError>),
}

macro_rules! boxed_from {
    ($($variant:ident($ty:ty)),*) => {$(
        impl From<$ty> for CommandError {
            fn from(e: $ty) -> Self {
                Self::$variant(Box::new(e))
            }
        }
    )*};
}

boxed_from!(
    Config(ConfigError),
    Policy(PolicyError),
    Aws(AwsError),
    Govern(GovernError),
    Consume(ConsumeError),
    Preview(PreviewError),
    Verify(crate::verify::VerifyError)
);

/// Loads the configuration and its policy.
pub fn load(path: &Path) -> Result<(Arc<Settings>, Arc<Policy>), CommandError> {
    let settings = Settings::load(path)?;
    let policy = Policy::load(&settings.policy_file)?;
    policy.check_registry(&settings)?;
    Ok((Arc::new(settings), Arc::new(policy)))
}

/// `check-config`: the lines to print (configuration and policy already loaded and linted by
/// [`load`]).
pub async fn check_config(
    settings: &Settings,
    policy: &Arc<Policy>,
    sdk: &SdkConfig,
) -> Result<Vec<String>, CommandError> {
    let mut lines = vec![format!(
        "{}: {} producers, {} databases, policy {} ({} grants)",
        settings.path.display(),
        settings.producers.len(),
        settings.databases().len(),
        settings.policy_file.display(),
        policy.grants.len()
    )];
    let clients = Clients::new(sdk, &settings.aws, &settings.queue_url);
    let attrs = clients.sqs.attributes(&settings.queue_url).await?;
    match attrs.get("RedrivePolicy").and_then(|p| redrive(p)) {
        None => {
            return Err(CommandError::Check(format!(
                "queue {}: no redrive policy: poison messages would never reach a dead-letter queue",
                settings.queue_url
            )));
        }
        Some((max, dlq_arn)) => {
            if let Some(dlq) = &settings.dead_letter_queue_url {
                let dlq_attrs = clients.sqs.attributes(dlq).await?;
                if dlq_attrs.get("QueueArn") != Some(&dlq_arn) {
                    return Err(CommandError::Check(format!(
                        "queue {}: its redrive policy sends poison messages to {dlq_arn}, not to dead_letter_queue_url {dlq}",
                        settings.queue_url
                    )));
                }
            }
            lines.push(format!(
                "SQS: queue reachable; poison messages go to {dlq_arn} after {max} receives"
            ));
        }
    }
    let dbs = clients.glue.list_some_databases().await?;
    lines.push(format!(
        "Glue: catalog reachable ({} databases on the first page)",
        dbs.len()
    ));
    let (db_defaults, table_defaults) = clients.lf.default_permissions().await?;
    lines.push("Lake Formation: data lake settings reachable".into());
    if db_defaults > 0 || table_defaults > 0 {
        lines.push(format!(
            "warning: the data lake still gives IAM_ALLOWED_PRINCIPALS default permissions \
             ({db_defaults} on new databases, {table_defaults} on new tables); the daemon clears them \
             on its own databases and tables"
        ));
    }
    let daemon = Daemon::new(Arc::new(settings.clone()), Arc::clone(policy), clients);
    let tables = daemon.governor().managed_tables(None).await?;
    policy.lint_tables(&tables)?;
    lines.push(format!(
        "policy: lint passed against {} managed tables",
        tables.len()
    ));
    Ok(lines)
}

/// `run`: the service until `shutdown`, or one drain with `once`.
pub async fn run(
    settings: Arc<Settings>,
    policy: Arc<Policy>,
    sdk: &SdkConfig,
    once: bool,
    shutdown: CancellationToken,
) -> Result<Report, CommandError> {
    let clients = Clients::new(sdk, &settings.aws, &settings.queue_url);
    let daemon = Daemon::new(settings, policy, clients);
    Ok(daemon.run(once, shutdown).await?)
}

/// `plan`: the changes that would make Lake Formation match the policy on every managed table.
pub async fn plan(
    settings: Arc<Settings>,
    policy: Arc<Policy>,
    sdk: &SdkConfig,
) -> Result<Vec<Change>, CommandError> {
    let clients = Clients::new(sdk, &settings.aws, &settings.queue_url);
    let daemon = Daemon::new(settings, Arc::clone(&policy), clients);
    let g = daemon.governor();
    let tables = g.managed_tables(None).await?;
    for grant in policy.unmatched(&tables) {
        log::warn!(
            "policy: grant #{} (principal {}) matches no table of the catalog yet",
            grant.index,
            grant.principal
        );
    }
    Ok(g.plan(&tables).await?)
}

/// `apply`: makes it so; returns the changes applied.
pub async fn apply(
    settings: Arc<Settings>,
    policy: Arc<Policy>,
    sdk: &SdkConfig,
) -> Result<Vec<Change>, CommandError> {
    let clients = Clients::new(sdk, &settings.aws, &settings.queue_url);
    let daemon = Daemon::new(settings, policy, clients);
    let g = daemon.governor();
    let tables = g.managed_tables(None).await?;
    let changes = g.plan(&tables).await?;
    g.apply(&changes).await?;
    Ok(changes)
}

/// `preview`: what `principal` would see of `table` (`DATABASE.TABLE`) in `data` (a folder or
/// `s3://bucket/prefix`), at most `limit` sample rows.
pub async fn preview(
    settings: &Settings,
    policy: &Policy,
    sdk: &SdkConfig,
    table: &str,
    principal: &str,
    data: &str,
    limit: usize,
) -> Result<Preview, CommandError> {
    let table = crate::preview::parse_table(table).map_err(CommandError::Usage)?;
    let source = DataSource::parse(data)?;
    let s3 = match source {
        DataSource::S3 { .. } => Some(crate::s3::S3::new(lakemesh_shared::aws::s3_client(
            sdk,
            &settings.aws,
        ))),
        DataSource::Local(_) => None,
    };
    Ok(crate::preview::preview(
        settings,
        policy,
        s3.as_ref(),
        &table,
        principal,
        &source,
        limit,
    )
    .await?)
}

/// `verify`: Athena probes as each principal of `policy` (or `only_principal`) on the managed
/// tables (or `only_table`, `DATABASE.TABLE`); the report says whether everything holds.
pub async fn verify(
    settings: Arc<Settings>,
    policy: Arc<Policy>,
    sdk: &SdkConfig,
    only_principal: Option<&str>,
    only_table: Option<&str>,
) -> Result<crate::verify::Report, CommandError> {
    let Some(v) = settings.verify.clone() else {
        return Err(CommandError::Usage(format!(
            "{}: no [verify] section: verify needs the Athena workgroup and result location its probes use",
            settings.path.display()
        )));
    };
    let only_table = only_table
        .map(crate::preview::parse_table)
        .transpose()
        .map_err(CommandError::Usage)?;
    let clients = Clients::new(sdk, &settings.aws, &settings.queue_url);
    let daemon = Daemon::new(Arc::clone(&settings), Arc::clone(&policy), clients);
    let tables = daemon.governor().managed_tables(None).await?;
    let (probes, notes) =
        crate::verify::plan(&policy, &tables, only_principal, only_table.as_ref())?;
    let run_id = crate::verify::run_id();
    let sts = crate::sts::Sts::new(aws_sdk_sts::Client::new(sdk));
    let session = format!("lakemesh-verify-{run_id}");
    let connect = |principal: String| {
        let (sts, session, v) = (sts.clone(), session.clone(), v.clone());
        async move {
            // A role just created or just trusted is refused for a few seconds.
            let s = crate::backoff::retry("verify: AssumeRole", v.propagation_timeout, || {
                sts.assume_role(&principal, &session)
            })
            .await?;
            log::info!(
                "verify: probing as {} (role {principal})",
                s.assumed_role_arn
            );
            Ok::<_, AwsError>(crate::athena::Athena::new(
                crate::sts::athena_client(sdk, &s),
                &v.workgroup,
                &v.output_location,
                v.poll_interval,
                v.query_timeout,
            ))
        }
    };
    Ok(crate::verify::run(
        &probes,
        notes,
        &run_id,
        &v.workgroup,
        v.propagation_timeout,
        connect,
    )
    .await)
}
