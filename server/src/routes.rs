//! The route table, the dispatcher and the handlers.
//!
//! [`ROUTES`] is the one list of (method, path template, handler): the dispatcher matches
//! requests against it, and a test checks that the OpenAPI document describes exactly it.

use crate::api::{
    AgentReport, EventAck, EventBatch, NewAction, RegisterRequest, RegisterResponse,
};
use crate::error::HttpError;
use crate::readers::Readers;
use crate::writer::{Done, Op, Published, WriterHandle};
use crate::{db, metrics, openapi, validate};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
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
}

/// A route: method, path template (`{id}` matches one path segment), handler.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    /// `GET`, `POST` or `DELETE`.
    pub method: &'static str,
    /// The path, with `{name}` for a segment taken as a parameter.
    pub path: &'static str,
    /// What answers it.
    pub handler: Handler,
}

const fn route(method: &'static str, path: &'static str, handler: Handler) -> Route {
    Route {
        method,
        path,
        handler,
    }
}

/// Every route the server answers.
pub const ROUTES: &[Route] = &[
    route("POST", "/v1/agents/register", Handler::Register),
    route("GET", "/v1/agents/{id}/desired", Handler::Desired),
    route("POST", "/v1/agents/{id}/report", Handler::Report),
    route("POST", "/v1/agents/{id}/events", Handler::Events),
    route("GET", "/v1/agents", Handler::ListAgents),
    route("POST", "/v1/actions", Handler::CreateAction),
    route("GET", "/v1/actions", Handler::ListActions),
    route("GET", "/v1/actions/{id}", Handler::GetAction),
    route("DELETE", "/v1/actions/{id}", Handler::DeleteAction),
    route("GET", "/v1/logs", Handler::Logs),
    route("GET", "/v1/snapshots", Handler::ListSnapshots),
    route("GET", "/v1/snapshots/{id}", Handler::GetSnapshot),
    route("GET", "/v1/metrics", Handler::MetricSeries),
    route("GET", "/metrics", Handler::Prometheus),
    route("GET", "/v1/openapi.json", Handler::OpenApi),
];

/// Who makes a request. Today everyone is [`Principal::Anonymous`]; the security issue
/// will add users and tokens here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// No credentials (allowed while the server has no authentication).
    Anonymous,
}

/// Decides who makes a request and whether it may; called before every route's handler.
/// The seam for authentication: it allows everything for now.
pub fn authorize<B>(_request: &Request<B>) -> Result<Principal, HttpError> {
    Ok(Principal::Anonymous)
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
        self.0.get(name).map(String::as_str).filter(|s| !s.is_empty())
    }

    fn num<T: std::str::FromStr>(&self, name: &str, what: &str) -> Result<Option<T>, HttpError> {
        match self.str(name) {
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
        if w.is_nan() || w < 0.0 {
            return Err(HttpError::bad_request(
                "bad query parameter wait",
                format!("wait={w} is negative; give the seconds to wait, 0 to {MAX_WAIT_SECS}"),
            ));
        }
        Ok(Duration::from_secs_f64(w.min(MAX_WAIT_SECS)))
    }

    /// `limit=N`: default 100, at most 1000.
    fn limit(&self) -> Result<u32, HttpError> {
        let n: u32 = self.num("limit", "a count")?.unwrap_or(100);
        if n == 0 {
            return Err(HttpError::bad_request(
                "bad query parameter limit",
                "limit=0 asks for nothing; give 1 to 1000 (default 100)",
            ));
        }
        Ok(n.min(1000))
    }
}

/// Answers one request: never fails, every error becomes its JSON answer.
pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    match answer(&app, req).await {
        Ok(r) => r,
        Err(e) => {
            let mut r = error_response(&e);
            if e.status == StatusCode::METHOD_NOT_ALLOWED
                && let Ok(v) = HeaderValue::from_str(&allowed_methods(&path).join(", "))
            {
                r.headers_mut().insert(ALLOW, v);
            }
            r
        }
    }
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
            format!("bodies are limited to {} MiB; send the events in smaller batches", MAX_BODY >> 20),
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
        .map_err(|e| HttpError::internal("parser failed", format!("parsing the body panicked ({e}); this is a bug of the server")))?
}

fn parse_json<T: DeserializeOwned>(body: &[u8], schema: &str) -> Result<T, HttpError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(HttpError::bad_request(
            "empty request body",
            format!("send a JSON {schema} (see /v1/openapi.json)"),
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        // serde_json calls some type errors syntax errors (an integer for an enum): whether
        // the body is JSON at all decides.
        let error = if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
            "invalid request body"
        } else {
            "malformed JSON"
        };
        HttpError::bad_request(
            error,
            format!("{e}; send a JSON {schema} (see /v1/openapi.json)"),
        )
    })
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
        format!("no agent {id}; register first with POST /v1/agents/register (an agent whose id is forgotten re-registers without it)"),
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

