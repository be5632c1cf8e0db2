//! `scry bench`: what a probe costs the program, measured side by side in one run.
//!
//! The bundled `loop.c` is built at -O0 and -O2; each run starts it with `--interval-us 0`
//! (a hot loop) and `--timing FILE`, which makes the program write its own loop time. The
//! scenarios run interleaved (run 1 of every scenario, then run 2, …) so a noisy neighbour
//! hurts them alike. A probe's cost per hit is the program's extra time over the baseline
//! divided by the hits scry saw: the time the hitting thread spent stopped, as the program
//! feels it. Figures are printed, never asserted: the machine is shared, ratios hold, absolute
//! times do not. docs/performance.md keeps the last run's table.

use anyhow::{Context, Result, bail};
use clap::Args;
use scry_tracer::quota::{OverheadBudget, Quota};
use scry_tracer::{Event, ProbeSpec, Session, SessionOptions, SnapshotSpec};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Runs of each scenario (median and min–max over them).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Loop iterations per run (each one hits the probe once).
    #[arg(long, default_value_t = 20_000)]
    pub iterations: u64,
    /// Snapshots taken per snapshot run (each holds the thread for the whole capture).
    #[arg(long, default_value_t = 20)]
    pub snapshots: u64,
    /// Leave gdb out (it is the slowest scenario by far).
    #[arg(long)]
    pub no_gdb: bool,
    /// Only -O2, one thread, unpinned (a quick look rather than the full table).
    #[arg(long)]
    pub quick: bool,
    /// Only the three tiers' latency: from `scry log add` to the first line at the client.
    #[arg(long)]
    pub tiers: bool,
}

/// One way of running the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    /// No probe.
    Baseline,
    /// The program executes an int3 of its own before each call and a bare tracer only
    /// continues it: the cheapest stop there is.
    Floor,
    /// A log point whose template has no values.
    LogNoValues,
    /// A log point with two struct-field values (`o->id`, `o->qty`).
    LogTwoValues,
    /// A counter: hits counted in the engine, nothing sent per hit.
    Counter,
    /// The same counter, the engine polling for the next stop for 50 µs after each hit
    /// instead of sleeping in waitpid at once.
    CounterSpin,
    /// The 2-value log point with that polling.
    LogTwoValuesSpin,
    /// A log point whose condition is never true (`o->qty > 1000`): a stop, a read, no line.
    FalseCondition,
    /// A snapshot at each hit (frames, arguments, locals), `--snapshots` of them.
    Snapshot,
    /// gdb's dprintf with the same two values.
    GdbDprintf,
}

impl Scenario {
    fn label(self) -> &'static str {
        match self {
            Scenario::Baseline => "baseline (no probe)",
            Scenario::Floor => "ptrace floor (int3+CONT)",
            Scenario::LogNoValues => "scry log, no values",
            Scenario::LogTwoValues => "scry log, 2 values",
            Scenario::Counter => "scry counter",
            Scenario::CounterSpin => "scry counter, spin 50µs",
            Scenario::LogTwoValuesSpin => "scry log 2 vals, spin",
            Scenario::FalseCondition => "scry false condition",
            Scenario::Snapshot => "scry snapshot",
            Scenario::GdbDprintf => "gdb dprintf, 2 values",
        }
    }
}

/// One run's outcome.
#[derive(Clone, Copy, Debug)]
struct Sample {
    /// The program's loop time.
    loop_ns: u64,
    /// Its calls (probe line executions), all threads together.
    iterations: u64,
    /// Stops of the program's threads (int3 traps served).
    stops: u64,
    /// Hits the tool reported (log lines, counts, snapshots, dprintf lines).
    hits: u64,
}

struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The program's own timing line.
fn read_timing(path: &Path) -> Result<(u64, u64)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("the program wrote no timing to {}", path.display()))?;
    let line = text.lines().last().unwrap_or("");
    let field = |key: &str| -> Option<u64> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
    };
    match (field("loop_ns"), field("iterations")) {
        (Some(ns), Some(n)) => Ok((ns, n)),
        _ => bail!("unexpected timing line {line:?}"),
    }
}

