//! The client commands: talk to the management server (`--server` / SCRY_SERVER,
//! `--token` / SCRY_TOKEN). Human tables by default, `--json` on every command that prints.
//!
//! Exit codes: 0 success; 1 the server refused (the message says why and what to do);
//! 2 usage error; 4 the server cannot be reached.

use crate::http::{Client, HttpError};
use anyhow::Result;
use clap::{Args, Subcommand};
use scry_server::api::{
    Action, ActionKind, ActionQuota, Agent, LogLine, MetricKind, MetricSeries, NewAction,
    SnapshotSummary, StoredSnapshot, Target,
};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

/// Where the server is, for every client command.
#[derive(Args, Debug, Clone)]
pub struct ServerOpts {
    /// The management server.
    #[arg(
        long,
        env = "SCRY_SERVER",
        default_value = "http://127.0.0.1:7070",
        global = true
    )]
    pub server: String,
    /// Your token (the security issue makes it required).
    #[arg(long, env = "SCRY_TOKEN", global = true)]
    pub token: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Trust only this CA (PEM) for an HTTPS server.
    #[arg(long, env = "SCRY_CA", global = true, value_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,
}

impl ServerOpts {
    pub fn client(&self) -> Client {
        match Client::with_ca(
            &self.server,
            self.token.clone(),
            Duration::from_secs(70),
            self.ca.as_deref(),
        ) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("scry: error: {e:#}");
                std::process::exit(2);
            }
        }
    }
}

/// Which agents an action applies to.
#[derive(Args, Debug, Clone, Default)]
pub struct TargetOpts {
    /// An agent by id (repeatable).
    #[arg(long = "agent", value_name = "ID")]
    pub agents: Vec<String>,
    /// Agents with this tag, now or later (repeatable; all must match).
    #[arg(long = "tag", value_name = "K=V")]
    pub tags: Vec<String>,
}

/// An action's bounds.
#[derive(Args, Debug, Clone, Default)]
pub struct QuotaOpts {
    /// Unplant after this many hits (snapshots: 1 unless given).
    #[arg(long, value_name = "N")]
    pub max_hits: Option<u64>,
    /// End the action this many seconds after it is created (0: never; default 1 h).
    #[arg(long, value_name = "SECS")]
    pub expiry: Option<u64>,
    /// Log lines per second (default 60).
    #[arg(long, value_name = "N")]
    pub rate: Option<f64>,
}

#[derive(Subcommand, Debug)]
pub enum LogCmd {
    /// Add a log point: LOC (file.c:42, function, lib.so:file.c:42) and a template with {values}.
    Add {
        location: String,
        template: String,
        /// Only when this expression holds.
        #[arg(long = "if", value_name = "EXPR")]
        condition: Option<String>,
        #[command(flatten)]
        target: TargetOpts,
        #[command(flatten)]
        quota: QuotaOpts,
    },
}

#[derive(Subcommand, Debug)]
pub enum SnapshotCmd {
    /// Add a snapshot point at LOC.
    Add {
        location: String,
        /// An expression to show in every snapshot (repeatable).
        #[arg(long)]
        watch: Vec<String>,
        #[arg(long = "if", value_name = "EXPR")]
        condition: Option<String>,
        #[command(flatten)]
        target: TargetOpts,
        #[command(flatten)]
        quota: QuotaOpts,
    },
    /// Show one snapshot.
    Show { id: u64 },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum MetricKindArg {
    Counter,
    Tictoc,
    Duration,
    Value,
}

#[derive(Subcommand, Debug)]
pub enum MetricCmd {
    /// Add a metric: counter (hits of LOC), tictoc (LOC to --end LOC on a thread), duration
    /// (LOC is a function: its entry to its return, every return path, recursion-safe), value
    /// (--expr's numbers at LOC, as a histogram).
    Add {
        kind: MetricKindArg,
        location: String,
        /// Tic-toc and duration: where the toc is.
        #[arg(long = "end", value_name = "LOC")]
        end_location: Option<String>,
        /// Value: the expression to observe.
        #[arg(long = "expr", value_name = "EXPR")]
        expression: Option<String>,
        #[arg(long = "if", value_name = "EXPR")]
        condition: Option<String>,
        #[command(flatten)]
        target: TargetOpts,
        #[command(flatten)]
        quota: QuotaOpts,
    },
}

#[derive(Subcommand, Debug)]
pub enum ActionCmd {
    /// Remove an action (its probes are unplanted on every agent).
    Rm { id: String },
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Keep printing new lines as they arrive.
    #[arg(long)]
    pub follow: bool,
    /// Only this action's lines.
    #[arg(long, value_name = "ID")]
    pub action: Option<String>,
    /// At most this many (without --follow).
    #[arg(long, default_value_t = 100)]
    pub limit: u64,
}

#[derive(Args, Debug)]
pub struct SnapshotsArgs {
    #[arg(long, value_name = "ID")]
    pub action: Option<String>,
}

/// Runs a client command and maps failures to the documented exit codes.
pub fn exit_code(r: Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scry: error: {e:#}");
            match e.downcast_ref::<HttpError>() {
                Some(HttpError::Unreachable { .. }) => ExitCode::from(4),
                _ => ExitCode::from(1),
            }
        }
    }
}

