//! The route table, the dispatcher and the handlers.
//!
//! [`ROUTES`] is the one list of (method, path template, handler): the dispatcher matches
//! requests against it, and a test checks that the OpenAPI document describes exactly it.

use crate::api::{
    AgentReport, AuditEntry, CreatedToken, EventAck, EventBatch, NewAction, NewBlockRule,
    NewRedactionRule, NewToken, RegisterRequest, RegisterResponse, Role,
};
use crate::auth::{self, Principal};
use crate::error::HttpError;
use crate::readers::Readers;
use crate::redact::Redactor;
use crate::writer::{Done, Op, Published, WriterHandle};
use crate::{db, metrics, openapi, validate};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{ALLOW, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Largest request body accepted (larger: 413).
pub const MAX_BODY: usize = 8 << 20;

/// Longest long poll (`wait=`), in seconds.
pub const MAX_WAIT_SECS: f64 = 60.0;

/// What a route does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handler {
    /// `POST /v1/agents/register`
    Register,
    /// `GET /v1/agents/{id}/desired`
    Desired,
    /// `POST /v1/agents/{id}/report`
    Report,
    /// `POST /v1/agents/{id}/events`
    Events,
    /// `GET /v1/agents`
    ListAgents,
    /// `POST /v1/actions`
    CreateAction,
    /// `GET /v1/actions`
    ListActions,
    /// `GET /v1/actions/{id}`
    GetAction,
    /// `DELETE /v1/actions/{id}`
    DeleteAction,
    /// `GET /v1/logs`
    Logs,
    /// `GET /v1/snapshots`
    ListSnapshots,
    /// `GET /v1/snapshots/{id}`
    GetSnapshot,
    /// `GET /v1/metrics`
    MetricSeries,
    /// `GET /metrics`
    Prometheus,
    /// `GET /v1/openapi.json`
    OpenApi,
    /// `POST /v1/tokens`
    CreateToken,
    /// `GET /v1/tokens`
    ListTokens,
    /// `DELETE /v1/tokens/{id}`
    RevokeToken,
    /// `GET /v1/audit`
    Audit,
    /// `POST /v1/redactions`
    CreateRedaction,
    /// `GET /v1/redactions`
    ListRedactions,
    /// `DELETE /v1/redactions/{id}`
    DeleteRedaction,
    /// `POST /v1/blocklist`
    CreateBlock,
    /// `GET /v1/blocklist`
    ListBlocklist,
    /// `DELETE /v1/blocklist/{id}`
    DeleteBlock,
    /// `POST /v1/detach-all`
    DetachAll,
    /// `POST /v1/attach-all`
    AttachAll,
}

/// Who may call a route (the roles matrix of the crate doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token.
    Public,
    /// Agents (for their own agents) and admins.
    Agent,
    /// Admins, developers and viewers (reads filtered to their scope).
    Read,
    /// Admins and developers (within their scope).
    Write,
    /// Admins only.
    Admin,
}

impl Access {
    /// Whether a role may call a route of this access.
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Public => true,
            Access::Agent => matches!(role, Role::Admin | Role::Agent),
            Access::Read => matches!(role, Role::Admin | Role::Developer | Role::Viewer),
            Access::Write => matches!(role, Role::Admin | Role::Developer),
            Access::Admin => role == Role::Admin,
        }
    }

    /// The roles it allows, as the 403 names them.
    pub fn roles(self) -> &'static str {
        match self {
            Access::Public => "anyone",
            Access::Agent => "agent or admin",
            Access::Read => "admin, developer or viewer",
            Access::Write => "admin or developer",
            Access::Admin => "admin",
        }
    }
}

/// A route: method, path template (`{id}` matches one path segment), handler, access.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    /// `GET`, `POST` or `DELETE`.
    pub method: &'static str,
    /// The path, with `{name}` for a segment taken as a parameter.
    pub path: &'static str,
    /// What answers it.
    pub handler: Handler,
    /// Who may call it.
    pub access: Access,
}

const fn route(
    method: &'static str,
    path: &'static str,
    handler: Handler,
    access: Access,
) -> Route {
    Route {
        method,
        path,
        handler,
        access,
    }
}

