//! The wire protocol of the management server: the JSON bodies of every `/v1` route, shared
//! by the server, the agent and the client (one definition, so they cannot drift apart).
//!
//! Routes (all JSON; errors are `{"error": "...", "detail": "..."}` with a 4xx for bad input):
//!
//! | method | path | body → answer |
//! |---|---|---|
//! | POST | /v1/agents/register | [`RegisterRequest`] → [`RegisterResponse`] |
//! | GET | /v1/agents/{id}/desired?version=V&wait=SECS | → [`DesiredState`] (long poll: answers at once when the server's version differs from V, else when it changes, else after `wait` s) |
//! | POST | /v1/agents/{id}/report | [`AgentReport`] → `{}` |
//! | POST | /v1/agents/{id}/events | [`EventBatch`] → [`EventAck`] (acknowledged = committed to disk) |
//! | GET | /v1/agents | → `[Agent]` |
//! | POST | /v1/actions | [`NewAction`] → [`Action`] |
//! | GET | /v1/actions | → `[Action]` (with per-agent states) |
//! | GET | /v1/actions/{id} | → [`Action`] |
//! | DELETE | /v1/actions/{id} | → `{}` |
//! | GET | /v1/logs?action=ID&after=SEQ&limit=N&wait=SECS | → `[LogLine]` (ascending `seq`; `wait` long-polls for lines after `after`) |
//! | GET | /v1/snapshots?action=ID&limit=N | → `[SnapshotSummary]` |
//! | GET | /v1/snapshots/{id} | → [`StoredSnapshot`] |
//! | GET | /v1/metrics | → `[MetricSeries]` |
//! | GET | /metrics | Prometheus text exposition |
//! | GET | /v1/openapi.json | the OpenAPI 3 document of all of the above |
//! | POST | /v1/tokens | [`NewToken`] → [`CreatedToken`] (the secret is shown once) |
//! | GET | /v1/tokens | → `[TokenInfo]` |
//! | DELETE | /v1/tokens/{id} | → `{}` (revokes) |
//! | GET | /v1/audit?since=RFC3339&limit=N | → `[AuditEntry]` |
//! | POST | /v1/redactions | [`NewRedactionRule`] → [`RedactionRule`] |
//! | GET | /v1/redactions | → `[RedactionRule]` (built-in rules included) |
//! | DELETE | /v1/redactions/{id} | → `{}` |
//! | POST | /v1/blocklist | [`NewBlockRule`] → [`BlockRule`] |
//! | GET | /v1/blocklist | → `[BlockRule]` |
//! | DELETE | /v1/blocklist/{id} | → `{}` |
//! | POST | /v1/detach-all | → `{}` (kill switch on) |
//! | POST | /v1/attach-all | → `{}` (kill switch off) |
//!
//! Every request carries `Authorization: Bearer TOKEN`; no valid token → 401, a valid token
//! without the right → 403 (docs/security.md has the role matrix).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An agent says who it is.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RegisterRequest {
    pub host: String,
    pub pid: i32,
    /// The target's executable path.
    pub executable: String,
    /// Its GNU build-id, hex (empty if none).
    pub build_id: String,
    pub tags: BTreeMap<String, String>,
    /// Set when an agent re-registers after a server restart or a target restart: the
    /// server keeps the same id (and the agent keeps its probes).
    #[serde(default)]
    pub agent_id: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RegisterResponse {
    pub agent_id: String,
}

/// An agent as the server knows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Agent {
    pub id: String,
    pub host: String,
    pub pid: i32,
    pub executable: String,
    pub build_id: String,
    pub tags: BTreeMap<String, String>,
    /// RFC 3339 UTC.
    pub first_seen: String,
    pub last_seen: String,
    /// `online` (polled within the last 60 s) or `offline`.
    pub status: String,
    /// Events the agent dropped (queue full while the server was unreachable), as reported.
    pub dropped_events: u64,
}

