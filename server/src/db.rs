//! The SQLite database: schema, versioned migrations, and every query.
//!
//! Reads take a `&Connection` (used from blocking threads only, see [`crate::readers`]);
//! writes take the writer thread's open transaction (see [`crate::writer`]). No function here
//! is ever called on an async runtime thread.

use crate::api::{
    Action, ActionState, Agent, AgentReport, AuditEntry, BlockKind, BlockRule, DesiredState,
    EventBatch, LogLine, MetricKind, MetricSeries, NewAction, NewBlockRule, NewRedactionRule,
    NewToken, RedactionKind, RedactionRule, RegisterRequest, SnapshotSummary, StoredSnapshot,
    TokenInfo,
};
use crate::auth::{parse_role, role_str};
use crate::error::ServerError;
use crate::time::rfc3339;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "scry.db";

/// An agent is `online` when it polled within this many milliseconds.
pub const ONLINE_MS: i64 = 60_000;

/// The schema, one step per entry: entry `i` takes the database from `user_version` `i` to
/// `i + 1`. Steps are only ever appended, never edited, once released.
pub const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    INSERT INTO meta (key, value) VALUES ('version', 1), ('next_action', 1);

    CREATE TABLE agents (
        id             TEXT PRIMARY KEY,
        host           TEXT NOT NULL,
        pid            INTEGER NOT NULL,
        executable     TEXT NOT NULL,
        build_id       TEXT NOT NULL,
        tags           TEXT NOT NULL,             -- JSON object
        first_seen_ms  INTEGER NOT NULL,
        last_seen_ms   INTEGER NOT NULL,
        dropped_events INTEGER NOT NULL DEFAULT 0
    );

    CREATE TABLE actions (
        id         TEXT PRIMARY KEY,              -- 'act-' || num
        num        INTEGER NOT NULL UNIQUE,
        spec       TEXT NOT NULL,                 -- JSON of api::NewAction
        created_ms INTEGER NOT NULL
    );

    CREATE TABLE action_states (
        action_id  TEXT NOT NULL,
        agent_id   TEXT NOT NULL,
        state      TEXT NOT NULL,
        reason     TEXT NOT NULL,
        hits       INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        PRIMARY KEY (action_id, agent_id)
    ) WITHOUT ROWID;
    CREATE INDEX action_states_by_agent ON action_states (agent_id);

    CREATE TABLE logs (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, even after retention
        action_id   TEXT NOT NULL,
        agent_id    TEXT NOT NULL,
        time        TEXT NOT NULL,
        tid         INTEGER NOT NULL,
        location    TEXT NOT NULL,
        message     TEXT NOT NULL,
        vals        TEXT NOT NULL,                -- JSON
        received_ms INTEGER NOT NULL
    );
    CREATE INDEX logs_by_action ON logs (action_id, seq);
    CREATE INDEX logs_by_received ON logs (received_ms);

    CREATE TABLE snapshots (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        action_id   TEXT NOT NULL,
        agent_id    TEXT NOT NULL,
        time        TEXT NOT NULL,
        tid         INTEGER NOT NULL,
        top         TEXT NOT NULL,
        body        TEXT NOT NULL,                -- JSON of the snapshot
        received_ms INTEGER NOT NULL
    );
    CREATE INDEX snapshots_by_action ON snapshots (action_id, id);
    CREATE INDEX snapshots_by_received ON snapshots (received_ms);

    CREATE TABLE metric_samples (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        action_id   TEXT NOT NULL,
        agent_id    TEXT NOT NULL,
        time        TEXT NOT NULL,
        kind        TEXT NOT NULL,
        count       INTEGER NOT NULL,
        sum         REAL NOT NULL,
        buckets     TEXT NOT NULL,                -- JSON [[bound, count], ...], not cumulative
        received_ms INTEGER NOT NULL
    );
    CREATE INDEX metric_samples_by_received ON metric_samples (received_ms);

    -- Running totals per (action, agent): what /metrics exposes. Retention trims the samples,
    -- never these, so Prometheus counters never go down.
    CREATE TABLE metric_totals (
        action_id TEXT NOT NULL,
        agent_id  TEXT NOT NULL,
        kind      TEXT NOT NULL,
        count     INTEGER NOT NULL,
        sum       REAL NOT NULL,
        buckets   TEXT NOT NULL,                  -- JSON [[bound, count], ...], not cumulative
        PRIMARY KEY (action_id, agent_id)
    ) WITHOUT ROWID;
    "#,
    // 2: security and governance: tokens, the audit trail, redaction and blocklist rules,
    // the kill switch, and the token each agent registered with.
    r#"
    INSERT INTO meta (key, value) VALUES
        ('next_token', 1), ('next_redaction', 1), ('next_block', 1), ('detach_all', 0);

    CREATE TABLE tokens (
        id         TEXT PRIMARY KEY,              -- 'tok-' || num
        num        INTEGER NOT NULL UNIQUE,
        role       TEXT NOT NULL,                 -- admin, developer, viewer, agent
        tags       TEXT NOT NULL,                 -- JSON object: the scope
        name       TEXT NOT NULL,
        hash       TEXT NOT NULL UNIQUE,          -- hex SHA-256 of the secret
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER,
        revoked_ms INTEGER
    );

    ALTER TABLE agents ADD COLUMN token_id TEXT;  -- the token that registered it

    -- Append-only: the triggers refuse any change or deletion of a row.
    CREATE TABLE audit (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        time_ms    INTEGER NOT NULL,
        request_id TEXT NOT NULL,
        principal  TEXT NOT NULL,
        method     TEXT NOT NULL,
        path       TEXT NOT NULL,
        target     TEXT NOT NULL,
        status     INTEGER NOT NULL,
        detail     TEXT NOT NULL
    );
    CREATE INDEX audit_by_time ON audit (time_ms, seq);
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: rows cannot be changed'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: rows cannot be deleted'); END;

    CREATE TABLE redactions (
        id         TEXT PRIMARY KEY,              -- 'red-' || num
        num        INTEGER NOT NULL UNIQUE,
        kind       TEXT NOT NULL,                 -- name, value, card_number
        pattern    TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );

    CREATE TABLE blocklist (
        id         TEXT PRIMARY KEY,              -- 'blk-' || num
        num        INTEGER NOT NULL UNIQUE,
        kind       TEXT NOT NULL,                 -- path, function, module
        pattern    TEXT NOT NULL,
        allow      INTEGER NOT NULL,
        created_ms INTEGER NOT NULL
    );
    "#,
];