pub fn target(t: &TargetOpts) -> Result<Target> {
    let mut tags = BTreeMap::new();
    for kv in &t.tags {
        let Some((k, v)) = kv.split_once('=') else {
            anyhow::bail!("--tag takes KEY=VALUE (e.g. --tag service=orders), not {kv:?}");
        };
        tags.insert(k.to_string(), v.to_string());
    }
    Ok(Target {
        agents: t.agents.clone(),
        tags,
    })
}

fn quota(q: &QuotaOpts) -> ActionQuota {
    ActionQuota {
        max_hits: q.max_hits,
        expiry_secs: q.expiry,
        lines_per_sec: q.rate,
        bytes_per_sec: None,
    }
}

pub fn print_json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string(v).unwrap_or_default());
}

/// Creates an action and prints it.
fn create(opts: &ServerOpts, a: NewAction) -> Result<()> {
    let created: Action = opts.client().post("/v1/actions", &a)?;
    if opts.json {
        print_json(&created);
    } else {
        println!(
            "{} {} at {} ({})",
            created.id,
            kind_text(&created),
            created.spec.location,
            target_text(&created.spec.target)
        );
    }
    Ok(())
}

fn kind_text(a: &Action) -> String {
    match (a.spec.kind, a.spec.metric) {
        (ActionKind::Log, _) => "log".into(),
        (ActionKind::Snapshot, _) => "snapshot".into(),
        (ActionKind::Metric, Some(k)) => format!(
            "metric {}",
            serde_json::to_value(k)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        ),
        (ActionKind::Metric, None) => "metric".into(),
    }
}

fn target_text(t: &Target) -> String {
    let mut parts: Vec<String> = t.agents.iter().map(|a| format!("agent {a}")).collect();
    parts.extend(t.tags.iter().map(|(k, v)| format!("tag {k}={v}")));
    if parts.is_empty() {
        "all agents".into()
    } else {
        parts.join(", ")
    }
}

pub fn log(opts: &ServerOpts, cmd: &LogCmd) -> Result<()> {
    let LogCmd::Add {
        location,
        template,
        condition,
        target: t,
        quota: q,
    } = cmd;
    create(
        opts,
        NewAction {
            kind: ActionKind::Log,
            metric: None,
            location: location.clone(),
            end_location: None,
            template: template.clone(),
            condition: condition.clone(),
            watches: Vec::new(),
            target: target(t)?,
            quota: quota(q),
        },
    )
}

pub fn snapshot(opts: &ServerOpts, cmd: &SnapshotCmd) -> Result<()> {
    match cmd {
        SnapshotCmd::Add {
            location,
            watch,
            condition,
            target: t,
            quota: q,
        } => create(
            opts,
            NewAction {
                kind: ActionKind::Snapshot,
                metric: None,
                location: location.clone(),
                end_location: None,
                template: String::new(),
                condition: condition.clone(),
                watches: watch.clone(),
                target: target(t)?,
                quota: quota(q),
            },
        ),
        SnapshotCmd::Show { id } => {
            let s: StoredSnapshot = opts.client().get(&format!("/v1/snapshots/{id}"))?;
            if opts.json {
                print_json(&s);
            } else {
                println!(
                    "snapshot {} of action {} on agent {} at {} [tid {}]",
                    s.id, s.action_id, s.agent_id, s.time, s.tid
                );
                print_snapshot_tree(&s.snapshot);
            }
            Ok(())
        }
    }
}

