//! Taking hold of the target: PTRACE_SEIZE on every thread (nobody stops), or starting a
//! program under the engine.

use super::core::{BpUser, Engine, EngineStats, Thread, ThreadState};
use super::{AttachInfo, EngineError, Event, ExecPolicy, Launch};
use crate::procfs;
use crate::ptrace::mem::CodeWriter;
use crate::ptrace::{self, Stop};
use nix::errno::Errno;
use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

pub(crate) fn launch(
    launch: Launch,
    exec_policy: ExecPolicy,
    events: Sender<Event>,
) -> Result<(Engine, AttachInfo), EngineError> {
    match launch {
        Launch::Attach { pid } => attach(pid, exec_policy, events),
        Launch::Spawn { program, args } => spawn(&program, &args, exec_policy, events),
    }
}

fn new_engine(
    pid: i32,
    exec_policy: ExecPolicy,
    events: Sender<Event>,
) -> Result<Engine, EngineError> {
    let code = CodeWriter::open(pid).map_err(|e| {
        EngineError::Attach(format!(
            "cannot open /proc/{pid}/mem for writing breakpoints: {e}"
        ))
    })?;
    Ok(Engine {
        pid,
        threads: HashMap::new(),
        children: HashMap::new(),
        bps: HashMap::new(),
        phantoms: HashMap::new(),
        slot_of: HashMap::new(),
        slots: Default::default(),
        probes: HashMap::new(),
        code,
        events,
        exec_policy,
        r_debug: None,
        stats: EngineStats::default(),
        exited: false,
        budget: crate::quota::OverheadBudget::default(),
        held_for_snapshots: std::collections::HashMap::new(),
        spin: std::time::Duration::ZERO,
        spin_until: None,
        overhead: crate::quota::Bucket::new(
            crate::quota::OverheadBudget::default().share * 1e9,
            crate::quota::OverheadBudget::default().share * 1e9,
            std::time::Instant::now(),
        ),
    })
}

fn attach(
    pid: i32,
    exec_policy: ExecPolicy,
    events: Sender<Event>,
) -> Result<(Engine, AttachInfo), EngineError> {
    let started = Instant::now();
    let status = procfs::read_status(pid).map_err(|_| {
        EngineError::Attach(format!(
            "no process with pid {pid} (it may have exited; `pgrep -a NAME` lists candidates)"
        ))
    })?;
    if status.tgid != pid {
        return Err(EngineError::Attach(format!(
            "{pid} is a thread of process {}, not a process: attach to {} instead",
            status.tgid, status.tgid
        )));
    }
    if pid == std::process::id() as i32 {
        return Err(EngineError::Attach("scry cannot attach to itself".into()));
    }
    if status.state == 'Z' {
        return Err(EngineError::Attach(format!(
            "process {pid} is a zombie (it has exited; its parent has not reaped it)"
        )));
    }
    let mut engine = new_engine(pid, exec_policy, events)?;
    let mut vanished = 0;
    // Threads created by a thread we have not seized yet are missed by TRACECLONE, so list
    // again until a round finds nobody new.
    loop {
        let tids = procfs::list_tasks(pid)
            .map_err(|_| EngineError::Attach(format!("process {pid} exited while we attached")))?;
        let mut new = 0;
        for tid in tids {
            if engine.threads.contains_key(&tid) {
                continue;
            }
            match ptrace::seize(tid) {
                Ok(()) => {
                    new += 1;
                    engine.threads.insert(
                        tid,
                        Thread {
                            pid,
                            state: ThreadState::Running,
                            pending_sig: 0,
                        },
                    );
                }
                // Gone between the listing and the seize: fine.
                Err(Errno::ESRCH) => vanished += 1,
                // Already ours: created by a thread we had seized, so TRACECLONE attached it.
                Err(Errno::EPERM) if tid != pid && traced_by_us(tid) => {
                    new += 1;
                    engine.threads.insert(
                        tid,
                        Thread {
                            pid,
                            state: ThreadState::Running,
                            pending_sig: 0,
                        },
                    );
                }
                Err(Errno::EPERM) if tid != pid && thread_is_exiting(tid) => vanished += 1,
                Err(e) if tid == pid || engine.threads.is_empty() => {
                    return Err(EngineError::Attach(explain_denied(pid, e)));
                }
                Err(e) => {
                    return Err(EngineError::Attach(format!(
                        "cannot attach to thread {tid} of process {pid}: {e}"
                    )));
                }
            }
        }
        if new == 0 {
            break;
        }
    }
    if engine.threads.is_empty() {
        return Err(EngineError::Attach(format!(
            "process {pid} exited while we attached"
        )));
    }
    let info = AttachInfo {
        pid,
        threads: engine.threads.len(),
        vanished,
        elapsed: started.elapsed(),
        stopped: Duration::ZERO,
    };
    Ok((engine, info))
}