/// Opens (creating if need be) the database in `dir` for the writer, in WAL mode, and brings
/// its schema up to date.
pub fn open_writer(dir: &Path) -> Result<Connection, ServerError> {
    let path = dir.join(DB_FILE);
    let fail = |source| ServerError::Database {
        path: path.clone(),
        source,
    };
    let mut conn = Connection::open(&path).map_err(fail)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(fail)?;
    // FULL: a committed (= acknowledged) batch survives a power cut too, not only a crash.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(fail)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(fail)?;
    migrate(&mut conn, &path)?;
    Ok(conn)
}

/// Opens a read-only connection to the database in `dir` (the writer created it).
pub fn open_reader(dir: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        dir.join(DB_FILE),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// Applies the migrations past the database's `user_version`, each in its own transaction.
pub fn migrate(conn: &mut Connection, path: &Path) -> Result<(), ServerError> {
    let fail = |source| ServerError::Database {
        path: path.to_path_buf(),
        source,
    };
    let current: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(fail)?;
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(ServerError::SchemaTooNew {
            path: path.to_path_buf(),
            found: current,
            known,
        });
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction().map_err(fail)?;
        tx.execute_batch(step).map_err(fail)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)
            .map_err(fail)?;
        tx.commit().map_err(fail)?;
    }
    Ok(())
}

fn to_i64(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

/// The text of a metric kind (`counter`, `tictoc`, `duration`, `value`).
pub fn kind_str(kind: MetricKind) -> &'static str {
    match kind {
        MetricKind::Counter => "counter",
        MetricKind::Tictoc => "tictoc",
        MetricKind::Duration => "duration",
        MetricKind::Value => "value",
    }
}

fn parse_kind(s: &str) -> MetricKind {
    match s {
        "tictoc" => MetricKind::Tictoc,
        "duration" => MetricKind::Duration,
        "value" => MetricKind::Value,
        _ => MetricKind::Counter,
    }
}

fn json_col<T: serde::de::DeserializeOwned>(idx: usize, text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("API types always serialize")
}

// ---------------------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------------------

/// The desired-state version.
pub fn version(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT value FROM meta WHERE key = 'version'", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|v| v as u64)
}

/// Every agent; `status` is `online` when it polled within [`ONLINE_MS`] of `now_ms` or is
/// in a long poll right now (`polling`).
pub fn agents(
    conn: &Connection,
    now_ms: i64,
    polling: &HashSet<String>,
) -> rusqlite::Result<Vec<Agent>> {
    let mut stmt = conn.prepare(
        "SELECT id, host, pid, executable, build_id, tags, first_seen_ms, last_seen_ms, dropped_events
         FROM agents ORDER BY first_seen_ms, id",
    )?;
    let rows = stmt.query_map([], |r| {
        let id: String = r.get(0)?;
        let last_seen: i64 = r.get(7)?;
        let online = polling.contains(&id) || now_ms - last_seen <= ONLINE_MS;
        Ok(Agent {
            host: r.get(1)?,
            pid: r.get(2)?,
            executable: r.get(3)?,
            build_id: r.get(4)?,
            tags: json_col(5, &r.get::<_, String>(5)?)?,
            first_seen: rfc3339(r.get(6)?),
            last_seen: rfc3339(last_seen),
            status: if online { "online" } else { "offline" }.to_string(),
            dropped_events: r.get::<_, i64>(8)? as u64,
            id,
        })
    })?;
    rows.collect()
}

fn agent_tags(conn: &Connection, id: &str) -> rusqlite::Result<Option<BTreeMap<String, String>>> {
    conn.query_row("SELECT tags FROM agents WHERE id = ?1", [id], |r| {
        json_col(0, &r.get::<_, String>(0)?)
    })
    .optional()
}

/// Whether the agent is known.
pub fn agent_exists(conn: &Connection, id: &str) -> rusqlite::Result<bool> {
    conn.query_row("SELECT 1 FROM agents WHERE id = ?1", [id], |_| Ok(()))
        .optional()
        .map(|r| r.is_some())
}

