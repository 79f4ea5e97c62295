//! The team corpus of real health exports (`../shared/corpus/files`): each file converts with
//! the values `MANIFEST.md` calls out, or is rejected with a located error where the export
//! itself is broken. Skipped with a notice when the corpus is absent.

use std::collections::BTreeSet;

use lakemesh_agent::contract::Contract;
use lakemesh_agent::convert::{ConvertError, ConvertOptions, convert_file};
use serde_json::Value;

use crate::support::{Row, Scratch, corpus_dir, fixture, read_table};

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[test]
fn corpus_files_convert_as_the_manifest_says() {
    let Some(dir) = corpus_dir() else {
        eprintln!("NOTICE: corpus folder not found (set LAKEMESH_CORPUS); corpus test skipped");
        return;
    };
    let expected: Vec<Value> =
        serde_json::from_slice(&std::fs::read(fixture("corpus/expected.json")).unwrap()).unwrap();
    let mut failures = Vec::new();
    for e in &expected {
        let file = e["file"].as_str().unwrap();
        let input = dir.join(file);
        if !input.exists() {
            eprintln!("NOTICE: {file} absent from the corpus; skipped");
            continue;
        }
        let contract = Contract::from_file(&fixture(&format!(
            "corpus/{}",
            e["contract"].as_str().unwrap()
        )))
        .unwrap_or_else(|err| panic!("{file}: {err}"));
        let s = Scratch::new();
        let result = convert_file(&contract, &input, &ConvertOptions::new(s.out()));
        let ctx = format!("{file} ({})", e["contract"].as_str().unwrap());
        match (e["outcome"].as_str().unwrap(), result) {
            ("rejected", Err(ConvertError::Rejected(rej))) => {
                if let Some(want) = e.get("reject_contains").and_then(Value::as_str)
                    && !rej.first.reason.contains(want)
                {
                    failures.push(format!(
                        "{ctx}: first error {:?} lacks {want:?}",
                        rej.first.reason
                    ));
                }
                if let Some(line) = e.get("reject_line").and_then(Value::as_u64)
                    && rej.first.line != line
                {
                    failures.push(format!(
                        "{ctx}: first error at line {} not {line}",
                        rej.first.line
                    ));
                }
            }
            ("rejected", other) => failures.push(format!(
                "{ctx}: expected a rejection, got {:?}",
                other.map(|r| r.rows_written)
            )),
            ("ok", Err(err)) => failures.push(format!("{ctx}: {err}")),
            ("ok", Ok(r)) => {
                let t = read_table(&s.out().join(&contract.name));
                let rows = e["rows"].as_u64().unwrap();
                if r.rows_written != rows || t.rows.len() as u64 != rows {
                    failures.push(format!(
                        "{ctx}: {} rows written, {} read back, {rows} expected",
                        r.rows_written,
                        t.rows.len()
                    ));
                }
                for check in e["checks"].as_array().into_iter().flatten() {
                    if let Some(w) = check.get("where").and_then(Value::as_object) {
                        let hits: Vec<&Row> = t
                            .rows
                            .iter()
                            .filter(|row| {
                                w.iter()
                                    .all(|(k, v)| row.get(k).is_some_and(|x| same(x, v)))
                            })
                            .collect();
                        if hits.len() != 1 {
                            failures.push(format!("{ctx}: {} rows match {w:?}", hits.len()));
                            continue;
                        }
                        for (k, v) in check["expect"].as_object().unwrap() {
                            let got = hits[0].get(k).cloned().unwrap_or(Value::Null);
                            if !same(&got, v) {
                                failures
                                    .push(format!("{ctx}: where {w:?}: {k} = {got}, expected {v}"));
                            }
                        }
                    } else if let Some(col) = check.get("column").and_then(Value::as_str) {
                        let values = t.column(col);
                        if let Some(n) = check.get("null_count").and_then(Value::as_u64) {
                            let got = values.iter().filter(|v| v.is_null()).count() as u64;
                            if got != n {
                                failures
                                    .push(format!("{ctx}: {col} has {got} nulls, expected {n}"));
                            }
                        }
                        if let Some(n) = check.get("distinct_count").and_then(Value::as_u64) {
                            let got = values
                                .iter()
                                .map(|v| v.to_string())
                                .collect::<BTreeSet<_>>()
                                .len() as u64;
                            if got != n {
                                failures.push(format!(
                                    "{ctx}: {col} has {got} distinct values, expected {n}"
                                ));
                            }
                        }
                    }
                }
                eprintln!(
                    "corpus: {file}: {} rows, {} files",
                    r.rows_written,
                    r.objects.len()
                );
            }
            (o, _) => panic!("unknown outcome {o}"),
        }
    }
    assert!(
        failures.is_empty(),
        "corpus failures:\n{}",
        failures.join("\n")
    );
}
