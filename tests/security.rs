//! Security and governance end to end (issue "Security and governance"): redaction in the
//! agent and again at the server, the blocklist at the agent with the server's check bypassed,
//! the kill switch, roles through the client, the audit trail, TLS with a test CA.

use scry_tests::scry::Scry;
use scry_tests::tiers::*;
use scry_tests::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What secrets.c holds at its probe site.
const SECRETS: &[&str] = &[
    "4111 1111 1111 1111",
    "alice@example.com",
    "hunter2",
    "abc.def-ghi",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl",
];

/// A TCP proxy in front of `upstream` that records every byte the clients send (what the agent
/// lets leave the host).
struct Recorder {
    port: u16,
    sent: Arc<Mutex<Vec<u8>>>,
}

fn record_proxy(upstream: u16) -> Recorder {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let log = sent.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                continue;
            };
            let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut s_in, mut c_out) = (server, client);
            let log = log.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                while let Ok(n) = c_in.read(&mut buf) {
                    if n == 0 || s_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    log.lock().unwrap().extend_from_slice(&buf[..n]);
                }
                let _ = s_out.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_in, &mut c_out);
                let _ = c_out.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    Recorder { port, sent }
}

/// The process whose thread traces `pid` (TracerPid names the tracing thread), 0 for none.
fn traced_by(pid: i32) -> i32 {
    match tracer_pid(pid) {
        0 => 0,
        tid => std::fs::read_to_string(format!("/proc/{tid}/status"))
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("Tgid:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
            })
            .unwrap_or(0),
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn secrets_never_leave_the_host_and_a_rule_added_at_run_time_applies() {
    let dir = TempDir::new("sec-redact");
    let data = dir.join("data");
    let port = free_port();
    let server = start_server(&data, port, &[], None);
    let proxy = record_proxy(port);
    let target = Target::spawn("secrets-O0", &["--interval-us", "20000"]);
    // The agent talks to the server only through the recording proxy.
    let agent_token = token(&server, "agent", &[]);
    let via = format!("http://127.0.0.1:{}", proxy.port);
    let pid = target.pid().to_string();
    let mut agent = Scry::start(&[
        "agent",
        "--server",
        &via,
        "--token",
        &agent_token,
        "--pid",
        &pid,
        "--tag",
        "app=pay",
    ]);
    agent.wait_stderr("registered with", Duration::from_secs(30));
    let loc = probe_location("secrets.c", "charge_body");
    let template = "card={p->card} email={p->email} pw={p->password} auth={p->auth} jwt={p->session} amount={p->amount} item={p->item}";
    let log = client(
        &server.url,
        &server.admin,
        &["log", "add", &loc, template, "--tag", "app=pay"],
    );
    let log_id = log[0]["id"].as_str().unwrap().to_string();
    client(
        &server.url,
        &server.admin,
        &["snapshot", "add", &loc, "--watch", "*p", "--tag", "app=pay"],
    );
    assert!(
        eventually(30, || logs(&server, &log_id).len() >= 5),
        "{:?}",
        agent.stderr()
    );
    // The harmless values arrive; the secrets do not.
    let first = logs(&server, &log_id);
    let msg = first[0]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("amount=1") && msg.contains("book-"), "{msg}");
    for s in SECRETS {
        assert!(!msg.contains(s), "{s} in {msg}");
    }
    // A rule added while the agent runs reaches it within seconds.
    client(
        &server.url,
        &server.admin,
        &["redact", "add", "value", "book-[0-9]+"],
    );
    std::thread::sleep(Duration::from_secs(3));
    let mark = proxy.sent.lock().unwrap().len();
    let last_seq = logs(&server, &log_id).last().unwrap()["seq"]
        .as_u64()
        .unwrap();
    assert!(eventually(20, || logs(&server, &log_id)
        .iter()
        .filter(|l| l["seq"].as_u64().unwrap() > last_seq)
        .count()
        >= 5));
    let after: Vec<String> = logs(&server, &log_id)
        .iter()
        .filter(|l| l["seq"].as_u64().unwrap() > last_seq)
        .map(|l| l["message"].as_str().unwrap().to_string())
        .collect();
    assert!(
        after
            .iter()
            .all(|m| !m.contains("book-") && m.contains("amount=")),
        "{after:?}"
    );
    // What the agent sent: no secret ever, and nothing the new rule covers after it arrived.
    let sent = proxy.sent.lock().unwrap().clone();
    assert!(contains(&sent, "amount="), "the proxy saw the uploads");
    for s in SECRETS {
        assert!(!contains(&sent, s), "the agent sent {s:?} to the server");
    }
    assert!(
        !contains(&sent[mark..], "book-"),
        "the agent did not apply the new rule"
    );
    // Nothing in the server's answers …
    let snaps = client(&server.url, &server.admin, &["snapshots"]);
    let snap_id = snaps[0][0]["id"].as_u64().expect("a snapshot").to_string();
    let shown = client(&server.url, &server.admin, &["snapshot", "show", &snap_id]);
    let answers = format!("{first:?}{after:?}{shown:?}{snaps:?}");
    for s in SECRETS {
        assert!(!answers.contains(s), "{s} in an HTTP answer");
    }
    // … nor in its database files, nor in the agent's own log.
    agent.signal(libc::SIGTERM);
    let _ = agent.wait(Duration::from_secs(20));
    for entry in std::fs::read_dir(&data).unwrap().flatten() {
        let bytes = std::fs::read(entry.path()).unwrap_or_default();
        for s in SECRETS {
            assert!(!contains(&bytes, s), "{s} in {}", entry.path().display());
        }
    }
    let agent_log = agent.stderr().join("\n");
    for s in SECRETS {
        assert!(!agent_log.contains(s), "{s} in the agent's log");
    }
}

