//! `scry attach`: attach (or start a program), plant log points, print hits, detach cleanly.

use crate::{output, signals};
use anyhow::{Context, Result, bail};
use clap::Args;
use scry_tracer::debuginfo::DebugSearch;
use scry_tracer::quota::{OverheadBudget, Quota};
use scry_tracer::{Event, ExecPolicy, ProbeEnd, ProbeSpec, Session, SessionOptions, SnapshotSpec};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  scry attach --pid 4242 --log orders.c:42 'order {id} qty={o->qty}' --duration 10\n  \
scry attach --pid 4242 --log process_order 'name={name}' --max-hits 5 --json\n  \
scry attach --log libplugin.so:plugin.c:12 'i={i}' -- ./server --port 8080"
)]
pub struct AttachArgs {
    /// The process to attach to.
    #[arg(long, conflicts_with = "program")]
    pub pid: Option<i32>,
    /// A log point: a location (file.c:LINE, FUNCTION, lib.so:file.c:LINE) and a template
    /// with {value} holes ({{ for a literal brace). Repeatable.
    #[arg(long, num_args = 2, value_names = ["LOC", "TEMPLATE"], action = clap::ArgAction::Append)]
    pub log: Vec<String>,
    /// Report a hit only when this expression is true, e.g. `--if 'o->qty > 3 && name == "bob"'`
    /// (C syntax; read-only; checked against the program's types when the probe is set).
    /// Applies to every --log of the command.
    #[arg(long = "if", value_name = "EXPR")]
    pub condition: Option<String>,
    /// A snapshot point: at a hit, every frame, the arguments and locals of the top 5 frames,
    /// and the --watch expressions (one hit by default; --max-hits raises it). Repeatable.
    #[arg(long, value_name = "LOC")]
    pub snapshot: Vec<String>,
    /// An expression to show in every snapshot, e.g. `--watch 'o->qty * 2' --watch '*o'`.
    #[arg(long, value_name = "EXPR")]
    pub watch: Vec<String>,
    /// Stop after this many seconds (default: until Ctrl-C, max hits, or target exit).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Unplant each log point after this many hits; stop when all are done.
    #[arg(long, value_name = "N")]
    pub max_hits: Option<u64>,
    /// One JSON object per hit on stdout (time, pid, tid, location, message, values).
    #[arg(long)]
    pub json: bool,
    /// A directory holding separate debug files (.build-id/xx/yyyy.debug, debuglink files),
    /// searched before /usr/lib/debug. Repeatable.
    #[arg(long, value_name = "DIR")]
    pub debug_dir: Vec<PathBuf>,
    /// Print a summary of the engine's counters at the end (stderr).
    #[arg(long)]
    pub stats: bool,
    /// Log lines per second each log point may print, sustained (bursts of twice that);
    /// above it the probe pauses and re-arms by itself. `off` for no limit.
    #[arg(long, value_name = "LINES|off", default_value = "60")]
    pub rate: String,
    /// KiB of log output per second each log point may produce (bursts of twice that).
    #[arg(long, value_name = "KIB|off", default_value = "200")]
    pub bytes_rate: String,
    /// Each probe ends this long after it is set: 90s, 30m, 1h, 2d, or `never`.
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub expiry: String,
    /// The share of wall time (in %) the program's threads may spend stopped by scry, all
    /// probes together (one probe: half of it); above it a probe pauses. `off` for no budget.
    #[arg(long, value_name = "PERCENT|off", default_value = "1")]
    pub overhead: String,
    /// Start this program under scry instead of attaching (after `--`).
    #[arg(last = true, value_name = "PROGRAM ARGS")]
    pub program: Vec<String>,
}

/// Where status messages go: stderr, prefixed, so stdout carries only hits.
macro_rules! note {
    ($($t:tt)*) => { eprintln!("scry: {}", format!($($t)*)) };
}