/// Every route the server answers.
pub const ROUTES: &[Route] = &[
    route(
        "POST",
        "/v1/agents/register",
        Handler::Register,
        Access::Agent,
    ),
    route(
        "GET",
        "/v1/agents/{id}/desired",
        Handler::Desired,
        Access::Agent,
    ),
    route(
        "POST",
        "/v1/agents/{id}/report",
        Handler::Report,
        Access::Agent,
    ),
    route(
        "POST",
        "/v1/agents/{id}/events",
        Handler::Events,
        Access::Agent,
    ),
    route("GET", "/v1/agents", Handler::ListAgents, Access::Read),
    route("POST", "/v1/actions", Handler::CreateAction, Access::Write),
    route("GET", "/v1/actions", Handler::ListActions, Access::Read),
    route("GET", "/v1/actions/{id}", Handler::GetAction, Access::Read),
    route(
        "DELETE",
        "/v1/actions/{id}",
        Handler::DeleteAction,
        Access::Write,
    ),
    route("GET", "/v1/logs", Handler::Logs, Access::Read),
    route("GET", "/v1/snapshots", Handler::ListSnapshots, Access::Read),
    route(
        "GET",
        "/v1/snapshots/{id}",
        Handler::GetSnapshot,
        Access::Read,
    ),
    route("GET", "/v1/metrics", Handler::MetricSeries, Access::Read),
    route("GET", "/metrics", Handler::Prometheus, Access::Read),
    route("GET", "/v1/openapi.json", Handler::OpenApi, Access::Public),
    route("POST", "/v1/tokens", Handler::CreateToken, Access::Admin),
    route("GET", "/v1/tokens", Handler::ListTokens, Access::Admin),
    route(
        "DELETE",
        "/v1/tokens/{id}",
        Handler::RevokeToken,
        Access::Admin,
    ),
    route("GET", "/v1/audit", Handler::Audit, Access::Admin),
    route(
        "POST",
        "/v1/redactions",
        Handler::CreateRedaction,
        Access::Admin,
    ),
    route(
        "GET",
        "/v1/redactions",
        Handler::ListRedactions,
        Access::Write,
    ),
    route(
        "DELETE",
        "/v1/redactions/{id}",
        Handler::DeleteRedaction,
        Access::Admin,
    ),
    route("POST", "/v1/blocklist", Handler::CreateBlock, Access::Admin),
    route(
        "GET",
        "/v1/blocklist",
        Handler::ListBlocklist,
        Access::Write,
    ),
    route(
        "DELETE",
        "/v1/blocklist/{id}",
        Handler::DeleteBlock,
        Access::Admin,
    ),
    route("POST", "/v1/detach-all", Handler::DetachAll, Access::Admin),
    route("POST", "/v1/attach-all", Handler::AttachAll, Access::Admin),
];

/// Decides whether a principal (`None`: no token) may call a route: 401 without a token
/// (except on public routes), 403 when its role lacks the right. Called before every
/// route's handler; the handlers then check the tag scope and agent ownership.
pub fn authorize(route: &Route, principal: Option<&Principal>) -> Result<(), HttpError> {
    if route.access == Access::Public {
        return Ok(());
    }
    let Some(p) = principal else {
        return Err(auth::unauthorized(
            "missing token",
            "send \"Authorization: Bearer scry_...\" with a token from POST /v1/tokens (or `scry server --init-admin`)",
        ));
    };
    if route.access.allows(p.role) {
        Ok(())
    } else {
        Err(auth::forbidden(
            "not allowed for this role",
            format!(
                "{} {} needs a token of role {}; token {} is {}",
                route.method,
                route.path,
                route.access.roles(),
                p.token_id,
                auth::role_str(p.role)
            ),
        ))
    }
}

/// What the handlers share.
pub struct App {
    /// The writer thread.
    pub writer: WriterHandle,
    /// The reader connections.
    pub readers: Arc<Readers>,
    /// The version and last log seq, as published by the writer.
    pub published: Arc<Published>,
    /// Agents in a long poll now (they count as online), with how many polls each.
    pub polling: Mutex<HashMap<String, usize>>,
    /// Becomes true when the server stops: long polls answer at once.
    pub stopping: watch::Receiver<bool>,
}

/// The body of every answer.
pub type Body = Full<Bytes>;

/// The methods a path answers (empty: no such route).
pub fn allowed_methods(path: &str) -> Vec<&'static str> {
    ROUTES
        .iter()
        .filter(|r| match_path(r.path, path).is_some())
        .map(|r| r.method)
        .collect()
}

/// Finds the route of a method and path: `Ok((route, params))`, or the 404 / 405 answer.
pub fn find(method: &str, path: &str) -> Result<(&'static Route, Vec<String>), HttpError> {
    for r in ROUTES {
        if r.method == method
            && let Some(params) = match_path(r.path, path)
        {
            return Ok((r, params));
        }
    }
    let allowed = allowed_methods(path);
    if allowed.is_empty() {
        Err(HttpError::not_found(
            "no such route",
            format!("{path} is not a route of this server; GET /v1/openapi.json lists them"),
        ))
    } else {
        Err(HttpError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
            format!("{path} answers {}, not {method}", allowed.join(", ")),
        ))
    }
}