fn traced_by_us(tid: i32) -> bool {
    let me = ptrace::gettid();
    procfs::read_status(tid)
        .is_ok_and(|s| s.tracer_pid == me || s.tracer_pid == std::process::id() as i32)
}

fn thread_is_exiting(tid: i32) -> bool {
    match procfs::read_status(tid) {
        Ok(s) => matches!(s.state, 'X' | 'Z'),
        Err(_) => true,
    }
}

/// Why the kernel refused PTRACE_SEIZE, and what to do about it.
pub(crate) fn explain_denied(pid: i32, err: Errno) -> String {
    let mut why = vec![format!(
        "cannot attach to process {pid} ({}): {err}",
        procfs::status::comm(pid)
    )];
    if let Ok(target) = procfs::read_status(pid) {
        if target.tracer_pid != 0 {
            why.push(format!(
                "it is already traced by process {} ({}); a process can have only one tracer: detach that \
                 debugger first (in gdb: `detach`)",
                target.tracer_pid,
                procfs::status::comm(target.tracer_pid)
            ));
        }
        let me = procfs::read_status(std::process::id() as i32).unwrap_or_default();
        const CAP_SYS_PTRACE: u64 = 1 << 19;
        if me.cap_eff & CAP_SYS_PTRACE == 0 {
            if target.uid.1 != me.uid.1 {
                why.push(format!(
                    "it runs as uid {} and scry as uid {}: run scry as that user, or as root, or grant CAP_SYS_PTRACE \
                     (`sudo setcap cap_sys_ptrace+ep $(which scry)`; in a container: `--cap-add SYS_PTRACE`)",
                    target.uid.1, me.uid.1
                ));
            } else {
                why.push("scry lacks CAP_SYS_PTRACE (in a container: `--cap-add SYS_PTRACE`, and a seccomp profile that allows ptrace)".into());
            }
        }
    }
    match std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").map(|s| s.trim().to_string()) {
        Ok(scope) if scope != "0" => why.push(format!(
            "/proc/sys/kernel/yama/ptrace_scope is {scope}: only {} may attach; `sudo sysctl kernel.yama.ptrace_scope=0` \
             allows attaching to your own processes",
            match scope.as_str() {
                "1" => "a parent process, or a process with CAP_SYS_PTRACE,",
                "2" => "a process with CAP_SYS_PTRACE",
                _ => "nobody (scope 3 cannot be lowered without a reboot)",
            }
        )),
        _ => {}
    }
    why.join("\n  ")
}