#[test]
fn the_blocklist_is_enforced_by_the_server_and_again_by_the_agent() {
    let dir = TempDir::new("sec-block");
    let server = start_server(&dir.join("data"), free_port(), &[], None);
    let target = Target::spawn("loop-O0", &["--interval-us", "20000"]);
    let mut agent = start_agent(&server, target.pid(), &["app=b"], &[]);
    let (url, admin) = (server.url.as_str(), server.admin.as_str());
    // An action set before the rule: the server's check at creation is bypassed this way.
    let created = client(
        url,
        admin,
        &[
            "log",
            "add",
            "process_order",
            "id={o->id}",
            "--tag",
            "app=b",
        ],
    );
    let id = created[0]["id"].as_str().unwrap().to_string();
    assert!(eventually(20, || !logs(&server, &id).is_empty()));
    let rule = client(url, admin, &["blocklist", "add", "function", "process_*"]);
    let rule_id = rule[0]["id"].as_str().unwrap().to_string();
    // The agent unplants it and says why, naming the rule.
    assert!(
        eventually(20, || {
            let actions = client(url, admin, &["actions"]);
            actions[0][0]["states"].as_object().is_some_and(|m| {
                m.values().any(|s| {
                    s["state"] == "error" && s["reason"].as_str().unwrap_or("").contains(&rule_id)
                })
            })
        }),
        "{:?}",
        agent.stderr()
    );
    std::thread::sleep(Duration::from_secs(1));
    let n = logs(&server, &id).len();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(logs(&server, &id).len(), n, "lines after the block");
    code_bytes_match_file(target.pid(), testbin("loop-O0")).unwrap();
    // The server refuses a new one, naming the rule; an `allow` exception lets it through.
    let (code, _, err) = client_raw(
        url,
        admin,
        &["log", "add", "process_order", "x", "--tag", "app=b"],
    );
    assert_ne!(code, 0);
    assert!(err.join("\n").contains(&rule_id), "{err:?}");
    client(
        url,
        admin,
        &["blocklist", "add", "function", "process_order", "--allow"],
    );
    client(
        url,
        admin,
        &[
            "log",
            "add",
            "process_order",
            "again={o->id}",
            "--tag",
            "app=b",
        ],
    );
    agent.signal(libc::SIGTERM);
    let _ = agent.wait(Duration::from_secs(20));
}

#[test]
fn the_kill_switch_detaches_every_agent_within_a_second_and_attach_all_resumes() {
    let dir = TempDir::new("sec-kill");
    let server = start_server(&dir.join("data"), free_port(), &[], None);
    let target = Target::spawn("loop-O0", &["--interval-us", "20000"]);
    let agent = start_agent(&server, target.pid(), &["app=k"], &[]);
    let (url, admin) = (server.url.as_str(), server.admin.as_str());
    let created = client(
        url,
        admin,
        &[
            "log",
            "add",
            "process_order",
            "id={o->id}",
            "--tag",
            "app=k",
        ],
    );
    let id = created[0]["id"].as_str().unwrap().to_string();
    assert!(eventually(20, || !logs(&server, &id).is_empty()));
    assert_eq!(traced_by(target.pid()), agent.pid());
    let started = std::time::Instant::now();
    client(url, admin, &["detach-all"]);
    assert!(eventually(10, || tracer_pid(target.pid()) == 0));
    let took = started.elapsed();
    eprintln!("detached {took:?} after detach-all");
    assert!(took < Duration::from_secs(5), "{took:?}");
    code_bytes_match_file(target.pid(), testbin("loop-O0")).unwrap();
    client(url, admin, &["attach-all"]);
    assert!(eventually(20, || traced_by(target.pid()) == agent.pid()));
    let n = logs(&server, &id).len();
    assert!(eventually(20, || logs(&server, &id).len() > n + 3));
    // Both switches are in the audit trail.
    let audit = client(url, admin, &["audit"]);
    let paths: Vec<&str> = audit.iter().filter_map(|e| e["path"].as_str()).collect();
    assert!(
        paths.contains(&"/v1/detach-all") && paths.contains(&"/v1/attach-all"),
        "{paths:?}"
    );
}

