//! `lakemesh-mesh`: runs the whole mesh on this machine (the README's main job) and prints what
//! it holds at the end.
//!
//! usage: lakemesh-mesh [--out DIR] [--examples DIR] [--agent BIN] [--syncd BIN] [--json]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use lakemesh_e2e::mesh::{Mesh, MeshOptions};
use lakemesh_e2e::report::Report;
use lakemesh_e2e::sibling_binary;

fn arg_value(args: &mut impl Iterator<Item = String>, flag: &str) -> Result<PathBuf> {
    args.next()
        .map(PathBuf::from)
        .with_context(|| format!("{flag} needs a value"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lakemesh-mesh: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<()> {
    // scripts/demo says where the checkout is; the build-time path is only a fallback (a
    // target directory shared between clones can hold a binary built in another one).
    let repo = std::env::var_os("LAKEMESH_REPO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."));
    let mut out = repo.join("demo-out");
    let mut examples = repo.join("examples").join("mesh");
    let mut agent = sibling_binary("lakemesh-agent");
    let mut syncd = sibling_binary("lakemesh-syncd");
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out = arg_value(&mut args, "--out")?,
            "--examples" => examples = arg_value(&mut args, "--examples")?,
            "--agent" => agent = Some(arg_value(&mut args, "--agent")?),
            "--syncd" => syncd = Some(arg_value(&mut args, "--syncd")?),
            "--json" => json = true,
            "-h" | "--help" => {
                println!(
                    "usage: lakemesh-mesh [--out DIR] [--examples DIR] [--agent BIN] [--syncd BIN] [--json]"
                );
                return Ok(());
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    let opts = MeshOptions {
        work_dir: out,
        agent_bin: agent.context("lakemesh-agent not found beside this binary: pass --agent")?,
        syncd_bin: syncd.context("lakemesh-syncd not found beside this binary: pass --syncd")?,
        examples,
    };
    eprintln!("== starting the local AWS emulator, two producers and the ministry");
    let mesh = Mesh::up(opts).await?;
    for s in &mesh.sites {
        eprintln!(
            "   {} (bucket s3://{}, product {}): {}",
            s.spec.id,
            s.spec.bucket,
            s.product,
            s.config.display()
        );
    }
    eprintln!("   lakemesh-syncd: {}", mesh.syncd_config.display());
    let n = mesh.drop_exports()?;
    eprintln!(
        "== {n} exports dropped into the agents' inboxes; agents running until every file is settled"
    );
    mesh.deliver(Duration::from_secs(300))?;
    eprintln!("== lakemesh-syncd run --once: announcements → Glue catalog → Lake Formation policy");
    mesh.sync()?;
    let plan = mesh.plan()?;
    eprintln!(
        "== lakemesh-syncd plan after the run: {}",
        if plan.trim().is_empty() || plan.contains("nothing to do") {
            "Lake Formation holds the policy".to_string()
        } else {
            format!("\n{plan}")
        }
    );
    let mut report = Report::collect(&mesh).await?;
    eprintln!(
        "== lakemesh-syncd preview (each role, each table) and verify (Athena probes as each role)"
    );
    report.check_access(&mesh).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.render());
    }
    eprintln!(
        "== done: configurations, state folders and logs in {}",
        mesh.opts.work_dir.display()
    );
    Ok(())
}
