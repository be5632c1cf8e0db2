//! Every ptrace call, waitpid and cross-process memory access in scry lives in this module.
//!
//! The kernel ties a tracee to the *thread* that attached it: ptrace requests from any other
//! thread fail with ESRCH. So the engine runs all of these from one dedicated OS thread
//! (`engine::run`), and nothing else in the crate calls them. Keeping the calls here also makes
//! the hit path's cost visible: each function is one system call (≈1.5 µs on a stopped thread
//! on our reference machine), and the hit path's file lists which ones it makes.
//!
//! Errors are `nix::errno::Errno`; `ESRCH` almost always means "the thread is gone" (it exited
//! or was killed between two of our calls) and callers treat it as such.

pub mod floor;
pub mod mem;

use nix::errno::Errno;

/// A thread (task) id in the target.
pub type Tid = i32;

/// ptrace options set on every tracee: follow threads, forks, vforks and exec, report thread
/// exit, and mark syscall stops (only used while injecting a syscall). Never EXITKILL: if scry
/// dies, the target must live.
pub const OPTIONS: libc::c_int = libc::PTRACE_O_TRACECLONE
    | libc::PTRACE_O_TRACEFORK
    | libc::PTRACE_O_TRACEVFORK
    | libc::PTRACE_O_TRACEEXEC
    | libc::PTRACE_O_TRACEEXIT
    | libc::PTRACE_O_TRACESYSGOOD;

fn check(ret: libc::c_long) -> Result<libc::c_long, Errno> {
    if ret == -1 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

fn request(req: libc::c_uint, tid: Tid, addr: usize, data: usize) -> Result<libc::c_long, Errno> {
    Errno::clear();
    // SAFETY: every request issued through this helper passes either integers or a pointer to a
    // live, correctly sized buffer owned by the caller for the duration of the call (see the
    // callers below). The kernel validates `tid`.
    let ret = unsafe {
        libc::ptrace(
            req,
            tid,
            addr as *mut libc::c_void,
            data as *mut libc::c_void,
        )
    };
    check(ret)
}

/// PTRACE_SEIZE with [`OPTIONS`]: trace `tid` without stopping it.
pub fn seize(tid: Tid) -> Result<(), Errno> {
    request(libc::PTRACE_SEIZE, tid, 0, OPTIONS as usize).map(drop)
}

/// PTRACE_INTERRUPT: ask a running thread to stop (it reports PTRACE_EVENT_STOP).
pub fn interrupt(tid: Tid) -> Result<(), Errno> {
    request(libc::PTRACE_INTERRUPT, tid, 0, 0).map(drop)
}

/// PTRACE_CONT, delivering `sig` (0 for none).
pub fn cont(tid: Tid, sig: i32) -> Result<(), Errno> {
    request(libc::PTRACE_CONT, tid, 0, sig as usize).map(drop)
}

/// PTRACE_SYSCALL: continue to the next syscall entry or exit (syscall injection only).
pub fn cont_syscall(tid: Tid, sig: i32) -> Result<(), Errno> {
    request(libc::PTRACE_SYSCALL, tid, 0, sig as usize).map(drop)
}

/// PTRACE_LISTEN: leave a thread in group-stop (as if untraced) but let SIGCONT wake it.
pub fn listen(tid: Tid) -> Result<(), Errno> {
    request(libc::PTRACE_LISTEN, tid, 0, 0).map(drop)
}

/// PTRACE_DETACH, delivering `sig` (0 for none).
pub fn detach(tid: Tid, sig: i32) -> Result<(), Errno> {
    request(libc::PTRACE_DETACH, tid, 0, sig as usize).map(drop)
}

/// PTRACE_GETREGS.
pub fn get_regs(tid: Tid) -> Result<libc::user_regs_struct, Errno> {
    // SAFETY: user_regs_struct is plain old data; all-zero is a valid value.
    let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    request(libc::PTRACE_GETREGS, tid, 0, &mut regs as *mut _ as usize)?;
    Ok(regs)
}

/// PTRACE_GETFPREGS: the x87/SSE registers (only read when a probe needs an xmm register).
pub fn get_fpregs(tid: Tid) -> Result<libc::user_fpregs_struct, Errno> {
    // SAFETY: user_fpregs_struct is plain old data; all-zero is a valid value.
    let mut fp: libc::user_fpregs_struct = unsafe { std::mem::zeroed() };
    request(libc::PTRACE_GETFPREGS, tid, 0, &mut fp as *mut _ as usize)?;
    Ok(fp)
}

/// PTRACE_SETREGS.
pub fn set_regs(tid: Tid, regs: &libc::user_regs_struct) -> Result<(), Errno> {
    request(libc::PTRACE_SETREGS, tid, 0, regs as *const _ as usize).map(drop)
}

/// PTRACE_GETEVENTMSG: the new tid after a clone/fork event, the exit status at an exit event.
pub fn event_msg(tid: Tid) -> Result<u64, Errno> {
    let mut msg: libc::c_ulong = 0;
    request(
        libc::PTRACE_GETEVENTMSG,
        tid,
        0,
        &mut msg as *mut _ as usize,
    )?;
    Ok(msg)
}

/// PTRACE_GETSIGINFO: the siginfo of a signal-delivery-stop.
pub fn siginfo(tid: Tid) -> Result<libc::siginfo_t, Errno> {
    // SAFETY: siginfo_t is plain old data; all-zero is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    request(
        libc::PTRACE_GETSIGINFO,
        tid,
        0,
        &mut info as *mut _ as usize,
    )?;
    Ok(info)
}

