//! Quotas (issue "Hits at the ptrace floor, and quotas"): a log point above its line rate
//! pauses — unplanted, so it costs nothing — says why with the figures, and re-arms by itself;
//! the overhead budget does the same for thread-stop time; an expiry ends a probe; the program
//! runs on unharmed and makes every call it would have made.

use scry_tests::scry::{Scry, logged_run};
use scry_tests::*;
use std::time::{Duration, Instant};

/// The program's own calls: all made, in order.
fn assert_all_calls(run: &scry_tests::scry::LoggedRun, n: i64) {
    let ids: Vec<i64> = run.calls().iter().map(|r| kv_i64(r, "id")).collect();
    assert_eq!(ids, (0..n).collect::<Vec<_>>(), "the program's calls");
}

/// The ids scry reported: a strictly increasing subset of the calls.
fn reported_ids(run: &scry_tests::scry::LoggedRun) -> Vec<i64> {
    let ids: Vec<i64> = run
        .hits
        .iter()
        .filter_map(|h| h["values"]["o->id"].as_i64())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    ids
}

#[test]
fn a_log_point_above_its_line_rate_pauses_says_why_and_rearms() {
    let loc = probe_location("loop.c", "process_order_body");
    // ≈ 1000 calls/s for ≈ 2.5 s against 40 lines/s (bursts of 80).
    let started = Instant::now();
    let run = logged_run(
        "loop-O0",
        &["--iterations", "2500", "--interval-us", "1000"],
        &[
            "--json",
            "--rate",
            "40",
            "--overhead",
            "off",
            "--log",
            &loc,
            "id={o->id}",
        ],
    );
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(run.code, Some(0), "{:?}", run.stderr);
    assert_all_calls(&run, 2500);
    let ids = reported_ids(&run);
    let paused: Vec<&String> = run
        .stderr
        .iter()
        .filter(|l| l.contains("paused for"))
        .collect();
    let rearmed = run.stderr.iter().filter(|l| l.contains("re-armed")).count();
    assert!(!paused.is_empty(), "never paused: {:?}", run.stderr);
    assert!(
        paused[0].contains("more than 40 log lines/s (bursts of 80)")
            && paused[0].contains("--rate"),
        "the reason names the bound and the fix: {}",
        paused[0]
    );
    assert!(rearmed >= 1, "it re-arms by itself: {:?}", run.stderr);
    // The burst, then about the rate: never more than the bucket allows over the run.
    assert!(ids.len() >= 80, "{} lines", ids.len());
    let allowed = 80.0 + 40.0 * secs + 10.0;
    assert!(
        (ids.len() as f64) <= allowed,
        "{} lines in {secs:.1} s, at most {allowed:.0} allowed",
        ids.len()
    );
    // Lines came from the whole run, not just the first burst.
    assert!(*ids.last().unwrap() > 1500, "{ids:?}");
}

#[test]
fn a_paused_probe_is_unplanted() {
    require_ptrace();
    let loc = probe_location("loop.c", "process_order_body");
    let mut target = Target::spawn("loop-O0", &["--interval-us", "500", "--wait-stdin"]);
    let mut scry = Scry::start(&[
        "attach",
        "--pid",
        &target.pid().to_string(),
        "--rate",
        "5",
        "--overhead",
        "off",
        "--log",
        &loc,
        "id={o->id}",
    ]);
    scry.wait_stderr("printing hits", Duration::from_secs(20));
    target.send_stdin(b'g');
    let line = scry.wait_stderr("paused for", Duration::from_secs(20));
    assert!(line.contains("log lines/s"), "{line}");
    // While paused (≥ 500 ms), the code is exactly the file's: no int3 left in it.
    code_bytes_match_file(target.pid(), testbin("loop-O0"))
        .expect("a paused probe left code behind");
    scry.wait_stderr("re-armed", Duration::from_secs(20));
    scry.signal(libc::SIGINT);
    assert_eq!(scry.wait(Duration::from_secs(20)).code(), Some(0));
    code_bytes_match_file(target.pid(), testbin("loop-O0")).unwrap();
    assert_eq!(tracer_pid(target.pid()), 0);
    target.kill();
}

#[test]
fn the_overhead_budget_pauses_a_hot_probe_with_the_figures() {
    let loc = probe_location("loop.c", "process_order_body");
    // A hot loop (no sleep): every call stops the thread; 0.2 % of the time is a few stops.
    let run = logged_run(
        "loop-O2",
        &["--iterations", "20000", "--interval-us", "0"],
        &[
            "--json",
            "--rate",
            "off",
            "--overhead",
            "0.2",
            "--log",
            &loc,
            "id={o->id}",
        ],
    );
    assert_eq!(run.code, Some(0), "{:?}", run.stderr);
    assert_all_calls(&run, 20000);
    let ids = reported_ids(&run);
    let paused: Vec<&String> = run
        .stderr
        .iter()
        .filter(|l| l.contains("paused for"))
        .collect();
    assert!(!paused.is_empty(), "never paused: {:?}", run.stderr);
    assert!(
        paused[0].contains("% of the time")
            && paused[0].contains("ms stopped so far")
            && paused[0].contains("--overhead"),
        "the reason gives the figures and the fix: {}",
        paused[0]
    );
    assert!(
        ids.len() < 20000 && !ids.is_empty(),
        "{} of 20000 calls reported",
        ids.len()
    );
}

#[test]
fn a_probe_expires() {
    let loc = probe_location("loop.c", "process_order_body");
    let started = Instant::now();
    let run = logged_run(
        "loop-O0",
        &["--iterations", "2500", "--interval-us", "1000"],
        &[
            "--json",
            "--rate",
            "off",
            "--overhead",
            "off",
            "--expiry",
            "1s",
            "--log",
            &loc,
            "id={o->id}",
        ],
    );
    assert_eq!(run.code, Some(0), "{:?}", run.stderr);
    assert!(started.elapsed() > Duration::from_secs(2));
    assert_all_calls(&run, 2500);
    let ids = reported_ids(&run);
    let expired = run
        .stderr
        .iter()
        .find(|l| l.contains("expired after"))
        .unwrap_or_else(|| panic!("no expiry reported: {:?}", run.stderr));
    assert!(
        expired.contains("1.0 s") && expired.contains("--expiry"),
        "{expired}"
    );
    // ≈ 1000 calls/s: about a second's worth, and nothing from the end of the run.
    assert!(
        (300..=1900).contains(&ids.len()),
        "{} lines in the first second",
        ids.len()
    );
    assert!(*ids.last().unwrap() < 2000, "{ids:?}");
    // Bad values are refused with the fix.
    for (flag, value) in [
        ("--expiry", "soon"),
        ("--rate", "0"),
        ("--overhead", "lots"),
    ] {
        let (code, _, stderr) = scry_tests::scry::run_scry(
            &["attach", "--pid", "1", flag, value, "--log", &loc, "x"],
            Duration::from_secs(10),
        );
        assert_ne!(code, 0);
        assert!(
            stderr.join("\n").contains(flag),
            "{flag} {value}: {stderr:?}"
        );
    }
}
