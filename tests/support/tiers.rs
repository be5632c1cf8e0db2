//! Running the three tiers in tests: a real `scry server` process (its first admin token read
//! from its stderr, where it is printed once), `scry agent` processes with their own agent
//! tokens, and client commands over real HTTP.

use crate::scry::{Scry, run_scry};
use serde_json::Value as Json;
use std::path::Path;
use std::time::{Duration, Instant};

/// A free TCP port on loopback (bound and released: the server binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running server, its URL and its admin token.
pub struct Server {
    pub process: Scry,
    pub url: String,
    pub admin: String,
}

/// Starts `scry server` on `data` and `port` (plus `extra` flags). The first start of a data
/// directory prints the first admin token once; a restart of the same directory does not, so
/// pass the token you got the first time as `admin`.
pub fn start_server(data: &Path, port: u16, extra: &[&str], admin: Option<&str>) -> Server {
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec![
        "server",
        "--listen",
        &listen,
        "--data",
        data.to_str().unwrap(),
    ];
    args.extend(extra);
    let mut process = Scry::start(&args);
    process.wait_stderr("listening on", Duration::from_secs(60));
    let admin = match admin {
        Some(t) => t.to_string(),
        None => process
            .stderr()
            .iter()
            .find_map(|l| {
                l.split_whitespace()
                    .find(|w| w.starts_with("scry_"))
                    .map(str::to_string)
            })
            .unwrap_or_else(|| panic!("no admin token printed: {:?}", process.stderr())),
    };
    let scheme = if extra.contains(&"--tls-cert") {
        "https"
    } else {
        "http"
    };
    Server {
        process,
        url: format!("{scheme}://127.0.0.1:{port}"),
        admin,
    }
}

/// Runs a client command with `--json` against `url` with `token`; returns (exit code, stdout
/// parsed line by line, stderr).
pub fn client_raw(url: &str, token: &str, args: &[&str]) -> (i32, Vec<Json>, Vec<String>) {
    let mut full: Vec<&str> = args.to_vec();
    full.extend(["--server", url, "--token", token, "--json"]);
    let (code, out, err) = run_scry(&full, Duration::from_secs(60));
    let json = out
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (code, json, err)
}

/// Like [`client_raw`], asserting success.
pub fn client(url: &str, token: &str, args: &[&str]) -> Vec<Json> {
    let (code, json, err) = client_raw(url, token, args);
    assert_eq!(code, 0, "scry {args:?}: {err:?}");
    json
}

/// Creates a token with `role` (and scope `tags`); returns its secret.
pub fn token(server: &Server, role: &str, tags: &[&str]) -> String {
    let mut args = vec!["token", "create", "--role", role];
    for t in tags {
        args.extend(["--tag", t]);
    }
    let created = client(&server.url, &server.admin, &args);
    created[0]["token"].as_str().unwrap().to_string()
}

/// Starts `scry agent` on `pid` with a fresh agent token and `tags` (and `--overhead off`
/// unless `extra` sets it); waits until registered.
pub fn start_agent(server: &Server, pid: i32, tags: &[&str], extra: &[&str]) -> Scry {
    crate::require_ptrace();
    let tok = token(server, "agent", &[]);
    let pid = pid.to_string();
    let mut args = vec![
        "agent",
        "--server",
        &server.url,
        "--token",
        &tok,
        "--pid",
        &pid,
    ];
    for t in tags {
        args.extend(["--tag", t]);
    }
    args.extend(extra);
    // Tests of other capabilities must not depend on the machine's speed through the overhead
    // budget (tests/quotas.rs tests it).
    if !extra.contains(&"--overhead") {
        args.extend(["--overhead", "off"]);
    }
    let mut a = Scry::start(&args);
    a.wait_stderr("registered with", Duration::from_secs(30));
    a
}

/// Log lines of `action` (all of them).
pub fn logs(server: &Server, action: &str) -> Vec<Json> {
    client(
        &server.url,
        &server.admin,
        &["logs", "--action", action, "--limit", "100000"],
    )
}

/// Waits until `f` holds, up to `secs`.
pub fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}
