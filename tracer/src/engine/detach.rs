//! Leaving the target as if we were never there.
//!
//! 1. Every int3 gets its original byte back, while the threads run (removing is always safe;
//!    a thread that trapped in the meantime is rewound to the original instruction).
//! 2. Each thread is stopped on its own (PTRACE_INTERRUPT) — never all at once — and detached.
//!    A thread inside an out-of-line slot is first moved back to the equivalent place in the
//!    original code; one in the middle of a relocated call's sequence runs a few more
//!    instructions and is caught again. A pending signal is handed over with the detach.
//! 3. Threads and forked children that appear meanwhile are handled the same way.
//!
//! Slot pages stay mapped (see slots.rs). A thread that will not stop within the time limit
//! (uninterruptible sleep) is left to the kernel, which detaches it when scry exits; the
//! int3s are already gone by then.

use super::DetachReport;
use super::core::{Engine, ThreadState};
use crate::ptrace::{self, Stop, Tid};
use nix::errno::Errno;
use std::collections::HashSet;
use std::time::{Duration, Instant};

pub(crate) fn detach_all(e: &mut Engine) -> DetachReport {
    let mut report = DetachReport::default();
    let addrs: Vec<u64> = e.bps.keys().copied().collect();
    for addr in addrs {
        report.bytes_restored += 1;
        e.remove_bp(addr);
    }
    e.probes.clear();

    // Threads we still have to stop and detach.
    let mut waiting: HashSet<Tid> = HashSet::new();
    let tids: Vec<Tid> = e.threads.keys().copied().collect();
    for tid in tids {
        let state = e.threads[&tid].state.clone();
        match state {
            ThreadState::Held { mut regs, bp } | ThreadState::Serving { mut regs, bp } => {
                // Stopped on an int3 that is now gone: back to the original instruction.
                regs.rip = bp;
                let _ = ptrace::set_regs(tid, &regs);
                report.rewound += 1;
                finish(e, tid, 0, &mut report);
            }
            ThreadState::Stopped => {
                // Stopped and not resumed yet (the engine was interrupted mid-way): it will
                // report nothing more, so let it go from where it is.
                waiting.insert(tid);
                settle(e, tid, 0, &mut waiting, &mut report);
            }
            // A thread in a group-stop (SIGSTOP from outside) is left listening, and the kernel
            // refuses to detach a listening thread: interrupt it too. Detached, it stays
            // stopped, as it would without us.
            ThreadState::GroupStopped | ThreadState::Running => match ptrace::interrupt(tid) {
                Ok(()) => {
                    waiting.insert(tid);
                }
                Err(_) => {
                    e.threads.remove(&tid);
                }
            },
        }
    }
    for (child, info) in e.children.clone() {
        if info.running {
            let _ = ptrace::interrupt(child);
            waiting.insert(child);
        } else if info.stopped {
            // A forked child still waiting at its first stop for its parent's event.
            if let Ok(w) = crate::ptrace::mem::CodeWriter::open(child) {
                for (addr, orig) in &e.phantoms {
                    let _ = w.write(*addr, &[*orig]);
                }
            }
            let _ = ptrace::detach(child, 0);
        }
    }

    // Threads that stopped during this detach (and were let go, or will be).
    let mut done: HashSet<Tid> = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while !waiting.is_empty() && Instant::now() < deadline {
        let stop = match ptrace::wait_any(false) {
            Ok(Some(stop)) => stop,
            Ok(None) | Err(Errno::EINTR) => {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            Err(_) => break,
        };
        let tid = stop.tid();
        if !matches!(stop, Stop::Exited { .. } | Stop::Killed { .. }) {
            done.insert(tid);
        }
        match stop {
            Stop::Exited { .. } | Stop::Killed { .. } => {
                waiting.remove(&tid);
                e.threads.remove(&tid);
                e.children.remove(&tid);
            }
            Stop::Event {
                event: libc::PTRACE_EVENT_CLONE | libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK,
                ..
            } => {
                // A thread or child born during detach: it will report a first stop; take it
                // (unless that first stop came before this event and it is already let go).
                if let Ok(new) = ptrace::event_msg(tid)
                    && !done.contains(&(new as Tid))
                {
                    waiting.insert(new as Tid);
                }
                settle(e, tid, 0, &mut waiting, &mut report);
            }
            Stop::Signal { sig, .. } => {
                let mut sig = sig;
                if sig == libc::SIGTRAP
                    && let Ok(mut regs) = ptrace::get_regs(tid)
                {
                    let addr = regs.rip.wrapping_sub(1);
                    if e.phantoms.contains_key(&addr) {
                        regs.rip = addr;
                        let _ = ptrace::set_regs(tid, &regs);
                        report.rewound += 1;
                        sig = 0;
                    }
                }
                waiting.insert(tid);
                settle(e, tid, sig, &mut waiting, &mut report);
            }
            Stop::Event { .. } | Stop::Syscall { .. } => {
                waiting.insert(tid);
                settle(e, tid, 0, &mut waiting, &mut report);
            }
        }
    }
    for tid in waiting {
        let state = crate::procfs::read_status(tid)
            .map(|s| format!("state {}, tracer {}", s.state, s.tracer_pid))
            .unwrap_or_else(|_| "gone".into());
        report.problems.push(format!(
            "thread {tid} did not stop within 3 s ({state}); the kernel detaches it when scry exits"
        ));
    }
    e.threads.clear();
    e.children.clear();
    report
}

/// A thread of ours is stopped: move it out of any slot, restore int3-free memory for a new
/// forked child, and detach it (delivering `sig`).
fn settle(
    e: &mut Engine,
    tid: Tid,
    sig: i32,
    waiting: &mut HashSet<Tid>,
    report: &mut DetachReport,
) {
    if let Ok(mut regs) = ptrace::get_regs(tid) {
        match e.slot_exit(regs.rip) {
            Some(Some(original)) => {
                regs.rip = original;
                let _ = ptrace::set_regs(tid, &regs);
                report.moved_out_of_slots += 1;
            }
            Some(None) => {
                // Mid-sequence: let it run a few instructions and catch it again.
                let _ = ptrace::cont(tid, sig);
                let _ = ptrace::interrupt(tid);
                return;
            }
            None => {}
        }
    }
    if !e.threads.contains_key(&tid) && e.pid != tid {
        // A forked child we never saw before: give it the original bytes.
        if let Ok(status) = crate::procfs::read_status(tid)
            && status.tgid != e.pid
            && let Ok(w) = crate::ptrace::mem::CodeWriter::open(tid)
        {
            for (addr, orig) in &e.phantoms {
                let _ = w.write(*addr, &[*orig]);
            }
        }
    }
    waiting.remove(&tid);
    finish(e, tid, sig, report);
}

fn finish(e: &mut Engine, tid: Tid, sig: i32, report: &mut DetachReport) {
    let pending = e.threads.get(&tid).map(|t| t.pending_sig).unwrap_or(0);
    let sig = if sig != 0 { sig } else { pending };
    if ptrace::detach(tid, sig).is_ok() {
        report.threads += 1;
    }
    e.threads.remove(&tid);
}