fn read_actions(conn: &Connection, only: Option<&str>) -> rusqlite::Result<Vec<Action>> {
    let mut stmt = conn.prepare(
        "SELECT id, spec, created_ms FROM actions WHERE ?1 IS NULL OR id = ?1 ORDER BY num",
    )?;
    let mut actions: Vec<Action> = stmt
        .query_map([only], |r| {
            Ok(Action {
                id: r.get(0)?,
                spec: json_col(1, &r.get::<_, String>(1)?)?,
                created_at: rfc3339(r.get(2)?),
                states: BTreeMap::new(),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut stmt = conn.prepare(
        "SELECT action_id, agent_id, state, reason, hits FROM action_states
         WHERE ?1 IS NULL OR action_id = ?1",
    )?;
    let states = stmt.query_map([only], |r| {
        Ok((
            r.get::<_, String>(1)?,
            ActionState {
                action_id: r.get(0)?,
                state: r.get(2)?,
                reason: r.get(3)?,
                hits: r.get::<_, i64>(4)? as u64,
            },
        ))
    })?;
    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    for (i, a) in actions.iter().enumerate() {
        by_id.insert(a.id.clone(), i);
    }
    for s in states {
        let (agent, state) = s?;
        if let Some(&i) = by_id.get(&state.action_id) {
            actions[i].states.insert(agent, state);
        }
    }
    Ok(actions)
}

/// Every action with its per-agent states, oldest first.
pub fn actions(conn: &Connection) -> rusqlite::Result<Vec<Action>> {
    read_actions(conn, None)
}

/// One action with its per-agent states.
pub fn action(conn: &Connection, id: &str) -> rusqlite::Result<Option<Action>> {
    Ok(read_actions(conn, Some(id))?.into_iter().next())
}

/// Whether an action targets the agent with this id and these tags: named by id, or all
/// of the action's tags present with equal values in the agent's, or an empty target (all
/// agents).
pub fn targets(action: &NewAction, agent_id: &str, tags: &BTreeMap<String, String>) -> bool {
    let t = &action.target;
    if t.agents.is_empty() && t.tags.is_empty() {
        return true;
    }
    t.agents.iter().any(|a| a == agent_id)
        || (!t.tags.is_empty() && t.tags.iter().all(|(k, v)| tags.get(k) == Some(v)))
}

/// The desired state of an agent (`None`: unknown agent), read in one transaction so the
/// version and the actions agree. Each action carries only this agent's state.
pub fn desired(conn: &mut Connection, agent_id: &str) -> rusqlite::Result<Option<DesiredState>> {
    let tx = conn.transaction()?;
    let Some(tags) = agent_tags(&tx, agent_id)? else {
        return Ok(None);
    };
    let version = version(&tx)?;
    let actions = read_actions(&tx, None)?
        .into_iter()
        .filter(|a| targets(&a.spec, agent_id, &tags))
        .map(|mut a| {
            a.states.retain(|agent, _| agent == agent_id);
            a
        })
        .collect();
    let redactions = redactions(&tx)?;
    let blocklist = block_rules(&tx)?;
    let detach_all = detach_all(&tx)?;
    tx.finish()?;
    Ok(Some(DesiredState {
        version,
        actions,
        redactions,
        blocklist,
        detach_all,
    }))
}

/// The JSON array of agent ids a read is restricted to (`None`: not restricted), as the
/// queries take it.
fn only_json(only: Option<&[String]>) -> Option<String> {
    only.map(|ids| to_json(&ids))
}

/// Log lines with `seq > after`, ascending, at most `limit`, optionally of one action, and
/// only of the agents `only` lists when it is given.
pub fn logs(
    conn: &Connection,
    action: Option<&str>,
    after: u64,
    limit: u32,
    only: Option<&[String]>,
) -> rusqlite::Result<Vec<LogLine>> {
    let mut stmt = conn.prepare(
        "SELECT seq, action_id, agent_id, time, tid, location, message, vals FROM logs
         WHERE seq > ?1 AND (?2 IS NULL OR action_id = ?2)
           AND (?4 IS NULL OR agent_id IN (SELECT value FROM json_each(?4)))
         ORDER BY seq LIMIT ?3",
    )?;
    let rows = stmt.query_map(
        params![to_i64(after), action, limit, only_json(only)],
        |r| {
            Ok(LogLine {
                seq: r.get::<_, i64>(0)? as u64,
                action_id: r.get(1)?,
                agent_id: r.get(2)?,
                time: r.get(3)?,
                tid: r.get(4)?,
                location: r.get(5)?,
                message: r.get(6)?,
                values: json_col(7, &r.get::<_, String>(7)?)?,
            })
        },
    )?;
    rows.collect()
}

/// The newest `limit` snapshots, newest first, optionally of one action, and only of the
/// agents `only` lists when it is given.
pub fn snapshots(
    conn: &Connection,
    action: Option<&str>,
    limit: u32,
    only: Option<&[String]>,
) -> rusqlite::Result<Vec<SnapshotSummary>> {
    let mut stmt = conn.prepare(
        "SELECT id, action_id, agent_id, time, tid, top FROM snapshots
         WHERE (?1 IS NULL OR action_id = ?1)
           AND (?3 IS NULL OR agent_id IN (SELECT value FROM json_each(?3)))
         ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![action, limit, only_json(only)], |r| {
        Ok(SnapshotSummary {
            id: r.get::<_, i64>(0)? as u64,
            action_id: r.get(1)?,
            agent_id: r.get(2)?,
            time: r.get(3)?,
            tid: r.get(4)?,
            top: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// One snapshot with its body.
pub fn snapshot(conn: &Connection, id: u64) -> rusqlite::Result<Option<StoredSnapshot>> {
    conn.query_row(
        "SELECT id, action_id, agent_id, time, tid, body FROM snapshots WHERE id = ?1",
        [to_i64(id)],
        |r| {
            Ok(StoredSnapshot {
                id: r.get::<_, i64>(0)? as u64,
                action_id: r.get(1)?,
                agent_id: r.get(2)?,
                time: r.get(3)?,
                tid: r.get(4)?,
                snapshot: json_col(5, &r.get::<_, String>(5)?)?,
            })
        },
    )
    .optional()
}

/// One series per (action, agent) of the existing actions, buckets cumulative and ascending;
/// only of the agents `only` lists when it is given.
pub fn metric_series(
    conn: &Connection,
    only: Option<&[String]>,
) -> rusqlite::Result<Vec<MetricSeries>> {
    let mut stmt = conn.prepare(
        "SELECT t.action_id, t.agent_id, t.kind, t.count, t.sum, t.buckets, a.spec
         FROM metric_totals t JOIN actions a ON a.id = t.action_id
         WHERE ?1 IS NULL OR t.agent_id IN (SELECT value FROM json_each(?1))
         ORDER BY a.num, t.agent_id",
    )?;
    let rows = stmt.query_map([only_json(only)], |r| {
        let spec: NewAction = json_col(6, &r.get::<_, String>(6)?)?;
        let buckets: Vec<(f64, u64)> = json_col(5, &r.get::<_, String>(5)?)?;
        Ok(MetricSeries {
            action_id: r.get(0)?,
            agent_id: r.get(1)?,
            kind: parse_kind(&r.get::<_, String>(2)?),
            location: spec.location,
            count: r.get::<_, i64>(3)? as u64,
            sum: r.get(4)?,
            buckets: cumulative(buckets),
        })
    })?;
    rows.collect()
}

/// Sorts buckets by bound and makes their counts cumulative.
pub fn cumulative(mut buckets: Vec<(f64, u64)>) -> Vec<(f64, u64)> {
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut total = 0u64;
    for b in &mut buckets {
        total = total.saturating_add(b.1);
        b.1 = total;
    }
    buckets
}

/// Adds `more` to `into` bound by bound (both not cumulative).
pub fn merge_buckets(into: &mut Vec<(f64, u64)>, more: &[(f64, u64)]) {
    for &(bound, n) in more {
        match into.iter_mut().find(|b| b.0.to_bits() == bound.to_bits()) {
            Some(b) => b.1 = b.1.saturating_add(n),
            None => into.push((bound, n)),
        }
    }
    into.sort_by(|a, b| a.0.total_cmp(&b.0));
}

/// Rows per event table, for the writer's count-based retention.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Rows of `logs`.
    pub logs: u64,
    /// Rows of `snapshots`.
    pub snapshots: u64,
    /// Rows of `metric_samples`.
    pub samples: u64,
}

/// Counts the rows of the event tables.
pub fn counts(conn: &Connection) -> rusqlite::Result<Counts> {
    let count = |t: &str| -> rusqlite::Result<u64> {
        conn.query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| {
            r.get::<_, i64>(0)
        })
        .map(|n| n as u64)
    };
    Ok(Counts {
        logs: count("logs")?,
        snapshots: count("snapshots")?,
        samples: count("metric_samples")?,
    })
}

// ---------------------------------------------------------------------------------------
// Writes (inside the writer's transaction)
// ---------------------------------------------------------------------------------------

/// Bumps the desired-state version; returns the new one.
pub fn bump_version(tx: &Connection) -> rusqlite::Result<u64> {
    tx.query_row(
        "UPDATE meta SET value = value + 1 WHERE key = 'version' RETURNING value",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|v| v as u64)
}

/// Registers an agent, bound to the token `owner`: keeps `req.agent_id` when it is known
/// and `owner` may take it (`any_owner`, or it was registered with the same token), updating
/// what it says about itself, keeping its first-seen time and its action states; else
/// creates `new_id()`.
pub fn register(
    tx: &Connection,
    req: &RegisterRequest,
    owner: Option<&str>,
    any_owner: bool,
    now_ms: i64,
    mut new_id: impl FnMut() -> String,
) -> rusqlite::Result<String> {
    let tags = to_json(&req.tags);
    if let Some(id) = &req.agent_id {
        let n = tx.execute(
            "UPDATE agents SET host = ?2, pid = ?3, executable = ?4, build_id = ?5, tags = ?6,
             last_seen_ms = ?7, token_id = ?8 WHERE id = ?1 AND (?9 OR token_id IS ?8)",
            params![
                id,
                req.host,
                req.pid,
                req.executable,
                req.build_id,
                tags,
                now_ms,
                owner,
                any_owner
            ],
        )?;
        if n == 1 {
            return Ok(id.clone());
        }
    }
    let id = loop {
        let id = new_id();
        if !agent_exists(tx, &id)? {
            break id;
        }
    };
    tx.execute(
        "INSERT INTO agents (id, host, pid, executable, build_id, tags, first_seen_ms, last_seen_ms, token_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)",
        params![id, req.host, req.pid, req.executable, req.build_id, tags, now_ms, owner],
    )?;
    Ok(id)
}

/// Marks the agent seen now; false if unknown.
pub fn touch(tx: &Connection, agent_id: &str, now_ms: i64) -> rusqlite::Result<bool> {
    Ok(tx.execute(
        "UPDATE agents SET last_seen_ms = MAX(last_seen_ms, ?2) WHERE id = ?1",
        params![agent_id, now_ms],
    )? == 1)
}

/// Stores an agent's report (its action states, its dropped count); false if unknown.
/// States of actions that no longer exist are ignored.
pub fn report(
    tx: &Connection,
    agent_id: &str,
    report: &AgentReport,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    let n = tx.execute(
        "UPDATE agents SET last_seen_ms = MAX(last_seen_ms, ?2), dropped_events = ?3 WHERE id = ?1",
        params![agent_id, now_ms, to_i64(report.dropped_events)],
    )?;
    if n == 0 {
        return Ok(false);
    }
    let mut stmt = tx.prepare_cached(
        "INSERT INTO action_states (action_id, agent_id, state, reason, hits, updated_ms)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM actions WHERE id = ?1)
         ON CONFLICT (action_id, agent_id) DO UPDATE SET
           state = excluded.state, reason = excluded.reason, hits = excluded.hits,
           updated_ms = excluded.updated_ms",
    )?;
    for s in &report.states {
        stmt.execute(params![
            s.action_id,
            agent_id,
            s.state,
            s.reason,
            to_i64(s.hits),
            now_ms
        ])?;
    }
    Ok(true)
}

/// What [`store_events`] stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stored {
    /// Log lines stored.
    pub logs: u64,
    /// Snapshots stored.
    pub snapshots: u64,
    /// Metric samples stored.
    pub samples: u64,
    /// The seq of the last log line stored (0: none).
    pub last_seq: u64,
}

/// `function file:line` of a snapshot's first frame (`""` when it has none).
pub fn snapshot_top(snapshot: &serde_json::Value) -> String {
    let Some(f) = snapshot.get("frames").and_then(|f| f.get(0)) else {
        return String::new();
    };
    let text = |k: &str| match f.get(k) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    };
    let function = text("function");
    let (file, line) = (text("file"), text("line"));
    let place = match (file.is_empty(), line.is_empty() || line == "0") {
        (true, _) => String::new(),
        (false, true) => file,
        (false, false) => format!("{file}:{line}"),
    };
    let function = if function.is_empty() {
        "??".to_string()
    } else {
        function
    };
    if place.is_empty() {
        function
    } else {
        format!("{function} {place}")
    }
}

/// Stores a batch of events of an agent (`None`: unknown agent). Log lines get their `seq`
/// here; the agent id is the one of the path, whatever the lines say.
pub fn store_events(
    tx: &Connection,
    agent_id: &str,
    batch: &EventBatch,
    now_ms: i64,
) -> rusqlite::Result<Option<Stored>> {
    let n = tx.execute(
        "UPDATE agents SET last_seen_ms = MAX(last_seen_ms, ?2),
           dropped_events = CASE WHEN ?3 > 0 THEN ?3 ELSE dropped_events END
         WHERE id = ?1",
        params![agent_id, now_ms, to_i64(batch.dropped)],
    )?;
    if n == 0 {
        return Ok(None);
    }
    let mut stored = Stored::default();
    let mut stmt = tx.prepare_cached(
        "INSERT INTO logs (action_id, agent_id, time, tid, location, message, vals, received_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING seq",
    )?;
    for l in &batch.logs {
        stored.last_seq = stmt.query_row(
            params![
                l.action_id,
                agent_id,
                l.time,
                l.tid,
                l.location,
                l.message,
                to_json(&l.values),
                now_ms
            ],
            |r| r.get::<_, i64>(0),
        )? as u64;
        stored.logs += 1;
    }
    let mut stmt = tx.prepare_cached(
        "INSERT INTO snapshots (action_id, agent_id, time, tid, top, body, received_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for s in &batch.snapshots {
        stmt.execute(params![
            s.action_id,
            agent_id,
            s.time,
            s.tid,
            snapshot_top(&s.snapshot),
            to_json(&s.snapshot),
            now_ms
        ])?;
        stored.snapshots += 1;
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO metric_samples (action_id, agent_id, time, kind, count, sum, buckets, received_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let mut total = tx.prepare_cached(
        "SELECT count, sum, buckets FROM metric_totals WHERE action_id = ?1 AND agent_id = ?2",
    )?;
    let mut upsert = tx.prepare_cached(
        "INSERT OR REPLACE INTO metric_totals (action_id, agent_id, kind, count, sum, buckets)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM actions WHERE id = ?1)",
    )?;
    for m in &batch.metrics {
        let kind = kind_str(m.kind);
        insert.execute(params![
            m.action_id,
            agent_id,
            m.time,
            kind,
            to_i64(m.count),
            m.sum,
            to_json(&m.buckets),
            now_ms
        ])?;
        stored.samples += 1;
        let (count, sum, mut buckets) = total
            .query_row(params![m.action_id, agent_id], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, f64>(1)?,
                    json_col::<Vec<(f64, u64)>>(2, &r.get::<_, String>(2)?)?,
                ))
            })
            .optional()?
            .unwrap_or_default();
        merge_buckets(&mut buckets, &m.buckets);
        upsert.execute(params![
            m.action_id,
            agent_id,
            kind,
            to_i64(count.saturating_add(m.count)),
            sum + m.sum,
            to_json(&buckets)
        ])?;
    }
    Ok(Some(stored))
}

/// Stores a new action with the next `act-N` id.
pub fn create_action(tx: &Connection, spec: &NewAction, now_ms: i64) -> rusqlite::Result<Action> {
    let num: i64 = tx.query_row(
        "UPDATE meta SET value = value + 1 WHERE key = 'next_action' RETURNING value - 1",
        [],
        |r| r.get(0),
    )?;
    let id = format!("act-{num}");
    tx.execute(
        "INSERT INTO actions (id, num, spec, created_ms) VALUES (?1, ?2, ?3, ?4)",
        params![id, num, to_json(spec), now_ms],
    )?;
    Ok(Action {
        id,
        spec: spec.clone(),
        created_at: rfc3339(now_ms),
        states: BTreeMap::new(),
    })
}

/// Deletes an action, its states and its metric totals (its events stay until retention);
/// false if unknown.
pub fn delete_action(tx: &Connection, id: &str) -> rusqlite::Result<bool> {
    let n = tx.execute("DELETE FROM actions WHERE id = ?1", [id])?;
    tx.execute("DELETE FROM action_states WHERE action_id = ?1", [id])?;
    tx.execute("DELETE FROM metric_totals WHERE action_id = ?1", [id])?;
    Ok(n == 1)
}

/// Most actions that may target one agent.
pub const MAX_ACTIONS_PER_AGENT: usize = 200;

/// The first known agent that `spec` targets and that already has
/// [`MAX_ACTIONS_PER_AGENT`] actions, with that count.
pub fn agent_over_limit(
    tx: &Connection,
    spec: &NewAction,
) -> rusqlite::Result<Option<(String, usize)>> {
    let agents = agent_tag_map(tx)?;
    let targeted: Vec<(&String, &BTreeMap<String, String>)> = agents
        .iter()
        .filter(|(id, tags)| targets(spec, id, tags))
        .collect();
    if targeted.is_empty() {
        return Ok(None);
    }
    let mut stmt = tx.prepare_cached("SELECT spec FROM actions")?;
    let specs: Vec<NewAction> = stmt
        .query_map([], |r| json_col(0, &r.get::<_, String>(0)?))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, tags) in targeted {
        let n = specs.iter().filter(|s| targets(s, id, tags)).count();
        if n >= MAX_ACTIONS_PER_AGENT {
            return Ok(Some((id.clone(), n)));
        }
    }
    Ok(None)
}

// ---------------------------------------------------------------------------------------
// Security: tokens, audit, redaction and blocklist rules, the kill switch, agent owners
// ---------------------------------------------------------------------------------------

/// Every agent's tags, by id.
pub fn agent_tag_map(
    conn: &Connection,
) -> rusqlite::Result<BTreeMap<String, BTreeMap<String, String>>> {
    let mut stmt = conn.prepare_cached("SELECT id, tags FROM agents")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get(0)?, json_col(1, &r.get::<_, String>(1)?)?))
    })?;
    rows.collect()
}

