//! The gdb side of the value oracle: run a testbin under gdb, stop at the
//! n-th hit of a source line, and collect what gdb shows there (`info args`,
//! `info locals`, `bt`, `print EXPR`) as text, for comparison with what scry
//! reads at the same hit.
//!
//! The testbins are deterministic (see their header comments), so the n-th hit
//! of a line sees the same values in a gdb run as in a scry run; only
//! addresses (pointers, `0x55...`) differ between runs, unless both disable
//! ASLR. gdb runs as `gdb -nx -batch` with:
//!
//! ```text
//! set pagination off / height 0 / width 0 / confirm off   (one line per value)
//! set print pretty off, set print elements 100
//! set breakpoint pending on       (lines in libraries loaded later)
//! maint set internal-error quit no, corefile no   (see below)
//! ```
//!
//! and with the usual pretty-printers ([`Printers::Pretty`], the default of
//! [`gdb_frame_values`] and [`gdb_print`]): libstdc++'s (auto-loaded by gdb
//! with libstdc++.so) and, for Rust programs, the Rust toolchain's, loaded the
//! way `rust-gdb` loads them (from `<sysroot>/lib/rustlib/etc`, the sysroot of
//! the rustc that built the tests and `values`). gdb picks the language from
//! the frame (`auto; currently rust` in a Rust frame): [`GdbStop::language`].
//! [`Printers::Raw`] runs `disable pretty-printer` at the stop instead.
//!
//! The inferior runs with stdin `/dev/null` (so `--wait-stdin` proceeds at
//! once) and stdout `/dev/null`; its stderr goes to a file that panics quote.
//! The breakpoint is breakpoint 1 at `location` (anything `break` takes,
//! usually `file:line`); `ignore 1 <hit-1>` skips to the `hit`-th stop, and
//! the stop is checked to be breakpoint 1 with `breakpoint already hit <hit>
//! time(s)`. A program that exits, crashes or never gets there is a panic
//! with the whole gdb transcript (after [`GDB_TIMEOUT`] the whole gdb process
//! group is killed).
//!
//! Known gdb (13.1) trouble, reported rather than hidden:
//! - Python exceptions of pretty-printers (`Python Exception <class
//!   'gdb.error'>: value has been optimized out`) are cut out of the text and
//!   listed in [`GdbStop::problems`]; the value keeps what gdb printed
//!   around them.
//! - gdb 13 hits an internal error (`gdbtypes.h:985: internal-error: field:
//!   Assertion ...`) printing a Rust enum that lives in registers (optimized
//!   code, e.g. an `Option<u32>` argument at -O2). gdb is told not to quit;
//!   the value becomes `<gdb internal-error: MSG>` (after what gdb had printed
//!   of it), the problem is listed, and because gdb aborts the whole `info
//!   args`/`info locals` command, the names it did not get to are printed one
//!   by one (`print NAME`) in a second gdb run, and filled in, in the order of
//!   the frame's block (from gdb's Python API: `Frame.block()`).

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one gdb run may take before its process group is killed.
pub const GDB_TIMEOUT: Duration = Duration::from_secs(120);

/// Which pretty-printers gdb uses for the values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Printers {
    /// libstdc++'s and the Rust toolchain's printers, as a user of `gdb` /
    /// `rust-gdb` sees the values (`std::vector of length 3, capacity 3 =
    /// {1, 2, 3}`, `"owned-1"`, `Vec(size=3) = {1, 11, 21}`).
    Pretty,
    /// No pretty-printers (`disable pretty-printer` at the stop): the raw
    /// structure (`alloc::string::String {vec: alloc::vec::Vec<u8, ...> {...}}`).
    Raw,
}

