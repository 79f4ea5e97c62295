//! Conversions read back: schema, types, values, partitions, pseudonyms, encodings.

use std::io::Read;

use arrow_schema::{DataType, TimeUnit};
use lakemesh_agent::contract::Contract;
use lakemesh_agent::convert::{ConvertOptions, convert_file};
use lakemesh_agent::pii::PseudonymKey;
use serde_json::{Value, json};

use crate::support::{Scratch, read_table};

const STAYS: &str = r#"
name = "stays"
domain = "hospital_activity"
csv = { delimiter = ";", decimal = ",", null_values = ["", "NA"] }
partition_by = [
  { column = "admission", transform = "year" },
  { column = "admission", transform = "month" },
]
columns = [
  { name = "stay_id", type = "bigint", source = "N° séjour" },
  { name = "dep", type = "string" },
  { name = "admission", type = "date", source = "Date entrée", formats = ["%d/%m/%Y", "%Y-%m-%d"] },
  { name = "seen_at", type = "timestamp", formats = ["%d/%m/%Y %H:%M:%S"] },
  { name = "cost", type = "decimal(12,2)" },
  { name = "los", type = "int" },
  { name = "ratio", type = "double" },
  { name = "urgent", type = "boolean", true_values = ["O"], false_values = ["N"] },
  { name = "category", type = "string", null_values = [""] },
]
"#;

const STAYS_CSV: &str = "N° séjour;dep;Date entrée;seen_at;cost;los;ratio;urgent;category\r\n\
1;01;03/04/2024;03/04/2024 08:05:09;1 234,50;2;0,5;O;NA\r\n\
2;2A;2024-04-30;30/04/2024 23:59:59;-0,5;0;1,25;N;A\r\n\
3;976;;;NA;;;;\r\n\
4;01;\"15/01/2023\";15/01/2023 00:00:00;\"  12,3 \";7;2;O;\"x;y\"\r\n";

#[test]
fn values_are_typed_exactly_and_day_first_is_honoured() {
    let s = Scratch::new();
    let contract = STAYS.replace("decimal = \",\"", "decimal = \",\", thousands = \" \"");
    let r = s.convert(&contract, "stays.csv", STAYS_CSV).unwrap();
    assert_eq!(r.rows_written, 4);
    assert_eq!(r.rows_rejected, 0);
    let t = read_table(&s.out().join("stays"));
    assert_eq!(t.rows.len(), 4);

    // Types: dates DATE, timestamps INT64 millis, decimals exactly (12,2), codes strings.
    assert_eq!(t.field_type("stay_id"), &DataType::Int64);
    assert_eq!(t.field_type("dep"), &DataType::Utf8);
    assert_eq!(t.field_type("admission"), &DataType::Date32);
    assert_eq!(
        t.field_type("seen_at"),
        &DataType::Timestamp(TimeUnit::Millisecond, None)
    );
    assert_eq!(t.field_type("cost"), &DataType::Decimal128(12, 2));
    assert_eq!(t.field_type("los"), &DataType::Int32);
    assert_eq!(t.field_type("ratio"), &DataType::Float64);
    assert_eq!(t.field_type("urgent"), &DataType::Boolean);
    assert!(
        t.schema.iter().all(|f| f.0 != "year" && f.0 != "month"),
        "partition keys are not in the body"
    );

    let by_id = |id: i64| {
        t.rows
            .iter()
            .find(|r| r["stay_id"] == json!(id))
            .unwrap()
            .clone()
    };
    let r1 = by_id(1);
    assert_eq!(r1["dep"], json!("01"));
    assert_eq!(
        r1["admission"],
        json!("2024-04-03"),
        "03/04/2024 is 3 April"
    );
    assert_eq!(r1["seen_at"], json!("2024-04-03 08:05:09"));
    assert_eq!(r1["cost"], json!("1234.50"));
    assert_eq!(r1["ratio"], json!(0.5));
    assert_eq!(r1["urgent"], json!(true));
    assert_eq!(
        r1["category"],
        json!("NA"),
        "a per-column null list keeps NA as a category"
    );
    assert_eq!(
        (r1["year"].clone(), r1["month"].clone()),
        (json!("2024"), json!("04"))
    );
    let r2 = by_id(2);
    assert_eq!(r2["dep"], json!("2A"));
    assert_eq!(r2["cost"], json!("-0.50"));
    assert_eq!(r2["urgent"], json!(false));
    let r3 = by_id(3);
    for c in [
        "admission",
        "seen_at",
        "cost",
        "los",
        "ratio",
        "urgent",
        "category",
    ] {
        assert_eq!(r3[c], Value::Null, "{c}");
    }
    assert_eq!(r3["year"], json!("__HIVE_DEFAULT_PARTITION__"));
    let r4 = by_id(4);
    assert_eq!(r4["cost"], json!("12.30"));
    assert_eq!(r4["category"], json!("x;y"));
    assert_eq!(r4["admission"], json!("2023-01-15"));

    // Field metadata keeps the exported header.
    let meta = &t.schema.iter().find(|f| f.0 == "stay_id").unwrap().2;
    assert_eq!(
        meta.get("lakemesh.source_name").map(String::as_str),
        Some("N° séjour")
    );
}