/// The ids of the agents inside a scope (`None` scope: `None`, no restriction).
pub fn agents_in_scope(
    conn: &Connection,
    scope: Option<&BTreeMap<String, String>>,
) -> rusqlite::Result<Option<Vec<String>>> {
    let Some(scope) = scope else { return Ok(None) };
    Ok(Some(
        agent_tag_map(conn)?
            .into_iter()
            .filter(|(_, tags)| crate::auth::agent_in_scope(scope, tags))
            .map(|(id, _)| id)
            .collect(),
    ))
}

/// The token an agent registered with: `None` if the agent is unknown, `Some(None)` if it
/// has none (registered before tokens existed).
pub fn agent_owner(conn: &Connection, id: &str) -> rusqlite::Result<Option<Option<String>>> {
    conn.query_row("SELECT token_id FROM agents WHERE id = ?1", [id], |r| {
        r.get(0)
    })
    .optional()
}

/// The agent a snapshot came from.
pub fn snapshot_agent(conn: &Connection, id: u64) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT agent_id FROM snapshots WHERE id = ?1",
        [to_i64(id)],
        |r| r.get(0),
    )
    .optional()
}

/// A stored token: what [`TokenInfo`] shows, plus its times in ms.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredToken {
    /// The token as listed.
    pub info: TokenInfo,
    /// When it expires, ms since the epoch.
    pub expires_ms: Option<i64>,
    /// When it was revoked, ms since the epoch.
    pub revoked_ms: Option<i64>,
}