/// Runs `scenario` once on `bin` with `threads` threads making `iterations` calls in all.
fn run_once(
    scenario: Scenario,
    bin: &Path,
    dir: &Path,
    location: &str,
    iterations: u64,
    threads: u32,
    snapshots: u64,
) -> Result<Sample> {
    let timing = dir.join("timing");
    let _ = std::fs::remove_file(&timing);
    let mut args: Vec<String> = vec![
        "--iterations".into(),
        (iterations / threads as u64).max(1).to_string(),
        "--threads".into(),
        threads.to_string(),
        "--interval-us".into(),
        "0".into(),
        "--timing".into(),
        timing.display().to_string(),
    ];
    let (stops, hits) = match scenario {
        Scenario::Baseline => {
            let status = Command::new(bin)
                .args(&args)
                .stdout(Stdio::null())
                .status()?;
            if !status.success() {
                bail!("the benchmark program failed: {status}");
            }
            (0, 0)
        }
        Scenario::Floor => {
            args.push("--int3".into());
            let run = scry_tracer::ptrace::floor::run_floor(bin, &args)
                .context("running the program under the bare tracer")?;
            if run.exit_code != Some(0) {
                bail!("the benchmark program failed under the bare tracer: {run:?}");
            }
            (run.traps, run.traps)
        }
        Scenario::GdbDprintf => {
            let out = Command::new("gdb")
                .args(["-nx", "-batch", "-ex"])
                .arg(format!(
                    "dprintf {location},\"id=%d qty=%d\\n\",o->id,o->qty"
                ))
                .args(["-ex", "run", "--args"])
                .arg(bin)
                .args(&args)
                .stderr(Stdio::null())
                .output()
                .context("running gdb (install it, or pass --no-gdb)")?;
            let n = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.starts_with("id="))
                .count() as u64;
            (n, n)
        }
        _ => {
            let spin = matches!(scenario, Scenario::CounterSpin | Scenario::LogTwoValuesSpin);
            let options = SessionOptions {
                overhead: OverheadBudget::unlimited(),
                spin_after_hit: Duration::from_micros(if spin { 50 } else { 0 }),
                ..SessionOptions::default()
            };
            // The program's stdout ("ready pid=…") must not mix with the table: it inherits
            // ours, so ours points at /dev/null while it is started.
            let mut session = with_stdout_silenced(|| Session::spawn(bin, &args, options))
                .context("starting the benchmark program under scry")?;
            let spec = ProbeSpec {
                location: location.to_string(),
                template: match scenario {
                    Scenario::LogNoValues => "order processed".into(),
                    _ => "order {o->id} qty={o->qty}".into(),
                },
                max_hits: (scenario == Scenario::Snapshot).then_some(snapshots),
                condition: (scenario == Scenario::FalseCondition)
                    .then(|| "o->qty > 1000".to_string()),
                snapshot: (scenario == Scenario::Snapshot).then(SnapshotSpec::default),
                count_only: matches!(scenario, Scenario::Counter | Scenario::CounterSpin),
                quota: Quota::unlimited(),
            };
            let probe = session.add_probe(&spec)?.id;
            session.resume()?;
            let mut hits = 0;
            let mut counts = None;
            loop {
                // The consumer formats every hit, as `scry attach` would (off the hit path).
                match session.events().recv_timeout(Duration::from_millis(200)) {
                    Ok(Event::Hit(h)) => {
                        let r = session.render(&h);
                        std::hint::black_box(r.message);
                        hits += 1;
                        continue;
                    }
                    Ok(Event::Snapshot(s)) => {
                        std::hint::black_box(&s.snapshot.frames);
                        hits += 1;
                    }
                    Ok(Event::FinalCounts(all)) => {
                        if let Some((_, c)) = all.into_iter().find(|(id, _)| *id == probe) {
                            counts = Some(c);
                        }
                        continue;
                    }
                    Ok(Event::Exited { .. }) => break,
                    Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => {
                        bail!("the engine stopped before the benchmark program finished")
                    }
                }
                // The counts die with the process: keep the latest (asked only between
                // events and every 200 ms, so the asking costs the program nothing).
                if let Some(c) = session
                    .counts()
                    .ok()
                    .and_then(|c| c.into_iter().find(|(id, _)| *id == probe))
                {
                    counts = Some(c.1);
                }
            }
            let _ = session.detach();
            let c = counts.unwrap_or_default();
            match scenario {
                Scenario::Counter | Scenario::CounterSpin => (c.executions, c.hits),
                Scenario::Snapshot => (hits, hits),
                _ => (c.executions.max(hits), hits),
            }
        }
    };
    let (loop_ns, iterations) = read_timing(&timing)?;
    Ok(Sample {
        loop_ns,
        iterations,
        stops,
        hits,
    })
}

