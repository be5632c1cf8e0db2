//! `scry attach [options] -- PROGRAM ARGS`: the program starts under scry, held at its entry
//! point until the probes are planted, so not even its first call is missed.

use scry_tests::scry::Scry;
use scry_tests::*;
use std::time::Duration;

#[test]
fn a_program_started_under_scry_is_probed_from_its_first_call() {
    require_ptrace();
    let dir = TempDir::new("spawn");
    let rec = dir.join("records");
    let loc = probe_location("loop.c", "process_order_body");
    let shared_loc = format!(
        "libscryshared.so:{}",
        probe_location("shared.c", "shared_body")
    );
    let bin = testbin("loop-O2");
    let dl = testbin("dlopener-O0");
    // The main program's line, and a line in a library it links (loaded before main runs).
    let mut scry = Scry::start(&[
        "attach",
        "--json",
        "--log",
        &loc,
        "id={o->id}",
        "--",
        bin.to_str().unwrap(),
        "--iterations",
        "7",
        "--interval-us",
        "500",
        "--record",
        rec.to_str().unwrap(),
    ]);
    assert_eq!(
        scry.wait(Duration::from_secs(30)).code(),
        Some(0),
        "{:?}",
        scry.stderr()
    );
    assert!(
        scry.stderr()
            .join("\n")
            .contains("target exited with code 0"),
        "{:?}",
        scry.stderr()
    );
    let ids: Vec<i64> = scry
        .json()
        .iter()
        .filter_map(|h| h["values"]["o->id"].as_i64())
        .collect();
    let recorded: Vec<i64> = read_records(&rec)
        .iter()
        .filter(|l| l.starts_with("call "))
        .map(|l| kv_i64(l, "id"))
        .collect();
    assert_eq!(recorded.len(), 7);
    assert_eq!(
        scry.json().len(),
        7,
        "a call was missed: {:?}",
        scry.stdout()
    );
    if ids.len() == 7 {
        assert_eq!(ids, recorded);
    }

    let mut scry = Scry::start(&[
        "attach",
        "--json",
        "--log",
        &shared_loc,
        "i={i}",
        "--",
        dl.to_str().unwrap(),
        "--iterations",
        "4",
    ]);
    assert_eq!(
        scry.wait(Duration::from_secs(30)).code(),
        Some(0),
        "{:?}",
        scry.stderr()
    );
    let is: Vec<i64> = scry
        .json()
        .iter()
        .map(|h| h["values"]["i"].as_i64().unwrap())
        .collect();
    assert_eq!(is, vec![0, 1, 2, 3]);
}

#[test]
fn a_program_that_cannot_start_is_a_clear_error() {
    let (code, _, stderr) = scry::run_scry(
        &["attach", "--log", "main", "x", "--", "/nonexistent/program"],
        Duration::from_secs(20),
    );
    assert_ne!(code, 0);
    assert!(stderr.join("\n").contains("no such file"), "{stderr:?}");
}