/// A stored snapshot's JSON as an indented tree (frames, their variables, watches).
fn print_snapshot_tree(s: &serde_json::Value) {
    let empty = Vec::new();
    for f in s["frames"].as_array().unwrap_or(&empty) {
        println!(
            "  #{:<2} {} at {}:{} {} in {}",
            f["index"],
            f["function"].as_str().unwrap_or("??"),
            f["file"].as_str().unwrap_or("?"),
            f["line"],
            f["pc"].as_str().unwrap_or(""),
            f["module"].as_str().unwrap_or("?")
        );
        for section in ["args", "locals"] {
            if let Some(vars) = f[section].as_array() {
                println!("       {section}:");
                for v in vars {
                    println!(
                        "         {} = ({}) {}",
                        v["name"].as_str().unwrap_or(""),
                        v["type"].as_str().unwrap_or(""),
                        v["value"]
                    );
                }
            }
        }
    }
    if let Some(w) = s["watches"].as_array()
        && !w.is_empty()
    {
        println!("  watches:");
        for v in w {
            println!("    {} = {}", v["name"].as_str().unwrap_or(""), v["value"]);
        }
    }
}

pub fn metric(opts: &ServerOpts, cmd: &MetricCmd) -> Result<()> {
    let MetricCmd::Add {
        kind,
        location,
        end_location,
        expression,
        condition,
        target: t,
        quota: q,
    } = cmd;
    let metric = match kind {
        MetricKindArg::Counter => MetricKind::Counter,
        MetricKindArg::Tictoc => MetricKind::Tictoc,
        MetricKindArg::Duration => MetricKind::Duration,
        MetricKindArg::Value => MetricKind::Value,
    };
    if metric == MetricKind::Tictoc && end_location.is_none() {
        anyhow::bail!("a tictoc metric needs --end LOC (where the time stops on the same thread)");
    }
    if metric == MetricKind::Value && expression.is_none() {
        anyhow::bail!("a value metric needs --expr EXPR (the number to observe)");
    }
    create(
        opts,
        NewAction {
            kind: ActionKind::Metric,
            metric: Some(metric),
            location: location.clone(),
            end_location: end_location.clone(),
            template: expression.clone().unwrap_or_default(),
            condition: condition.clone(),
            watches: Vec::new(),
            target: target(t)?,
            quota: quota(q),
        },
    )
}

/// GETs a list; with `--json` prints it and returns None (the caller prints a table otherwise).
fn fetch_list<T: serde::de::DeserializeOwned + serde::Serialize>(
    opts: &ServerOpts,
    path: &str,
) -> Result<Option<Vec<T>>> {
    let list: Vec<T> = opts.client().get(path)?;
    if opts.json {
        print_json(&list);
        return Ok(None);
    }
    Ok(Some(list))
}

pub fn agents(opts: &ServerOpts) -> Result<()> {
    let Some(list) = fetch_list::<Agent>(opts, "/v1/agents")? else {
        return Ok(());
    };
    println!(
        "{:<16} {:<8} {:<12} {:>7} {:<30} {:<24} {:>8}",
        "ID", "STATUS", "HOST", "PID", "EXECUTABLE", "TAGS", "DROPPED"
    );
    for a in list {
        let tags: Vec<String> = a.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{:<16} {:<8} {:<12} {:>7} {:<30} {:<24} {:>8}",
            a.id,
            a.status,
            a.host,
            a.pid,
            a.executable.rsplit('/').next().unwrap_or(""),
            tags.join(","),
            a.dropped_events
        );
    }
    Ok(())
}

