//! The hit path: what happens between a thread trapping on one of our int3s and its resuming.
//!
//! Read this file top to bottom; it is the whole story. Only the thread that trapped is
//! stopped; every other thread runs on, and the int3 stays in place, so their hits are served
//! too. Per hit, the system calls are:
//!
//! 1. waitpid (in the event loop) reports the SIGTRAP;
//! 2. PTRACE_GETREGS;
//! 3. for each probe at this address, the probe's precompiled value plans: one
//!    process_vm_readv per pointer hop, for all values together (none for register values);
//! 4. the raw bytes go to a channel (no formatting, no JSON, no I/O here);
//! 5. PTRACE_SETREGS: a register-only displaced instruction (nop, jmp, jcc, mov between
//!    registers, lea) is carried out on the registers here (arch/emulate.rs); any other runs
//!    from the out-of-line slot RIP now points at, which jumps back;
//! 6. PTRACE_CONT.
//!
//! The first hit at an address builds its slot, and the first in a module maps the slot page
//! (an injected mmap: two more stops of this thread, once). No single-step, ever.

use crate::engine::core::{BpUser, Engine, ThreadState};
use crate::engine::{Event, HitRecord, ProbeEnd, ProbeId, ProbeKind};
use crate::ptrace::{self, Tid};
use crate::quota::PauseReason;
use std::time::{Instant, SystemTime};

