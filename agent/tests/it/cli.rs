//! The `lakemesh-agent` binary: exit codes, summary line, config-based conversion, infer.

use std::process::{Command, Output};

use crate::support::Scratch;

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lakemesh-agent"))
}

/// `lakemesh-agent convert FILE --contract C --out OUT`.
fn convert(s: &Scratch, contract: &std::path::Path, file: &std::path::Path) -> Output {
    agent()
        .arg("convert")
        .arg(file)
        .arg("--contract")
        .arg(contract)
        .arg("--out")
        .arg(s.out())
        .output()
        .unwrap()
}

const CONTRACT: &str = r#"
name = "stays"
domain = "hospital_activity"
partition_by = [ { column = "adm", transform = "year" } ]
columns = [ { name = "id", type = "bigint" }, { name = "adm", type = "date", formats = ["%Y-%m-%d"] } ]
"#;

#[test]
fn convert_prints_a_summary_and_exits_zero() {
    let s = Scratch::new();
    let c = s.write("c.toml", CONTRACT);
    let f = s.write("in.csv", "id,adm\n1,2024-01-02\n2,2023-05-06\n");
    let out = convert(&s, &c, &f);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("2 rows, 0 rejected, 2 files") && stdout.contains("MB/s"),
        "{stdout}"
    );
}

#[test]
fn rejection_exits_two_with_the_location() {
    let s = Scratch::new();
    let c = s.write("c.toml", CONTRACT);
    let f = s.write("in.csv", "id,adm\n1,02/01/2024\n");
    let out = convert(&s, &c, &f);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 2")
            && err.contains("adm")
            && err.contains("02/01/2024")
            && err.contains("in.csv.error.json"),
        "{err}"
    );
}

#[test]
fn bad_contract_exits_one_naming_the_key() {
    let s = Scratch::new();
    let c = s.write("c.toml", CONTRACT.replace("bigint", "long"));
    let f = s.write("in.csv", "id,adm\n");
    let out = convert(&s, &c, &f);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("columns[0].type") && err.contains("\"stays\""),
        "{err}"
    );
}

#[test]
fn convert_from_the_agent_config_with_a_private_key() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new();
    let key = s.write("pseudonym.key", "0123456789abcdef0123456789abcdef\n");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = format!(
        r#"
producer_id = "chu-lyon"
bucket = "chu-lyon-datamesh"
queue_url = "https://sqs.eu-west-3.amazonaws.com/111122223333/lakemesh-announcements"
pseudonym_key_file = {key:?}

[[product]]
name = "stays"
domain = "hospital_activity"
columns = [ {{ name = "patient_id", type = "string", pii = "hmac" }} ]
"#
    );
    let c = s.write("agent.toml", cfg);
    let f = s.write("in.csv", "patient_id\nP1\n");
    let run = || {
        agent()
            .arg("convert")
            .arg(&f)
            .arg("--config")
            .arg(&c)
            .arg("--product")
            .arg("stays")
            .arg("--out")
            .arg(s.out())
            .output()
            .unwrap()
    };
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
}

#[test]
fn infer_proposes_a_contract_that_converts() {
    let s = Scratch::new();
    let f = s.write(
        "Séjours 2024.csv",
        "N° séjour;dep;Date entrée;coût\n1;01;25/01/2024;12,50\n2;2A;03/02/2024;7\n",
    );
    let out = agent()
        .arg("infer")
        .arg(&f)
        .arg("--domain")
        .arg("hospital_activity")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("name = \"sejours_2024\""), "{text}");
    assert!(text.contains("name = \"dep\"\ntype = \"string\""), "{text}");
    assert!(text.contains("formats = [\"%d/%m/%Y\"]"), "{text}");
    let c = s.write("c.toml", &text);
    let out = convert(&s, &c, &f);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn infer_refuses_ambiguous_dates_with_the_values() {
    let s = Scratch::new();
    let f = s.write("d.csv", "id,when\n1,03/04/2024\n2,05/06/2024\n");
    let out = agent().arg("infer").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"03/04/2024\"") && err.contains("when"),
        "{err}"
    );
}
