//! Test 4: signals sent to the target while scry is attached (and its probe fires) arrive
//! exactly as without scry; group-stops from outside behave as without scry.

use scry_tests::scry::Scry;
use scry_tests::*;
use std::time::Duration;

#[test]
fn the_target_counts_exactly_the_signals_sent_to_it() {
    require_ptrace();
    let dir = TempDir::new("signals");
    let rec = dir.join("records");
    let mut target = Target::spawn("signals-O0", &["--record", rec.to_str().unwrap()]);
    let loc = probe_location("signals.c", "tick_body");
    let mut scry = Scry::start(&[
        "attach",
        "--pid",
        &target.pid().to_string(),
        "--log",
        &loc,
        "tick {i}",
    ]);
    scry.wait_stderr("printing hits", Duration::from_secs(20));
    scry.wait_lines(3, Duration::from_secs(10));
    // One at a time, spaced, so standard signals never coalesce (with or without scry).
    for _ in 0..25 {
        target.signal(libc::SIGUSR1);
        std::thread::sleep(Duration::from_millis(15));
    }
    for _ in 0..10 {
        target.signal(libc::SIGALRM);
        std::thread::sleep(Duration::from_millis(15));
    }
    // A stop from outside stops it as it would without scry, and SIGCONT resumes it.
    target.signal(libc::SIGSTOP);
    assert!(
        wait_until(Duration::from_secs(5), || thread_states(target.pid())
            .iter()
            .all(|(_, s)| *s == 't' || *s == 'T')),
        "SIGSTOP did not stop the target: {:?}",
        thread_states(target.pid())
    );
    // Lines of hits made before the stop may still be on their way (events reach stdout in
    // batches, a few ms late): let them arrive, then nothing more may come.
    std::thread::sleep(Duration::from_millis(100));
    let during = scry.stdout().len();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        scry.stdout().len(),
        during,
        "the probe fired while the target was stopped"
    );
    target.signal(libc::SIGCONT);
    scry.wait_lines(during + 3, Duration::from_secs(5));
    target.signal(libc::SIGTERM);
    assert!(
        target
            .wait_exit(Duration::from_secs(10))
            .is_some_and(|s| s.success())
    );
    assert_eq!(
        scry.wait(Duration::from_secs(10)).code(),
        Some(0),
        "{:?}",
        scry.stderr()
    );
    let counts = read_records(&rec)
        .into_iter()
        .find(|l| l.starts_with("counts "))
        .expect("no counts record");
    assert_eq!(kv_i64(&counts, "usr1"), 25, "{counts}");
    assert_eq!(kv_i64(&counts, "alrm"), 10, "{counts}");
}
