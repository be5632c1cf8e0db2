//! scry management server: agents, actions, events.
//!
//! Agents (`scry agent`, one per traced process) register, long-poll their *desired state*
//! (the actions that target them) and upload events; clients create actions and read the
//! events. The wire protocol is [`api`] (its module doc has the route table); the OpenAPI 3
//! document is served at `GET /v1/openapi.json` ([`openapi`]).
//!
//! # Entry points
//!
//! [`serve`] runs the server on a tokio runtime until a shutdown future resolves;
//! [`run_blocking`] does the same with its own runtime, stopping on SIGINT or SIGTERM.
//!
//! # Storage
//!
//! One SQLite database, `DATA_DIR/scry.db`, in WAL mode with `synchronous=FULL`. Its schema
//! is a list of migrations ([`db::MIGRATIONS`]) applied in order at start, the step reached
//! kept in `PRAGMA user_version`; a database from a newer scry is refused.
//!
//! | table | what |
//! |---|---|
//! | `meta` | `version` (the desired-state version: bumped on every change of actions, agents, rules or the kill switch, never reset), `next_action`, `next_token`, `next_redaction`, `next_block` (the N of the next id), `detach_all` (the kill switch) |
//! | `agents` | id, host, pid, executable, build-id, tags (JSON), first/last seen, dropped events, the token it registered with; `online` = polled within 60 s or polling now |
//! | `actions` | id, the [`api::NewAction`] as JSON, creation time |
//! | `action_states` | per (action, agent): state, reason, hits, as the agent reported them |
//! | `logs` | log lines; `seq` is an AUTOINCREMENT key, so ascending and never reused |
//! | `snapshots` | snapshot bodies (JSON) with their top frame for lists |
//! | `metric_samples` | the samples as uploaded |
//! | `metric_totals` | running totals per (action, agent): what `/v1/metrics` and `/metrics` show; retention never trims them, so counters never go down |
//! | `tokens` | id, role, tags (JSON), name, SHA-256 of the secret, created/expires/revoked times |
//! | `audit` | the audit trail (append-only: triggers refuse UPDATE and DELETE) |
//! | `redactions`, `blocklist` | the rules admins added (the built-in redaction rules are in the code) |
//!
//! Retention ([`Retention`]): at most 100,000 log lines, 1,000 snapshots and 100,000 metric
//! samples (the oldest go first, checked after every batch of events), and nothing older
//! than 7 days (checked at start and every minute).
//!
//! # Threads
//!
//! * The **tokio runtime** runs hyper (HTTP/1.1) and the handlers. It never calls SQLite.
//! * The **writer thread** ([`writer`]) owns the one writing connection. Handlers send it
//!   write requests over a channel; it applies all the requests waiting in one transaction
//!   and answers each only after the commit. Whatever the server acknowledged is on disk, so
//!   a restart loses nothing acknowledged. After a commit it publishes the new version and
//!   the last log seq on `watch` channels, which wake the long polls.
//! * **Reads** run on tokio's blocking threads (`spawn_blocking`) with a small pool of
//!   read-only connections ([`readers`]).
//!
//! # Security and governance
//!
//! ## Tokens
//!
//! Every route but `GET /v1/openapi.json` needs `Authorization: Bearer scry_…`. A token is
//! `scry_` and 64 hex digits (256 random bits from the OS); the `tokens` table keeps only
//! its SHA-256 and finds it by that hash ([`auth`]: a fast hash suits a 256-bit random
//! secret, a slow password KDF would only slow every request). A token has an id (`tok-N`),
//! a role, a tag scope, a name, and may expire or be revoked. Its secret is shown once, in
//! the answer of `POST /v1/tokens`. The first start on a database without any token makes an
//! admin token and prints it once to stderr: `scry server: first admin token (shown once):
//! scry_…` ([`FIRST_TOKEN_LINE`]); [`init_admin`] makes another (`scry server --init-admin`).
//!
//! No token, or a malformed, unknown, revoked or expired one: **401**. A valid token whose
//! role lacks the right, or a thing outside its scope: **403**. Both with the JSON error
//! saying why.
//!
//! ## Roles
//!
//! | routes | admin | developer | viewer | agent |
//! |---|---|---|---|---|
//! | `POST /v1/agents/register` | ✓ | | | ✓ (the agent is bound to the token) |
//! | `GET …/desired`, `POST …/report`, `POST …/events` | ✓ | | | ✓ its own agents only |
//! | `GET /v1/agents`, `/v1/actions`, `/v1/actions/{id}`, `/v1/logs`, `/v1/snapshots`, `/v1/snapshots/{id}`, `/v1/metrics`, `/metrics` | ✓ | ✓ scoped | ✓ scoped | |
//! | `POST /v1/actions`, `DELETE /v1/actions/{id}` | ✓ | ✓ scoped | | |
//! | `GET /v1/redactions`, `GET /v1/blocklist` | ✓ | ✓ | | |
//! | tokens, `GET /v1/audit`, `POST`/`DELETE` redactions and blocklist, `POST /v1/detach-all`, `/v1/attach-all` | ✓ | | | |
//! | `GET /v1/openapi.json` | public | public | public | public |
//!
//! ([`routes::Access`] in [`routes::ROUTES`]; [`routes::authorize`] checks the role on every
//! request, the handlers the scope and ownership.) `/metrics` takes a token like every read:
//! a Prometheus scraper gets a viewer token (`bearer_token` in its scrape config).
//!
//! **Scope**: a developer, viewer or agent token with tags (`{"env": "prod"}`) covers the
//! agents whose tags include all of them; an admin token, or one without tags, covers every
//! agent. Reads are filtered to the agents in scope (logs, snapshots and metrics by the agent
//! they came from; actions by their target). An action is in scope when every agent it can
//! reach is: its target tags include the scope's (or it has none) and every agent it names is
//! known and in scope; an empty target (every agent) is in no scope. Out of scope: 403 for
//! one thing (an action, a snapshot, a creation, a deletion), absent from lists. An agent
//! token may register only agents whose tags include its own, and acts only for the agents
//! it registered (re-registering another token's agent id gives a new id).
//!
//! ## Audit
//!
//! The `audit` table gets a row for every request answered 401 or 403 and every POST, PUT,
//! PATCH or DELETE whatever its answer, except an agent's routine uploads (report and
//! events answered 2xx, which would grow the append-only table by a row per agent per
//! second; their refusals and errors are audited): seq, time, request id (also in the
//! `x-request-id` header of every answer), principal (`tok-3 developer` or `anonymous`),
//! method, path, target (the action, agent, token or rule id), status, and the refusal's
//! reason. The row is committed (through the writer) before the answer goes. Triggers make
//! the table append-only (UPDATE and DELETE abort); no route changes it; retention does not
//! touch it. `GET /v1/audit?since=RFC3339&after=SEQ&limit=N` (admin) reads it.
//!
//! ## Redaction
//!
//! [`redact`] (shared with the agent, which applies the same rules before anything leaves
//! the host): card numbers (Luhn-checked), e-mail addresses, bearer tokens and JWTs by value,
//! and the values of variables or fields named like `password`, `passwd`, `secret`, `token`,
//! `api_key` are built in (ids `builtin-…`, not removable: 400); admins add name and value
//! (regex) rules. The server applies them **at ingest**, before storing: log messages,
//! locations and values, snapshot bodies; metric locations are redacted on the way out.
//! The desired state carries the rules; adding or removing one bumps the version, so the
//! long polls answer at once.
//!
//! ## Blocklist
//!
//! [`blocklist`] (shared with the agent): glob rules on a location's file path, function or
//! module; `allow` rules are exceptions that win. Checked when an action is created (its
//! location and end location): **422** naming the rule (`blocked by blocklist rule blk-2
//! (function *password*)`). The desired state carries the rules (the agent checks again);
//! changes bump the version.
//!
//! ## Kill switch
//!
//! `POST /v1/detach-all` (admin) sets a persisted flag: every agent's desired state has
//! `detach_all: true` and the version is bumped, so every long poll answers at once;
//! `POST /v1/attach-all` clears it. Both are audited.
//!
//! ## Transport
//!
//! With [`ServerConfig::tls`] (PEM certificate chain and key) the server speaks HTTPS
//! (rustls, TLS 1.2 and 1.3, HTTP/1.1). Plain HTTP binds only to loopback addresses unless
//! [`ServerConfig::insecure_listen`] is set; otherwise [`serve`] refuses to start
//! ([`ServerError::InsecureListen`], naming `--tls-cert`/`--tls-key` and `--insecure-listen`).
//!
//! ## Limits
//!
//! Each a 4xx naming the limit and the value ([`validate`] has the table): bodies 8 MiB
//! (413), templates 4 KiB, locations, conditions and watches 1 KiB, nesting 32, 32 watches,
//! 32 tags per agent, token or target (400), 200 actions per agent (409), 5,000 events per
//! batch (413).