/// What gdb showed at the stop.
#[derive(Debug, Clone, Default)]
pub struct GdbStop {
    /// `info args`: (name, gdb's value text) in gdb's order, e.g. `("qty",
    /// "3")`, `("name", "0x5555... \"alice\"")`, `("o", "0x7ffd...")`,
    /// `("x", "<optimized out>")`. Empty for `No arguments.`.
    pub args: Vec<(String, String)>,
    /// `info locals`: (name, value) in gdb's order (innermost block first; a
    /// shadowed name can appear twice). Empty for `No locals.`.
    pub locals: Vec<(String, String)>,
    /// `up` then `info args` / `info locals`: the caller frame's (frame 1, which may be
    /// the function an inlined copy was inlined into). Empty when gdb printed none or
    /// aborted.
    pub caller_args: Vec<(String, String)>,
    pub caller_locals: Vec<(String, String)>,
    /// `bt`: the function of each frame, innermost first, as gdb names it
    /// (`process_order`, `shop::price_order`, `values::text`,
    /// `values::Record::nested`, `main`, `??` when unknown).
    pub frames: Vec<String>,
    /// `print EXPR` for each requested expression, in order: (expr, the text
    /// after `$N = `), or (expr, `<error: MESSAGE>`) when gdb refused it
    /// (`<error: No symbol "nosuch" in current context.>`).
    pub prints: Vec<(String, String)>,
    /// gdb's current language at the stop: `c`, `c++`, `rust`, ... (from
    /// `show language`, `auto; currently X` -> `X`).
    pub language: String,
    /// How many locations breakpoint 1 got when it was set (`(2 locations)`
    /// -> 2; 0 for a pending breakpoint).
    pub locations: u32,
    /// gdb's hit count of breakpoint 1 at the stop (== the requested hit).
    pub hits: u32,
    /// Trouble gdb reported while printing: Python exceptions of
    /// pretty-printers, internal errors (see the module docs).
    pub problems: Vec<String>,
    /// gdb's whole output (stdout and stderr, interleaved as written).
    pub transcript: String,
}

impl GdbStop {
    /// The value of argument `name` (the first one of that name).
    pub fn arg(&self, name: &str) -> Option<&str> {
        find(&self.args, name)
    }

    /// The value of local `name` (the first, i.e. innermost, one).
    pub fn local(&self, name: &str) -> Option<&str> {
        find(&self.locals, name)
    }

    /// The value of argument or local `name`.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.arg(name).or_else(|| self.local(name))
    }

    /// The printed value of `expr` (one of the requested expressions).
    pub fn print(&self, expr: &str) -> Option<&str> {
        find(&self.prints, expr)
    }

    /// The argument names, in order.
    pub fn arg_names(&self) -> Vec<&str> {
        self.args.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// The local names, in order.
    pub fn local_names(&self) -> Vec<&str> {
        self.locals.iter().map(|(n, _)| n.as_str()).collect()
    }
}

fn find<'a>(list: &'a [(String, String)], name: &str) -> Option<&'a str> {
    list.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Runs `bin args...` under gdb, stops at the `hit`-th (1-based) time
/// breakpoint `location` (e.g. `"loop.c:62"`) is reached, and returns `info
/// args`, `info locals` and `bt` there, with the default pretty-printers.
/// Panics if gdb cannot run, the location cannot be resolved, or the program
/// does not stop there `hit` times (give it enough `--iterations`).
pub fn gdb_frame_values(bin: &Path, args: &[&str], location: &str, hit: u32) -> GdbStop {
    gdb_stop(bin, args, location, hit, &[], Printers::Pretty)
}

/// Like [`gdb_frame_values`], and returns `print EXPR` for each of `exprs`:
/// (expr, value text), or (expr, `<error: MESSAGE>`).
pub fn gdb_print(
    bin: &Path,
    args: &[&str],
    location: &str,
    hit: u32,
    exprs: &[&str],
) -> Vec<(String, String)> {
    gdb_stop(bin, args, location, hit, exprs, Printers::Pretty).prints
}

/// The general form of [`gdb_frame_values`] and [`gdb_print`]: everything gdb
/// shows at the `hit`-th stop at `location`, with `printers`.
pub fn gdb_stop(
    bin: &Path,
    args: &[&str],
    location: &str,
    hit: u32,
    exprs: &[&str],
    printers: Printers,
) -> GdbStop {
    assert!(hit >= 1, "gdb_stop: hits count from 1");
    let mut stop = run_once(bin, args, location, hit, exprs, printers, true);

    // gdb aborted `info args` / `info locals` part-way (internal error):
    // print the names it did not get to, one by one, in a second run.
    if (stop.aborted_args || stop.aborted_locals)
        && let Some(names) = stop.names.clone()
    {
        fill_in_aborted(&mut stop, &names, |missing| {
            run_once(bin, args, location, hit, missing, printers, false).stop
        });
    }
    stop.stop
}

