//! Snapshots against gdb: at the same hit of the same deterministic program, scry's frames,
//! arguments and locals equal what gdb shows (addresses aside: each run has its own).

use scry_tests::gdb::gdb_frame_values;
use scry_tests::scry::Scry;
use scry_tests::*;
use std::time::Duration;

/// Removes hexadecimal addresses, which differ between two runs of the program.
fn strip_addrs(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("0x") {
        out.push_str(&rest[..i]);
        out.push_str("ADDR");
        rest = rest[i + 2..].trim_start_matches(|c: char| c.is_ascii_hexdigit());
    }
    out.push_str(rest);
    out
}

/// scry's value text, normalised to what gdb prints for the same value: a pointer shows only
/// its address (and string), not the `-> target` scry adds.
fn scry_as_gdb(v: &str) -> String {
    let v = match v.find(" -> ") {
        Some(i) if v.starts_with("0x") => &v[..i],
        _ => v,
    };
    strip_addrs(v)
}

struct ScryFrame {
    function: String,
    vars: Vec<(String, String, String)>, // (section, name, value)
}

/// Parses scry's human snapshot tree.
fn parse_tree(lines: &[String]) -> Vec<ScryFrame> {
    let mut frames: Vec<ScryFrame> = Vec::new();
    let mut section = String::new();
    for l in lines {
        let t = l.trim_start();
        if let Some(rest) = t.strip_prefix('#') {
            let function = rest.split_whitespace().nth(1).unwrap_or("").to_string();
            frames.push(ScryFrame { function, vars: Vec::new() });
        } else if t == "args:" || t == "locals:" {
            section = t.trim_end_matches(':').to_string();
        } else if t.starts_with("stack:") || t.starts_with("watches:") {
            section.clear();
        } else if let (Some(f), false) = (frames.last_mut(), section.is_empty()) {
            if let Some((name, rest)) = t.split_once(" = (") {
                // "name = (type) value"
                let value = rest.split_once(") ").map(|(_, v)| v).unwrap_or("");
                f.vars.push((section.clone(), name.to_string(), value.to_string()));
            }
        }
    }
    frames
}

fn compare_with_gdb(bin: &str, source: &str, marker: &str, hit: u32, args: &[&str]) -> (usize, usize) {
    require_ptrace();
    let loc = probe_location(source, marker);
    let gdb = gdb_frame_values(&testbin(bin), args, &loc, hit);
    let mut full_args = args.to_vec();
    full_args.push("--wait-stdin");
    let mut target = Target::spawn(bin, &full_args);
    let cond = format!("$hits == {hit}");
    let mut scry = Scry::start(&["attach", "--pid", &target.pid().to_string(), "--snapshot", &loc, "--if", &cond]);
    scry.wait_stderr("printing hits", Duration::from_secs(30));
    target.send_stdin(b'g');
    assert_eq!(scry.wait(Duration::from_secs(60)).code(), Some(0), "{:?}", scry.stderr());
    let tree = parse_tree(&scry.stdout());
    assert!(!tree.is_empty(), "no snapshot: {:?} {:?}", scry.stdout(), scry.stderr());
    // The frames: scry's function names start like gdb's backtrace.
    let n = gdb.frames.len().min(tree.len()).min(3);
    let ours: Vec<&str> = tree.iter().take(n).map(|f| f.function.as_str()).collect();
    let theirs: Vec<&str> = gdb.frames.iter().take(n).map(String::as_str).collect();
    assert_eq!(ours, theirs, "frames differ");
    // The top frame's variables: same names, in the same order, and the same values.
    let top = &tree[0];
    let our_args: Vec<&str> = top.vars.iter().filter(|v| v.0 == "args").map(|v| v.1.as_str()).collect();
    let our_locals: Vec<&str> = top.vars.iter().filter(|v| v.0 == "locals").map(|v| v.1.as_str()).collect();
    assert_eq!(our_args, gdb.arg_names(), "argument names differ");
    assert_eq!(our_locals, gdb.local_names(), "local names differ");
    let mut agree = 0;
    let mut total = 0;
    let mut table = String::new();
    for (section, name, value) in &top.vars {
        let theirs = if section == "args" { gdb.arg(name) } else { gdb.local(name) }.unwrap_or("<missing>");
        let ok = scry_as_gdb(value) == strip_addrs(theirs);
        total += 1;
        agree += ok as usize;
        table.push_str(&format!("  {:<5} {:<10} scry {:<40} gdb {:<40} {}\n", section, name, value, theirs, if ok { "ok" } else { "DIFFERS" }));
    }
    eprintln!("{bin} {source}:{marker} hit {hit}: {agree}/{total} values agree with gdb\n{table}");
    target.kill();
    (agree, total)
}

#[test]
fn c_snapshot_at_o0_agrees_with_gdb() {
    let (agree, total) = compare_with_gdb("loop-O0", "loop.c", "process_order_body", 5, &["--iterations", "10", "--interval-us", "1000"]);
    assert!(total >= 5);
    assert_eq!(agree, total, "at -O0 every value must agree with gdb");
}

#[test]
fn snapshot_json_has_frames_values_and_watches() {
    require_ptrace();
    let mut target = Target::spawn("loop-O0", &["--iterations", "10", "--interval-us", "1000", "--wait-stdin"]);
    let loc = probe_location("loop.c", "process_order_body");
    let mut scry = Scry::start(&[
        "attach", "--pid", &target.pid().to_string(), "--json", "--snapshot", &loc, "--if", "$hits == 3", "--watch", "o->qty * 2", "--watch",
        "*o", "--watch", "o->nosuch_is_an_error",
    ]);
    // A watch that does not type-check is refused when the probe is set.
    assert_ne!(scry.wait(Duration::from_secs(20)).code(), Some(0));
    assert!(scry.stderr().join("\n").contains("no member 'nosuch_is_an_error'"), "{:?}", scry.stderr());
    let mut scry = Scry::start(&[
        "attach", "--pid", &target.pid().to_string(), "--json", "--snapshot", &loc, "--if", "$hits == 3", "--watch", "o->qty * 2", "--watch", "*o",
    ]);
    scry.wait_stderr("printing hits", Duration::from_secs(20));
    target.send_stdin(b'g');
    assert_eq!(scry.wait(Duration::from_secs(30)).code(), Some(0), "{:?}", scry.stderr());
    let snaps = scry.json();
    assert_eq!(snaps.len(), 1, "one snapshot by default");
    let s = &snaps[0];
    assert_eq!(s["kind"], "snapshot");
    assert_eq!(s["hit"], 1);
    let f0 = &s["frames"][0];
    assert_eq!(f0["function"], "process_order");
    assert!(f0["file"].as_str().unwrap().ends_with("loop.c"));
    let seq = f0["locals"].as_array().unwrap().iter().find(|v| v["name"] == "seq").unwrap();
    assert_eq!(seq["value"], 2, "the third call has seq 2: {f0}");
    let qty = s["frames"][0]["args"][0]["value"]["target"]["qty"].as_i64().unwrap();
    assert_eq!(s["watches"][0]["value"], qty * 2);
    assert_eq!(s["watches"][1]["value"]["qty"], qty);
    assert!(s["frames"].as_array().unwrap().iter().any(|f| f["function"] == "main"));
    assert!(s["bytes_read"].as_u64().unwrap() > 0);
}
