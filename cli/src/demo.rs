//! `scry demo`: the whole local loop in one command, on a program bundled into scry.
//!
//! Builds the bundled `loop.c` with the system C compiler, starts it, attaches, plants a log
//! point with values, prints hits for a few seconds, detaches, and shows that the program kept
//! running, untouched. Cleans up everything it started. (The three-tiers issue turns this into
//! the server + agent + client demo.)

use crate::output;
use anyhow::{Context, Result, bail};
use clap::Args;
use scry_tracer::{Event, ProbeSpec, Session, SessionOptions};
use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// The bundled program's source.
const LOOP_C: &str = include_str!("../../testbins/c/loop.c");
/// The testbins' shared helpers, which `loop.c` includes.
const TESTBIN_H: &str = include_str!("../../testbins/c/testbin.h");

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// How long to print hits.
    #[arg(long, default_value_t = 3.0, value_name = "SECS")]
    pub duration: f64,
}

struct Cleanup {
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn marker_line(source: &str, marker: &str) -> Option<usize> {
    // The marker ends a line of code; the header comment mentions it too.
    let tag = format!("// @probe {marker}");
    source
        .lines()
        .position(|l| {
            let t = l.trim();
            t.ends_with(&tag) && !t.starts_with("//") && !t.starts_with('*')
        })
        .map(|i| i + 1)
}

pub fn run(args: DemoArgs) -> Result<ExitCode> {
    let dir = std::env::temp_dir().join(format!("scry-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut cleanup = Cleanup {
        dir: dir.clone(),
        child: None,
    };
    let src = dir.join("loop.c");
    let bin = dir.join("loop");
    std::fs::write(&src, LOOP_C)?;
    std::fs::write(dir.join("testbin.h"), TESTBIN_H)?;

    println!("1. building the bundled program: cc -g -O0 loop.c -o loop");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-g", "-O0", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .with_context(|| {
            format!("running {cc}: install a C compiler (Debian: apt-get install gcc)")
        })?;
    if !status.success() {
        bail!("{cc} failed to build the demo program");
    }

    println!("2. starting it: ./loop --interval-us 100000 (it processes 10 orders a second)");
    let mut child = Command::new(&bin)
        .args(["--interval-us", "100000"])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the demo program")?;
    let pid = child.id() as i32;
    let mut ready = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut ready)?;
    cleanup.child = Some(child);
    println!("   running as pid {pid}");

    let line = marker_line(LOOP_C, "process_order_body")
        .context("the bundled source lost its probe marker")?;
    let location = format!("loop.c:{line}");
    let template = "order {o->id} qty={o->qty} for {name} (call #{*counter})";
    println!(
        "3. attaching to pid {pid} and adding a log point:\n   scry attach --pid {pid} --log '{location}' '{template}'"
    );
    let mut session = Session::attach(pid, SessionOptions::default()).context("attaching")?;
    let info = session.attach_info().clone();
    println!(
        "   attached to {} thread(s) in {} µs without stopping any",
        info.threads,
        info.elapsed.as_micros()
    );
    let probe = session.add_probe(&ProbeSpec {
        location: location.clone(),
        template: template.into(),
        max_hits: None,
        condition: None,
        snapshot: None,
        ..Default::default()
    })?;
    for s in &probe.sites {
        println!(
            "   planted at {} ({} in {})",
            s.addr, location, s.site.function
        );
    }
    session.resume()?;

    println!("4. hits for {} s:", args.duration);
    let until = Instant::now() + Duration::from_secs_f64(args.duration);
    let mut hits = 0;
    while Instant::now() < until {
        match session.events().recv_timeout(Duration::from_millis(50)) {
            Ok(Event::Hit(hit)) => {
                hits += 1;
                println!("   {}", output::human(&hit, &session.render(&hit)));
            }
            Ok(Event::Exited { .. }) => bail!("the demo program exited unexpectedly"),
            Ok(Event::Warning(w)) => println!("   warning: {w}"),
            _ => {}
        }
    }

    let report = session.detach()?;
    println!(
        "5. detached: {} hit(s) printed, {} int3 byte(s) restored, {} thread(s) released",
        hits, report.bytes_restored, report.threads
    );
    std::thread::sleep(Duration::from_millis(300));
    let status =
        scry_tracer::procfs::read_status(pid).context("the demo program is gone after detach")?;
    println!(
        "6. the program runs on: pid {pid} state {} ({}), tracer pid {} (0 = nobody)",
        status.state,
        match status.state {
            'S' => "sleeping between orders",
            'R' => "running",
            _ => "?",
        },
        status.tracer_pid
    );
    if status.tracer_pid != 0 || matches!(status.state, 'T' | 't' | 'Z') {
        bail!(
            "the demo program is not running freely after detach (state {})",
            status.state
        );
    }
    println!("7. stopping it and cleaning up {}", dir.display());
    drop(cleanup);
    Ok(ExitCode::SUCCESS)
}
