//! The writer: one OS thread owning the one writing connection. Requests come over a
//! channel; the thread takes every request waiting (up to [`MAX_BATCH`]), applies them in one
//! transaction (each in a savepoint, so one failing request does not undo the others),
//! commits, and only then answers each request. An HTTP request that stores data therefore
//! answers after its data is on disk.
//!
//! After a commit the thread publishes the new desired-state version and the last log seq
//! on `watch` channels, which wake the long polls.

use crate::Retention;
use crate::api::{
    Action, AgentReport, AuditEntry, BlockRule, EventBatch, NewAction, NewBlockRule,
    NewRedactionRule, NewToken, RedactionRule, RegisterRequest, TokenInfo,
};
use crate::db::{self, Counts};
use crate::error::HttpError;
use crate::redact::Redactor;
use crate::time::now_ms;
use hyper::StatusCode;
use rusqlite::Connection;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::{mpsc, oneshot, watch};

/// Most requests committed in one transaction.
pub const MAX_BATCH: usize = 512;

/// A write request.
#[derive(Debug)]
pub enum Op {
    /// Register (or re-register) an agent → [`Done::AgentId`].
    Register {
        /// What the agent says.
        req: RegisterRequest,
        /// The token it registers with (bound to the agent).
        owner: Option<String>,
        /// Whether it may take over an agent id registered with another token (admins).
        any_owner: bool,
    },
    /// Mark an agent seen → [`Done::Found`].
    Touch(String),
    /// Store an agent's report → [`Done::Found`].
    Report(String, AgentReport),
    /// Store events of an agent → [`Done::Stored`] (`None`: unknown agent).
    Events(String, EventBatch),
    /// Create an action → [`Done::Action`], or [`Done::Refused`] by the blocklist or the
    /// per-agent limit.
    CreateAction(NewAction),
    /// Store a token (its hash) → [`Done::Token`].
    CreateToken(NewToken, String),
    /// Revoke a token → [`Done::Found`].
    RevokeToken(String),
    /// Append to the audit trail → [`Done::Found`].
    Audit(AuditEntry),
    /// Add a redaction rule → [`Done::Redaction`].
    CreateRedaction(NewRedactionRule),
    /// Delete a redaction rule → [`Done::Found`].
    DeleteRedaction(String),
    /// Add a blocklist rule → [`Done::Block`].
    CreateBlock(NewBlockRule),
    /// Delete a blocklist rule → [`Done::Found`].
    DeleteBlock(String),
    /// Set (true) or clear the kill switch → [`Done::Found`].
    DetachAll(bool),
    /// Delete an action → [`Done::Found`].
    DeleteAction(String),
    /// Apply retention by count and by age → [`Done::Trimmed`].
    Retention,
}

/// A write request's result.
#[derive(Debug)]
pub enum Done {
    /// The agent's id.
    AgentId(String),
    /// Whether the thing named existed.
    Found(bool),
    /// How many events were stored (`None`: unknown agent).
    Stored(Option<u64>),
    /// The action created.
    Action(Box<Action>),
    /// Rows deleted by retention.
    Trimmed(u64),
    /// The token stored.
    Token(Box<TokenInfo>),
    /// The redaction rule stored.
    Redaction(RedactionRule),
    /// The blocklist rule stored.
    Block(BlockRule),
    /// The request was refused (nothing written).
    Refused(HttpError),
}

type Reply = oneshot::Sender<Result<Done, HttpError>>;

/// The async side's handle on the writer thread.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<(Op, Reply)>,
}

impl WriterHandle {
    /// Sends a request and waits until it is committed (or failed).
    pub async fn write(&self, op: Op) -> Result<Done, HttpError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((op, reply))
            .await
            .map_err(|_| HttpError::unavailable())?;
        answer.await.map_err(|_| HttpError::unavailable())?
    }

    /// Sends a request without waiting for it (a poll's last-seen time).
    pub fn write_later(&self, op: Op) {
        let (reply, _) = oneshot::channel();
        let _ = self.tx.try_send((op, reply));
    }
}

/// What the writer publishes after its commits.
pub struct Published {
    /// The desired-state version.
    pub version: watch::Sender<u64>,
    /// The seq of the last log line committed.
    pub last_log_seq: watch::Sender<u64>,
    /// The redaction rules in force, compiled: what ingest applies.
    pub redactor: RwLock<Arc<Redactor>>,
}

