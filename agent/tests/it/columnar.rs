//! The column-at-a-time path (blocks of records) and the record-by-record path give the same
//! files, byte for byte, and the same counts, rejects and reports: on clean and broken exports,
//! with every block size, pseudonyms, null markers, quoted text, and rows of the wrong shape.
//! Byte for byte holds while the partition buffers are looked at in the same places (exports
//! of fewer rows than a look's 4,096, within the budget): on larger exports under memory
//! pressure the blocks are looked at after each block, so row groups and pages may be cut at
//! other rows; the values, their order and the counts are still the same (tested below).

use std::collections::BTreeMap;
use std::path::Path;

use lakemesh_agent::contract::Contract;
use lakemesh_agent::convert::{ConvertOptions, convert_file};
use lakemesh_agent::pii::PseudonymKey;
use sha2::{Digest, Sha256};

use crate::support::{Scratch, read_table};

const COLUMNS: &str = r#"
columns = [
  { name = "stay_id", type = "bigint" },
  { name = "code", type = "string", null_values = ["", "NA"] },
  { name = "admission", type = "date", formats = ["%d/%m/%Y", "%Y-%m-%d"] },
  { name = "seen_at", type = "timestamp", formats = ["%Y-%m-%d %H:%M:%S"] },
  { name = "cost", type = "decimal(10,2)" },
  { name = "los", type = "int" },
  { name = "ratio", type = "double" },
  { name = "urgent", type = "boolean" },
  { name = "patient", type = "string", pii = "hmac" },
  { name = "birth", type = "date", formats = ["%Y-%m-%d"], pii = "year" },
  { name = "zip", type = "string", pii = "truncate:2" },
  { name = "secret", type = "string", pii = "drop" },
  { name = "region", type = "string" },
  { name = "note", type = "string" },
]
"#;

/// xorshift: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// A messy export of `rows` rows; with `broken`, some rows are wrong (bad values, a missing or
/// an extra field, blank lines).
fn export(rows: usize, seed: u64, broken: bool) -> String {
    let mut r = Rng(seed);
    let mut out = String::from(
        "stay_id,code,admission,seen_at,cost,los,ratio,urgent,patient,birth,zip,secret,region,note\n",
    );
    for i in 0..rows {
        if broken && r.below(50) == 0 {
            match r.below(5) {
                0 => out.push_str(&format!("{i},01,31/02/2024,,,,,,,,,,r,\n")),
                1 => out.push_str(&format!("{i},01,01/01/2020\n")),
                2 => out.push_str(&format!("{i},01,01/01/2020,,,,,,,,,,r,x,extra\n")),
                3 => out.push_str(&format!("{i},01,01/01/2020,,,12x,,,,,,,r,\n")),
                _ => out.push_str("\n\n"),
            }
            continue;
        }
        let day = 1 + r.below(28);
        let month = 1 + r.below(12);
        let year = 2015 + r.below(10);
        let admission = if r.below(2) == 0 {
            format!("{day:02}/{month:02}/{year}")
        } else {
            format!("{year}-{month:02}-{day:02}")
        };
        let code = r.pick(&["01", "007", "2A", "", "NA", " 09 ", "0", "976"]);
        let seen = if r.below(4) == 0 {
            String::new()
        } else {
            format!(
                "{year}-{month:02}-{day:02} {:02}:{:02}:{:02}",
                r.below(24),
                r.below(60),
                r.below(60)
            )
        };
        let cost = match r.below(6) {
            0 => String::new(),
            1 => format!("-{}.{}", r.below(1000), r.below(10)),
            2 => format!("\"{}.{:02}\"", r.below(100_000), r.below(100)),
            _ => format!("{}.{:02}", r.below(100_000), r.below(100)),
        };
        let los = if r.below(7) == 0 {
            String::new()
        } else {
            r.below(400).to_string()
        };
        let ratio = r.pick(&["0.5", "1e3", "", "-2.25", "3"]);
        let urgent = r.pick(&["true", "false", "", "1", "0"]);
        let patient = format!("P{:06}", r.below(3000));
        let birth = format!(
            "{}-{:02}-{:02}",
            1920 + r.below(100),
            1 + r.below(12),
            1 + r.below(28)
        );
        let zip = r.pick(&["75001", "2A004", "", "97411", "É1"]);
        let region = r.pick(&["11", "84", "2A", "", "94", "x/y"]);
        let note = match r.below(8) {
            0 => "\"a, quoted \"\"note\"\"\"".to_string(),
            1 => "\"two\nlines\"".to_string(),
            2 => "réadmission < 30 jours".to_string(),
            3 => "x".repeat(150 + r.below(60) as usize),
            4 => "  padded  ".to_string(),
            _ => String::new(),
        };
        out.push_str(&format!(
            "{i},{code},{admission},{seen},{cost},{los},{ratio},{urgent},{patient},{birth},{zip},s{i},{region},{note}\n"
        ));
    }
    out
}