/// Handles a SIGTRAP stop of `tid`. Returns false if the trap is not ours: it goes to the
/// target unchanged.
pub(crate) fn on_sigtrap(e: &mut Engine, tid: Tid, woke: Instant) -> bool {
    let Ok(regs) = ptrace::get_regs(tid) else {
        return true; // the thread is gone; its exit report follows
    };
    let addr = regs.rip.wrapping_sub(1);
    if !e.bps.contains_key(&addr) {
        if e.phantoms.contains_key(&addr) {
            // It trapped on an int3 we removed meanwhile: run the original instruction.
            e.stats.phantom_traps += 1;
            let mut regs = regs;
            regs.rip = addr;
            let _ = ptrace::set_regs(tid, &regs);
            e.resume(tid, 0);
            return true;
        }
        return false;
    }
    e.stats.traps += 1;
    if let Some(t) = e.threads.get_mut(&tid) {
        t.state = ThreadState::Serving { regs, bp: addr };
    }
    crate::fault::at_trap(e.stats.traps);
    let pid = e.threads.get(&tid).map(|t| t.pid).unwrap_or(e.pid);

    // Serve everyone this int3 serves. (The lists below allocate only when something is
    // pushed: a snapshot, a pause, an end — not on an ordinary hit.)
    let mut hold = false;
    let mut remove_entry = false;
    let mut snapshots: Vec<(ProbeId, u32, u64)> = Vec::new();
    let mut exhausted: Vec<(ProbeId, u64)> = Vec::new();
    let mut paused: Vec<(ProbeId, PauseReason)> = Vec::new();
    // The FP/SSE registers, read (one more ptrace call) only if a program needs an xmm register.
    let mut fp: Option<libc::user_fpregs_struct> = None;
    let global_dry = !e.overhead.has_tokens(woke);
    let share = e.budget.share;
    let n_users = e.bps[&addr].users.len();
    for i in 0..n_users {
        match e.bps[&addr].users[i] {
            BpUser::Probe { probe, site } => {
                let Some(p) = e.probes.get_mut(&probe) else {
                    continue;
                };
                if !p.active || p.quota.max_hits.is_some_and(|max| p.counts.hits >= max) {
                    continue; // paused, or another thread already took the last hit
                }
                // Quotas first: a probe over a rate or the overhead budget pauses before it
                // costs anything more.
                let over = if global_dry {
                    Some(PauseReason::GlobalOverhead { share })
                } else {
                    p.pause_reason(woke)
                };
                if let Some(reason) = over {
                    paused.push((probe, reason));
                    continue;
                }
                p.counts.executions += 1;
                // The condition, if any: a hit counts only when it holds.
                if let Some(cond) = &p.sites[site as usize].condition {
                    if fp.is_none() && cond.needs_fpregs() {
                        fp = ptrace::get_fpregs(tid).ok();
                    }
                    match condition_holds(cond, &regs, pid, tid, p.counts.executions, fp.as_ref()) {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(fault) => {
                            report_condition_error(e, probe, tid, fault);
                            continue;
                        }
                    }
                }
                let Some(p) = e.probes.get_mut(&probe) else {
                    continue;
                };
                p.counts.hits += 1;
                let seq = p.counts.hits;
                if p.quota.max_hits == Some(seq) {
                    exhausted.push((probe, seq));
                }
                e.stats.hits += 1;
                match p.kind {
                    // The session reads the frames and values while the thread is held.
                    ProbeKind::Snapshot => {
                        snapshots.push((probe, site, seq));
                        continue;
                    }
                    // A counter is its count.
                    ProbeKind::Count => continue,
                    ProbeKind::Log => {}
                }
                let values = crate::fetch::run(pid, &regs, &p.sites[site as usize].plans);
                if fp.is_none()
                    && p.sites[site as usize]
                        .exprs
                        .iter()
                        .any(|x| x.needs_fpregs())
                {
                    fp = ptrace::get_fpregs(tid).ok();
                }
                let exprs = run_exprs(
                    &p.sites[site as usize].exprs,
                    &regs,
                    fp.as_ref(),
                    pid,
                    tid,
                    p.counts.executions,
                );
                // The line's share of the byte rate: its literal text and what was captured.
                let bytes = p.literal_bytes as usize
                    + values.iter().map(fetched_len).sum::<usize>()
                    + exprs.len() * 8;
                p.lines.take(1.0, woke);
                p.bytes.take(bytes as f64, woke);
                let service_ns = woke.elapsed().as_nanos() as u64;
                let _ = e.events.send(Event::Hit(HitRecord {
                    probe,
                    site,
                    pid,
                    tid,
                    time: SystemTime::now(),
                    seq,
                    values,
                    exprs,
                    service_ns,
                }));
            }
            BpUser::LinkMap => hold |= link_map_consistent(e, pid),
            BpUser::Entry => {
                hold = true;
                remove_entry = true;
            }
        }
    }
    if remove_entry {
        e.remove_bp_user(addr, BpUser::Entry);
    }

    // Run the displaced instruction out of line and let the thread go — unless the session
    // must plant probes in a newly loaded library first.
    if hold || !snapshots.is_empty() {
        if let Some(t) = e.threads.get_mut(&tid) {
            t.state = ThreadState::Held { regs, bp: addr };
        }
        if !snapshots.is_empty() {
            let probes = snapshots.iter().map(|(p, _, _)| *p).collect();
            e.held_for_snapshots.insert(tid, (woke, probes));
        }
        let last = snapshots.len();
        for (i, (probe, site, seq)) in snapshots.into_iter().enumerate() {
            let release = !hold && i + 1 == last;
            // The snapshot sees the thread as at the probed instruction (rip on it, not after
            // the int3).
            let at_site = libc::user_regs_struct { rip: addr, ..regs };
            let fpregs = fp.or_else(|| ptrace::get_fpregs(tid).ok()).map(Box::new);
            let _ = e.events.send(Event::SnapshotHit {
                probe,
                site,
                pid,
                tid,
                regs: Box::new(at_site),
                fpregs,
                seq,
                time: SystemTime::now(),
                release,
            });
        }
        if hold {
            let _ = e.events.send(Event::ModulesChanged { held: Some(tid) });
        }
    } else {
        resume_displaced(e, tid, regs, addr);
    }
    // What this stop cost the thread: our service time, plus what a stop costs that we
    // cannot see (the kernel's, the wake-ups). Charged to the process's budget and to every
    // probe served here.
    // One clock read serves the service time and the buckets.
    let now = Instant::now();
    let service = now.saturating_duration_since(woke).as_nanos() as u64;
    e.stats.service_ns_total += service;
    e.stats.service_ns_max = e.stats.service_ns_max.max(service);
    let cost = service + e.budget.stop_cost.as_nanos() as u64;
    e.overhead.take(cost as f64, now);
    if let Some(bp) = e.bps.get(&addr) {
        for user in &bp.users {
            if let BpUser::Probe { probe, .. } = user
                && let Some(p) = e.probes.get_mut(probe)
                && p.active
            {
                p.overhead.take(cost as f64, now);
                p.counts.stopped_ns += cost;
            }
        }
    }
    for (probe, hits) in exhausted {
        e.end_probe(probe, ProbeEnd::Exhausted { hits });
    }
    for (probe, reason) in paused {
        e.pause_probe(probe, reason);
    }
    true
}

/// Bytes a fetched value captured (for the byte rate).
fn fetched_len(v: &crate::plan::Fetched) -> usize {
    match v {
        crate::plan::Fetched::Bytes { value, string } => {
            value.len() + string.as_ref().map_or(0, |s| s.bytes.len())
        }
        _ => 8,
    }
}