impl Published {
    /// The redactor in force now.
    pub fn redactor(&self) -> Arc<Redactor> {
        Arc::clone(&self.redactor.read().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Starts the writer thread on `conn`. It runs until every [`WriterHandle`] is dropped,
/// finishing the requests already sent.
pub fn start(
    conn: Connection,
    retention: Retention,
    published: std::sync::Arc<Published>,
) -> std::io::Result<(WriterHandle, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel(4096);
    let thread = std::thread::Builder::new()
        .name("scry-db-writer".into())
        .spawn(move || {
            let counts = db::counts(&conn).unwrap_or_default();
            let mut w = Writer {
                conn,
                retention,
                counts,
                published,
            };
            w.run(rx)
        })?;
    Ok((WriterHandle { tx }, thread))
}

struct Writer {
    conn: Connection,
    retention: Retention,
    counts: Counts,
    published: std::sync::Arc<Published>,
}

/// What a batch changed, for after the commit.
#[derive(Default)]
struct Effects {
    version: Option<u64>,
    last_seq: u64,
    added: Counts,
    redactions_changed: bool,
}

impl Writer {
    fn run(&mut self, mut rx: mpsc::Receiver<(Op, Reply)>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            self.commit_batch(&mut batch);
        }
    }

    fn commit_batch(&mut self, batch: &mut Vec<(Op, Reply)>) {
        let mut effects = Effects::default();
        let mut results = Vec::with_capacity(batch.len());
        let outcome = (|| -> rusqlite::Result<()> {
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for (op, _) in batch.iter() {
                tx.execute_batch("SAVEPOINT op")?;
                match apply(&tx, op, &self.retention, &mut self.counts, &mut effects) {
                    Ok(done) => {
                        tx.execute_batch("RELEASE op")?;
                        results.push(Ok(done));
                    }
                    Err(e) => {
                        tx.execute_batch("ROLLBACK TO op; RELEASE op")?;
                        results.push(Err(HttpError::from(e)));
                    }
                }
            }
            // Count-based retention after the inserts, in the same transaction.
            if effects.added != Counts::default() {
                trim_counts(&tx, &self.retention, &mut self.counts)?;
            }
            tx.commit()
        })();
        match outcome {
            Ok(()) => {
                if let Some(v) = effects.version {
                    self.published.version.send_replace(v);
                }
                if effects.last_seq > 0 {
                    self.published.last_log_seq.send_replace(effects.last_seq);
                }
                if effects.redactions_changed {
                    match db::redactions(&self.conn) {
                        Ok(rules) => {
                            *self
                                .published
                                .redactor
                                .write()
                                .unwrap_or_else(|e| e.into_inner()) =
                                Arc::new(Redactor::new(&rules));
                        }
                        Err(e) => eprintln!("scry server: cannot reload the redaction rules: {e}"),
                    }
                }
                for ((_, reply), result) in batch.drain(..).zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                eprintln!("scry server: a write batch failed and was rolled back: {e}");
                self.counts = db::counts(&self.conn).unwrap_or(self.counts);
                let err = HttpError::from(e);
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}

fn apply(
    tx: &Connection,
    op: &Op,
    retention: &Retention,
    counts: &mut Counts,
    effects: &mut Effects,
) -> rusqlite::Result<Done> {
    let now = now_ms();
    Ok(match op {
        Op::Register {
            req,
            owner,
            any_owner,
        } => {
            let id = db::register(tx, req, owner.as_deref(), *any_owner, now, new_agent_id)?;
            effects.version = Some(db::bump_version(tx)?);
            Done::AgentId(id)
        }
        Op::Touch(id) => Done::Found(db::touch(tx, id, now)?),
        Op::Report(id, report) => Done::Found(db::report(tx, id, report, now)?),
        Op::Events(id, batch) => match db::store_events(tx, id, batch, now)? {
            None => Done::Stored(None),
            Some(s) => {
                if s.last_seq > 0 {
                    effects.last_seq = s.last_seq;
                }
                effects.added.logs += s.logs;
                effects.added.snapshots += s.snapshots;
                effects.added.samples += s.samples;
                counts.logs += s.logs;
                counts.snapshots += s.snapshots;
                counts.samples += s.samples;
                Done::Stored(Some(s.logs + s.snapshots + s.samples))
            }
        },
        Op::CreateAction(spec) => {
            let rules = db::block_rules(tx)?;
            let locations = std::iter::once(&spec.location).chain(spec.end_location.as_ref());
            for location in locations {
                if let Some(rule) = crate::blocklist::blocked(&rules, location) {
                    return Ok(Done::Refused(HttpError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "location blocked",
                        format!(
                            "{location} is blocked by blocklist rule {}; ask an admin for an allow rule (POST /v1/blocklist with \"allow\": true) if it must be probed",
                            crate::blocklist::describe(rule)
                        ),
                    )));
                }
            }
            if let Some((agent, n)) = db::agent_over_limit(tx, spec)? {
                return Ok(Done::Refused(HttpError::new(
                    StatusCode::CONFLICT,
                    "too many actions on an agent",
                    format!(
                        "agent {agent} already has {n} actions, the limit is {} per agent; delete some (DELETE /v1/actions/ID) first",
                        db::MAX_ACTIONS_PER_AGENT
                    ),
                )));
            }
            let action = db::create_action(tx, spec, now)?;
            effects.version = Some(db::bump_version(tx)?);
            Done::Action(Box::new(action))
        }
        Op::CreateToken(t, hash) => Done::Token(Box::new(db::create_token(tx, t, hash, now)?)),
        Op::RevokeToken(id) => Done::Found(db::revoke_token(tx, id, now)?),
        Op::Audit(entry) => {
            db::append_audit(tx, entry, now)?;
            Done::Found(true)
        }
        Op::CreateRedaction(rule) => {
            let rule = db::create_redaction(tx, rule, now)?;
            effects.version = Some(db::bump_version(tx)?);
            effects.redactions_changed = true;
            Done::Redaction(rule)
        }
        Op::DeleteRedaction(id) => {
            let found = db::delete_redaction(tx, id)?;
            if found {
                effects.version = Some(db::bump_version(tx)?);
                effects.redactions_changed = true;
            }
            Done::Found(found)
        }
        Op::CreateBlock(rule) => {
            let rule = db::create_block(tx, rule, now)?;
            effects.version = Some(db::bump_version(tx)?);
            Done::Block(rule)
        }
        Op::DeleteBlock(id) => {
            let found = db::delete_block(tx, id)?;
            if found {
                effects.version = Some(db::bump_version(tx)?);
            }
            Done::Found(found)
        }
        Op::DetachAll(on) => {
            db::set_detach_all(tx, *on)?;
            effects.version = Some(db::bump_version(tx)?);
            Done::Found(true)
        }
        Op::DeleteAction(id) => {
            let found = db::delete_action(tx, id)?;
            if found {
                effects.version = Some(db::bump_version(tx)?);
            }
            Done::Found(found)
        }
        Op::Retention => {
            let cutoff =
                now.saturating_sub(retention.max_age.as_millis().min(i64::MAX as u128) as i64);
            let mut n = db::trim_older_than(tx, cutoff)?;
            *counts = db::counts(tx)?;
            n += trim_counts(tx, retention, counts)?;
            Done::Trimmed(n)
        }
    })
}

/// Deletes the oldest rows of each event table past its maximum count.
fn trim_counts(tx: &Connection, r: &Retention, counts: &mut Counts) -> rusqlite::Result<u64> {
    let mut n = 0;
    for ((table, key), (count, max)) in db::EVENT_TABLES.into_iter().zip([
        (&mut counts.logs, r.max_log_lines),
        (&mut counts.snapshots, r.max_snapshots),
        (&mut counts.samples, r.max_metric_samples),
    ]) {
        if *count > max {
            let gone = db::trim_oldest(tx, table, key, *count - max)?;
            *count -= gone.min(*count);
            n += gone;
        }
    }
    Ok(n)
}

/// A new agent id: `a-` and 12 hex digits from the clock, the process and a counter, mixed.
pub fn new_agent_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = nanos
        ^ (u64::from(std::process::id()) << 32)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64's finalizer.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    format!("a-{:012x}", x & 0xFFFF_FFFF_FFFF)
}
