//! Test 5: a program that forks (and vforks, and posix_spawns) while probed: children run
//! the probed line with our int3s removed and exit 0; the parent's hits are all reported.

use scry_tests::scry::logged_run;
use scry_tests::*;

#[test]
fn forked_children_run_clean_and_the_parent_is_still_probed() {
    let loc = probe_location("forker.c", "step_body");
    let run = logged_run(
        "forker-O0",
        &[
            "--iterations",
            "40",
            "--children",
            "4",
            "--interval-us",
            "2000",
        ],
        &["--json", "--log", &loc, "who={who} i={i}"],
    );
    let children: Vec<&String> = run
        .records
        .iter()
        .filter(|l| l.starts_with("child "))
        .collect();
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
    let parent_calls: Vec<&String> = run
        .calls()
        .into_iter()
        .filter(|l| kv_i64(l, "who") == 0)
        .collect();
    let child_calls = run
        .calls()
        .into_iter()
        .filter(|l| kv_i64(l, "who") == 1)
        .count();
    assert_eq!(parent_calls.len(), 40);
    assert!(
        child_calls >= 4 * 5,
        "the children ran the probed line {child_calls} times"
    );
    let parent_hits: Vec<i64> = run
        .hits
        .iter()
        .filter(|h| h["pid"] == run.pid)
        .map(|h| h["values"]["i"].as_i64().unwrap())
        .collect();
    let expected: Vec<i64> = parent_calls.iter().map(|c| kv_i64(c, "i")).collect();
    assert_eq!(parent_hits, expected, "stderr: {:?}", run.stderr);
    // Forked children were detached before they ran: none of their calls shows up.
    assert!(
        run.hits.iter().all(|h| h["values"]["who"] == 0),
        "a forked child's call was reported"
    );
}
