//! `preview` on the sample mesh (examples/mesh): the hospital's stays converted by the agent's
//! own converter, previewed for each role of `examples/mesh/ministry/policy.toml`, locally and
//! from S3 on the emulator; what each role sees is checked against counts read independently
//! from the Parquet files.

use std::path::{Path, PathBuf};
use std::process::Command;

use arrow_array::cast::AsArray;
use lakemesh_agent::contract::Contract;
use lakemesh_agent::convert::{ConvertOptions, convert_file};
use lakemesh_agent::pii::PseudonymKey;
use lakemesh_shared::testbed::{Emulator, repo_root};
use lakemesh_syncd::commands;
use lakemesh_syncd::policy::TableRef;
use lakemesh_syncd::preview::{DataSource, PreviewError, preview};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

const STATISTICS: &str = "arn:aws:iam::111122223333:role/ministry-statistics";
const AGENCY: &str = "arn:aws:iam::444455556666:role/regional-agency-occitanie";
const AUDITOR: &str = "arn:aws:iam::777788889999:role/insurance-auditor";

fn mesh() -> PathBuf {
    repo_root().join("examples").join("mesh")
}

fn stays_table() -> TableRef {
    TableRef {
        database: "hospital_activity_chu".into(),
        table: "hospital_stays".into(),
    }
}

/// Converts the hospital's first-quarter export with its contract; returns the output root.
fn convert_stays(out: &Path) -> PathBuf {
    let contract = Contract::from_file(&mesh().join("chu-lyon").join("hospital_stays.toml"))
        .expect("contract");
    let mut opts = ConvertOptions::new(out);
    opts.key = Some(PseudonymKey::from_bytes(&[7u8; 32]));
    let input = mesh()
        .join("chu-lyon")
        .join("exports")
        .join("SEJOURS_2024_T1.csv");
    let report = convert_file(&contract, &input, &opts).expect("convert");
    assert_eq!(report.rows_written, 1200);
    out.to_owned()
}

/// Rows per region_code value, read from the files without the evaluator.
fn rows_of_region(root: &Path, region: &str) -> (u64, u64) {
    let (mut total, mut matching) = (0, 0);
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                let file = std::fs::File::open(&p).expect("open parquet");
                let r = ParquetRecordBatchReaderBuilder::try_new(file)
                    .expect("parquet")
                    .build()
                    .expect("reader");
                for b in r {
                    let b = b.expect("batch");
                    total += b.num_rows() as u64;
                    let col = b.column_by_name("region_code").expect("region_code");
                    matching += col
                        .as_string::<i32>()
                        .iter()
                        .filter(|v| *v == Some(region))
                        .count() as u64;
                }
            }
        }
    }
    (total, matching)
}

#[tokio::test]
async fn regional_role_sees_only_its_region_and_never_an_excluded_column() {
    let dir = tempfile::tempdir().unwrap();
    let out = convert_stays(dir.path());
    let (settings, policy) =
        commands::load(&mesh().join("ministry").join("syncd.toml")).expect("sample config");
    let (total, in_76) = rows_of_region(&out.join("hospital_stays"), "76");
    assert!(in_76 > 0 && in_76 < total, "{in_76} of {total}");

    let source = DataSource::Local(out.clone());
    let p = preview(
        &settings,
        &policy,
        None,
        &stays_table(),
        AGENCY,
        &source,
        50,
    )
    .await
    .expect("agency preview");
    let names: Vec<&str> = p.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "stay_id",
            "sex",
            "admission_date",
            "discharge_date",
            "department_code",
            "region_code",
            "diagnosis_icd10",
            "length_of_stay",
            "total_cost",
            "year",
            "month"
        ]
    );
    assert_eq!(p.hidden_columns, ["patient_id", "birth_year"]);
    assert_eq!((p.rows_total, p.rows_visible), (total, in_76));
    assert_eq!(p.sample.len(), 50);
    let region = names.iter().position(|n| *n == "region_code").unwrap();
    assert!(p.sample.iter().all(|r| r[region].as_deref() == Some("76")));
    let text = p.render();
    let columns_line = text.lines().find(|l| l.starts_with("columns (")).unwrap();
    let header = text.lines().find(|l| l.starts_with("stay_id ")).unwrap();
    for hidden in ["patient_id", "birth_year"] {
        assert!(
            !columns_line.contains(hidden) && !header.contains(hidden),
            "{text}"
        );
    }
    assert!(
        text.contains(&format!("rows: {in_76} of {total} visible")),
        "{text}"
    );

    // The statistics role: every row, the personal columns hidden.
    let p = preview(
        &settings,
        &policy,
        None,
        &stays_table(),
        STATISTICS,
        &source,
        3,
    )
    .await
    .expect("statistics preview");
    assert_eq!((p.rows_total, p.rows_visible), (total, total));
    assert_eq!(p.hidden_columns, ["patient_id", "birth_year"]);
    assert_eq!(p.row_filter, None);

    // The auditors have no grant on the stays: refused, as Lake Formation would.
    let e = preview(
        &settings,
        &policy,
        None,
        &stays_table(),
        AUDITOR,
        &source,
        3,
    )
    .await
    .expect_err("auditor must be refused");
    assert!(matches!(e, PreviewError::Refused { .. }), "{e}");
    assert!(e.to_string().contains("no grant"), "{e}");
}

