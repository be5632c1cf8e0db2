//! Test 2: a log point on a line hit by 8 threads while threads are created and exit
//! continually: scry's hit count equals the program's own call count, and each hit's values
//! equal what the program recorded for that call.

use scry_tests::scry::Scry;
use scry_tests::*;
use std::collections::BTreeMap;
use std::time::Duration;

fn every_hit_of_every_thread(bin: &str) {
    require_ptrace();
    let dir = TempDir::new("threads");
    let rec = dir.join("records");
    let mut target = Target::spawn(
        bin,
        &[
            "--workers",
            "8",
            "--runs",
            "40",
            "--calls",
            "50",
            "--record",
            rec.to_str().unwrap(),
            "--wait-stdin",
        ],
    );
    let loc = probe_location("threads.c", "work_body");
    let mut scry = Scry::start(&[
        "attach",
        "--pid",
        &target.pid().to_string(),
        "--json",
        "--stats",
        "--log",
        &loc,
        "w={worker} s={seq}",
    ]);
    scry.wait_stderr("printing hits", Duration::from_secs(20));
    target.send_stdin(b'g');
    assert!(
        target
            .wait_exit(Duration::from_secs(60))
            .is_some_and(|s| s.success()),
        "the program failed under scry"
    );
    assert_eq!(
        scry.wait(Duration::from_secs(10)).code(),
        Some(0),
        "{:?}",
        scry.stderr()
    );

    let records = read_records(&rec);
    let calls: Vec<&String> = records.iter().filter(|l| l.starts_with("call ")).collect();
    let total = records
        .iter()
        .find(|l| l.starts_with("total "))
        .expect("no total record");
    assert_eq!(
        calls.len() as i64,
        total
            .trim_start_matches("total ")
            .trim()
            .parse::<i64>()
            .unwrap()
    );
    assert_eq!(calls.len(), 40 * 50);

    // Compare as multisets of (worker, seq, tid): every call seen once, with its values.
    let mut expected: BTreeMap<(i64, i64, i64), i32> = BTreeMap::new();
    for c in &calls {
        *expected
            .entry((kv_i64(c, "worker"), kv_i64(c, "seq"), kv_i64(c, "tid")))
            .or_default() += 1;
    }
    let mut seen: BTreeMap<(i64, i64, i64), i32> = BTreeMap::new();
    for h in scry.json() {
        let w = h["values"]["worker"].as_i64().unwrap();
        let s = h["values"]["seq"].as_i64().unwrap();
        *seen.entry((w, s, h["tid"].as_i64().unwrap())).or_default() += 1;
    }
    let hits: i32 = seen.values().sum();
    assert_eq!(
        hits as usize,
        calls.len(),
        "scry saw {hits} hits for {} calls; stderr: {:?}",
        calls.len(),
        scry.stderr()
    );
    assert_eq!(seen, expected, "hits and recorded calls differ");
}

#[test]
fn every_hit_of_eight_threads_is_seen_o0() {
    every_hit_of_every_thread("threads-O0");
}

#[test]
fn every_hit_of_eight_threads_is_seen_o2_non_pie() {
    every_hit_of_every_thread("threads-O2-nopie");
}