pub fn run(args: AttachArgs) -> Result<ExitCode> {
    if args.log.is_empty() && args.snapshot.is_empty() {
        bail!(
            "nothing to do: add --log LOC TEMPLATE (e.g. --log orders.c:42 'order {{id}}') or --snapshot LOC"
        );
    }
    if !args.watch.is_empty() && args.snapshot.is_empty() {
        bail!(
            "--watch belongs to snapshots: add --snapshot LOC (for log lines, put the expression in the template)"
        );
    }
    if args.pid.is_none() && args.program.is_empty() {
        bail!("say which process: --pid PID, or start one with `-- PROGRAM ARGS`");
    }
    let mut debug = DebugSearch::default();
    for d in args.debug_dir.iter().rev() {
        debug.debug_dirs.insert(0, d.clone());
    }
    let quota = Quota {
        max_hits: None,
        expiry: parse_expiry(&args.expiry)?,
        lines_per_sec: parse_rate(&args.rate, "--rate", 1.0)?,
        bytes_per_sec: parse_rate(&args.bytes_rate, "--bytes-rate", 1024.0)?,
        ..Quota::default()
    };
    let overhead = match parse_rate(&args.overhead, "--overhead", 0.01)? {
        share if share.is_infinite() => OverheadBudget::unlimited(),
        share => OverheadBudget {
            share,
            ..OverheadBudget::default()
        },
    };
    let options = SessionOptions {
        debug,
        exec_policy: ExecPolicy::Detach,
        overhead,
        ..SessionOptions::default()
    };
    signals::install();

    let mut session = match args.pid {
        Some(pid) => {
            Session::attach(pid, options).with_context(|| format!("attaching to process {pid}"))?
        }
        None => {
            let program = PathBuf::from(&args.program[0]);
            Session::spawn(&program, &args.program[1..], options)
                .with_context(|| format!("starting {}", program.display()))?
        }
    };
    let info = session.attach_info().clone();
    note!(
        "attached to pid {} ({} threads) in {} µs; no thread was stopped",
        info.pid,
        info.threads,
        info.elapsed.as_micros()
    );

    // Plant. A bad probe is an error before anything runs: detach and say why.
    let mut locations = std::collections::HashMap::new();
    let plant_started = Instant::now();
    let mut specs: Vec<ProbeSpec> = args
        .log
        .chunks(2)
        .map(|pair| ProbeSpec {
            location: pair[0].clone(),
            template: pair[1].clone(),
            max_hits: args.max_hits,
            condition: args.condition.clone(),
            snapshot: None,
            count_only: false,
            quota,
        })
        .collect();
    for loc in &args.snapshot {
        specs.push(ProbeSpec {
            location: loc.clone(),
            template: String::new(),
            // A snapshot is one hit unless asked otherwise.
            max_hits: Some(args.max_hits.unwrap_or(1)),
            condition: args.condition.clone(),
            snapshot: Some(SnapshotSpec {
                watches: args.watch.clone(),
                ..Default::default()
            }),
            count_only: false,
            quota,
        });
    }
    for spec in specs {
        match session.add_probe(&spec) {
            Ok(p) => {
                locations.insert(p.id, p.location.clone());
                if p.pending {
                    note!(
                        "probe {} at {} is pending: it is planted when that library is loaded",
                        p.id,
                        p.location
                    );
                } else {
                    let where_: Vec<String> = p
                        .sites
                        .iter()
                        .map(|s| {
                            let inl = if s.site.inlined { " (inlined)" } else { "" };
                            format!(
                                "{} in {}{} at {}",
                                short(&s.site.file, s.site.line),
                                s.site.function,
                                inl,
                                s.addr
                            )
                        })
                        .collect();
                    note!(
                        "probe {} at {}: {} site(s): {}",
                        p.id,
                        p.location,
                        p.sites.len(),
                        where_.join("; ")
                    );
                }
            }
            Err(e) => {
                let report = session.detach();
                let restored = report.map(|r| r.bytes_restored).unwrap_or(0);
                bail!(
                    "{e}\n(detached; {restored} planted byte(s) restored; the target was not changed)"
                );
            }
        }
    }
    note!(
        "planted in {} µs; printing hits",
        plant_started.elapsed().as_micros()
    );
    session.resume()?;

    // Fault injection for tests (`SCRY_FAULT=cli-panic-at-hit:N`): a panic here must still
    // detach (the Session's Drop does it while unwinding).
    let cli_panic_at: Option<u64> = std::env::var("SCRY_FAULT").ok().and_then(|f| {
        f.strip_prefix("cli-panic-at-hit:")
            .and_then(|n| n.parse().ok())
    });
    let deadline = args
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d));
    let mut live = locations.len();
    let mut hits = 0u64;
    let ended_by: String;
    let stdout = std::io::stdout();
    loop {
        if let Some(sig) = signals::received() {
            ended_by = format!("{} received", signals::name(sig));
            break;
        }
        let timeout = match deadline {
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    ended_by = "duration reached".into();
                    break;
                }
                (d - now).min(Duration::from_millis(100))
            }
            None => Duration::from_millis(100),
        };
        match session.events().recv_timeout(timeout) {
            Ok(Event::Hit(hit)) => {
                hits += 1;
                if cli_panic_at == Some(hits) {
                    panic!("SCRY_FAULT: injected panic in scry attach at hit {hits}");
                }
                let r = session.render(&hit);
                let mut out = stdout.lock();
                let line = if args.json {
                    output::json(
                        &hit,
                        &r,
                        locations.get(&hit.probe).map(String::as_str).unwrap_or(""),
                    )
                    .to_string()
                } else {
                    output::human(&hit, &r)
                };
                if writeln!(out, "{line}").is_err() {
                    ended_by = "stdout closed".into();
                    break;
                }
                let _ = out.flush();
            }
            Ok(Event::ProbeEnded { probe, end }) => {
                let loc = locations.get(&probe).cloned().unwrap_or_default();
                match end {
                    ProbeEnd::Exhausted { hits } => {
                        note!("probe {probe} at {loc}: max hits reached ({hits}); unplanted")
                    }
                    ProbeEnd::ImageGone => note!(
                        "probe {probe} at {loc}: its code is gone (exec or dlclose); unplanted"
                    ),
                    ProbeEnd::Failed(why) => {
                        note!("probe {probe} at {loc} failed and was unplanted: {why}")
                    }
                    ProbeEnd::Expired { after } => note!(
                        "probe {probe} at {loc}: expired after {} (--expiry); unplanted",
                        human_duration(after)
                    ),
                }
                live = live.saturating_sub(1);
                if live == 0 {
                    ended_by = "all probes done".into();
                    break;
                }
            }
            Ok(Event::ProbePaused {
                probe,
                reason,
                cooldown,
                counts,
            }) => {
                let loc = locations.get(&probe).cloned().unwrap_or_default();
                note!(
                    "probe {probe} at {loc}: paused for {}: {reason}; {} hits so far; it re-arms by itself",
                    human_duration(cooldown),
                    counts.hits
                );
            }
            Ok(Event::ProbeRearmed { probe }) => {
                let loc = locations.get(&probe).cloned().unwrap_or_default();
                note!("probe {probe} at {loc}: re-armed");
            }
            Ok(Event::Snapshot(rec)) => {
                hits += 1;
                let loc = locations.get(&rec.probe).map(String::as_str).unwrap_or("");
                let text = if args.json {
                    output::snapshot_json(&rec, loc).to_string()
                } else {
                    output::snapshot_human(&rec, loc)
                };
                let mut out = stdout.lock();
                if writeln!(out, "{}", text.trim_end()).is_err() {
                    ended_by = "stdout closed".into();
                    break;
                }
                let _ = out.flush();
            }
            Ok(Event::SnapshotHit { .. }) => {}
            Ok(Event::ProbePlanted {
                probe,
                sites,
                module,
            }) => {
                note!("probe {probe} planted in {module} ({sites} site(s))");
            }
            Ok(Event::Exec { pid, detached }) => {
                note!(
                    "process {pid} called exec: its old image's probes are gone{}",
                    if detached { "; detached" } else { "" }
                );
                ended_by = "target exec'd".into();
                break;
            }
            Ok(Event::ForkedChild { .. }) | Ok(Event::ModulesChanged { .. }) => {}
            Ok(Event::Exited { code, signal }) => {
                match (code, signal) {
                    (Some(c), _) => note!("target exited with code {c}"),
                    (_, Some(s)) => note!("target was killed by {}", signals::name(s)),
                    _ => note!("target is gone"),
                }
                ended_by = "target exited".into();
                break;
            }
            Ok(Event::Warning(w)) => note!("warning: {w}"),
            Ok(Event::FinalCounts(_)) => {}
            Ok(Event::ConditionError {
                probe,
                tid,
                fault,
                suppressed,
            }) => {
                let loc = locations.get(&probe).cloned().unwrap_or_default();
                let more = if suppressed > 0 {
                    format!(" ({suppressed} more since the last report)")
                } else {
                    String::new()
                };
                note!(
                    "probe {probe} at {loc}: the condition could not be evaluated on thread {tid}: {}{more}; that hit is not reported (this message repeats at most once a minute)",
                    describe_fault(&fault)
                );
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                ended_by = "engine stopped".into();
                break;
            }
        }
    }

    let stats = session.stats().ok();
    let report = session.detach().context("detaching")?;
    note!(
        "{ended_by}: {hits} hit(s); detached ({} int3 byte(s) restored, {} thread(s) detached{}{})",
        report.bytes_restored,
        report.threads,
        if report.rewound > 0 {
            format!(", {} rewound", report.rewound)
        } else {
            String::new()
        },
        if report.moved_out_of_slots > 0 {
            format!(", {} moved out of slots", report.moved_out_of_slots)
        } else {
            String::new()
        },
    );
    if args.stats
        && let Some(s) = stats
    {
        let mean = s.service_ns_total.checked_div(s.traps).unwrap_or(0);
        note!(
            "stats: {} traps ({} emulated, no slot), mean service {} ns, max {} ns, {} phantom, {} signals passed, {} threads created, {} forks, {} slot pages (mapping took up to {} µs; first hit at a site up to {} µs)",
            s.traps,
            s.emulated,
            mean,
            s.service_ns_max,
            s.phantom_traps,
            s.signals_delivered,
            s.threads_created,
            s.forks,
            s.slot_pages,
            s.slot_page_ns_max / 1000,
            s.slot_build_ns_max / 1000
        );
    }
    for p in &report.problems {
        note!("detach problem: {p}");
    }
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

