//! Support library for scry's integration tests (crate `scry_tests`).
//!
//! The test programs ("testbins": C in `testbins/c/`, C++ in `testbins/cpp/`,
//! Rust in the crate `testbins/rust/`) are compiled by this package's build
//! script into [`testbins_dir()`]; see `tests/build.rs` for the variants
//! (`loop-O0`, `loop-O2`, `loop-split`, `shapes-O2`, `values-O0`, ...). This library
//! finds them, runs them ([`Target`]), finds probe lines by their
//! `// @probe NAME` markers ([`probe_line`]), builds the `scry` binary
//! ([`scry_bin`]), reads the programs' record files ([`read_records`],
//! [`parse_kv`]) and inspects processes through `/proc` ([`thread_states`],
//! [`tracer_pid`], [`maps`], [`code_bytes_match_file`]).
//!
//! [`scry`] runs the real `scry` binary ([`scry::Scry`]); [`elf`] is a
//! minimal ELF reader (sections, build-id, debuglink, symbols); [`gdb`] is
//! the gdb side of the value oracle ([`gdb::gdb_frame_values`]: what gdb
//! shows at the n-th hit of a line).
//!
//! Every test that uses ptrace should start with [`require_ptrace()`]: where
//! ptrace is denied the tests must fail loudly, never pass vacuously.

pub mod elf;
pub mod gdb;
pub mod scry;
pub mod tiers;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Where things are
// ---------------------------------------------------------------------------

/// The directory the build script compiled the testbins into (holds `bin/`,
/// `lib/`, `debug/` and `debug-wrong/`).
pub fn testbins_dir() -> PathBuf {
    PathBuf::from(env!("SCRY_TESTBINS"))
}

/// The path of the compiled testbin `name` (e.g. `"loop-O2"`, `"loop-split"`),
/// i.e. `testbins_dir()/bin/<name>`. Panics if there is no such file.
pub fn testbin(name: &str) -> PathBuf {
    let p = testbins_dir().join("bin").join(name);
    if !p.is_file() {
        let mut known: Vec<String> = std::fs::read_dir(testbins_dir().join("bin"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        known.sort();
        panic!(
            "no testbin named {name:?} at {} (built testbins: {})",
            p.display(),
            known.join(", ")
        );
    }
    p
}

/// `testbins_dir()/lib`: `libscryshared.so` and `libscryplugin.so`.
pub fn lib_dir() -> PathBuf {
    testbins_dir().join("lib")
}

/// `testbins_dir()/debug`: a debug directory holding `loop-split`'s split
/// debug file at `.build-id/<xx>/<rest>.debug`.
pub fn debug_dir() -> PathBuf {
    testbins_dir().join("debug")
}

/// `testbins_dir()/debug-wrong`: a debug directory whose file at
/// `loop-split`'s build-id path is the debug file of a *different* build (its
/// own build-id differs), for testing that a mismatch is rejected.
pub fn debug_wrong_dir() -> PathBuf {
    testbins_dir().join("debug-wrong")
}

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    p.canonicalize().unwrap_or(p)
}

/// The directory of the testbins' C sources: `<workspace>/testbins/c`.
pub fn source_dir() -> PathBuf {
    workspace_root().join("testbins").join("c")
}

/// The path of a testbin source file by its file name: `testbins/cpp/<name>`
/// for `*.cpp` (`shapes.cpp`), `testbins/rust/src/<name>` for `*.rs`
/// (`values.rs`), else `testbins/c/<name>` (`loop.c`, `testbin.h`).
pub fn source_path(source_file_name: &str) -> PathBuf {
    let testbins = workspace_root().join("testbins");
    if source_file_name.ends_with(".cpp") {
        testbins.join("cpp").join(source_file_name)
    } else if source_file_name.ends_with(".rs") {
        testbins.join("rust").join("src").join(source_file_name)
    } else {
        source_dir().join(source_file_name)
    }
}

/// The 1-based line number of the line marked `// @probe <marker>` in the
/// testbin source `source_file_name` (found by [`source_path`]; e.g.
/// `probe_line("loop.c", "process_order_body")`, `probe_line("shapes.cpp",
/// "price_order_body")`, `probe_line("values.rs", "text_body")`). Panics
/// unless exactly one line carries the marker.
pub fn probe_line(source_file_name: &str, marker: &str) -> u32 {
    let path = source_path(source_file_name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let hits: Vec<u32> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            l.split_once("// @probe ")
                .is_some_and(|(_, m)| m.trim() == marker)
        })
        .map(|(i, _)| i as u32 + 1)
        .collect();
    match hits.as_slice() {
        [line] => *line,
        [] => panic!("no `// @probe {marker}` marker in {}", path.display()),
        _ => panic!(
            "`// @probe {marker}` marks several lines of {}: {hits:?}",
            path.display()
        ),
    }
}

