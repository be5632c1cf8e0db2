//! A target that calls exec: the old image's probes are reported gone, scry detaches cleanly,
//! and the new program runs untouched.

use scry_tests::scry::Scry;
use scry_tests::*;
use std::time::Duration;

#[test]
fn exec_drops_the_old_images_probes_and_detaches() {
    require_ptrace();
    let dir = TempDir::new("exec");
    let rec = dir.join("records");
    let mut target = Target::spawn(
        "execer-O0",
        &[
            "--iterations",
            "4",
            "--record",
            rec.to_str().unwrap(),
            "--wait-stdin",
        ],
    );
    let loc = probe_location("execer.c", "before_exec_body");
    let mut scry = Scry::start(&[
        "attach",
        "--pid",
        &target.pid().to_string(),
        "--json",
        "--log",
        &loc,
        "i={i}",
    ]);
    scry.wait_stderr("printing hits", Duration::from_secs(20));
    target.send_stdin(b'g');
    assert_eq!(
        scry.wait(Duration::from_secs(20)).code(),
        Some(0),
        "{:?}",
        scry.stderr()
    );
    let err = scry.stderr().join("\n");
    assert!(
        err.contains("called exec") && err.contains("detached"),
        "{err}"
    );
    let is: Vec<i64> = scry
        .json()
        .iter()
        .map(|h| h["values"]["i"].as_i64().unwrap())
        .collect();
    assert_eq!(is, vec![0, 1, 2, 3]);
    // The new image (loop-O0) runs to completion on its own, untraced.
    assert!(
        target
            .wait_exit(Duration::from_secs(20))
            .is_some_and(|s| s.success()),
        "the exec'd program failed"
    );
    let records = read_records(&rec);
    assert_eq!(
        records
            .iter()
            .filter(|l| l.starts_with("call seq="))
            .count(),
        3,
        "{records:?}"
    );
}