async fn answer(app: &Arc<App>, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let (route, params) = find(req.method().as_str(), req.uri().path())?;
    let _principal = authorize(&req)?;
    let query = Query::parse(req.uri().query());
    let body = if req.method() == Method::POST {
        read_body(req).await?
    } else {
        Bytes::new()
    };
    let id = params.first().cloned().unwrap_or_default();
    match route.handler {
        Handler::Register => {
            let r: RegisterRequest = parse_body(body, "RegisterRequest").await?;
            match app.writer.write(Op::Register(r)).await? {
                Done::AgentId(agent_id) => ok(&RegisterResponse { agent_id }),
                d => Err(unexpected(d)),
            }
        }
        Handler::Desired => {
            let since: Option<u64> = query.num("version", "a version number")?;
            let wait = query.wait()?;
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
            match app.writer.write(Op::Report(id.clone(), r)).await? {
                Done::Found(true) => empty_object(),
                Done::Found(false) => Err(unknown_agent(&id)),
                d => Err(unexpected(d)),
            }
        }
        Handler::Events => {
            let b: EventBatch = parse_body(body, "EventBatch").await?;
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
            ok(&app
                .readers
                .read(move |c| db::agents(c, now, &polling))
                .await?)
        }
        Handler::CreateAction => {
            let a: NewAction = parse_body(body, "NewAction").await?;
            validate::new_action(&a)?;
            match app.writer.write(Op::CreateAction(a)).await? {
                Done::Action(a) => ok(&*a),
                d => Err(unexpected(d)),
            }
        }
        Handler::ListActions => ok(&app.readers.read(|c| db::actions(c)).await?),
        Handler::GetAction => {
            let key = id.clone();
            let a = app.readers.read(move |c| db::action(c, &key)).await?;
            ok(&a.ok_or_else(|| unknown_action(&id))?)
        }
        Handler::DeleteAction => match app.writer.write(Op::DeleteAction(id.clone())).await? {
            Done::Found(true) => empty_object(),
            Done::Found(false) => Err(unknown_action(&id)),
            d => Err(unexpected(d)),
        },
        Handler::Logs => {
            let action = query.str("action").map(str::to_string);
            let after: u64 = query.num("after", "a log seq")?.unwrap_or(0);
            let limit = query.limit()?;
            let wait = query.wait()?;
            let deadline = tokio::time::Instant::now() + wait;
            let mut rx = app.published.last_log_seq.subscribe();
            loop {
                let seen = *rx.borrow_and_update();
                let a = action.clone();
                let lines = app
                    .readers
                    .read(move |c| db::logs(c, a.as_deref(), after, limit))
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
                .read(move |c| db::snapshots(c, action.as_deref(), limit))
                .await?)
        }
        Handler::GetSnapshot => {
            let n: u64 = id.parse().map_err(|_| {
                HttpError::bad_request(
                    "bad snapshot id",
                    format!("{id} is not a snapshot id; ids are numbers, as GET /v1/snapshots lists them"),
                )
            })?;
            let s = app.readers.read(move |c| db::snapshot(c, n)).await?;
            ok(&s.ok_or_else(|| {
                HttpError::not_found(
                    "unknown snapshot",
                    format!("no snapshot {n} (retention may have deleted it); GET /v1/snapshots lists them"),
                )
            })?)
        }
        Handler::MetricSeries => ok(&app.readers.read(|c| db::metric_series(c)).await?),
        Handler::Prometheus => {
            let series = app.readers.read(|c| db::metric_series(c)).await?;
            let mut r = Response::new(Full::new(Bytes::from(metrics::prometheus(&series))));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            Ok(r)
        }
        Handler::OpenApi => ok(&openapi::document()),
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
        assert_eq!(find("GET", "/v1/agents").unwrap().0.handler, Handler::ListAgents);
        assert_eq!(find("PUT", "/v1/actions").unwrap_err().status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(find("GET", "/v1/nope").unwrap_err().status, StatusCode::NOT_FOUND);
        assert_eq!(find("GET", "/v1/actions/").unwrap_err().status, StatusCode::NOT_FOUND);
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
        assert_eq!(Query::parse(Some("wait=100")).wait().unwrap(), Duration::from_secs(60));
        assert!(Query::parse(Some("wait=-1")).wait().is_err());
        assert_eq!(Query::parse(Some("limit=5000")).limit().unwrap(), 1000);
    }
}
