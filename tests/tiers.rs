//! The three tiers working as one: a real `scry server` process, real `scry agent` processes
//! attached to real testbins, the real client commands over real HTTP.

use scry_tests::scry::Scry;
use scry_tests::tiers::*;
use scry_tests::*;
use serde_json::Value as Json;
use std::time::{Duration, Instant};

fn loc() -> String {
    probe_location("loop.c", "process_order_body")
}

#[test]
fn a_log_point_added_from_the_client_reaches_logs_follow_quickly() {
    let dir = TempDir::new("tiers-latency");
    let port = free_port();
    let server = start_server(&dir.join("data"), port, &[], None);
    let target = Target::spawn("loop-O0", &["--interval-us", "1000"]);
    let _agent = start_agent(&server, target.pid(), &["svc=hot"], &[]);
    let mut follow = Scry::start(&[
        "logs",
        "--follow",
        "--json",
        "--server",
        &server.url,
        "--token",
        &server.admin,
    ]);
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let created = client(
        &server.url,
        &server.admin,
        &["log", "add", &loc(), "id={o->id}", "--tag", "svc=hot"],
    );
    let id = created[0]["id"].as_str().unwrap().to_string();
    let first = follow.wait_lines(1, Duration::from_secs(20));
    let latency = started.elapsed();
    eprintln!("first line {latency:?} after `scry log add` returned-or-started");
    let line: Json = serde_json::from_str(&first[0]).unwrap();
    assert_eq!(line["action_id"], id.as_str());
    assert!(line["message"].as_str().unwrap().starts_with("id="));
    assert_eq!(line["tid"].as_i64(), Some(target.pid() as i64));
    // The issue's goal is under a second; the test allows a loaded machine more.
    assert!(latency < Duration::from_secs(10), "{latency:?}");
}