#[test]
fn layout_matches_the_s3_contract() {
    let s = Scratch::new();
    let r = s
        .convert(STAYS, "stays.csv", STAYS_CSV.replace("1 234,50", "1234,50"))
        .unwrap();
    let mut keys: Vec<String> = r.objects.iter().map(|o| o.key.clone()).collect();
    keys.sort();
    let b = &r.batch_id;
    assert_eq!(
        keys,
        vec![
            format!("stays/year=2023/month=01/part-{b}-0.parquet"),
            format!("stays/year=2024/month=04/part-{b}-0.parquet"),
            format!(
                "stays/year=__HIVE_DEFAULT_PARTITION__/month=__HIVE_DEFAULT_PARTITION__/part-{b}-0.parquet"
            ),
        ]
    );
    assert_eq!(b.len(), 16);
    assert!(r.source_sha256.starts_with(b.as_str()));
    // Nothing else under the product folder: no temp or marker files.
    let mut all = Vec::new();
    walk(&s.out().join("stays"), &mut all);
    assert_eq!(all.len(), 3, "{all:?}");
    // Object sizes and hashes are those of the files.
    for o in &r.objects {
        let bytes = std::fs::read(s.out().join(&o.key)).unwrap();
        assert_eq!(bytes.len() as u64, o.bytes);
        use sha2::Digest;
        assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), o.sha256);
    }
    // The manifest names every object.
    let m: Value = serde_json::from_slice(&std::fs::read(&r.manifest).unwrap()).unwrap();
    assert_eq!(m["objects"].as_array().unwrap().len(), 3);
    assert_eq!(m["partition_keys"], json!(["year", "month"]));
    assert_eq!(m["rows"], json!(4));
    assert_eq!(m["columns"][0]["source_name"], json!("N° séjour"));
    assert!(
        !s.out()
            .join("_lakemesh/staging")
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    );
}

fn walk(d: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out)
        } else {
            out.push(p)
        }
    }
}

#[test]
fn converting_the_same_file_again_replaces_its_objects() {
    let s = Scratch::new();
    let csv = STAYS_CSV.replace("1 234,50", "1234,50");
    let a = s.convert(STAYS, "stays.csv", &csv).unwrap();
    let b = s.convert(STAYS, "stays.csv", &csv).unwrap();
    assert_eq!(a.batch_id, b.batch_id);
    assert_eq!(
        read_table(&s.out().join("stays")).rows.len(),
        4,
        "no duplicate rows"
    );
}