/// Adds the variables of `names` (is_argument, name) that an aborted `info
/// args` / `info locals` left out, printed by `print_each` (one `print NAME`
/// each), and puts the list back into the block's order.
fn fill_in_aborted(
    run: &mut Run,
    names: &[(bool, String)],
    print_each: impl FnOnce(&[&str]) -> GdbStop,
) {
    let aborted = |is_arg: bool| {
        if is_arg {
            run.aborted_args
        } else {
            run.aborted_locals
        }
    };
    let list_of = |stop: &GdbStop, is_arg: bool| -> Vec<(String, String)> {
        if is_arg {
            stop.args.clone()
        } else {
            stop.locals.clone()
        }
    };
    let missing: Vec<&str> = names
        .iter()
        .filter(|(is_arg, n)| aborted(*is_arg) && find(&list_of(&run.stop, *is_arg), n).is_none())
        .map(|(_, n)| n.as_str())
        .collect();
    if missing.is_empty() {
        return;
    }
    let again = print_each(&missing);
    for p in &again.problems {
        run.stop
            .problems
            .push(format!("(printing {missing:?} one by one) {p}"));
    }
    for is_arg in [true, false] {
        if !aborted(is_arg) {
            continue;
        }
        let mut list = list_of(&run.stop, is_arg);
        for (a, n) in names {
            if *a == is_arg
                && find(&list, n).is_none()
                && let Some(v) = find(&again.prints, n)
            {
                list.push((n.clone(), v.to_string()));
            }
        }
        let pos = |n: &str| {
            names
                .iter()
                .position(|(a, m)| *a == is_arg && m == n)
                .unwrap_or(usize::MAX)
        };
        list.sort_by_key(|(n, _)| pos(n));
        if is_arg {
            run.stop.args = list;
        } else {
            run.stop.locals = list;
        }
    }
}

struct Run {
    stop: GdbStop,
    aborted_args: bool,
    aborted_locals: bool,
    /// (is_argument, name) of the frame's variables, from gdb's Python API.
    names: Option<Vec<(bool, String)>>,
}

const MARK: &str = "@@scry-gdb";

/// The sysroot of the rustc that built the tests (and the Rust testbin), if
/// the build script could ask it.
fn rust_etc_dir() -> Option<PathBuf> {
    let sysroot = option_env!("SCRY_RUST_SYSROOT").filter(|s| !s.is_empty())?;
    let etc = Path::new(sysroot).join("lib/rustlib/etc");
    etc.join("gdb_load_rust_pretty_printers.py")
        .is_file()
        .then_some(etc)
}

/// Single-quotes `s` for the shell gdb starts the program with.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The Python one-liner that prints the frame's variable names (innermost
/// block first, up to the function's block) as `@@scry-gdb-names a:x l:y`.
const NAMES_PY: &str = "python exec(\"b = gdb.selected_frame().block()\\nout = []\\nwhile b is not None:\\n    for s in b:\\n        if s.is_argument or s.is_variable:\\n            out.append(('a:' if s.is_argument else 'l:') + s.name)\\n    if b.function is not None:\\n        break\\n    b = b.superblock\\nprint('@@scry-gdb-names ' + ' '.join(out))\")";