fn match_path(template: &str, path: &str) -> Option<Vec<String>> {
    let mut params = Vec::new();
    let mut t = template.split('/');
    let mut p = path.split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(params),
            (Some(ts), Some(ps)) if ts.starts_with('{') && ts.ends_with('}') => {
                if ps.is_empty() {
                    return None;
                }
                params.push(percent_decode(ps));
            }
            (Some(ts), Some(ps)) if ts == ps => {}
            _ => return None,
        }
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => {
                if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The parameters of a query string.
struct Query(HashMap<String, String>);

impl Query {
    fn parse(q: Option<&str>) -> Self {
        let mut m = HashMap::new();
        for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            m.insert(percent_decode(k), percent_decode(v));
        }
        Query(m)
    }

    fn str(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    /// A number parameter: absent is `None`, present but empty or not a number is a 400.
    fn num<T: std::str::FromStr>(&self, name: &str, what: &str) -> Result<Option<T>, HttpError> {
        match self.0.get(name).map(String::as_str) {
            None => Ok(None),
            Some(s) => s.parse().map(Some).map_err(|_| {
                HttpError::bad_request(
                    format!("bad query parameter {name}"),
                    format!("{name}={s} is not {what}; give e.g. {name}=10"),
                )
            }),
        }
    }

    /// `wait=SECS` (fractions allowed), at most [`MAX_WAIT_SECS`].
    fn wait(&self) -> Result<Duration, HttpError> {
        let w: f64 = self.num("wait", "a number of seconds")?.unwrap_or(0.0);
        if !(0.0..=MAX_WAIT_SECS).contains(&w) {
            return Err(HttpError::bad_request(
                "bad query parameter wait",
                format!("wait={w} is out of range; give the seconds to wait, 0 to {MAX_WAIT_SECS}"),
            ));
        }
        Ok(Duration::from_secs_f64(w))
    }

    /// `limit=N`: default 100; more than 1000 counts as 1000.
    fn limit(&self) -> Result<u32, HttpError> {
        let n: u64 = self.num("limit", "a count")?.unwrap_or(100);
        if n == 0 {
            return Err(HttpError::bad_request(
                "bad query parameter limit",
                "limit=0 asks for nothing; give 1 to 1000 (default 100)",
            ));
        }
        Ok(n.min(1000) as u32)
    }
}

/// What one request is, for its audit row.
#[derive(Default)]
struct Ctx {
    /// The route matched.
    handler: Option<Handler>,
    /// Who calls, once the token is checked.
    principal: Option<Principal>,
    /// What is acted on (an action, agent, token or rule id), when known.
    target: String,
}

/// Whether a request gets an audit row: every refusal (401, 403) and every mutating
/// request, except an agent's routine uploads (report, events) that succeed.
pub fn audited(method: &str, handler: Option<Handler>, status: StatusCode) -> bool {
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return true;
    }
    let mutating = matches!(method, "POST" | "PUT" | "PATCH" | "DELETE");
    let routine = matches!(handler, Some(Handler::Report | Handler::Events)) && status.is_success();
    mutating && !routine
}

fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Answers one request: never fails, every error becomes its JSON answer. Every answer
/// carries an `x-request-id`; audited requests ([`audited`]) are written to the audit trail
/// (committed) before the answer goes.
pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let request_id = format!("req-{}", auth::random_hex(8));
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let mut ctx = Ctx::default();
    let (mut response, detail) = match answer(&app, req, &mut ctx).await {
        Ok(r) => (r, String::new()),
        Err(e) => {
            let mut r = error_response(&e);
            if e.status == StatusCode::METHOD_NOT_ALLOWED
                && let Ok(v) = HeaderValue::from_str(&allowed_methods(&path).join(", "))
            {
                r.headers_mut().insert(ALLOW, v);
            }
            (r, format!("{}: {}", e.body.error, e.body.detail))
        }
    };
    let status = response.status();
    if audited(&method, ctx.handler, status) {
        let entry = AuditEntry {
            seq: 0,
            time: String::new(),
            request_id: request_id.clone(),
            principal: ctx
                .principal
                .as_ref()
                .map_or_else(|| "anonymous".to_string(), Principal::label),
            method,
            path: clip(&path, 1024),
            target: clip(&ctx.target, 256),
            status: status.as_u16(),
            detail: clip(&detail, 2048),
        };
        if let Err(e) = app.writer.write(Op::Audit(entry)).await {
            eprintln!("scry server: cannot write the audit row of {request_id}: {e}");
        }
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// The JSON answer of an error.
pub fn error_response(e: &HttpError) -> Response<Body> {
    json(e.status, &e.body)
}

fn json<T: Serialize>(status: StatusCode, v: &T) -> Response<Body> {
    let body = serde_json::to_vec(v).expect("API types always serialize");
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn ok<T: Serialize>(v: &T) -> Result<Response<Body>, HttpError> {
    Ok(json(StatusCode::OK, v))
}

fn empty_object() -> Result<Response<Body>, HttpError> {
    ok(&serde_json::json!({}))
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, HttpError> {
    let too_large = || {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large",
            format!(
                "bodies are limited to {} MiB; send the events in smaller batches",
                MAX_BODY >> 20
            ),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(HttpError::bad_request(
            "cannot read the request body",
            format!("the body ended badly ({e}); send it again"),
        )),
    }
}

/// Bodies larger than this are parsed on a blocking thread, not on the runtime's.
const PARSE_INLINE: usize = 64 << 10;

async fn parse_body<T: DeserializeOwned + Send + 'static>(
    body: Bytes,
    schema: &'static str,
) -> Result<T, HttpError> {
    if body.len() <= PARSE_INLINE {
        return parse_json(&body, schema);
    }
    tokio::task::spawn_blocking(move || parse_json(&body, schema))
        .await
        .map_err(|e| {
            HttpError::internal(
                "parser failed",
                format!("parsing the body panicked ({e}); this is a bug of the server"),
            )
        })?
}

fn parse_json<T: DeserializeOwned>(body: &[u8], schema: &str) -> Result<T, HttpError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(HttpError::bad_request(
            "empty request body",
            format!("send a JSON {schema} (see /v1/openapi.json)"),
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        HttpError::bad_request(
            "malformed JSON",
            format!("{e}; send a JSON {schema} (see /v1/openapi.json)"),
        )
    })?;
    objects_only(&value, schema)?;
    serde_json::from_value(value).map_err(|e| {
        HttpError::bad_request(
            "invalid request body",
            format!("{e}; send a JSON {schema} (see /v1/openapi.json)"),
        )
    })
}

/// Where a body must have JSON objects (serde would also take an array for a struct, by
/// position; the document says objects): "" is the body itself, `name` a field, `name[]`
/// each item of an array field.
fn struct_paths(schema: &str) -> &'static [&'static str] {
    match schema {
        "NewAction" => &["", "target", "quota"],
        "AgentReport" => &["", "states[]"],
        "EventBatch" => &["", "logs[]", "snapshots[]", "metrics[]"],
        _ => &[""],
    }
}

fn objects_only(v: &serde_json::Value, schema: &str) -> Result<(), HttpError> {
    let bad = |what: &str| {
        HttpError::bad_request(
            "invalid request body",
            format!("{what} must be a JSON object; send a JSON {schema} (see /v1/openapi.json)"),
        )
    };
    for path in struct_paths(schema) {
        if path.is_empty() {
            if !v.is_object() {
                return Err(bad("the body"));
            }
            continue;
        }
        let (field, items) = match path.strip_suffix("[]") {
            Some(f) => (f, true),
            None => (*path, false),
        };
        match (v.get(field), items) {
            (None | Some(serde_json::Value::Null), _) => {}
            (Some(serde_json::Value::Array(list)), true) if list.iter().any(|i| !i.is_object()) => {
                return Err(bad(&format!("each item of \"{field}\"")));
            }
            (Some(x), false) if !x.is_object() => return Err(bad(&format!("\"{field}\""))),
            _ => {}
        }
    }
    Ok(())
}

/// Counts an agent as polling while alive.
struct Polling<'a> {
    app: &'a App,
    agent: String,
}

impl<'a> Polling<'a> {
    fn start(app: &'a App, agent: &str) -> Self {
        *app.polling
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(agent.to_string())
            .or_default() += 1;
        Polling {
            app,
            agent: agent.to_string(),
        }
    }
}

impl Drop for Polling<'_> {
    fn drop(&mut self) {
        let mut m = self.app.polling.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.agent) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.agent);
            }
        }
    }
}

fn unknown_agent(id: &str) -> HttpError {
    HttpError::not_found(
        "unknown agent",
        format!(
            "no agent {id}; register first with POST /v1/agents/register (an agent whose id is forgotten re-registers without it)"
        ),
    )
}