fn token_row(r: &rusqlite::Row) -> rusqlite::Result<StoredToken> {
    let expires_ms: Option<i64> = r.get(5)?;
    let revoked_ms: Option<i64> = r.get(6)?;
    Ok(StoredToken {
        info: TokenInfo {
            id: r.get(0)?,
            role: parse_role(&r.get::<_, String>(1)?),
            tags: json_col(2, &r.get::<_, String>(2)?)?,
            name: r.get(3)?,
            created_at: rfc3339(r.get(4)?),
            expires_at: expires_ms.map(rfc3339),
            revoked_at: revoked_ms.map(rfc3339),
        },
        expires_ms,
        revoked_ms,
    })
}

const TOKEN_COLUMNS: &str = "id, role, tags, name, created_ms, expires_ms, revoked_ms";

/// The token with this hash.
pub fn token_by_hash(conn: &Connection, hash: &str) -> rusqlite::Result<Option<StoredToken>> {
    conn.query_row(
        &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = ?1"),
        [hash],
        token_row,
    )
    .optional()
}

/// Every token, oldest first (revoked ones included).
pub fn tokens(conn: &Connection) -> rusqlite::Result<Vec<TokenInfo>> {
    let mut stmt = conn.prepare(&format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY num"))?;
    let rows = stmt.query_map([], |r| token_row(r).map(|t| t.info))?;
    rows.collect()
}

/// How many tokens there are (revoked ones included).
pub fn token_count(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT COUNT(*) FROM tokens", [], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
}

fn next_num(tx: &Connection, counter: &str) -> rusqlite::Result<i64> {
    tx.query_row(
        "UPDATE meta SET value = value + 1 WHERE key = ?1 RETURNING value - 1",
        [counter],
        |r| r.get(0),
    )
}

/// Stores a token (its hash only) with the next `tok-N` id.
pub fn create_token(
    tx: &Connection,
    t: &NewToken,
    hash: &str,
    now_ms: i64,
) -> rusqlite::Result<TokenInfo> {
    let num = next_num(tx, "next_token")?;
    let id = format!("tok-{num}");
    let expires_ms = t
        .expires_secs
        .map(|s| now_ms.saturating_add(to_i64(s).saturating_mul(1000)));
    tx.execute(
        "INSERT INTO tokens (id, num, role, tags, name, hash, created_ms, expires_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            id,
            num,
            role_str(t.role),
            to_json(&t.tags),
            t.name,
            hash,
            now_ms,
            expires_ms
        ],
    )?;
    Ok(TokenInfo {
        id,
        role: t.role,
        tags: t.tags.clone(),
        name: t.name.clone(),
        created_at: rfc3339(now_ms),
        expires_at: expires_ms.map(rfc3339),
        revoked_at: None,
    })
}

