//! The ptrace floor, for `scry bench`: the cheapest possible stop. A program that executes
//! int3 instructions of its own (`loop.c --int3`) runs under a tracer that does nothing but
//! continue it: waitpid, PTRACE_CONT, nothing read, nothing written. Whatever scry adds on
//! top of this per hit is scry's; this much is the kernel's (and the machine's wake-ups).

use nix::errno::Errno;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What one floor run saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct FloorRun {
    /// The program's int3 stops, continued (the exec's own SIGTRAP is not counted).
    pub traps: u64,
    /// The program's exit status (None: killed by a signal).
    pub exit_code: Option<i32>,
}

/// Runs `program args…` traced (PTRACE_TRACEME), its stdout on /dev/null, and continues every
/// stop until it exits: SIGTRAPs are swallowed, other signals delivered. Call it from the
/// thread that will wait for the child (the tracer is the forking thread).
pub fn run_floor(program: &Path, args: &[String]) -> Result<FloorRun, Errno> {
    let path = CString::new(program.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let mut owned = vec![path.clone()];
    for a in args {
        owned.push(CString::new(a.as_bytes()).map_err(|_| Errno::EINVAL)?);
    }
    let mut argv: Vec<*const libc::c_char> = owned.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    // SAFETY: open of a NUL-terminated literal; the descriptor is closed below.
    let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY) };
    if null < 0 {
        return Err(Errno::last());
    }
    // SAFETY: fork, then in the child only async-signal-safe calls (ptrace, dup2, execv,
    // _exit) on memory prepared before the fork.
    let child = unsafe { libc::fork() };
    if child == 0 {
        unsafe {
            libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
            libc::dup2(null, 1);
            libc::execv(path.as_ptr(), argv.as_ptr());
            libc::_exit(127);
        }
    }
    // SAFETY: closing our copy of the descriptor opened above.
    unsafe { libc::close(null) };
    if child < 0 {
        return Err(Errno::last());
    }
    let mut run = FloorRun::default();
    let mut exec_seen = false;
    loop {
        let mut status = 0;
        // SAFETY: waitpid for any of our tracees (the child and, with TRACECLONE, its
        // threads) with a valid status pointer.
        let tid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
        if tid < 0 {
            let e = Errno::last();
            if e == Errno::EINTR {
                continue;
            }
            return Err(e);
        }
        if tid == child && libc::WIFEXITED(status) {
            run.exit_code = Some(libc::WEXITSTATUS(status));
            return Ok(run);
        }
        if tid == child && libc::WIFSIGNALED(status) {
            return Ok(run);
        }
        if !libc::WIFSTOPPED(status) {
            continue; // a thread ended
        }
        let sig = libc::WSTOPSIG(status);
        let event = status >> 16;
        let deliver = if event != 0 {
            0 // a clone report
        } else if sig == libc::SIGTRAP && !exec_seen {
            // The exec's stop: follow the threads it will create from now on.
            exec_seen = true;
            // SAFETY: PTRACE_SETOPTIONS on our stopped tracee with an options word.
            unsafe {
                libc::ptrace(
                    libc::PTRACE_SETOPTIONS,
                    child,
                    0,
                    libc::PTRACE_O_TRACECLONE as libc::c_long,
                )
            };
            0
        } else if sig == libc::SIGTRAP {
            run.traps += 1;
            0
        } else if sig == libc::SIGSTOP && tid != child {
            0 // a new thread's first stop
        } else {
            sig
        };
        // SAFETY: PTRACE_CONT of a stopped tracee with a signal number.
        unsafe { libc::ptrace(libc::PTRACE_CONT, tid, 0, deliver as libc::c_long) };
    }
}