/// `"<source_file_name>:<line>"` for the marked line: the usual way to name a
/// source location on scry's command line.
pub fn probe_location(source_file_name: &str, marker: &str) -> String {
    format!(
        "{source_file_name}:{}",
        probe_line(source_file_name, marker)
    )
}

// ---------------------------------------------------------------------------
// Running a testbin
// ---------------------------------------------------------------------------

/// How long [`Target::spawn`] waits for the `ready pid=<pid>` line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running testbin, started with stdin and stdout piped. It has printed
/// `ready pid=<pid>`. Dropping it kills it (SIGKILL) and reaps it, so no test
/// leaves processes behind.
pub struct Target {
    child: Child,
    pid: i32,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<String>>>,
    status: Option<ExitStatus>,
    what: String,
}

impl Target {
    /// Starts testbin `name` (see [`testbin`]) with `args` and waits up to
    /// [`READY_TIMEOUT`] for its `ready pid=<pid>` line. Panics if it does not
    /// start, exits first, or does not get ready in time.
    pub fn spawn<S: AsRef<OsStr>>(name: &str, args: &[S]) -> Target {
        let mut cmd = Command::new(testbin(name));
        cmd.args(args);
        Target::from_command(cmd, name)
    }

    /// Like [`Target::spawn`], for a prepared command (any executable that
    /// prints `ready pid=<pid>`, with its own env or cwd). Its stdin and stdout
    /// are replaced by pipes; stderr is inherited. `what` names it in panics.
    pub fn from_command(mut cmd: Command, what: &str) -> Target {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let stdin = child.stdin.take();
        let out = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = Arc::clone(&lines);
        // Drains stdout for the whole life of the process, so it never blocks
        // on a full pipe; the first `ready pid=` line goes to the channel.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let ready = line.strip_prefix("ready pid=").filter(|_| tx.is_some());
                if let (Some(rest), Some(tx)) = (ready, tx.take_if(|_| ready.is_some())) {
                    let _ = tx.send(rest.trim().parse::<i32>().unwrap_or(-1));
                }
                sink.lock().unwrap().push(line);
            }
        });
        let mut target = Target {
            pid: child.id() as i32,
            child,
            stdin,
            stdout: lines,
            status: None,
            what: what.to_string(),
        };
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(pid) if pid == target.pid => target,
            Ok(pid) => panic!("{what} said ready pid={pid} but its pid is {}", target.pid),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                target.kill();
                panic!(
                    "{what} printed no `ready pid=` line within {READY_TIMEOUT:?}; stdout: {:?}",
                    target.stdout()
                )
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let st = target.wait_exit(Duration::from_secs(5));
                panic!(
                    "{what} closed stdout before `ready pid=` (exit: {st:?}); stdout: {:?}",
                    target.stdout()
                )
            }
        }
    }

    /// The target's process id (also its main thread's tid).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Every line the target has printed on stdout so far (`ready pid=...` included).
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Writes one byte to the target's stdin (releases `--wait-stdin`, or
    /// triggers dlopener's `--dlopen-on-stdin`). Panics if it cannot be written.
    pub fn send_stdin(&mut self, byte: u8) {
        let what = &self.what;
        let stdin = self
            .stdin
            .as_mut()
            .unwrap_or_else(|| panic!("stdin of {what} was already closed"));
        stdin
            .write_all(&[byte])
            .and_then(|_| stdin.flush())
            .unwrap_or_else(|e| panic!("cannot write to stdin of {what}: {e}"));
    }

    /// Closes the target's stdin (it then reads EOF).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Sends signal `sig` (e.g. `libc::SIGTERM`) to the target process.
    /// Panics if `kill(2)` fails.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with a pid we own.
        let r = unsafe { libc::kill(self.pid, sig) };
        if r != 0 {
            panic!(
                "kill({}, {sig}) failed: {}",
                self.pid,
                std::io::Error::last_os_error()
            );
        }
    }

    /// Waits up to `timeout` for the target to exit and returns its exit
    /// status, or `None` if it is still running (or, while another process
    /// traces it, has not been released to us yet).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.status.is_some() {
            return self.status;
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.status = Some(st);
                return self.status;
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Kills the target (SIGKILL) and reaps it. Does nothing if it has
    /// already been reaped. Gives up reaping after 10 s (a tracer that never
    /// releases its dead tracee must not hang the test).
    pub fn kill(&mut self) {
        if self.status.is_some() {
            return;
        }
        // SAFETY: kill(2) with a pid that is still our unreaped child.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        self.stdin = None;
        let _ = self.wait_exit(Duration::from_secs(10));
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `cond` every 5 ms until it returns true (then returns true) or
/// `timeout` passes (then returns false).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------------------
// The scry binary
// ---------------------------------------------------------------------------

/// Builds the `scry` binary (once per test process: `cargo build -p scry-cli
/// --bin scry` in the workspace root, with `$CARGO` if set, else `cargo`) and
/// returns its path: `<target dir>/debug/scry`, where the target dir is
/// `$CARGO_TARGET_DIR` if set at run time (relative to the workspace root),
/// else `<workspace>/target`. Panics (on every call) if the build failed.
pub fn scry_bin() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = workspace_root();
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(&cargo)
                .args(["build", "-p", "scry-cli", "--bin", "scry"])
                .current_dir(&root)
                .status()
                .map_err(|e| format!("cannot run {cargo:?}: {e}"))?;
            if !status.success() {
                return Err(format!(
                    "`cargo build -p scry-cli --bin scry` failed: {status}"
                ));
            }
            let target = match std::env::var_os("CARGO_TARGET_DIR") {
                Some(dir) => root.join(dir),
                None => root.join("target"),
            };
            let bin = target.join("debug").join("scry");
            if bin.is_file() {
                Ok(bin)
            } else {
                Err(format!("built scry, but {} does not exist", bin.display()))
            }
        })
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

