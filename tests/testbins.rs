//! Self-tests of the testbins and of the support library (no scry involved):
//! every program, run with small counts, records exactly what its header
//! comment promises; the build variants have the debug info layout they
//! claim; the probe markers sit on lines with line-table entries inside the
//! expected functions, at -O0 and at -O2; and the gdb side of the value oracle
//! (tests/support/gdb.rs) reads the documented names and values at marked
//! lines of loop.c, shapes.cpp and values.rs.

use scry_tests::elf::{self, Elf, SHT_DYNSYM, SHT_SYMTAB};
use scry_tests::*;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs testbin `name` with `args` plus `--record <tmp file>` to completion,
/// asserts it exits 0, and returns its records.
fn run_recorded(name: &str, args: &[&str]) -> Vec<String> {
    let dir = TempDir::new("rec");
    let rec = dir.join("records");
    let mut all: Vec<&str> = args.to_vec();
    let rec_str = rec.to_str().unwrap();
    all.extend(["--record", rec_str]);
    let mut t = Target::spawn(name, &all);
    let st = t
        .wait_exit(EXIT_TIMEOUT)
        .unwrap_or_else(|| panic!("{name} {all:?} did not exit within {EXIT_TIMEOUT:?}"));
    assert!(st.success(), "{name} {all:?} exited with {st}");
    read_records(&rec)
}

fn calls(records: &[String]) -> Vec<HashMap<String, String>> {
    records
        .iter()
        .filter(|l| l.starts_with("call "))
        .map(|l| parse_kv(l))
        .collect()
}

fn num(kv: &HashMap<String, String>, key: &str) -> i64 {
    kv.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no integer {key:?} in {kv:?}"))
}

fn monotonic_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

// ---------------------------------------------------------------------------
// Markers and line tables
// ---------------------------------------------------------------------------

/// (source file, marker, functions the marked line's code must lie in).
const PROBES: &[(&str, &str, &[&str])] = &[
    ("loop.c", "process_order_body", &["process_order"]),
    ("threads.c", "work_body", &["work"]),
    ("forker.c", "step_body", &["step"]),
    ("signals.c", "tick_body", &["tick"]),
    (
        "inline.c",
        "helper_body",
        &["site_one", "site_two", "site_three"],
    ),
    ("shared.c", "shared_body", &["shared_fn"]),
    ("plugin.c", "plugin_body", &["plugin_fn"]),
    ("execer.c", "before_exec_body", &["before_exec"]),
    ("shapes.cpp", "price_order_body", &["shop::price_order"]),
    ("shapes.cpp", "describe_body", &["geo::describe"]),
    ("shapes.cpp", "open_int_box_body", &["store::open_int_box"]),
    (
        "shapes.cpp",
        "open_text_box_body",
        &["store::open_text_box"],
    ),
    ("shapes.cpp", "inspect_body", &["report::inspect"]),
    ("values.rs", "text_body", &["values::text"]),
    ("values.rs", "options_body", &["values::options"]),
    ("values.rs", "results_body", &["values::results"]),
    ("values.rs", "enums_body", &["values::enums"]),
    ("values.rs", "pointers_body", &["values::pointers"]),
    ("values.rs", "nested_body", &["values::Record::nested"]),
];

#[test]
fn probe_line_finds_each_marker_on_a_code_line() {
    let mut seen = Vec::new();
    for (file, marker, _) in PROBES {
        let line = probe_line(file, marker);
        let text = std::fs::read_to_string(source_path(file)).unwrap();
        let l = text.lines().nth(line as usize - 1).unwrap();
        assert!(
            l.ends_with(&format!("// @probe {marker}")),
            "{file}:{line}: {l}"
        );
        assert!(
            l.contains("++;")
                || l.contains("__atomic_add_fetch(")
                || l.contains(".fetch_add(1, Relaxed);"),
            "{file}:{line} has no counter increment: {l}"
        );
        assert_eq!(probe_location(file, marker), format!("{file}:{line}"));
        seen.push((file, line));
    }
    assert!(
        seen.iter().all(|(_, l)| *l > 20),
        "markers are below the header comments"
    );
}

#[test]
#[should_panic(expected = "no `// @probe no_such_marker` marker")]
fn probe_line_panics_on_unknown_marker() {
    probe_line("loop.c", "no_such_marker");
}

#[test]
#[should_panic(expected = "no testbin named")]
fn testbin_panics_on_unknown_name() {
    testbin("no-such-program");
}

/// `(address, is_stmt)` of every line-table row for `file:line` in `bin`,
/// from `objdump --dwarf=decodedline`.
fn line_rows(bin: &Path, file: &str, line: u32) -> Vec<(u64, bool)> {
    let out = std::process::Command::new("objdump")
        .arg("--dwarf=decodedline")
        .arg(bin)
        .output()
        .expect("run objdump");
    assert!(out.status.success(), "objdump failed on {}", bin.display());
    let line_s = line.to_string();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            if t.len() >= 3 && t[0] == file && t[1] == line_s {
                let addr = u64::from_str_radix(t[2].trim_start_matches("0x"), 16).ok()?;
                Some((addr, *t.last().unwrap() == "x"))
            } else {
                None
            }
        })
        .collect()
}

/// The binaries built from testbin source `file`.
fn bins_of(file: &str) -> Vec<String> {
    let prog = file
        .trim_end_matches(".c")
        .trim_end_matches(".cpp")
        .trim_end_matches(".rs");
    let mut bins = Vec::new();
    match prog {
        "shared" | "plugin" => bins.push(format!("{}/libscry{prog}.so", lib_dir().display())),
        "execer" => bins.push(testbin("execer-O0").display().to_string()),
        _ => {
            for opt in ["O0", "O2"] {
                bins.push(testbin(&format!("{prog}-{opt}")).display().to_string());
            }
        }
    }
    match prog {
        "loop" => bins.push(testbin("loop-O0-nopie").display().to_string()),
        "threads" => bins.push(testbin("threads-O2-nopie").display().to_string()),
        _ => {}
    }
    bins
}

