//! The HTTP API fuzzed from its own OpenAPI document with schemathesis (PyPI), for a bounded
//! time (issue "Security and governance", test 6): no 5xx, no answer outside the document.
//! `scripts/fuzz-api.sh` does the work (and installs schemathesis into a venv on first use);
//! this test runs it against a throw-away server. Without python3 or PyPI it fails, saying so.

use scry_tests::tiers::*;
use scry_tests::*;
use std::process::Command;

#[test]
fn the_api_survives_schemathesis() {
    let dir = TempDir::new("api-fuzz");
    let server = start_server(&dir.join("data"), free_port(), &[], None);
    let script = workspace_root().join("scripts/fuzz-api.sh");
    let seconds = std::env::var("SCRY_FUZZ_SECONDS").unwrap_or_else(|_| "120".into());
    let out = Command::new("bash")
        .arg(&script)
        .args([&server.url, &server.admin, &seconds])
        .env("SCRY_FUZZ_EXAMPLES", "25")
        .output()
        .expect("running bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: String = stdout
        .lines()
        .rev()
        .take(40)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    eprintln!("{tail}");
    assert!(
        out.status.success(),
        "schemathesis found problems (or could not run: python3 with venv, and PyPI, are needed):\n{tail}\n{stderr}"
    );
}