fn unknown_action(id: &str) -> HttpError {
    HttpError::not_found(
        "unknown action",
        format!("no action {id}; GET /v1/actions lists them"),
    )
}

/// Waits until `ready` holds for the channel's value, `wait` passes, or the server stops.
async fn wait_until<T>(
    app: &App,
    rx: &mut watch::Receiver<T>,
    wait: Duration,
    ready: impl FnMut(&T) -> bool,
) {
    let mut stopping = app.stopping.clone();
    tokio::select! {
        _ = tokio::time::timeout(wait, rx.wait_for(ready)) => {}
        _ = stopping.wait_for(|s| *s) => {}
    }
}

/// Checks a token: the principal it stands for, or a 401 saying why not.
async fn authenticate(app: &App, token: &str) -> Result<Principal, HttpError> {
    let hash = auth::hash_token(token);
    let stored = app
        .readers
        .read(move |c| db::token_by_hash(c, &hash))
        .await?;
    let Some(t) = stored else {
        return Err(auth::unauthorized(
            "unknown token",
            "this token is not known to the server; ask an admin for one (POST /v1/tokens)",
        ));
    };
    if let Some(at) = &t.info.revoked_at {
        return Err(auth::unauthorized(
            "revoked token",
            format!(
                "token {} was revoked at {at}; ask an admin for a new one",
                t.info.id
            ),
        ));
    }
    if t.expires_ms.is_some_and(|e| e <= crate::time::now_ms()) {
        return Err(auth::unauthorized(
            "expired token",
            format!(
                "token {} expired at {}; ask an admin for a new one",
                t.info.id,
                t.info.expires_at.unwrap_or_default()
            ),
        ));
    }
    Ok(Principal {
        token_id: t.info.id,
        role: t.info.role,
        tags: t.info.tags,
    })
}

fn out_of_scope(what: &str, p: &Principal) -> HttpError {
    auth::forbidden(
        "outside the token's scope",
        format!(
            "{what} is outside the scope of token {} (agents with tags {}); use a token whose tags cover it",
            p.token_id,
            serde_json::to_string(&p.tags).unwrap_or_default()
        ),
    )
}

/// Checks that `p` may act for agent `id`: admins for any, agents for those they
/// registered. 404 for an unknown agent.
async fn check_owner(app: &App, p: &Principal, id: &str) -> Result<(), HttpError> {
    let key = id.to_string();
    let owner = app.readers.read(move |c| db::agent_owner(c, &key)).await?;
    let Some(owner) = owner else {
        return Err(unknown_agent(id));
    };
    if p.role == Role::Admin || owner.as_deref() == Some(p.token_id.as_str()) {
        Ok(())
    } else {
        Err(auth::forbidden(
            "not this token's agent",
            format!(
                "agent {id} was registered with another token; token {} acts only for the agents it registered",
                p.token_id
            ),
        ))
    }
}

/// Redacts what an agent uploads, before it is stored.
pub fn redact_batch(r: &Redactor, b: &mut EventBatch) {
    for l in &mut b.logs {
        if let std::borrow::Cow::Owned(m) = r.redact_text(&l.message) {
            l.message = m;
        }
        if let std::borrow::Cow::Owned(m) = r.redact_text(&l.location) {
            l.location = m;
        }
        r.redact_json(&mut l.values);
    }
    for s in &mut b.snapshots {
        r.redact_json(&mut s.snapshot);
    }
}

fn expect_found(d: Done, missing: impl FnOnce() -> HttpError) -> Result<Response<Body>, HttpError> {
    match d {
        Done::Found(true) => empty_object(),
        Done::Found(false) => Err(missing()),
        d => Err(unexpected(d)),
    }
}

