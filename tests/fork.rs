//! Test 5: a program that forks (and vforks, and posix_spawns) while probed: children run
//! the probed line with our int3s removed and exit 0; the parent's hits are all reported.

use scry_tests::scry::Scry;
use scry_tests::*;
use std::time::Duration;

#[test]
fn forked_children_run_clean_and_the_parent_is_still_probed() {
    require_ptrace();
    let dir = TempDir::new("fork");
    let rec = dir.join("records");
    let mut target = Target::spawn(
        "forker-O0",
        &[
            "--iterations",
            "40",
            "--children",
            "4",
            "--interval-us",
            "2000",
            "--record",
            rec.to_str().unwrap(),
            "--wait-stdin",
        ],
    );
    let loc = probe_location("forker.c", "step_body");
    let mut scry = Scry::start(&[
        "attach",
        "--pid",
        &target.pid().to_string(),
        "--json",
        "--log",
        &loc,
        "who={who} i={i}",
    ]);
    scry.wait_stderr("printing hits", Duration::from_secs(20));
    target.send_stdin(b'g');
    assert!(
        target
            .wait_exit(Duration::from_secs(60))
            .is_some_and(|s| s.success())
    );
    scry.wait(Duration::from_secs(10));

    let records = read_records(&rec);
    let children: Vec<&String> = records.iter().filter(|l| l.starts_with("child ")).collect();
    assert!(
        children.len() >= 4,
        "expected at least 4 children: {children:?}"
    );
    for c in &children {
        assert_eq!(
            kv_i64(c, "status"),
            0,
            "a child did not exit 0 under scry: {c}"
        );
    }
    for kind in ["fork", "spawn", "vfork"] {
        assert!(
            children.iter().any(|c| parse_kv(c)["kind"] == kind),
            "no {kind} child ran: {children:?}"
        );
    }
    let parent_calls: Vec<&String> = records
        .iter()
        .filter(|l| l.starts_with("call ") && kv_i64(l, "who") == 0)
        .collect();
    let child_calls = records
        .iter()
        .filter(|l| l.starts_with("call ") && kv_i64(l, "who") == 1)
        .count();
    assert_eq!(parent_calls.len(), 40);
    assert!(
        child_calls >= 4 * 5,
        "the children ran the probed line {child_calls} times"
    );
    let hits = scry.json();
    let parent_hits: Vec<i64> = hits
        .iter()
        .filter(|h| h["pid"] == target.pid())
        .map(|h| h["values"]["i"].as_i64().unwrap())
        .collect();
    let expected: Vec<i64> = parent_calls.iter().map(|c| kv_i64(c, "i")).collect();
    assert_eq!(parent_hits, expected, "stderr: {:?}", scry.stderr());
    // Forked children were detached before they ran: none of their calls shows up.
    assert!(
        hits.iter().all(|h| h["values"]["who"] == 0),
        "a forked child's call was reported"
    );
}