#[allow(clippy::too_many_arguments)]
fn run_once(
    bin: &Path,
    args: &[&str],
    location: &str,
    hit: u32,
    exprs: &[&str],
    printers: Printers,
    frame_info: bool,
) -> Run {
    let tmp = crate::TempDir::new("gdb");
    let errfile = tmp.join("inferior-stderr");
    let outfile = tmp.join("gdb-output");

    let mut iex: Vec<String> = [
        "set pagination off",
        "set height 0",
        "set width 0",
        "set confirm off",
        "maint set internal-error quit no",
        "maint set internal-error corefile no",
        "maint set internal-error backtrace off",
        "maint set internal-warning quit no",
        "maint set internal-warning corefile no",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let etc = rust_etc_dir();
    if let Some(etc) = &etc {
        iex.push(format!("add-auto-load-safe-path {}", etc.display()));
    }

    let mut ex: Vec<String> = vec![
        "set print pretty off".into(),
        "set print elements 100".into(),
        "set breakpoint pending on".into(),
        format!("break {location}"),
    ];
    if hit > 1 {
        ex.push(format!("ignore 1 {}", hit - 1));
    }
    let mut set_args = String::from("set args");
    for a in args {
        set_args.push(' ');
        set_args.push_str(&shell_quote(a));
    }
    set_args.push_str(&format!(
        " < /dev/null > /dev/null 2> {}",
        shell_quote(&errfile.display().to_string())
    ));
    ex.push(set_args);
    ex.push("run".into());
    let mark = |ex: &mut Vec<String>, what: &str| ex.push(format!("echo \\n{MARK} {what}@@\\n"));
    mark(&mut ex, "stop");
    ex.push("info breakpoints".into());
    mark(&mut ex, "language");
    ex.push("show language".into());
    if printers == Printers::Raw {
        ex.push("disable pretty-printer".into());
    }
    if frame_info {
        mark(&mut ex, "names");
        ex.push(NAMES_PY.into());
        mark(&mut ex, "args");
        ex.push("info args".into());
        mark(&mut ex, "locals");
        ex.push("info locals".into());
        mark(&mut ex, "bt");
        ex.push("bt -frame-arguments none".into());
        mark(&mut ex, "up");
        ex.push("up".into());
        mark(&mut ex, "up-args");
        ex.push("info args".into());
        mark(&mut ex, "up-locals");
        ex.push("info locals".into());
        mark(&mut ex, "down");
        ex.push("down".into());
    }
    for (i, e) in exprs.iter().enumerate() {
        mark(&mut ex, &format!("print {i}"));
        ex.push(format!("print {e}"));
    }
    // Last: gdb -batch exits with 1 if its last command failed, and kills
    // the program when it exits.
    mark(&mut ex, "end");

    let mut cmd = Command::new("gdb");
    cmd.args(["-nx", "-batch"]);
    for c in &iex {
        cmd.arg("-iex").arg(c);
    }
    if let Some(etc) = &etc {
        cmd.arg(format!("--directory={}", etc.display()));
        let mut pp = std::ffi::OsString::from(etc.as_os_str());
        if let Some(old) = std::env::var_os("PYTHONPATH") {
            pp.push(":");
            pp.push(old);
        }
        cmd.env("PYTHONPATH", pp);
    }
    for c in &ex {
        cmd.arg("-ex").arg(c);
    }
    cmd.arg(bin);
    let out = std::fs::File::create(&outfile).expect("create the gdb output file");
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0);
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!("cannot run gdb ({e}): gdb is required for the value oracle (apt-get install gdb)")
    });
    let deadline = Instant::now() + GDB_TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for gdb") {
            break Some(st);
        }
        if Instant::now() >= deadline {
            // SAFETY: kill(2) of the process group of our own child (its
            // leader is the child, still unreaped, so the id is not reused).
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut raw = String::new();
    let _ = std::fs::File::open(&outfile).and_then(|mut f| {
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)?;
        raw = String::from_utf8_lossy(&bytes).into_owned();
        Ok(())
    });
    let inferior_stderr = std::fs::read_to_string(&errfile).unwrap_or_default();
    let what = format!(
        "gdb on {} {args:?} at {location} (hit {hit})",
        bin.display()
    );
    let fail = |why: &str| -> ! {
        panic!(
            "{what}: {why}\n--- gdb transcript ---\n{raw}\n--- program stderr ---\n{inferior_stderr}"
        )
    };
    // The exit status says little (1 if the last command failed); a signal
    // means gdb crashed.
    use std::os::unix::process::ExitStatusExt;
    match status {
        None => fail(&format!("gdb did not finish within {GDB_TIMEOUT:?}")),
        Some(st) if st.signal().is_some() => fail(&format!("gdb died: {st}")),
        Some(_) => {}
    }

    let mut problems = Vec::new();
    let text = clean(&raw, &mut problems);
    let sections = split_sections(&text);
    let section = |name: &str| -> &str {
        sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
            .unwrap_or_else(|| fail(&format!("no `{MARK} {name}@@` section in the output")))
    };

    // The breakpoint and the stop.
    let before = section("");
    let locations = parse_locations(before)
        .unwrap_or_else(|| fail(&format!("gdb did not set a breakpoint at {location}")));
    // `Breakpoint 1, f (…)`, or in a threaded program `Thread 2 "name" hit Breakpoint 1, …`.
    let stopped = before.lines().any(|l| {
        l.starts_with("Breakpoint 1, ")
            || l.starts_with("Breakpoint 1.")
            || (l.starts_with("Thread ") && l.contains(" hit Breakpoint 1, "))
    });
    let hits = parse_hits(section("stop"));
    if !stopped || hits != Some(hit) {
        fail(&format!(
            "the program did not stop at breakpoint 1 for the {hit}. time (gdb counts {hits:?} \
             hits; did it exit or crash first?)"
        ));
    }
    let language = parse_language(section("language"));

    let mut stop = GdbStop {
        language,
        locations,
        hits: hit,
        transcript: raw.clone(),
        ..GdbStop::default()
    };
    let mut run = Run {
        stop: GdbStop::default(),
        aborted_args: false,
        aborted_locals: false,
        names: None,
    };
    if frame_info {
        run.names = parse_names(section("names"));
        let (a, aborted_args) = parse_entries(section("args"), "No arguments.")
            .unwrap_or_else(|e| fail(&format!("info args: {e}")));
        let (l, aborted_locals) = parse_entries(section("locals"), "No locals.")
            .unwrap_or_else(|e| fail(&format!("info locals: {e}")));
        stop.args = a;
        stop.locals = l;
        run.aborted_args = aborted_args;
        run.aborted_locals = aborted_locals;
        stop.frames = parse_frames(section("bt"));
        // The caller's variables are extra: a section gdb could not print leaves them empty.
        let optional = |name: &str, none: &str| {
            sections
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, t)| parse_entries(t, none).ok())
                .filter(|(_, aborted)| !aborted)
                .map(|(e, _)| e)
                .unwrap_or_default()
        };
        stop.caller_args = optional("up-args", "No arguments.");
        stop.caller_locals = optional("up-locals", "No locals.");
    }
    for (i, e) in exprs.iter().enumerate() {
        stop.prints
            .push((e.to_string(), parse_print(section(&format!("print {i}")))));
    }
    stop.problems = problems;
    run.stop = stop;
    run
}