// ---------------------------------------------------------------------------
// Record files
// ---------------------------------------------------------------------------

/// The non-empty lines of a record file (empty if the file does not exist).
pub fn read_records(path: impl AsRef<Path>) -> Vec<String> {
    let path = path.as_ref();
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("cannot read {}: {e}", path.display()),
    }
}

/// The `key=value` fields of a record line, split at whitespace (words
/// without `=`, such as the leading `call`, are left out).
/// `parse_kv("call seq=3 name=bob")` gives `{seq: "3", name: "bob"}`.
pub fn parse_kv(line: &str) -> HashMap<String, String> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The integer value of field `key` in a record line. Panics with the line
/// if the field is missing or not an integer.
pub fn kv_i64(line: &str, key: &str) -> i64 {
    parse_kv(line)
        .get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("record {line:?} has no integer field {key:?}"))
}

// ---------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------

/// The threads of process `pid` and their states from
/// `/proc/<pid>/task/<tid>/stat` (`R` running, `S` sleeping, `t` stopped by
/// ptrace, `T` stopped, `Z` zombie, ...), sorted by tid. Threads that vanish
/// while being read are skipped; an empty vector means the process is gone.
pub fn thread_states(pid: i32) -> Vec<(i32, char)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out: Vec<(i32, char)> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let tid: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            Some((tid, stat_state(&stat)?))
        })
        .collect();
    out.sort_unstable();
    out
}

