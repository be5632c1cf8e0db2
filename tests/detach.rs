//! Test 6: detach (by --duration, and by SIGTERM to scry) leaves the target as if scry had
//! never been there: its code bytes equal the file's, no thread is stopped, it has no tracer,
//! and it keeps running.

use scry_tests::scry::Scry;
use scry_tests::*;
use std::time::Duration;

fn assert_untouched_and_running(target: &Target, bin: &str, rec: &std::path::Path) {
    code_bytes_match_file(target.pid(), testbin(bin))
        .unwrap_or_else(|e| panic!("code differs after detach: {e}"));
    assert_eq!(tracer_pid(target.pid()), 0, "still traced after detach");
    let states = thread_states(target.pid());
    assert!(
        states.iter().all(|(_, s)| *s != 't' && *s != 'T'),
        "a thread is stopped after detach: {states:?}"
    );
    let before = read_records(rec).len();
    assert!(
        wait_until(Duration::from_secs(5), || read_records(rec).len()
            >= before + 5),
        "the target stopped making progress after detach"
    );
}

#[test]
fn detach_by_duration_restores_everything() {
    require_ptrace();
    let dir = TempDir::new("detach-duration");
    let rec = dir.join("records");
    let target = Target::spawn(
        "threads-O0",
        &[
            "--workers",
            "8",
            "--runs",
            "1000000",
            "--calls",
            "50",
            "--record",
            rec.to_str().unwrap(),
        ],
    );
    let loc = probe_location("threads.c", "work_body");
    let mut scry = Scry::start(&[
        "attach",
        "--pid",
        &target.pid().to_string(),
        "--log",
        &loc,
        "w={worker}",
        "--duration",
        "1.5",
    ]);
    assert_eq!(
        scry.wait(Duration::from_secs(30)).code(),
        Some(0),
        "{:?}",
        scry.stderr()
    );
    assert!(
        scry.stdout().len() > 10,
        "too few hits: {}",
        scry.stdout().len()
    );
    let last = scry.stderr().join("\n");
    assert!(
        last.contains("duration reached") && last.contains("detached"),
        "{last}"
    );
    assert_untouched_and_running(&target, "threads-O0", &rec);
}

#[test]
fn detach_on_sigterm_sigint_sighup_to_scry_restores_everything() {
    require_ptrace();
    for (sig, name) in [
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGHUP, "SIGHUP"),
    ] {
        let dir = TempDir::new("detach-signal");
        let rec = dir.join("records");
        let target = Target::spawn(
            "loop-O2",
            &["--interval-us", "100", "--record", rec.to_str().unwrap()],
        );
        let loc = probe_location("loop.c", "process_order_body");
        let mut scry = Scry::start(&[
            "attach",
            "--pid",
            &target.pid().to_string(),
            "--log",
            &loc,
            "id={o->id}",
        ]);
        scry.wait_lines(20, Duration::from_secs(20));
        scry.signal(sig);
        assert_eq!(
            scry.wait(Duration::from_secs(10)).code(),
            Some(0),
            "{:?}",
            scry.stderr()
        );
        assert!(
            scry.stderr()
                .join("\n")
                .contains(&format!("{name} received")),
            "{:?}",
            scry.stderr()
        );
        assert_untouched_and_running(&target, "loop-O2", &rec);
    }
}

/// A bug in scry (an injected panic, on the engine's hit path or in the command's main loop)
/// still leaves the target as if scry had never been there.
#[test]
fn a_panic_in_scry_still_detaches_cleanly() {
    require_ptrace();
    for fault in ["engine-panic-at-trap:5", "cli-panic-at-hit:5"] {
        let dir = TempDir::new("detach-panic");
        let rec = dir.join("records");
        let target = Target::spawn(
            "threads-O0",
            &[
                "--workers",
                "8",
                "--runs",
                "1000000",
                "--calls",
                "50",
                "--record",
                rec.to_str().unwrap(),
            ],
        );
        let loc = probe_location("threads.c", "work_body");
        let mut scry = Scry::start_with_env(
            &[
                "attach",
                "--pid",
                &target.pid().to_string(),
                "--log",
                &loc,
                "w={worker}",
            ],
            &[("SCRY_FAULT", fault)],
        );
        let status = scry.wait(Duration::from_secs(20));
        assert_ne!(
            status.code(),
            Some(0),
            "{fault}: the injected fault did not happen: {:?}",
            scry.stderr()
        );
        assert!(
            scry.stderr().join("\n").contains("SCRY_FAULT"),
            "{fault}: {:?}",
            scry.stderr()
        );
        assert_untouched_and_running(&target, "threads-O0", &rec);
    }
}

#[test]
fn detach_at_max_hits_restores_everything() {
    require_ptrace();
    let dir = TempDir::new("detach-maxhits");
    let rec = dir.join("records");
    let target = Target::spawn(
        "threads-O2",
        &[
            "--workers",
            "8",
            "--runs",
            "1000000",
            "--calls",
            "50",
            "--record",
            rec.to_str().unwrap(),
        ],
    );
    let loc = probe_location("threads.c", "work_body");
    let mut scry = Scry::start(&[
        "attach",
        "--pid",
        &target.pid().to_string(),
        "--log",
        &loc,
        "w={worker}",
        "--max-hits",
        "7",
    ]);
    assert_eq!(
        scry.wait(Duration::from_secs(30)).code(),
        Some(0),
        "{:?}",
        scry.stderr()
    );
    assert_eq!(
        scry.stdout().len(),
        7,
        "exactly max-hits lines, even with 8 threads racing: {:?}",
        scry.stdout()
    );
    assert_untouched_and_running(&target, "threads-O2", &rec);
}