// ---------------------------------------------------------------------------
// Parsing gdb's output
// ---------------------------------------------------------------------------

/// Cuts pretty-printer Python exceptions and internal-error reports out of
/// gdb's output (into `problems`), replacing an internal error by `<gdb
/// internal-error: MSG>`.
fn clean(raw: &str, problems: &mut Vec<String>) -> String {
    let mut text = raw.to_string();
    // "Python Exception <class 'gdb.error'>: value has been optimized out\n"
    while let Some(i) = text.find("Python Exception <") {
        let end = text[i..]
            .find('\n')
            .map(|e| i + e + 1)
            .unwrap_or(text.len());
        problems.push(text[i..end].trim_end().to_string());
        text.replace_range(i..end, "");
    }
    // "/build/.../gdbtypes.h:985: internal-error: MSG\nA problem internal to
    // GDB ...\n...\nCommand aborted.\n"
    while let Some(i) = text.find(": internal-error: ") {
        let bytes = text.as_bytes();
        let mut start = i;
        while start > 0 && bytes[start - 1].is_ascii_digit() {
            start -= 1;
        }
        if start > 0 && bytes[start - 1] == b':' {
            start -= 1;
            while start > 0
                && (bytes[start - 1].is_ascii_alphanumeric()
                    || b"_./+-".contains(&bytes[start - 1]))
            {
                start -= 1;
            }
        }
        let msg_start = i + ": internal-error: ".len();
        let msg_end = text[msg_start..]
            .find('\n')
            .map(|e| msg_start + e)
            .unwrap_or(text.len());
        let msg = text[msg_start..msg_end].to_string();
        let end = match text[msg_end..].find("Command aborted.\n") {
            Some(e) => msg_end + e + "Command aborted.\n".len(),
            None => (msg_end + 1).min(text.len()),
        };
        problems.push(format!("gdb internal-error: {msg}"));
        text.replace_range(start..end, &format!("<gdb internal-error: {msg}>\n"));
    }
    text
}

/// Splits at the marker lines: ("", text before the first marker), then
/// (marker name, text up to the next marker) for each.
fn split_sections(text: &str) -> Vec<(String, String)> {
    let mut out = vec![(String::new(), String::new())];
    for line in text.lines() {
        if let Some(name) = line
            .strip_prefix(MARK)
            .and_then(|r| r.strip_prefix(' '))
            .and_then(|r| r.strip_suffix("@@"))
        {
            out.push((name.to_string(), String::new()));
        } else {
            let cur = &mut out.last_mut().unwrap().1;
            cur.push_str(line);
            cur.push('\n');
        }
    }
    out
}