/// The state field of a `/proc/.../stat` line. The comm field in parentheses
/// may itself contain spaces and parentheses, so the state is read after the
/// *last* `)`.
fn stat_state(stat: &str) -> Option<char> {
    let close = stat.rfind(')')?;
    stat[close + 1..].trim_start().chars().next()
}

/// The `TracerPid` of process (or thread) `pid` from `/proc/<pid>/status`:
/// the pid of the process ptrace-attached to it, 0 if none. Panics if the
/// process does not exist.
pub fn tracer_pid(pid: i32) -> i32 {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    text.lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no TracerPid in {path}"))
}

/// The signals pending for process `pid` (bit `n - 1` set for signal `n`):
/// the process-wide set (`ShdPnd`) and the main thread's own (`SigPnd`) from
/// `/proc/<pid>/status`. 0 if the process is gone.
pub fn pending_signals(pid: i32) -> u64 {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    text.lines()
        .filter_map(|l| {
            l.strip_prefix("ShdPnd:")
                .or_else(|| l.strip_prefix("SigPnd:"))
        })
        .filter_map(|v| u64::from_str_radix(v.trim(), 16).ok())
        .fold(0, |a, b| a | b)
}

/// One line of `/proc/<pid>/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// First address of the mapping.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Permissions, e.g. `r-xp`.
    pub perms: String,
    /// Offset in the mapped file.
    pub offset: u64,
    /// The mapped file or pseudo-name (`[heap]`, ...); empty if anonymous.
    pub path: String,
}

/// The memory mappings of process `pid` (empty if it is gone).
pub fn maps(pid: i32) -> Vec<Mapping> {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
        return Vec::new();
    };
    text.lines().filter_map(parse_maps_line).collect()
}

fn parse_maps_line(line: &str) -> Option<Mapping> {
    // start-end perms offset dev inode [path, which may contain spaces]
    let mut rest = line;
    let mut field = || {
        let t = rest.trim_start();
        let end = t.find(' ').unwrap_or(t.len());
        let (f, r) = t.split_at(end);
        rest = r;
        f
    };
    let range = field();
    let perms = field().to_string();
    let offset = u64::from_str_radix(field(), 16).ok()?;
    let _dev = field();
    let _inode = field();
    let path = rest.trim_start().to_string();
    let (s, e) = range.split_once('-')?;
    Some(Mapping {
        start: u64::from_str_radix(s, 16).ok()?,
        end: u64::from_str_radix(e, 16).ok()?,
        perms,
        offset,
        path,
    })
}

