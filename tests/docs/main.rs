//! The configuration reference is kept in step with the configuration structs: every key the
//! programs accept is documented (README tables for the agent, `[aws]` and the daemon;
//! `docs/contract.md` for product contracts) and named in the packaged default configurations,
//! and every key documented is one they accept.
//!
//! The accepted keys are read from the programs themselves: their configuration structs refuse
//! unknown keys (`deny_unknown_fields`), and serde's refusal lists the keys it expected.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo")).join("..")
}

/// The keys a refusal of the unknown key `zz_probe` lists: "unknown field `zz_probe`, expected
/// one of `a`, `b`" (or "expected `a` or `b`").
fn expected_keys(refusal: &str) -> BTreeSet<String> {
    let at = refusal
        .find("unknown field `zz_probe`, expected")
        .unwrap_or_else(|| panic!("not a refusal of zz_probe: {refusal}"));
    let rest = &refusal[at + "unknown field `zz_probe`, expected".len()..];
    let rest = rest.split('\n').next().unwrap_or_default();
    let keys: BTreeSet<String> = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(!keys.is_empty(), "no keys in {refusal}");
    keys
}

fn refusal_of<T: serde::de::DeserializeOwned + std::fmt::Debug>(toml_text: &str) -> String {
    toml::from_str::<T>(toml_text).unwrap_err().to_string()
}

fn agent_config_refusal(toml_text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, toml_text).unwrap();
    lakemesh_agent::config::AgentConfig::load(&path)
        .map(|_| ())
        .unwrap_err()
        .to_string()
}

/// The part of `text` under the heading `heading` (up to the next heading of the same or a
/// higher level).
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text
        .find(heading)
        .unwrap_or_else(|| panic!("heading {heading:?} not found"));
    let level = heading.chars().take_while(|&c| c == '#').count();
    let body = &text[start + heading.len()..];
    let mut end = body.len();
    let mut offset = 0;
    for line in body.split_inclusive('\n') {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if hashes > 0 && hashes <= level && line[hashes..].starts_with(' ') && offset > 0 {
            end = offset;
            break;
        }
        offset += line.len();
    }
    &body[..end]
}

/// The backticked words of the first column of the section's tables (`[aws]` and
/// `[[product]]` included as written).
fn table_keys(section: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for line in section.lines() {
        let Some(row) = line.strip_prefix('|') else {
            continue;
        };
        let first = row.split('|').next().unwrap_or_default();
        if first.trim() == "key" || first.trim_start().starts_with("---") {
            continue;
        }
        keys.extend(first.split('`').skip(1).step_by(2).map(str::to_owned));
    }
    keys
}

fn assert_documented(what: &str, accepted: &BTreeSet<String>, documented: &BTreeSet<String>) {
    let missing: Vec<_> = accepted.difference(documented).collect();
    assert!(
        missing.is_empty(),
        "{what}: keys accepted but not documented: {missing:?} (documented: {documented:?})"
    );
}

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).unwrap()
}

#[test]
fn every_agent_key_is_in_the_readme_and_every_documented_key_exists() {
    let agent = expected_keys(&agent_config_refusal("zz_probe = 1\n"));
    let aws = expected_keys(&refusal_of::<lakemesh_shared::aws::AwsSettings>(
        "zz_probe = 1\n",
    ));
    let text = readme();
    let documented = table_keys(section(&text, "### Agent configuration"));
    let plain: BTreeSet<String> = agent
        .iter()
        .filter(|k| *k != "aws" && *k != "product")
        .cloned()
        .collect();
    assert_documented("agent.toml", &plain, &documented);
    assert!(documented.contains("[aws]") && documented.contains("[[product]]"));
    let product = expected_keys(&refusal_of::<lakemesh_agent::contract::RawContract>(
        "zz_probe = 1\n",
    ));
    for k in &documented {
        let bare = k.trim_matches(|c| c == '[' || c == ']');
        assert!(
            agent.contains(bare) || product.contains(bare),
            "README documents `{k}` for agent.toml, which the agent does not accept"
        );
    }

    let aws_documented = table_keys(section(&text, "### `[aws]`"));
    assert_documented("[aws]", &aws, &aws_documented);
    assert!(
        aws_documented.is_subset(&aws),
        "README documents [aws] keys the programs do not accept: {:?}",
        aws_documented.difference(&aws).collect::<Vec<_>>()
    );
}

#[test]
fn every_daemon_key_is_in_the_readme_and_every_documented_key_exists() {
    let probe = |text: &str| expected_keys(&refusal_of::<lakemesh_syncd::config::RawConfig>(text));
    let top = probe("zz_probe = 1\n");
    let producer = probe("[[producer]]\nzz_probe = 1\n");
    let verify = probe("[verify]\nzz_probe = 1\n");
    let text = readme();
    let documented = table_keys(section(
        &text,
        "### Configuration (`/etc/lakemesh/syncd.toml`)",
    ));
    // Sections are documented by their heading row (`[aws]`, `[[producer]]`, `[verify]`).
    let sections: BTreeSet<String> = documented
        .iter()
        .filter(|k| k.starts_with('['))
        .map(|k| k.trim_matches(|c| c == '[' || c == ']').to_owned())
        .collect();
    let plain: BTreeSet<String> = top
        .iter()
        .filter(|k| !sections.contains(*k))
        .chain(producer.iter())
        .chain(verify.iter())
        .cloned()
        .collect();
    assert_documented("syncd.toml", &plain, &documented);
    for k in &documented {
        let bare = k.trim_matches(|c| c == '[' || c == ']');
        assert!(
            top.contains(bare) || producer.contains(bare) || verify.contains(bare),
            "README documents `{k}` for syncd.toml, which the daemon does not accept"
        );
    }
}