#[test]
fn identity_partition_escapes_and_leaves_the_body() {
    let s = Scratch::new();
    let contract = r#"
name = "t"
domain = "d"
partition_by = [ { column = "region" } ]
columns = [ { name = "region", type = "string" }, { name = "n", type = "int" } ]
"#;
    let r = s
        .convert(contract, "x.csv", "region,n\n01,1\n\"a/b:c\",2\n,3\n01,4\n")
        .unwrap();
    let mut dirs: Vec<String> = r
        .objects
        .iter()
        .map(|o| o.key.rsplit_once('/').unwrap().0.to_string())
        .collect();
    dirs.sort();
    assert_eq!(
        dirs,
        vec![
            "t/region=01",
            "t/region=__HIVE_DEFAULT_PARTITION__",
            "t/region=a%2Fb%3Ac"
        ]
    );
    let t = read_table(&s.out().join("t"));
    assert_eq!(t.schema.len(), 1, "region lives in folder names only");
    assert_eq!(t.find("region", "a/b:c")["n"], json!(2));
}

#[test]
fn day_partitions_of_timestamps() {
    let s = Scratch::new();
    let contract = r#"
name = "t"
domain = "d"
partition_by = [ { column = "at", transform = "day", name = "dd" } ]
columns = [ { name = "at", type = "timestamp", formats = ["%Y-%m-%dT%H:%M:%S"] } ]
"#;
    let r = s
        .convert(contract, "x.csv", "at\n2024-02-29T23:59:59\n")
        .unwrap();
    assert!(
        r.objects[0].key.starts_with("t/dd=29/"),
        "{}",
        r.objects[0].key
    );
}

#[test]
fn header_only_file_gives_a_typed_empty_table() {
    let s = Scratch::new();
    let contract = r#"
name = "notes"
domain = "d"
columns = [ { name = "row_id", type = "bigint" }, { name = "chartdate", type = "date", formats = ["%Y-%m-%d"] }, { name = "text", type = "string" } ]
"#;
    let r = s
        .convert(contract, "n.csv", "row_id,chartdate,text\n")
        .unwrap();
    assert_eq!(r.rows_written, 0);
    assert_eq!(r.objects.len(), 1);
    let t = read_table(&s.out().join("notes"));
    assert_eq!(t.rows.len(), 0);
    assert_eq!(t.field_type("chartdate"), &DataType::Date32);
    assert_eq!(t.field_type("text"), &DataType::Utf8);
}

#[test]
fn quoting_newlines_crlf_final_line_and_blank_lines() {
    let s = Scratch::new();
    let contract = r#"
name = "t"
domain = "d"
columns = [ { name = "id", type = "int" }, { name = "note", type = "string" } ]
"#;
    let r = s
        .convert(
            contract,
            "x.csv",
            "id,note\r\n1,\"a, \"\"quoted\"\"\r\nsecond line\"\r\n2,  padded  \r\n\r\n3,last",
        )
        .unwrap();
    assert_eq!(r.rows_written, 3);
    let t = read_table(&s.out().join("t"));
    assert_eq!(
        t.column("note"),
        vec![
            json!("a, \"quoted\"\r\nsecond line"),
            json!("  padded  "),
            json!("last")
        ]
    );
}

#[test]
fn preamble_footer_and_headerless_files() {
    let s = Scratch::new();
    let contract = r#"
name = "t"
domain = "d"
csv = { header = false, skip_rows = 2, skip_footer_rows = 1 }
columns = [ { name = "code", type = "string", index = 0 }, { name = "opened", type = "date", index = 2, formats = ["%Y%m%d"] } ]
extra_columns = "ignore"
"#;
    let r = s.convert(contract, "x.csv", "Title line\nPeriod: 2020\n\"A81001\",\"X\",\"19740401\"\n\"A81002\",\"Y\",\"\"\nTotal,2,\n").unwrap();
    assert_eq!(r.rows_written, 2);
    let t = read_table(&s.out().join("t"));
    assert_eq!(t.find("code", "A81001")["opened"], json!("1974-04-01"));
    assert_eq!(t.find("code", "A81002")["opened"], Value::Null);
}

