//! Conditions (`--if EXPR`): only the hits where the expression holds are reported; type errors
//! are refused when the probe is set, with the column and the fix; a condition that faults at a
//! hit is reported (rate-limited), never silently false, and the target is unharmed.

use scry_tests::scry::{Scry, logged_run, run_scry};
use scry_tests::*;
use std::time::Duration;

fn run_with_condition(bin: &str, cond: &str) -> (Vec<String>, Vec<serde_json::Value>, Vec<String>) {
    let loc = probe_location("loop.c", "process_order_body");
    let run = logged_run(
        bin,
        &["--iterations", "42", "--interval-us", "1000"],
        &[
            "--json",
            "--log",
            &loc,
            "id={o->id} qty={o->qty}",
            "--if",
            cond,
        ],
    );
    assert_eq!(run.code, Some(0), "{:?}", run.stderr);
    let records = run.calls().into_iter().cloned().collect();
    (records, run.hits, run.stderr)
}

#[test]
fn only_hits_where_the_condition_holds_are_reported() {
    for bin in ["loop-O0", "loop-O2"] {
        let (records, hits, stderr) =
            run_with_condition(bin, r#"o->qty > 4 && name == "bob" || o->id % 10 == 0"#);
        let expected: Vec<i64> = records
            .iter()
            .filter(|r| {
                (kv_i64(r, "qty") > 4 && parse_kv(r)["name"] == "bob") || kv_i64(r, "id") % 10 == 0
            })
            .map(|r| kv_i64(r, "id"))
            .collect();
        let got: Vec<i64> = hits
            .iter()
            .map(|h| h["values"]["o->id"].as_i64().unwrap_or(-1))
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(got, expected, "{bin}: {stderr:?}");
    }
}

#[test]
fn arithmetic_casts_ternaries_and_facts() {
    // ((qty * 3 + 1) % 4 == 0 ? 257 : 0) as unsigned char, and $hits counts executions.
    let (records, hits, _) = run_with_condition(
        "loop-O0",
        "(unsigned char)((o->qty * 3 + 1) % 4 == 0 ? 257 : 0) == 1 && $hits <= 12 && $pid > 0",
    );
    let expected: Vec<i64> = records
        .iter()
        .take(12)
        .filter(|r| (kv_i64(r, "qty") * 3 + 1) % 4 == 0)
        .map(|r| kv_i64(r, "id"))
        .collect();
    let got: Vec<i64> = hits
        .iter()
        .map(|h| h["values"]["o->id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn a_faulting_condition_is_reported_not_silently_false() {
    let (_, hits, stderr) = run_with_condition("loop-O0", "*(int *)0 == 1");
    assert!(hits.is_empty());
    let reports: Vec<&String> = stderr
        .iter()
        .filter(|l| l.contains("could not be evaluated"))
        .collect();
    assert_eq!(
        reports.len(),
        1,
        "one report per minute per probe: {stderr:?}"
    );
    assert!(
        reports[0].contains("0x0") && reports[0].contains("unreadable"),
        "{}",
        reports[0]
    );
}

#[test]
fn type_errors_are_refused_at_set_time_with_the_column_and_the_fix() {
    require_ptrace();
    let target = Target::spawn("loop-O0", &["--interval-us", "1000"]);
    let pid = target.pid().to_string();
    let loc = probe_location("loop.c", "process_order_body");
    for (cond, needles) in [
        (
            "o->qtty > 3",
            vec!["column 4", "no member 'qtty'", "members: id, qty"],
        ),
        ("o.qty > 3", vec!["use '->'"]),
        (
            "nosuch > 3",
            vec!["no variable named 'nosuch'", "in scope here", "counter"],
        ),
        ("name * 2", vec!["needs numbers"]),
        ("o->qty = 3", vec!["read-only", "'=='"]),
        ("process_order(o)", vec!["calls are not allowed"]),
        ("o->qty > ", vec!["operand"]),
        ("(struct nosuch *) o", vec!["no type named"]),
    ] {
        let (code, _, stderr) = run_scry(
            &["attach", "--pid", &pid, "--log", &loc, "x", "--if", cond],
            Duration::from_secs(20),
        );
        let err = stderr.join("\n");
        assert_ne!(code, 0, "{cond}: accepted");
        for n in needles {
            assert!(err.contains(n), "{cond}: error lacks {n:?}:\n{err}");
        }
        assert!(
            err.contains(cond.trim()),
            "the error quotes the expression:\n{err}"
        );
    }
    code_bytes_match_file(target.pid(), testbin("loop-O0")).unwrap();
    assert_eq!(tracer_pid(target.pid()), 0);
}

#[test]
fn template_holes_take_expressions_and_format_specs() {
    require_ptrace();
    let dir = TempDir::new("holes");
    let rec = dir.join("records");
    let mut target = Target::spawn(
        "loop-O0",
        &[
            "--iterations",
            "12",
            "--interval-us",
            "1000",
            "--record",
            rec.to_str().unwrap(),
            "--wait-stdin",
        ],
    );
    let loc = probe_location("loop.c", "process_order_body");
    let mut scry = Scry::start(&[
        "attach",
        "--pid",
        &target.pid().to_string(),
        "--log",
        &loc,
        "id={o->id:x} twice={o->qty * 2} big={o->qty > 3 ? 1 : 0} name={name:s} neg={-o->qty}",
    ]);
    scry.wait_stderr("printing hits", Duration::from_secs(20));
    target.send_stdin(b'g');
    assert!(
        target
            .wait_exit(Duration::from_secs(30))
            .is_some_and(|s| s.success())
    );
    assert_eq!(
        scry.wait(Duration::from_secs(10)).code(),
        Some(0),
        "{:?}",
        scry.stderr()
    );
    let records: Vec<String> = read_records(&rec)
        .into_iter()
        .filter(|l| l.starts_with("call "))
        .collect();
    let lines = scry.stdout();
    assert_eq!(lines.len(), records.len());
    for (line, r) in lines.iter().zip(&records) {
        let (id, qty, name) = (
            kv_i64(r, "id"),
            kv_i64(r, "qty"),
            parse_kv(r)["name"].clone(),
        );
        let want = format!(
            "id={id:#x} twice={} big={} name={name} neg={}",
            qty * 2,
            (qty > 3) as i32,
            -qty
        );
        assert!(line.ends_with(&want), "{line:?} should end with {want:?}");
    }
    // A typo in a hole is refused when the probe is set, pointing at it.
    let other = Target::spawn("loop-O0", &["--interval-us", "1000"]);
    let (code, _, stderr) = run_scry(
        &[
            "attach",
            "--pid",
            &other.pid().to_string(),
            "--log",
            &loc,
            "x={o->qtty + 1}",
        ],
        Duration::from_secs(20),
    );
    assert_ne!(code, 0);
    assert!(stderr.join("\n").contains("no member 'qtty'"), "{stderr:?}");
}
