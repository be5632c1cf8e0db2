//! `scry agent`: attaches to a process and keeps its probes in line with the server.
//!
//! Three threads besides the engine's:
//! - **this one** owns the session: it applies the desired state the poller hands it (plant the
//!   new actions, unplant the removed ones), renders hits into log lines, snapshots and metric
//!   samples, and puts them on a bounded queue — never waiting on the network: when the queue
//!   is full, events are dropped and counted;
//! - **the poller** long-polls `/v1/agents/{id}/desired` and hands each new state over; while the
//!   server is down it backs off (0.5 s doubling to 5 s) and re-registers when it returns;
//! - **the uploader** sends the queue in batches (every 200 ms or 500 events) and the actions'
//!   states, retrying a batch until the server takes it (a batch is acknowledged only once the
//!   server has committed it).
//!
//! With `--name`, the agent follows the process: when it exits, the agent waits for a new
//! process of that name and attaches to it, keeping its agent id and actions.

use crate::http::{Client, HttpError};
use crate::output;
use anyhow::{Context, Result, bail};
use clap::Args;
use scry_server::api::{
    Action, ActionKind, ActionState, AgentReport, DesiredState, EventBatch, LogLine, MetricKind,
    MetricSample, RegisterRequest, RegisterResponse, UploadedSnapshot,
};
use scry_server::blocklist;
use scry_server::redact::{self, Redactor};
use scry_tracer::quota::{OverheadBudget, Quota};
use scry_tracer::{Event, ProbeEnd, ProbeId, ProbeSpec, Session, SessionOptions, SnapshotSpec};
use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  scry agent --server http://127.0.0.1:7070 --pid 4242 --tag service=orders\n  \
scry agent --server http://10.0.0.5:7070 --name orders-svc --tag env=prod"
)]
pub struct AgentArgs {
    /// The management server.
    #[arg(long, env = "SCRY_SERVER", default_value = "http://127.0.0.1:7070")]
    pub server: String,
    /// The agent's token (`scry token create --role agent`).
    #[arg(long, env = "SCRY_TOKEN")]
    pub token: Option<String>,
    /// Trust only this CA (PEM) for an HTTPS server.
    #[arg(long, env = "SCRY_CA", value_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,
    /// The process to attach to.
    #[arg(long, conflicts_with = "name", required_unless_present = "name")]
    pub pid: Option<i32>,
    /// Attach to the process with this name (its /proc/PID/comm or executable's file name),
    /// and to the next one of that name when it exits.
    #[arg(long)]
    pub name: Option<String>,
    /// A tag for targeting (`--tag service=orders`). Repeatable.
    #[arg(long, value_name = "K=V")]
    pub tag: Vec<String>,
    /// Events held while the server is slow or down; beyond it they are dropped and counted.
    #[arg(long, default_value_t = 10_000)]
    pub queue: usize,
    /// The share of wall time (in %) the program's threads may spend stopped by this agent's
    /// probes, all together (docs/quotas.md). `off` for no budget.
    #[arg(long, value_name = "PERCENT|off", default_value = "1")]
    pub overhead: String,
}

/// Something to upload.
enum Upload {
    Log(LogLine),
    Snapshot(UploadedSnapshot),
    Metric(MetricSample),
}

/// What the agent shares between its threads.
struct Shared {
    client: Client,
    agent_id: Mutex<Option<String>>,
    register: Mutex<RegisterRequest>,
    dropped: AtomicU64,
    states: Mutex<BTreeMap<String, ActionState>>,
    states_dirty: AtomicBool,
    stop: AtomicBool,
}

impl Shared {
    fn agent_id(&self) -> Option<String> {
        self.agent_id.lock().unwrap().clone()
    }

    /// Registers (again), keeping the id the server gave before.
    fn register(&self) -> Result<String, HttpError> {
        let mut req = self.register.lock().unwrap().clone();
        req.agent_id = self.agent_id();
        let resp: RegisterResponse = self.client.post("/v1/agents/register", &req)?;
        *self.agent_id.lock().unwrap() = Some(resp.agent_id.clone());
        Ok(resp.agent_id)
    }

