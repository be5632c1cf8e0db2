//! Security and governance over real HTTP: the roles × routes matrix, the audit trail,
//! redaction at ingest, the blocklist, the kill switch, the limits on input.

mod common;

use common::*;
use scry_server::routes::ROUTES;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// 1. The matrix: every route × every role × no/bad/revoked/expired/out-of-scope tokens
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Debug)]
enum R {
    Admin,
    Developer,
    Viewer,
    Agent,
}

const ALL: &[R] = &[R::Admin, R::Developer, R::Viewer, R::Agent];
const AGENT: &[R] = &[R::Admin, R::Agent];
const READ: &[R] = &[R::Admin, R::Developer, R::Viewer];
const WRITE: &[R] = &[R::Admin, R::Developer];
const ADMIN: &[R] = &[R::Admin];

/// What a token of the right role but the wrong tag scope gets.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Scope {
    /// The route is not scoped: same answer as in scope.
    None,
    /// 403.
    Denied,
    /// 200, without anything of the in-scope agent.
    Filtered,
}

/// The expected access of every route. A route missing here fails the test.
const MATRIX: &[(&str, &str, Option<&[R]>, Scope)] = &[
    ("POST", "/v1/agents/register", Some(AGENT), Scope::Denied),
    ("GET", "/v1/agents/{id}/desired", Some(AGENT), Scope::Denied),
    ("POST", "/v1/agents/{id}/report", Some(AGENT), Scope::Denied),
    ("POST", "/v1/agents/{id}/events", Some(AGENT), Scope::Denied),
    ("GET", "/v1/agents", Some(READ), Scope::Filtered),
    ("POST", "/v1/actions", Some(WRITE), Scope::Denied),
    ("GET", "/v1/actions", Some(READ), Scope::Filtered),
    ("GET", "/v1/actions/{id}", Some(READ), Scope::Denied),
    ("DELETE", "/v1/actions/{id}", Some(WRITE), Scope::Denied),
    ("GET", "/v1/logs", Some(READ), Scope::Filtered),
    ("GET", "/v1/snapshots", Some(READ), Scope::Filtered),
    ("GET", "/v1/snapshots/{id}", Some(READ), Scope::Denied),
    ("GET", "/v1/metrics", Some(READ), Scope::Filtered),
    ("GET", "/metrics", Some(READ), Scope::Filtered),
    // None: public, no token needed.
    ("GET", "/v1/openapi.json", None, Scope::None),
    ("POST", "/v1/tokens", Some(ADMIN), Scope::None),
    ("GET", "/v1/tokens", Some(ADMIN), Scope::None),
    ("DELETE", "/v1/tokens/{id}", Some(ADMIN), Scope::None),
    ("GET", "/v1/audit", Some(ADMIN), Scope::None),
    ("POST", "/v1/redactions", Some(ADMIN), Scope::None),
    ("GET", "/v1/redactions", Some(WRITE), Scope::None),
    ("DELETE", "/v1/redactions/{id}", Some(ADMIN), Scope::None),
    ("POST", "/v1/blocklist", Some(ADMIN), Scope::None),
    ("GET", "/v1/blocklist", Some(WRITE), Scope::None),
    ("DELETE", "/v1/blocklist/{id}", Some(ADMIN), Scope::None),
    ("POST", "/v1/detach-all", Some(ADMIN), Scope::None),
    ("POST", "/v1/attach-all", Some(ADMIN), Scope::None),
];

/// What the matrix acts on: an agent tagged env=prod (registered with the agent token),
/// an action, a snapshot, a log line and a metric of it, and the tokens.
struct Fixture {
    agent: String,
    action: String,
    snapshot: u64,
    /// In scope (env=prod) tokens by role.
    admin: String,
    developer: String,
    viewer: String,
    agent_token: String,
    /// Out of scope (env=dev): a developer, a viewer, an agent token.
    developer_dev: String,
    viewer_dev: String,
    agent_dev: String,
    revoked: String,
    expired: String,
}