#[test]
fn marked_lines_have_statements_inside_the_expected_functions() {
    for (file, marker, funcs) in PROBES {
        for bin in bins_of(file) {
            let line = probe_line(file, marker);
            let rows = line_rows(Path::new(&bin), file, line);
            let stmts: Vec<u64> = rows.iter().filter(|r| r.1).map(|r| r.0).collect();
            assert!(
                !stmts.is_empty(),
                "{bin}: no is_stmt row for {file}:{line} ({rows:x?})"
            );
            let elf = Elf::open(Path::new(&bin)).unwrap();
            let ranges: Vec<(&str, u64, u64)> = funcs
                .iter()
                .map(|f| {
                    let s = elf
                        .function_symbol(f)
                        .unwrap_or_else(|| panic!("{bin}: no symbol {f}"));
                    (*f, s.value, s.value + s.size)
                })
                .collect();
            for a in &stmts {
                assert!(
                    ranges.iter().any(|(_, lo, hi)| (lo..hi).contains(&a)),
                    "{bin}: statement of {file}:{line} at {a:#x} is outside {ranges:x?}"
                );
            }
            // Every function (each inlined copy, for helper_body) has the line.
            for (f, lo, hi) in &ranges {
                assert!(
                    stmts.iter().any(|a| (lo..hi).contains(&a)),
                    "{bin}: {f} has no statement of {file}:{line}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// loop
// ---------------------------------------------------------------------------

const LOOP_VARIANTS: &[&str] = &[
    "loop-O0",
    "loop-O2",
    "loop-O0-nopie",
    "loop-split",
    "loop-nodebug",
    "loop-stripped",
];

#[test]
fn loop_records_every_call_with_the_documented_values() {
    let names = ["alice", "bob", "carol"];
    for v in LOOP_VARIANTS {
        let recs = run_recorded(v, &["--iterations", "20", "--interval-us", "100"]);
        let c = calls(&recs);
        assert_eq!(c.len(), 20, "{v}: {recs:?}");
        assert_eq!(recs.len(), 20, "{v}: only call records expected: {recs:?}");
        for (i, kv) in c.iter().enumerate() {
            let i = i as i64;
            assert_eq!(num(kv, "seq"), i, "{v}");
            assert_eq!(num(kv, "id"), i, "{v}");
            assert_eq!(num(kv, "qty"), i % 7 + 1, "{v}");
            assert_eq!(kv["name"], names[i as usize % 3], "{v}");
        }
    }
}

#[test]
fn loop_wait_stdin_holds_the_work_until_a_byte_arrives() {
    let dir = TempDir::new("wait");
    let rec = dir.join("rec");
    let mut t = Target::spawn(
        "loop-O2",
        &[
            "--wait-stdin",
            "--iterations",
            "5",
            "--record",
            rec.to_str().unwrap(),
        ],
    );
    std::thread::sleep(Duration::from_millis(150));
    assert!(read_records(&rec).is_empty(), "ran before the stdin byte");
    assert_eq!(thread_states(t.pid()), vec![(t.pid(), 'S')]);
    assert_eq!(tracer_pid(t.pid()), 0);
    t.send_stdin(b'x');
    let st = t.wait_exit(EXIT_TIMEOUT).expect("loop exits");
    assert!(st.success());
    assert_eq!(calls(&read_records(&rec)).len(), 5);
    assert_eq!(t.stdout(), vec![format!("ready pid={}", t.pid())]);
}

#[test]
fn loop_heartbeat_reports_a_stall() {
    let dir = TempDir::new("hb");
    let hb = dir.join("hb");
    let t = Target::spawn("loop-O2", &["--heartbeat", hb.to_str().unwrap()]);
    std::thread::sleep(Duration::from_millis(50));
    let stop_ns = monotonic_ns();
    t.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(120));
    let cont_ns = monotonic_ns();
    t.signal(libc::SIGCONT);
    let found = wait_until(Duration::from_secs(5), || {
        read_records(&hb)
            .iter()
            .any(|l| kv_i64(l, "gap_us") >= 100_000)
    });
    assert!(found, "no stall of >= 100 ms: {:?}", read_records(&hb));
    for l in read_records(&hb) {
        assert!(l.starts_with("stall "), "{l}");
        assert!(
            kv_i64(&l, "gap_us") > 1300,
            "{l}: stalls are gaps > interval + 300 us"
        );
    }
    let big = read_records(&hb)
        .into_iter()
        .find(|l| kv_i64(l, "gap_us") >= 100_000)
        .unwrap();
    let at = kv_i64(&big, "at_ns");
    assert!(
        at >= cont_ns && at < cont_ns + 1_000_000_000,
        "{big}: at_ns vs SIGCONT at {cont_ns}"
    );
    let gap_ns = kv_i64(&big, "gap_us") * 1000;
    assert!(
        at - gap_ns <= stop_ns + 50_000_000,
        "{big}: the gap must cover the stop at {stop_ns}"
    );
}

#[test]
fn code_bytes_match_file_accepts_clean_code_and_reports_a_patched_byte() {
    require_ptrace();
    for v in ["loop-O0", "loop-O0-nopie"] {
        let exe = testbin(v);
        let t = Target::spawn(v, &["--wait-stdin"]);
        assert_eq!(code_bytes_match_file(t.pid(), &exe), Ok(()));
        assert!(code_bytes_match_file(t.pid(), testbin("loop-O2")).is_err());

        // Plant an int3 at process_order through /proc/PID/mem (the target
        // is blocked in read(), so it never runs it).
        let elf = Elf::open(&exe).unwrap();
        let sym = elf.symbol("process_order").unwrap();
        let bias = if elf.e_type() == 3 {
            let exe_canon = exe.canonicalize().unwrap();
            let m = maps(t.pid())
                .into_iter()
                .find(|m| m.offset == 0 && Path::new(&m.path) == exe_canon)
                .expect("a mapping of the executable at offset 0");
            m.start
        } else {
            0
        };
        let addr = bias + sym.value;
        let mem = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/{}/mem", t.pid()))
            .unwrap();
        use std::os::unix::fs::FileExt;
        mem.write_all_at(&[0xcc], addr).unwrap();
        let err = code_bytes_match_file(t.pid(), &exe).unwrap_err();
        assert!(err.contains(&format!("{addr:#x}")), "{v}: {err}");
        assert!(err.contains("memory has 0xcc"), "{v}: {err}");
    }
}

// ---------------------------------------------------------------------------
// threads
// ---------------------------------------------------------------------------

#[test]
fn threads_every_worker_makes_all_its_calls() {
    for v in ["threads-O0", "threads-O2", "threads-O2-nopie"] {
        let recs = run_recorded(v, &["--workers", "4", "--calls", "10", "--runs", "12"]);
        assert_eq!(recs.last().map(String::as_str), Some("total 120"), "{v}");
        let c = calls(&recs);
        assert_eq!(c.len(), 120, "{v}");
        let mut per_worker: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        let mut tids: BTreeMap<i64, std::collections::BTreeSet<i64>> = BTreeMap::new();
        for kv in &c {
            per_worker
                .entry(num(kv, "worker"))
                .or_default()
                .push(num(kv, "seq"));
            tids.entry(num(kv, "worker"))
                .or_default()
                .insert(num(kv, "tid"));
        }
        assert_eq!(
            per_worker.keys().copied().collect::<Vec<_>>(),
            (0..12).collect::<Vec<_>>()
        );
        for (w, seqs) in &per_worker {
            assert_eq!(seqs, &(0..10).collect::<Vec<_>>(), "{v}: worker {w}");
            assert_eq!(tids[w].len(), 1, "{v}: worker {w} ran on one thread");
        }
    }
}

#[test]
fn threads_come_and_go_with_parenthesised_names() {
    let t = Target::spawn(
        "threads-O2",
        &[
            "--wait-stdin",
            "--workers",
            "3",
            "--calls",
            "100000",
            "--runs",
            "3",
        ],
    );
    assert_eq!(thread_states(t.pid()).len(), 1);
    let mut t = t;
    t.send_stdin(b'g');
    assert!(
        wait_until(Duration::from_secs(5), || thread_states(t.pid()).len() == 4),
        "{:?}",
        thread_states(t.pid())
    );
    for (tid, st) in thread_states(t.pid()) {
        assert!("RSD".contains(st), "thread {tid} in state {st}");
    }
    // Each worker names itself right after it starts.
    let names = || {
        let mut names: Vec<String> = thread_states(t.pid())
            .iter()
            .filter_map(|(tid, _)| {
                std::fs::read_to_string(format!("/proc/{}/task/{tid}/comm", t.pid())).ok()
            })
            .map(|c| c.trim().to_string())
            .collect();
        names.sort();
        names
    };
    let expected = ["threads-O2", "work (0)", "work (1)", "work (2)"];
    assert!(
        wait_until(Duration::from_secs(5), || names() == expected),
        "{:?}",
        names()
    );
}

// ---------------------------------------------------------------------------
// forker
// ---------------------------------------------------------------------------

#[test]
fn forker_children_call_step_and_all_exit_zero() {
    for v in ["forker-O0", "forker-O2"] {
        let dir = TempDir::new("fork");
        let rec = dir.join("rec");
        let mut t = Target::spawn(
            v,
            &[
                "--iterations",
                "20",
                "--children",
                "4",
                "--interval-us",
                "200",
                "--record",
                rec.to_str().unwrap(),
            ],
        );
        let parent = t.pid() as i64;
        assert!(t.wait_exit(EXIT_TIMEOUT).expect("forker exits").success());
        let recs = read_records(&rec);

        let c = calls(&recs);
        let parent_is: Vec<i64> = c
            .iter()
            .filter(|kv| num(kv, "who") == 0)
            .inspect(|kv| assert_eq!(num(kv, "pid"), parent, "{v}"))
            .map(|kv| num(kv, "i"))
            .collect();
        assert_eq!(parent_is, (0..20).collect::<Vec<_>>(), "{v}");

        let children: Vec<HashMap<String, String>> = recs
            .iter()
            .filter(|l| l.starts_with("child "))
            .map(|l| parse_kv(l))
            .collect();
        let kinds: Vec<&str> = children.iter().map(|kv| kv["kind"].as_str()).collect();
        assert_eq!(
            kinds.iter().filter(|k| **k == "fork").count(),
            4,
            "{v}: {recs:?}"
        );
        assert_eq!(kinds.iter().filter(|k| **k == "spawn").count(), 1, "{v}");
        assert_eq!(kinds.iter().filter(|k| **k == "vfork").count(), 1, "{v}");
        for kv in &children {
            assert_eq!(num(kv, "status"), 0, "{v}: {kv:?}");
            assert_ne!(num(kv, "pid"), parent);
        }
        for kv in children.iter().filter(|kv| kv["kind"] == "fork") {
            let pid = num(kv, "pid");
            let js: Vec<i64> = c
                .iter()
                .filter(|c| num(c, "who") == 1 && num(c, "pid") == pid)
                .map(|c| num(c, "i"))
                .collect();
            assert_eq!(js, vec![0, 1, 2, 3, 4], "{v}: child {pid}");
        }
        assert_eq!(c.iter().filter(|kv| num(kv, "who") == 1).count(), 20, "{v}");
    }
}

// ---------------------------------------------------------------------------
// signals
// ---------------------------------------------------------------------------

#[test]
fn signals_counts_every_sigusr1_and_stops_on_sigterm() {
    for v in ["signals-O0", "signals-O2"] {
        let dir = TempDir::new("sig");
        let rec = dir.join("rec");
        let mut t = Target::spawn(v, &["--record", rec.to_str().unwrap()]);
        let usr1_bit = 1u64 << (libc::SIGUSR1 - 1);
        for _ in 0..10 {
            std::thread::sleep(Duration::from_millis(20));
            t.signal(libc::SIGUSR1);
            // Sent one at a time: the next only once this one was delivered
            // (two pending SIGUSR1s would merge into one).
            assert!(
                wait_until(Duration::from_secs(5), || pending_signals(t.pid())
                    & usr1_bit
                    == 0),
                "{v}: SIGUSR1 stays pending"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
        t.signal(libc::SIGTERM);
        assert!(
            t.wait_exit(EXIT_TIMEOUT)
                .expect("exits on SIGTERM")
                .success()
        );
        let recs = read_records(&rec);
        assert_eq!(recs.len(), 1, "{v}: {recs:?}");
        assert!(recs[0].starts_with("counts "), "{v}: {recs:?}");
        assert_eq!(kv_i64(&recs[0], "usr1"), 10, "{v}: {recs:?}");
        assert_eq!(kv_i64(&recs[0], "alrm"), 0, "{v}: {recs:?}");
        assert!(
            kv_i64(&recs[0], "ticks") >= 50,
            "{v}: ~220 ms of 1 ms ticks: {recs:?}"
        );
    }
}

#[test]
fn signals_itimer_and_tick_records() {
    for v in ["signals-O0", "signals-O2"] {
        let recs = run_recorded(
            v,
            &["--itimer-ms", "5", "--iterations", "100", "--record-ticks"],
        );
        let (ticks, rest): (Vec<&String>, Vec<&String>) =
            recs.iter().partition(|l| l.starts_with("tick "));
        let is: Vec<i64> = ticks.iter().map(|l| kv_i64(l, "i")).collect();
        assert_eq!(is, (0..100).collect::<Vec<_>>(), "{v}");
        assert_eq!(rest.len(), 1, "{v}: {rest:?}");
        assert_eq!(kv_i64(rest[0], "ticks"), 100, "{v}");
        assert_eq!(kv_i64(rest[0], "usr1"), 0, "{v}");
        // 100 ticks of >= 1 ms each take >= 100 ms: at least ~20 alarms of 5 ms.
        assert!(kv_i64(rest[0], "alrm") >= 10, "{v}: {rest:?}");
    }
}

// ---------------------------------------------------------------------------
// dlopener
// ---------------------------------------------------------------------------

fn is_mapped(pid: i32, file: &str) -> bool {
    maps(pid).iter().any(|m| m.path.ends_with(file))
}

#[test]
fn dlopener_loads_the_plugin_when_a_byte_arrives() {
    for v in ["dlopener-O0", "dlopener-O2"] {
        let dir = TempDir::new("dl");
        let rec = dir.join("rec");
        let mut cmd = std::process::Command::new(testbin(v));
        cmd.args(["--dlopen-on-stdin", "--record", rec.to_str().unwrap()])
            .env_remove("LD_LIBRARY_PATH");
        let mut t = Target::from_command(cmd, v);
        let shared_path = lib_dir().join("libscryshared.so").canonicalize().unwrap();
        let shared_str = shared_path.to_str().unwrap();
        assert!(
            maps(t.pid()).iter().any(|m| m.path == shared_str),
            "{v}: shared lib via rpath"
        );
        assert!(wait_until(Duration::from_secs(5), || calls(&read_records(
            &rec
        ))
        .len()
            >= 5));
        assert!(
            !is_mapped(t.pid(), "/libscryplugin.so"),
            "{v}: plugin loaded too early"
        );

        t.send_stdin(b'1');
        let plugin_calls = || {
            calls(&read_records(&rec))
                .iter()
                .filter(|kv| kv["fn"] == "plugin")
                .count()
        };
        assert!(
            wait_until(Duration::from_secs(5), || plugin_calls() >= 5),
            "{v}"
        );
        assert!(is_mapped(t.pid(), "/libscryplugin.so"), "{v}");
        t.kill();

        let recs = read_records(&rec);
        let at = recs
            .iter()
            .position(|l| l == "dlopened")
            .expect("dlopened record");
        assert_eq!(recs.iter().filter(|l| *l == "dlopened").count(), 1);
        let before = calls(&recs[..at]);
        let after = calls(&recs[at + 1..]);
        assert!(before.iter().all(|kv| kv["fn"] == "shared"), "{v}");
        let shared: Vec<i64> = calls(&recs)
            .iter()
            .filter(|kv| kv["fn"] == "shared")
            .map(|kv| num(kv, "i"))
            .collect();
        assert_eq!(shared, (0..shared.len() as i64).collect::<Vec<_>>(), "{v}");
        let plugin: Vec<i64> = after
            .iter()
            .filter(|kv| kv["fn"] == "plugin")
            .map(|kv| num(kv, "i"))
            .collect();
        let first = before.len() as i64; // the iteration that loaded the plugin
        assert_eq!(
            plugin,
            (first..first + plugin.len() as i64).collect::<Vec<_>>(),
            "{v}"
        );
    }
}

#[test]
fn dlopener_dlopen_at_an_iteration() {
    let recs = run_recorded("dlopener-O2", &["--dlopen-at", "3", "--iterations", "6"]);
    assert_eq!(
        recs,
        [
            "call fn=shared i=0",
            "call fn=shared i=1",
            "call fn=shared i=2",
            "dlopened",
            "call fn=shared i=3",
            "call fn=plugin i=3",
            "call fn=shared i=4",
            "call fn=plugin i=4",
            "call fn=shared i=5",
            "call fn=plugin i=5",
        ]
    );
}

// ---------------------------------------------------------------------------
// inline
// ---------------------------------------------------------------------------

#[test]
fn inline_helper_runs_six_times_per_iteration() {
    for v in ["inline-O0", "inline-O2"] {
        let recs = run_recorded(v, &["--iterations", "10", "--interval-us", "100"]);
        assert_eq!(recs.last().map(String::as_str), Some("total 60"), "{v}");
        let c = calls(&recs);
        assert_eq!(c.len(), 60, "{v}");
        let mut by_site: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for kv in &c {
            by_site
                .entry(num(kv, "site"))
                .or_default()
                .push(num(kv, "x"));
        }
        let expect = |f: &dyn Fn(i64) -> Vec<i64>| (0..10).flat_map(f).collect::<Vec<i64>>();
        assert_eq!(by_site[&1], expect(&|i| vec![i]), "{v}");
        assert_eq!(by_site[&2], expect(&|i| vec![2 * i, 2 * (i + 1)]), "{v}");
        assert_eq!(
            by_site[&3],
            expect(&|i| vec![3 * i, 3 * (i + 1), 3 * (i + 2)]),
            "{v}"
        );
        assert_eq!(by_site.len(), 3, "{v}");
    }
}

// ---------------------------------------------------------------------------
// execer
// ---------------------------------------------------------------------------

/// Checks execer's records: `calls` lines `call i=<i> pid=<pid>`, then
/// `exec`, then what the exec'd program recorded (returned).
fn execer_records_before_exec(recs: &[String], calls: i64, pid: i64) -> Vec<String> {
    let at = recs
        .iter()
        .position(|l| l == "exec")
        .unwrap_or_else(|| panic!("no exec record: {recs:?}"));
    let before: Vec<HashMap<String, String>> = recs[..at].iter().map(|l| parse_kv(l)).collect();
    assert!(
        recs[..at].iter().all(|l| l.starts_with("call i=")),
        "{recs:?}"
    );
    assert_eq!(
        before.iter().map(|kv| num(kv, "i")).collect::<Vec<_>>(),
        (0..calls).collect::<Vec<_>>(),
        "{recs:?}"
    );
    assert!(before.iter().all(|kv| num(kv, "pid") == pid), "{recs:?}");
    assert_eq!(recs.iter().filter(|l| *l == "exec").count(), 1);
    recs[at + 1..].to_vec()
}

#[test]
fn execer_execs_loop_by_default_which_records_into_the_same_file() {
    let dir = TempDir::new("exec");
    let rec = dir.join("rec");
    let mut t = Target::spawn(
        "execer-O0",
        &["--interval-us", "100", "--record", rec.to_str().unwrap()],
    );
    let pid = t.pid();
    assert!(t.wait_exit(EXIT_TIMEOUT).expect("execer exits").success());
    let recs = read_records(&rec);
    let after = execer_records_before_exec(&recs, 5, pid as i64);
    assert_eq!(
        after,
        [
            "call seq=0 id=0 qty=1 name=alice",
            "call seq=1 id=1 qty=2 name=bob",
            "call seq=2 id=2 qty=3 name=carol",
        ],
        "loop-O0 --iterations 3 after the exec: {recs:?}"
    );
    // Both images printed their ready line, under the same pid.
    let ready = format!("ready pid={pid}");
    assert!(
        wait_until(Duration::from_secs(5), || t.stdout().len() == 2),
        "{:?}",
        t.stdout()
    );
    assert_eq!(t.stdout(), [ready.clone(), ready]);

    let e = Elf::open(&testbin("execer-O0")).unwrap();
    assert_eq!(e.e_type(), 3, "execer-O0 is PIE");
    assert!(e.has_section_data(".debug_info"));
}

#[test]
fn execer_waits_for_stdin_then_execs_the_given_program() {
    let dir = TempDir::new("exec");
    let rec = dir.join("rec");
    let inline = testbin("inline-O2");
    let mut t = Target::spawn(
        "execer-O0",
        &[
            "--wait-stdin",
            "--iterations",
            "2",
            "--exec",
            inline.to_str().unwrap(),
            "--record",
            rec.to_str().unwrap(),
        ],
    );
    let pid = t.pid();
    std::thread::sleep(Duration::from_millis(100));
    assert!(read_records(&rec).is_empty(), "ran before the stdin byte");
    t.send_stdin(b'x');
    assert!(t.wait_exit(EXIT_TIMEOUT).expect("execer exits").success());
    let recs = read_records(&rec);
    let after = execer_records_before_exec(&recs, 2, pid as i64);
    // inline --iterations 3: 6 helper calls per iteration, then the total.
    assert_eq!(calls(&after).len(), 18, "{recs:?}");
    assert!(
        calls(&after).iter().all(|kv| kv.contains_key("site")),
        "{recs:?}"
    );
    assert_eq!(
        after.last().map(String::as_str),
        Some("total 18"),
        "{recs:?}"
    );
}

// ---------------------------------------------------------------------------
// Build variants: PIE, split debug info, no debug info, stripped
// ---------------------------------------------------------------------------

#[test]
fn pie_and_nopie_variants() {
    for p in ["loop", "threads", "forker", "signals", "dlopener", "inline"] {
        for o in ["O0", "O2"] {
            let e = Elf::open(&testbin(&format!("{p}-{o}"))).unwrap();
            assert_eq!(e.e_type(), 3, "{p}-{o} is PIE");
            assert!(e.has_section_data(".debug_info"), "{p}-{o} has -g");
            assert!(e.build_id().is_some(), "{p}-{o} has a build-id");
        }
    }
    for v in ["loop-O0-nopie", "threads-O2-nopie"] {
        let e = Elf::open(&testbin(v)).unwrap();
        assert_eq!(e.e_type(), 2, "{v} is ET_EXEC");
        assert!(e.has_section_data(".debug_info"), "{v}");
    }
    for l in ["libscryshared.so", "libscryplugin.so"] {
        let e = Elf::open(&lib_dir().join(l)).unwrap();
        assert_eq!(e.e_type(), 3);
        assert!(e.has_section_data(".debug_info"), "{l}");
    }
}

#[test]
fn loop_split_debug_info_is_found_by_build_id_only() {
    let bin = Elf::open(&testbin("loop-split")).unwrap();
    assert!(
        !bin.has_section_data(".debug_info"),
        "loop-split still has .debug_info"
    );
    assert!(!bin.has_section_data(".debug_line"));
    assert!(bin.symbol("process_order").is_some(), ".symtab kept");
    let id = bin.build_id_hex().expect("loop-split has a build-id");

    let dbg_path = elf::build_id_debug_path(&debug_dir(), &id);
    assert!(dbg_path.starts_with(debug_dir().join(".build-id")));
    let dbg = Elf::open(&dbg_path).expect("build-id debug file exists");
    assert!(dbg.has_section_data(".debug_info"));
    assert!(dbg.has_section_data(".debug_line"));
    assert_eq!(dbg.build_id_hex().as_deref(), Some(id.as_str()));
    assert_eq!(
        dbg.symbol("process_order").map(|s| s.value),
        bin.symbol("process_order").map(|s| s.value)
    );

    let (name, crc) = bin.debuglink().expect(".gnu_debuglink");
    assert_eq!(name, "loop-split.debug");
    assert_eq!(
        crc,
        elf::crc32(&dbg.data),
        "debuglink CRC is the debug file's"
    );
    assert!(
        !testbin("loop-split").with_file_name(&name).exists(),
        "no debug file beside the binary"
    );

    let wrong = Elf::open(&elf::build_id_debug_path(&debug_wrong_dir(), &id))
        .expect("debug-wrong holds a file at loop-split's build-id path");
    assert!(wrong.has_section_data(".debug_info"));
    let wrong_id = wrong.build_id_hex().unwrap();
    assert_ne!(
        wrong_id, id,
        "the wrong debug file comes from a different build"
    );
    assert_ne!(
        wrong.symbol("process_order").map(|s| s.value),
        bin.symbol("process_order").map(|s| s.value),
        "the wrong build has its code at other addresses"
    );
}

#[test]
fn loop_nodebug_and_stripped() {
    let nd = Elf::open(&testbin("loop-nodebug")).unwrap();
    assert!(nd.section(".debug_info").is_none());
    assert!(nd.section(".debug_line").is_none());
    assert!(
        nd.symbols(SHT_SYMTAB)
            .iter()
            .any(|s| s.name == "process_order")
    );

    let st = Elf::open(&testbin("loop-stripped")).unwrap();
    assert!(st.section(".debug_info").is_none());
    assert!(
        st.section(".symtab").is_none(),
        "strip --strip-all removes .symtab"
    );
    let dynsym = st.symbols(SHT_DYNSYM);
    let po = dynsym
        .iter()
        .find(|s| s.name == "process_order")
        .expect("process_order in .dynsym (-rdynamic)");
    assert!(po.value != 0 && po.size > 0);
    assert!(dynsym.iter().any(|s| s.name == "global_counter"));
}

// ---------------------------------------------------------------------------
// Support library
// ---------------------------------------------------------------------------

#[test]
fn ptrace_is_usable() {
    require_ptrace();
}

#[test]
fn target_drop_kills_and_reaps() {
    let t = Target::spawn("loop-O0", &["--interval-us", "1000"]);
    let pid = t.pid();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    drop(t);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "process {pid} left behind"
    );
}

#[test]
fn temp_dir_is_unique_and_removed_on_drop() {
    let a = TempDir::new("t");
    let b = TempDir::new("t");
    assert_ne!(a.path(), b.path());
    std::fs::write(a.join("f"), "x").unwrap();
    let p = a.path().to_path_buf();
    drop(a);
    assert!(!p.exists());
    assert!(b.path().is_dir());
}

#[test]
fn testbins_layout() {
    assert!(testbins_dir().is_absolute());
    assert!(source_dir().join("loop.c").is_file());
    for n in [
        "loop-O0",
        "loop-split",
        "threads-O2-nopie",
        "loop-stripped",
        "loop-nodebug",
        "shapes-O0",
        "shapes-O2",
        "values-O0",
        "values-O2",
    ] {
        assert!(testbin(n).is_file());
    }
    assert!(lib_dir().join("libscryshared.so").is_file());
    assert!(lib_dir().join("libscryplugin.so").is_file());
    assert!(debug_dir().join(".build-id").is_dir());
    assert!(debug_wrong_dir().join(".build-id").is_dir());
}

// ---------------------------------------------------------------------------
// shapes (C++) and values (Rust)
// ---------------------------------------------------------------------------

/// The records shapes.cpp documents for iterations 0..n.
fn shapes_expected(n: i64) -> Vec<String> {
    let customers = ["alice", "bob", "maximilian-alexander-the-third"];
    let shapes = [
        (1, "rect", 12.0, "0,0"),
        (2, "square", 6.25, "1,2"),
        (3, "triangle", 12.5, "-1,5"),
    ];
    let mut out = Vec::new();
    for s in 0..n {
        let qty = s % 5 + 1;
        let price = 2.5 + s as f64;
        let total = qty as f64 * price;
        let c = customers[(s % 3) as usize];
        out.push(format!(
            "order seq={s} id={s} qty={qty} price={price} customer={c} counter={s} total={total}"
        ));
        let (id, kind, area, origin) = shapes[(s % 3) as usize];
        out.push(format!(
            "shape seq={s} id={id} kind={kind} name={kind} area={area} origin={origin}"
        ));
        let tag = s % 4;
        out.push(format!(
            "box seq={s} type=int value={} tag={tag} weight={}",
            10 * s,
            2 * tag + s
        ));
        let tag = s % 4 + 100;
        out.push(format!(
            "box seq={s} type=string value=item-{s} tag={tag} weight={}",
            2 * tag + s
        ));
        let nums: Vec<String> = (0..s % 3 + 2).map(|i| (10 * i + s).to_string()).collect();
        let codes = 3 + s % 2;
        let total = nums.len() as i64 + 3 + 3 + codes;
        out.push(format!(
            "containers seq={s} greeting=hello banner=containers-of-iteration-{s} nums={} \
             nums_size={} words=alpha,beta,gamma-delta-epsilon-zeta \
             ages=alice:{},bob:25,carol:41 codes_size={codes} owned={}:square shared=7:2 \
             total={total}",
            nums.join(","),
            nums.len(),
            30 + s,
            10 + s
        ));
    }
    out
}

/// The records values.rs documents for iterations 0..n.
fn values_expected(n: i64) -> Vec<String> {
    let names = ["alice", "bob", "carol"];
    let corners: [(i64, i64); 4] = [(0, 0), (1, 0), (1, 1), (0, 1)];
    let bytes = b"scry";
    let mut out = Vec::new();
    for s in 0..n {
        let name = names[(s % 3) as usize];
        let nums: Vec<i64> = (0..s % 3 + 2).map(|k| 10 * k + s).collect();
        let b: Vec<String> = bytes[..(s % 4 + 1) as usize]
            .iter()
            .map(|b| b.to_string())
            .collect();
        out.push(format!(
            "text seq={s} owned=owned-{s} name={name} nums={} bytes={} total={}",
            nums.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(","),
            b.join(","),
            nums.iter().sum::<i64>()
        ));
        let c = corners[(s % 4) as usize];
        let found = if s % 2 == 0 {
            format!("{},{}", c.0, c.1)
        } else {
            "none".into()
        };
        let boxed = if s % 2 == 1 {
            format!("{s},{}", -s)
        } else {
            "none".into()
        };
        out.push(format!(
            "options seq={s} some={} none=none found={found} boxed={boxed} present=2",
            3 * s
        ));
        out.push(format!("results seq={s} ok={} err=bad-{s} oks=1", 2 * s));
        let (shape, area) = match s % 4 {
            0 => (format!("circle:{}", s + 1), 3 * (s + 1) * (s + 1)),
            1 => (format!("rect:{s},2"), 2 * s),
            2 => (format!("label:label-{s}"), 0),
            _ => ("empty".to_string(), 0),
        };
        let color = ["red", "green", "blue"][(s % 3) as usize];
        out.push(format!(
            "enums seq={s} shape={shape} color={color} pair={},{name} triple={},{},{} area={area}",
            -s,
            s as u8,
            0.5 + s as f64,
            s % 2 == 0
        ));
        out.push(format!(
            "pointers seq={s} boxed={},{} rc_id={s} rc_count=2 rc_label=inner-{s} \
             arc=shared-across-threads arc_count=2 map_size={} k0={s}",
            2 * s,
            2 * s + 1,
            s % 3 + 2
        ));
        let c1 = corners[((s + 1) % 4) as usize];
        out.push(format!(
            "nested seq={s} id={s} pos={s},1 label=inner-{s} weight={} flags={},{} \
             corners={},{};{},{} dist={}",
            1.25 * s as f64,
            s % 2 == 0,
            s,
            c.0,
            c.1,
            c1.0,
            c1.1,
            (s - c.0).abs() + (1 - c.1).abs()
        ));
    }
    out
}

#[test]
fn shapes_records_the_documented_values_at_o0_and_o2() {
    let want = shapes_expected(7);
    for bin in ["shapes-O0", "shapes-O2"] {
        let got = run_recorded(bin, &["--iterations", "7", "--interval-us", "0"]);
        assert_eq!(got, want, "{bin}");
    }
}

#[test]
fn values_records_the_documented_values_at_o0_and_o2() {
    let want = values_expected(9);
    for bin in ["values-O0", "values-O2"] {
        let got = run_recorded(bin, &["--iterations", "9", "--interval-us", "0"]);
        assert_eq!(got, want, "{bin}");
    }
}

#[test]
fn shapes_and_values_wait_for_stdin_and_reject_bad_options() {
    for bin in ["shapes-O2", "values-O2"] {
        let dir = TempDir::new("wait");
        let rec = dir.join("rec");
        let mut t = Target::spawn(
            bin,
            &[
                "--wait-stdin",
                "--iterations",
                "2",
                "--record",
                rec.to_str().unwrap(),
            ],
        );
        std::thread::sleep(Duration::from_millis(150));
        assert!(
            read_records(&rec).is_empty(),
            "{bin} ran before the stdin byte"
        );
        t.send_stdin(b'x');
        let st = t.wait_exit(EXIT_TIMEOUT).expect("exits");
        assert!(st.success(), "{bin}: {st}");
        assert_eq!(
            read_records(&rec).len(),
            if bin.starts_with("shapes") { 10 } else { 12 }
        );
        assert_eq!(t.stdout(), vec![format!("ready pid={}", t.pid())]);

        let out = std::process::Command::new(testbin(bin))
            .arg("--bogus")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bin} --bogus");
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("usage: "));
    }
}

#[test]
fn shapes_and_values_run_forever_by_default() {
    for bin in ["shapes-O2", "values-O0"] {
        let mut t = Target::spawn(bin, &["--interval-us", "100"]);
        assert!(
            t.wait_exit(Duration::from_millis(300)).is_none(),
            "{bin} exited"
        );
        t.kill();
    }
}

// ---------------------------------------------------------------------------
// The gdb side of the oracle (tests/support/gdb.rs)
// ---------------------------------------------------------------------------

use scry_tests::gdb::{Printers, gdb_frame_values, gdb_print, gdb_stop};

const GDB_RUN: &[&str] = &["--iterations", "6", "--interval-us", "0"];

fn names(list: &[(String, String)]) -> Vec<&str> {
    list.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn gdb_loop_process_order_at_o0_and_o2() {
    let loc = probe_location("loop.c", "process_order_body");
    for bin in ["loop-O0", "loop-O2"] {
        // Hit 3 is seq 2: qty 3, name "carol".
        let st = gdb_frame_values(&testbin(bin), GDB_RUN, &loc, 3);
        assert_eq!(names(&st.args), ["o", "name", "counter"], "{bin}: {st:#?}");
        assert_eq!(names(&st.locals), ["seq", "total"], "{bin}: {st:#?}");
        assert_eq!(st.local("seq"), Some("2"), "{bin}");
        assert_eq!(st.local("total"), Some("6"), "{bin}");
        let name = st.arg("name").unwrap();
        assert!(
            name.starts_with("0x") && name.ends_with(" \"carol\""),
            "{bin}: {name}"
        );
        assert!(
            st.arg("counter").unwrap().ends_with(" <global_counter>"),
            "{bin}"
        );
        assert_eq!(st.frames[..2], ["process_order", "main"], "{bin}");
        assert_eq!(
            (st.language.as_str(), st.locations, st.hits),
            ("c", 1, 3),
            "{bin}"
        );
        assert!(st.problems.is_empty(), "{bin}: {:?}", st.problems);
    }
    let p = gdb_print(
        &testbin("loop-O2"),
        GDB_RUN,
        &loc,
        3,
        &["o->qty", "*o", "o->price * 2", "nosuch"],
    );
    assert_eq!(p[0], ("o->qty".to_string(), "3".to_string()));
    assert!(
        p[1].1
            .starts_with("{id = 2, qty = 3, price = 2, st = SHIPPED, note = 0x")
            && p[1].1.ends_with(" \"rush\"}"),
        "{p:?}"
    );
    assert_eq!(p[2].1, "4");
    assert_eq!(p[3].1, "<error: No symbol \"nosuch\" in current context.>");
}

#[test]
fn gdb_shapes_price_order_and_containers_at_o0_and_o2() {
    let order = probe_location("shapes.cpp", "price_order_body");
    let inspect = probe_location("shapes.cpp", "inspect_body");
    for bin in ["shapes-O0", "shapes-O2"] {
        // Hit 3 is seq 2: qty 3, price 4.5, the long customer name.
        let st = gdb_frame_values(&testbin(bin), GDB_RUN, &order, 3);
        assert_eq!(names(&st.args), ["o", "counter"], "{bin}: {st:#?}");
        assert_eq!(names(&st.locals), ["seq", "total"], "{bin}: {st:#?}");
        let o = st.arg("o").unwrap();
        assert!(o.starts_with("@0x"), "{bin}: a reference: {o}");
        assert!(
            o.ends_with(
                ": {id = 2, qty = 3, price = 4.5, customer = \"maximilian-alexander-the-third\"}"
            ),
            "{bin}: {o}"
        );
        assert!(
            st.arg("counter").unwrap().ends_with(": 2"),
            "{bin}: {st:#?}"
        );
        assert_eq!(st.local("total"), Some("13.5"), "{bin}");
        assert_eq!(st.frames[..2], ["shop::price_order", "main"], "{bin}");
        assert_eq!((st.language.as_str(), st.locations), ("c++", 1), "{bin}");

        let st = gdb_stop(
            &testbin(bin),
            GDB_RUN,
            &inspect,
            2,
            &["owned->tilt", "nums.size()", "*shared"],
            Printers::Pretty,
        );
        assert_eq!(
            names(&st.args),
            ["seq", "nums", "words", "ages", "codes", "owned", "shared"],
            "{bin}: {st:#?}"
        );
        assert_eq!(names(&st.locals), ["greeting", "banner", "total"], "{bin}");
        assert_eq!(st.arg("seq"), Some("1"));
        assert_eq!(
            st.arg("nums"),
            Some("std::vector of length 3, capacity 4 = {1, 11, 21}"),
            "{bin}"
        );
        assert_eq!(
            st.arg("words"),
            Some(
                "std::vector of length 3, capacity 3 = {\"alpha\", \"beta\", \"gamma-delta-epsilon-zeta\"}"
            )
        );
        assert_eq!(
            st.arg("ages"),
            Some("std::map with 3 elements = {[\"alice\"] = 31, [\"bob\"] = 25, [\"carol\"] = 41}")
        );
        assert!(
            st.arg("codes")
                .unwrap()
                .starts_with("std::unordered_map with 4 elements = {"),
            "{bin}: {st:#?}"
        );
        assert!(
            st.arg("owned")
                .unwrap()
                .starts_with("std::unique_ptr<geo::Square> = {get() = 0x")
        );
        assert!(
            st.arg("shared").unwrap().starts_with(
                "std::shared_ptr<geo::Shape> (use count 2, weak count 0) = {get() = 0x"
            ),
            "{bin}: {st:#?}"
        );
        assert_eq!(st.local("greeting"), Some("\"hello\""));
        assert_eq!(st.local("banner"), Some("\"containers-of-iteration-1\""));
        assert_eq!(st.local("total"), Some("13"));
        assert_eq!(st.print("owned->tilt"), Some("1"), "{bin}: {st:#?}");
        assert!(
            st.print("*shared")
                .unwrap()
                .contains("id = 7, name = \"shared-triangle\""),
            "{bin}: {st:#?}"
        );
        assert_eq!(st.frames[0], "report::inspect");
    }
}

#[test]
fn gdb_values_text_and_pointers_at_o0_and_o2() {
    let text = probe_location("values.rs", "text_body");
    let pointers = probe_location("values.rs", "pointers_body");
    for bin in ["values-O0", "values-O2"] {
        // Hit 2 is seq 1.
        let st = gdb_frame_values(&testbin(bin), GDB_RUN, &text, 2);
        assert_eq!(
            names(&st.args),
            ["seq", "owned", "name", "nums", "bytes"],
            "{bin}: {st:#?}"
        );
        assert_eq!(names(&st.locals), ["total"], "{bin}: {st:#?}");
        assert_eq!(st.arg("seq"), Some("1"));
        assert_eq!(st.arg("owned"), Some("\"owned-1\""), "{bin}");
        assert_eq!(st.arg("name"), Some("\"bob\""));
        assert_eq!(st.arg("nums"), Some("Vec(size=3) = {1, 11, 21}"), "{bin}");
        assert_eq!(
            st.arg("bytes"),
            Some("&[u8](size=2) = {115, 99}"),
            "{bin}: {st:#?}"
        );
        assert_eq!(st.local("total"), Some("33"));
        assert_eq!(st.frames[..2], ["values::text", "values::main"], "{bin}");
        assert_eq!((st.language.as_str(), st.locations), ("rust", 1), "{bin}");

        let st = gdb_stop(
            &testbin(bin),
            GDB_RUN,
            &pointers,
            2,
            &["*boxed", "map.base.table.table.items"],
            Printers::Pretty,
        );
        assert_eq!(
            names(&st.args),
            ["seq", "boxed", "rc", "arc", "map"],
            "{bin}: {st:#?}"
        );
        assert_eq!(names(&st.locals), ["rc_count"], "{bin}");
        assert!(
            st.arg("rc").unwrap().starts_with(
                "Rc(strong=2, weak=0) = {value = values::Record {id: 1, pos: values::Point {x: 1, y: 1}, inner: values::Inner {label: \"inner-1\", weight: 1.25}, flags: (false, 1)}"
            ),
            "{bin}: {st:#?}"
        );
        assert!(
            st.arg("arc")
                .unwrap()
                .starts_with("Arc(strong=2, weak=0) = {value = \"shared-across-threads\""),
            "{bin}"
        );
        assert_eq!(st.local("rc_count"), Some("2"));
        assert_eq!(
            st.print("*boxed"),
            Some("values::Point {x: 2, y: 3}"),
            "{bin}: {st:#?}"
        );
        assert_eq!(
            st.print("map.base.table.table.items"),
            Some("3"),
            "{bin}: {st:#?}"
        );
    }
}

#[test]
fn gdb_values_enums_nested_and_raw_printers() {
    let enums = probe_location("values.rs", "enums_body");
    let nested = probe_location("values.rs", "nested_body");
    let results = probe_location("values.rs", "results_body");
    for bin in ["values-O0", "values-O2"] {
        let st = gdb_frame_values(&testbin(bin), GDB_RUN, &enums, 2);
        assert_eq!(
            names(&st.args),
            ["seq", "shape", "color", "pair", "triple"],
            "{bin}: {st:#?}"
        );
        assert_eq!(st.arg("color"), Some("values::Color::Green"));
        assert_eq!(st.arg("pair"), Some("(-1, \"bob\")"));
        assert_eq!(st.arg("triple"), Some("(1, 1.5, false)"));
        assert_eq!(st.local("area"), Some("2"));

        let st = gdb_stop(
            &testbin(bin),
            GDB_RUN,
            &nested,
            2,
            &["*self", "self.inner.label"],
            Printers::Pretty,
        );
        assert_eq!(
            names(&st.args),
            ["self", "seq", "corners"],
            "{bin}: {st:#?}"
        );
        assert_eq!(
            st.arg("corners"),
            Some("[values::Point {x: 1, y: 0}, values::Point {x: 1, y: 1}]")
        );
        assert_eq!(st.local("dist"), Some("1"));
        assert_eq!(
            st.print("*self"),
            Some(
                "values::Record {id: 1, pos: values::Point {x: 1, y: 1}, inner: values::Inner {label: \"inner-1\", weight: 1.25}, flags: (false, 1)}"
            ),
            "{bin}: {st:#?}"
        );
        assert_eq!(st.frames[0], "values::Record::nested");

        let st = gdb_frame_values(&testbin(bin), GDB_RUN, &results, 2);
        assert_eq!(
            st.arg("ok"),
            Some("core::result::Result<i32, alloc::string::String>::Ok(2)"),
            "{bin}: {st:#?}"
        );
        assert_eq!(
            st.arg("err"),
            Some("core::result::Result<i32, alloc::string::String>::Err(\"bad-1\")"),
            "{bin}: {st:#?}"
        );
    }
    // Without the pretty-printers: the raw structure.
    let text = probe_location("values.rs", "text_body");
    let st = gdb_stop(&testbin("values-O0"), GDB_RUN, &text, 1, &[], Printers::Raw);
    assert!(
        st.arg("owned")
            .unwrap()
            .starts_with("alloc::string::String {vec: alloc::vec::Vec<u8"),
        "{st:#?}"
    );
}

/// gdb 13 hits an internal error printing some register-located Rust enums
/// at -O2 (`Option<u32>` at options_body): the names after it still come,
/// printed one by one in a second run.
#[test]
fn gdb_values_options_every_argument_is_there() {
    let loc = probe_location("values.rs", "options_body");
    for bin in ["values-O0", "values-O2"] {
        // Hit 2 is seq 1: found None, boxed Some.
        let st = gdb_frame_values(&testbin(bin), GDB_RUN, &loc, 2);
        assert_eq!(
            names(&st.args),
            ["seq", "some", "none", "found", "boxed"],
            "{bin}: {st:#?}"
        );
        assert_eq!(
            st.arg("none"),
            Some("core::option::Option<u32>::None"),
            "{bin}: {st:#?}"
        );
        assert_eq!(
            st.arg("found"),
            Some("core::option::Option<&values::Point>::None"),
            "{bin}"
        );
        assert!(
            st.arg("boxed").unwrap().starts_with(
                "core::option::Option<alloc::boxed::Box<values::Point, alloc::alloc::Global>>::Some(0x"
            ),
            "{bin}: {st:#?}"
        );
        assert_eq!(st.local("present"), Some("2"));
        let some = st.arg("some").unwrap();
        assert!(
            some == "core::option::Option<u32>::Some(3)"
                || some.starts_with("core::option::Option<u32>::Some(<gdb internal-error: "),
            "{bin}: {some}"
        );
        if bin == "values-O0" {
            assert_eq!(some, "core::option::Option<u32>::Some(3)");
            assert!(st.problems.is_empty(), "{:?}", st.problems);
        }
    }
}

#[test]
#[should_panic(expected = "did not stop at breakpoint 1 for the 7. time")]
fn gdb_panics_when_the_hit_never_comes() {
    gdb_frame_values(
        &testbin("loop-O0"),
        GDB_RUN,
        &probe_location("loop.c", "process_order_body"),
        7,
    );
}

/// gdb puts a breakpoint on each marked line of shapes.cpp and values.rs at
/// exactly one location, on that very line (not moved to a later line, as
/// gdb does for a line without is_stmt rows).
#[test]
fn gdb_sets_one_location_on_each_marked_line() {
    for file in ["shapes.cpp", "values.rs", "loop.c"] {
        let probes: Vec<(&str, u32)> = PROBES
            .iter()
            .filter(|p| p.0 == file)
            .map(|p| (p.1, probe_line(file, p.1)))
            .collect();
        for bin in bins_of(file) {
            let mut cmd = std::process::Command::new("gdb");
            cmd.args(["-nx", "-batch"]);
            for (_, line) in &probes {
                cmd.arg("-ex").arg(format!("break {file}:{line}"));
            }
            let out = cmd.arg(&bin).output().expect("run gdb");
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            let set: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with("Breakpoint "))
                .collect();
            assert_eq!(set.len(), probes.len(), "{bin}: {text}");
            for ((marker, line), l) in probes.iter().zip(&set) {
                assert!(
                    l.ends_with(&format!("{file}, line {line}.")),
                    "{bin}: {marker} at {file}:{line}: {l}"
                );
            }
        }
    }
}