    fn set_state(&self, action: &str, state: &str, reason: String, hits: Option<u64>) {
        let mut states = self.states.lock().unwrap();
        let e = states
            .entry(action.to_string())
            .or_insert_with(|| ActionState {
                action_id: action.to_string(),
                state: String::new(),
                reason: String::new(),
                hits: 0,
            });
        e.state = state.to_string();
        e.reason = reason;
        if let Some(h) = hits {
            e.hits = h;
        }
        self.states_dirty.store(true, Ordering::Relaxed);
    }
}

/// An action planted in this process: its probes and what its hits become.
struct Planted {
    action: Action,
    probes: Vec<ProbeId>,
    /// Metric accumulation since the last flush.
    metric: MetricAcc,
    /// Tic-toc and duration: the start time per (thread, stack pointer at entry; 0 for a
    /// tic-toc).
    tics: HashMap<(i32, u64), SystemTime>,
    hits: u64,
}

#[derive(Default)]
struct MetricAcc {
    count: u64,
    sum: f64,
    values: Vec<f64>,
    /// A counter's hits as last read from the engine.
    last_hits: u64,
}

/// Histogram bounds for durations (seconds) and values.
const DURATION_BOUNDS: &[f64] = &[1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0];
const VALUE_BOUNDS: &[f64] = &[0.0, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6];

/// Observations per bucket (not cumulative). Those above the last bound are in the sample's
/// `count` only: the +Inf bucket is the count (JSON has no infinity).
fn buckets(values: &[f64], bounds: &[f64]) -> Vec<(f64, u64)> {
    let mut out: Vec<(f64, u64)> = bounds.iter().map(|b| (*b, 0)).collect();
    for v in values {
        if let Some(i) = bounds.iter().position(|b| v <= b) {
            out[i].1 += 1;
        }
    }
    out
}

