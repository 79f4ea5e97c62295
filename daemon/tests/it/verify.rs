//! `verify` against the emulator: the tables come from a direct-mode crawl, each principal's
//! role is assumed through STS (moto switches to the role's account, so each principal's
//! queries run, and take queued results, in its own account), and the probes' answers are the
//! emulator's queued Athena results: a role seeing a column it must not, a row outside its
//! filter, an ungranted table readable (the emulator does not enforce Lake Formation), and a
//! grant that takes effect only on the second attempt. Refusals by Lake Formation itself are
//! covered by the unit test with aws-smithy-mocks in `verify.rs`.

use aws_sdk_athena::config::Credentials;
use lakemesh_shared::testbed::{Emulator, REGION};
use lakemesh_syncd::commands;
use lakemesh_syncd::verify::{ProbeKind, Status};

use crate::support::World;

const WORKGROUP: &str = "lakemesh-verify";

fn policy(stats: &str, agency: &str) -> String {
    format!(
        r#"
[[grant]]
principal = "{stats}"
tables = {{ domain = "DOMAIN", table = "hospital_stays" }}
permissions = ["SELECT", "DESCRIBE"]
columns = {{ exclude = ["patient_id"] }}

[[grant]]
principal = "{agency}"
tables = {{ domain = "DOMAIN", table = "hospital_stays" }}
permissions = ["SELECT"]
rows = "region_code = '76'"
columns = {{ exclude = ["patient_id", "birth_year"] }}
"#
    )
}

/// A world in direct mode with two tables (hospital_stays granted, other_stays not) and a
/// `[verify]` section.
async fn world(propagation_secs: u64) -> World {
    let e = Emulator::shared().expect("emulator");
    let mut w = World::new(e, 3).await;
    w.extra = format!(
        "catalog_mode = \"direct\"\n[verify]\nworkgroup = \"{WORKGROUP}\"\noutput_location = \"s3://{}/athena/\"\npropagation_timeout_secs = {propagation_secs}\npoll_interval_ms = 50",
        w.bucket
    );
    for product in ["hospital_stays", "other_stays"] {
        let a = w.upload(product, &[4], 3).await;
        w.send(&a).await;
    }
    let report = w.run_once().await;
    assert_eq!((report.done, report.failed), (2, 0), "{report:?}");
    w
}

/// An Athena client as `role` (assumed through the emulator's STS), with the workgroup made in
/// its account, as an administrator of that account would.
async fn athena_as(w: &World, role: &str) -> aws_sdk_athena::Client {
    let sts = aws_sdk_sts::Client::new(&w.sdk);
    let c = sts
        .assume_role()
        .role_arn(role)
        .role_session_name("test-setup")
        .send()
        .await
        .expect("assume role")
        .credentials
        .expect("credentials");
    let creds = Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "test",
    );
    let conf = aws_sdk_athena::config::Builder::from(&w.sdk)
        .credentials_provider(creds)
        .build();
    let athena = aws_sdk_athena::Client::from_conf(conf);
    let exists = athena
        .get_work_group()
        .work_group(WORKGROUP)
        .send()
        .await
        .ok()
        .and_then(|o| o.work_group)
        .is_some();
    if !exists {
        athena
            .create_work_group()
            .name(WORKGROUP)
            .send()
            .await
            .expect("workgroup");
    }
    athena
}

fn account(role: &str) -> &str {
    role.split(':').nth(4).expect("account")
}

