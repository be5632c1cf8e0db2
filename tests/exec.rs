//! A target that calls exec: the old image's probes are reported gone, scry detaches cleanly,
//! and the new program runs untouched.

use scry_tests::scry::logged_run;
use scry_tests::*;

#[test]
fn exec_drops_the_old_images_probes_and_detaches() {
    let loc = probe_location("execer.c", "before_exec_body");
    // logged_run waits for the program to exit successfully: the exec'd image (loop-O0) runs
    // to completion on its own, untraced.
    let run = logged_run(
        "execer-O0",
        &["--iterations", "4"],
        &["--json", "--log", &loc, "i={i}"],
    );
    assert_eq!(run.code, Some(0), "{:?}", run.stderr);
    let err = run.stderr.join("\n");
    assert!(
        err.contains("called exec") && err.contains("detached"),
        "{err}"
    );
    let is: Vec<i64> = run
        .hits
        .iter()
        .map(|h| h["values"]["i"].as_i64().unwrap())
        .collect();
    assert_eq!(is, vec![0, 1, 2, 3]);
    assert_eq!(
        run.records
            .iter()
            .filter(|l| l.starts_with("call seq="))
            .count(),
        3,
        "{:?}",
        run.records
    );
}