/// Every file of a conversion's output (Parquet, rejects, report), by path, with the bytes of
/// the Parquet files and rejects as digests, plus the counts; the report's timing left out.
fn outcome(
    contract: &str,
    csv: &str,
    columnar: bool,
    block_rows: usize,
) -> BTreeMap<String, String> {
    let s = Scratch::new();
    let c = Contract::from_toml(contract, Path::new("test.toml")).unwrap();
    let input = s.write("stays.csv", csv);
    let mut opts = ConvertOptions::new(s.out());
    opts.key = Some(PseudonymKey::from_bytes(
        b"0123456789abcdef0123456789abcdef",
    ));
    opts.columnar = columnar;
    opts.block_rows = block_rows;
    opts.memory_budget_bytes = 4 << 20;
    let mut got = BTreeMap::new();
    match convert_file(&c, &input, &opts) {
        Ok(r) => {
            got.insert(
                "counts".into(),
                format!("{} {} {}", r.rows_read, r.rows_written, r.rows_rejected),
            );
        }
        Err(e) => {
            let dir = s.dir.path().to_string_lossy().into_owned();
            got.insert("error".into(), e.to_string().replace(&dir, "<dir>"));
        }
    }
    let mut files = Vec::new();
    walk(&s.out(), &mut files);
    for f in files {
        let rel = f
            .strip_prefix(s.out())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let bytes = std::fs::read(&f).unwrap();
        let value = if rel.ends_with(".json") {
            // the error report and manifest carry times: compare their other fields
            let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            strip_times(&mut v);
            v.to_string()
        } else {
            hex::encode(Sha256::digest(&bytes))
        };
        got.insert(rel, value);
    }
    got
}

fn strip_times(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|k, _| !k.contains("time") && !k.ends_with("_at") && k != "seconds");
            m.values_mut().for_each(strip_times);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_times),
        _ => {}
    }
}