fn short(file: &str, line: u32) -> String {
    if line == 0 {
        return "(no line info)".into();
    }
    format!("{}:{line}", file.rsplit('/').next().unwrap_or(file))
}

/// A fault as a sentence.
fn describe_fault(f: &scry_tracer::vm::Fault) -> String {
    use scry_tracer::vm::Fault;
    match f {
        Fault::Unreadable(addr) => {
            format!("memory at {addr:#x} is unreadable (a null or wild pointer?)")
        }
        Fault::DivByZero => "division by zero".into(),
        Fault::OptimizedOut => "a value it uses is optimized out at this location".into(),
        Fault::Unavailable(why) => format!("a value it uses is unavailable: {why}"),
        Fault::Malformed(why) => format!("internal error in scry ({why}); please report it"),
    }
}

/// `60`, `0.5`, or `off` (no limit: infinite), times `unit`.
fn parse_rate(text: &str, flag: &str, unit: f64) -> Result<f64> {
    if text == "off" {
        return Ok(f64::INFINITY);
    }
    match text.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v * unit),
        _ => bail!("{flag} takes a positive number or `off`, not {text:?}"),
    }
}

/// `90s`, `30m`, `1h`, `2d` or `never`.
fn parse_expiry(text: &str) -> Result<Option<Duration>> {
    if text == "never" {
        return Ok(None);
    }
    let (num, unit) = text.split_at(
        text.trim_end_matches(|c: char| c.is_ascii_alphabetic())
            .len(),
    );
    let secs = match unit {
        "s" | "" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => 0.0,
    };
    match num.parse::<f64>() {
        Ok(v) if v > 0.0 && secs > 0.0 => Ok(Some(Duration::from_secs_f64(v * secs))),
        _ => bail!("--expiry takes a duration like 90s, 30m, 1h, 2d, or `never`, not {text:?}"),
    }
}

/// `750 ms`, `12.5 s`, `1 h 30 min`.
fn human_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{} ms", d.as_millis())
    } else if s < 120.0 {
        format!("{s:.1} s")
    } else if s < 7200.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}