#[test]
fn legacy_and_utf16_encodings() {
    let s = Scratch::new();
    let contract = r#"
name = "t"
domain = "d"
csv = { delimiter = "auto" }
columns = [ { name = "nom", type = "string", source = "Nom établissement" }, { name = "dep", type = "string" } ]
"#;
    // windows-1252 (auto falls back), with a 0x92 apostrophe.
    let r = s
        .convert(
            contract,
            "w.csv",
            b"Nom \xe9tablissement;dep\nH\xf4pital l\x92Arbresle;69\n".as_slice(),
        )
        .unwrap();
    assert_eq!(r.encoding, "windows-1252");
    let t = read_table(&s.out().join("t"));
    assert_eq!(t.rows[0]["nom"], json!("Hôpital l’Arbresle"));

    // Excel "Unicode text": UTF-16LE with BOM and tabs.
    let s = Scratch::new();
    let mut bytes = vec![0xFF, 0xFE];
    for u in "Nom établissement\tdep\r\nÉlise\t2A\r\n".encode_utf16() {
        bytes.extend_from_slice(&u.to_le_bytes());
    }
    let r = s.convert(contract, "u.csv", bytes).unwrap();
    assert_eq!((r.encoding, r.delimiter), ("utf-16", b'\t'));
    let t = read_table(&s.out().join("t"));
    assert_eq!(t.rows[0]["dep"], json!("2A"));

    // UTF-8 BOM glued to the first header.
    let s = Scratch::new();
    let r = s
        .convert(contract, "b.csv", "\u{feff}Nom établissement;dep\nA;01\n")
        .unwrap();
    assert_eq!(r.encoding, "utf-8");
}

#[test]
fn broken_utf16_is_refused_on_any_thread_count() {
    // A review's case: an unpaired surrogate deep in a UTF-16 export, and the same export cut
    // short by an odd byte and by three bytes. Reading ahead on a thread must not lose the
    // decoder's error (it happens once: the decoder goes on after the bad bytes).
    let s = Scratch::new();
    let contract = r#"
name = "t"
domain = "d"
csv = { delimiter = ",", encoding = "utf-16" }
columns = [ { name = "id", type = "bigint" }, { name = "txt", type = "string" } ]
"#;
    let c = Contract::from_toml(contract, std::path::Path::new("t.toml")).unwrap();
    let mut text = String::from("id,txt\n");
    for i in 0..20_000 {
        text.push_str(&format!("{i},name{i}\n"));
    }
    let mut good = vec![0xFF, 0xFE];
    for u in text.encode_utf16() {
        good.extend_from_slice(&u.to_le_bytes());
    }
    let mark: Vec<u8> = "10000,name10000"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let at = good.windows(mark.len()).position(|w| w == mark).unwrap() + mark.len();
    let mut surrogate = good[..at].to_vec();
    surrogate.extend_from_slice(&[0x00, 0xD8]);
    surrogate.extend_from_slice(&good[at..]);
    let cases = [
        ("surrogate.csv", surrogate),
        ("odd.csv", good[..good.len() - 1].to_vec()),
        ("cut.csv", good[..good.len() - 3].to_vec()),
    ];
    for (name, bytes) in cases {
        let input = s.write(name, bytes);
        for threads in [1, 2] {
            let mut opts = ConvertOptions::new(s.path(&format!("out-{name}-{threads}")));
            opts.threads = threads;
            let e = convert_file(&c, &input, &opts).unwrap_err();
            assert!(
                e.to_string().contains("UTF-16"),
                "{name}, {threads} threads: {e}"
            );
            assert!(
                !s.path(&format!("out-{name}-{threads}/t")).exists(),
                "{name}, {threads} threads: nothing written"
            );
        }
    }
    // and the whole export converts on both
    let input = s.write("good.csv", good);
    for threads in [1, 2] {
        let mut opts = ConvertOptions::new(s.path(&format!("good-{threads}")));
        opts.threads = threads;
        assert_eq!(
            convert_file(&c, &input, &opts).unwrap().rows_written,
            20_000
        );
    }
}

