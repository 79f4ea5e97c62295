//! The subcommands behind `main.rs`: `check-config` (parse, validate, lint the policy, and
//! unless `--offline` a cheap reachability check of SQS, Glue and Lake Formation), `run` (the
//! service, with policy reloads, or `--once`), `plan`, `apply` (both recorded in the state
//! store), `status`, `preview` and `verify`. Each returns what to print; `main` prints and
//! picks the exit code.

use std::path::Path;
use std::sync::Arc;

use lakemesh_shared::aws::SdkConfig;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::aws_error::AwsError;
use crate::config::{ConfigError, Settings};
use crate::consume::{Clients, ConsumeError, Daemon, Report};
use crate::govern::GovernError;
use crate::policy::{Change, Policy, PolicyError};
use crate::preview::{DataSource, Preview, PreviewError};
use crate::sqs::redrive;
use crate::state::{RunKind, StateError, StateStore};

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
    /// The state store.
    #[error(transparent)]
    State(Box<StateError>),
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
    Verify(crate::verify::VerifyError),
    State(StateError)
);

/// Loads the configuration and its policy.
pub fn load(path: &Path) -> Result<(Arc<Settings>, Arc<Policy>), CommandError> {
    let settings = Settings::load(path)?;
    let policy = Policy::load(&settings.policy_file)?;
    policy.check_registry(&settings)?;
    Ok((Arc::new(settings), Arc::new(policy)))
}

/// The lines of `check-config --offline`: the configuration and policy (loaded, validated and
/// their row filters linted by [`load`]) and the state store, without any AWS call (the
/// service's `ExecStartPre`).
pub fn check_config_offline(
    settings: &Settings,
    policy: &Policy,
) -> Result<Vec<String>, CommandError> {
    let mut lines = vec![format!(
        "{}: {} producers, {} databases, policy {} ({} grants)",
        settings.path.display(),
        settings.producers.len(),
        settings.databases().len(),
        settings.policy_file.display(),
        policy.grants.len()
    )];
    // Read only: a check run as another user must not create the service's files.
    match StateStore::open_existing(&settings.state_dir)? {
        Some(store) => {
            store.summary(0)?;
            lines.push(format!("state: {} readable", store.path().display()));
        }
        None => lines.push(format!(
            "state: {} not created yet (the service creates it at its first run)",
            settings.state_dir.join(crate::state::FILE_NAME).display()
        )),
    }
    Ok(lines)
}

/// `check-config`: the lines to print (configuration and policy already loaded and linted by
/// [`load`]), the offline checks then the AWS ones.
pub async fn check_config(
    settings: &Settings,
    policy: &Arc<Policy>,
    sdk: &SdkConfig,
) -> Result<Vec<String>, CommandError> {
    let mut lines = check_config_offline(settings, policy)?;
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
    let daemon = Daemon::new(
        Arc::new(settings.clone()),
        Arc::clone(policy),
        clients,
        None,
    );
    let tables = daemon.governor().managed_tables(None).await?;
    policy.lint_tables(&tables)?;
    lines.push(format!(
        "policy: lint passed against {} managed tables",
        tables.len()
    ));
    Ok(lines)
}

/// `run`: the service until `shutdown`, or one drain with `once` (no policy reloads).
pub async fn run(
    settings: Arc<Settings>,
    policy: Arc<Policy>,
    sdk: &SdkConfig,
    once: bool,
    shutdown: CancellationToken,
) -> Result<Report, CommandError> {
    let (_keep, reloads) = mpsc::channel(1);
    serve(settings, policy, sdk, once, shutdown, reloads).await
}

