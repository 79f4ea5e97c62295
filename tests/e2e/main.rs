//! The README's main job as a test: the whole mesh on one machine, with assertions on every
//! step's outcome.
//!
//! Two producers (the CHU's Windows-1252 `;` stays with day-first dates and decimal commas, the
//! insurer's UTF-8 comma-separated claims) drop their sample exports (`examples/mesh/`); their
//! agents convert, upload and announce; one `lakemesh-syncd run --once` catalogs and governs.
//! The agent and daemon binaries are the ones `cargo test --workspace` builds beside this test.
//! Then the scenario runs a second time on the same folder, as a newcomer re-running the demo
//! would, and must give the same result.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use lakemesh_e2e::mesh::{AGENCY, AUDITOR, Mesh, MeshOptions, STATISTICS};
use lakemesh_e2e::report::{FileReport, Report, TableReport};
use lakemesh_e2e::sibling_binary;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;

fn options(work_dir: &Path) -> MeshOptions {
    let find = |name: &str| {
        sibling_binary(name).unwrap_or_else(|| {
            panic!(
                "{name} is not built beside this test: run `cargo test --workspace` (scripts/test)"
            )
        })
    };
    MeshOptions {
        work_dir: work_dir.to_path_buf(),
        agent_bin: find("lakemesh-agent"),
        syncd_bin: find("lakemesh-syncd"),
        examples: PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo"))
            .join("../examples/mesh"),
    }
}

fn table<'a>(report: &'a Report, db: &str, name: &str) -> &'a TableReport {
    report
        .tables
        .iter()
        .find(|t| t.database == db && t.table == name)
        .unwrap_or_else(|| panic!("no table {db}.{name} in {:#?}", report.tables))
}

fn file<'a>(report: &'a Report, name: &str) -> &'a FileReport {
    report
        .files
        .iter()
        .find(|f| f.file == name)
        .unwrap_or_else(|| panic!("no file {name} in {:#?}", report.files))
}

/// Every row of one Parquet object of the emulator's S3, as `(column, value)` lists.
async fn parquet_rows(mesh: &Mesh, bucket: &str, key: &str) -> Vec<Vec<(String, Field)>> {
    let sdk = mesh.emulator.sdk_config().await;
    let body = mesh
        .emulator
        .s3(&sdk)
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get s3://{bucket}/{key}: {e}"))
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    let reader = SerializedFileReader::new(Bytes::from(body.to_vec())).unwrap();
    reader
        .get_row_iter(None)
        .unwrap()
        .map(|r| {
            r.unwrap()
                .get_column_iter()
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect()
        })
        .collect()
}

fn value<'a>(row: &'a [(String, Field)], column: &str) -> &'a Field {
    &row.iter()
        .find(|(n, _)| n == column)
        .unwrap_or_else(|| panic!("no column {column} in {row:?}"))
        .1
}

