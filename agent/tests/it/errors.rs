//! Bad input: located errors, nothing written on rejection, quarantined rows.

use serde_json::{Value, json};

use crate::support::{Scratch, read_table};

const C: &str = r#"
name = "t"
domain = "d"
columns = [
  { name = "id", type = "int" },
  { name = "code", type = "string", source = "Code" },
  { name = "day", type = "date", formats = ["%d/%m/%Y"] },
  { name = "amount", type = "decimal(6,2)" },
]
"#;

fn report(s: &Scratch, name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(s.out().join(format!("{name}.error.json"))).unwrap())
        .unwrap()
}

#[test]
fn reject_file_writes_nothing_and_locates_every_error() {
    let s = Scratch::new();
    let csv =
        "id,Code,day,amount\n1,01,03/04/2024,1.50\n2,02,2024-04-03,1.5\nx,03,04/04/2024,1.234\n";
    let e = s.convert(C, "bad.csv", csv).unwrap_err();
    assert!(e.is_rejection());
    let msg = e.to_string();
    assert!(
        msg.contains("bad.csv") && msg.contains("line 3") && msg.contains("2024-04-03"),
        "{msg}"
    );
    assert!(!s.out().join("t").exists(), "no output at all");
    let r = report(&s, "bad.csv");
    assert_eq!(r["errors_total"], json!(3));
    assert_eq!(r["rows_read"], json!(3));
    assert_eq!(r["rows_rejected"], json!(2));
    let errs = r["errors"].as_array().unwrap();
    assert_eq!(errs[0]["line"], json!(3));
    assert_eq!(errs[0]["column"], json!("day"));
    assert_eq!(errs[0]["source_header"], json!("day"));
    assert_eq!(errs[0]["field"], json!(3));
    assert_eq!(errs[0]["value"], json!("2024-04-03"));
    assert!(errs[0]["reason"].as_str().unwrap().contains("%d/%m/%Y"));
    assert_eq!(
        (errs[1]["line"].clone(), errs[1]["column"].clone()),
        (json!(4), json!("id"))
    );
    assert_eq!(errs[2]["column"], json!("amount"));
    assert!(errs[2]["reason"].as_str().unwrap().contains("scale"));
}

#[test]
fn an_unquoted_newline_is_a_located_error_not_a_shifted_row() {
    let s = Scratch::new();
    let csv = "id,Code,day,amount\n1,01,03/04/2024,1.50\n2,bro\nken,04/04/2024,2.00\n3,03,05/04/2024,3.00\n";
    let e = s.convert(C, "split.csv", csv).unwrap_err();
    assert!(e.is_rejection());
    let r = report(&s, "split.csv");
    let errs = r["errors"].as_array().unwrap();
    assert_eq!(errs[0]["line"], json!(3));
    assert!(
        errs[0]["reason"]
            .as_str()
            .unwrap()
            .contains("expected 4 fields, found 2"),
        "{}",
        errs[0]["reason"]
    );
    assert_eq!(errs[1]["line"], json!(4));
    assert!(errs[1]["reason"].as_str().unwrap().contains("found 3"));
    assert_eq!(
        errs[0]["value"],
        json!("2,bro"),
        "the record is shown with its delimiters"
    );
}

#[test]
fn quarantine_keeps_good_rows_and_writes_rejects_with_reasons() {
    let s = Scratch::new();
    let c = format!("{C}\non_error = \"quarantine_rows\"\nmax_rejected_ratio = 0.5\n");
    let csv = "id,Code,day,amount\n1,01,03/04/2024,1.50\n2,02,31/02/2024,1.5\n3,03,05/04/2024,3\n4,\"a,b\"\n";
    let r = s.convert(&c, "q.csv", csv).unwrap();
    assert_eq!((r.rows_read, r.rows_written, r.rows_rejected), (4, 2, 2));
    let t = read_table(&s.out().join("t"));
    assert_eq!(t.column("code"), vec![json!("01"), json!("03")]);
    let rejects = std::fs::read_to_string(r.rejects_file.unwrap()).unwrap();
    let mut rd = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(rejects.as_bytes());
    let head: Vec<String> = rd.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        head,
        [
            "id",
            "Code",
            "day",
            "amount",
            "_lakemesh_line",
            "_lakemesh_reason"
        ]
    );
    let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
    assert_eq!(&rows[0][2], "31/02/2024");
    assert_eq!(&rows[0][4], "3");
    assert!(rows[0][5].contains("not a date"));
    assert_eq!(
        &rows[1][1], "a,b",
        "the rejected record is kept as exported"
    );
    assert!(rows[1][3].contains("expected 4 fields"));
}

