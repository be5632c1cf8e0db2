//! Running the real `scry` binary from tests: start it, watch its stderr for progress, collect
//! its stdout (hits), wait for it to end.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `scry` process.
pub struct Scry {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    status: Option<ExitStatus>,
}

fn drain(stream: impl std::io::Read + Send + 'static, sink: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
}

impl Scry {
    /// Starts `scry ARGS...`.
    pub fn start<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Scry {
        Scry::start_with_env(args, &[])
    }

    /// Starts `scry ARGS...` with extra environment variables.
    ///
    /// `scry attach` gets `--rate off --overhead off` unless the arguments set either: a test
    /// of another capability must not depend on how fast the machine is through the quotas
    /// (tests/quotas.rs tests those, with them given explicitly).
    pub fn start_with_env<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &str)]) -> Scry {
        let mut args: Vec<std::ffi::OsString> =
            args.iter().map(|a| a.as_ref().to_os_string()).collect();
        let sets = |flag: &str| args.iter().any(|a| a == flag);
        if args.first().is_some_and(|a| a == "attach") && !sets("--rate") && !sets("--overhead") {
            for (i, a) in ["--rate", "off", "--overhead", "off"].iter().enumerate() {
                args.insert(1 + i, a.into());
            }
        }
        let mut child = Command::new(crate::scry_bin())
            .args(&args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start scry");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        drain(child.stdout.take().unwrap(), stdout.clone());
        drain(child.stderr.take().unwrap(), stderr.clone());
        Scry {
            child,
            stdout,
            stderr,
            status: None,
        }
    }

    /// scry's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Lines printed on stdout so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Lines printed on stderr so far.
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// stdout lines parsed as JSON (panics on a `{` line that is not JSON). Lines not
    /// starting with `{` are skipped: a program started under scry shares its stdout.
    pub fn json(&self) -> Vec<serde_json::Value> {
        self.stdout()
            .iter()
            .filter(|l| l.starts_with('{'))
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("scry printed a non-JSON line {l:?}: {e}"))
            })
            .collect()
    }

    /// Waits until a stderr line contains `needle`; panics (showing stderr) after `timeout`
    /// or if scry exits first.
    pub fn wait_stderr(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.stderr().into_iter().find(|l| l.contains(needle)) {
                return l;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                self.status = Some(st);
                std::thread::sleep(Duration::from_millis(50));
                if let Some(l) = self.stderr().into_iter().find(|l| l.contains(needle)) {
                    return l;
                }
                panic!(
                    "scry exited ({st}) before printing {needle:?}; stderr:\n{}",
                    self.stderr().join("\n")
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "scry did not print {needle:?} within {timeout:?}; stderr:\n{}",
                    self.stderr().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until at least `n` stdout lines arrived; panics after `timeout`.
    pub fn wait_lines(&mut self, n: usize, timeout: Duration) -> Vec<String> {
        let ok = crate::wait_until(timeout, || self.stdout.lock().unwrap().len() >= n);
        assert!(
            ok,
            "scry printed {} of {n} lines within {timeout:?}; stderr:\n{}",
            self.stdout().len(),
            self.stderr().join("\n")
        );
        self.stdout()
    }

    /// Sends a signal to scry.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Waits for scry to exit; panics (showing stderr) after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(st) = self.status {
            return st;
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.status = Some(st);
                // Let the drain threads catch the last lines.
                std::thread::sleep(Duration::from_millis(50));
                return st;
            }
            if Instant::now() > deadline {
                panic!(
                    "scry did not exit within {timeout:?}; stderr:\n{}",
                    self.stderr().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Scry {
    fn drop(&mut self) {
        if self.status.is_none() {
            // SIGTERM first: scry detaches cleanly on it.
            self.signal(libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `scry ARGS...` to completion (at most `timeout`): (exit code, stdout, stderr).
pub fn run_scry<S: AsRef<std::ffi::OsStr>>(
    args: &[S],
    timeout: Duration,
) -> (i32, Vec<String>, Vec<String>) {
    let mut s = Scry::start(args);
    let st = s.wait(timeout);
    (st.code().unwrap_or(-1), s.stdout(), s.stderr())
}

/// What [`logged_run`] saw.
pub struct LoggedRun {
    /// The program's own record lines (all of them).
    pub records: Vec<String>,
    /// scry's stdout lines parsed as JSON (hits and snapshots).
    pub hits: Vec<serde_json::Value>,
    /// scry's stdout lines as text.
    pub stdout: Vec<String>,
    /// scry's stderr lines.
    pub stderr: Vec<String>,
    /// scry's exit code.
    pub code: Option<i32>,
    /// The target's pid.
    pub pid: i32,
}

impl LoggedRun {
    /// The record lines that start with `call `.
    pub fn calls(&self) -> Vec<&String> {
        self.records
            .iter()
            .filter(|l| l.starts_with("call "))
            .collect()
    }
}

/// The common shape of a test run: start testbin `bin` with `bin_args` plus `--record FILE
/// --wait-stdin`, attach `scry attach --pid PID SCRY_ARGS...`, release the program once scry
/// has planted, and wait for the program to exit (successfully) and scry to end.
pub fn logged_run(bin: &str, bin_args: &[&str], scry_args: &[&str]) -> LoggedRun {
    crate::require_ptrace();
    let dir = crate::TempDir::new("logged-run");
    let rec = dir.join("records");
    let mut args: Vec<&str> = bin_args.to_vec();
    args.extend(["--record", rec.to_str().unwrap(), "--wait-stdin"]);
    let mut target = crate::Target::spawn(bin, &args);
    let pid = target.pid().to_string();
    let mut full = vec!["attach", "--pid", pid.as_str()];
    full.extend_from_slice(scry_args);
    let mut scry = Scry::start(&full);
    scry.wait_stderr("printing hits", Duration::from_secs(30));
    target.send_stdin(b'g');
    let status = target.wait_exit(Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()),
        "{bin} failed under scry ({status:?}); scry said {:?}",
        scry.stderr()
    );
    let code = scry.wait(Duration::from_secs(20)).code();
    LoggedRun {
        records: crate::read_records(&rec),
        hits: scry.json(),
        stdout: scry.stdout(),
        stderr: scry.stderr(),
        code,
        pid: target.pid(),
    }
}
