//! The Parquet we write, read by an independent reader (pyarrow, and DuckDB when present) in the
//! project's test venv (`scripts/pyenv`). `.ci/run` sets `LAKEMESH_PYTHON`; without it the test
//! is skipped with a notice, unless `LAKEMESH_REQUIRE_PYTHON=1` makes that a failure.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::Scratch;

fn python() -> Option<String> {
    match std::env::var("LAKEMESH_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            assert!(
                std::env::var("LAKEMESH_REQUIRE_PYTHON").as_deref() != Ok("1"),
                "LAKEMESH_PYTHON is not set but LAKEMESH_REQUIRE_PYTHON=1"
            );
            eprintln!(
                "NOTICE: LAKEMESH_PYTHON not set (VENV=$(scripts/pyenv); export LAKEMESH_PYTHON=$VENV/bin/python); independent reader test skipped"
            );
            None
        }
    }
}

#[test]
fn pyarrow_and_duckdb_read_the_same_rows_types_and_values() {
    let Some(py) = python() else { return };
    let s = Scratch::new();
    let contract = r#"
name = "stays"
domain = "hospital_activity"
csv = { delimiter = ";", decimal = "," }
partition_by = [ { column = "adm", transform = "year" }, { column = "adm", transform = "month" } ]
columns = [
  { name = "stay_id", type = "bigint" },
  { name = "dep", type = "string" },
  { name = "adm", type = "date", formats = ["%d/%m/%Y"] },
  { name = "seen", type = "timestamp", formats = ["%d/%m/%Y %H:%M:%S"] },
  { name = "cost", type = "decimal(12,2)" },
  { name = "los", type = "int" },
  { name = "ok", type = "boolean" },
  { name = "ratio", type = "double" },
]
"#;
    let csv = "stay_id;dep;adm;seen;cost;los;ok;ratio\n\
1;01;03/04/2024;03/04/2024 10:11:12;1234,50;3;true;0,25\n\
2;2A;04/03/2146;04/03/2146 00:00:01;-7,00;;false;\n\
3;976;;;;1;;1e3\n";
    s.convert(contract, "s.csv", csv).unwrap();
    let script =
        std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo"))
            .join("../scripts/parquet_dump.py");
    let out = Command::new(&py)
        .arg(&script)
        .args(["--rows", "--duckdb", "--sort", "stay_id"])
        .arg(s.out().join("stays"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["rows"], json!(3));
    let types: Vec<(String, String)> = d["schema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let ty = |n: &str| {
        types
            .iter()
            .find(|t| t.0 == n)
            .map(|t| t.1.clone())
            .unwrap()
    };
    assert_eq!(ty("stay_id"), "int64");
    assert_eq!(ty("dep"), "string");
    assert_eq!(ty("adm"), "date32[day]");
    assert_eq!(ty("seen"), "timestamp[ms]");
    assert_eq!(ty("cost"), "decimal128(12, 2)");
    assert_eq!(ty("los"), "int32");
    assert_eq!(ty("ok"), "bool");
    assert_eq!(ty("ratio"), "double");
    let recs = d["records"].as_array().unwrap();
    assert_eq!(recs[0]["dep"], json!("01"));
    assert_eq!(recs[0]["adm"], json!("2024-04-03"));
    assert_eq!(recs[0]["seen"], json!("2024-04-03 10:11:12"));
    assert_eq!(recs[0]["cost"], json!("1234.50"));
    assert_eq!(recs[0]["year"], json!("2024"));
    assert_eq!(recs[0]["month"], json!("04"));
    assert_eq!(recs[1]["seen"], json!("2146-03-04 00:00:01"));
    assert_eq!(recs[1]["cost"], json!("-7.00"));
    assert_eq!(recs[2]["dep"], json!("976"));
    assert_eq!(recs[2]["ratio"], json!(1000.0));
    assert_eq!(recs[2]["year"], json!("__HIVE_DEFAULT_PARTITION__"));
    assert_eq!(d["duckdb"]["rows"], json!(3), "{}", d["duckdb"]);
}