/// What an action does.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Log,
    Snapshot,
    Metric,
}

/// The kind of a metric action.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// Hits of a line.
    Counter,
    /// Time between `location` and `end_location` on the same thread.
    Tictoc,
    /// A function's entry to its return, every return path, recursion-safe.
    Duration,
    /// An expression's numeric value, as a histogram.
    Value,
}

/// Which agents an action applies to: by id, or every agent (now or later) whose tags
/// include all of these.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Target {
    #[serde(default)]
    pub agents: Vec<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// An action's bounds (absent fields: the documented defaults, docs/quotas.md).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ActionQuota {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_hits: Option<u64>,
    /// Seconds after creation; 0 = never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines_per_sec: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_sec: Option<f64>,
}

/// A request to create an action.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NewAction {
    pub kind: ActionKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<MetricKind>,
    /// `file.c:42`, `function`, `lib.so:file.c:42`.
    pub location: String,
    /// Tic-toc: where the toc is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_location: Option<String>,
    /// Log template (`order {o->id}`), or the expression of a value metric.
    #[serde(default)]
    pub template: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    #[serde(default)]
    pub watches: Vec<String>,
    #[serde(default)]
    pub target: Target,
    #[serde(default)]
    pub quota: ActionQuota,
}

/// An action's state on one agent.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ActionState {
    pub action_id: String,
    /// `pending` (not reported yet), `active`, `error`, `paused`, `exhausted`, `expired`.
    pub state: String,
    /// Why (errors, pauses, ends), with the figures.
    #[serde(default)]
    pub reason: String,
    /// Hits so far on that agent.
    #[serde(default)]
    pub hits: u64,
}

/// An action as stored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Action {
    pub id: String,
    #[serde(flatten)]
    pub spec: NewAction,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// Per agent id: its state there.
    #[serde(default)]
    pub states: BTreeMap<String, ActionState>,
}

/// The full set of actions an agent must have, and the version of that set.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DesiredState {
    pub version: u64,
    pub actions: Vec<Action>,
    /// Redaction rules the agent applies before anything leaves the host.
    #[serde(default)]
    pub redactions: Vec<RedactionRule>,
    /// Where no probe may be set (the agent enforces it too).
    #[serde(default)]
    pub blocklist: Vec<BlockRule>,
    /// The kill switch: unplant everything and detach (until it is cleared).
    #[serde(default)]
    pub detach_all: bool,
}

/// An agent's report: the state of each of its actions, and its dropped-event count.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct AgentReport {
    pub states: Vec<ActionState>,
    /// Events dropped since the agent started (the queue was full).
    #[serde(default)]
    pub dropped_events: u64,
}

/// A log line.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LogLine {
    /// Assigned by the server: ascending, for `after=` paging.
    #[serde(default)]
    pub seq: u64,
    pub action_id: String,
    #[serde(default)]
    pub agent_id: String,
    /// RFC 3339 UTC with microseconds, when the hit happened.
    pub time: String,
    pub tid: i32,
    /// `loop.c:62`.
    pub location: String,
    pub message: String,
    /// The values by hole text (the JSON of `scry attach --json`).
    #[serde(default)]
    pub values: serde_json::Value,
}

/// A snapshot as uploaded: the JSON object of `scry attach --snapshot --json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UploadedSnapshot {
    pub action_id: String,
    pub time: String,
    pub tid: i32,
    pub snapshot: serde_json::Value,
}

/// A snapshot as stored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StoredSnapshot {
    pub id: u64,
    pub action_id: String,
    pub agent_id: String,
    pub time: String,
    pub tid: i32,
    pub snapshot: serde_json::Value,
}

/// A snapshot in a list (without its body).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SnapshotSummary {
    pub id: u64,
    pub action_id: String,
    pub agent_id: String,
    pub time: String,
    pub tid: i32,
    /// The top frame's function, file and line, for the list.
    pub top: String,
}