#[test]
fn quarantine_above_the_ratio_rejects_the_file() {
    let s = Scratch::new();
    let c = format!("{C}\non_error = \"quarantine_rows\"\nmax_rejected_ratio = 0.2\n");
    let e = s
        .convert(
            &c,
            "q.csv",
            "id,Code,day,amount\n1,01,03/04/2024,1\nx,01,03/04/2024,1\n",
        )
        .unwrap_err();
    assert!(e.to_string().contains("max_rejected_ratio"), "{e}");
    assert!(!s.out().join("t").exists());
    assert_eq!(report(&s, "q.csv")["rows_rejected"], json!(1));
}

#[test]
fn header_mismatches_are_listed_together() {
    let s = Scratch::new();
    let e = s
        .convert(C, "h.csv", "id,CODE,day,amount,extra\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("missing column") && e.contains("\"Code\""),
        "{e}"
    );
    let r = report(&s, "h.csv");
    let reasons: Vec<&str> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("\"extra\"") && r.contains("not in the contract")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("\"CODE\"") && r.contains("not in the contract")),
        "{reasons:?}"
    );
}

#[test]
fn empty_and_wrong_encoding_files() {
    let s = Scratch::new();
    let e = s.convert(C, "empty.csv", "").unwrap_err().to_string();
    assert!(e.contains("no header"), "{e}");
    let utf8 = C.replace(
        "domain = \"d\"",
        "domain = \"d\"\ncsv = { encoding = \"utf-8\" }",
    );
    let e = s
        .convert(
            &utf8,
            "l1.csv",
            b"id,Code,day,amount\n1,\xe9,03/04/2024,1\n".as_slice(),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("not valid UTF-8") && e.contains("line 2"), "{e}");
}

#[test]
fn the_report_lists_at_most_100_errors_but_counts_all() {
    let s = Scratch::new();
    let mut csv = String::from("id,Code,day,amount\n");
    for _ in 0..250 {
        csv.push_str("bad,01,03/04/2024,1\n");
    }
    s.convert(C, "many.csv", csv).unwrap_err();
    let r = report(&s, "many.csv");
    assert_eq!(r["errors_total"], json!(250));
    assert_eq!(r["errors"].as_array().unwrap().len(), 100);
}

#[test]
fn discovery_mode_proposes_a_contract_and_converts_nothing() {
    let s = Scratch::new();
    let e = s
        .convert(
            "name = \"fresh\"\ndomain = \"d\"\ncsv = { delimiter = \";\" }\n",
            "new.csv",
            "code;n\n01;1\n2A;2\n",
        )
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("discovery mode") && msg.contains("fresh.contract.toml"),
        "{msg}"
    );
    assert!(!s.out().join("fresh").exists());
    let proposal = std::fs::read_to_string(s.out().join("fresh.contract.toml")).unwrap();
    assert!(
        proposal.contains("name = \"code\"\ntype = \"string\""),
        "{proposal}"
    );
    // The proposal converts once pinned.
    s.convert(&proposal, "new.csv", "code;n\n01;1\n2A;2\n")
        .unwrap();
}

#[test]
fn errors_after_blank_lines_name_the_line_the_record_is_on() {
    // regression: the csv crate reported the line after the previous record
    let s = Scratch::new();
    let csv = "id,Code,day,amount\n1,01,03/04/2024,1.50\n\n\n\nx,02,03/04/2024,1.50\n";
    s.convert(C, "blank.csv", csv).unwrap_err();
    let r = report(&s, "blank.csv");
    assert_eq!(r["errors"][0]["line"], json!(6));
    assert_eq!(r["errors"][0]["value"], json!("x"));
}

#[test]
fn a_record_with_an_unclosed_quote_is_reported_where_it_starts() {
    let s = Scratch::new();
    let csv =
        "id,Code,day,amount\n1,01,03/04/2024,1.50\n2,\"02,03/04/2024,1.50\n3,03,03/04/2024,1.50\n";
    s.convert(C, "quote.csv", csv).unwrap_err();
    let r = report(&s, "quote.csv");
    let errs = r["errors"].as_array().unwrap();
    assert_eq!(errs[0]["line"], json!(3), "{errs:?}");
    assert!(
        errs[0]["reason"]
            .as_str()
            .unwrap()
            .contains("field 2 opens a quote that is never closed"),
        "{errs:?}"
    );
    assert!(!s.out().join("t").exists(), "nothing written");
}
