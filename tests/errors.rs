//! Test 8: bad input gets a clear error that names the fix, a non-zero exit, and the target is
//! left untouched.

use scry_tests::scry::{Scry, run_scry};
use scry_tests::*;
use std::time::Duration;

fn fails_with(args: &[&str], needles: &[&str]) -> String {
    let (code, _, stderr) = run_scry(args, Duration::from_secs(30));
    let err = stderr.join("\n");
    assert_ne!(code, 0, "scry succeeded on bad input: {args:?}\n{err}");
    for n in needles {
        assert!(
            err.to_lowercase().contains(&n.to_lowercase()),
            "error for {args:?} does not mention {n:?}:\n{err}"
        );
    }
    err
}

fn untouched(target: &Target, bin: &str) {
    code_bytes_match_file(target.pid(), testbin(bin)).unwrap();
    assert_eq!(tracer_pid(target.pid()), 0);
    assert!(
        thread_states(target.pid())
            .iter()
            .all(|(_, s)| *s != 't' && *s != 'T')
    );
}

#[test]
fn a_nonexistent_pid() {
    fails_with(
        &["attach", "--pid", "999999999", "--log", "loop.c:1", "x"],
        &["no process with pid 999999999"],
    );
}

#[test]
fn a_process_without_debug_info() {
    require_ptrace();
    let target = Target::spawn("loop-nodebug", &["--interval-us", "1000"]);
    let loc = probe_location("loop.c", "process_order_body");
    fails_with(
        &[
            "attach",
            "--pid",
            &target.pid().to_string(),
            "--log",
            &loc,
            "x",
        ],
        &["no DWARF", "looked in", "-g"],
    );
    untouched(&target, "loop-nodebug");
    // Function probes still work from the symbol table, with register values.
    let mut scry = Scry::start(&[
        "attach",
        "--pid",
        &target.pid().to_string(),
        "--json",
        "--max-hits",
        "3",
        "--log",
        "process_order",
        "o={$rdi}",
    ]);
    assert_eq!(
        scry.wait(Duration::from_secs(20)).code(),
        Some(0),
        "{:?}",
        scry.stderr()
    );
    let hits = scry.json();
    assert_eq!(hits.len(), 3);
    assert!(
        hits.iter()
            .all(|h| h["values"]["$rdi"].as_u64().is_some_and(|v| v > 0x1000)),
        "{hits:?}"
    );
    untouched(&target, "loop-nodebug");
}

#[test]
fn a_fully_stripped_binary_takes_function_probes_from_dynsym() {
    require_ptrace();
    let target = Target::spawn("loop-stripped", &["--interval-us", "1000"]);
    let pid = target.pid().to_string();
    fails_with(
        &["attach", "--pid", &pid, "--log", "loop.c:10", "x"],
        &["no DWARF"],
    );
    fails_with(
        &["attach", "--pid", &pid, "--log", "process_order", "{o}"],
        &["no DWARF"],
    );
    let mut scry = Scry::start(&[
        "attach",
        "--pid",
        &pid,
        "--json",
        "--max-hits",
        "2",
        "--log",
        "process_order",
        "name={$rsi}",
    ]);
    assert_eq!(
        scry.wait(Duration::from_secs(20)).code(),
        Some(0),
        "{:?}",
        scry.stderr()
    );
    assert_eq!(scry.json().len(), 2);
    untouched(&target, "loop-stripped");
}

#[test]
fn a_line_with_no_code_names_the_nearest_lines() {
    require_ptrace();
    let target = Target::spawn("loop-O0", &["--interval-us", "1000"]);
    // Line 1 of loop.c is a comment.
    fails_with(
        &[
            "attach",
            "--pid",
            &target.pid().to_string(),
            "--log",
            "loop.c:1",
            "x",
        ],
        &["no code", "nearest"],
    );
    untouched(&target, "loop-O0");
}

#[test]
fn an_unknown_file_and_an_unknown_variable() {
    require_ptrace();
    let target = Target::spawn("loop-O0", &["--interval-us", "1000"]);
    let pid = target.pid().to_string();
    fails_with(
        &["attach", "--pid", &pid, "--log", "nosuchfile.c:10", "x"],
        &["no source file matching 'nosuchfile.c'"],
    );
    let loc = probe_location("loop.c", "process_order_body");
    fails_with(
        &["attach", "--pid", &pid, "--log", &loc, "{nosuchvar}"],
        &["nosuchvar", "in scope"],
    );
    fails_with(
        &["attach", "--pid", &pid, "--log", &loc, "{o->nosuchfield}"],
        &["nosuchfield"],
    );
    fails_with(
        &["attach", "--pid", &pid, "--log", &loc, "{unclosed"],
        &["column"],
    );
    untouched(&target, "loop-O0");
}

#[test]
fn a_process_already_traced_by_gdb() {
    require_ptrace();
    if std::process::Command::new("gdb")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("gdb is not installed: this test needs it (apt-get install gdb)");
    }
    let target = Target::spawn("loop-O0", &["--interval-us", "1000"]);
    let mut gdb = std::process::Command::new("gdb")
        .args([
            "-nx",
            "-batch",
            "-p",
            &target.pid().to_string(),
            "-ex",
            "shell sleep 8",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(15), || tracer_pid(target.pid()) != 0),
        "gdb did not attach"
    );
    let loc = probe_location("loop.c", "process_order_body");
    fails_with(
        &[
            "attach",
            "--pid",
            &target.pid().to_string(),
            "--log",
            &loc,
            "x",
        ],
        &["already traced by process", "gdb"],
    );
    let _ = gdb.kill();
    let _ = gdb.wait();
}