/// Revokes a token (a revoked one keeps its first revocation time); false if unknown.
pub fn revoke_token(tx: &Connection, id: &str, now_ms: i64) -> rusqlite::Result<bool> {
    Ok(tx.execute(
        "UPDATE tokens SET revoked_ms = COALESCE(revoked_ms, ?2) WHERE id = ?1",
        params![id, now_ms],
    )? == 1)
}

/// Appends a row to the audit trail (its `seq` and `time` are assigned here).
pub fn append_audit(tx: &Connection, e: &AuditEntry, now_ms: i64) -> rusqlite::Result<u64> {
    tx.query_row(
        "INSERT INTO audit (time_ms, request_id, principal, method, path, target, status, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING seq",
        params![
            now_ms,
            e.request_id,
            e.principal,
            e.method,
            e.path,
            e.target,
            e.status,
            e.detail
        ],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as u64)
}

/// Audit rows at or after `since_ms` with `seq > after`, ascending, at most `limit`.
pub fn audit(
    conn: &Connection,
    since_ms: i64,
    after: u64,
    limit: u32,
) -> rusqlite::Result<Vec<AuditEntry>> {
    let mut stmt = conn.prepare(
        "SELECT seq, time_ms, request_id, principal, method, path, target, status, detail
         FROM audit WHERE time_ms >= ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![since_ms, to_i64(after), limit], |r| {
        Ok(AuditEntry {
            seq: r.get::<_, i64>(0)? as u64,
            time: rfc3339(r.get(1)?),
            request_id: r.get(2)?,
            principal: r.get(3)?,
            method: r.get(4)?,
            path: r.get(5)?,
            target: r.get(6)?,
            status: r.get::<_, i64>(7)? as u16,
            detail: r.get(8)?,
        })
    })?;
    rows.collect()
}