#[test]
fn pseudonymisation() {
    let s = Scratch::new();
    let contract = r#"
name = "t"
domain = "d"
columns = [
  { name = "patient_id", type = "string", pii = "hmac" },
  { name = "birth_year", type = "date", source = "birth_date", formats = ["%d/%m/%Y"], pii = "year" },
  { name = "postcode", type = "string", pii = "truncate:2" },
  { name = "notes", type = "string", pii = "drop" },
  { name = "n", type = "int" },
]
"#;
    let c = Contract::from_toml(contract, std::path::Path::new("t.toml")).unwrap();
    let input = s.write("p.csv", "patient_id,birth_date,postcode,notes,n\nP001,31/12/1950,69003,secret,1\nP001,01/01/2001,2A004,,2\n,,,x,3\n");
    let key = PseudonymKey::from_bytes(b"0123456789abcdef0123456789abcdef");
    let mut opts = ConvertOptions::new(s.out());
    // Without a key, hmac columns are refused.
    assert!(
        convert_file(&c, &input, &opts)
            .unwrap_err()
            .to_string()
            .contains("pseudonym key")
    );
    opts.key = Some(key.clone());
    convert_file(&c, &input, &opts).unwrap();
    let t = read_table(&s.out().join("t"));
    assert!(
        t.schema.iter().all(|f| f.0 != "notes"),
        "dropped columns are not written"
    );
    assert_eq!(t.field_type("birth_year"), &DataType::Int32);
    let mut expected = String::new();
    key.pseudonym_into(b"P001", &mut expected);
    assert_eq!(
        t.column("patient_id"),
        vec![json!(expected.clone()), json!(expected), Value::Null]
    );
    assert_eq!(
        t.column("birth_year"),
        vec![json!(1950), json!(2001), Value::Null]
    );
    assert_eq!(
        t.column("postcode"),
        vec![json!("69"), json!("2A"), Value::Null]
    );
    // The raw identifier appears nowhere in the output.
    for f in &t.files {
        let mut bytes = Vec::new();
        std::fs::File::open(f)
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        assert!(!bytes.windows(4).any(|w| w == b"P001"));
        assert!(!bytes.windows(6).any(|w| w == b"secret"));
    }
}

#[test]
fn files_roll_at_the_target_size_and_partitions_share_one_schema() {
    let s = Scratch::new();
    let contract = r#"
name = "big"
domain = "d"
partition_by = [ { column = "k" } ]
output = { compression = "snappy", target_file_bytes = 1048576, row_group_bytes = 1048576 }
columns = [ { name = "k", type = "string" }, { name = "v", type = "string" }, { name = "x", type = "decimal(9,3)" } ]
"#;
    let mut csv = String::from("k,v,x\n");
    // High-entropy text so that 1 MiB of output needs many rows.
    let mut h: u64 = 1469598103934665603;
    for i in 0..120_000u64 {
        h ^= i;
        h = h.wrapping_mul(1099511628211);
        let k = if i % 50 == 0 { "small" } else { "large" };
        csv.push_str(&format!(
            "{k},{h:016x}{:016x},{}.5\n",
            h.rotate_left(17),
            i % 1000
        ));
    }
    let c = Contract::from_toml(contract, std::path::Path::new("t.toml")).unwrap();
    let input = s.write("b.csv", csv);
    let mut opts = ConvertOptions::new(s.out());
    opts.memory_budget_bytes = 2 * 1024 * 1024;
    opts.threads = 2;
    let r = convert_file(&c, &input, &opts).unwrap();
    let large: Vec<_> = r
        .objects
        .iter()
        .filter(|o| o.key.contains("k=large"))
        .collect();
    assert!(
        large.len() >= 2,
        "rolled: {:?}",
        r.objects
            .iter()
            .map(|o| (&o.key, o.bytes))
            .collect::<Vec<_>>()
    );
    let seqs: Vec<String> = large
        .iter()
        .map(|o| o.key.rsplit('-').next().unwrap().to_string())
        .collect();
    assert!(seqs.contains(&"0.parquet".to_string()) && seqs.contains(&"1.parquet".to_string()));
    let t = read_table(&s.out().join("big"));
    assert_eq!(t.rows.len(), 120_000);
    assert_eq!(t.field_type("x"), &DataType::Decimal128(9, 3));
    assert_eq!(r.rows_written, 120_000);
    assert_eq!(r.objects.iter().map(|o| o.rows).sum::<u64>(), 120_000);
}