/// One full run: set-up, drop, deliver, sync; returns the report and the mesh (still running).
async fn run_once(work_dir: &Path) -> (Mesh, Report) {
    let mesh = Mesh::up(options(work_dir)).await.expect("mesh set-up");
    assert_eq!(mesh.sites.len(), 2);
    let dropped = mesh.drop_exports().expect("drop the exports");
    assert_eq!(dropped, 5, "3 stays exports and 2 claims exports");
    mesh.deliver(Duration::from_secs(240))
        .expect("the agents settle every file");
    let log = mesh.sync().expect("lakemesh-syncd run --once");
    assert!(!log.contains("ERROR"), "the daemon logged an error:\n{log}");
    let plan = mesh.plan().expect("lakemesh-syncd plan");
    assert!(
        plan.contains("no changes"),
        "after a sync, Lake Formation holds the policy; plan says:\n{plan}"
    );
    let mut report = Report::collect(&mesh).await.expect("read the mesh back");
    report
        .check_access(&mesh)
        .await
        .expect("preview and verify");
    (mesh, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_mesh_end_to_end_and_again() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("mesh");
    let (mesh, report) = run_once(&work).await;

    // Everything the run writes is under its folder, the daemon's state store included.
    assert!(work.join("ministry/state/syncd.sqlite").is_file());

    // -- Where each source file ended up.
    assert_eq!(report.files.len(), 5, "{:#?}", report.files);
    for name in [
        "SEJOURS_2024_T1.csv",
        "SEJOURS_2024_T2.csv",
        "remboursements_2024_01.csv",
        "remboursements_2024_02.csv",
    ] {
        let f = file(&report, name);
        assert_eq!(f.state, "done", "{f:#?}");
        assert!(f.batch.is_some(), "{f:#?}");
        assert!(!f.objects.is_empty(), "{f:#?}");
        let archived = PathBuf::from(f.now_at.as_deref().expect("archived path"));
        assert!(archived.is_file(), "{} is archived", archived.display());
        assert!(
            archived.starts_with(work.join(&f.producer).join("state/archive")),
            "{}",
            archived.display()
        );
    }
    assert_eq!(file(&report, "SEJOURS_2024_T1.csv").rows, Some(1200));
    assert_eq!(file(&report, "SEJOURS_2024_T2.csv").rows, Some(1100));
    assert_eq!(file(&report, "remboursements_2024_01.csv").rows, Some(1500));
    assert_eq!(file(&report, "remboursements_2024_02.csv").rows, Some(1400));

    // The bad export: in failed/, untouched, with its report naming line, column, value, reason.
    let bad = file(&report, "SEJOURS_2024_T3.csv");
    assert_eq!(bad.state, "failed", "{bad:#?}");
    assert!(
        bad.objects.is_empty() && bad.rows.is_none(),
        "nothing published: {bad:#?}"
    );
    let failed = PathBuf::from(bad.now_at.as_deref().unwrap());
    assert_eq!(
        failed,
        work.join("chu-lyon/state/failed/hospital_stays/SEJOURS_2024_T3.csv")
    );
    assert_eq!(
        std::fs::read(&failed).unwrap(),
        std::fs::read(
            PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo"))
                .join("../examples/mesh/chu-lyon/exports/SEJOURS_2024_T3.csv")
        )
        .unwrap(),
        "the failed file is kept byte for byte"
    );
    let first = bad.first_error.as_deref().unwrap();
    for part in ["line 24", "admission_date", "31/06/2024"] {
        assert!(first.contains(part), "{part:?} in {first:?}");
    }
    let error_json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(bad.error_report.as_deref().unwrap()).unwrap(),
    )
    .unwrap();
    let e0 = &error_json["errors"][0];
    assert_eq!(e0["line"], 24, "{error_json:#}");
    assert_eq!(e0["value"], "31/06/2024", "{error_json:#}");
    assert_eq!(e0["source_header"], "Date entrée", "{error_json:#}");
    for site in &mesh.sites {
        let left: Vec<_> = std::fs::read_dir(site.inbox()).unwrap().collect();
        assert!(
            left.is_empty(),
            "{} keeps nothing in its inbox: {left:?}",
            site.spec.id
        );
    }

    // -- Catalog: databases by type and origin, tables with Athena types, partitions, rows.
    let dbs: BTreeSet<&str> = report.tables.iter().map(|t| t.database.as_str()).collect();
    assert_eq!(
        dbs,
        BTreeSet::from(["hospital_activity_chu", "insurance_claims_mutuelle"])
    );
    let stays = table(&report, "hospital_activity_chu", "hospital_stays");
    assert_eq!(
        stays.location,
        "s3://chu-lyon-datamesh/products/hospital_stays/"
    );
    assert_eq!(stays.partition_keys, ["year", "month"]);
    assert_eq!(
        stays.partitions,
        (1..=6)
            .map(|m| format!("year=2024/month={m:02}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(stays.rows, 2300, "T1 and T2, never the rejected T3");
    for c in [
        "stay_id bigint",
        "patient_id string",
        "birth_year int",
        "admission_date date",
        "department_code string",
        "region_code string",
        "total_cost decimal(12,2)",
    ] {
        assert!(
            stays.columns.iter().any(|x| x == c),
            "{c} in {:?}",
            stays.columns
        );
    }
    assert!(
        !stays
            .columns
            .iter()
            .any(|c| c.starts_with("year ") || c.starts_with("month ")),
        "partition columns are not body columns: {:?}",
        stays.columns
    );
    let claims = table(&report, "insurance_claims_mutuelle", "claims");
    assert_eq!(
        claims.location,
        "s3://mutuelle-sud-datamesh/products/claims/"
    );
    assert_eq!(
        claims.partitions,
        ["year=2024/month=01", "year=2024/month=02"]
    );
    assert_eq!(claims.rows, 2900);
    for c in [
        "claim_id string",
        "member_id string",
        "provider_finess string",
        "service_date date",
        "amount_billed decimal(10,2)",
    ] {
        assert!(
            claims.columns.iter().any(|x| x == c),
            "{c} in {:?}",
            claims.columns
        );
    }

    // -- The data itself: codes keep their zeros, day-first dates, pseudonyms, no free text.
    let t1 = file(&report, "SEJOURS_2024_T1.csv");
    let march = t1
        .objects
        .iter()
        .find(|k| k.contains("year=2024/month=03/"))
        .expect("a March object for T1");
    let rows = parquet_rows(&mesh, "chu-lyon-datamesh", march).await;
    assert!(!rows.is_empty());
    let source = latin1_lossy(
        &std::fs::read(
            PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo"))
                .join("../examples/mesh/chu-lyon/exports/SEJOURS_2024_T1.csv"),
        )
        .unwrap(),
    );
    // the first data line: 24000001;796837684694;14/12/1956;F;19/03/2024;...;2A;94;...
    let first_line: Vec<&str> = source.lines().nth(1).unwrap().split(';').collect();
    let stay = rows
        .iter()
        .find(|r| matches!(value(r, "stay_id"), Field::Long(v) if v.to_string() == first_line[0]))
        .expect("the first stay is in the March object");
    let patient = value(stay, "patient_id").to_string();
    assert!(
        !patient.contains(first_line[1]),
        "patient number pseudonymised: {patient}"
    );
    assert_eq!(
        patient.trim_matches('"').len(),
        64,
        "HMAC-SHA256 hex: {patient}"
    );
    assert_eq!(value(stay, "birth_year"), &Field::Int(1956));
    assert_eq!(value(stay, "department_code"), &Field::Str("2A".into()));
    assert_eq!(value(stay, "region_code"), &Field::Str("94".into()));
    let admission = value(stay, "admission_date").to_string();
    assert!(
        admission.contains("2024-03-19"),
        "19/03/2024 read day-first: {admission}"
    );
    let names: Vec<&str> = stay.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        !names.contains(&"year") && !names.contains(&"month"),
        "partition columns are in the path only: {names:?}"
    );
    assert!(
        !names.iter().any(|n| n.contains("comment")),
        "free text is not published: {names:?}"
    );
    assert!(
        rows.iter()
            .any(|r| matches!(value(r, "department_code"), Field::Str(s) if s.starts_with('0'))),
        "leading-zero department codes stay strings"
    );

    // -- Governance: per role, tables, columns and rows.
    let grants = |principal: &str, table: &str| -> Vec<_> {
        report
            .access
            .iter()
            .filter(|a| a.principal == principal && a.table == table)
            .collect()
    };
    let stays = "hospital_activity_chu.hospital_stays";
    let claims = "insurance_claims_mutuelle.claims";
    // The statistics department: every row of both, never a personal column.
    for (t, excluded) in [
        (stays, "all but birth_year, patient_id"),
        (claims, "all but member_id"),
    ] {
        let s = grants(STATISTICS, t);
        let select = s
            .iter()
            .find(|a| a.permissions.iter().any(|p| p == "SELECT"))
            .unwrap_or_else(|| panic!("statistics SELECT on {t}: {:#?}", report.access));
        assert_eq!(select.columns, excluded, "{select:#?}");
        assert_eq!(select.rows, "all", "{select:#?}");
        assert!(
            s.iter()
                .any(|a| a.permissions.iter().any(|p| p == "DESCRIBE")),
            "statistics DESCRIBE on {t}"
        );
    }
    // The regional agency: region 76's stays only, through a data cells filter; no claims.
    let a = grants(AGENCY, stays);
    assert_eq!(a.len(), 1, "{a:#?}");
    assert_eq!(a[0].permissions, ["SELECT"]);
    assert_eq!(
        a[0].columns, "all but birth_year, patient_id",
        "{:#?}",
        a[0]
    );
    assert_eq!(a[0].rows, "region_code = '76'", "{:#?}", a[0]);
    assert!(
        a[0].filter.is_some(),
        "a data cells filter carries the rows"
    );
    assert!(grants(AGENCY, claims).is_empty(), "{:#?}", report.access);
    // The auditors: the claims without the member number; no hospital data.
    let a = grants(AUDITOR, claims);
    let select = a
        .iter()
        .find(|a| a.permissions.iter().any(|p| p == "SELECT"))
        .unwrap_or_else(|| panic!("auditor SELECT on claims: {:#?}", report.access));
    assert_eq!(select.columns, "all but member_id");
    assert_eq!(select.rows, "all");
    assert!(grants(AUDITOR, stays).is_empty(), "{:#?}", report.access);
    assert!(
        report
            .access
            .iter()
            .all(|a| [STATISTICS, AGENCY, AUDITOR].contains(&a.principal.as_str())),
        "nobody else holds anything: {:#?}",
        report.access
    );
    assert_eq!(report.queue_waiting, 0, "the daemon drained the queue");
    assert_eq!(report.dead_letters, 0, "no announcement was dead-lettered");

    // -- preview: the policy enforced locally on the Parquet in S3.
    let preview = |principal: &str, table: &str| {
        report
            .previews
            .iter()
            .find(|p| p.principal == principal && p.table == table)
            .unwrap_or_else(|| panic!("no preview of {table} for {principal}"))
    };
    let p = preview(STATISTICS, stays);
    assert_eq!((p.rows_visible, p.rows_total), (Some(2300), Some(2300)));
    assert_eq!(p.hidden_columns, ["patient_id", "birth_year"]);
    let p = preview(AGENCY, stays);
    let (seen, total) = (p.rows_visible.unwrap(), p.rows_total.unwrap());
    assert!(seen > 0 && seen < total, "{p:?}");
    assert_eq!(p.hidden_columns, ["patient_id", "birth_year"]);
    assert_eq!(p.row_filter.as_deref(), Some("(region_code = '76')"));
    assert!(preview(AGENCY, claims).refused.is_some());
    assert!(preview(AUDITOR, stays).refused.is_some());
    assert_eq!(preview(AUDITOR, claims).hidden_columns, ["member_id"]);
    // Region 76's share of the stays, counted from the objects themselves.
    let mut in_76 = 0;
    for f in ["SEJOURS_2024_T1.csv", "SEJOURS_2024_T2.csv"] {
        for key in &file(&report, f).objects {
            for row in parquet_rows(&mesh, "chu-lyon-datamesh", key).await {
                in_76 += u64::from(value(&row, "region_code") == &Field::Str("76".into()));
            }
        }
    }
    assert_eq!(seen, in_76, "the agency sees exactly region 76's stays");

    // -- verify: every column and row probe holds against what Lake Formation holds; the
    // refusal probes fail on the emulator, which does not enforce Lake Formation.
    assert_eq!(report.probes.len(), 7, "{:#?}", report.probes);
    for p in &report.probes {
        if p.probe == "refused" {
            assert_eq!(p.status, "fail", "{p:?}");
            assert!(p.detail.contains("readable"), "{p:?}");
        } else {
            assert_eq!(p.status, "pass", "{p:?}");
        }
    }
    assert!(
        report
            .probes
            .iter()
            .any(|p| p.principal == AGENCY && p.probe == "rows" && p.table == stays)
    );

    // The readable rendering names all of it.
    let text = report.render();
    for part in [
        "hospital_activity_chu",
        "insurance_claims_mutuelle",
        "2300 rows",
        "region_code = '76'",
        "all but member_id",
        "FAILED: line 24",
    ] {
        assert!(text.contains(part), "{part:?} in:\n{text}");
    }
    let first_report = report;
    drop(mesh);

    // -- A second run on the same folder, with no cleaning up by hand, gives the same mesh.
    let (_mesh, again) = run_once(&work).await;
    assert_eq!(again.tables, first_report.tables);
    assert_eq!(again.access.len(), first_report.access.len());
    let states = |r: &Report| -> Vec<(String, String, Option<u64>)> {
        r.files
            .iter()
            .map(|f| (f.file.clone(), f.state.clone(), f.rows))
            .collect()
    };
    assert_eq!(states(&again), states(&first_report));
}

/// The sample exports are Windows-1252; their first line and the fields checked here are
/// ASCII except `°`/`é`, which this maps byte by byte to keep the test free of a decoder.
fn latin1_lossy(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}
