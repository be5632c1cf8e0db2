//! Test 7: debug info found through the build-id directory (split off a stripped binary),
//! a refusal when the debug file belongs to another build, probes in a shared library linked
//! at startup, and in one dlopen'ed after attach (planted when it appears).

use scry_tests::scry::Scry;
use scry_tests::*;
use std::time::Duration;

#[test]
fn split_debug_info_is_found_by_build_id() {
    require_ptrace();
    let dir = TempDir::new("split");
    let rec = dir.join("records");
    let mut target = Target::spawn(
        "loop-split",
        &[
            "--iterations",
            "10",
            "--interval-us",
            "2000",
            "--record",
            rec.to_str().unwrap(),
            "--wait-stdin",
        ],
    );
    let loc = probe_location("loop.c", "process_order_body");
    let debug = debug_dir();
    let mut scry = Scry::start(&[
        "attach",
        "--pid",
        &target.pid().to_string(),
        "--json",
        "--debug-dir",
        debug.to_str().unwrap(),
        "--log",
        &loc,
        "qty={o->qty}",
    ]);
    scry.wait_stderr("printing hits", Duration::from_secs(20));
    target.send_stdin(b'g');
    assert!(target.wait_exit(Duration::from_secs(30)).is_some());
    scry.wait(Duration::from_secs(10));
    let recs: Vec<String> = read_records(&rec)
        .into_iter()
        .filter(|l| l.starts_with("call "))
        .collect();
    let hits = scry.json();
    assert_eq!(hits.len(), recs.len());
    for (h, r) in hits.iter().zip(&recs) {
        assert_eq!(h["values"]["o->qty"], kv_i64(r, "qty"));
    }
}

#[test]
fn a_debug_file_from_another_build_is_refused() {
    require_ptrace();
    let target = Target::spawn("loop-split", &["--interval-us", "1000"]);
    let loc = probe_location("loop.c", "process_order_body");
    let wrong = debug_wrong_dir();
    let (code, _, stderr) = scry::run_scry(
        &[
            "attach",
            "--pid",
            &target.pid().to_string(),
            "--debug-dir",
            wrong.to_str().unwrap(),
            "--log",
            &loc,
            "x",
        ],
        Duration::from_secs(20),
    );
    let err = stderr.join("\n");
    assert_ne!(code, 0);
    assert!(
        err.contains("build-id") && err.contains("does not belong"),
        "{err}"
    );
    code_bytes_match_file(target.pid(), testbin("loop-split")).unwrap();
    assert_eq!(tracer_pid(target.pid()), 0);
}

#[test]
fn probes_in_a_linked_library_and_in_one_dlopened_after_attach() {
    require_ptrace();
    let dir = TempDir::new("dlopen");
    let rec = dir.join("records");
    let plugin = lib_dir().join("libscryplugin.so");
    let mut target = Target::spawn(
        "dlopener-O0",
        &[
            "--interval-us",
            "2000",
            "--plugin",
            plugin.to_str().unwrap(),
            "--dlopen-on-stdin",
            "--record",
            rec.to_str().unwrap(),
        ],
    );
    let shared_loc = format!(
        "libscryshared.so:{}",
        probe_location("shared.c", "shared_body")
    );
    let plugin_loc = format!(
        "libscryplugin.so:{}",
        probe_location("plugin.c", "plugin_body")
    );
    let mut scry = Scry::start(&[
        "attach",
        "--pid",
        &target.pid().to_string(),
        "--json",
        "--log",
        &shared_loc,
        "shared {i}",
        "--log",
        &plugin_loc,
        "plugin {i}",
    ]);
    scry.wait_stderr("is pending", Duration::from_secs(20));
    scry.wait_stderr("printing hits", Duration::from_secs(5));
    scry.wait_lines(5, Duration::from_secs(10));
    assert!(
        scry.json()
            .iter()
            .all(|h| h["message"].as_str().unwrap().starts_with("shared "))
    );
    target.send_stdin(b'd');
    scry.wait_stderr("planted in", Duration::from_secs(10));
    assert!(
        wait_until(Duration::from_secs(10), || scry
            .json()
            .iter()
            .filter(|h| h["message"].as_str().unwrap().starts_with("plugin "))
            .count()
            >= 5),
        "no plugin hits after dlopen; stderr: {:?}",
        scry.stderr()
    );
    scry.signal(libc::SIGTERM);
    scry.wait(Duration::from_secs(10));
    // Every plugin call recorded before the detach was seen: the probe was in place before
    // the library's code first ran.
    let records = read_records(&rec);
    let first_plugin = records
        .iter()
        .find(|l| l.contains("fn=plugin"))
        .expect("the plugin never ran");
    let first_i = kv_i64(first_plugin, "i");
    let plugin_hits: Vec<i64> = scry
        .json()
        .iter()
        .filter(|h| h["message"].as_str().unwrap().starts_with("plugin "))
        .map(|h| h["values"]["i"].as_i64().unwrap())
        .collect();
    assert_eq!(
        plugin_hits.first(),
        Some(&first_i),
        "the first plugin call after dlopen was missed"
    );
    code_bytes_match_file(target.pid(), testbin("dlopener-O0")).unwrap();
    code_bytes_match_file(target.pid(), &plugin).unwrap();
    code_bytes_match_file(target.pid(), lib_dir().join("libscryshared.so")).unwrap();
}