/// A metric sample, aggregated by the agent over its flush interval.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MetricSample {
    pub action_id: String,
    pub time: String,
    pub kind: MetricKind,
    /// Hits (counter), or observations (tictoc, duration, value) in this interval.
    pub count: u64,
    /// Sum of the observations (seconds for tictoc and duration), 0 for a counter.
    #[serde(default)]
    pub sum: f64,
    /// Observations per histogram bucket: (upper bound, count ≤ bound, not cumulative).
    #[serde(default)]
    pub buckets: Vec<(f64, u64)>,
}

/// What an agent uploads at once.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct EventBatch {
    #[serde(default)]
    pub logs: Vec<LogLine>,
    #[serde(default)]
    pub snapshots: Vec<UploadedSnapshot>,
    #[serde(default)]
    pub metrics: Vec<MetricSample>,
    /// Events dropped since the agent started.
    #[serde(default)]
    pub dropped: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EventAck {
    /// Events stored by this request.
    pub stored: u64,
}

/// A metric series as the server aggregates it (all agents, one action).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MetricSeries {
    pub action_id: String,
    pub kind: MetricKind,
    pub location: String,
    pub agent_id: String,
    pub count: u64,
    pub sum: f64,
    /// Cumulative histogram buckets (upper bound, count ≤ bound), Prometheus-style.
    pub buckets: Vec<(f64, u64)>,
}

/// An error answer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ApiError {
    pub error: String,
    pub detail: String,
}

/// A role a token carries.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    Admin,
    /// Create and remove actions, read data — only on agents its tags scope it to.
    Developer,
    /// Read only, same scoping.
    Viewer,
    /// Register, poll and upload, for its own agents only.
    Agent,
}

/// A request for a token.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NewToken {
    pub role: Role,
    /// Scope: the agents whose tags include all of these (empty: every agent).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Seconds until it expires (absent: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_secs: Option<u64>,
    /// A note for the list (who it is for).
    #[serde(default)]
    pub name: String,
}

/// A token as listed (never its secret).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TokenInfo {
    pub id: String,
    pub role: Role,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub name: String,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

/// A new token: its secret, shown this once.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CreatedToken {
    pub token: String,
    pub info: TokenInfo,
}

/// One audit record: every mutating request and every denied one.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AuditEntry {
    pub seq: u64,
    pub time: String,
    pub request_id: String,
    /// The token id and role (`tok-3 developer`), or `anonymous`.
    pub principal: String,
    pub method: String,
    pub path: String,
    /// What was acted on (an action id, an agent id), when known.
    #[serde(default)]
    pub target: String,
    /// The HTTP status answered.
    pub status: u16,
    /// Why, for a refusal.
    #[serde(default)]
    pub detail: String,
}

/// How a redaction rule matches.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RedactionKind {
    /// A variable or field name containing the pattern (case-insensitive): its value goes.
    Name,
    /// Text matching the pattern (a regular expression) goes, wherever it appears.
    Value,
    /// Payment card numbers (13–19 digits passing the Luhn check).
    CardNumber,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NewRedactionRule {
    pub kind: RedactionKind,
    #[serde(default)]
    pub pattern: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RedactionRule {
    pub id: String,
    pub kind: RedactionKind,
    #[serde(default)]
    pub pattern: String,
    /// One of the built-in set (cannot be removed).
    #[serde(default)]
    pub builtin: bool,
}

/// What a blocklist rule matches.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// A source path (glob, `*` and `?`): `*/crypto/*`.
    Path,
    /// A function name (glob): `*password*`.
    Function,
    /// A module (glob on the file name): `libssl.so*`.
    Module,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NewBlockRule {
    pub kind: BlockKind,
    pub pattern: String,
    /// An exception: what it matches is allowed even if another rule blocks it.
    #[serde(default)]
    pub allow: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BlockRule {
    pub id: String,
    pub kind: BlockKind,
    pub pattern: String,
    #[serde(default)]
    pub allow: bool,
}