/// `key =` assignments anywhere in the contract reference's TOML block (inline tables
/// included).
fn contract_doc_keys(doc: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(doc).unwrap();
    let block = text
        .split("```toml")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a TOML block in docs/contract.md");
    let mut keys = BTreeSet::new();
    for line in block.lines() {
        let code = line.split('#').next().unwrap_or_default();
        let bytes: Vec<char> = code.chars().collect();
        let mut word = String::new();
        for (i, &c) in bytes.iter().enumerate() {
            if c.is_ascii_alphanumeric() || c == '_' {
                word.push(c);
                continue;
            }
            if !word.is_empty() {
                let next = bytes[i..].iter().find(|c| !c.is_whitespace());
                if next == Some(&'=') {
                    keys.insert(std::mem::take(&mut word));
                }
                word.clear();
            }
        }
    }
    keys
}

#[test]
fn every_contract_key_is_in_the_contract_reference() {
    use lakemesh_agent::contract::{RawColumn, RawContract, RawCsv, RawOutput, RawPartition};
    let documented = contract_doc_keys(&repo().join("docs/contract.md"));
    let doc = std::fs::read_to_string(repo().join("docs/contract.md")).unwrap();
    let mut accepted = BTreeSet::new();
    for (what, keys) in [
        (
            "contract",
            expected_keys(&refusal_of::<RawContract>("zz_probe = 1\n")),
        ),
        (
            "[csv]",
            expected_keys(&refusal_of::<RawCsv>("zz_probe = 1\n")),
        ),
        (
            "[output]",
            expected_keys(&refusal_of::<RawOutput>("zz_probe = 1\n")),
        ),
        (
            "partition_by",
            expected_keys(&refusal_of::<RawPartition>("zz_probe = 1\n")),
        ),
        (
            "[[columns]]",
            expected_keys(&refusal_of::<RawColumn>("zz_probe = 1\n")),
        ),
    ] {
        // Tables are documented by their heading (`[csv]`), not as `csv =`; a key may also be
        // documented in the prose (`inbox`, which only the agent's `[[product]]` uses).
        let plain: BTreeSet<String> = keys
            .iter()
            .filter(|k| !matches!(k.as_str(), "csv" | "output" | "columns"))
            .filter(|k| !(documented.contains(*k) || doc.contains(&format!("`{k}`"))))
            .cloned()
            .collect();
        assert!(
            plain.is_empty(),
            "docs/contract.md does not document the {what} keys {plain:?}"
        );
        accepted.extend(keys);
    }
    for k in &documented {
        assert!(
            accepted.contains(k),
            "docs/contract.md documents `{k} = …`, which contracts do not accept"
        );
    }
}

/// The keys a commented default configuration names (as `key =` or `# key =`).
fn default_config_keys(path: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter_map(|l| {
            let l = l.trim_start_matches(['#', ' ']);
            let (k, _) = l.split_once('=')?;
            let k = k.trim();
            (!k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
                .then(|| k.to_owned())
        })
        .collect()
}

#[test]
fn the_packaged_agent_configuration_names_every_key() {
    let accepted = expected_keys(&agent_config_refusal("zz_probe = 1\n"));
    let named = default_config_keys(&repo().join("packaging/config/agent.toml"));
    let missing: Vec<_> = accepted
        .iter()
        .filter(|k| *k != "aws" && *k != "product" && !named.contains(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "packaging/config/agent.toml does not mention {missing:?}"
    );
}

#[test]
fn the_packaged_daemon_configuration_names_every_key() {
    let probe = |text: &str| expected_keys(&refusal_of::<lakemesh_syncd::config::RawConfig>(text));
    let text = std::fs::read_to_string(repo().join("packaging/config/syncd.toml")).unwrap();
    let top = probe("zz_probe = 1\n");
    assert!(top.len() > 10 && top.contains("state_dir"), "{top:?}");
    for k in &top {
        // a key, a `[section]` or an array of `[[tables]]`
        let forms = [format!("{k} ="), format!("[{k}]"), format!("[[{k}]]")];
        assert!(
            forms.iter().any(|f| text.contains(f)),
            "packaging/config/syncd.toml lacks {k}"
        );
    }
    for k in probe("[[producer]]\nzz_probe = 1\n") {
        assert!(
            text.contains(&format!("# {k} =")),
            "packaging/config/syncd.toml's producer example lacks {k}"
        );
    }
}