#![warn(missing_docs)]

#[allow(missing_docs)] // the shared wire types: documented where it matters, owned jointly
pub mod api;
pub mod auth;
pub mod blocklist;
pub mod db;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod readers;
pub mod redact;
pub mod routes;
pub mod time;
pub mod validate;
pub mod writer;

pub use auth::Principal;
pub use error::{HttpError, ServerError};
pub use routes::authorize;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

/// How the server runs. Build it with [`ServerConfig::new`] and change what differs:
/// `ServerConfig { retention, ..ServerConfig::new(listen, data_dir) }`.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Where to listen (port 0: any free port, reported through `serve`'s `bound`).
    pub listen: SocketAddr,
    /// The directory of the database (created if missing).
    pub data_dir: PathBuf,
    /// How much history to keep.
    pub retention: Retention,
    /// Serve HTTPS with this certificate and key (`None`: plain HTTP).
    pub tls: Option<TlsFiles>,
    /// Serve plain HTTP on an address that is not loopback (refused otherwise).
    pub insecure_listen: bool,
}

impl ServerConfig {
    /// Plain HTTP on `listen` (which must then be a loopback address), data in `data_dir`,
    /// default retention.
    pub fn new(listen: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        ServerConfig {
            listen,
            data_dir: data_dir.into(),
            retention: Retention::default(),
            tls: None,
            insecure_listen: false,
        }
    }