#[test]
fn actions_target_agents_by_tag_including_agents_that_come_later() {
    let dir = TempDir::new("tiers-tags");
    let port = free_port();
    let server = start_server(&dir.join("data"), port, &[], None);
    let a = Target::spawn("loop-O0", &["--interval-us", "20000"]);
    let b = Target::spawn("loop-O0", &["--interval-us", "20000"]);
    let _agent_a = start_agent(&server, a.pid(), &["env=a", "svc=orders"], &[]);
    let _agent_b = start_agent(&server, b.pid(), &["env=b", "svc=orders"], &[]);
    let created = client(
        &server.url,
        &server.admin,
        &["log", "add", &loc(), "id={o->id}", "--tag", "env=a"],
    );
    let id = created[0]["id"].as_str().unwrap().to_string();
    let agents = client(&server.url, &server.admin, &["agents"]);
    let agent_of = |pid: i32| -> String {
        agents[0]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["pid"].as_i64() == Some(pid as i64))
            .map(|x| x["id"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let (agent_a, agent_b) = (agent_of(a.pid()), agent_of(b.pid()));
    assert!(eventually(20, || !logs(&server, &id).is_empty()));
    // An agent that registers after the action, with a matching tag, gets it too.
    let c = Target::spawn("loop-O0", &["--interval-us", "20000"]);
    let _agent_c = start_agent(&server, c.pid(), &["env=a"], &[]);
    assert!(eventually(30, || {
        logs(&server, &id)
            .iter()
            .any(|l| l["tid"].as_i64() == Some(c.pid() as i64))
    }));
    let lines = logs(&server, &id);
    let pids: std::collections::BTreeSet<i64> =
        lines.iter().filter_map(|l| l["tid"].as_i64()).collect();
    assert!(pids.contains(&(a.pid() as i64)) && pids.contains(&(c.pid() as i64)));
    assert!(
        !pids.contains(&(b.pid() as i64)),
        "agent b (env=b) got the action"
    );
    let actions = client(&server.url, &server.admin, &["actions"]);
    let states = &actions[0][0]["states"];
    assert_eq!(states[&agent_a]["state"], "active", "{actions:?}");
    assert!(states.get(&agent_b).is_none(), "{actions:?}");
}

#[test]
fn a_server_restart_loses_nothing_acknowledged_and_probes_stay() {
    let dir = TempDir::new("tiers-restart");
    let data = dir.join("data");
    let port = free_port();
    let mut server = start_server(&data, port, &[], None);
    let target = Target::spawn("loop-O0", &["--interval-us", "20000"]);
    let mut agent = start_agent(&server, target.pid(), &["svc=r"], &[]);
    let created = client(
        &server.url,
        &server.admin,
        &["log", "add", &loc(), "id={o->id}", "--tag", "svc=r"],
    );
    let id = created[0]["id"].as_str().unwrap().to_string();
    assert!(eventually(20, || logs(&server, &id).len() >= 10));
    let before = logs(&server, &id);
    // Stop the server (it commits and stops), start it again on the same data.
    server.process.signal(libc::SIGTERM);
    assert!(server.process.wait(Duration::from_secs(30)).success());
    std::thread::sleep(Duration::from_secs(2));
    let admin = server.admin.clone();
    server = start_server(&data, port, &[], Some(&admin));
    // Everything acknowledged before is there: the action, and every line, unchanged.
    let actions = client(&server.url, &server.admin, &["actions"]);
    assert_eq!(actions[0][0]["id"], id.as_str(), "{actions:?}");
    let after = logs(&server, &id);
    for l in &before {
        assert!(
            after
                .iter()
                .any(|x| x["seq"] == l["seq"] && x["message"] == l["message"]),
            "line {l} lost in the restart"
        );
    }
    // The agent kept its probe (planted once) and lines keep coming, newer ones included.
    let last = before.last().unwrap()["seq"].as_u64().unwrap();
    assert!(eventually(30, || {
        logs(&server, &id)
            .iter()
            .any(|l| l["seq"].as_u64().unwrap() > last + 5)
    }));
    let planted = agent
        .stderr()
        .iter()
        .filter(|l| l.contains("planted at"))
        .count();
    assert_eq!(planted, 1, "{:?}", agent.stderr());
    agent.signal(libc::SIGTERM);
    assert!(agent.wait(Duration::from_secs(20)).success());
    assert_eq!(tracer_pid(target.pid()), 0);
    code_bytes_match_file(target.pid(), testbin("loop-O0")).unwrap();
}

/// The program's own loop time per call, from `--timing FILE`.
fn per_call_ns(path: &std::path::Path) -> f64 {
    let line = std::fs::read_to_string(path).unwrap();
    let kv = parse_kv(line.trim());
    kv["loop_ns"].parse::<f64>().unwrap() / kv["iterations"].parse::<f64>().unwrap()
}

#[test]
fn with_the_server_down_the_program_runs_at_its_own_pace_and_drops_are_counted() {
    let dir = TempDir::new("tiers-down");
    // The program alone.
    let alone = dir.join("alone");
    let mut t = Target::spawn(
        "loop-O0",
        &[
            "--iterations",
            "4000",
            "--interval-us",
            "1000",
            "--timing",
            alone.to_str().unwrap(),
        ],
    );
    assert!(
        t.wait_exit(Duration::from_secs(60))
            .is_some_and(|s| s.success())
    );
    let unprobed = per_call_ns(&alone);

    let data = dir.join("data");
    let port = free_port();
    let mut server = start_server(&data, port, &[], None);
    let probed = dir.join("probed");
    let mut target = Target::spawn(
        "loop-O0",
        &[
            "--iterations",
            "16000",
            "--interval-us",
            "1000",
            "--timing",
            probed.to_str().unwrap(),
        ],
    );
    // A small queue, so ten seconds without the server overflow it.
    let mut agent = start_agent(&server, target.pid(), &["svc=d"], &["--queue", "50"]);
    let created = client(
        &server.url,
        &server.admin,
        &["log", "add", &loc(), "id={o->id}", "--tag", "svc=d"],
    );
    let id = created[0]["id"].as_str().unwrap().to_string();
    assert!(eventually(20, || !logs(&server, &id).is_empty()));
    server.process.signal(libc::SIGTERM);
    assert!(server.process.wait(Duration::from_secs(30)).success());
    std::thread::sleep(Duration::from_secs(10));
    let admin = server.admin.clone();
    server = start_server(&data, port, &[], Some(&admin));
    // After the server is back, the agent reports how many events it dropped.
    let mut dropped = 0;
    assert!(
        eventually(30, || {
            let agents = client(&server.url, &server.admin, &["agents"]);
            dropped = agents[0][0]["dropped_events"].as_u64().unwrap_or(0);
            dropped > 0
        }),
        "no dropped events reported; agent: {:?}",
        agent.stderr()
    );
    assert!(
        target
            .wait_exit(Duration::from_secs(60))
            .is_some_and(|s| s.success())
    );
    let with_agent = per_call_ns(&probed);
    let slowdown = with_agent / unprobed - 1.0;
    eprintln!(
        "per call: alone {:.0} ns, probed with the server down 10 s {:.0} ns ({:+.2} %); {dropped} events dropped and reported",
        unprobed,
        with_agent,
        slowdown * 100.0
    );
    assert!(slowdown.abs() < 0.05, "{:+.2} %", slowdown * 100.0);
    agent.signal(libc::SIGTERM);
    let _ = agent.wait(Duration::from_secs(20));
}

#[test]
fn metrics_counter_tictoc_duration_and_value_reach_the_server_and_prometheus() {
    let dir = TempDir::new("tiers-metrics");
    let port = free_port();
    let server = start_server(&dir.join("data"), port, &[], None);
    let target = Target::spawn("loop-O0", &["--interval-us", "2000"]);
    let _agent = start_agent(&server, target.pid(), &["svc=m"], &["--overhead", "off"]);
    let line = loc();
    let ids: Vec<String> = [
        vec!["metric", "add", "counter", line.as_str(), "--tag", "svc=m"],
        vec![
            "metric",
            "add",
            "tictoc",
            "process_order",
            "--end",
            line.as_str(),
            "--tag",
            "svc=m",
        ],
        vec![
            "metric",
            "add",
            "duration",
            "process_order",
            "--tag",
            "svc=m",
        ],
        vec![
            "metric",
            "add",
            "value",
            line.as_str(),
            "--expr",
            "o->qty",
            "--tag",
            "svc=m",
        ],
    ]
    .iter()
    .map(|args| {
        client(&server.url, &server.admin, args)[0]["id"]
            .as_str()
            .unwrap()
            .to_string()
    })
    .collect();
    let series = |id: &str| -> Option<Json> {
        client(&server.url, &server.admin, &["metrics"])[0]
            .as_array()?
            .iter()
            .find(|m| m["action_id"] == id)
            .cloned()
    };
    assert!(
        eventually(30, || ids.iter().all(
            |id| series(id).is_some_and(|m| m["count"].as_u64().unwrap_or(0) >= 50)
        )),
        "metrics: {:?}",
        client(&server.url, &server.admin, &["metrics"])
    );
    let counter = series(&ids[0]).unwrap();
    let tictoc = series(&ids[1]).unwrap();
    let duration = series(&ids[2]).unwrap();
    let value = series(&ids[3]).unwrap();
    assert_eq!(counter["kind"], "counter");
    // Times are positive and far below the 2 ms between calls; qty is 1..=7.
    for m in [&tictoc, &duration] {
        let mean = m["sum"].as_f64().unwrap() / m["count"].as_f64().unwrap();
        assert!(mean > 0.0 && mean < 0.002, "{m}");
    }
    let mean_qty = value["sum"].as_f64().unwrap() / value["count"].as_f64().unwrap();
    assert!((1.0..=7.0).contains(&mean_qty), "{value}");
    // The Prometheus exposition, ready to scrape.
    let text = {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        use std::io::{Read, Write};
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            server.admin
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    assert!(text.contains("scry_hits_total{"), "{text}");
    assert!(text.contains(&format!("action=\"{}\"", ids[2])), "{text}");
    assert!(
        text.contains("_bucket{") && text.contains("le=\"+Inf\""),
        "{text}"
    );
}

#[test]
fn an_agent_started_by_name_follows_the_process_when_it_restarts() {
    require_ptrace();
    let dir = TempDir::new("tiers-name");
    let port = free_port();
    let server = start_server(&dir.join("data"), port, &[], None);
    // A copy of the program under a name no other test uses.
    let bin = dir.join("scry-follow-me");
    std::fs::copy(testbin("loop-O0"), &bin).unwrap();
    let spawn = || {
        let mut cmd = std::process::Command::new(&bin);
        cmd.args(["--interval-us", "20000"]);
        Target::from_command(cmd, "scry-follow-me")
    };
    let first = spawn();
    let agent_token = token(&server, "agent", &[]);
    let mut agent = Scry::start(&[
        "agent",
        "--server",
        &server.url,
        "--token",
        &agent_token,
        "--name",
        "scry-follow-me",
        "--tag",
        "svc=n",
    ]);
    agent.wait_stderr("registered with", Duration::from_secs(30));
    let created = client(
        &server.url,
        &server.admin,
        &["log", "add", &loc(), "id={o->id}", "--tag", "svc=n"],
    );
    let id = created[0]["id"].as_str().unwrap().to_string();
    let from = |pid: i32| {
        logs(&server, &id)
            .iter()
            .any(|l| l["tid"].as_i64() == Some(pid as i64))
    };
    assert!(eventually(20, || from(first.pid())));
    let first_pid = first.pid();
    drop(first); // killed
    let second = spawn();
    assert_ne!(second.pid(), first_pid);
    assert!(
        eventually(30, || from(second.pid())),
        "no line from the new process: {:?}",
        agent.stderr()
    );
    // One agent all along: the server knows one agent id.
    let agents = client(&server.url, &server.admin, &["agents"]);
    assert_eq!(agents[0].as_array().unwrap().len(), 1, "{agents:?}");
    assert_eq!(agents[0][0]["pid"].as_i64(), Some(second.pid() as i64));
}