/// From "Breakpoint 1 at 0x1149: file loop.c, line 62." (1), "Breakpoint 1
/// at 0x19968: values.rs:307. (2 locations)" (2), "Breakpoint 1 (x.c:3)
/// pending." (0).
fn parse_locations(text: &str) -> Option<u32> {
    let line = text.lines().find(|l| {
        l.starts_with("Breakpoint 1 at ")
            || (l.starts_with("Breakpoint 1 (") && l.ends_with("pending."))
    })?;
    if line.ends_with("pending.") {
        return Some(0);
    }
    if let Some(i) = line.rfind(" locations)") {
        let open = line[..i].rfind('(')?;
        return line[open + 1..i].trim().parse().ok();
    }
    Some(1)
}

/// "\tbreakpoint already hit 3 times" in `info breakpoints` (the first
/// breakpoint's, which is the only one).
fn parse_hits(text: &str) -> Option<u32> {
    text.lines().find_map(|l| {
        l.trim()
            .strip_prefix("breakpoint already hit ")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// `The current source language is "auto; currently rust".` -> "rust".
fn parse_language(text: &str) -> String {
    let Some(line) = text.lines().find(|l| l.contains("source language is")) else {
        return String::new();
    };
    let q = line.split('"').nth(1).unwrap_or("");
    q.rsplit("currently ")
        .next()
        .unwrap_or(q)
        .trim()
        .to_string()
}

fn parse_names(text: &str) -> Option<Vec<(bool, String)>> {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("@@scry-gdb-names"))?;
    Some(
        line.split_whitespace()
            .filter_map(|t| {
                let (k, n) = t.split_once(':')?;
                Some((k == "a", n.to_string()))
            })
            .collect(),
    )
}

/// Whether `line` starts a `name = value` entry; returns (name, value).
fn entry_start(line: &str) -> Option<(&str, &str)> {
    let (name, value) = line.split_once(" = ")?;
    let mut chars = name.chars();
    let first = chars.next()?;
    ((first.is_ascii_alphabetic() || first == '_' || first == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$'))
    .then_some((name, value))
}

/// Parses `info args` / `info locals` output: `name = value` lines, a line
/// that starts no entry continuing the previous value. Returns the entries
/// and whether gdb aborted the command part-way (internal error).
fn parse_entries(text: &str, none: &str) -> Result<(Vec<(String, String)>, bool), String> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut aborted = false;
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if line.trim() == none || line.trim() == "No symbol table info available." {
            continue;
        }
        if line.starts_with("No frame selected.") || line.starts_with("No stack.") {
            return Err(line.to_string());
        }
        if line.contains("<gdb internal-error: ") {
            aborted = true;
        }
        match entry_start(line) {
            Some((n, v)) => out.push((n.to_string(), v.to_string())),
            None => match out.last_mut() {
                Some((_, v)) => {
                    v.push('\n');
                    v.push_str(line);
                }
                None => return Err(format!("unexpected output {line:?}")),
            },
        }
    }
    Ok((out, aborted))
}

/// The function names of `bt` lines: `#0  process_order (...) at loop.c:62`,
/// `#1  0x000055555555529a in main (...) at loop.c:110`, `#3  0x... in ?? ()`.
fn parse_frames(text: &str) -> Vec<String> {
    let mut frames = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        let rest = rest
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start();
        let rest = match rest.strip_prefix("0x") {
            Some(r) => match r.split_once(" in ") {
                Some((_, f)) => f,
                None => continue,
            },
            None => rest,
        };
        frames.push(function_name(rest).to_string());
    }
    frames
}

/// The function name at the start of `s`: up to the first ` (` outside
/// `<...>` (template and generic arguments may hold ` (`).
fn function_name(s: &str) -> &str {
    let b = s.as_bytes();
    let mut depth = 0i32;
    for i in 0..b.len() {
        match b[i] {
            b'<' => depth += 1,
            b'>' if i > 0 && b[i - 1] == b'-' => {}
            b'>' => depth -= 1,
            b'(' if depth <= 0 && i > 0 && b[i - 1] == b' ' => return s[..i - 1].trim_end(),
            _ => {}
        }
    }
    s.trim_end()
}

/// `$3 = value` (more lines continue it) -> value; anything else is gdb's
/// error message -> `<error: MESSAGE>`.
fn parse_print(text: &str) -> String {
    let mut value: Option<String> = None;
    let mut other = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if value.is_none() {
            if let Some((lhs, v)) = line.split_once(" = ")
                && lhs.starts_with('$')
                && lhs[1..].chars().all(|c| c.is_ascii_digit())
            {
                value = Some(v.to_string());
                continue;
            }
            other.push(line.trim());
        } else if let Some(v) = value.as_mut() {
            v.push('\n');
            v.push_str(line);
        }
    }
    value.unwrap_or_else(|| format!("<error: {}>", other.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_with_continuations_and_none() {
        let (e, ab) = parse_entries(
            "seq = 2\nname = 0x555 \"alice\"\ntext = \"a\nb\"\n",
            "No locals.",
        )
        .unwrap();
        assert!(!ab);
        assert_eq!(e[0], ("seq".into(), "2".into()));
        assert_eq!(e[1].1, "0x555 \"alice\"");
        assert_eq!(e[2].1, "\"a\nb\"");
        assert!(
            parse_entries("No locals.\n", "No locals.")
                .unwrap()
                .0
                .is_empty()
        );
        assert!(parse_entries("No frame selected.\n", "No locals.").is_err());
    }

    #[test]
    fn python_exceptions_and_internal_errors_are_cut_out() {
        let mut p = Vec::new();
        let t = clean(
            "bytes = &[u8](size=2)Python Exception <class 'gdb.error'>: value has been optimized out\n\n\
             some = Option<u32>::Some(/build/gdb-1/gdb/gdbtypes.h:985: internal-error: field: Assertion `x' failed.\n\
             A problem internal to GDB has been detected,\nfurther debugging may prove unreliable.\n\
             Command aborted.\n@@x\n",
            &mut p,
        );
        assert_eq!(
            t,
            "bytes = &[u8](size=2)\nsome = Option<u32>::Some(<gdb internal-error: field: Assertion `x' failed.>\n@@x\n"
        );
        assert_eq!(p.len(), 2);
        let (e, ab) = parse_entries(&t, "No arguments.").unwrap();
        assert!(ab);
        assert_eq!(e[0], ("bytes".into(), "&[u8](size=2)".into()));
    }

    #[test]
    fn frames_locations_hits_language_prints() {
        let f = parse_frames(
            "#0  store::open<std::__cxx11::basic_string<char> > (b=...) at s.cpp:3\n\
             #1  0x000055555555529a in main () at loop.c:110\n\
             #2  core::ops::function::impls::{impl#2}::call_once<(), (dyn core::ops::function::Fn<(), Output=i32>)> () at f.rs:1\n\
             #3  0x00007ffff7ddc24a in __libc_start_call_main (main=main@entry=0x1) at x.h:58\n\
             #4  0x0000000000000000 in ?? ()\n",
        );
        assert_eq!(
            f,
            [
                "store::open<std::__cxx11::basic_string<char> >",
                "main",
                "core::ops::function::impls::{impl#2}::call_once<(), (dyn core::ops::function::Fn<(), Output=i32>)>",
                "__libc_start_call_main",
                "??"
            ]
        );
        assert_eq!(
            parse_locations("Breakpoint 1 at 0x1149: file loop.c, line 62.\n"),
            Some(1)
        );
        assert_eq!(
            parse_locations("Breakpoint 1 at 0x1: values.rs:3. (2 locations)\n"),
            Some(2)
        );
        assert_eq!(parse_locations("Breakpoint 1 (p.c:3) pending.\n"), Some(0));
        assert_eq!(
            parse_hits("1 breakpoint keep y 0x1 in f at x.c:3\n\tbreakpoint already hit 1 time\n"),
            Some(1)
        );
        assert_eq!(
            parse_language("The current source language is \"auto; currently c++\".\n"),
            "c++"
        );
        assert_eq!(parse_print("$1 = 3\n"), "3");
        assert_eq!(
            parse_print("No symbol \"nosuch\" in current context.\n"),
            "<error: No symbol \"nosuch\" in current context.>"
        );
    }
}
