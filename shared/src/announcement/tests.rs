//! Unit tests of the announcement contract: round trips, versioning, every validation rule,
//! attributes, the claim check, and agreement with the JSON Schema and its examples.

use std::path::PathBuf;

use super::*;

const SHA: &str = "544836084c3108e9aa9a9cf8e1dcfc1a7d2ff07d3f3ab5a6b1b0e0c7e4a1f2d3";
const OBJ_SHA: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn object(year: &str, month: &str, n: u32, rows: u64) -> Object {
    Object {
        key: format!(
            "products/hospital_stays/year={year}/month={month}/part-544836084c3108e9-{n}.parquet"
        ),
        bytes: 1234,
        rows,
        sha256: OBJ_SHA.into(),
        partition: Partition(vec![
            ("year".into(), year.into()),
            ("month".into(), month.into()),
        ]),
    }
}

fn sample() -> Announcement {
    Announcement {
        version: 1,
        announcement_id: "544836084c3108e9".into(),
        producer_id: "chu-lyon".into(),
        domain: "hospital_activity".into(),
        product: "hospital_stays".into(),
        location: "s3://chu-lyon-datamesh/products/hospital_stays/".into(),
        partition_keys: vec!["year".into(), "month".into()],
        columns: vec![
            Column {
                name: "patient_id".into(),
                ty: "string".into(),
                pii: "hmac".into(),
                source_name: "NUM_PATIENT".into(),
            },
            Column {
                name: "total_cost".into(),
                ty: "decimal(12,2)".into(),
                pii: "keep".into(),
                source_name: "Coût total".into(),
            },
        ],
        objects: Some(vec![
            object("2026", "11", 0, 600),
            object("2026", "12", 1, 400),
        ]),
        manifest: None,
        rows: 1000,
        source: Source {
            file: "sejours_2026_11.csv".into(),
            bytes: 5678,
            sha256: SHA.into(),
        },
        produced_at: "2026-12-03T10:00:00Z".into(),
        agent_version: "0.1.0".into(),
    }
}

fn invalid_field(a: &Announcement) -> (String, String) {
    match a.validate() {
        Err(AnnouncementError::Invalid { field, reason, .. }) => (field, reason),
        other => panic!("expected an invalid field, got {other:?}"),
    }
}

fn schema_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo")).join("schema")
}

// ---- round trips and shape ------------------------------------------------------------------

#[test]
fn sample_is_valid_and_round_trips() {
    let a = sample();
    a.validate().unwrap();
    let json = a.to_json();
    assert_eq!(Announcement::from_json(json.as_bytes()).unwrap(), a);
}

#[test]
fn json_has_the_design_field_order_and_ordered_partitions() {
    let json = sample().to_json();
    let order = [
        "\"version\":1",
        "\"announcement_id\"",
        "\"producer_id\"",
        "\"domain\"",
        "\"product\"",
        "\"location\"",
        "\"partition_keys\"",
        "\"columns\"",
        "\"objects\"",
        "\"rows\"",
        "\"source\"",
        "\"produced_at\"",
        "\"agent_version\"",
    ];
    let positions: Vec<usize> = order.iter().map(|f| json.find(f).expect(f)).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{json}");
    assert!(
        json.contains(r#""partition":{"year":"2026","month":"11"}"#),
        "{json}"
    );
    assert!(json.contains(
        r#"{"name":"patient_id","type":"string","pii":"hmac","source_name":"NUM_PATIENT"}"#
    ));
    assert!(!json.contains("manifest"), "{json}");
}

#[test]
fn design_example_parses() {
    // DESIGN.md "Announcement v1", with its "..." filled in.
    let body = r#"{ "version": 1, "announcement_id": "544836084c3108e9", "producer_id": "chu-lyon",
  "domain": "hospital_activity", "product": "hospital_stays",
  "location": "s3://chu-lyon-datamesh/products/hospital_stays/",
  "partition_keys": ["year", "month"],
  "columns": [ { "name": "patient_id", "type": "string", "pii": "hmac", "source_name": "NUM_PATIENT" } ],
  "objects": [ { "key": "products/hospital_stays/year=2026/month=11/part-544836084c3108e9-0.parquet", "bytes": 1234, "rows": 1000, "sha256": "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0", "partition": {"year": "2026", "month": "11"} } ],
  "rows": 1000, "source": { "file": "sejours_2026_11.csv", "bytes": 5678, "sha256": "544836084c3108e9aa9a9cf8e1dcfc1a7d2ff07d3f3ab5a6b1b0e0c7e4a1f2d3" },
  "produced_at": "2026-12-03T10:00:00Z", "agent_version": "0.1.0" }"#;
    let a = Announcement::from_json(body.as_bytes()).unwrap();
    assert_eq!(a.objects.as_ref().map(Vec::len), Some(1));
    assert_eq!(a.columns[0].source_name, "NUM_PATIENT");
}