/// Checks that the code of `exe_path` in process `pid` is unmodified: for
/// every executable mapping of that file in `/proc/<pid>/maps`, reads the
/// mapped range through `/proc/<pid>/mem` and compares it byte for byte with
/// the file at the mapping's offset (clamped to the file's size). Returns the
/// first differing address (e.g. a leftover `int3`) as the error, or an error
/// if no executable mapping of the file exists.
pub fn code_bytes_match_file(pid: i32, exe_path: impl AsRef<Path>) -> Result<(), String> {
    let exe_path = exe_path.as_ref();
    let canon = exe_path
        .canonicalize()
        .map_err(|e| format!("{}: {e}", exe_path.display()))?;
    let file = std::fs::read(&canon).map_err(|e| format!("{}: {e}", canon.display()))?;
    let mem = std::fs::File::open(format!("/proc/{pid}/mem"))
        .map_err(|e| format!("cannot open /proc/{pid}/mem: {e}"))?;
    let canon_str = canon.to_string_lossy();
    let exec: Vec<Mapping> = maps(pid)
        .into_iter()
        .filter(|m| m.perms.contains('x') && m.path == canon_str)
        .collect();
    if exec.is_empty() {
        return Err(format!(
            "process {pid} has no executable mapping of {}",
            canon.display()
        ));
    }
    for m in exec {
        let file_start = (m.offset as usize).min(file.len());
        let len = ((m.end - m.start) as usize).min(file.len() - file_start);
        let expected = &file[file_start..file_start + len];
        let mut actual = vec![0u8; len];
        mem.read_exact_at(&mut actual, m.start).map_err(|e| {
            format!(
                "cannot read {len} bytes at {:#x} of process {pid}: {e}",
                m.start
            )
        })?;
        if let Some(i) = expected.iter().zip(&actual).position(|(a, b)| a != b) {
            return Err(format!(
                "code of {} in process {pid} differs at {:#x} (file offset {:#x}): \
                 memory has {:#04x}, file has {:#04x}",
                canon.display(),
                m.start + i as u64,
                file_start + i,
                actual[i],
                expected[i]
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Preconditions
// ---------------------------------------------------------------------------

/// Panics, with the reason, unless this process may ptrace its children and
/// other processes of the same user: it must run as root, Yama's
/// `ptrace_scope` must allow attaching (or we must hold CAP_SYS_PTRACE), and
/// a real `PTRACE_SEIZE` of a child must succeed. Checked once per process.
pub fn require_ptrace() {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = CHECK.get_or_init(check_ptrace) {
        panic!("ptrace is not usable here, so these tests cannot run: {e}");
    }
}

fn check_ptrace() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Err(format!("the tests must run as root (euid is {euid})"));
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    const CAP_SYS_PTRACE: u32 = 19;
    let has_sys_ptrace = cap_eff & (1u64 << CAP_SYS_PTRACE) != 0;
    if let Ok(scope) = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope") {
        match scope.trim() {
            "0" => {}
            "3" => return Err("kernel.yama.ptrace_scope is 3: ptrace is disabled".into()),
            s if !has_sys_ptrace => {
                return Err(format!(
                    "kernel.yama.ptrace_scope is {s} and CAP_SYS_PTRACE is missing"
                ));
            }
            _ => {}
        }
    }
    let mut child = Command::new("sleep")
        .arg("30")
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start `sleep` to test ptrace: {e}"))?;
    let pid = child.id() as libc::pid_t;
    // SAFETY: PTRACE_SEIZE of our own child; no pointers are passed.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_SEIZE,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    let err = std::io::Error::last_os_error();
    let _ = child.kill();
    let _ = child.wait();
    if r != 0 {
        return Err(format!("PTRACE_SEIZE of a child failed: {err}"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Temporary directories
// ---------------------------------------------------------------------------

/// A fresh directory under `std::env::temp_dir()`, removed with its contents
/// when dropped.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<tmp>/scry-<prefix>-<pid>-<n>-<nanos>` (a new directory: never
    /// one that already existed).
    pub fn new(prefix: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        loop {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir()
                .join(format!("scry-{prefix}-{}-{n}-{nanos}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => return TempDir { path },
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("cannot create {}: {e}", path.display()),
            }
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path().join(name)`: a path inside the directory.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_state_handles_parens_and_spaces_in_comm() {
        assert_eq!(stat_state("123 (work (7)) S 1 2 3"), Some('S'));
        assert_eq!(stat_state("5 (a) b) c) t 1"), Some('t'));
        assert_eq!(stat_state("5 (x)"), None);
    }

    #[test]
    fn maps_line_with_spaces_in_path() {
        let m = parse_maps_line("7f00-7f10 r-xp 00001000 08:01 42    /tmp/a b/x").unwrap();
        assert_eq!((m.start, m.end, m.offset), (0x7f00, 0x7f10, 0x1000));
        assert_eq!(m.perms, "r-xp");
        assert_eq!(m.path, "/tmp/a b/x");
        let anon = parse_maps_line("7f00-7f10 rw-p 00000000 00:00 0 ").unwrap();
        assert_eq!(anon.path, "");
    }

    #[test]
    fn parse_kv_fields() {
        let kv = parse_kv("call seq=3 id=3 name=bob");
        assert_eq!(kv.len(), 3);
        assert_eq!(kv["name"], "bob");
        assert_eq!(kv_i64("call seq=3", "seq"), 3);
    }
}