#[test]
fn spilled_partitions_keep_every_row_once() {
    let s = Scratch::new();
    let contract = r#"
name = "sp"
domain = "d"
partition_by = [ { column = "d", transform = "year" }, { column = "d", transform = "month" } ]
columns = [ { name = "id", type = "bigint" }, { name = "d", type = "date", formats = ["%Y-%m-%d"] }, { name = "t", type = "string" } ]
"#;
    let mut csv = String::from("id,d,t\n");
    for i in 0..60_000u32 {
        csv.push_str(&format!(
            "{i},20{:02}-{:02}-{:02},text {i} padding padding padding\n",
            18 + i % 5,
            1 + (i / 5) % 12,
            1 + i % 28
        ));
    }
    let c = Contract::from_toml(contract, std::path::Path::new("t.toml")).unwrap();
    let input = s.write("s.csv", csv);
    for threads in [1, 2] {
        let mut opts = ConvertOptions::new(s.path(&format!("out{threads}")));
        opts.memory_budget_bytes = 256 * 1024; // forces spills
        opts.threads = threads;
        let r = convert_file(&c, &input, &opts).unwrap();
        assert_eq!(r.objects.len(), 60);
        let t = read_table(&s.path(&format!("out{threads}/sp")));
        let mut ids: Vec<i64> = t.column("id").iter().map(|v| v.as_i64().unwrap()).collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..60_000).collect::<Vec<i64>>());
        for row in t.rows.iter().take(500) {
            let d = row["d"].as_str().unwrap();
            assert_eq!(&d[..4], row["year"].as_str().unwrap());
            assert_eq!(&d[5..7], row["month"].as_str().unwrap());
        }
        assert!(
            t.row_groups <= 60 * 2,
            "row groups stay few: {}",
            t.row_groups
        );
    }
}

/// Ids of each partition file, in file order, with its row-group count.
/// Asserts that every partition file below `dir` is one row group holding its rows in file
/// order, and that together they hold ids `0..rows` once each; returns how many files.
fn one_row_group_each_in_file_order(dir: &std::path::Path, rows: i64) -> usize {
    let files = ids_by_file(dir);
    let mut all: Vec<i64> = Vec::new();
    for (f, row_groups, ids) in &files {
        assert_eq!(*row_groups, 1, "{f}: one row group");
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "{f}: rows in file order"
        );
        all.extend(ids);
    }
    all.sort_unstable();
    assert_eq!(all, (0..rows).collect::<Vec<i64>>());
    files.len()
}