async fn answer(
    app: &Arc<App>,
    req: Request<Incoming>,
    ctx: &mut Ctx,
) -> Result<Response<Body>, HttpError> {
    let (route, params) = find(req.method().as_str(), req.uri().path())?;
    ctx.handler = Some(route.handler);
    let id = params.first().cloned().unwrap_or_default();
    ctx.target = id.clone();
    if route.access != Access::Public
        && let Some(token) = auth::bearer(req.headers().get(AUTHORIZATION))?
    {
        ctx.principal = Some(authenticate(app, &token).await?);
    }
    authorize(route, ctx.principal.as_ref())?;
    if route.handler == Handler::OpenApi {
        return ok(&openapi::document());
    }
    let Some(p) = ctx.principal.clone() else {
        return Err(HttpError::internal(
            "no principal",
            "a route that needs a token was reached without one; this is a bug of the server",
        ));
    };
    let scope = p.scope().cloned();
    let query = Query::parse(req.uri().query());
    let body = if req.method() == Method::POST {
        read_body(req).await?
    } else {
        Bytes::new()
    };
    match route.handler {
        Handler::Register => {
            let r: RegisterRequest = parse_body(body, "RegisterRequest").await?;
            validate::tags(&r.tags, "tags")?;
            if p.role == Role::Agent && !auth::agent_in_scope(&p.tags, &r.tags) {
                return Err(out_of_scope("an agent with these tags", &p));
            }
            let op = Op::Register {
                req: r,
                owner: Some(p.token_id.clone()),
                any_owner: p.role == Role::Admin,
            };
            match app.writer.write(op).await? {
                Done::AgentId(agent_id) => {
                    ctx.target = agent_id.clone();
                    ok(&RegisterResponse { agent_id })
                }
                d => Err(unexpected(d)),
            }
        }
        Handler::Desired => {
            let since: Option<u64> = query.num("version", "a version number")?;
            let wait = query.wait()?;
            check_owner(app, &p, &id).await?;
            let mut rx = app.published.version.subscribe();
            app.writer.write_later(Op::Touch(id.clone()));
            let agent = id.clone();
            let state = app.readers.read(move |c| db::desired(c, &agent)).await?;
            let state = state.ok_or_else(|| unknown_agent(&id))?;
            if since != Some(state.version) || wait.is_zero() {
                return ok(&state);
            }
            {
                let _polling = Polling::start(app, &id);
                wait_until(app, &mut rx, wait, |v| *v != state.version).await;
            }
            app.writer.write_later(Op::Touch(id.clone()));
            let agent = id.clone();
            let state = app.readers.read(move |c| db::desired(c, &agent)).await?;
            ok(&state.ok_or_else(|| unknown_agent(&id))?)
        }
        Handler::Report => {
            let r: AgentReport = parse_body(body, "AgentReport").await?;
            check_owner(app, &p, &id).await?;
            let d = app.writer.write(Op::Report(id.clone(), r)).await?;
            expect_found(d, || unknown_agent(&id))
        }
        Handler::Events => {
            let mut b: EventBatch = parse_body(body, "EventBatch").await?;
            validate::batch(&b)?;
            check_owner(app, &p, &id).await?;
            let redactor = app.published.redactor();
            if b.snapshots.is_empty() && b.logs.len() < 64 {
                redact_batch(&redactor, &mut b);
            } else {
                b = tokio::task::spawn_blocking(move || {
                    redact_batch(&redactor, &mut b);
                    b
                })
                .await
                .map_err(|e| {
                    HttpError::internal(
                        "redaction failed",
                        format!("redacting the batch panicked ({e}); this is a bug of the server"),
                    )
                })?;
            }
            match app.writer.write(Op::Events(id.clone(), b)).await? {
                Done::Stored(Some(stored)) => ok(&EventAck { stored }),
                Done::Stored(None) => Err(unknown_agent(&id)),
                d => Err(unexpected(d)),
            }
        }
        Handler::ListAgents => {
            let polling: HashSet<String> = app
                .polling
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .keys()
                .cloned()
                .collect();
            let now = crate::time::now_ms();
            let mut agents = app
                .readers
                .read(move |c| db::agents(c, now, &polling))
                .await?;
            if let Some(scope) = &scope {
                agents.retain(|a| auth::agent_in_scope(scope, &a.tags));
            }
            ok(&agents)
        }
        Handler::CreateAction => {
            let a: NewAction = parse_body(body, "NewAction").await?;
            validate::new_action(&a)?;
            if let Some(scope) = scope {
                let agents = app.readers.read(|c| db::agent_tag_map(c)).await?;
                if !auth::action_in_scope(&scope, &a, |id| agents.get(id).cloned()) {
                    return Err(out_of_scope("an action with this target", &p));
                }
            }
            match app.writer.write(Op::CreateAction(a)).await? {
                Done::Action(a) => {
                    ctx.target = a.id.clone();
                    ok(&*a)
                }
                Done::Refused(e) => Err(e),
                d => Err(unexpected(d)),
            }
        }
        Handler::ListActions => {
            let (actions, agents) = app
                .readers
                .read(|c| Ok((db::actions(c)?, db::agent_tag_map(c)?)))
                .await?;
            ok(&auth::filter_actions(scope.as_ref(), actions, &agents))
        }
        Handler::GetAction | Handler::DeleteAction => {
            if route.handler == Handler::GetAction || scope.is_some() {
                let key = id.clone();
                let (a, agents) = app
                    .readers
                    .read(move |c| Ok((db::action(c, &key)?, db::agent_tag_map(c)?)))
                    .await?;
                let a = a.ok_or_else(|| unknown_action(&id))?;
                if let Some(scope) = &scope
                    && !auth::action_in_scope(scope, &a.spec, |id| agents.get(id).cloned())
                {
                    return Err(out_of_scope(&format!("action {id}"), &p));
                }
                if route.handler == Handler::GetAction {
                    return ok(&a);
                }
            }
            let d = app.writer.write(Op::DeleteAction(id.clone())).await?;
            expect_found(d, || unknown_action(&id))
        }
        Handler::Logs => {
            let action = query.str("action").map(str::to_string);
            let after: u64 = query.num("after", "a log seq")?.unwrap_or(0);
            let limit = query.limit()?;
            let wait = query.wait()?;
            let deadline = tokio::time::Instant::now() + wait;
            let mut rx = app.published.last_log_seq.subscribe();
            loop {
                let seen = *rx.borrow_and_update();
                let (a, sc) = (action.clone(), scope.clone());
                let lines = app
                    .readers
                    .read(move |c| {
                        let only = db::agents_in_scope(c, sc.as_ref())?;
                        db::logs(c, a.as_deref(), after, limit, only.as_deref())
                    })
                    .await?;
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if !lines.is_empty() || left.is_zero() || *app.stopping.borrow() {
                    return ok(&lines);
                }
                wait_until(app, &mut rx, left, |s| *s > seen).await;
            }
        }
        Handler::ListSnapshots => {
            let action = query.str("action").map(str::to_string);
            let limit = query.limit()?;
            ok(&app
                .readers
                .read(move |c| {
                    let only = db::agents_in_scope(c, scope.as_ref())?;
                    db::snapshots(c, action.as_deref(), limit, only.as_deref())
                })
                .await?)
        }
        Handler::GetSnapshot => {
            let n: u64 = id.parse().map_err(|_| {
                HttpError::bad_request(
                    "bad snapshot id",
                    format!("{id} is not a snapshot id; ids are numbers, as GET /v1/snapshots lists them"),
                )
            })?;
            let sc = scope.clone();
            let (s, in_scope) = app
                .readers
                .read(move |c| {
                    let only = db::agents_in_scope(c, sc.as_ref())?;
                    let agent = db::snapshot_agent(c, n)?;
                    let in_scope = match (&only, &agent) {
                        (Some(ids), Some(a)) => ids.contains(a),
                        _ => true,
                    };
                    Ok((db::snapshot(c, n)?, in_scope))
                })
                .await?;
            let s = s.ok_or_else(|| {
                HttpError::not_found(
                    "unknown snapshot",
                    format!("no snapshot {n} (retention may have deleted it); GET /v1/snapshots lists them"),
                )
            })?;
            if !in_scope {
                return Err(out_of_scope(&format!("snapshot {n}"), &p));
            }
            ok(&s)
        }
        Handler::MetricSeries | Handler::Prometheus => {
            let mut series = app
                .readers
                .read(move |c| {
                    let only = db::agents_in_scope(c, scope.as_ref())?;
                    db::metric_series(c, only.as_deref())
                })
                .await?;
            let redactor = app.published.redactor();
            for s in &mut series {
                if let std::borrow::Cow::Owned(l) = redactor.redact_text(&s.location) {
                    s.location = l;
                }
            }
            if route.handler == Handler::MetricSeries {
                return ok(&series);
            }
            let mut r = Response::new(Full::new(Bytes::from(metrics::prometheus(&series))));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            Ok(r)
        }
        Handler::OpenApi => ok(&openapi::document()),
        Handler::CreateToken => {
            let t: NewToken = parse_body(body, "NewToken").await?;
            validate::new_token(&t)?;
            let secret = auth::new_secret();
            let hash = auth::hash_token(&secret);
            match app.writer.write(Op::CreateToken(t, hash)).await? {
                Done::Token(info) => {
                    ctx.target = info.id.clone();
                    ok(&CreatedToken {
                        token: secret,
                        info: *info,
                    })
                }
                d => Err(unexpected(d)),
            }
        }
        Handler::ListTokens => ok(&app.readers.read(|c| db::tokens(c)).await?),
        Handler::RevokeToken => {
            let d = app.writer.write(Op::RevokeToken(id.clone())).await?;
            expect_found(d, || {
                HttpError::not_found(
                    "unknown token",
                    format!("no token {id}; GET /v1/tokens lists them"),
                )
            })
        }
        Handler::Audit => {
            let since = match query.0.get("since") {
                None => 0,
                Some(s) => crate::time::parse_rfc3339(s).ok_or_else(|| {
                    HttpError::bad_request(
                        "bad query parameter since",
                        format!("since={s} is not an RFC 3339 time; give e.g. since=2026-01-02T03:04:05Z"),
                    )
                })?,
            };
            let after: u64 = query.num("after", "an audit seq")?.unwrap_or(0);
            let limit = query.limit()?;
            ok(&app
                .readers
                .read(move |c| db::audit(c, since, after, limit))
                .await?)
        }
        Handler::CreateRedaction => {
            let r: NewRedactionRule = parse_body(body, "NewRedactionRule").await?;
            crate::redact::check_rule(r.kind, &r.pattern)
                .map_err(|e| HttpError::bad_request("bad redaction rule", e))?;
            match app.writer.write(Op::CreateRedaction(r)).await? {
                Done::Redaction(rule) => {
                    ctx.target = rule.id.clone();
                    ok(&rule)
                }
                d => Err(unexpected(d)),
            }
        }
        Handler::ListRedactions => ok(&app.readers.read(|c| db::redactions(c)).await?),
        Handler::DeleteRedaction => {
            if id.starts_with("builtin-") {
                return Err(HttpError::bad_request(
                    "built-in rules cannot be removed",
                    format!(
                        "{id} is one of the built-in redaction rules, always in force; only rules added with POST /v1/redactions can be removed"
                    ),
                ));
            }
            let d = app.writer.write(Op::DeleteRedaction(id.clone())).await?;
            expect_found(d, || {
                HttpError::not_found(
                    "unknown redaction rule",
                    format!("no rule {id}; GET /v1/redactions lists them"),
                )
            })
        }
        Handler::CreateBlock => {
            let r: NewBlockRule = parse_body(body, "NewBlockRule").await?;
            validate::block_rule(&r)?;
            match app.writer.write(Op::CreateBlock(r)).await? {
                Done::Block(rule) => {
                    ctx.target = rule.id.clone();
                    ok(&rule)
                }
                d => Err(unexpected(d)),
            }
        }
        Handler::ListBlocklist => ok(&app.readers.read(|c| db::block_rules(c)).await?),
        Handler::DeleteBlock => {
            let d = app.writer.write(Op::DeleteBlock(id.clone())).await?;
            expect_found(d, || {
                HttpError::not_found(
                    "unknown blocklist rule",
                    format!("no rule {id}; GET /v1/blocklist lists them"),
                )
            })
        }
        Handler::DetachAll | Handler::AttachAll => {
            let on = route.handler == Handler::DetachAll;
            let d = app.writer.write(Op::DetachAll(on)).await?;
            expect_found(d, || unexpected(Done::Found(false)))
        }
    }
}

