//! Test 3: a line inlined in several places (-O2) fires at every copy, once per execution.

use scry_tests::scry::logged_run;
use scry_tests::*;
use std::collections::BTreeMap;

#[test]
fn an_inlined_line_fires_at_every_copy() {
    let loc = probe_location("inline.c", "helper_body");
    let run = logged_run(
        "inline-O2",
        &["--iterations", "30", "--interval-us", "1000"],
        &["--json", "--log", &loc, "x={x}"],
    );
    assert_eq!(run.code, Some(0), "{:?}", run.stderr);
    let planted = run
        .stderr
        .iter()
        .find(|l| l.contains("site(s)"))
        .expect("no planting line")
        .clone();
    let sites: usize = planted
        .split(": ")
        .nth(2)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        sites >= 3,
        "the helper is inlined in 3 functions, but the line resolved to {sites} site(s): {planted}"
    );
    assert!(planted.contains("(inlined)"), "{planted}");

    let calls = run.calls();
    assert_eq!(calls.len(), 30 * 6);
    assert_eq!(run.hits.len(), calls.len(), "stderr: {:?}", run.stderr);
    // Every copy fired, and the x values, where available, are the recorded ones.
    let mut xs_expected: BTreeMap<i64, usize> = BTreeMap::new();
    for c in &calls {
        *xs_expected.entry(kv_i64(c, "x")).or_default() += 1;
    }
    let mut xs_seen: BTreeMap<i64, usize> = BTreeMap::new();
    for h in &run.hits {
        if let Some(x) = h["values"]["x"].as_i64() {
            *xs_seen.entry(x).or_default() += 1;
        }
    }
    if xs_seen.values().sum::<usize>() == run.hits.len() {
        assert_eq!(xs_seen, xs_expected);
    }
}