fn ids_by_file(dir: &std::path::Path) -> Vec<(String, usize, Vec<i64>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if !p.is_dir() {
                continue;
            }
            let has_file = std::fs::read_dir(&p).unwrap().any(|e| {
                e.unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "parquet")
            });
            if has_file {
                // a partition folder: one file here
                let t = read_table(&p);
                assert_eq!(t.files.len(), 1, "{}", p.display());
                let ids = t.column("id").iter().map(|v| v.as_i64().unwrap()).collect();
                out.push((p.display().to_string(), t.row_groups, ids));
            } else {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

const MONTHLY: &str = r#"
name = "m"
domain = "d"
partition_by = [ { column = "d", transform = "year" }, { column = "d", transform = "month" } ]
columns = [ { name = "id", type = "bigint" }, { name = "d", type = "date", formats = ["%Y-%m-%d"] }, { name = "t", type = "string" } ]
"#;

#[test]
fn months_spread_over_the_file_make_one_row_group_each_in_file_order() {
    // the rows of a month come a few at a time all over the file: one row group per partition
    let s = Scratch::new();
    let mut csv = String::from("id,d,t\n");
    for i in 0..40_000u32 {
        csv.push_str(&format!("{i},2024-{:02}-15,row {i}\n", 1 + (i * 7) % 12));
    }
    let c = Contract::from_toml(MONTHLY, std::path::Path::new("t.toml")).unwrap();
    let input = s.write("spread.csv", csv);
    for threads in [1, 2] {
        let out = s.path(&format!("out{threads}"));
        let mut opts = ConvertOptions::new(&out);
        opts.memory_budget_bytes = 512 * 1024;
        opts.threads = threads;
        convert_file(&c, &input, &opts).unwrap();
        assert_eq!(one_row_group_each_in_file_order(&out.join("m"), 40_000), 12);
    }
}

#[test]
fn thousands_of_partitions_under_a_small_budget_give_one_row_group_each_on_any_thread_count() {
    // 3,000 days, rows shuffled: batches of a few rows each wait in the row spill, every
    // partition is still one row group, in file order, and the bytes do not depend on threads
    let s = Scratch::new();
    let contract = r#"
name = "d"
domain = "test"
partition_by = [
  { column = "d", transform = "year" },
  { column = "d", transform = "month" },
  { column = "d", transform = "day" },
]
columns = [ { name = "id", type = "bigint" }, { name = "d", type = "date", formats = ["%Y-%m-%d"] }, { name = "t", type = "string" } ]
"#;
    let mut csv = String::from("id,d,t\n");
    let days = 3_000u32;
    for i in 0..60_000u32 {
        let day = (i * 7919) % days;
        let (y, rest) = (2015 + day / 360, day % 360);
        csv.push_str(&format!(
            "{i},{y}-{:02}-{:02},t{}\n",
            1 + rest / 30,
            1 + rest % 28,
            i % 13
        ));
    }
    let c = Contract::from_toml(contract, std::path::Path::new("t.toml")).unwrap();
    let input = s.write("days.csv", csv);
    let mut hashes = Vec::new();
    for threads in [1, 3] {
        let out = s.path(&format!("out{threads}"));
        let mut opts = ConvertOptions::new(&out);
        opts.memory_budget_bytes = 8 * 1024 * 1024;
        opts.threads = threads;
        let r = convert_file(&c, &input, &opts).unwrap();
        let mut files: Vec<(String, String)> = r
            .objects
            .iter()
            .map(|o| (o.key.clone(), o.sha256.clone()))
            .collect();
        files.sort();
        hashes.push(files);
        one_row_group_each_in_file_order(&out.join("d"), 60_000);
    }
    assert!(hashes[0].len() > 2_000);
    assert_eq!(
        hashes[0], hashes[1],
        "the same bytes on one and three threads"
    );
}

#[test]
fn sorted_months_stream_into_row_groups_and_late_rows_keep_their_order() {
    // 70,000 rows a month arrive together (pages of its row group at once, streamed while the
    // file is read), then a few late rows of the first month come at the end
    let s = Scratch::new();
    let mut csv = String::from("id,d,t\n");
    let mut id = 0u32;
    for m in 1..=4 {
        for _ in 0..70_000 {
            csv.push_str(&format!("{id},2023-{m:02}-01,x\n"));
            id += 1;
        }
    }
    for _ in 0..10 {
        csv.push_str(&format!("{id},2023-01-31,late\n"));
        id += 1;
    }
    let c = Contract::from_toml(MONTHLY, std::path::Path::new("t.toml")).unwrap();
    let input = s.write("sorted.csv", csv);
    for threads in [1, 2] {
        let out = s.path(&format!("out{threads}"));
        let mut opts = ConvertOptions::new(&out);
        opts.memory_budget_bytes = 4 * 1024 * 1024;
        opts.threads = threads;
        let r = convert_file(&c, &input, &opts).unwrap();
        assert_eq!(r.rows_written, 280_010);
        let files = ids_by_file(&out.join("m"));
        assert_eq!(files.len(), 4, "{files:?}");
        let jan = &files[0];
        assert!(jan.0.contains("month=01"), "{}", jan.0);
        assert_eq!(jan.2.len(), 70_010);
        assert!(
            jan.2.windows(2).all(|w| w[0] < w[1]),
            "January in file order"
        );
        assert_eq!(*jan.2.last().unwrap(), 280_009);
        for (f, row_groups, ids) in &files[1..] {
            assert_eq!(ids.len(), 70_000, "{f}");
            assert!(*row_groups <= 2, "{f}: {row_groups} row groups");
        }
    }
}