pub fn actions(opts: &ServerOpts) -> Result<()> {
    let Some(list) = fetch_list::<Action>(opts, "/v1/actions")? else {
        return Ok(());
    };
    println!(
        "{:<10} {:<16} {:<24} {:<22} STATES",
        "ID", "KIND", "LOCATION", "TARGET"
    );
    for a in list {
        let states: Vec<String> = a
            .states
            .iter()
            .map(|(agent, s)| {
                let mut t = format!("{agent}: {} ({} hits)", s.state, s.hits);
                if !s.reason.is_empty() {
                    t.push_str(&format!(": {}", s.reason));
                }
                t
            })
            .collect();
        println!(
            "{:<10} {:<16} {:<24} {:<22} {}",
            a.id,
            kind_text(&a),
            a.spec.location,
            target_text(&a.spec.target),
            if states.is_empty() {
                "no agent yet".to_string()
            } else {
                states.join("; ")
            }
        );
    }
    Ok(())
}

pub fn action(opts: &ServerOpts, cmd: &ActionCmd) -> Result<()> {
    let ActionCmd::Rm { id } = cmd;
    opts.client().delete(&format!("/v1/actions/{id}"))?;
    if opts.json {
        print_json(&serde_json::json!({"removed": id}));
    } else {
        println!("removed {id}");
    }
    Ok(())
}

pub fn logs(opts: &ServerOpts, args: &LogsArgs) -> Result<()> {
    let client = opts.client();
    let mut after = 0u64;
    let filter = args
        .action
        .as_ref()
        .map(|a| format!("&action={a}"))
        .unwrap_or_default();
    if !args.follow {
        // The last `limit` lines: page through, keep the tail.
        let mut all: Vec<LogLine> = Vec::new();
        loop {
            let page: Vec<LogLine> =
                client.get(&format!("/v1/logs?after={after}&limit=1000{filter}"))?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            all.extend(page);
        }
        let skip = all.len().saturating_sub(args.limit as usize);
        for l in &all[skip..] {
            print_line(opts, l);
        }
        return Ok(());
    }
    crate::signals::install();
    loop {
        if crate::signals::received().is_some() {
            return Ok(());
        }
        let page: Vec<LogLine> = client.get(&format!(
            "/v1/logs?after={after}&limit=1000&wait=25{filter}"
        ))?;
        for l in &page {
            print_line(opts, l);
            after = after.max(l.seq);
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
}

fn print_line(opts: &ServerOpts, l: &LogLine) {
    if opts.json {
        print_json(l);
    } else {
        println!(
            "{} {} {} [agent {} tid {}] {}",
            l.time, l.action_id, l.location, l.agent_id, l.tid, l.message
        );
    }
}

pub fn snapshots(opts: &ServerOpts, args: &SnapshotsArgs) -> Result<()> {
    let filter = args
        .action
        .as_ref()
        .map(|a| format!("?action={a}"))
        .unwrap_or_default();
    let Some(list) = fetch_list::<SnapshotSummary>(opts, &format!("/v1/snapshots{filter}"))? else {
        return Ok(());
    };
    println!(
        "{:>6} {:<10} {:<16} {:<28} TOP",
        "ID", "ACTION", "AGENT", "TIME"
    );
    for s in list {
        println!(
            "{:>6} {:<10} {:<16} {:<28} {}",
            s.id, s.action_id, s.agent_id, s.time, s.top
        );
    }
    Ok(())
}

pub fn metrics(opts: &ServerOpts) -> Result<()> {
    let Some(list) = fetch_list::<MetricSeries>(opts, "/v1/metrics")? else {
        return Ok(());
    };
    println!(
        "{:<10} {:<9} {:<24} {:<16} {:>10} {:>14}",
        "ACTION", "KIND", "LOCATION", "AGENT", "COUNT", "MEAN"
    );
    for m in list {
        let mean = if m.count > 0 && m.kind != MetricKind::Counter {
            format!("{:.6}", m.sum / m.count as f64)
        } else {
            "-".into()
        };
        println!(
            "{:<10} {:<9} {:<24} {:<16} {:>10} {:>14}",
            m.action_id,
            serde_json::to_value(m.kind)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            m.location,
            m.agent_id,
            m.count,
            mean
        );
    }
    Ok(())
}