fn fixture(s: &Server) -> Fixture {
    let prod = json!({"env": "prod"});
    let dev = json!({"env": "dev"});
    let (_, developer) = s.token("developer", prod.clone());
    let (_, viewer) = s.token("viewer", prod.clone());
    let (_, agent_token) = s.token("agent", prod.clone());
    let (_, developer_dev) = s.token("developer", dev.clone());
    let (_, viewer_dev) = s.token("viewer", dev.clone());
    let (_, agent_dev) = s.token("agent", dev.clone());
    let (revoked_id, revoked) = s.token("admin", json!({}));
    assert_eq!(
        s.call("DELETE", &format!("/v1/tokens/{revoked_id}"), None)
            .status,
        200
    );
    let expired = s.post("/v1/tokens", json!({"role": "admin", "expires_secs": 1}))["token"]
        .as_str()
        .unwrap()
        .to_string();
    let agent = s.register_as(
        &agent_token,
        "h1",
        json!({"env": "prod", "service": "orders"}),
    );
    let action = s.post(
        "/v1/actions",
        json!({"kind": "log", "location": "loop.c:62", "target": {"tags": {"env": "prod"}}}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let metric = s.post(
        "/v1/actions",
        json!({"kind": "metric", "metric": "counter", "location": "loop.c:70", "target": {"agents": [agent]}}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.call_as(
        Some(&agent_token),
        "POST",
        &format!("/v1/agents/{agent}/events"),
        Some(&json!({
            "logs": [log_line(&action, 1)],
            "snapshots": [{"action_id": action, "time": "t", "tid": 1, "snapshot": {"frames": []}}],
            "metrics": [{"action_id": metric, "time": "t", "kind": "counter", "count": 3}]
        })),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let snapshot = s.get("/v1/snapshots")[0]["id"].as_u64().unwrap();
    Fixture {
        agent,
        action,
        snapshot,
        admin: s.admin.clone(),
        developer,
        viewer,
        agent_token,
        developer_dev,
        viewer_dev,
        agent_dev,
        revoked,
        expired,
    }
}

/// The concrete path and body of a route for one call. `fresh`: the call is expected to
/// succeed, so a deletion gets a thing of its own to delete.
fn request(
    s: &Server,
    fx: &Fixture,
    method: &str,
    path: &str,
    fresh: bool,
) -> (String, Option<Value>) {
    let a = &fx.agent;
    match (method, path) {
        ("POST", "/v1/agents/register") => (
            path.into(),
            Some(
                json!({"host": "h2", "pid": 7, "executable": "/x", "build_id": "", "tags": {"env": "prod"}}),
            ),
        ),
        ("GET", "/v1/agents/{id}/desired") => (format!("/v1/agents/{a}/desired?wait=0"), None),
        ("POST", "/v1/agents/{id}/report") => (
            format!("/v1/agents/{a}/report"),
            Some(json!({"states": []})),
        ),
        ("POST", "/v1/agents/{id}/events") => {
            (format!("/v1/agents/{a}/events"), Some(json!({"logs": []})))
        }
        ("POST", "/v1/actions") => (
            path.into(),
            Some(json!({"kind": "log", "location": "x.c:1", "target": {"tags": {"env": "prod"}}})),
        ),
        ("GET", "/v1/actions/{id}") => (format!("/v1/actions/{}", fx.action), None),
        ("DELETE", "/v1/actions/{id}") => {
            let id = if fresh {
                s.post(
                    "/v1/actions",
                    json!({"kind": "log", "location": "y.c:1", "target": {"agents": [a]}}),
                )["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            } else {
                fx.action.clone()
            };
            (format!("/v1/actions/{id}"), None)
        }
        ("GET", "/v1/snapshots/{id}") => (format!("/v1/snapshots/{}", fx.snapshot), None),
        ("POST", "/v1/tokens") => (path.into(), Some(json!({"role": "viewer"}))),
        ("DELETE", "/v1/tokens/{id}") => {
            let id = if fresh {
                s.token("viewer", json!({})).0
            } else {
                "tok-1".into()
            };
            (format!("/v1/tokens/{id}"), None)
        }
        ("POST", "/v1/redactions") => {
            (path.into(), Some(json!({"kind": "name", "pattern": "ssn"})))
        }
        ("DELETE", "/v1/redactions/{id}") => {
            let id = if fresh {
                s.post("/v1/redactions", json!({"kind": "name", "pattern": "pin"}))["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            } else {
                "red-1".into()
            };
            (format!("/v1/redactions/{id}"), None)
        }
        ("POST", "/v1/blocklist") => (
            path.into(),
            Some(json!({"kind": "function", "pattern": "never_*_matched"})),
        ),
        ("DELETE", "/v1/blocklist/{id}") => {
            let id = if fresh {
                s.post(
                    "/v1/blocklist",
                    json!({"kind": "function", "pattern": "zz*"}),
                )["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            } else {
                "blk-1".into()
            };
            (format!("/v1/blocklist/{id}"), None)
        }
        ("POST", "/v1/detach-all" | "/v1/attach-all") => (path.into(), None),
        ("GET", p) if !p.contains('{') => (p.into(), None),
        _ => panic!("no request for {method} {path}: add the route to the matrix"),
    }
}

#[test]
fn roles_matrix() {
    let dir = data_dir("matrix");
    let s = Server::start(&dir);
    let fx = fixture(&s);
    // The expired token lasts 1 s.
    std::thread::sleep(Duration::from_millis(1100));

    // Every route has a row, every row a route.
    let routes: HashSet<(&str, &str)> = ROUTES.iter().map(|r| (r.method, r.path)).collect();
    let rows: HashSet<(&str, &str)> = MATRIX.iter().map(|(m, p, _, _)| (*m, *p)).collect();
    assert_eq!(routes, rows, "the matrix and ROUTES differ");

    let bad = format!("scry_{}", "0".repeat(64));
    let mut checked = 0;
    for &(method, path, allowed, scope) in MATRIX {
        let mut expect = |token: Option<&str>, ok: bool, what: &str, fresh: bool| {
            let (p, body) = request(&s, &fx, method, path, fresh);
            let r = s.call_as(token, method, &p, body.as_ref());
            let context = format!("{method} {p} as {what}: {} {}", r.status, r.text());
            if ok {
                assert_eq!(r.status, 200, "{context}");
            } else {
                assert!(r.status == 401 || r.status == 403, "{context}");
                assert_error(&r, r.status);
            }
            assert!(
                r.header("x-request-id")
                    .is_some_and(|id| id.starts_with("req-")),
                "{context}"
            );
            checked += 1;
            r
        };
        let Some(allowed) = allowed else {
            for (t, what) in [
                (None, "nobody"),
                (Some(bad.as_str()), "bad token"),
                (Some(fx.viewer.as_str()), "viewer"),
            ] {
                expect(t, true, what, true);
            }
            continue;
        };
        // No valid token: 401.
        for (t, what) in [
            (None, "no token"),
            (Some(bad.as_str()), "unknown token"),
            (Some("not-a-token"), "malformed token"),
            (Some(fx.revoked.as_str()), "revoked token"),
            (Some(fx.expired.as_str()), "expired token"),
        ] {
            let r = expect(t, false, what, false);
            assert_eq!(r.status, 401, "{method} {path} as {what}");
        }
        // Each role, in scope: allowed, or 403.
        for &role in ALL {
            let token = match role {
                R::Admin => &fx.admin,
                R::Developer => &fx.developer,
                R::Viewer => &fx.viewer,
                R::Agent => &fx.agent_token,
            };
            let ok = allowed.contains(&role);
            let r = expect(Some(token), ok, &format!("{role:?}"), ok);
            if !ok {
                assert_eq!(r.status, 403, "{method} {path} as {role:?}");
            }
        }
        // Each role but admin, out of scope.
        for &role in &ALL[1..] {
            let token = match role {
                R::Developer => &fx.developer_dev,
                R::Viewer => &fx.viewer_dev,
                _ => &fx.agent_dev,
            };
            let what = format!("{role:?} of env=dev");
            let ok = allowed.contains(&role) && scope != Scope::Denied;
            let r = expect(Some(token), ok, &what, ok);
            if !ok {
                assert_eq!(r.status, 403, "{method} {path} as {what}");
            }
            if ok && scope == Scope::Filtered {
                assert!(
                    !r.text().contains(&fx.agent),
                    "{method} {path} as {what} shows the prod agent: {}",
                    r.text()
                );
            }
        }
        // In scope, a filtered read does show the agent's things.
        if scope == Scope::Filtered {
            let (p, _) = request(&s, &fx, method, path, false);
            let r = s.call_as(Some(&fx.viewer), method, &p, None);
            assert!(
                r.text().contains(&fx.agent),
                "{method} {p} as a prod viewer: {}",
                r.text()
            );
        }
    }
    assert!(checked > 250, "{checked}");

    // Scope details: a developer of env=prod may not create an action for every agent, nor
    // one naming an unknown agent; may for a named prod agent.
    for target in [
        json!({}),
        json!({"agents": ["a-unknown"]}),
        json!({"tags": {"service": "orders"}}),
    ] {
        let r = s.call_as(
            Some(&fx.developer),
            "POST",
            "/v1/actions",
            Some(&json!({"kind": "log", "location": "x.c:1", "target": target})),
        );
        assert_error(&r, 403);
    }
    let r = s.call_as(
        Some(&fx.developer),
        "POST",
        "/v1/actions",
        Some(&json!({"kind": "log", "location": "x.c:1", "target": {"agents": [fx.agent]}})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // An agent token cannot take over another token's agent id: it gets a new one.
    let r = s.call_as(
        Some(&fx.agent_dev),
        "POST",
        "/v1/agents/register",
        Some(&json!({"host": "h", "pid": 1, "executable": "x", "build_id": "", "tags": {"env": "dev"}, "agent_id": fx.agent})),
    );
    assert_eq!(r.status, 200);
    assert_ne!(r.json()["agent_id"], fx.agent.as_str());
    // The owner can re-register with its id.
    let r = s.call_as(
        Some(&fx.agent_token),
        "POST",
        "/v1/agents/register",
        Some(&json!({"host": "h", "pid": 1, "executable": "x", "build_id": "", "tags": {"env": "prod"}, "agent_id": fx.agent})),
    );
    assert_eq!(r.json()["agent_id"], fx.agent.as_str());
    // Tokens are listed without secrets; the first admin is there.
    let tokens = s.get("/v1/tokens");
    assert!(!tokens.to_string().contains("scry_"));
    assert_eq!(tokens[0]["role"], "admin");
    assert!(
        tokens
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["revoked_at"].is_string())
    );
    s.stop();
}

// ---------------------------------------------------------------------------------------
// 2. The audit trail: one row per mutating or refused request, append-only
// ---------------------------------------------------------------------------------------

#[test]
fn audit_trail() {
    let dir = data_dir("audit");
    let s = Server::start(&dir);
    let (viewer_id, viewer) = s.token("viewer", json!({}));
    let (dev_id, dev) = s.token("developer", json!({"env": "prod"}));
    let agent = s.register("h1", json!({"env": "prod"}));

    // (request id, principal, method, path, status, target) of what must be audited.
    let mut expected: Vec<(String, String, &str, String, u16, String)> = Vec::new();
    let mut not_audited: Vec<String> = Vec::new();
    let id_of = |r: &Resp| r.header("x-request-id").unwrap().to_string();
    let mut run = |token: Option<&str>,
                   who: &str,
                   method: &'static str,
                   path: &str,
                   body: Option<Value>,
                   status: u16,
                   audited: bool| {
        let r = s.call_as(token, method, path, body.as_ref());
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
        if audited {
            expected.push((
                id_of(&r),
                who.to_string(),
                method,
                path.to_string(),
                status,
                String::new(),
            ));
        } else {
            not_audited.push(id_of(&r));
        }
        r
    };
    let admin = s.admin.clone();
    let created = run(
        Some(&admin),
        "admin",
        "POST",
        "/v1/actions",
        Some(json!({"kind": "log", "location": "a.c:1", "target": {"tags": {"env": "prod"}}})),
        200,
        true,
    );
    let action = created.json()["id"].as_str().unwrap().to_string();
    run(None, "anonymous", "GET", "/v1/actions", None, 401, true);
    run(
        Some("Basic xyz"),
        "anonymous",
        "GET",
        "/v1/agents",
        None,
        401,
        true,
    );
    run(
        Some(&viewer),
        &format!("{viewer_id} viewer"),
        "POST",
        "/v1/actions",
        Some(json!({"kind": "log", "location": "a.c:1"})),
        403,
        true,
    );
    run(
        Some(&viewer),
        &format!("{viewer_id} viewer"),
        "GET",
        "/v1/tokens",
        None,
        403,
        true,
    );
    run(
        Some(&dev),
        &format!("{dev_id} developer"),
        "POST",
        "/v1/actions",
        Some(json!({"kind": "log", "location": "a.c:1"})),
        403,
        true,
    );
    run(
        Some(&dev),
        &format!("{dev_id} developer"),
        "POST",
        "/v1/actions",
        Some(json!({"kind": "log"})),
        400,
        true,
    );
    run(
        Some(&dev),
        &format!("{dev_id} developer"),
        "DELETE",
        "/v1/actions/act-999",
        None,
        404,
        true,
    );
    run(Some(&viewer), "", "GET", "/v1/actions", None, 200, false);
    run(
        Some(&admin),
        "",
        "POST",
        &format!("/v1/agents/{agent}/events"),
        Some(json!({"logs": [log_line(&action, 1)]})),
        200,
        false,
    );
    run(
        Some(&admin),
        "admin",
        "POST",
        "/v1/detach-all",
        None,
        200,
        true,
    );
    run(
        Some(&admin),
        "admin",
        "POST",
        "/v1/attach-all",
        None,
        200,
        true,
    );
    run(
        Some(&dev),
        &format!("{dev_id} developer"),
        "DELETE",
        &format!("/v1/actions/{action}"),
        None,
        200,
        true,
    );
    // The created action's row names it.
    expected[0].5 = action.clone();
    expected.last_mut().unwrap().5 = action.clone();

    let audit = s.get("/v1/audit?limit=1000");
    let entries = audit.as_array().unwrap();
    for (rid, who, method, path, status, target) in &expected {
        let rows: Vec<&Value> = entries
            .iter()
            .filter(|e| e["request_id"] == rid.as_str())
            .collect();
        assert_eq!(rows.len(), 1, "{method} {path} ({rid}) in {audit:#}");
        let e = rows[0];
        assert_eq!(e["method"], *method);
        assert_eq!(e["path"], path.as_str());
        assert_eq!(e["status"], *status);
        if who == "admin" {
            assert!(e["principal"].as_str().unwrap().ends_with(" admin"), "{e}");
        } else {
            assert_eq!(e["principal"], who.as_str());
        }
        if !target.is_empty() {
            assert_eq!(e["target"], target.as_str());
        }
        if *status >= 400 {
            assert!(!e["detail"].as_str().unwrap().is_empty(), "{e}");
        }
    }
    for rid in &not_audited {
        assert!(
            !entries.iter().any(|e| e["request_id"] == rid.as_str()),
            "{rid} audited"
        );
    }
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    // The registration and token creations of the set-up are there too.
    assert!(
        entries
            .iter()
            .any(|e| e["path"] == "/v1/agents/register" && e["target"] == agent.as_str())
    );
    assert!(
        entries
            .iter()
            .any(|e| e["path"] == "/v1/tokens" && e["target"] == viewer_id.as_str())
    );

    // since=: a time filter; a bad one is a 400.
    assert!(
        s.get("/v1/audit?since=2999-01-01T00:00:00Z")
            .as_array()
            .unwrap()
            .is_empty()
    );
    let first = entries[0]["time"].as_str().unwrap();
    assert_eq!(
        s.get(&format!("/v1/audit?since={first}"))[0]["seq"],
        entries[0]["seq"]
    );
    assert_error(&s.call("GET", "/v1/audit?since=yesterday", None), 400);

    // No route alters it, and the database refuses to.
    let before = entries.len();
    let db = rusqlite::Connection::open(dir.join("scry.db")).unwrap();
    let e = db.execute("UPDATE audit SET status = 200", []).unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    let e = db.execute("DELETE FROM audit", []).unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    let n: i64 = db
        .query_row("SELECT COUNT(*) FROM audit", [], |r| r.get(0))
        .unwrap();
    assert!(n as usize >= before);
    drop(db);
    s.stop();
}

// ---------------------------------------------------------------------------------------
// 3. Redaction at the server
// ---------------------------------------------------------------------------------------

const JWT: &str =
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

fn files_contain(dir: &std::path::Path, needle: &str) -> bool {
    ["scry.db", "scry.db-wal"].iter().any(|f| {
        std::fs::read(dir.join(f))
            .map(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
            .unwrap_or(false)
    })
}

#[test]
fn secrets_never_reach_the_disk_nor_an_answer() {
    let dir = data_dir("redact");
    let s = Server::start(&dir);
    let agent = s.register("h1", json!({}));
    let log = s.post(
        "/v1/actions",
        json!({"kind": "log", "location": "pay.c:10"}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let snap = s.post(
        "/v1/actions",
        json!({"kind": "snapshot", "location": "pay"}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let secrets = [
        "4111 1111 1111 1111",
        "5500-0000-0000-0004",
        "alice.secret@example.com",
        JWT,
        "hunter2-value",
        "pw-in-snapshot",
        "Bearer abcDEF123456",
    ];
    s.post(
        &format!("/v1/agents/{agent}/events"),
        json!({
            "logs": [{
                "action_id": log, "time": "t", "tid": 1, "location": "pay.c:10",
                "message": format!("card 4111 1111 1111 1111 for alice.secret@example.com with {JWT}"),
                "values": {"user->password": "hunter2-value", "card": "5500-0000-0000-0004", "auth": "Bearer abcDEF123456", "n": 3}
            }],
            "snapshots": [{"action_id": snap, "time": "t", "tid": 1, "snapshot": {"frames": [{
                "function": "pay", "file": "pay.c", "line": 10,
                "locals": [
                    {"name": "password", "type": "char *", "value": "pw-in-snapshot"},
                    {"name": "note", "type": "char *", "value": format!("mail alice.secret@example.com")},
                    {"name": "amount", "type": "int", "value": 12}
                ]
            }]}}]
        }),
    );
    let logs = s.get("/v1/logs");
    let line = &logs[0];
    assert_eq!(
        line["message"], "card [redacted card] for [redacted] with [redacted]",
        "{line}"
    );
    assert_eq!(line["values"]["user->password"], "[redacted]");
    assert_eq!(line["values"]["card"], "[redacted card]");
    assert_eq!(line["values"]["n"], 3);
    let id = s.get("/v1/snapshots")[0]["id"].as_u64().unwrap();
    let snapshot = s.get(&format!("/v1/snapshots/{id}"));
    let locals = &snapshot["snapshot"]["frames"][0]["locals"];
    assert_eq!(locals[0]["value"], "[redacted]");
    assert_eq!(locals[1]["value"], "mail [redacted]");
    assert_eq!(locals[2]["value"], 12);

    // A rule added at runtime: the version goes up, the desired state carries it, a long
    // poll wakes for it, and ingest applies it.
    let d = s.get(&format!("/v1/agents/{agent}/desired"));
    let v = d["version"].as_u64().unwrap();
    assert!(
        d["redactions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == "builtin-card-number")
    );
    let (addr, tok) = (s.addr, s.admin.clone());
    let path = format!("/v1/agents/{agent}/desired?version={v}&wait=60");
    let poll = std::thread::spawn(move || {
        let t = Instant::now();
        (call(addr, Some(&tok), "GET", &path, None), t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    let rule = s.post(
        "/v1/redactions",
        json!({"kind": "value", "pattern": "ORD-[0-9]{6}"}),
    );
    assert_eq!(rule["id"], "red-1");
    assert_eq!(rule["builtin"], false);
    let (r, took) = poll.join().unwrap();
    assert!(took < Duration::from_secs(5), "{took:?}");
    let d = r.json();
    assert!(d["version"].as_u64().unwrap() > v);
    assert!(
        d["redactions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["pattern"] == "ORD-[0-9]{6}")
    );
    s.post(
        &format!("/v1/agents/{agent}/events"),
        json!({"logs": [{"action_id": log, "time": "t", "tid": 1, "location": "pay.c:10", "message": "order ORD-123456 paid"}]}),
    );
    assert_eq!(
        s.get("/v1/logs?after=1")[0]["message"],
        "order [redacted] paid"
    );
    let secrets: Vec<&str> = secrets.iter().copied().chain(["ORD-123456"]).collect();

    // Built-in rules stay; a bad regex says why.
    let v = assert_error(&s.call("DELETE", "/v1/redactions/builtin-email", None), 400);
    assert!(v["error"].as_str().unwrap().contains("built-in"), "{v}");
    let v = assert_error(
        &s.call(
            "POST",
            "/v1/redactions",
            Some(&json!({"kind": "value", "pattern": "(unclosed"})),
        ),
        400,
    );
    assert!(
        v["detail"].as_str().unwrap().contains("does not compile"),
        "{v}"
    );
    let rules = s.get("/v1/redactions");
    assert!(rules.as_array().unwrap().len() >= 10);

    // No answer shows a secret.
    let mut answers = String::new();
    for p in [
        "/v1/logs",
        "/v1/snapshots",
        &format!("/v1/snapshots/{id}"),
        "/v1/audit?limit=1000",
        "/v1/actions",
        "/v1/metrics",
    ] {
        answers.push_str(&s.call("GET", p, None).text());
    }
    for secret in &secrets {
        assert!(!answers.contains(secret), "{secret} in an answer");
        assert!(
            !files_contain(&dir, secret),
            "{secret} in the database files (server running)"
        );
    }
    // After a checkpoint too (the clean stop checkpoints the WAL into the database).
    s.stop();
    let db = rusqlite::Connection::open(dir.join("scry.db")).unwrap();
    db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(db);
    for secret in &secrets {
        assert!(
            !files_contain(&dir, secret),
            "{secret} in the database files"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 4. The blocklist, the kill switch, the limits
// ---------------------------------------------------------------------------------------

#[test]
fn blocklist_refuses_actions() {
    let dir = data_dir("blocklist");
    let s = Server::start(&dir);
    let agent = s.register("h1", json!({}));
    let v0 = s.get(&format!("/v1/agents/{agent}/desired"))["version"]
        .as_u64()
        .unwrap();
    for (kind, pattern, allow) in [
        ("function", "*password*", false),
        ("path", "*/crypto/*", false),
        ("module", "libssl.so*", false),
        ("function", "password_policy_len", true),
    ] {
        s.post(
            "/v1/blocklist",
            json!({"kind": kind, "pattern": pattern, "allow": allow}),
        );
    }
    let d = s.get(&format!("/v1/agents/{agent}/desired"));
    assert!(d["version"].as_u64().unwrap() > v0);
    assert_eq!(d["blocklist"].as_array().unwrap().len(), 4);
    assert_eq!(
        d["blocklist"][0],
        json!({"id": "blk-1", "kind": "function", "pattern": "*password*", "allow": false})
    );

    for (action, rule) in [
        (
            json!({"kind": "log", "location": "check_password"}),
            "blk-1 (function *password*)",
        ),
        (
            json!({"kind": "snapshot", "location": "lib.so:verify_password@entry"}),
            "blk-1 (function *password*)",
        ),
        (
            json!({"kind": "log", "location": "src/crypto/aes.c:10"}),
            "blk-2 (path */crypto/*)",
        ),
        (
            json!({"kind": "log", "location": "libssl.so.3:SSL_read"}),
            "blk-3 (module libssl.so*)",
        ),
        (
            json!({"kind": "metric", "metric": "tictoc", "location": "a.c:1", "end_location": "lib/crypto/x.c:9"}),
            "blk-2 (path */crypto/*)",
        ),
    ] {
        let v = assert_error(&s.call("POST", "/v1/actions", Some(&action)), 422);
        let detail = v["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!("blocked by blocklist rule {rule}")),
            "{action} → {detail}"
        );
    }
    // The exception, and what no rule matches, go through.
    for location in ["password_policy_len", "main", "src/aes.c:3"] {
        let r = s.call(
            "POST",
            "/v1/actions",
            Some(&json!({"kind": "log", "location": location})),
        );
        assert_eq!(r.status, 200, "{location}: {}", r.text());
    }
    // Removing the rule lets it through.
    assert_eq!(s.call("DELETE", "/v1/blocklist/blk-1", None).status, 200);
    assert_error(&s.call("DELETE", "/v1/blocklist/blk-1", None), 404);
    assert_eq!(
        s.call(
            "POST",
            "/v1/actions",
            Some(&json!({"kind": "log", "location": "check_password"}))
        )
        .status,
        200
    );
    assert_error(
        &s.call(
            "POST",
            "/v1/blocklist",
            Some(&json!({"kind": "path", "pattern": ""})),
        ),
        400,
    );
    // The refusal is audited with its reason.
    let audit = s.get("/v1/audit?limit=1000");
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["status"] == 422 && e["detail"].as_str().unwrap().contains("blk-3"))
    );
    s.stop();
}

#[test]
fn kill_switch_reaches_agents_at_once() {
    let dir = data_dir("killswitch");
    let s = Server::start(&dir);
    let agent = s.register("h1", json!({}));
    let d = s.get(&format!("/v1/agents/{agent}/desired"));
    assert_eq!(d["detach_all"], false);
    let v = d["version"].as_u64().unwrap();
    let (addr, tok) = (s.addr, s.admin.clone());
    let path = format!("/v1/agents/{agent}/desired?version={v}&wait=60");
    let poll = std::thread::spawn(move || {
        let t = Instant::now();
        (call(addr, Some(&tok), "GET", &path, None), t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    assert_eq!(s.post("/v1/detach-all", json!({})), json!({}));
    let (r, _) = poll.join().unwrap();
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "{:?}",
        sent.elapsed()
    );
    let d = r.json();
    assert_eq!(d["detach_all"], true);
    let v2 = d["version"].as_u64().unwrap();
    assert!(v2 > v);
    // It persists across a restart.
    s.stop();
    let s = Server::start(&dir);
    assert_eq!(
        s.get(&format!("/v1/agents/{agent}/desired"))["detach_all"],
        true
    );
    s.call("POST", "/v1/attach-all", None);
    let d = s.get(&format!("/v1/agents/{agent}/desired"));
    assert_eq!(d["detach_all"], false);
    assert!(d["version"].as_u64().unwrap() > v2);
    s.stop();
}

#[test]
fn limits_name_the_limit_and_the_value() {
    let dir = data_dir("limits");
    let s = Server::start(&dir);
    let agent = s.register("h1", json!({}));
    let long = |n: usize| "x".repeat(n);
    let deep = format!("{}1{}", "(".repeat(33), ")".repeat(33));
    for (action, words) in [
        (
            json!({"kind": "log", "location": "a.c:1", "template": long(4097)}),
            ["4097", "4096"],
        ),
        (
            json!({"kind": "log", "location": "a.c:1", "condition": long(1025)}),
            ["1025", "1024"],
        ),
        (
            json!({"kind": "log", "location": "a.c:1", "condition": deep}),
            ["33", "32"],
        ),
        (
            json!({"kind": "log", "location": "a.c:1", "watches": vec!["x"; 33]}),
            ["33", "32"],
        ),
        (
            json!({"kind": "log", "location": "a.c:1", "watches": [long(1025)]}),
            ["1025", "1024"],
        ),
        (
            json!({"kind": "log", "location": "a.c:1", "template": format!("{{{}}}", "[".repeat(40))}),
            ["40", "32"],
        ),
    ] {
        let v = assert_error(&s.call("POST", "/v1/actions", Some(&action)), 400);
        let detail = v["detail"].as_str().unwrap();
        assert!(words.iter().all(|w| detail.contains(w)), "{detail}");
    }
    // Right at the limits: accepted.
    let ok = json!({"kind": "log", "location": "a.c:1", "template": long(4096), "condition": format!("{}1{}", "(".repeat(32), ")".repeat(32)), "watches": vec!["x"; 32]});
    assert_eq!(s.call("POST", "/v1/actions", Some(&ok)).status, 200);

    // Tags per agent and per token.
    let tags: serde_json::Map<String, Value> =
        (0..33).map(|i| (format!("t{i}"), json!("v"))).collect();
    let v = assert_error(
        &s.call(
            "POST",
            "/v1/agents/register",
            Some(&json!({"host": "h", "pid": 1, "executable": "x", "build_id": "", "tags": tags})),
        ),
        400,
    );
    assert!(v["detail"].as_str().unwrap().contains("33"));
    assert_error(
        &s.call(
            "POST",
            "/v1/tokens",
            Some(&json!({"role": "viewer", "tags": tags})),
        ),
        400,
    );

    // Events per batch.
    let lines: Vec<Value> = (0..5001).map(|n| log_line("act-1", n)).collect();
    let v = assert_error(
        &s.call(
            "POST",
            &format!("/v1/agents/{agent}/events"),
            Some(&json!({"logs": lines})),
        ),
        413,
    );
    assert!(
        v["detail"].as_str().unwrap().contains("5001")
            && v["detail"].as_str().unwrap().contains("5000")
    );

    // Actions per agent: 200 (with the one above), then 409.
    for i in 1..200 {
        let r = s.call("POST", "/v1/actions", Some(&json!({"kind": "log", "location": format!("a.c:{i}"), "target": {"agents": [agent]}})));
        assert_eq!(r.status, 200, "{i}: {}", r.text());
    }
    let v = assert_error(
        &s.call(
            "POST",
            "/v1/actions",
            Some(&json!({"kind": "log", "location": "b.c:1"})),
        ),
        409,
    );
    let detail = v["detail"].as_str().unwrap();
    assert!(
        detail.contains(&agent) && detail.contains("200"),
        "{detail}"
    );
    s.stop();
}

// ---------------------------------------------------------------------------------------
// 5. The first admin token
// ---------------------------------------------------------------------------------------

#[test]
fn first_start_makes_one_admin_token_stored_hashed() {
    let dir = data_dir("first-admin");
    std::fs::create_dir_all(&dir).unwrap();
    let mut conn = scry_server::db::open_writer(&dir).unwrap();
    let secret = scry_server::first_admin_token(&mut conn)
        .unwrap()
        .expect("a token on a new database");
    assert!(scry_server::auth::well_formed(&secret), "{secret}");
    assert_eq!(scry_server::first_admin_token(&mut conn).unwrap(), None);
    drop(conn);
    assert!(!files_contain(&dir, &secret));
    assert!(!files_contain(&dir, &secret[5..]));
    // It works against a server on that database.
    let (addr, stop, thread) = spawn(scry_server::ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        &dir,
    ))
    .unwrap();
    let r = call(addr, Some(&secret), "GET", "/v1/tokens", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    let _ = stop.send(());
    thread.join().unwrap().unwrap();
}