fn walk(d: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(rd) = std::fs::read_dir(d) else {
        return;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// The record-by-record outcome, and the same from blocks of several sizes.
fn same_either_way(contract: &str, csv: &str) -> BTreeMap<String, String> {
    let want = outcome(contract, csv, false, 1000);
    for block_rows in [1, 2, 7, 64, 1000, 1 << 14] {
        let got = outcome(contract, csv, true, block_rows);
        assert_eq!(got, want, "blocks of {block_rows} rows");
    }
    want
}

#[test]
fn clean_exports_give_the_same_bytes_from_blocks_of_any_size() {
    let csv = export(3000, 7, false);
    for partition in [
        r#"partition_by = [{ column = "admission", transform = "year" }, { column = "admission", transform = "month" }]"#,
        r#"partition_by = [{ column = "region", transform = "identity" }, { column = "seen_at", transform = "day" }]"#,
        "partition_by = []",
    ] {
        let contract = format!("name = \"stays\"\ndomain = \"d\"\n{partition}\n{COLUMNS}");
        let got = same_either_way(&contract, &csv);
        assert_eq!(got["counts"], "3000 3000 0", "{partition}");
        assert!(got.keys().filter(|k| k.ends_with(".parquet")).count() >= 1);
    }
}

#[test]
fn broken_exports_give_the_same_rejects_and_reports_from_blocks_of_any_size() {
    let csv = export(3000, 11, true);
    let quarantine = format!(
        "name = \"stays\"\ndomain = \"d\"\non_error = \"quarantine_rows\"\nmax_rejected_ratio = 0.5\n\
         partition_by = [{{ column = \"admission\", transform = \"year\" }}]\n{COLUMNS}"
    );
    let got = same_either_way(&quarantine, &csv);
    assert!(got.contains_key("stays.csv.rejects.csv"), "{got:?}");
    let reject = format!(
        "name = \"stays\"\ndomain = \"d\"\n\
         partition_by = [{{ column = \"admission\", transform = \"year\" }}]\n{COLUMNS}"
    );
    let got = same_either_way(&reject, &csv);
    assert!(got.contains_key("error"), "{got:?}");
    assert!(got.contains_key("stays.csv.error.json"), "{got:?}");
}

#[test]
fn footers_headerless_files_and_single_column_exports_agree_too() {
    let csv = export(500, 3, false);
    let footer =
        format!("name = \"stays\"\ndomain = \"d\"\ncsv = {{ skip_footer_rows = 2 }}\n{COLUMNS}");
    same_either_way(&footer, &csv);
    // without a header, columns are found by position
    let mut indexed = String::new();
    for (i, line) in COLUMNS.lines().enumerate() {
        match line.strip_suffix(" },") {
            Some(col) => indexed.push_str(&format!("{col}, index = {} }},\n", i - 2)),
            None => {
                indexed.push_str(line);
                indexed.push('\n');
            }
        }
    }
    let headerless =
        format!("name = \"stays\"\ndomain = \"d\"\ncsv = {{ header = false }}\n{indexed}");
    let body = csv.split_once('\n').unwrap().1;
    let got = same_either_way(&headerless, body);
    assert_eq!(got["counts"], "500 500 0");
    let single =
        "name = \"codes\"\ndomain = \"d\"\ncolumns = [{ name = \"code\", type = \"string\" }]\n";
    let got = same_either_way(single, "code\n01\n\n007\n \n2A\n");
    assert!(
        got["counts"].starts_with("4 4 0") || got["counts"].starts_with("3 3 0"),
        "{got:?}"
    );
}

#[test]
fn large_exports_under_memory_pressure_give_the_same_values_either_way() {
    let csv = export(30_000, 11, true);
    let contract = format!(
        "name = \"stays\"\ndomain = \"d\"\non_error = \"quarantine_rows\"\nmax_rejected_ratio = 0.5\n\
         partition_by = [{{ column = \"admission\", transform = \"year\" }}, \
         {{ column = \"admission\", transform = \"month\" }}]\n{COLUMNS}"
    );
    let c = Contract::from_toml(&contract, Path::new("test.toml")).unwrap();
    let run = |columnar: bool| {
        let s = Scratch::new();
        let input = s.write("stays.csv", &csv);
        let mut opts = ConvertOptions::new(s.out());
        opts.key = Some(PseudonymKey::from_bytes(
            b"0123456789abcdef0123456789abcdef",
        ));
        opts.columnar = columnar;
        // a small budget: buffers handed over many times, at other rows on each path
        opts.memory_budget_bytes = 1 << 20;
        let r = convert_file(&c, &input, &opts).unwrap();
        let t = read_table(&s.out().join("stays"));
        let rejects = std::fs::read_to_string(s.out().join("stays.csv.rejects.csv")).unwrap();
        (
            r.rows_read,
            r.rows_written,
            r.rows_rejected,
            t.rows,
            rejects,
        )
    };
    let want = run(false);
    let got = run(true);
    assert!(
        want.2 > 0 && want.1 > 25_000,
        "{} written, {} rejected",
        want.1,
        want.2
    );
    assert_eq!((got.0, got.1, got.2), (want.0, want.1, want.2));
    assert_eq!(got.4, want.4, "rejects");
    assert_eq!(got.3.len(), want.3.len());
    for (i, (g, w)) in got.3.iter().zip(&want.3).enumerate() {
        assert_eq!(g, w, "row {i}");
    }
}