pub fn run(args: AgentArgs) -> Result<ExitCode> {
    crate::signals::install();
    let mut tags = BTreeMap::new();
    for t in &args.tag {
        let Some((k, v)) = t.split_once('=') else {
            bail!("--tag takes KEY=VALUE (e.g. --tag service=orders), not {t:?}");
        };
        tags.insert(k.to_string(), v.to_string());
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let shared = Arc::new(Shared {
        client: Client::with_ca(
            &args.server,
            args.token.clone(),
            Duration::from_secs(40),
            args.ca.as_deref(),
        )?,
        agent_id: Mutex::new(None),
        register: Mutex::new(RegisterRequest {
            host,
            pid: 0,
            executable: String::new(),
            build_id: String::new(),
            tags,
            agent_id: None,
        }),
        dropped: AtomicU64::new(0),
        states: Mutex::new(BTreeMap::new()),
        states_dirty: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    });
    let overhead = match args.overhead.as_str() {
        "off" => OverheadBudget::unlimited(),
        pct => match pct.parse::<f64>() {
            Ok(p) if p > 0.0 && p.is_finite() => OverheadBudget {
                share: p / 100.0,
                ..OverheadBudget::default()
            },
            _ => bail!("--overhead takes a positive percentage or `off`, not {pct:?}"),
        },
    };
    let (queue_tx, queue_rx) = std::sync::mpsc::sync_channel::<Upload>(args.queue.max(1));
    let uploader = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("scry-upload".into())
            .spawn(move || upload_loop(&shared, queue_rx))?
    };
    let (desired_tx, desired_rx) = std::sync::mpsc::channel::<DesiredState>();
    let poller = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("scry-poll".into())
            .spawn(move || poll_loop(&shared, desired_tx))?
    };
    let mut desired: Option<DesiredState> = None;
    let result = loop {
        let pid = match (args.pid, &args.name) {
            (Some(pid), _) => pid,
            (None, Some(name)) => match wait_for_process(name, &shared) {
                Some(pid) => pid,
                None => break Ok(()),
            },
            (None, None) => bail!("say which process: --pid PID or --name NAME"),
        };
        let outcome = serve_process(pid, &shared, &queue_tx, &desired_rx, &mut desired, overhead);
        match outcome {
            Ok(Served::KillSwitch) => {
                // Wait, detached, for the switch to go off (or to be told to stop).
                while crate::signals::received().is_none() {
                    match desired_rx.recv_timeout(Duration::from_millis(200)) {
                        Ok(d) => {
                            let off = !d.detach_all;
                            desired = Some(d);
                            if off {
                                eprintln!(
                                    "scry agent: attach-all from the server: attaching again"
                                );
                                break;
                            }
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        Err(_) => break,
                    }
                }
                if crate::signals::received().is_some() {
                    break Ok(());
                }
                continue;
            }
            Ok(Served::TargetExited) if args.name.is_some() => {
                eprintln!(
                    "scry agent: the process exited; waiting for the next one named {:?}",
                    args.name.as_deref().unwrap_or("")
                );
                continue;
            }
            Ok(_) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    shared.stop.store(true, Ordering::Relaxed);
    drop(queue_tx);
    let _ = uploader.join();
    drop(poller); // it ends at its next poll
    result.map(|_| ExitCode::SUCCESS)
}

/// The first process whose comm or executable file name is `name`, waiting for one.
fn wait_for_process(name: &str, shared: &Shared) -> Option<i32> {
    loop {
        if crate::signals::received().is_some() || shared.stop.load(Ordering::Relaxed) {
            return None;
        }
        let me = std::process::id() as i32;
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                    continue;
                };
                if pid == me {
                    continue;
                }
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
                    .ok()
                    .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .unwrap_or_default();
                if comm.trim() == name || exe == name {
                    return Some(pid);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

enum Served {
    TargetExited,
    Stopped,
    /// The server's kill switch is on: detached, waiting for attach-all.
    KillSwitch,
}

/// Attaches to `pid` and serves it until it exits or the agent is told to stop.
fn serve_process(
    pid: i32,
    shared: &Arc<Shared>,
    queue: &SyncSender<Upload>,
    desired_rx: &Receiver<DesiredState>,
    desired: &mut Option<DesiredState>,
    overhead: OverheadBudget,
) -> Result<Served> {
    let options = SessionOptions {
        overhead,
        ..SessionOptions::default()
    };
    let session =
        Session::attach(pid, options).with_context(|| format!("attaching to process {pid}"))?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    {
        let mut r = shared.register.lock().unwrap();
        r.pid = pid;
        r.executable = exe.clone();
        r.build_id = build_id_of(&exe);
    }
    eprintln!(
        "scry agent: attached to pid {pid} ({exe}) in {} µs; no thread was stopped",
        session.attach_info().elapsed.as_micros()
    );
    // Registering happens in the poller (with retries); a new pid must be told to the server.
    *shared.agent_id.lock().unwrap() = shared.agent_id();
    let _ = shared.register();
    let mut planted: HashMap<String, Planted> = HashMap::new();
    let mut by_probe: HashMap<ProbeId, String> = HashMap::new();
    // Until the server says otherwise, the built-in redaction rules apply: nothing leaves the
    // host unredacted, not even before the first answer.
    let mut redactor = Redactor::new(&redact::builtin_rules());
    if let Some(d) = desired.as_ref() {
        if d.detach_all {
            drop(session.detach());
            return Ok(Served::KillSwitch);
        }
        redactor = Redactor::new(&d.redactions);
        reconcile(&session, shared, d, &mut planted, &mut by_probe);
    }
    let mut last_flush = Instant::now();
    let outcome = loop {
        if crate::signals::received().is_some() {
            break Served::Stopped;
        }
        let mut kill = false;
        while let Ok(d) = desired_rx.try_recv() {
            if d.detach_all {
                kill = true;
            } else {
                redactor = Redactor::new(&d.redactions);
                reconcile(&session, shared, &d, &mut planted, &mut by_probe);
            }
            *desired = Some(d);
        }
        if kill {
            // The kill switch: every probe out, detach, and wait for attach-all.
            eprintln!(
                "scry agent: detach-all from the server: unplanting every probe and detaching"
            );
            for id in planted.keys() {
                shared.set_state(
                    id,
                    "paused",
                    "detach-all (the kill switch) is on".into(),
                    None,
                );
            }
            break Served::KillSwitch;
        }
        match session.events().recv_timeout(Duration::from_millis(50)) {
            Ok(Event::Hit(hit)) => {
                let Some(action_id) = by_probe.get(&hit.probe).cloned() else {
                    continue;
                };
                let Some(p) = planted.get_mut(&action_id) else {
                    continue;
                };
                p.hits += 1;
                let r = session.render_hiding(&hit, &|hole| redactor.name_matches(hole));
                match (p.action.spec.kind, p.action.spec.metric) {
                    (ActionKind::Log, _) => {
                        let j = output::json(&hit, &r, &p.action.spec.location);
                        let mut values = j["values"].clone();
                        redactor.redact_json(&mut values);
                        let line = LogLine {
                            seq: 0,
                            action_id: action_id.clone(),
                            agent_id: String::new(),
                            time: output::utc_time(hit.time),
                            tid: hit.tid,
                            location: r.location.clone(),
                            message: redactor.redact_text(&r.message).into_owned(),
                            values,
                        };
                        enqueue(shared, queue, Upload::Log(line));
                    }
                    (ActionKind::Metric, Some(MetricKind::Value)) => {
                        if let Some(v) = r
                            .values
                            .first()
                            .and_then(|(_, v)| output::value_json(v).as_f64())
                        {
                            p.metric.count += 1;
                            p.metric.sum += v;
                            p.metric.values.push(v);
                        }
                    }
                    (
                        ActionKind::Metric,
                        Some(kind @ (MetricKind::Tictoc | MetricKind::Duration)),
                    ) => {
                        // The first probe is the tic, the second the toc. A duration pairs a
                        // function's entry with its return by thread *and* stack pointer
                        // (the same at entry and at every way out), so recursion pairs up.
                        let sp = if kind == MetricKind::Duration {
                            r.values
                                .first()
                                .and_then(|(_, v)| output::value_json(v).as_u64())
                                .unwrap_or(0)
                        } else {
                            0
                        };
                        let key = (hit.tid, sp);
                        if hit.probe == p.probes[0] {
                            p.tics.insert(key, hit.time);
                            // A frame left by longjmp or an exception never returns: bound
                            // what is kept.
                            if p.tics.len() > 10_000 {
                                p.tics.clear();
                            }
                        } else if let Some(t0) = p.tics.remove(&key)
                            && let Ok(d) = hit.time.duration_since(t0)
                        {
                            let s = d.as_secs_f64();
                            p.metric.count += 1;
                            p.metric.sum += s;
                            p.metric.values.push(s);
                        }
                    }
                    _ => {}
                }
            }
            Ok(Event::Snapshot(rec)) => {
                let Some(action_id) = by_probe.get(&rec.probe).cloned() else {
                    continue;
                };
                if let Some(p) = planted.get_mut(&action_id) {
                    p.hits += 1;
                    let mut j = output::snapshot_json(&rec, &p.action.spec.location);
                    redactor.redact_json(&mut j);
                    enqueue(
                        shared,
                        queue,
                        Upload::Snapshot(UploadedSnapshot {
                            action_id: action_id.clone(),
                            time: output::utc_time(rec.time),
                            tid: rec.tid,
                            snapshot: j,
                        }),
                    );
                }
            }
            Ok(Event::ProbePaused {
                probe,
                reason,
                counts,
                ..
            }) => {
                if let Some(a) = by_probe.get(&probe) {
                    shared.set_state(a, "paused", reason.to_string(), Some(counts.hits));
                }
            }
            Ok(Event::ProbeRearmed { probe }) => {
                if let Some(a) = by_probe.get(&probe) {
                    shared.set_state(a, "active", String::new(), None);
                }
            }
            Ok(Event::ProbeEnded { probe, end }) => {
                if let Some(a) = by_probe.get(&probe) {
                    let (state, reason) = match end {
                        ProbeEnd::Exhausted { hits } => {
                            ("exhausted", format!("max hits reached ({hits})"))
                        }
                        ProbeEnd::Expired { after } => {
                            ("expired", format!("expired after {} s", after.as_secs()))
                        }
                        ProbeEnd::ImageGone => {
                            ("error", "its code is gone (exec or dlclose)".to_string())
                        }
                        ProbeEnd::Failed(why) => ("error", why),
                    };
                    shared.set_state(a, state, reason, None);
                }
            }
            Ok(Event::Exited { .. }) => break Served::TargetExited,
            Ok(_) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break Served::TargetExited,
        }
        if last_flush.elapsed() >= Duration::from_secs(1) {
            last_flush = Instant::now();
            flush_metrics(&session, shared, queue, &mut planted);
            for (id, p) in &planted {
                let mut states = shared.states.lock().unwrap();
                if let Some(s) = states.get_mut(id)
                    && s.hits != p.hits
                {
                    s.hits = p.hits;
                    shared.states_dirty.store(true, Ordering::Relaxed);
                }
            }
        }
    };
    flush_metrics(&session, shared, queue, &mut planted);
    let _ = session.detach();
    Ok(outcome)
}

/// Queues an upload without ever waiting: a full queue drops it, counted.
fn enqueue(shared: &Shared, queue: &SyncSender<Upload>, u: Upload) {
    match queue.try_send(u) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Metric samples for the last interval.
fn flush_metrics(
    session: &Session,
    shared: &Shared,
    queue: &SyncSender<Upload>,
    planted: &mut HashMap<String, Planted>,
) {
    let counts: HashMap<ProbeId, u64> = session
        .counts()
        .map(|c| c.into_iter().map(|(id, c)| (id, c.hits)).collect())
        .unwrap_or_default();
    let now = output::utc_time(SystemTime::now());
    for (id, p) in planted.iter_mut() {
        let Some(kind) = p.action.spec.metric else {
            continue;
        };
        let sample = match kind {
            MetricKind::Counter => {
                let hits = p
                    .probes
                    .first()
                    .and_then(|pr| counts.get(pr))
                    .copied()
                    .unwrap_or(p.metric.last_hits);
                let delta = hits.saturating_sub(p.metric.last_hits);
                p.metric.last_hits = hits;
                p.hits = hits;
                MetricSample {
                    action_id: id.clone(),
                    time: now.clone(),
                    kind,
                    count: delta,
                    sum: 0.0,
                    buckets: Vec::new(),
                }
            }
            _ => {
                let bounds = if kind == MetricKind::Value {
                    VALUE_BOUNDS
                } else {
                    DURATION_BOUNDS
                };
                let acc = std::mem::take(&mut p.metric);
                p.metric.last_hits = acc.last_hits;
                MetricSample {
                    action_id: id.clone(),
                    time: now.clone(),
                    kind,
                    count: acc.count,
                    sum: acc.sum,
                    buckets: buckets(&acc.values, bounds),
                }
            }
        };
        if sample.count > 0 || kind == MetricKind::Counter {
            enqueue(shared, queue, Upload::Metric(sample));
        }
    }
}

/// The probe specs of an action.
fn probe_specs(a: &Action) -> Vec<ProbeSpec> {
    let s = &a.spec;
    let mut quota = Quota::default();
    if let Some(r) = s.quota.lines_per_sec {
        quota.lines_per_sec = r;
    }
    if let Some(r) = s.quota.bytes_per_sec {
        quota.bytes_per_sec = r;
    }
    quota.expiry = match s.quota.expiry_secs {
        Some(0) => None,
        Some(secs) => Some(Duration::from_secs(secs)),
        None => quota.expiry,
    };
    let base = ProbeSpec {
        location: s.location.clone(),
        template: s.template.clone(),
        max_hits: s.quota.max_hits,
        condition: s.condition.clone(),
        snapshot: None,
        count_only: false,
        quota,
    };
    // Tic-toc and duration probes send no text: only their thread and time matter, so no
    // line rate applies (the overhead budget still does).
    let unrated = Quota {
        lines_per_sec: f64::INFINITY,
        bytes_per_sec: f64::INFINITY,
        ..quota
    };
    match (s.kind, s.metric) {
        (ActionKind::Log, _) => vec![base],
        (ActionKind::Snapshot, _) => vec![ProbeSpec {
            max_hits: Some(s.quota.max_hits.unwrap_or(1)),
            snapshot: Some(SnapshotSpec {
                watches: s.watches.clone(),
                ..Default::default()
            }),
            ..base
        }],
        (ActionKind::Metric, Some(MetricKind::Counter)) | (ActionKind::Metric, None) => {
            vec![ProbeSpec {
                template: String::new(),
                count_only: true,
                ..base
            }]
        }
        (ActionKind::Metric, Some(MetricKind::Value)) => vec![ProbeSpec {
            template: format!("{{{}}}", s.template),
            ..base
        }],
        (ActionKind::Metric, Some(MetricKind::Duration)) => {
            // The function's first instruction and every way out, each reading the stack
            // pointer (the return address's slot: the same at entry and at return).
            let q = unrated;
            vec![
                ProbeSpec {
                    location: format!("{}@entry", s.location),
                    template: "{$rsp}".into(),
                    quota: q,
                    ..base.clone()
                },
                ProbeSpec {
                    location: format!("{}@return", s.location),
                    template: "{$rsp}".into(),
                    quota: q,
                    condition: None,
                    ..base
                },
            ]
        }
        (ActionKind::Metric, Some(MetricKind::Tictoc)) => {
            let end = s.end_location.clone().unwrap_or_default();
            let q = unrated;
            vec![
                ProbeSpec {
                    template: String::new(),
                    quota: q,
                    ..base.clone()
                },
                ProbeSpec {
                    location: end,
                    template: String::new(),
                    quota: q,
                    ..base
                },
            ]
        }
    }
}

/// Makes the planted actions the desired ones.
fn reconcile(
    session: &Session,
    shared: &Shared,
    desired: &DesiredState,
    planted: &mut HashMap<String, Planted>,
    by_probe: &mut HashMap<ProbeId, String>,
) {
    // Planted actions the blocklist now covers go, as if removed.
    let want: HashMap<&str, &Action> = desired
        .actions
        .iter()
        .filter(|a| {
            let blocked = [
                Some(a.spec.location.as_str()),
                a.spec.end_location.as_deref(),
            ]
            .iter()
            .flatten()
            .find_map(|l| blocklist::blocked(&desired.blocklist, l));
            match blocked {
                Some(rule) if planted.contains_key(&a.id) => {
                    if let Some(p) = planted.remove(&a.id) {
                        for probe in p.probes {
                            let _ = session.remove_probe(probe);
                            by_probe.remove(&probe);
                        }
                    }
                    shared.set_state(
                        &a.id,
                        "error",
                        format!("blocked by the blocklist: {}", blocklist::describe(rule)),
                        None,
                    );
                    false
                }
                _ => true,
            }
        })
        .map(|a| (a.id.as_str(), a))
        .collect();
    let gone: Vec<String> = planted
        .keys()
        .filter(|id| !want.contains_key(id.as_str()))
        .cloned()
        .collect();
    for id in gone {
        if let Some(p) = planted.remove(&id) {
            for probe in p.probes {
                let _ = session.remove_probe(probe);
                by_probe.remove(&probe);
            }
        }
        shared.states.lock().unwrap().remove(&id);
        shared.states_dirty.store(true, Ordering::Relaxed);
    }
    for (id, a) in want {
        if planted.contains_key(id) {
            continue;
        }
        // An action that already ended or failed here is not planted again.
        if let Some(s) = shared.states.lock().unwrap().get(id)
            && matches!(s.state.as_str(), "exhausted" | "expired" | "error")
        {
            continue;
        }
        // The blocklist, again here: the server refuses such actions, but an agent must not
        // trust that alone (a rule added after the action, a server that skipped the check).
        let locations = [
            Some(a.spec.location.as_str()),
            a.spec.end_location.as_deref(),
        ];
        if let Some(rule) = locations
            .iter()
            .flatten()
            .find_map(|l| blocklist::blocked(&desired.blocklist, l))
        {
            let why = format!("blocked by the blocklist: {}", blocklist::describe(rule));
            eprintln!("scry agent: action {id} at {}: {why}", a.spec.location);
            shared.set_state(id, "error", why, Some(0));
            continue;
        }
        let mut probes = Vec::new();
        let mut error = None;
        for spec in probe_specs(a) {
            match session.add_probe(&spec) {
                Ok(info) => probes.push(info.id),
                Err(e) => {
                    error = Some(e.to_string());
                    break;
                }
            }
        }
        if let Some(why) = error {
            for p in probes {
                let _ = session.remove_probe(p);
            }
            eprintln!("scry agent: action {id} at {}: {why}", a.spec.location);
            shared.set_state(id, "error", why, Some(0));
            continue;
        }
        eprintln!("scry agent: action {id} planted at {}", a.spec.location);
        for p in &probes {
            by_probe.insert(*p, id.to_string());
        }
        shared.set_state(id, "active", String::new(), Some(0));
        planted.insert(
            id.to_string(),
            Planted {
                action: a.clone(),
                probes,
                metric: MetricAcc::default(),
                tics: HashMap::new(),
                hits: 0,
            },
        );
    }
}

/// The poller: registers, then long-polls the desired state; backs off while the server is
/// down and registers again when it returns.
fn poll_loop(shared: &Shared, out: std::sync::mpsc::Sender<DesiredState>) {
    let mut version = u64::MAX;
    let mut backoff = Duration::from_millis(500);
    let mut registered = false;
    while !shared.stop.load(Ordering::Relaxed) && crate::signals::received().is_none() {
        if shared.register.lock().unwrap().pid == 0 {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        if !registered {
            match shared.register() {
                Ok(id) => {
                    eprintln!(
                        "scry agent: registered with {} as {id}",
                        shared.client.base()
                    );
                    registered = true;
                    backoff = Duration::from_millis(500);
                }
                Err(e) => {
                    eprintln!("scry agent: {e}; retrying in {} ms", backoff.as_millis());
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
        }
        let Some(id) = shared.agent_id() else {
            registered = false;
            continue;
        };
        let v = if version == u64::MAX { 0 } else { version };
        match shared
            .client
            .get::<DesiredState>(&format!("/v1/agents/{id}/desired?version={v}&wait=25"))
        {
            Ok(d) => {
                backoff = Duration::from_millis(500);
                if d.version != version {
                    version = d.version;
                    if out.send(d).is_err() {
                        return;
                    }
                }
            }
            Err(HttpError::Refused { status: 404, .. }) => registered = false,
            Err(e) => {
                eprintln!("scry agent: {e}; retrying in {} ms", backoff.as_millis());
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
                registered = false;
            }
        }
    }
}

/// The uploader: batches of events and the actions' states, retried until taken.
fn upload_loop(shared: &Shared, queue: Receiver<Upload>) {
    let mut batch = EventBatch::default();
    let mut backoff = Duration::from_millis(200);
    let mut reported_dropped = 0;
    loop {
        let deadline = Instant::now() + Duration::from_millis(200);
        let mut closed = false;
        while batch.logs.len() + batch.snapshots.len() + batch.metrics.len() < 500 {
            let left = deadline.saturating_duration_since(Instant::now());
            match queue.recv_timeout(left) {
                Ok(Upload::Log(l)) => batch.logs.push(l),
                Ok(Upload::Snapshot(s)) => batch.snapshots.push(s),
                Ok(Upload::Metric(m)) => batch.metrics.push(m),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        let Some(id) = shared.agent_id() else {
            if closed {
                return;
            }
            continue;
        };
        let dropped = shared.dropped.load(Ordering::Relaxed);
        let has_events =
            !batch.logs.is_empty() || !batch.snapshots.is_empty() || !batch.metrics.is_empty();
        let mut ok = true;
        if has_events || dropped != reported_dropped {
            batch.dropped = dropped;
            match shared
                .client
                .post::<_, serde_json::Value>(&format!("/v1/agents/{id}/events"), &batch)
            {
                Ok(_) => {
                    batch = EventBatch::default();
                    reported_dropped = dropped;
                }
                Err(e) => {
                    ok = false;
                    if matches!(e, HttpError::Refused { status, .. } if (400..500).contains(&status) && status != 404)
                    {
                        // The server will never take this batch: say so, and let it go.
                        eprintln!("scry agent: the server refused a batch of events: {e}");
                        batch = EventBatch::default();
                    }
                }
            }
        }
        if ok && shared.states_dirty.swap(false, Ordering::Relaxed) {
            let report = AgentReport {
                states: shared.states.lock().unwrap().values().cloned().collect(),
                dropped_events: dropped,
            };
            if shared
                .client
                .post::<_, serde_json::Value>(&format!("/v1/agents/{id}/report"), &report)
                .is_err()
            {
                shared.states_dirty.store(true, Ordering::Relaxed);
                ok = false;
            }
        }
        if ok {
            backoff = Duration::from_millis(200);
        } else {
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        if closed && batch.logs.is_empty() && batch.snapshots.is_empty() && batch.metrics.is_empty()
        {
            return;
        }
        if closed && !ok && shared.stop.load(Ordering::Relaxed) {
            return; // shutting down with the server unreachable: nothing more to do
        }
    }
}

/// The GNU build-id of an ELF file, hex, or "".
fn build_id_of(path: &str) -> String {
    scry_tracer::debuginfo::build_id_of_file(std::path::Path::new(path)).unwrap_or_default()
}
