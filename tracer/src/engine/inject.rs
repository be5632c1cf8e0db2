//! Running one system call in the target: mapping a slot page.
//!
//! The thread that just hit is stopped at its int3 (not inside a system call, so no restart
//! state to preserve). We point its RIP at an existing `syscall` instruction (in the vDSO or
//! libc: we write no code for this), load the arguments, and let it run with PTRACE_SYSCALL:
//! it stops at the syscall's entry and again at its exit, where RAX holds the result. Then its
//! registers are restored. Only this thread pauses, for two extra stops, once per module.
//!
//! A target under a seccomp filter is never injected into: the filter might kill it for a
//! system call it does not expect.

use super::core::Engine;
use crate::procfs::{self, Mapping};
use crate::ptrace::mem::{self, PAGE};
use crate::ptrace::{self, Stop, Tid};

const SYS_MMAP: u64 = 9;
const SYS_MUNMAP: u64 = 11;
const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;

/// Maps one PROT_READ|PROT_EXEC anonymous page at exactly `addr` (chosen at plant time).
pub(crate) fn map_page_at(
    e: &mut Engine,
    tid: Tid,
    regs: &libc::user_regs_struct,
    addr: u64,
) -> Result<(), String> {
    let status = procfs::read_status(e.pid)
        .map_err(|err| format!("cannot read the target's status: {err}"))?;
    if status.seccomp != 0 {
        return Err("the target runs under a seccomp filter, so scry will not inject the mmap its out-of-line \
                    slots need (the filter could kill it or signal it); this probe cannot be served"
            .into());
    }
    let gadget = e
        .slots
        .gadget
        .ok_or("found no syscall instruction in the target to borrow")?;
    let args = [
        addr,
        PAGE,
        (libc::PROT_READ | libc::PROT_EXEC) as u64,
        (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64 | MAP_FIXED_NOREPLACE,
        u64::MAX,
        0,
    ];
    match syscall(e, tid, regs, gadget, SYS_MMAP, args)? {
        r if r == addr as i64 => Ok(()),
        r if r < 0 && r > -4096 => Err(format!(
            "mmap in the target failed: {}",
            nix::errno::Errno::from_raw(-r as i32)
        )),
        r => {
            // An old kernel that ignores MAP_FIXED_NOREPLACE placed it elsewhere: the code was
            // encoded for `addr`, so give the page back.
            let _ = syscall(
                e,
                tid,
                regs,
                gadget,
                SYS_MUNMAP,
                [r as u64, PAGE, 0, 0, 0, 0],
            );
            Err(format!(
                "mmap placed the slot page at {r:#x}, not at {addr:#x} (kernel older than 4.17?)"
            ))
        }
    }
}

/// Free pages near `near`, closest first, preferring addresses below it (above a module lies
/// its heap, which must stay free to grow).
pub(crate) fn candidate_pages(maps: &[Mapping], near: u64) -> Vec<u64> {
    let mut sorted: Vec<(u64, u64)> = maps.iter().map(|m| (m.start, m.end)).collect();
    sorted.sort();
    let mut out = Vec::new();
    let mut prev_end = 0x10000u64; // mmap_min_addr
    for (start, end) in sorted {
        if start > prev_end + 2 * PAGE {
            // Gap [prev_end, start): leave a guard page on each side.
            let below = start - 2 * PAGE;
            let above = prev_end + PAGE;
            if below < near && near - below < super::slots::MAX_DISTANCE {
                out.push((0u8, near - below, below));
            } else if above > near && above - near < super::slots::MAX_DISTANCE {
                out.push((1u8, above - near, above));
            }
        }
        prev_end = prev_end.max(end);
    }
    out.sort();
    out.into_iter().map(|(_, _, a)| a).collect()
}

/// Finds the bytes `0f 05` (syscall) in the vDSO or another executable mapping.
pub(crate) fn find_syscall_gadget(pid: i32) -> Option<u64> {
    let maps = procfs::read_maps(pid).ok()?;
    let mut order: Vec<&Mapping> = maps.iter().filter(|m| m.exec && m.read).collect();
    order.sort_by_key(|m| {
        if m.path == "[vdso]" {
            0
        } else if m.path.contains("libc") {
            1
        } else {
            2
        }
    });
    for m in order {
        let len = (m.end - m.start).min(1 << 20) as usize;
        let mut buf = vec![0u8; len];
        if mem::read(pid, m.start, &mut buf).is_err() {
            continue;
        }
        if let Some(i) = buf.windows(2).position(|w| w == [0x0f, 0x05]) {
            return Some(m.start + i as u64);
        }
    }
    None
}

/// Runs one system call on the stopped thread `tid` and restores its registers.
fn syscall(
    e: &mut Engine,
    tid: Tid,
    saved: &libc::user_regs_struct,
    gadget: u64,
    nr: u64,
    args: [u64; 6],
) -> Result<i64, String> {
    let mut regs = *saved;
    regs.rip = gadget;
    regs.rax = nr;
    regs.orig_rax = u64::MAX; // not in a syscall: no restart logic on resume
    regs.rdi = args[0];
    regs.rsi = args[1];
    regs.rdx = args[2];
    regs.r10 = args[3];
    regs.r8 = args[4];
    regs.r9 = args[5];
    ptrace::set_regs(tid, &regs).map_err(|err| format!("setting registers failed: {err}"))?;
    let mut syscall_stops = 0;
    ptrace::cont_syscall(tid, 0).map_err(|err| format!("PTRACE_SYSCALL failed: {err}"))?;
    let result = loop {
        match ptrace::wait_for(tid, true) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(err) => return Err(format!("waiting for the injected syscall failed: {err}")),
            Ok(None) => continue,
            Ok(Some(Stop::Syscall { .. })) => {
                syscall_stops += 1;
                if syscall_stops == 2 {
                    let after = ptrace::get_regs(tid)
                        .map_err(|err| format!("reading the result failed: {err}"))?;
                    break after.rax as i64;
                }
                let _ = ptrace::cont_syscall(tid, 0);
            }
            Ok(Some(Stop::Signal { sig, .. })) => {
                // Keep it for when the thread resumes its own code.
                if let Some(t) = e.threads.get_mut(&tid) {
                    t.pending_sig = sig;
                }
                let _ = ptrace::cont_syscall(tid, 0);
            }
            Ok(Some(Stop::Exited { .. } | Stop::Killed { .. })) => {
                e.threads.remove(&tid);
                return Err("the thread exited during the injected syscall".into());
            }
            Ok(Some(Stop::Event { .. })) => {
                let _ = ptrace::cont_syscall(tid, 0);
            }
        }
    };
    ptrace::set_regs(tid, saved).map_err(|err| format!("restoring registers failed: {err}"))?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(start: u64, end: u64) -> Mapping {
        Mapping {
            start,
            end,
            read: true,
            write: false,
            exec: true,
            offset: 0,
            inode: 1,
            path: "/x".into(),
        }
    }

    #[test]
    fn prefers_the_closest_gap_below_the_module() {
        let maps = vec![
            m(0x40_0000, 0x40_5000),
            m(0x7f00_0000_0000, 0x7f00_0001_0000),
        ];
        let pages = candidate_pages(&maps, 0x40_1000);
        assert_eq!(pages[0], 0x40_0000 - 2 * PAGE);
        let pages = candidate_pages(&maps, 0x7f00_0000_1000);
        assert_eq!(pages[0], 0x7f00_0000_0000 - 2 * PAGE);
        assert!(
            pages
                .iter()
                .all(|p| p.abs_diff(0x7f00_0000_1000) < super::super::slots::MAX_DISTANCE)
        );
    }
}