/// Runs `f` with file descriptor 1 pointing at /dev/null (for children it starts).
fn with_stdout_silenced<T>(f: impl FnOnce() -> T) -> T {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // SAFETY: dup/open/dup2/close on descriptors this function owns; fd 1 is restored
    // before returning.
    unsafe {
        let saved = libc::dup(1);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if saved < 0 || null < 0 {
            return f();
        }
        libc::dup2(null, 1);
        libc::close(null);
        let out = f();
        libc::dup2(saved, 1);
        libc::close(saved);
        out
    }
}

/// Pins the calling thread (and what it starts from now on: the engine thread, the
/// programs) to CPU `cpu`, or lets it run on every CPU (None).
fn pin(cpu: Option<usize>) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and sched_setaffinity on it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        match cpu {
            Some(c) => libc::CPU_SET(c, &mut set),
            None => {
                let n = std::thread::available_parallelism().map_or(1, |n| n.get());
                for c in 0..n {
                    libc::CPU_SET(c, &mut set);
                }
            }
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            bail!("sched_setaffinity: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns.is_nan() {
        "-".into()
    } else if ns >= 1_000_000.0 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1000.0 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    if args.runs == 0 || args.iterations == 0 {
        bail!("--runs and --iterations must be at least 1");
    }
    let dir = std::env::temp_dir().join(format!("scry-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let _cleanup = Cleanup(dir.clone());
    if args.tiers {
        return tiers_latency(&dir, args.runs);
    }
    let location = crate::bundled::probe_location()?;
    let gdb = !args.no_gdb
        && Command::new("gdb")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    let mut scenarios = vec![
        Scenario::Baseline,
        Scenario::Floor,
        Scenario::LogNoValues,
        Scenario::LogTwoValues,
        Scenario::LogTwoValuesSpin,
        Scenario::Counter,
        Scenario::CounterSpin,
        Scenario::FalseCondition,
        Scenario::Snapshot,
    ];
    if gdb {
        scenarios.push(Scenario::GdbDprintf);
    }
    let threads: &[u32] = if args.quick { &[1] } else { &[1, 4] };
    let placements: &[Option<usize>] = if args.quick {
        &[None]
    } else {
        &[Some(0), None]
    };
    let opts: &[&str] = if args.quick {
        &["-O2"]
    } else {
        &["-O0", "-O2"]
    };
    println!(
        "scry bench: probe at {location} of the bundled loop.c (--interval-us 0); {} calls per run \
         (gdb: a tenth; snapshots: {}), {} runs per scenario, interleaved.\n\
         per stop = (program's loop time − baseline) / stops of its threads; ratios are of medians",
        args.iterations, args.snapshots, args.runs
    );
    println!(
        "{:<4} {:>3} {:<9} {:<25} {:>10} {:>21} {:>8} {:>8} {:>15}",
        "opt",
        "thr",
        "cpus",
        "scenario",
        "per stop",
        "min – max",
        "× floor",
        "× gdb",
        "hits seen/made"
    );
    for opt in opts {
        let bin = crate::bundled::build(&dir, opt)?;
        for &nthreads in threads {
            for &placement in placements {
                pin(placement)?;
                let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); scenarios.len()];
                for _ in 0..args.runs {
                    for (i, s) in scenarios.iter().enumerate() {
                        let iterations = if *s == Scenario::GdbDprintf {
                            (args.iterations / 10).max(nthreads as u64)
                        } else {
                            args.iterations
                        };
                        samples[i].push(run_once(
                            *s,
                            &bin,
                            &dir,
                            &location,
                            iterations,
                            nthreads,
                            args.snapshots,
                        )?);
                    }
                }
                pin(None)?;
                let cpus = match placement {
                    Some(c) => format!("cpu {c}"),
                    None => "unpinned".to_string(),
                };
                print_rows(opt, nthreads, &cpus, &scenarios, &samples, args.snapshots);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The table rows of one (opt, threads, placement) group.
fn print_rows(
    opt: &str,
    nthreads: u32,
    cpus: &str,
    scenarios: &[Scenario],
    samples: &[Vec<Sample>],
    snapshots: u64,
) {
    let mut base: Vec<f64> = samples[0]
        .iter()
        .map(|s| s.loop_ns as f64 / s.iterations as f64)
        .collect();
    let base_per_call = median(&mut base);
    let per_stop: Vec<Vec<f64>> = samples
        .iter()
        .map(|runs| {
            runs.iter()
                .filter(|s| s.stops > 0)
                .map(|s| (s.loop_ns as f64 - base_per_call * s.iterations as f64) / s.stops as f64)
                .collect()
        })
        .collect();
    let med = |i: usize| median(&mut per_stop[i].clone());
    let find = |want: Scenario| scenarios.iter().position(|s| *s == want).map(med);
    let floor = find(Scenario::Floor);
    let gdb = find(Scenario::GdbDprintf);
    for (i, s) in scenarios.iter().enumerate() {
        if *s == Scenario::Baseline {
            let (lo, hi) = base
                .iter()
                .fold((f64::MAX, 0f64), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
            println!(
                "{opt:<4} {nthreads:>3} {cpus:<9} {:<25} {:>10} {:>21}",
                s.label(),
                format!("{}/call", fmt_ns(base_per_call)),
                format!("{} – {}", fmt_ns(lo), fmt_ns(hi))
            );
            continue;
        }
        let m = med(i);
        let (lo, hi) = per_stop[i]
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        let seen: u64 = samples[i].iter().map(|x| x.hits).sum();
        let made: u64 = samples[i]
            .iter()
            .map(|x| match s {
                Scenario::Snapshot => snapshots.min(x.iterations),
                Scenario::FalseCondition => 0,
                _ => x.iterations,
            })
            .sum();
        let ratio = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{:.2}", m / r));
        println!(
            "{opt:<4} {nthreads:>3} {cpus:<9} {:<25} {:>10} {:>21} {:>8} {:>8} {:>15}",
            s.label(),
            fmt_ns(m),
            format!("{} – {}", fmt_ns(lo), fmt_ns(hi)),
            ratio(floor),
            ratio(gdb),
            format!("{seen}/{made}")
        );
    }
}

/// The three tiers end to end: a server and an agent on the bundled program (a hot line:
/// 1000 calls a second); `runs` times, an action is created through the API and the time
/// until its first line comes back through the client's long poll is taken; then it is
/// removed.
fn tiers_latency(dir: &Path, runs: usize) -> Result<ExitCode> {
    use scry_server::api::{Action, LogLine, NewAction};
    let exe = std::env::current_exe()?;
    let mut cleanup = crate::demo::Cleanup {
        dir: dir.join("tiers"),
        children: Vec::new(),
    };
    std::fs::create_dir_all(&cleanup.dir)?;
    let bin = crate::bundled::build(&cleanup.dir, "-O0")?;
    let location = crate::bundled::probe_location()?;
    let server = crate::demo::start_server(&exe, &cleanup.dir.clone(), &mut cleanup)?;
    let program = Command::new(&bin)
        .args(["--interval-us", "1000"])
        .stdout(Stdio::null())
        .spawn()?;
    let pid = program.id() as i32;
    cleanup.children.insert(0, program);
    std::thread::sleep(Duration::from_millis(100));
    crate::demo::start_agent(
        &exe,
        &server.url,
        &server.agent_token,
        pid,
        "bench=tiers",
        &mut cleanup,
    )?;
    let mut ms = Vec::new();
    for _ in 0..runs {
        let mut tags = std::collections::BTreeMap::new();
        tags.insert("bench".to_string(), "tiers".to_string());
        let started = std::time::Instant::now();
        let action: Action = server.client.post(
            "/v1/actions",
            &NewAction {
                kind: scry_server::api::ActionKind::Log,
                metric: None,
                location: location.clone(),
                end_location: None,
                template: "id={o->id}".into(),
                condition: None,
                watches: Vec::new(),
                target: scry_server::api::Target {
                    agents: Vec::new(),
                    tags,
                },
                quota: Default::default(),
            },
        )?;
        loop {
            let page: Vec<LogLine> = server.client.get(&format!(
                "/v1/logs?action={}&after=0&limit=1&wait=10",
                action.id
            ))?;
            if !page.is_empty() {
                break;
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("no line for {} within a minute", action.id);
            }
        }
        ms.push(started.elapsed().as_secs_f64() * 1e3);
        server
            .client
            .delete(&format!("/v1/actions/{}", action.id))?;
        std::thread::sleep(Duration::from_millis(300));
    }
    let mut sorted = ms.clone();
    let m = median(&mut sorted);
    println!(
        "scry bench --tiers: `scry log add` → first line at the client (server, agent and client on this host, a hot line), {runs} runs: median {m:.0} ms, min–max {:.0}–{:.0} ms",
        sorted.first().copied().unwrap_or(f64::NAN),
        sorted.last().copied().unwrap_or(f64::NAN)
    );
    drop(cleanup);
    Ok(ExitCode::SUCCESS)
}