/// Starts `program` under the engine and runs it to its entry point, where it is held until
/// the session has planted its probes.
fn spawn(
    program: &std::path::Path,
    args: &[String],
    exec_policy: ExecPolicy,
    events: Sender<Event>,
) -> Result<(Engine, AttachInfo), EngineError> {
    let started = Instant::now();
    let pid = fork_stopped(program, args)?;
    let err = |what: &str, e: Errno| {
        EngineError::Attach(format!(
            "starting {} under scry: {what}: {e}",
            program.display()
        ))
    };
    // Wait for the self-inflicted SIGSTOP.
    let mut status = 0;
    let waited = loop {
        // SAFETY: valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WUNTRACED | libc::__WALL) };
        if r == -1 && Errno::last() == Errno::EINTR {
            continue;
        }
        break r;
    };
    if waited != pid || !libc::WIFSTOPPED(status) {
        return Err(EngineError::Attach(format!(
            "{} did not stop before exec as expected (waitpid returned {waited}, status {status:#x}, {})",
            program.display(),
            Errno::last()
        )));
    }
    ptrace::seize(pid).map_err(|e| err("PTRACE_SEIZE", e))?;
    // SAFETY: plain kill(2).
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let mut engine = new_engine(pid, exec_policy, events)?;
    engine.threads.insert(
        pid,
        Thread {
            pid,
            state: ThreadState::Running,
            pending_sig: 0,
        },
    );
    // Run to the exec stop, passing every other stop through.
    loop {
        match ptrace::wait_for(pid, true) {
            Ok(Some(Stop::Event {
                event: libc::PTRACE_EVENT_EXEC,
                ..
            })) => break,
            Ok(Some(Stop::Event { .. })) | Ok(Some(Stop::Syscall { .. })) => {
                let _ = ptrace::cont(pid, 0);
            }
            Ok(Some(Stop::Signal { sig, .. })) => {
                let _ = ptrace::cont(pid, if sig == libc::SIGSTOP { 0 } else { sig });
            }
            Ok(Some(Stop::Exited { code, .. })) => {
                return Err(EngineError::Attach(format!(
                    "{} exited with code {code} before it started (does it exist and is it executable?)",
                    program.display()
                )));
            }
            Ok(Some(Stop::Killed { sig, .. })) => {
                return Err(EngineError::Attach(format!(
                    "{} was killed by signal {sig} before it started",
                    program.display()
                )));
            }
            Ok(None) | Err(Errno::EINTR) => {}
            Err(e) => return Err(err("waiting for exec", e)),
        }
    }
    // The new image is mapped, its libraries are not: hold it at its entry point.
    engine.code = CodeWriter::open(pid)
        .map_err(|e| EngineError::Attach(format!("cannot open /proc/{pid}/mem: {e}")))?;
    let entry = read_auxv_entry(pid).ok_or_else(|| {
        EngineError::Attach("cannot find the program's entry point (AT_ENTRY)".into())
    })?;
    engine.plant_internal(entry, BpUser::Entry)?;
    let _ = ptrace::cont(pid, 0);
    let info = AttachInfo {
        pid,
        threads: 1,
        vanished: 0,
        elapsed: started.elapsed(),
        stopped: Duration::ZERO,
    };
    Ok((engine, info))
}

/// AT_ENTRY from /proc/PID/auxv.
pub(crate) fn read_auxv_entry(pid: i32) -> Option<u64> {
    let bytes = std::fs::read(format!("/proc/{pid}/auxv")).ok()?;
    bytes.chunks_exact(16).find_map(|kv| {
        let k = u64::from_le_bytes(kv[..8].try_into().unwrap());
        let v = u64::from_le_bytes(kv[8..].try_into().unwrap());
        (k == libc::AT_ENTRY).then_some(v)
    })
}

/// Forks a child that stops itself (SIGSTOP) and then execs `program`. std's `Command` cannot
/// be used: it waits for the exec before returning, and the child stops before it.
fn fork_stopped(program: &std::path::Path, args: &[String]) -> Result<i32, EngineError> {
    let bad =
        |what: String| EngineError::Attach(format!("cannot start {}: {what}", program.display()));
    // Resolve the program like a shell would, before forking.
    let path = if program.as_os_str().as_bytes().contains(&b'/') {
        program.to_path_buf()
    } else {
        std::env::var_os("PATH")
            .and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(program))
                    .find(|p| p.is_file())
            })
            .ok_or_else(|| bad("not found in PATH".into()))?
    };
    if !path.is_file() {
        return Err(bad("no such file".into()));
    }
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| bad("the path contains a NUL byte".into()))?;
    let mut c_args = vec![
        CString::new(program.as_os_str().as_bytes()).map_err(|_| bad("NUL in argument".into()))?,
    ];
    for a in args {
        c_args.push(
            CString::new(a.as_bytes())
                .map_err(|_| bad("an argument contains a NUL byte".into()))?,
        );
    }
    let c_env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    let mut argv: Vec<*const libc::c_char> = c_args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = c_env.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: after fork the child only calls async-signal-safe functions (sigprocmask, raise,
    // execve, _exit) on memory prepared before the fork.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(bad(format!("fork failed: {}", Errno::last()))),
        0 => unsafe {
            // The child: an empty signal mask, as a shell would give it (the parent's threads
            // may block signals), stop for the tracer, then become the program.
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            libc::raise(libc::SIGSTOP);
            libc::execve(c_path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(127)
        },
        pid => Ok(pid),
    }
}