fn unexpected(d: Done) -> HttpError {
    HttpError::internal(
        "internal error",
        format!("the writer answered {d:?} out of turn; this is a bug of the server"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match() {
        let (r, p) = find("GET", "/v1/agents/a-1/desired").unwrap();
        assert_eq!(r.handler, Handler::Desired);
        assert_eq!(p, vec!["a-1"]);
        assert_eq!(
            find("GET", "/v1/agents").unwrap().0.handler,
            Handler::ListAgents
        );
        assert_eq!(
            find("PUT", "/v1/actions").unwrap_err().status,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            find("GET", "/v1/nope").unwrap_err().status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            find("GET", "/v1/actions/").unwrap_err().status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(allowed_methods("/v1/actions/x"), vec!["GET", "DELETE"]);
    }

    #[test]
    fn query_decoding() {
        let q = Query::parse(Some("action=act-1&after=5&x=a%20b+c&flag"));
        assert_eq!(q.str("action"), Some("act-1"));
        assert_eq!(q.num::<u64>("after", "n").unwrap(), Some(5));
        assert_eq!(q.str("x"), Some("a b c"));
        assert!(q.num::<u64>("x", "n").is_err());
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(
            Query::parse(Some("wait=60")).wait().unwrap(),
            Duration::from_secs(60)
        );
        assert!(Query::parse(Some("wait=61")).wait().is_err());
        assert!(Query::parse(Some("wait=")).wait().is_err());
        assert_eq!(
            Query::parse(Some("limit=99999999999999")).limit().unwrap(),
            1000
        );
        assert!(Query::parse(Some("wait=-1")).wait().is_err());
        assert_eq!(Query::parse(Some("limit=5000")).limit().unwrap(), 1000);
    }
}