#[tokio::test]
async fn preview_reads_the_product_from_s3() {
    let e = Emulator::shared().expect("emulator");
    let sdk = e.sdk_config().await;
    let bucket = e.fresh_bucket("chu").await.expect("bucket");
    let dir = tempfile::tempdir().unwrap();
    let out = convert_stays(&dir.path().join("out"));
    let s3 = e.s3(&sdk);
    let mut stack = vec![out.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                let key = format!(
                    "products/{}",
                    p.strip_prefix(&out).unwrap().to_string_lossy()
                );
                s3.put_object()
                    .bucket(&bucket)
                    .key(key)
                    .body(std::fs::read(&p).unwrap().into())
                    .send()
                    .await
                    .expect("put");
            }
        }
    }
    // The sample configuration with this test's bucket and the emulator's endpoint.
    let config = std::fs::read_to_string(mesh().join("ministry").join("syncd.toml"))
        .unwrap()
        .replace("\"chu-lyon-datamesh\"", &format!("{bucket:?}"))
        .replace("http://127.0.0.1:5055", e.endpoint())
        .replace(
            "policy_file = \"policy.toml\"",
            &format!(
                "policy_file = {:?}",
                mesh().join("ministry").join("policy.toml")
            ),
        );
    let path = dir.path().join("syncd.toml");
    std::fs::write(&path, config).unwrap();
    let (settings, policy) = commands::load(&path).expect("config");
    let (total, in_76) = rows_of_region(&out.join("hospital_stays"), "76");
    let p = commands::preview(
        &settings,
        &policy,
        &sdk,
        "hospital_activity_chu.hospital_stays",
        AGENCY,
        &format!("s3://{bucket}/products/hospital_stays/"),
        5,
    )
    .await
    .expect("preview from S3");
    assert_eq!((p.rows_total, p.rows_visible), (total, in_76));
    assert!(p.files > 1, "{}", p.files);
    assert!(!p.columns.iter().any(|c| c.name == "patient_id"));

    // The binary: JSON output, and a refusal is an error exit with the reason.
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_lakemesh-syncd"))
            .arg("--config")
            .arg(&path)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .expect("run lakemesh-syncd")
    };
    let data = out.to_string_lossy().into_owned();
    let o = run(&[
        "preview",
        "--table",
        "hospital_activity_chu.hospital_stays",
        "--principal",
        AGENCY,
        "--data",
        &data,
        "--limit",
        "2",
        "--json",
    ]);
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["rows_visible"], in_76);
    assert_eq!(v["sample"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["row_filter"], "(region_code = '76')");
    let o = run(&[
        "preview",
        "--table",
        "hospital_activity_chu.hospital_stays",
        "--principal",
        AUDITOR,
        "--data",
        &data,
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(AUDITOR) && err.contains("no grant"), "{err}");
}