    /// `https` with TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

/// The PEM files of the server's certificate chain and private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain (the server's certificate first), PEM.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1), PEM.
    pub key: PathBuf,
}

/// Loads the certificate and key into a rustls server configuration (HTTP/1.1 over TLS
/// 1.2 or 1.3, the ring provider).
pub fn tls_config(files: &TlsFiles) -> Result<rustls::ServerConfig, ServerError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let fail = |what: &str, path: &Path, e: &dyn std::fmt::Display| ServerError::Tls {
        detail: format!("{what} {}: {e}", path.display()),
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|i| i.collect())
        .map_err(|e| fail("cannot read the certificate", &files.cert, &e))?;
    if certs.is_empty() {
        return Err(fail(
            "no certificate in",
            &files.cert,
            &"no CERTIFICATE block",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| fail("cannot read the private key", &files.key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls {
            detail: e.to_string(),
        })?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            fail(
                "the certificate and key do not fit together",
                &files.cert,
                &e,
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Creates an admin token in the database of `data_dir` (creating and migrating the
/// database if need be) and returns its secret: what `scry server --init-admin` prints.
/// It works while a server runs on the same directory.
pub fn init_admin(data_dir: &Path) -> anyhow::Result<String> {
    std::fs::create_dir_all(data_dir).map_err(|source| ServerError::DataDir {
        dir: data_dir.to_path_buf(),
        source,
    })?;
    let mut conn = db::open_writer(data_dir)?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let (secret, _) = db::new_admin_token(&tx, "init-admin", time::now_ms())?;
    tx.commit()?;
    Ok(secret)
}

/// The line printed once when a server starts on a database without tokens.
pub const FIRST_TOKEN_LINE: &str = "scry server: first admin token (shown once):";

/// On a database without any token, creates an admin token and returns its secret.
pub fn first_admin_token(conn: &mut rusqlite::Connection) -> rusqlite::Result<Option<String>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    if db::token_count(&tx)? > 0 {
        return Ok(None);
    }
    let (secret, _) = db::new_admin_token(&tx, "first admin", time::now_ms())?;
    tx.commit()?;
    Ok(Some(secret))
}

/// How many events, and how old, the server keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Log lines kept (default 100,000); the oldest go first.
    pub max_log_lines: u64,
    /// Snapshots kept (default 1,000).
    pub max_snapshots: u64,
    /// Events older than this (by arrival) are deleted (default 7 days).
    pub max_age: Duration,
    /// Metric samples kept (default 100,000); the totals behind `/metrics` are not trimmed.
    pub max_metric_samples: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_log_lines: 100_000,
            max_snapshots: 1_000,
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_metric_samples: 100_000,
        }
    }
}

/// How often age-based retention runs (it also runs at start).
pub const RETENTION_PERIOD: Duration = Duration::from_secs(60);

/// How long a stop waits for requests in flight before cutting them.
const DRAIN: Duration = Duration::from_secs(10);

/// Runs the server until `shutdown` resolves. It opens (or creates and migrates) the
/// database, binds, sends the bound address through `bound` (so port 0 works), then serves.
/// On shutdown it stops accepting, answers the long polls at once, lets requests in flight
/// finish (up to 10 s), and waits for the writer thread to commit what it was given.
pub async fn serve(
    config: ServerConfig,
    bound: oneshot::Sender<SocketAddr>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    if config.tls.is_none() && !config.listen.ip().is_loopback() && !config.insecure_listen {
        return Err(ServerError::InsecureListen {
            addr: config.listen,
        });
    }
    let acceptor = match &config.tls {
        Some(files) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(
            files,
        )?))),
        None => None,
    };
    let dir = config.data_dir.clone();
    let open_dir = dir.clone();
    let (conn, version, last_seq, rules) = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&open_dir).map_err(|source| ServerError::DataDir {
            dir: open_dir.clone(),
            source,
        })?;
        let mut conn = db::open_writer(&open_dir)?;
        let fail = |source| ServerError::Database {
            path: open_dir.join(db::DB_FILE),
            source,
        };
        if let Some(secret) = first_admin_token(&mut conn).map_err(fail)? {
            eprintln!("{FIRST_TOKEN_LINE} {secret}");
        }
        let rules = db::redactions(&conn).map_err(fail)?;
        let version = db::version(&conn).map_err(fail)?;
        let last_seq: i64 = conn
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM logs", [], |r| r.get(0))
            .map_err(fail)?;
        Ok::<_, ServerError>((conn, version, last_seq as u64, rules))
    })
    .await
    .expect("opening the database does not panic")?;

    let published = Arc::new(writer::Published {
        version: watch::channel(version).0,
        last_log_seq: watch::channel(last_seq).0,
        redactor: RwLock::new(Arc::new(redact::Redactor::new(&rules))),
    });
    let (writer, writer_thread) =
        writer::start(conn, config.retention.clone(), Arc::clone(&published))
            .map_err(ServerError::Thread)?;

    // Retention at start, before anything is served.
    if let Err(e) = writer.write(writer::Op::Retention).await {
        eprintln!("scry server: retention failed: {e}");
    }

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Listen {
            addr: config.listen,
            source,
        })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServerError::Listen {
            addr: config.listen,
            source,
        })?;
    let _ = bound.send(local);

    let (stop_tx, stop_rx) = watch::channel(false);
    let app = Arc::new(routes::App {
        writer: writer.clone(),
        readers: readers::Readers::new(dir),
        published,
        polling: Mutex::new(Default::default()),
        stopping: stop_rx.clone(),
    });

    let retention_task = tokio::spawn({
        let writer = writer.clone();
        async move {
            let start = tokio::time::Instant::now() + RETENTION_PERIOD;
            let mut tick = tokio::time::interval_at(start, RETENTION_PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = writer.write(writer::Op::Retention).await {
                    eprintln!("scry server: retention failed: {e}");
                }
            }
        }
    });
    drop(writer);

    let mut conns = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let (app, stop) = (Arc::clone(&app), stop_rx.clone());
                    match acceptor.clone() {
                        None => conns.spawn(serve_connection(app, stream, stop)),
                        Some(acceptor) => conns.spawn(async move {
                            // A client that does not finish its handshake in time is dropped.
                            let accepted = tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await;
                            if let Ok(Ok(tls)) = accepted {
                                serve_connection(app, tls, stop).await;
                            }
                        }),
                    };
                }
                Err(e) => {
                    // Out of descriptors and the like: not fatal, retry shortly.
                    eprintln!("scry server: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }

    drop(listener);
    let _ = stop_tx.send(true);
    let drained =
        tokio::time::timeout(DRAIN, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        conns.abort_all();
        while conns.join_next().await.is_some() {}
    }
    retention_task.abort();
    let _ = retention_task.await;
    drop(app);
    // Every writer handle is gone: the thread commits what it holds and ends.
    tokio::task::spawn_blocking(move || writer_thread.join())
        .await
        .ok();
    Ok(())
}

/// How long a TLS handshake may take.
const HANDSHAKE: Duration = Duration::from_secs(10);

async fn serve_connection<S>(app: Arc<routes::App>, stream: S, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let app = Arc::clone(&app);
        async move { Ok::<_, Infallible>(routes::handle(app, req).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Runs the server on its own tokio runtime until SIGINT or SIGTERM, printing
/// `scry server listening on http://ADDR (data: DIR)` (or `https://`) to stderr once bound.
pub fn run_blocking(config: ServerConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("scry-server")
        .build()?;
    runtime.block_on(async move {
        let data = config.data_dir.clone();
        let scheme = config.scheme();
        let (bound_tx, bound_rx) = oneshot::channel();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let shutdown = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        let server = tokio::spawn(serve(config, bound_tx, shutdown));
        if let Ok(addr) = bound_rx.await {
            eprintln!(
                "scry server listening on {scheme}://{addr} (data: {})",
                data.display()
            );
        }
        server.await??;
        eprintln!("scry server stopped");
        Ok(())
    })
}