// ---- versioning and shape errors ------------------------------------------------------------

/// An edit of an announcement's JSON.
type JsonEdit = fn(&mut serde_json::Value);

fn body_with(f: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
    f(&mut v);
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn other_versions_are_refused_before_anything_else() {
    for (version, found) in [
        (serde_json::json!(2), "2"),
        (serde_json::json!(0), "0"),
        (serde_json::json!("1"), "\"1\""),
        (serde_json::json!(1.5), "1.5"),
        (serde_json::Value::Null, "null"),
    ] {
        let body = body_with(|v| {
            v["version"] = version;
            // A v2 body may well have fields v1 does not know: the version is what is reported.
            v["shiny_new_field"] = serde_json::json!(true);
        });
        let e = Announcement::from_json(&body).unwrap_err();
        assert_eq!(
            e,
            AnnouncementError::UnsupportedVersion {
                id: "544836084c3108e9".into(),
                found: found.into()
            }
        );
        assert!(e.to_string().contains("this build reads version 1"), "{e}");
    }
    let body = body_with(|v| {
        v.as_object_mut().unwrap().remove("version");
    });
    let e = Announcement::from_json(&body).unwrap_err();
    assert!(
        e.to_string().contains("version missing is not supported"),
        "{e}"
    );
}

#[test]
fn unknown_fields_are_refused_everywhere() {
    let cases: [(&str, JsonEdit); 4] = [
        ("extra", |v| v["extra"] = serde_json::json!(1)),
        ("colour", |v| {
            v["columns"][0]["colour"] = serde_json::json!("red")
        }),
        ("etag", |v| v["objects"][0]["etag"] = serde_json::json!("x")),
        ("mtime", |v| v["source"]["mtime"] = serde_json::json!(0)),
    ];
    for (field, f) in cases {
        let e = Announcement::from_json(&body_with(f)).unwrap_err();
        match &e {
            AnnouncementError::Malformed { id, reason } => {
                assert_eq!(id, "544836084c3108e9");
                assert!(reason.contains(&format!("unknown field `{field}`")), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn shape_errors() {
    let cases: [(&str, JsonEdit); 6] = [
        ("missing field `rows`", |v| {
            v.as_object_mut().unwrap().remove("rows");
        }),
        ("invalid type: null", |v| {
            v["objects"] = serde_json::Value::Null
        }),
        ("invalid value: integer `-1`", |v| {
            v["objects"][0]["bytes"] = serde_json::json!(-1)
        }),
        ("expected an object of partition key to string value", |v| {
            v["objects"][0]["partition"] = serde_json::json!("x");
        }),
        ("invalid type: string", |v| {
            v["columns"] = serde_json::json!("a")
        }),
        ("missing field `sha256`", |v| {
            v["source"].as_object_mut().unwrap().remove("sha256");
        }),
    ];
    for (want, f) in cases {
        let e = Announcement::from_json(&body_with(f))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{want}: {e}");
    }
    // serde_json::Value keeps one of two equal keys, so the duplicate is written into the text.
    let twice = sample().to_json().replacen(
        r#""year":"2026","month""#,
        r#""year":"2026","year":"2025","month""#,
        1,
    );
    let e = Announcement::from_json(twice.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(e.contains("partition key \"year\" appears twice"), "{e}");
    let e = Announcement::from_json(b"{\"version\": 1,").unwrap_err();
    assert!(
        matches!(e, AnnouncementError::Malformed { ref id, .. } if id == "?"),
        "{e}"
    );
    let e = Announcement::from_json(b"[1]").unwrap_err();
    assert!(matches!(e, AnnouncementError::Malformed { .. }), "{e}");
}

// ---- validation rules -----------------------------------------------------------------------

type Mutation = fn(&mut Announcement);

#[test]
fn every_rule_names_its_field() {
    let cases: Vec<(Mutation, &str, &str)> = vec![
        (
            |a| a.announcement_id = "544836084C3108E9".into(),
            "announcement_id",
            "16 lowercase hex",
        ),
        (
            |a| a.announcement_id = "544836".into(),
            "announcement_id",
            "16 lowercase hex",
        ),
        (
            |a| a.announcement_id = "0000000000000000".into(),
            "announcement_id",
            "first 16 hex digits of source.sha256",
        ),
        (
            |a| a.producer_id = "CHU Lyon".into(),
            "producer_id",
            "a-z 0-9 - _",
        ),
        (
            |a| a.producer_id = String::new(),
            "producer_id",
            "a-z 0-9 - _",
        ),
        (
            |a| a.domain = "Hospital".into(),
            "domain",
            "must start with a letter",
        ),
        (
            |a| a.product = "hospital-stays".into(),
            "product",
            "contains '-'",
        ),
        (
            |a| a.location = "https://chu-lyon-datamesh/products/hospital_stays/".into(),
            "location",
            "must start with s3://",
        ),
        (
            |a| a.location = "s3://chu-lyon-datamesh/products/hospital_stays".into(),
            "location",
            "must end with '/'",
        ),
        (
            |a| a.location = "s3://chu-lyon-datamesh/products/other/".into(),
            "location",
            "product folder \"hospital_stays\"",
        ),
        (
            |a| a.location = "s3://Bad_Bucket/products/hospital_stays/".into(),
            "location",
            "not a valid S3 bucket name",
        ),
        (
            |a| a.location = "s3://chu-lyon-datamesh/pro ducts/hospital_stays/".into(),
            "location",
            "contains ' '",
        ),
        (
            |a| a.location = "s3://chu-lyon-datamesh//hospital_stays/".into(),
            "location",
            "empty, . or ..",
        ),
        (
            |a| a.location = "s3://chu-lyon-datamesh".into(),
            "location",
            "no key after the bucket",
        ),
        (
            |a| a.partition_keys[1] = "year".into(),
            "partition_keys[1]",
            "listed twice",
        ),
        (
            |a| a.partition_keys[0] = "Year".into(),
            "partition_keys[0]",
            "must start with a letter",
        ),
        (
            |a| a.partition_keys = (0..33).map(|i| format!("k{i}")).collect(),
            "partition_keys",
            "at most 32",
        ),
        (|a| a.columns.clear(), "columns", "0 columns"),
        (
            |a| a.columns[1].name = "patient_id".into(),
            "columns[1].name",
            "listed twice",
        ),
        (
            |a| a.columns[1].name = "year".into(),
            "columns[1].name",
            "also a partition key",
        ),
        (
            |a| a.columns[0].name = "Patient".into(),
            "columns[0].name",
            "must start with a letter",
        ),
        (
            |a| a.columns[0].ty = "varchar".into(),
            "columns[0].type",
            "not one of string",
        ),
        (
            |a| a.columns[0].ty = "STRING".into(),
            "columns[0].type",
            "not one of string",
        ),
        (
            |a| a.columns[1].ty = "decimal(39,2)".into(),
            "columns[1].type",
            "precision must be 1 to 38",
        ),
        (
            |a| a.columns[1].ty = "decimal(5,6)".into(),
            "columns[1].type",
            "scale 0 to the precision",
        ),
        (
            |a| a.columns[1].ty = "decimal(12, 2)".into(),
            "columns[1].type",
            "not one of",
        ),
        (
            |a| a.columns[1].ty = "decimal(012,2)".into(),
            "columns[1].type",
            "not one of",
        ),
        (
            |a| a.columns[0].pii = "drop".into(),
            "columns[0].pii",
            "dropped column",
        ),
        (
            |a| a.columns[0].pii = "truncate:0".into(),
            "columns[0].pii",
            "not one of",
        ),
        (
            |a| a.columns[0].pii = "md5".into(),
            "columns[0].pii",
            "not one of",
        ),
        (
            |a| a.columns[0].source_name = String::new(),
            "columns[0].source_name",
            "empty",
        ),
        (
            |a| a.columns[0].source_name = "x".repeat(1025),
            "columns[0].source_name",
            "at most 1024",
        ),
        (
            |a| a.columns[0].source_name = "a\nb".into(),
            "columns[0].source_name",
            "control character",
        ),
        (|a| a.objects = None, "objects", "missing"),
        (
            |a| a.manifest = Some("s3://x/y".into()),
            "manifest",
            "both `objects` and `manifest`",
        ),
        (
            |a| {
                a.objects.as_mut().unwrap()[0].key =
                    "products/other/year=2026/month=11/part-544836084c3108e9-0.parquet".into()
            },
            "objects[0].key",
            "must lie in the folder of its partition",
        ),
        (
            |a| {
                a.objects.as_mut().unwrap()[0].key =
                    "products/hospital_stays/year=2026/month=12/part-544836084c3108e9-0.parquet"
                        .into()
            },
            "objects[0].key",
            "month=11/",
        ),
        (
            |a| {
                a.objects.as_mut().unwrap()[0].key =
                    "products/hospital_stays/year=2026/month=11/part-0000000000000000-0.parquet"
                        .into()
            },
            "objects[0].key",
            "part-544836084c3108e9-N.parquet",
        ),
        (
            |a| {
                a.objects.as_mut().unwrap()[0].key =
                    "products/hospital_stays/year=2026/month=11/x/part-544836084c3108e9-0.parquet"
                        .into()
            },
            "objects[0].key",
            "part-544836084c3108e9-N.parquet",
        ),
        (
            |a| {
                a.objects.as_mut().unwrap()[0].key =
                    "products/hospital_stays/year=2026/month=11/part-544836084c3108e9-.parquet"
                        .into()
            },
            "objects[0].key",
            "N.parquet",
        ),
        (
            |a| {
                a.objects.as_mut().unwrap()[0].key = format!(
                    "products/hospital_stays/year=2026/month=11/part-544836084c3108e9-{}.parquet",
                    "1".repeat(1000)
                )
            },
            "objects[0].key",
            "over 1024 bytes",
        ),
        (
            |a| {
                let o = a.objects.as_mut().unwrap();
                o[1] = o[0].clone();
            },
            "objects[1].key",
            "listed twice",
        ),
        (
            |a| a.objects.as_mut().unwrap()[0].bytes = 0,
            "objects[0].bytes",
            "not a size",
        ),
        (
            |a| a.objects.as_mut().unwrap()[0].bytes = MAX_OBJECT_BYTES + 1,
            "objects[0].bytes",
            "not a size",
        ),
        (
            |a| a.objects.as_mut().unwrap()[0].rows = MAX_COUNT + 1,
            "objects[0].rows",
            "over",
        ),
        (
            |a| a.objects.as_mut().unwrap()[0].sha256 = OBJ_SHA.to_uppercase(),
            "objects[0].sha256",
            "64 lowercase hex",
        ),
        (
            |a| a.objects.as_mut().unwrap()[0].sha256 = "abc".into(),
            "objects[0].sha256",
            "64 lowercase hex",
        ),
        (
            |a| a.objects.as_mut().unwrap()[0].partition.0.reverse(),
            "objects[0].partition",
            "in that order",
        ),
        (
            |a| {
                a.objects.as_mut().unwrap()[0].partition.0.pop();
            },
            "objects[0].partition",
            "must be partition_keys",
        ),
        (
            |a| a.objects.as_mut().unwrap()[0].partition.0[1].1 = "1/2".into(),
            "objects[0].partition.month",
            "escaped as %2F",
        ),
        (
            |a| a.objects.as_mut().unwrap()[0].partition.0[1].1 = String::new(),
            "objects[0].partition.month",
            "__HIVE_DEFAULT_PARTITION__",
        ),
        (
            |a| a.objects.as_mut().unwrap()[0].partition.0[1].1 = "x".repeat(1025),
            "objects[0].partition.month",
            "over 1024",
        ),
        (
            |a| {
                a.objects = Some(
                    (0..=MAX_OBJECTS)
                        .map(|_| object("2026", "11", 0, 0))
                        .collect(),
                )
            },
            "objects",
            "at most 100000",
        ),
        (
            |a| a.rows = 999,
            "rows",
            "999 but the objects hold 1000 rows",
        ),
        (|a| a.rows = MAX_COUNT + 1, "rows", "but the objects hold"),
        (
            |a| a.source.file = "exports/a.csv".into(),
            "source.file",
            "not a file name",
        ),
        (
            |a| a.source.file = "..".into(),
            "source.file",
            "not a file name",
        ),
        (|a| a.source.file = String::new(), "source.file", "empty"),
        (
            |a| a.source.file = "x".repeat(256),
            "source.file",
            "at most 255",
        ),
        (|a| a.source.bytes = 0, "source.bytes", "not a size"),
        (
            |a| a.source.sha256 = "g".repeat(64),
            "source.sha256",
            "64 lowercase hex",
        ),
        (
            |a| a.produced_at = "2026-12-03 10:00:00Z".into(),
            "produced_at",
            "not a UTC time",
        ),
        (
            |a| a.produced_at = "2026-12-03T10:00:00+01:00".into(),
            "produced_at",
            "not a UTC time",
        ),
        (
            |a| a.produced_at = "2026-02-30T10:00:00Z".into(),
            "produced_at",
            "not a UTC time",
        ),
        (
            |a| a.produced_at = "2026-12-03T24:00:00Z".into(),
            "produced_at",
            "not a UTC time",
        ),
        (
            |a| a.produced_at = "2026-12-03T10:00:00.Z".into(),
            "produced_at",
            "not a UTC time",
        ),
        (
            |a| a.produced_at = "2026-12-03T10:00:00.1234567890Z".into(),
            "produced_at",
            "not a UTC time",
        ),
        (
            |a| a.agent_version = String::new(),
            "agent_version",
            "not a version",
        ),
        (
            |a| a.agent_version = "0.1.0 beta".into(),
            "agent_version",
            "not a version",
        ),
        (
            |a| a.agent_version = ".1".into(),
            "agent_version",
            "not a version",
        ),
    ];
    for (i, (mutate, field, reason)) in cases.into_iter().enumerate() {
        let mut a = sample();
        mutate(&mut a);
        let (got_field, got_reason) = invalid_field(&a);
        assert_eq!(got_field, field, "case {i}: {got_reason}");
        assert!(
            got_reason.contains(reason),
            "case {i} ({field}): {got_reason:?} lacks {reason:?}"
        );
        // The same rule holds when reading a body.
        let e = Announcement::from_json(a.to_json().as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("`{field}`")), "case {i}: {e}");
    }
}

#[test]
fn valid_variants() {
    let cases: Vec<Mutation> = vec![
        // No partitions, at the bucket's root.
        |a| {
            a.location = "s3://chu-lyon-datamesh/hospital_stays/".into();
            a.partition_keys.clear();
            a.objects = Some(vec![Object {
                key: "hospital_stays/part-544836084c3108e9-0.parquet".into(),
                partition: Partition::default(),
                ..object("2026", "11", 0, 1000)
            }]);
        },
        // Escaped and default partition values.
        |a| {
            let o = &mut a.objects.as_mut().unwrap()[0];
            o.partition.0[1].1 = "__HIVE_DEFAULT_PARTITION__".into();
            o.key = "products/hospital_stays/year=2026/month=__HIVE_DEFAULT_PARTITION__/part-544836084c3108e9-0.parquet".into();
        },
        |a| {
            let o = &mut a.objects.as_mut().unwrap()[0];
            o.partition.0[1].1 = "a%2Fb".into();
            o.key = "products/hospital_stays/year=2026/month=a%2Fb/part-544836084c3108e9-0.parquet"
                .into();
        },
        // A deeper prefix, and fractional seconds.
        |a| {
            a.location = "s3://chu-lyon-datamesh/mesh/v1/hospital_stays/".into();
            for o in a.objects.as_mut().unwrap() {
                o.key = o.key.replacen("products/", "mesh/v1/", 1);
            }
            a.produced_at = "2024-02-29T23:59:59.123Z".into();
        },
        // Every type and pii form.
        |a| {
            for (i, ty) in [
                "string",
                "int",
                "bigint",
                "double",
                "boolean",
                "date",
                "timestamp",
                "decimal(38,0)",
                "decimal(1,1)",
            ]
            .into_iter()
            .enumerate()
            {
                a.columns.push(Column {
                    name: format!("c{i}"),
                    ty: ty.into(),
                    pii: ["keep", "hmac", "year", "truncate:5", "truncate:99999"][i % 5].into(),
                    source_name: format!("C {i}"),
                });
            }
        },
        // An empty batch (a header-only export).
        |a| {
            a.objects = Some(Vec::new());
            a.rows = 0;
        },
    ];
    for (i, mutate) in cases.into_iter().enumerate() {
        let mut a = sample();
        mutate(&mut a);
        a.validate().unwrap_or_else(|e| panic!("case {i}: {e}"));
        assert_eq!(
            Announcement::from_json(a.to_json().as_bytes()).unwrap(),
            a,
            "case {i}"
        );
    }
}

#[test]
fn error_messages_read_well() {
    let mut a = sample();
    a.rows = 7;
    assert_eq!(
        a.validate().unwrap_err().to_string(),
        "announcement 544836084c3108e9: `rows`: 7 but the objects hold 1000 rows together"
    );
    a.version = 3;
    assert_eq!(
        a.validate().unwrap_err().to_string(),
        "announcement 544836084c3108e9: version 3 is not supported (this build reads version 1)"
    );
}

#[test]
fn error_is_a_thread_safe_error() {
    fn assert_error<E: std::error::Error + Send + Sync + 'static>() {}
    assert_error::<AnnouncementError>();
}

// ---- message attributes ---------------------------------------------------------------------

#[test]
fn message_attributes_and_their_check() {
    let a = sample();
    let [p, v] = a.message_attributes();
    assert_eq!(
        (p.name, p.data_type, p.value.as_str()),
        ("producer_id", "String", "chu-lyon")
    );
    assert_eq!(
        (v.name, v.data_type, v.value.as_str()),
        ("announcement_version", "Number", "1")
    );
    a.check_message_attributes(Some("chu-lyon"), Some("1"))
        .unwrap();
    let e = a
        .check_message_attributes(Some("chu-paris"), Some("1"))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "announcement 544836084c3108e9: message attribute `producer_id`: \"chu-paris\" but the body says \"chu-lyon\""
    );
    let e = a
        .check_message_attributes(None, Some("1"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`producer_id`: missing"), "{e}");
    let e = a
        .check_message_attributes(Some("chu-lyon"), Some("2"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`announcement_version`: \"2\" but the body is version 1"),
        "{e}"
    );
    let e = a
        .check_message_attributes(Some("chu-lyon"), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("`announcement_version`: missing"), "{e}");
}

// ---- claim check ----------------------------------------------------------------------------

/// An announcement whose inline body is over the limit: 2000 objects over 12 months.
fn large() -> Announcement {
    let mut a = sample();
    let objects: Vec<Object> = (0..2000)
        .map(|n| object("2026", &format!("{:02}", n % 12 + 1), n, 10))
        .collect();
    a.rows = 20_000;
    a.objects = Some(objects);
    a
}

#[test]
fn small_bodies_go_inline() {
    let a = sample();
    match a.envelope().unwrap() {
        Envelope::Inline { body } => {
            assert_eq!(body, a.to_json());
            assert_eq!(Announcement::from_json(body.as_bytes()).unwrap(), a);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn large_bodies_are_claim_checked() {
    let a = large();
    assert!(a.to_json().len() > MAX_INLINE_BODY_BYTES);
    let Envelope::ClaimCheck {
        body,
        manifest_bucket,
        manifest_key,
        manifest,
    } = a.envelope().unwrap()
    else {
        panic!("expected a claim check");
    };
    assert_eq!(manifest_bucket, "chu-lyon-datamesh");
    assert_eq!(
        manifest_key,
        "products/_lakemesh/manifests/hospital_stays/544836084c3108e9.json"
    );
    assert!(body.len() <= MAX_INLINE_BODY_BYTES);
    let pointer = Announcement::from_json(body.as_bytes()).unwrap();
    assert!(pointer.is_claim_check());
    assert_eq!(pointer.objects, None);
    assert_eq!(
        pointer.manifest.as_deref(),
        Some(
            "s3://chu-lyon-datamesh/products/_lakemesh/manifests/hospital_stays/544836084c3108e9.json"
        )
    );
    assert_eq!(
        pointer.manifest_location(),
        Some((manifest_bucket.clone(), manifest_key.clone()))
    );
    assert_eq!(pointer.from_manifest(&manifest).unwrap(), a);
    assert_eq!(manifest, a.to_json().into_bytes());
}

#[test]
fn manifest_at_the_bucket_root() {
    let mut a = large();
    a.location = "s3://chu-lyon-datamesh/hospital_stays/".into();
    for o in a.objects.as_mut().unwrap() {
        o.key = o.key.replacen("products/", "", 1);
    }
    let Envelope::ClaimCheck { manifest_key, .. } = a.envelope().unwrap() else {
        panic!("expected a claim check");
    };
    assert_eq!(
        manifest_key,
        "_lakemesh/manifests/hospital_stays/544836084c3108e9.json"
    );
}

#[test]
fn the_limit_is_inclusive() {
    // Pad the column headers until the inline body is exactly at the limit.
    let mut a = sample();
    let mut objects: Vec<Object> = Vec::new();
    let mut n = 0;
    loop {
        objects.push(object("2026", "11", n, 1));
        n += 1;
        a.objects = Some(objects.clone());
        a.rows = objects.len() as u64;
        if a.to_json().len() > MAX_INLINE_BODY_BYTES - 600 {
            break;
        }
    }
    let missing = MAX_INLINE_BODY_BYTES - a.to_json().len();
    a.columns[0].source_name.push_str(&"x".repeat(missing));
    assert_eq!(a.to_json().len(), MAX_INLINE_BODY_BYTES);
    assert!(matches!(a.envelope().unwrap(), Envelope::Inline { .. }));
    a.columns[0].source_name.push('x');
    assert!(matches!(a.envelope().unwrap(), Envelope::ClaimCheck { .. }));
}

#[test]
fn a_pointer_too_large_is_an_error() {
    let mut a = large();
    a.columns = (0..MAX_COLUMNS)
        .map(|i| Column {
            name: format!("c{i}"),
            ty: "string".into(),
            pii: "keep".into(),
            source_name: "h".repeat(300),
        })
        .collect();
    let e = a.envelope().unwrap_err();
    assert!(
        matches!(e, AnnouncementError::PointerTooLarge { bytes, .. } if bytes > MAX_INLINE_BODY_BYTES),
        "{e}"
    );
}

#[test]
fn envelopes_are_made_from_valid_inline_announcements_only() {
    let mut a = sample();
    a.rows = 1;
    assert!(matches!(
        a.envelope(),
        Err(AnnouncementError::Invalid { .. })
    ));
    let Envelope::ClaimCheck { body, .. } = large().envelope().unwrap() else {
        panic!()
    };
    let pointer = Announcement::from_json(body.as_bytes()).unwrap();
    let e = pointer.envelope().unwrap_err().to_string();
    assert!(e.contains("not from a pointer"), "{e}");
}

#[test]
fn manifest_must_match_its_pointer() {
    let a = large();
    let Envelope::ClaimCheck { body, manifest, .. } = a.envelope().unwrap() else {
        panic!()
    };
    let pointer = Announcement::from_json(body.as_bytes()).unwrap();

    let mut other = a.clone();
    other.domain = "insurance".into();
    let e = pointer
        .from_manifest(other.to_json().as_bytes())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "announcement 544836084c3108e9: manifest s3://chu-lyon-datamesh/products/_lakemesh/manifests/hospital_stays/544836084c3108e9.json: `domain` differs between the message and the manifest"
    );

    let e = pointer
        .from_manifest(body.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(e.contains("itself a pointer"), "{e}");
    let e = pointer.from_manifest(b"not json").unwrap_err().to_string();
    assert!(e.contains("not a version 1 announcement"), "{e}");
    let mut broken = a.clone();
    broken.rows += 1;
    let e = pointer
        .from_manifest(broken.to_json().as_bytes())
        .unwrap_err()
        .to_string();
    assert!(e.contains("`rows`"), "{e}");
    let e = a.from_manifest(&manifest).unwrap_err().to_string();
    assert!(e.contains("not a claim-check pointer"), "{e}");
}

#[test]
fn pointer_rules() {
    let Envelope::ClaimCheck { body, .. } = large().envelope().unwrap() else {
        panic!()
    };
    let pointer = Announcement::from_json(body.as_bytes()).unwrap();
    for uri in [
        "s3://other-bucket/products/_lakemesh/manifests/hospital_stays/544836084c3108e9.json",
        "s3://chu-lyon-datamesh/products/_lakemesh/manifests/hospital_stays/0000000000000000.json",
        "s3://chu-lyon-datamesh/products/hospital_stays/544836084c3108e9.json",
    ] {
        let mut p = pointer.clone();
        p.manifest = Some(uri.into());
        let (field, reason) = invalid_field(&p);
        assert_eq!(field, "manifest");
        assert!(
            reason.contains("products/_lakemesh/manifests/hospital_stays/544836084c3108e9.json"),
            "{reason}"
        );
    }
}

#[test]
fn product_location_round_trip() {
    let l = ProductLocation::parse("s3://b-1/a/b/p/", "p").unwrap();
    assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("b-1", "a/b"));
    assert_eq!(l.uri(), "s3://b-1/a/b/p/");
    assert_eq!(l.product_key_prefix(), "a/b/p/");
    assert_eq!(
        l.manifest_uri("0123456789abcdef"),
        "s3://b-1/a/b/_lakemesh/manifests/p/0123456789abcdef.json"
    );
    let root = ProductLocation::parse("s3://b-1/p/", "p").unwrap();
    assert_eq!(root.prefix, "");
    assert_eq!(root.uri(), "s3://b-1/p/");
}

// ---- the JSON Schema ------------------------------------------------------------------------

fn schema() -> serde_json::Value {
    let path = schema_dir().join("announcement-v1.schema.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn keys(v: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
    k.sort();
    k
}

fn required(v: &serde_json::Value) -> Vec<String> {
    let mut r: Vec<String> = v["required"]
        .as_array()
        .expect("required")
        .iter()
        .map(|x| x.as_str().expect("a string").to_owned())
        .collect();
    r.sort();
    r
}

#[test]
fn schema_lists_exactly_the_serde_fields() {
    let s = schema();
    assert_eq!(s["additionalProperties"], serde_json::json!(false));
    let inline: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
    let Envelope::ClaimCheck { body, .. } = large().envelope().unwrap() else {
        panic!()
    };
    let pointer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut all = keys(&inline);
    all.push("manifest".into());
    all.sort();
    assert_eq!(keys(&s["properties"]), all);
    // Required: every field but the two alternatives.
    let mut both: Vec<String> = keys(&inline)
        .into_iter()
        .filter(|k| keys(&pointer).contains(k))
        .collect();
    both.sort();
    assert_eq!(required(&s), both);

    for (def, value) in [
        ("column", &inline["columns"][0]),
        ("object", &inline["objects"][0]),
        ("source", &inline["source"]),
    ] {
        let d = &s["$defs"][def];
        assert_eq!(d["additionalProperties"], serde_json::json!(false), "{def}");
        assert_eq!(keys(&d["properties"]), keys(value), "{def}");
        assert_eq!(required(d), keys(value), "{def}: every field is required");
    }
    assert_eq!(
        s["properties"]["version"]["const"],
        serde_json::json!(VERSION)
    );
    assert_eq!(s["$defs"]["count"]["maximum"], serde_json::json!(MAX_COUNT));
    assert_eq!(
        s["properties"]["objects"]["maxItems"],
        serde_json::json!(MAX_OBJECTS)
    );
    assert_eq!(
        s["properties"]["columns"]["maxItems"],
        serde_json::json!(MAX_COLUMNS)
    );
    assert_eq!(
        s["properties"]["partition_keys"]["maxItems"],
        serde_json::json!(MAX_PARTITION_KEYS)
    );
}

fn examples(kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = schema_dir().join("examples").join(kind);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no examples in {}", dir.display());
    out
}

#[test]
fn schema_examples_agree_with_serde_and_validation() {
    // tests/emulator/test_emulator.py checks the same files against the schema with jsonschema:
    // valid/ passes both; invalid/ fails both; semantic/ passes the schema and fails here.
    for (name, body) in examples("valid") {
        Announcement::from_json(&body).unwrap_or_else(|e| panic!("valid/{name}: {e}"));
    }
    for kind in ["invalid", "semantic"] {
        for (name, body) in examples(kind) {
            let e = Announcement::from_json(&body);
            assert!(e.is_err(), "{kind}/{name} was accepted");
        }
    }
}