/// A queued result: column names, then rows (Athena's header row first, as Athena answers).
fn result(columns: &[&str], rows: &[&[&str]]) -> String {
    let info: Vec<String> = columns
        .iter()
        .map(|c| format!(r#"{{"Name": "{c}", "Label": "{c}", "Type": "varchar"}}"#))
        .collect();
    let row = |vals: &[&str]| {
        let data: Vec<String> = vals
            .iter()
            .map(|v| format!(r#"{{"VarCharValue": "{v}"}}"#))
            .collect();
        format!(r#"{{"Data": [{}]}}"#, data.join(", "))
    };
    let mut all = vec![row(columns)];
    all.extend(rows.iter().map(|r| row(r)));
    format!(
        r#"{{"rows": [{}], "column_info": [{}]}}"#,
        all.join(", "),
        info.join(", ")
    )
}

const STATS_COLUMNS: [&str; 7] = [
    "stay_id",
    "birth_year",
    "region_code",
    "total_cost",
    "admission_date",
    "year",
    "month",
];
const AGENCY_COLUMNS: [&str; 6] = [
    "stay_id",
    "region_code",
    "total_cost",
    "admission_date",
    "year",
    "month",
];

#[tokio::test]
async fn verify_reports_a_hidden_column_seen_a_row_outside_the_filter_and_an_ungranted_table_read()
{
    let stats = "arn:aws:iam::210000000001:role/ministry-statistics";
    let agency = "arn:aws:iam::210000000002:role/regional-agency-occitanie";
    let w = world(0).await;
    w.write_policy(&policy(stats, agency));
    let athena_stats = athena_as(&w, stats).await;
    athena_as(&w, agency).await;
    // The statistics role: its columns as granted; the ungranted table readable.
    w.emulator
        .queue_athena_results(
            account(stats),
            REGION,
            &format!(
                "[{}, {}]",
                result(&STATS_COLUMNS, &[]),
                result(&["stay_id"], &[])
            ),
        )
        .expect("queue");
    // The agency: patient_id visible, 3 rows outside region 76, the ungranted table readable.
    let mut seen = AGENCY_COLUMNS.to_vec();
    seen.push("patient_id");
    w.emulator
        .queue_athena_results(
            account(agency),
            REGION,
            &format!(
                "[{}, {}, {}]",
                result(&seen, &[]),
                result(&["_col0"], &[&["3"]]),
                result(&["stay_id"], &[])
            ),
        )
        .expect("queue");
    let (settings, policy) = w.load();
    let report = commands::verify(settings, policy, &w.sdk, None, None)
        .await
        .expect("verify runs");
    let got: Vec<(&str, &str, ProbeKind, Status)> = report
        .results
        .iter()
        .map(|r| {
            (
                r.principal.as_str(),
                r.table.rsplit('.').next().unwrap_or_default(),
                r.probe,
                r.status,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (stats, "hospital_stays", ProbeKind::Columns, Status::Pass),
            (stats, "other_stays", ProbeKind::Refused, Status::Fail),
            (agency, "hospital_stays", ProbeKind::Columns, Status::Fail),
            (agency, "hospital_stays", ProbeKind::Rows, Status::Fail),
            (agency, "other_stays", ProbeKind::Refused, Status::Fail),
        ],
        "{}",
        report.render()
    );
    assert!(!report.ok);
    let r = &report.results;
    assert!(r[1].detail.contains("readable"), "{}", r[1].detail);
    assert!(
        r[2].detail.contains("visible but not granted: patient_id"),
        "{}",
        r[2].detail
    );
    assert!(
        r[3].detail.contains("3 rows outside the filter"),
        "{}",
        r[3].detail
    );
    let text = report.render();
    assert!(text.contains("not ok: 4 of 5 probes do not hold"), "{text}");
    // Each query is labelled with the run and the principal, in the principal's own account.
    let q = athena_stats
        .get_query_execution()
        .query_execution_id(&r[0].query_ids[0])
        .send()
        .await
        .expect("query in the statistics role's account")
        .query_execution
        .expect("execution");
    let sql = q.query().unwrap_or_default();
    assert!(
        sql.starts_with(&format!(
            "-- lakemesh verify run={} principal={stats} probe=columns\n",
            report.run_id
        )) && sql.contains("SELECT * FROM \"")
            && sql.ends_with("\"hospital_stays\" LIMIT 0"),
        "{sql}"
    );
    assert_eq!(q.work_group(), Some(WORKGROUP));
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["ok"], false);
    assert_eq!(json["results"][3]["probe"], "rows");
    assert_eq!(json["results"][3]["status"], "fail");
}

#[tokio::test]
async fn verify_passes_once_a_grant_has_propagated() {
    let stats = "arn:aws:iam::210000000003:role/ministry-statistics";
    let agency = "arn:aws:iam::210000000004:role/regional-agency-occitanie";
    let w = world(20).await;
    w.write_policy(&policy(stats, agency));
    athena_as(&w, agency).await;
    // First the whole table is still visible (the grant not yet applied), then the granted
    // columns; no row outside the filter.
    let mut before = AGENCY_COLUMNS.to_vec();
    before.extend(["patient_id", "birth_year"]);
    w.emulator
        .queue_athena_results(
            account(agency),
            REGION,
            &format!(
                "[{}, {}, {}]",
                result(&before, &[]),
                result(&AGENCY_COLUMNS, &[]),
                result(&["_col0"], &[&["0"]])
            ),
        )
        .expect("queue");
    let (settings, policy) = w.load();
    let table = format!("{}.hospital_stays", w.database());
    let report = commands::verify(settings, policy, &w.sdk, Some(agency), Some(&table))
        .await
        .expect("verify runs");
    let text = report.render();
    assert!(report.ok, "{text}");
    assert_eq!(report.results.len(), 2, "{text}");
    assert_eq!(report.results[0].probe, ProbeKind::Columns);
    assert_eq!(report.results[0].attempts, 2, "{text}");
    assert_eq!(report.results[0].query_ids.len(), 2);
    assert_eq!(report.results[1].probe, ProbeKind::Rows);
    assert_eq!(report.results[1].status, Status::Pass);
    assert!(text.contains("ok: 2 probes hold"), "{text}");
}

#[tokio::test]
async fn the_binary_takes_another_policy_prints_json_and_exits_1_unless_all_hold() {
    let outsider = "arn:aws:iam::210000000005:role/outsider";
    let w = world(0).await;
    w.write_policy(&policy(
        "arn:aws:iam::210000000006:role/ministry-statistics",
        "arn:aws:iam::210000000007:role/regional-agency-occitanie",
    ));
    athena_as(&w, outsider).await;
    // A policy that gives the outsider DESCRIBE only: its one probe is a refusal, which the
    // emulator (no Lake Formation) cannot give.
    let other = w.dir.path().join("outsider.toml");
    std::fs::write(
        &other,
        format!(
            "[[grant]]\nprincipal = \"{outsider}\"\ntables = {{ domain = \"{}\" }}\npermissions = [\"DESCRIBE\"]\n",
            w.domain
        ),
    )
    .expect("policy");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_lakemesh-syncd"))
            .arg("--config")
            .arg(w.config_path())
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", w.dir.path())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .expect("run lakemesh-syncd")
    };
    let o = run(&["verify", "--policy", &other.to_string_lossy(), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["ok"], false);
    let results = v["results"].as_array().expect("results");
    assert_eq!(results.len(), 1, "{v}");
    assert_eq!(results[0]["principal"], outsider);
    assert_eq!(results[0]["probe"], "refused");
    assert_eq!(results[0]["status"], "fail");
    assert_eq!(results[0]["detail"], "readable: the query succeeded");
    // Without a [verify] section: a clear error.
    let mut bare = World::new(w.emulator, 3).await;
    bare.extra = "catalog_mode = \"direct\"".into();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_lakemesh-syncd"))
        .arg("--config")
        .arg({
            bare.write_policy(&policy(
                outsider,
                outsider.replace("outsider", "x").as_str(),
            ));
            bare.config_path()
        })
        .arg("verify")
        .env_clear()
        .env("HOME", bare.dir.path())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run lakemesh-syncd");
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no [verify] section"),
        "{o:?}"
    );
}