/// `run` with reloads: each message on `reloads` (SIGHUP) re-reads the policy file, lints it
/// against the managed tables and puts it in force (`RELOADING=1`, then `READY=1`); an invalid
/// one is logged and the running policy kept. Announcements and reloads are recorded in the
/// state store under `state_dir`.
pub async fn serve(
    settings: Arc<Settings>,
    policy: Arc<Policy>,
    sdk: &SdkConfig,
    once: bool,
    shutdown: CancellationToken,
    mut reloads: mpsc::Receiver<()>,
) -> Result<Report, CommandError> {
    let store = Arc::new(StateStore::open(&settings.state_dir)?);
    if let Err(e) = store.prune() {
        log::warn!("{e}");
    }
    let clients = Clients::new(sdk, &settings.aws, &settings.queue_url);
    let daemon = Daemon::new(settings, policy, clients, Some(store));
    let reloader = {
        let daemon = Arc::clone(&daemon);
        tokio::spawn(async move {
            while reloads.recv().await.is_some() {
                lakemesh_shared::lifecycle::reloading();
                match daemon.reload_policy().await {
                    Ok(p) => log::info!(
                        "SIGHUP: policy reloaded ({} grants, sha256 {})",
                        p.grants.len(),
                        &p.source_sha256[..12.min(p.source_sha256.len())]
                    ),
                    Err(e) => log::error!("SIGHUP: {e}; keeping the running policy"),
                }
                lakemesh_shared::lifecycle::ready(&daemon.status_line());
            }
        })
    };
    let report = daemon.run(once, shutdown).await;
    reloader.abort();
    Ok(report?)
}

/// Records a `plan` or `apply` in the state store when it can be opened (warns otherwise: the
/// command's own result stands).
fn record_run(settings: &Settings, kind: RunKind, sha: &str, result: &Result<usize, String>) {
    let recorded = StateStore::open(&settings.state_dir).and_then(|s| {
        s.record_policy_run(
            kind,
            sha,
            result.as_ref().ok().map(|n| *n as u64),
            result.as_ref().err().map(String::as_str),
        )
    });
    if let Err(e) = recorded {
        log::warn!("not recorded: {e}");
    }
}

/// `plan`: the changes that would make Lake Formation match the policy on every managed table.
pub async fn plan(
    settings: Arc<Settings>,
    policy: Arc<Policy>,
    sdk: &SdkConfig,
) -> Result<Vec<Change>, CommandError> {
    let clients = Clients::new(sdk, &settings.aws, &settings.queue_url);
    let sha = policy.source_sha256.clone();
    let daemon = Daemon::new(Arc::clone(&settings), Arc::clone(&policy), clients, None);
    let g = daemon.governor();
    let result = async {
        let tables = g.managed_tables(None).await?;
        for grant in policy.unmatched(&tables) {
            log::warn!(
                "policy: grant #{} (principal {}) matches no table of the catalog yet",
                grant.index,
                grant.principal
            );
        }
        g.plan(&tables).await
    }
    .await;
    let counted = result.as_ref().map(Vec::len).map_err(ToString::to_string);
    record_run(&settings, RunKind::Plan, &sha, &counted);
    Ok(result?)
}

/// `apply`: makes it so; returns the changes applied.
pub async fn apply(
    settings: Arc<Settings>,
    policy: Arc<Policy>,
    sdk: &SdkConfig,
) -> Result<Vec<Change>, CommandError> {
    let clients = Clients::new(sdk, &settings.aws, &settings.queue_url);
    let sha = policy.source_sha256.clone();
    let daemon = Daemon::new(Arc::clone(&settings), policy, clients, None);
    let g = daemon.governor();
    let result = async {
        let tables = g.managed_tables(None).await?;
        let changes = g.plan(&tables).await?;
        g.apply(&changes).await?;
        Ok::<_, GovernError>(changes)
    }
    .await;
    let counted = result.as_ref().map(Vec::len).map_err(ToString::to_string);
    record_run(&settings, RunKind::Apply, &sha, &counted);
    Ok(result?)
}

/// `status`: what the state store recorded, the queues' depths (when they answer) and whether
/// the policy file changed since the last `apply`.
pub async fn status(
    settings: &Settings,
    sdk: &SdkConfig,
    failures: usize,
) -> Result<crate::status::Status, CommandError> {
    let sqs = crate::sqs::Sqs::new(aws_sdk_sqs::Client::new(sdk), &settings.queue_url);
    Ok(crate::status::gather(settings, &sqs, failures).await?)
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
    let daemon = Daemon::new(Arc::clone(&settings), Arc::clone(&policy), clients, None);
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