#[test]
fn roles_through_the_client_and_the_audit_trail() {
    let dir = TempDir::new("sec-roles");
    let server = start_server(&dir.join("data"), free_port(), &[], None);
    let (url, admin) = (server.url.as_str(), server.admin.as_str());
    let dev = token(&server, "developer", &["env=a"]);
    let viewer = token(&server, "viewer", &[]);
    // A developer within its scope may add; outside it, 403 with the reason.
    client(
        url,
        &dev,
        &["log", "add", "process_order", "x", "--tag", "env=a"],
    );
    let (code, _, err) = client_raw(
        url,
        &dev,
        &["log", "add", "process_order", "x", "--tag", "env=b"],
    );
    assert_eq!(code, 1, "{err:?}");
    assert!(err.join("\n").contains("403"), "{err:?}");
    // A viewer reads but may not add; no token, or a bad one, is 401.
    client(url, &viewer, &["actions"]);
    let (code, _, err) = client_raw(url, &viewer, &["log", "add", "process_order", "x"]);
    assert_eq!(code, 1);
    assert!(err.join("\n").contains("403"), "{err:?}");
    let (code, _, err) = client_raw(url, "scry_not-a-token", &["actions"]);
    assert_eq!(code, 1);
    assert!(err.join("\n").contains("401"), "{err:?}");
    // A revoked token is refused from then on.
    let list = client(url, admin, &["token", "list"]);
    let dev_id = list[0]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == "developer")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    client(url, admin, &["token", "revoke", &dev_id]);
    let (code, _, _) = client_raw(url, &dev, &["actions"]);
    assert_eq!(code, 1);
    // The audit trail holds the mutations and the refusals.
    let audit = client(url, admin, &["audit"]);
    let statuses: Vec<u64> = audit.iter().filter_map(|e| e["status"].as_u64()).collect();
    assert!(
        statuses.contains(&403) && statuses.contains(&401),
        "{audit:?}"
    );
    assert!(
        audit
            .iter()
            .any(|e| e["path"] == "/v1/tokens" && e["method"] == "POST")
    );
    assert!(
        audit
            .iter()
            .any(|e| e["method"] == "DELETE" && e["path"].as_str().unwrap().contains(&dev_id))
    );
}

/// A test CA and a server certificate for 127.0.0.1, made with the openssl command.
fn make_certs(
    dir: &std::path::Path,
    name: &str,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl command (Debian: apt-get install openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let (ca_key, ca) = (format!("{name}-ca.key"), format!("{name}-ca.pem"));
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &ca_key,
        "-out",
        &ca,
        "-days",
        "2",
        "-subj",
        &format!("/CN={name} test CA"),
    ]);
    let (key, csr, cert) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &csr,
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        &cert,
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    (dir.join(ca), dir.join(cert), dir.join(key))
}

#[test]
fn tls_with_a_test_ca_and_a_wrong_ca_refused() {
    let dir = TempDir::new("sec-tls");
    let (ca, cert, key) = make_certs(dir.path(), "good");
    let (other_ca, _, _) = make_certs(dir.path(), "other");
    let server = start_server(
        &dir.join("data"),
        free_port(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        None,
    );
    assert!(server.url.starts_with("https://"));
    let ca_s = ca.to_str().unwrap();
    client(&server.url, &server.admin, &["agents", "--ca", ca_s]);
    // The agent over TLS too.
    let target = Target::spawn("loop-O0", &["--interval-us", "20000"]);
    let tok = {
        let created = client(
            &server.url,
            &server.admin,
            &["token", "create", "--role", "agent", "--ca", ca_s],
        );
        created[0]["token"].as_str().unwrap().to_string()
    };
    let pid = target.pid().to_string();
    let mut agent = Scry::start(&[
        "agent",
        "--server",
        &server.url,
        "--token",
        &tok,
        "--ca",
        ca_s,
        "--pid",
        &pid,
    ]);
    agent.wait_stderr("registered with", Duration::from_secs(30));
    // Another CA: refused (exit 4, the server cannot be reached safely).
    let (code, _, err) = client_raw(
        &server.url,
        &server.admin,
        &["agents", "--ca", other_ca.to_str().unwrap()],
    );
    assert_eq!(code, 4, "{err:?}");
    // Plain HTTP off loopback needs --insecure-listen.
    let (code, _, err) = scry_tests::scry::run_scry(
        &[
            "server",
            "--listen",
            "0.0.0.0:0",
            "--data",
            dir.join("d2").to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    assert_ne!(code, 0);
    assert!(err.join("\n").contains("--insecure-listen"), "{err:?}");
}
