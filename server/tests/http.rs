//! The server over real HTTP on 127.0.0.1: a real server per test (its own runtime on a
//! thread, its own data directory), a minimal HTTP/1.1 client over std's TcpStream.

mod common;

use common::*;
use scry_server::{Retention, routes::ROUTES};
use serde_json::{Value, json};
use std::time::Duration;

// ---------------------------------------------------------------------------------------
// 1. Desired state by tag, for agents registered before and after the action
// ---------------------------------------------------------------------------------------

#[test]
fn desired_state_follows_tags() {
    let dir = data_dir("desired");
    let s = Server::start(&dir);
    let first = s.register("h1", json!({"service": "orders", "env": "prod"}));
    let other = s.register("h2", json!({"service": "billing", "env": "prod"}));
    assert!(first.starts_with("a-") && first != other);

    let action = s.post(
        "/v1/actions",
        json!({"kind": "log", "location": "loop.c:62", "template": "order {o->id}",
               "target": {"tags": {"service": "orders"}}}),
    );
    let id = action["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("act-"), "{action}");
    assert_eq!(action["template"], "order {o->id}");
    assert!(action["created_at"].as_str().unwrap().ends_with('Z'));

    let d = s.get(&format!("/v1/agents/{first}/desired"));
    assert_eq!(action_ids(&d), vec![id.clone()]);
    let v1 = d["version"].as_u64().unwrap();
    assert!(v1 > 0);
    assert_eq!(d["actions"][0]["location"], "loop.c:62");

    // An agent registered after the action, with the tags, gets it too.
    let late = s.register("h3", json!({"service": "orders", "zone": "b"}));
    assert_eq!(
        action_ids(&s.get(&format!("/v1/agents/{late}/desired"))),
        vec![id.clone()]
    );
    // One with other tags does not.
    assert!(action_ids(&s.get(&format!("/v1/agents/{other}/desired"))).is_empty());

    // Targets by agent id, and the empty target (all agents).
    let by_id = s.post(
        "/v1/actions",
        json!({"kind": "snapshot", "location": "main", "target": {"agents": [other]}}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let all = s.post(
        "/v1/actions",
        json!({"kind": "metric", "metric": "counter", "location": "f"}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        action_ids(&s.get(&format!("/v1/agents/{other}/desired"))),
        vec![by_id.clone(), all.clone()]
    );
    assert_eq!(
        action_ids(&s.get(&format!("/v1/agents/{first}/desired"))),
        vec![id.clone(), all.clone()]
    );

    // Reports land in the action's per-agent states; re-registering keeps id and states.
    s.post(
        &format!("/v1/agents/{first}/report"),
        json!({"states": [{"action_id": id, "state": "active", "reason": "", "hits": 3}], "dropped_events": 2}),
    );
    let again = s.post(
        "/v1/agents/register",
        json!({"host": "h1", "pid": 43, "executable": "/usr/bin/orders", "build_id": "abcd",
               "tags": {"service": "orders", "env": "prod"}, "agent_id": first}),
    );
    assert_eq!(again["agent_id"], first.as_str());
    let a = s.get(&format!("/v1/actions/{id}"));
    assert_eq!(a["states"][&first]["state"], "active");
    assert_eq!(a["states"][&first]["hits"], 3);
    let agents = s.get("/v1/agents");
    let me = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == first.as_str())
        .unwrap();
    assert_eq!(me["pid"], 43);
    assert_eq!(me["dropped_events"], 2);
    assert_eq!(me["status"], "online");
    assert_eq!(agents.as_array().unwrap().len(), 3);
    // An unknown id is not taken over: a new one is made.
    let fresh = s.post(
        "/v1/agents/register",
        json!({"host": "h9", "pid": 1, "executable": "x", "build_id": "", "tags": {}, "agent_id": "a-unknown"}),
    );
    assert_ne!(fresh["agent_id"], "a-unknown");

    // The desired state carries only this agent's state of each action.
    let d = s.get(&format!("/v1/agents/{first}/desired"));
    assert_eq!(d["actions"][0]["states"].as_object().unwrap().len(), 1);
    assert!(d["version"].as_u64().unwrap() > v1);
    s.stop();
}

// ---------------------------------------------------------------------------------------
// 2. Long poll of the desired state
// ---------------------------------------------------------------------------------------

#[test]
fn desired_state_long_poll() {
    let dir = data_dir("longpoll");
    let s = Server::start(&dir);
    let agent = s.register("h1", json!({"service": "orders"}));
    let v = s.get(&format!("/v1/agents/{agent}/desired"))["version"]
        .as_u64()
        .unwrap();

    // A stale version answers at once, whatever the wait.
    let stale = s.get(&format!(
        "/v1/agents/{agent}/desired?version={}&wait=60",
        v - 1
    ));
    assert_eq!(stale["version"].as_u64().unwrap(), v);

    // The current version with a short wait: the same state after the wait.
    let same = s.get(&format!("/v1/agents/{agent}/desired?version={v}&wait=0.2"));
    assert_eq!(same["version"].as_u64().unwrap(), v);

    // The current version waits until an action is added, and answers with it.
    let addr = s.addr;
    let path = format!("/v1/agents/{agent}/desired?version={v}&wait=60");
    let tok = s.admin.clone();
    let poll = std::thread::spawn(move || call(addr, Some(&tok), "GET", &path, None));
    // Give the poll time to be waiting (if it is not yet, it answers at once with the new
    // version: the assertions below hold either way).
    std::thread::sleep(Duration::from_millis(300));
    let a = s.post(
        "/v1/actions",
        json!({"kind": "log", "location": "loop.c:62", "template": "x", "target": {"tags": {"service": "orders"}}}),
    );
    let r = poll.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let d = r.json();
    assert!(d["version"].as_u64().unwrap() > v);
    assert_eq!(action_ids(&d), vec![a["id"].as_str().unwrap().to_string()]);

    // Deleting bumps the version and empties the desired state.
    let v2 = d["version"].as_u64().unwrap();
    let del = s.call(
        "DELETE",
        &format!("/v1/actions/{}", a["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(del.status, 200);
    assert_eq!(del.json(), json!({}));
    let d = s.get(&format!("/v1/agents/{agent}/desired?version={v2}&wait=60"));
    assert!(d["version"].as_u64().unwrap() > v2);
    assert!(action_ids(&d).is_empty());

    // A long poll in flight answers when the server stops.
    let path = format!(
        "/v1/agents/{agent}/desired?version={}&wait=60",
        d["version"]
    );
    let tok = s.admin.clone();
    let poll = std::thread::spawn(move || call(addr, Some(&tok), "GET", &path, None));
    std::thread::sleep(Duration::from_millis(200));
    s.stop();
    assert_eq!(poll.join().unwrap().status, 200);
}

// ---------------------------------------------------------------------------------------
// 3. Events: logs (paging, long poll), snapshots, metrics
// ---------------------------------------------------------------------------------------

#[test]
fn events_round_trip() {
    let dir = data_dir("events");
    let s = Server::start(&dir);
    let agent = s.register("h1", json!({"service": "orders"}));
    let log = s.post(
        "/v1/actions",
        json!({"kind": "log", "location": "loop.c:62", "template": "order {o->id}"}),
    );
    let log = log["id"].as_str().unwrap().to_string();
    let snap = s.post(
        "/v1/actions",
        json!({"kind": "snapshot", "location": "process_order"}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let counter = s.post(
        "/v1/actions",
        json!({"kind": "metric", "metric": "counter", "location": "loop.c:70"}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let dur = s.post(
        "/v1/actions",
        json!({"kind": "metric", "metric": "duration", "location": "process_order"}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();

    let lines: Vec<Value> = (1..=5).map(|n| log_line(&log, n)).collect();
    let snapshot = json!({"kind": "snapshot", "frames": [
        {"index": 0, "function": "process_order", "file": "orders.c", "line": 31},
        {"index": 1, "function": "main", "file": "orders.c", "line": 90}]});
    let ack = s.post(
        &format!("/v1/agents/{agent}/events"),
        json!({
            "logs": lines,
            "snapshots": [{"action_id": snap, "time": "2026-01-01T00:00:01Z", "tid": 8, "snapshot": snapshot}],
            "metrics": [
                {"action_id": counter, "time": "2026-01-01T00:00:02Z", "kind": "counter", "count": 10},
                {"action_id": dur, "time": "2026-01-01T00:00:02Z", "kind": "duration", "count": 3, "sum": 0.012,
                 "buckets": [[0.001, 1], [0.01, 2]]},
            ],
            "dropped": 0
        }),
    );
    assert_eq!(ack, json!({"stored": 8}));
    // A second interval of samples adds up.
    s.post(
        &format!("/v1/agents/{agent}/events"),
        json!({"metrics": [
            {"action_id": counter, "time": "2026-01-01T00:00:12Z", "kind": "counter", "count": 5},
            {"action_id": dur, "time": "2026-01-01T00:00:12Z", "kind": "duration", "count": 1, "sum": 0.5,
             "buckets": [[0.01, 0], [1.0, 1]]}
        ]}),
    );

    // Logs: ascending seq, paging with after=.
    let all = s.get("/v1/logs");
    let all_seqs = seqs(&all);
    assert_eq!(all_seqs.len(), 5);
    assert!(all_seqs.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(all[0]["agent_id"], agent.as_str());
    assert_eq!(all[0]["message"], "order 1");
    assert_eq!(all[0]["values"]["o->id"], 1);
    let page1 = s.get(&format!("/v1/logs?action={log}&limit=2"));
    assert_eq!(seqs(&page1), all_seqs[..2]);
    let page2 = s.get(&format!(
        "/v1/logs?action={log}&after={}&limit=2",
        all_seqs[1]
    ));
    assert_eq!(seqs(&page2), all_seqs[2..4]);
    assert!(seqs(&s.get("/v1/logs?action=act-999")).is_empty());
    let last = *all_seqs.last().unwrap();
    assert!(seqs(&s.get(&format!("/v1/logs?after={last}"))).is_empty());

    // Long poll: waits for the next line.
    let addr = s.addr;
    let path = format!("/v1/logs?action={log}&after={last}&wait=60");
    let tok = s.admin.clone();
    let poll = std::thread::spawn(move || call(addr, Some(&tok), "GET", &path, None));
    std::thread::sleep(Duration::from_millis(300));
    // A line of another action does not end the wait of a filtered poll...
    s.post(
        &format!("/v1/agents/{agent}/events"),
        json!({"logs": [log_line(&counter, 0)]}),
    );
    // ...a line of its action does.
    s.post(
        &format!("/v1/agents/{agent}/events"),
        json!({"logs": [log_line(&log, 6)]}),
    );
    let got = poll.join().unwrap().json();
    assert_eq!(got.as_array().unwrap().len(), 1, "{got}");
    assert_eq!(got[0]["message"], "order 6");
    assert_eq!(got[0]["action_id"], log.as_str());

    // Snapshots: the list with the top frame, then one with its body.
    let list = s.get(&format!("/v1/snapshots?action={snap}"));
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["top"], "process_order orders.c:31");
    assert_eq!(list[0]["tid"], 8);
    let one = s.get(&format!("/v1/snapshots/{}", list[0]["id"]));
    assert_eq!(one["snapshot"], snapshot);
    assert_eq!(one["agent_id"], agent.as_str());
    assert_eq!(s.call("GET", "/v1/snapshots/999", None).status, 404);
    assert_eq!(s.call("GET", "/v1/snapshots/abc", None).status, 400);

    // Metric series: totals per (action, agent), cumulative buckets.
    let series = s.get("/v1/metrics");
    let find = |a: &str| {
        series
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["action_id"] == a)
            .unwrap()
            .clone()
    };
    let c = find(&counter);
    assert_eq!(c["count"], 15);
    assert_eq!(c["kind"], "counter");
    assert_eq!(c["location"], "loop.c:70");
    assert_eq!(c["agent_id"], agent.as_str());
    let d = find(&dur);
    assert_eq!(d["count"], 4);
    assert_eq!(d["buckets"], json!([[0.001, 1], [0.01, 3], [1.0, 4]]));
    assert!((d["sum"].as_f64().unwrap() - 0.512).abs() < 1e-9);

    // Prometheus text.
    let r = s.call("GET", "/metrics", None);
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text();
    let labels =
        |a: &str, loc: &str| format!("action=\"{a}\",agent=\"{agent}\",location=\"{loc}\"");
    for want in [
        "# TYPE scry_hits_total counter".to_string(),
        format!("scry_hits_total{{{}}} 15", labels(&counter, "loop.c:70")),
        "# TYPE scry_duration_seconds histogram".to_string(),
        format!(
            "scry_duration_seconds_bucket{{{},le=\"0.001\"}} 1",
            labels(&dur, "process_order")
        ),
        format!(
            "scry_duration_seconds_bucket{{{},le=\"0.01\"}} 3",
            labels(&dur, "process_order")
        ),
        format!(
            "scry_duration_seconds_bucket{{{},le=\"1\"}} 4",
            labels(&dur, "process_order")
        ),
        format!(
            "scry_duration_seconds_bucket{{{},le=\"+Inf\"}} 4",
            labels(&dur, "process_order")
        ),
        format!(
            "scry_duration_seconds_sum{{{}}} 0.512",
            labels(&dur, "process_order")
        ),
        format!(
            "scry_duration_seconds_count{{{}}} 4",
            labels(&dur, "process_order")
        ),
    ] {
        assert!(
            text.lines().any(|l| l == want),
            "missing {want:?} in\n{text}"
        );
    }

    // Events of an unknown agent: 404, nothing stored.
    let r = s.call(
        "POST",
        "/v1/agents/a-nobody/events",
        Some(&json!({"logs": [log_line(&log, 9)]})),
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "unknown agent");
    assert_eq!(seqs(&s.get("/v1/logs")).len(), 7);
    s.stop();
}

// ---------------------------------------------------------------------------------------
// 4. A restart loses nothing acknowledged
// ---------------------------------------------------------------------------------------

#[test]
fn restart_keeps_everything() {
    let dir = data_dir("restart");
    let s = Server::start(&dir);
    let agent = s.register("h1", json!({"service": "orders"}));
    let action = s.post(
        "/v1/actions",
        json!({"kind": "log", "location": "loop.c:62", "template": "order {o->id}",
               "target": {"tags": {"service": "orders"}}, "quota": {"max_hits": 10}}),
    );
    let id = action["id"].as_str().unwrap().to_string();
    s.post(
        &format!("/v1/agents/{agent}/report"),
        json!({"states": [{"action_id": id, "state": "paused", "reason": "rate", "hits": 9}], "dropped_events": 4}),
    );
    s.post(
        &format!("/v1/agents/{agent}/events"),
        json!({"logs": [log_line(&id, 1), log_line(&id, 2)],
               "snapshots": [{"action_id": id, "time": "t", "tid": 1, "snapshot": {"frames": []}}]}),
    );
    let desired = s.get(&format!("/v1/agents/{agent}/desired"));
    let logs = s.get("/v1/logs");
    let actions = s.get("/v1/actions");
    s.stop();

    let s = Server::start(&dir);
    assert_eq!(s.get(&format!("/v1/agents/{agent}/desired")), desired);
    assert_eq!(s.get("/v1/logs"), logs);
    assert_eq!(s.get("/v1/actions"), actions);
    assert_eq!(actions[0]["states"][&agent]["state"], "paused");
    assert_eq!(actions[0]["quota"]["max_hits"], 10);
    let agents = s.get("/v1/agents");
    assert_eq!(agents[0]["id"], agent.as_str());
    assert_eq!(agents[0]["dropped_events"], 4);
    assert_eq!(s.get("/v1/snapshots").as_array().unwrap().len(), 1);

    // The counters go on: a new action and a new line do not reuse ids, the version grows.
    let v = desired["version"].as_u64().unwrap();
    let next = s.post("/v1/actions", json!({"kind": "log", "location": "x.c:1"}));
    assert_ne!(next["id"], id.as_str());
    assert!(
        s.get(&format!("/v1/agents/{agent}/desired"))["version"]
            .as_u64()
            .unwrap()
            > v
    );
    s.post(
        &format!("/v1/agents/{agent}/events"),
        json!({"logs": [log_line(&id, 3)]}),
    );
    let after = seqs(&s.get("/v1/logs"));
    assert_eq!(after.len(), 3);
    assert!(after[2] > after[1]);
    s.stop();
}

// ---------------------------------------------------------------------------------------
// 5. Errors
// ---------------------------------------------------------------------------------------

#[test]
fn errors_are_json_with_a_fix() {
    let dir = data_dir("errors");
    let s = Server::start(&dir);
    let raw = |method: &str, path: &str, body: &str| {
        call(s.addr, Some(&s.admin), method, path, Some(body.as_bytes()))
    };

    let v = assert_error(&raw("POST", "/v1/actions", "{\"kind\": "), 400);
    assert_eq!(v["error"], "malformed JSON");
    let v = assert_error(
        &raw("POST", "/v1/actions", "{\"kind\": 5, \"location\": \"x\"}"),
        400,
    );
    assert_eq!(v["error"], "invalid request body");
    assert_error(&raw("POST", "/v1/actions", "{\"location\": \"x\"}"), 400);
    assert_error(&raw("POST", "/v1/actions", ""), 400);
    assert_error(
        &raw("POST", "/v1/agents/register", "{\"host\": \"h\"}"),
        400,
    );
    // Unknown fields are fine.
    let ok = raw(
        "POST",
        "/v1/actions",
        "{\"kind\": \"log\", \"location\": \"a.c:1\", \"future\": 1}",
    );
    assert_eq!(ok.status, 200, "{}", ok.text());

    // Validation, each saying what to fix.
    for (body, word) in [
        (json!({"kind": "metric", "location": "a.c:1"}), "metric"),
        (
            json!({"kind": "metric", "metric": "tictoc", "location": "a.c:1"}),
            "end_location",
        ),
        (
            json!({"kind": "metric", "metric": "value", "location": "a.c:1"}),
            "template",
        ),
        (json!({"kind": "log", "location": "  "}), "location"),
        (
            json!({"kind": "log", "metric": "counter", "location": "a.c:1"}),
            "metric",
        ),
        (
            json!({"kind": "log", "location": "a.c:1", "quota": {"lines_per_sec": -1.0}}),
            "lines_per_sec",
        ),
    ] {
        let v = assert_error(&s.call("POST", "/v1/actions", Some(&body)), 400);
        assert!(v["detail"].as_str().unwrap().contains(word), "{body} → {v}");
    }
    let tictoc = s.call(
        "POST",
        "/v1/actions",
        Some(&json!({"kind": "metric", "metric": "tictoc", "location": "a.c:1", "end_location": "a.c:9"})),
    );
    assert_eq!(tictoc.status, 200);

    // Bad query parameters.
    assert_error(&s.call("GET", "/v1/logs?after=abc", None), 400);
    assert_error(&s.call("GET", "/v1/logs?wait=-3", None), 400);
    assert_error(&s.call("GET", "/v1/logs?limit=0", None), 400);

    // Unknown things.
    let v = assert_error(&s.call("GET", "/v1/actions/act-999", None), 404);
    assert_eq!(v["error"], "unknown action");
    assert_error(&s.call("DELETE", "/v1/actions/act-999", None), 404);
    assert_error(&s.call("GET", "/v1/agents/a-none/desired", None), 404);
    assert_error(
        &s.call(
            "POST",
            "/v1/agents/a-none/report",
            Some(&json!({"states": []})),
        ),
        404,
    );
    assert_error(&s.call("GET", "/v1/nothing", None), 404);

    // Wrong method.
    let r = s.call("PUT", "/v1/actions", None);
    assert_error(&r, 405);
    assert_eq!(r.header("allow"), Some("POST, GET"));

    // Too large: refused from its Content-Length, before it is read...
    let head = format!(
        "POST /v1/agents/x/events HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n\r\n",
        s.addr,
        s.admin,
        9 << 20
    );
    assert_error(&exchange(s.addr, head.as_bytes()), 413);
    // ...and chunked, once past the limit.
    let mut req = format!(
        "POST /v1/actions HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        s.addr, s.admin
    )
    .into_bytes();
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..9 {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(&chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    assert_error(&exchange(s.addr, &req), 413);
    s.stop();
}

// ---------------------------------------------------------------------------------------
// 6. The OpenAPI document is in step with the router
// ---------------------------------------------------------------------------------------

#[test]
fn openapi_matches_the_routes() {
    let dir = data_dir("openapi");
    let s = Server::start(&dir);
    let doc = s.get("/v1/openapi.json");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.0"));
    let mut documented = scry_server::openapi::operations(&doc);
    let mut routed: Vec<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    documented.sort();
    routed.sort();
    assert_eq!(documented, routed);

    // Every route of the table is answered by the dispatcher (not 404 "no such route", not 405).
    for r in ROUTES {
        let path = r.path.replace("{id}", "x");
        let body = (r.method == "POST").then(|| json!({}));
        let resp = s.call(r.method, &path, body.as_ref());
        assert_ne!(resp.status, 405, "{} {path}", r.method);
        if resp.status == 404 {
            assert_ne!(resp.json()["error"], "no such route", "{} {path}", r.method);
        }
    }
    s.stop();
}

// ---------------------------------------------------------------------------------------
// 7. Retention
// ---------------------------------------------------------------------------------------

#[test]
fn retention_keeps_the_newest() {
    let dir = data_dir("retention");
    let small = Retention {
        max_log_lines: 3,
        max_snapshots: 1,
        ..Retention::default()
    };
    let s = Server::start_with(&dir, small.clone());
    let agent = s.register("h1", json!({}));
    let id = s.post("/v1/actions", json!({"kind": "log", "location": "a.c:1"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let lines: Vec<Value> = (1..=5).map(|n| log_line(&id, n)).collect();
    s.post(
        &format!("/v1/agents/{agent}/events"),
        json!({"logs": lines}),
    );
    let kept = s.get("/v1/logs");
    let messages: Vec<&str> = kept
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["order 3", "order 4", "order 5"]);

    s.post(
        &format!("/v1/agents/{agent}/events"),
        json!({"logs": [log_line(&id, 6)]}),
    );
    let kept = s.get("/v1/logs");
    let messages: Vec<&str> = kept
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["order 4", "order 5", "order 6"]);
    let snap = |n: u32| json!({"action_id": id, "time": "t", "tid": n, "snapshot": {}});
    s.post(
        &format!("/v1/agents/{agent}/events"),
        json!({"snapshots": [snap(1), snap(2)]}),
    );
    let snaps = s.get("/v1/snapshots");
    assert_eq!(snaps.as_array().unwrap().len(), 1);
    assert_eq!(snaps[0]["tid"], 2);
    s.stop();

    // At start: a smaller limit trims what is there.
    let s = Server::start_with(
        &dir,
        Retention {
            max_log_lines: 1,
            ..small
        },
    );
    let kept = s.get("/v1/logs");
    assert_eq!(kept.as_array().unwrap().len(), 1);
    assert_eq!(kept[0]["message"], "order 6");
    s.stop();
}

// ---------------------------------------------------------------------------------------
// 8. Concurrent writers: every acknowledged event is stored (the writer batches them)
// ---------------------------------------------------------------------------------------

#[test]
fn concurrent_uploads_are_all_stored() {
    let dir = data_dir("concurrent");
    let s = Server::start(&dir);
    let agent = s.register("h1", json!({}));
    let id = s.post("/v1/actions", json!({"kind": "log", "location": "a.c:1"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (addr, agent, id, tok) = (s.addr, agent.clone(), id.clone(), s.admin.clone());
            std::thread::spawn(move || {
                let mut acked = 0;
                for i in 0..20 {
                    let body =
                        json!({"logs": [log_line(&id, t * 100 + i), log_line(&id, t * 100 + i)]});
                    let r = call(
                        addr,
                        Some(&tok),
                        "POST",
                        &format!("/v1/agents/{agent}/events"),
                        Some(body.to_string().as_bytes()),
                    );
                    assert_eq!(r.status, 200, "{}", r.text());
                    acked += r.json()["stored"].as_u64().unwrap();
                }
                acked
            })
        })
        .collect();
    let acked: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(acked, 8 * 20 * 2);
    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let page = seqs(&s.get(&format!("/v1/logs?after={after}&limit=1000")));
        if page.is_empty() {
            break;
        }
        after = *page.last().unwrap();
        seen.extend(page);
    }
    assert_eq!(seen.len() as u64, acked);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    s.stop();
}

// ---------------------------------------------------------------------------------------
// 9. A crash right after an acknowledgement loses nothing
// ---------------------------------------------------------------------------------------

#[test]
fn acknowledged_data_survives_a_crash() {
    let dir = data_dir("crash");
    let s = Server::start(&dir);
    let agent = s.register("h1", json!({"service": "orders"}));
    let id = s.post("/v1/actions", json!({"kind": "log", "location": "a.c:1"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.post(
        &format!("/v1/agents/{agent}/events"),
        json!({"logs": [log_line(&id, 1), log_line(&id, 2)]}),
    );
    // The files as a crash would leave them now: the database and its write-ahead log, the
    // server still running (no checkpoint, no clean close).
    let copy = data_dir("crash-copy");
    std::fs::create_dir_all(&copy).unwrap();
    for f in ["scry.db", "scry.db-wal"] {
        std::fs::copy(dir.join(f), copy.join(f)).unwrap();
    }
    let logs = s.get("/v1/logs");
    let actions = s.get("/v1/actions");
    s.stop();

    let s = Server::start(&copy);
    assert_eq!(s.get("/v1/logs"), logs);
    assert_eq!(s.get("/v1/actions"), actions);
    assert_eq!(s.get("/v1/agents")[0]["id"], agent.as_str());
    s.stop();
}