/// Continues `tid`, stopped on the int3 at `addr`, through the out-of-line copy of the
/// instruction there.
pub(crate) fn resume_displaced(
    e: &mut Engine,
    tid: Tid,
    mut regs: libc::user_regs_struct,
    addr: u64,
) {
    // A register-only instruction (nop, jmp, jcc, mov reg-reg, lea) is carried out right
    // here on the registers: no slot.
    if let Some(bp) = e.bps.get(&addr)
        && let Some(em) = crate::arch::emulate::classify(&bp.displaced.insn)
    {
        crate::arch::emulate::apply(&em, &mut regs, addr, bp.displaced.len);
        e.stats.emulated += 1;
        let _ = ptrace::set_regs(tid, &regs);
        e.resume(tid, 0);
        return;
    }
    match e.ensure_slot(addr, tid, &regs) {
        Ok(slot) => regs.rip = slot.start,
        Err(why) if e.bps.contains_key(&addr) => {
            // No way to run the instruction without lifting the int3: give the probe up
            // (visibly) rather than break the program, and run the original instruction.
            let probes: Vec<ProbeId> = e.bps[&addr]
                .users
                .iter()
                .filter_map(|u| {
                    if let BpUser::Probe { probe, .. } = u {
                        Some(*probe)
                    } else {
                        None
                    }
                })
                .collect();
            let _ = e.events.send(Event::Warning(format!(
                "cannot run the instruction at {addr:#x} out of line: {why}"
            )));
            for probe in probes {
                e.end_probe(probe, ProbeEnd::Failed(why.clone()));
            }
            e.remove_bp(addr);
            regs.rip = addr;
        }
        // The breakpoint is gone already (removed while the thread was held): the original
        // instruction is back in place.
        Err(_) => regs.rip = addr,
    }
    let _ = ptrace::set_regs(tid, &regs);
    e.resume(tid, 0);
}

/// Runs a template's expression holes against the stopped thread (one batched read per round).
fn run_exprs(
    exprs: &[crate::vm::Program],
    regs: &libc::user_regs_struct,
    fpregs: Option<&libc::user_fpregs_struct>,
    pid: i32,
    tid: Tid,
    hits: u64,
) -> Vec<crate::vm::Outcome> {
    if exprs.is_empty() {
        return Vec::new();
    }
    let ctx = crate::vm::HitContext {
        regs,
        pid,
        tid,
        hits,
        fpregs,
        entry_regs: None,
    };
    let mut mem = crate::vm::ProcessMemory { pid };
    let refs: Vec<&crate::vm::Program> = exprs.iter().collect();
    crate::vm::run_all(&refs, &ctx, &mut mem, crate::vm::Limits::default())
}

/// Runs a probe's condition against the stopped thread.
fn condition_holds(
    cond: &crate::vm::Program,
    regs: &libc::user_regs_struct,
    pid: i32,
    tid: Tid,
    hits: u64,
    fpregs: Option<&libc::user_fpregs_struct>,
) -> Result<bool, crate::vm::Fault> {
    let ctx = crate::vm::HitContext {
        regs,
        pid,
        tid,
        hits,
        fpregs,
        entry_regs: None,
    };
    let mut mem = crate::vm::ProcessMemory { pid };
    match crate::vm::run_all(&[cond], &ctx, &mut mem, crate::vm::Limits::default()).pop() {
        Some(crate::vm::Outcome::Done { top, .. }) => Ok(top.unwrap_or(0) != 0),
        Some(crate::vm::Outcome::Failed(fault)) => Err(fault),
        None => Ok(false),
    }
}

/// A condition that cannot be evaluated is an error the user sees — never silently false —
/// but at most once a minute per probe, with the count of those not shown.
fn report_condition_error(e: &mut Engine, probe: ProbeId, tid: Tid, fault: crate::vm::Fault) {
    let Some(p) = e.probes.get_mut(&probe) else {
        return;
    };
    let due = p
        .last_condition_error
        .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(60));
    if due {
        let suppressed = std::mem::take(&mut p.suppressed_errors);
        p.last_condition_error = Some(std::time::Instant::now());
        let _ = e.events.send(Event::ConditionError {
            probe,
            tid,
            fault,
            suppressed,
        });
    } else {
        p.suppressed_errors += 1;
    }
}

/// At r_brk: true when the dynamic linker says its list of libraries is consistent again
/// (r_state == RT_CONSISTENT), i.e. after a dlopen or dlclose finished mapping.
fn link_map_consistent(e: &Engine, pid: i32) -> bool {
    let Some(r_debug) = e.r_debug else {
        return false;
    };
    let mut state = [0u8; 4];
    // struct r_debug { int r_version; struct link_map *r_map; ElfW(Addr) r_brk; enum r_state; … }
    ptrace::mem::read(pid, r_debug + 24, &mut state).is_ok() && u32::from_le_bytes(state) == 0
}

impl Engine {
    /// Removes one user from an int3, and the int3 when nobody is left.
    pub(crate) fn remove_bp_user(&mut self, addr: u64, user: BpUser) {
        let unused = match self.bps.get_mut(&addr) {
            Some(bp) => {
                bp.users.retain(|u| *u != user);
                bp.users.is_empty()
            }
            None => false,
        };
        if unused {
            // The thread at hand then runs the original instruction in place (see
            // `resume_displaced`): the byte is back.
            self.remove_bp(addr);
        }
    }
}