/// What waitpid reported for one tracee.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The thread exited with this code (for the leader at process exit: the process's code).
    Exited { tid: Tid, code: i32 },
    /// The thread was killed by a signal.
    Killed { tid: Tid, sig: i32 },
    /// A signal-delivery-stop: the thread is about to receive `sig`.
    Signal { tid: Tid, sig: i32 },
    /// A PTRACE_EVENT_* stop (`event` is the PTRACE_EVENT_ number; `sig` is WSTOPSIG, which
    /// for PTRACE_EVENT_STOP tells a group-stop (a stop signal) from an interrupt (SIGTRAP)).
    Event { tid: Tid, event: i32, sig: i32 },
    /// A syscall-entry or syscall-exit stop (we only cause these while injecting a syscall).
    Syscall { tid: Tid },
}

impl Stop {
    /// The thread this report is about.
    pub fn tid(&self) -> Tid {
        match *self {
            Stop::Exited { tid, .. }
            | Stop::Killed { tid, .. }
            | Stop::Signal { tid, .. }
            | Stop::Event { tid, .. }
            | Stop::Syscall { tid } => tid,
        }
    }

    /// Decodes a raw wait status.
    pub fn decode(tid: Tid, status: i32) -> Stop {
        if libc::WIFEXITED(status) {
            Stop::Exited {
                tid,
                code: libc::WEXITSTATUS(status),
            }
        } else if libc::WIFSIGNALED(status) {
            Stop::Killed {
                tid,
                sig: libc::WTERMSIG(status),
            }
        } else {
            let sig = libc::WSTOPSIG(status);
            let event = (status >> 16) & 0xff;
            if event != 0 {
                Stop::Event { tid, event, sig }
            } else if sig == libc::SIGTRAP | 0x80 {
                Stop::Syscall { tid }
            } else {
                Stop::Signal { tid, sig }
            }
        }
    }
}

/// Waits for the next stop of any tracee of *this thread* (`__WALL | __WNOTHREAD`: children
/// that other threads of scry spawn, e.g. a compiler, are never reaped here). `block = false`
/// returns `Ok(None)` when nothing is pending. EINTR is returned to the caller: the engine is
/// woken for commands by a signal.
pub fn wait_any(block: bool) -> Result<Option<Stop>, Errno> {
    wait_for(-1, block)
}

/// Like [`wait_any`] for one thread only (used while injecting a syscall into it).
pub fn wait_for(tid: Tid, block: bool) -> Result<Option<Stop>, Errno> {
    let mut status = 0;
    let flags = libc::__WALL | libc::__WNOTHREAD | if block { 0 } else { libc::WNOHANG };
    // SAFETY: `status` is a valid out-pointer for the duration of the call.
    let ret = unsafe { libc::waitpid(tid, &mut status, flags) };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(None),
        tid => Ok(Some(Stop::decode(tid, status))),
    }
}

/// Sends `sig` to one thread of a process (tgkill).
pub fn tgkill(tgid: i32, tid: Tid, sig: i32) -> Result<(), Errno> {
    // SAFETY: plain syscall with integer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_tgkill, tgid, tid, sig) };
    check(ret as libc::c_long).map(drop)
}

/// The calling thread's kernel thread id.
pub fn gettid() -> Tid {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}
