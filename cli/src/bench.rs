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
use scry_tracer::{Event, ProbeSpec, Session, SessionOptions, SnapshotSpec};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

/// The bundled program's source and helpers (the demo's program).
const LOOP_C: &str = include_str!("../../testbins/c/loop.c");
const TESTBIN_H: &str = include_str!("../../testbins/c/testbin.h");

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
}

/// One way of running the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    /// No probe.
    Baseline,
    /// A log point whose template has no values.
    LogNoValues,
    /// A log point with two struct-field values (`o->id`, `o->qty`).
    LogTwoValues,
    /// A snapshot at each hit (frames, arguments, locals), `--snapshots` of them.
    Snapshot,
    /// gdb's dprintf with the same two values.
    GdbDprintf,
}

impl Scenario {
    fn label(self) -> &'static str {
        match self {
            Scenario::Baseline => "baseline (no probe)",
            Scenario::LogNoValues => "scry log, no values",
            Scenario::LogTwoValues => "scry log, 2 values",
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
    /// Its iterations (probe line executions).
    iterations: u64,
    /// Hits the tool reported (log lines, snapshots, dprintf lines).
    hits: u64,
}

struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn marker_line(source: &str, marker: &str) -> Option<usize> {
    let tag = format!("// @probe {marker}");
    source
        .lines()
        .position(|l| {
            let t = l.trim();
            t.ends_with(&tag) && !t.starts_with("//") && !t.starts_with('*')
        })
        .map(|i| i + 1)
}

fn build(dir: &Path, opt: &str) -> Result<PathBuf> {
    let bin = dir.join(format!("loop{opt}"));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-g", opt, "-o"])
        .arg(&bin)
        .arg(dir.join("loop.c"))
        .status()
        .with_context(|| {
            format!("running {cc}: install a C compiler (Debian: apt-get install gcc)")
        })?;
    if !status.success() {
        bail!("{cc} failed to build the benchmark program");
    }
    Ok(bin)
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

/// Runs `scenario` once on `bin`.
fn run_once(
    scenario: Scenario,
    bin: &Path,
    dir: &Path,
    location: &str,
    iterations: u64,
    snapshots: u64,
) -> Result<Sample> {
    let timing = dir.join("timing");
    let _ = std::fs::remove_file(&timing);
    let args: Vec<String> = vec![
        "--iterations".into(),
        iterations.to_string(),
        "--interval-us".into(),
        "0".into(),
        "--timing".into(),
        timing.display().to_string(),
    ];
    let hits = match scenario {
        Scenario::Baseline => {
            let status = Command::new(bin)
                .args(&args)
                .stdout(Stdio::null())
                .status()?;
            if !status.success() {
                bail!("the benchmark program failed: {status}");
            }
            0
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
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.starts_with("id="))
                .count() as u64
        }
        _ => {
            // The program's stdout ("ready pid=…") must not mix with the table: it inherits
            // ours, so ours points at /dev/null while it is started.
            let session =
                with_stdout_silenced(|| Session::spawn(bin, &args, SessionOptions::default()))
                    .context("starting the benchmark program under scry")?;
            let spec = ProbeSpec {
                location: location.to_string(),
                template: match scenario {
                    Scenario::LogNoValues => "order processed".into(),
                    _ => "order {o->id} qty={o->qty}".into(),
                },
                max_hits: (scenario == Scenario::Snapshot).then_some(snapshots),
                condition: None,
                snapshot: (scenario == Scenario::Snapshot).then(SnapshotSpec::default),
            };
            let mut session = session;
            session.add_probe(&spec)?;
            session.resume()?;
            let mut hits = 0;
            loop {
                // The consumer formats every hit, as `scry attach` would (off the hit path).
                match session.events().recv_timeout(Duration::from_secs(120)) {
                    Ok(Event::Hit(h)) => {
                        let r = session.render(&h);
                        std::hint::black_box(r.message);
                        hits += 1;
                    }
                    Ok(Event::Snapshot(s)) => {
                        std::hint::black_box(&s.snapshot.frames);
                        hits += 1;
                    }
                    Ok(Event::Exited { .. }) => break,
                    Ok(_) => {}
                    Err(_) => bail!("the benchmark program did not finish"),
                }
            }
            let _ = session.detach();
            hits
        }
    };
    let (loop_ns, iterations) = read_timing(&timing)?;
    Ok(Sample {
        loop_ns,
        iterations,
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
    std::fs::write(dir.join("loop.c"), LOOP_C)?;
    std::fs::write(dir.join("testbin.h"), TESTBIN_H)?;
    let line = marker_line(LOOP_C, "process_order_body")
        .context("the bundled source lost its probe marker")?;
    let location = format!("loop.c:{line}");
    let gdb = !args.no_gdb
        && Command::new("gdb")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    let mut scenarios = vec![
        Scenario::Baseline,
        Scenario::LogNoValues,
        Scenario::LogTwoValues,
        Scenario::Snapshot,
    ];
    if gdb {
        scenarios.push(Scenario::GdbDprintf);
    }
    println!(
        "scry bench: probe at {location} of the bundled loop.c (--interval-us 0), {} iterations per run \
         (gdb: a tenth), {} runs per scenario, interleaved; cost per hit = (loop time − baseline) / hits",
        args.iterations, args.runs
    );
    println!(
        "{:<4} {:<24} {:>12} {:>22} {:>10} {:>8} {:>16}",
        "opt", "scenario", "per hit", "min – max", "× no-vals", "× gdb", "hits seen/made"
    );
    for opt in ["-O0", "-O2"] {
        let bin = build(&dir, opt)?;
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); scenarios.len()];
        for _ in 0..args.runs {
            for (i, s) in scenarios.iter().enumerate() {
                let iterations = if *s == Scenario::GdbDprintf {
                    (args.iterations / 10).max(1)
                } else {
                    args.iterations
                };
                samples[i].push(run_once(
                    *s,
                    &bin,
                    &dir,
                    &location,
                    iterations,
                    args.snapshots,
                )?);
            }
        }
        let mut base: Vec<f64> = samples[0]
            .iter()
            .map(|s| s.loop_ns as f64 / s.iterations as f64)
            .collect();
        let base_per_iter = median(&mut base);
        // Per-hit cost of each run of each scenario.
        let per_hit: Vec<Vec<f64>> = samples
            .iter()
            .map(|runs| {
                runs.iter()
                    .filter(|s| s.hits > 0)
                    .map(|s| {
                        (s.loop_ns as f64 - base_per_iter * s.iterations as f64) / s.hits as f64
                    })
                    .collect()
            })
            .collect();
        let med = |i: usize| median(&mut per_hit[i].clone());
        let no_values = med(1);
        let gdb_med = scenarios
            .iter()
            .position(|s| *s == Scenario::GdbDprintf)
            .map(med);
        for (i, s) in scenarios.iter().enumerate() {
            if *s == Scenario::Baseline {
                println!(
                    "{opt:<4} {:<24} {:>12} {:>22}",
                    s.label(),
                    format!("{} /iter", fmt_ns(base_per_iter)),
                    {
                        let (lo, hi) = base
                            .iter()
                            .fold((f64::MAX, 0f64), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
                        format!("{} – {}", fmt_ns(lo), fmt_ns(hi))
                    }
                );
                continue;
            }
            let m = med(i);
            let (lo, hi) = per_hit[i]
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
            let seen: u64 = samples[i].iter().map(|s| s.hits).sum();
            let made: u64 = samples[i]
                .iter()
                .map(|x| {
                    if *s == Scenario::Snapshot {
                        args.snapshots.min(x.iterations)
                    } else {
                        x.iterations
                    }
                })
                .sum();
            println!(
                "{opt:<4} {:<24} {:>12} {:>22} {:>10} {:>8} {:>16}",
                s.label(),
                fmt_ns(m),
                format!("{} – {}", fmt_ns(lo), fmt_ns(hi)),
                format!("{:.2}", m / no_values),
                gdb_med
                    .map(|g| format!("{:.3}", m / g))
                    .unwrap_or("-".into()),
                format!("{seen}/{made}")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