fn redaction_kind_str(k: RedactionKind) -> &'static str {
    match k {
        RedactionKind::Name => "name",
        RedactionKind::Value => "value",
        RedactionKind::CardNumber => "card_number",
    }
}

fn block_kind_str(k: BlockKind) -> &'static str {
    match k {
        BlockKind::Path => "path",
        BlockKind::Function => "function",
        BlockKind::Module => "module",
    }
}

/// The redaction rules in force: the built-in ones, then the stored ones, oldest first.
pub fn redactions(conn: &Connection) -> rusqlite::Result<Vec<RedactionRule>> {
    let mut rules = crate::redact::builtin_rules();
    let mut stmt = conn.prepare_cached("SELECT id, kind, pattern FROM redactions ORDER BY num")?;
    let rows = stmt.query_map([], |r| {
        let kind = match r.get::<_, String>(1)?.as_str() {
            "name" => RedactionKind::Name,
            "card_number" => RedactionKind::CardNumber,
            _ => RedactionKind::Value,
        };
        Ok(RedactionRule {
            id: r.get(0)?,
            kind,
            pattern: r.get(2)?,
            builtin: false,
        })
    })?;
    for row in rows {
        rules.push(row?);
    }
    Ok(rules)
}

/// Stores a redaction rule with the next `red-N` id.
pub fn create_redaction(
    tx: &Connection,
    rule: &NewRedactionRule,
    now_ms: i64,
) -> rusqlite::Result<RedactionRule> {
    let num = next_num(tx, "next_redaction")?;
    let id = format!("red-{num}");
    tx.execute(
        "INSERT INTO redactions (id, num, kind, pattern, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, num, redaction_kind_str(rule.kind), rule.pattern, now_ms],
    )?;
    Ok(RedactionRule {
        id,
        kind: rule.kind,
        pattern: rule.pattern.clone(),
        builtin: false,
    })
}

/// Deletes a stored redaction rule; false if unknown.
pub fn delete_redaction(tx: &Connection, id: &str) -> rusqlite::Result<bool> {
    Ok(tx.execute("DELETE FROM redactions WHERE id = ?1", [id])? == 1)
}

/// The blocklist, oldest rule first.
pub fn block_rules(conn: &Connection) -> rusqlite::Result<Vec<BlockRule>> {
    let mut stmt =
        conn.prepare_cached("SELECT id, kind, pattern, allow FROM blocklist ORDER BY num")?;
    let rows = stmt.query_map([], |r| {
        let kind = match r.get::<_, String>(1)?.as_str() {
            "path" => BlockKind::Path,
            "module" => BlockKind::Module,
            _ => BlockKind::Function,
        };
        Ok(BlockRule {
            id: r.get(0)?,
            kind,
            pattern: r.get(2)?,
            allow: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// Stores a blocklist rule with the next `blk-N` id.
pub fn create_block(
    tx: &Connection,
    rule: &NewBlockRule,
    now_ms: i64,
) -> rusqlite::Result<BlockRule> {
    let num = next_num(tx, "next_block")?;
    let id = format!("blk-{num}");
    tx.execute(
        "INSERT INTO blocklist (id, num, kind, pattern, allow, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, num, block_kind_str(rule.kind), rule.pattern, rule.allow, now_ms],
    )?;
    Ok(BlockRule {
        id,
        kind: rule.kind,
        pattern: rule.pattern.clone(),
        allow: rule.allow,
    })
}

/// Deletes a blocklist rule; false if unknown.
pub fn delete_block(tx: &Connection, id: &str) -> rusqlite::Result<bool> {
    Ok(tx.execute("DELETE FROM blocklist WHERE id = ?1", [id])? == 1)
}

/// Creates an admin token named `name`; returns its secret (shown once) and what is stored.
pub fn new_admin_token(
    tx: &Connection,
    name: &str,
    now_ms: i64,
) -> rusqlite::Result<(String, TokenInfo)> {
    let secret = crate::auth::new_secret();
    let t = NewToken {
        role: crate::api::Role::Admin,
        tags: BTreeMap::new(),
        expires_secs: None,
        name: name.to_string(),
    };
    let info = create_token(tx, &t, &crate::auth::hash_token(&secret), now_ms)?;
    Ok((secret, info))
}

/// Whether the kill switch is on.
pub fn detach_all(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row("SELECT value FROM meta WHERE key = 'detach_all'", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|v| v != 0)
}

/// Sets the kill switch.
pub fn set_detach_all(tx: &Connection, on: bool) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'detach_all'",
        [on as i64],
    )?;
    Ok(())
}

/// The event tables retention trims: (table, key column).
pub const EVENT_TABLES: [(&str, &str); 3] = [
    ("logs", "seq"),
    ("snapshots", "id"),
    ("metric_samples", "id"),
];

/// Deletes the `excess` oldest rows of an event table; returns how many went.
pub fn trim_oldest(tx: &Connection, table: &str, key: &str, excess: u64) -> rusqlite::Result<u64> {
    if excess == 0 {
        return Ok(0);
    }
    Ok(tx.execute(
        &format!(
            "DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} ORDER BY {key} LIMIT ?1)"
        ),
        [to_i64(excess)],
    )? as u64)
}

/// Deletes the rows of every event table received before `cutoff_ms`; returns how many went.
pub fn trim_older_than(tx: &Connection, cutoff_ms: i64) -> rusqlite::Result<u64> {
    let mut n = 0;
    for (table, _) in EVENT_TABLES {
        n += tx.execute(
            &format!("DELETE FROM {table} WHERE received_ms < ?1"),
            [cutoff_ms],
        )? as u64;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_of_a_snapshot() {
        let s = serde_json::json!({"frames": [{"function": "main", "file": "loop.c", "line": 62}]});
        assert_eq!(snapshot_top(&s), "main loop.c:62");
        assert_eq!(snapshot_top(&serde_json::json!({})), "");
        let s = serde_json::json!({"frames": [{"function": null, "file": null, "line": 0}]});
        assert_eq!(snapshot_top(&s), "??");
    }

    #[test]
    fn buckets_merge_and_accumulate() {
        let mut b = vec![(0.01, 2), (0.1, 1)];
        merge_buckets(&mut b, &[(0.001, 1), (0.1, 3)]);
        assert_eq!(b, vec![(0.001, 1), (0.01, 2), (0.1, 4)]);
        assert_eq!(cumulative(b), vec![(0.001, 1), (0.01, 3), (0.1, 7)]);
    }

    #[test]
    fn migrations_apply_once() {
        let mut c = Connection::open_in_memory().unwrap();
        let p = Path::new(":memory:");
        migrate(&mut c, p).unwrap();
        migrate(&mut c, p).unwrap();
        let v: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        assert_eq!(version(&c).unwrap(), 1);
    }
}
