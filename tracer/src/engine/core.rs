//! The engine's state and its event loop: everything that is not the hit path.

use super::{
    Command, DetachReport, EngineError, Event, ExecPolicy, Launch, ProbeCounts, ProbeEnd, ProbeId,
    ProbeKind,
};
use crate::arch::relocate::Displaced;
use crate::plan::ValuePlan;
use crate::ptrace::mem::CodeWriter;
use crate::ptrace::{self, Stop, Tid};
use crate::quota::{Bucket, OverheadBudget, PauseReason, Quota};
use nix::errno::Errno;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::time::Instant;

/// Counters kept by the engine thread.
#[derive(Clone, Debug, Default)]
pub struct EngineStats {
    /// Breakpoint traps served (reported or not).
    pub traps: u64,
    /// Hits reported.
    pub hits: u64,
    /// Sum of our service time over all traps (waitpid return → PTRACE_CONT), ns.
    pub service_ns_total: u64,
    /// Largest single service time, ns.
    pub service_ns_max: u64,
    /// Traps on an int3 we had already removed (rewound and resumed).
    pub phantom_traps: u64,
    /// Signals passed through to the target unchanged.
    pub signals_delivered: u64,
    /// Threads seen created after attach.
    pub threads_created: u64,
    /// Out-of-line slot pages mapped into the target.
    pub slot_pages: u64,
    /// Forked children cleaned and detached.
    pub forks: u64,
    /// Longest time spent mapping a slot page (injected mmap) on a hit, ns.
    pub slot_page_ns_max: u64,
    /// Longest time spent building and writing one slot on a hit, ns.
    pub slot_build_ns_max: u64,
    /// Hits whose displaced instruction was carried out on the registers (no slot).
    pub emulated: u64,
}

/// A thread of the target (or of a vfork child sharing its memory).
#[derive(Clone, Debug)]
pub(crate) struct Thread {
    /// The process it belongs to.
    pub pid: i32,
    pub state: ThreadState,
    /// A signal that arrived while we held the thread (e.g. during a syscall injection);
    /// delivered at its next resume.
    pub pending_sig: i32,
}

#[derive(Clone, Debug)]
pub(crate) enum ThreadState {
    Running,
    /// Stopped at the int3 at `bp`, kept stopped until the session releases it.
    Held {
        regs: libc::user_regs_struct,
        bp: u64,
    },
    /// In a group-stop (SIGSTOP/SIGTSTP from outside), left listening for SIGCONT.
    GroupStopped,
    /// Reported stopped by waitpid and not resumed yet (the engine is handling the stop).
    Stopped,
    /// Stopped at our int3 at `bp`, being served; `regs` are its registers at the trap. If the
    /// engine fails mid-way (a panic), detach puts these back, rewound to the original
    /// instruction.
    Serving {
        regs: libc::user_regs_struct,
        bp: u64,
    },
}

/// Who a breakpoint serves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum BpUser {
    /// A probe's site.
    Probe { probe: ProbeId, site: u32 },
    /// The dynamic linker's r_brk.
    LinkMap,
    /// The spawned program's entry point.
    Entry,
}

/// One int3 in the target.
#[derive(Clone, Debug)]
pub(crate) struct Breakpoint {
    /// The byte the int3 replaced.
    pub orig: u8,
    /// The instruction it displaced.
    pub displaced: Displaced,
    /// Where to put the out-of-line slot (within ±2 GiB of this).
    pub near: u64,
    /// Everyone served by this int3.
    pub users: Vec<BpUser>,
}

/// A probe as the engine knows it.
pub(crate) struct ProbeRt {
    pub sites: Vec<SiteRt>,
    pub kind: ProbeKind,
    pub quota: Quota,
    /// Bytes of the template's literal text (a log line's size, with the values).
    pub literal_bytes: u32,
    /// Planted and serving hits (false while paused, and once it has ended).
    pub active: bool,
    /// When a condition error was last reported, and how many were not reported since.
    pub last_condition_error: Option<std::time::Instant>,
    pub suppressed_errors: u64,
    pub counts: ProbeCounts,
    /// Rate buckets (log lines, log bytes) and this probe's share of the overhead budget.
    pub lines: Bucket,
    pub bytes: Bucket,
    pub overhead: Bucket,
    /// While paused: the (address, site) pairs to plant again when re-armed.
    pub parked: Vec<(u64, u32)>,
}

impl ProbeRt {
    /// A new probe's runtime state, its buckets full.
    pub fn new(
        kind: ProbeKind,
        quota: Quota,
        literal_bytes: u32,
        budget: &OverheadBudget,
    ) -> ProbeRt {
        let now = Instant::now();
        let per_probe = budget.share / 2.0 * 1e9; // ns of stop time per second
        ProbeRt {
            sites: Vec::new(),
            kind,
            quota,
            literal_bytes,
            active: true,
            last_condition_error: None,
            suppressed_errors: 0,
            counts: ProbeCounts::default(),
            lines: Bucket::new(quota.lines_per_sec, quota.lines_per_sec * quota.burst, now),
            bytes: Bucket::new(quota.bytes_per_sec, quota.bytes_per_sec * quota.burst, now),
            overhead: Bucket::new(per_probe, per_probe, now),
            parked: Vec::new(),
        }
    }

    /// Why this probe must pause before serving a hit at `now`, if it must.
    pub fn pause_reason(&mut self, now: Instant) -> Option<PauseReason> {
        if self.kind == ProbeKind::Log {
            if !self.lines.has_tokens(now) {
                return Some(PauseReason::LineRate {
                    per_sec: self.quota.lines_per_sec,
                    burst: self.quota.burst,
                });
            }
            if !self.bytes.has_tokens(now) {
                return Some(PauseReason::ByteRate {
                    per_sec: self.quota.bytes_per_sec,
                    burst: self.quota.burst,
                });
            }
        }
        if !self.overhead.has_tokens(now) {
            return Some(PauseReason::ProbeOverhead {
                share: self.overhead.rate() / 1e9,
                hits: self.counts.hits,
                stopped: std::time::Duration::from_nanos(self.counts.stopped_ns),
            });
        }
        None
    }

    /// How long a pause for `reason` lasts: until the bucket that ran dry is half full.
    pub fn cooldown(&self, reason: &PauseReason, global: &Bucket) -> std::time::Duration {
        let wait = match reason {
            PauseReason::LineRate { .. } => self.lines.time_to_half(),
            PauseReason::ByteRate { .. } => self.bytes.time_to_half(),
            PauseReason::ProbeOverhead { .. } => self.overhead.time_to_half(),
            PauseReason::GlobalOverhead { .. } => global.time_to_half(),
        };
        wait.max(std::time::Duration::from_millis(500))
    }
}

pub(crate) struct SiteRt {
    pub plans: Vec<ValuePlan>,
    pub condition: Option<crate::vm::Program>,
    pub exprs: Vec<crate::vm::Program>,
}

/// A forked or vforked child we were told about (or saw stop) but have not finished with.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ChildInfo {
    /// The parent's FORK/VFORK event arrived (so we know which kind it is).
    pub kind_known: bool,
    pub vfork: bool,
    /// The child's first stop arrived.
    pub stopped: bool,
    /// For a vfork child: it is running with our probes served (until exec or exit).
    pub running: bool,
}

pub(crate) struct Engine {
    pub pid: i32,
    pub threads: HashMap<Tid, Thread>,
    pub children: HashMap<i32, ChildInfo>,
    pub bps: HashMap<u64, Breakpoint>,
    /// Removed int3s (address → original byte): a trap there is rewound, and forked children
    /// get these bytes restored too.
    pub phantoms: HashMap<u64, u8>,
    /// Out-of-line slots by breakpoint address. The code for one address is always the same,
    /// so a slot is reused when the address is probed again, and never freed (a thread or a
    /// signal frame may still point into it).
    pub slot_of: HashMap<u64, super::slots::SlotInfo>,
    pub slots: super::slots::Slots,
    pub probes: HashMap<ProbeId, ProbeRt>,
    pub code: CodeWriter,
    pub events: Sender<Event>,
    pub exec_policy: ExecPolicy,
    /// The r_debug structure, once the session found it.
    pub r_debug: Option<u64>,
    pub stats: EngineStats,
    pub exited: bool,
    /// The process-wide overhead budget and its bucket (ns of thread-stop time).
    pub budget: OverheadBudget,
    pub overhead: Bucket,
    /// Threads held for snapshots: since when, and for which probes (the hold is charged to
    /// them when the thread is released).
    pub held_for_snapshots: HashMap<Tid, (Instant, Vec<ProbeId>)>,
    /// How long to poll for the next stop after a hit before blocking (0: never poll), and
    /// until when the current poll runs.
    pub spin: std::time::Duration,
    pub spin_until: Option<Instant>,
}

/// Result of a command: keep going, or the engine is done.
#[derive(PartialEq)]
pub(crate) enum Flow {
    Continue,
    Stop,
}

/// The engine thread's body.
pub(crate) fn run(
    launch: Launch,
    exec_policy: ExecPolicy,
    cmds: Receiver<Command>,
    events: Sender<Event>,
    ready: Sender<Result<(Tid, super::AttachInfo), EngineError>>,
) {
    let mut engine = match super::attach::launch(launch, exec_policy, events.clone()) {
        Ok((engine, info)) => {
            let _ = ready.send(Ok((ptrace::gettid(), info)));
            engine
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| engine.event_loop(&cmds)));
    if outcome.is_err() {
        // A bug in scry must not kill the target: put every byte back and let go.
        let report = engine.detach_all();
        let _ = events.send(Event::Warning(format!(
            "scry's engine hit an internal error and detached from the target ({} bytes restored, {} threads detached)",
            report.bytes_restored, report.threads
        )));
        // Answer any detach request still queued.
        while let Ok(cmd) = cmds.try_recv() {
            if let Command::Detach(reply) = cmd {
                let _ = reply.send(report.clone());
            }
        }
    }
}

impl Engine {
    fn event_loop(&mut self, cmds: &Receiver<Command>) {
        loop {
            // Commands first: they are rare, and a detach must not wait behind a stream of hits.
            loop {
                match cmds.try_recv() {
                    Ok(cmd) => {
                        if self.command(cmd) == Flow::Stop {
                            return;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        self.detach_all();
                        return;
                    }
                }
            }
            if self.threads.is_empty() && self.children.is_empty() {
                // Nothing left to trace: wait for the session to say what to do.
                match cmds.recv() {
                    Ok(cmd) => {
                        if self.command(cmd) == Flow::Stop {
                            return;
                        }
                        continue;
                    }
                    Err(_) => return,
                }
            }
            // Right after a hit, poll for the next stop for a moment before sleeping in
            // waitpid: on a hot line the next hit often comes within microseconds, and a
            // tracer that is still running takes it without a wake-up. When no probe fires
            // nothing spins.
            let block = match self.spin_until {
                Some(until) if Instant::now() < until => false,
                _ => {
                    self.spin_until = None;
                    true
                }
            };
            match ptrace::wait_any(block) {
                Ok(Some(stop)) => {
                    let woke = Instant::now();
                    let traps = self.stats.traps;
                    self.on_stop(stop, woke);
                    if self.stats.traps != traps && !self.spin.is_zero() {
                        self.spin_until = Some(Instant::now() + self.spin);
                    }
                }
                Ok(None) if !block => std::hint::spin_loop(),
                Ok(None) | Err(Errno::EINTR) => {}
                Err(Errno::ECHILD) => {
                    // The kernel says we trace nothing any more.
                    self.threads.clear();
                    self.children.clear();
                    self.report_exit(None, None);
                }
                Err(e) => {
                    let _ = self
                        .events
                        .send(Event::Warning(format!("waitpid failed: {e}")));
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
        }
    }

    pub(crate) fn command(&mut self, cmd: Command) -> Flow {
        match cmd {
            Command::Plant(req, reply) => {
                let _ = reply.send(self.plant(req));
            }
            Command::Unplant(probe, reply) => {
                self.unplant(probe);
                let _ = reply.send(());
            }
            Command::ForgetRange(start, end, reply) => {
                self.forget_range(start, end);
                let _ = reply.send(());
            }
            Command::WatchLinkMap {
                r_debug,
                r_brk,
                reply,
            } => {
                self.r_debug = Some(r_debug.0);
                let _ = reply.send(self.plant_internal(r_brk.0, BpUser::LinkMap));
            }
            Command::Release(tid, reply) => {
                self.release(tid);
                let _ = reply.send(());
            }
            Command::Stats(reply) => {
                let _ = reply.send(self.stats.clone());
            }
            Command::Rearm(probe, reply) => {
                self.rearm(probe);
                let _ = reply.send(());
            }
            Command::End(probe, end, reply) => {
                if self.probes.contains_key(&probe) {
                    self.end_probe(probe, end);
                }
                let _ = reply.send(());
            }
            Command::Counts(reply) => {
                let _ = reply.send(self.probes.iter().map(|(id, p)| (*id, p.counts)).collect());
            }
            Command::SetSpin(spin, reply) => {
                self.spin = spin;
                let _ = reply.send(());
            }
            Command::SetBudget(budget, reply) => {
                let rate = budget.share * 1e9;
                self.budget = budget;
                self.overhead = Bucket::new(rate, rate, Instant::now());
                let _ = reply.send(());
            }
            Command::Detach(reply) => {
                let report = self.detach_all();
                let _ = reply.send(report);
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    /// Continues a thread, delivering `sig`. A thread that vanished is not an error: its exit
    /// report follows.
    pub(crate) fn resume(&mut self, tid: Tid, sig: i32) {
        let pending = self
            .threads
            .get_mut(&tid)
            .map(|t| std::mem::take(&mut t.pending_sig))
            .unwrap_or(0);
        let sig = if sig != 0 { sig } else { pending };
        if sig != 0 {
            self.stats.signals_delivered += 1;
        }
        if let Some(t) = self.threads.get_mut(&tid) {
            t.state = ThreadState::Running;
        }
        let _ = ptrace::cont(tid, sig);
    }

    fn on_stop(&mut self, stop: Stop, woke: Instant) {
        let tid = stop.tid();
        if !self.threads.contains_key(&tid) {
            if let Stop::Exited { .. } | Stop::Killed { .. } = stop {
                self.children.remove(&tid);
                return;
            }
            if self.on_unknown(stop) {
                return;
            }
        }
        if !matches!(stop, Stop::Exited { .. } | Stop::Killed { .. })
            && let Some(t) = self.threads.get_mut(&tid)
        {
            t.state = ThreadState::Stopped;
        }
        match stop {
            Stop::Exited { tid, code } => self.on_exit(tid, Some(code), None),
            Stop::Killed { tid, sig } => self.on_exit(tid, None, Some(sig)),
            Stop::Signal { tid, sig } => {
                if sig == libc::SIGTRAP && crate::hit::on_sigtrap(self, tid, woke) {
                    return;
                }
                // Not ours: the target gets it, unchanged.
                self.resume(tid, sig);
            }
            Stop::Event { tid, event, sig } => self.on_event(tid, event, sig),
            Stop::Syscall { tid } => self.resume(tid, 0),
        }
    }

    fn on_event(&mut self, tid: Tid, event: i32, sig: i32) {
        match event {
            libc::PTRACE_EVENT_CLONE | libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK => {
                if let Ok(new) = ptrace::event_msg(tid) {
                    let new = new as i32;
                    if event == libc::PTRACE_EVENT_CLONE {
                        self.add_thread(
                            new,
                            self.threads.get(&tid).map(|t| t.pid).unwrap_or(self.pid),
                        );
                    } else {
                        let vfork = event == libc::PTRACE_EVENT_VFORK;
                        let info = self.children.entry(new).or_default();
                        info.kind_known = true;
                        info.vfork = vfork;
                        if info.stopped {
                            self.child_ready(new);
                        }
                    }
                }
                self.resume(tid, 0);
            }
            libc::PTRACE_EVENT_EXEC => self.on_exec(tid),
            libc::PTRACE_EVENT_STOP => {
                if matches!(
                    sig,
                    libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
                ) {
                    // A group-stop from outside: stay stopped as the program would without us,
                    // but let SIGCONT wake it.
                    if let Some(t) = self.threads.get_mut(&tid) {
                        t.state = ThreadState::GroupStopped;
                    }
                    let _ = ptrace::listen(tid);
                } else {
                    // A new thread's first stop, or the end of a group-stop: run on.
                    self.resume(tid, 0);
                }
            }
            // PTRACE_EVENT_EXIT and anything else: let it go on.
            _ => self.resume(tid, 0),
        }
    }

    pub(crate) fn add_thread(&mut self, tid: Tid, pid: i32) {
        if !self.threads.contains_key(&tid) {
            self.stats.threads_created += 1;
            self.threads.insert(
                tid,
                Thread {
                    pid,
                    state: ThreadState::Running,
                    pending_sig: 0,
                },
            );
        }
    }

    /// A stop from a tid we do not know yet: a new thread whose first stop beat its parent's
    /// clone event, or a forked child. Returns true if handled.
    fn on_unknown(&mut self, stop: Stop) -> bool {
        let tid = stop.tid();
        let tgid = crate::procfs::read_status(tid).map(|s| s.tgid).unwrap_or(0);
        let is_ours = tgid == self.pid || self.threads.values().any(|t| t.pid == tgid && tgid != 0);
        if is_ours {
            self.add_thread(tid, tgid);
            return false; // handle the stop normally
        }
        let info = self.children.entry(tid).or_default();
        if info.running {
            // A vfork child running in the target's memory.
            return self.on_vfork_child_stop(stop);
        }
        info.stopped = true;
        if info.kind_known {
            self.child_ready(tid);
        }
        // Otherwise wait for the parent's FORK/VFORK event, which tells how to treat it.
        true
    }

    /// A forked child is stopped at its first instruction and we know its kind.
    fn child_ready(&mut self, child: i32) {
        let Some(info) = self.children.get(&child).copied() else {
            return;
        };
        if info.vfork {
            // It shares the target's memory: removing our int3s would remove them for the
            // target too. Serve its hits until it execs or exits (vfork children exec at once).
            self.children.get_mut(&child).unwrap().running = true;
            let _ = ptrace::cont(child, 0);
        } else {
            // A copy of the target's memory, int3s included: put the original bytes back in
            // the child's copy, then let it go before it runs a single instruction of its own.
            if let Ok(w) = CodeWriter::open(child) {
                for (addr, bp) in &self.bps {
                    let _ = w.write(*addr, &[bp.orig]);
                }
                for (addr, orig) in &self.phantoms {
                    let _ = w.write(*addr, &[*orig]);
                }
            }
            let _ = ptrace::detach(child, 0);
            self.children.remove(&child);
            self.stats.forks += 1;
        }
        let _ = self.events.send(Event::ForkedChild {
            child,
            vfork: info.vfork,
        });
    }

    /// A stop of a vfork child that runs in the target's memory. Returns true if handled.
    fn on_vfork_child_stop(&mut self, stop: Stop) -> bool {
        match stop {
            Stop::Event {
                tid,
                event: libc::PTRACE_EVENT_EXEC,
                ..
            } => {
                // Its own image now: nothing of ours in it.
                let _ = ptrace::detach(tid, 0);
                self.children.remove(&tid);
            }
            Stop::Signal { tid, sig } => {
                if sig == libc::SIGTRAP {
                    // Serve it like a thread of the target, for the duration of this stop.
                    self.threads.insert(
                        tid,
                        Thread {
                            pid: tid,
                            state: ThreadState::Running,
                            pending_sig: 0,
                        },
                    );
                    let handled = crate::hit::on_sigtrap(self, tid, Instant::now());
                    if !matches!(
                        self.threads.get(&tid).map(|t| &t.state),
                        Some(ThreadState::Held { .. })
                    ) {
                        self.threads.remove(&tid);
                    }
                    if handled {
                        return true;
                    }
                }
                let _ = ptrace::cont(tid, sig);
            }
            Stop::Exited { tid, .. } | Stop::Killed { tid, .. } => {
                self.children.remove(&tid);
            }
            Stop::Event { tid, .. } | Stop::Syscall { tid } => {
                let _ = ptrace::cont(tid, 0);
            }
        }
        true
    }

    fn on_exit(&mut self, tid: Tid, code: Option<i32>, sig: Option<i32>) {
        self.threads.remove(&tid);
        if tid == self.pid {
            // The leader's exit is reported last: the process is gone.
            self.threads.retain(|_, t| t.pid != self.pid);
            self.report_exit(code, sig);
        }
    }

    fn report_exit(&mut self, code: Option<i32>, signal: Option<i32>) {
        if !self.exited {
            self.exited = true;
            // The counters die with the process: hand them over first (counters are read
            // from them, and nothing else reports a counter's last hits).
            let counts = self.probes.iter().map(|(id, p)| (*id, p.counts)).collect();
            let _ = self.events.send(Event::FinalCounts(counts));
            let _ = self.events.send(Event::Exited { code, signal });
        }
    }

    fn on_exec(&mut self, tid: Tid) {
        // After exec the process has one thread, with the leader's id, and a new image: every
        // int3, slot and probe of the old image is gone with it.
        let pid = self.pid;
        self.threads.retain(|t, th| *t == tid || th.pid != pid);
        self.threads.remove(&tid);
        self.threads.insert(
            pid,
            Thread {
                pid,
                state: ThreadState::Running,
                pending_sig: 0,
            },
        );
        self.bps.clear();
        self.phantoms.clear();
        self.slot_of.clear();
        self.slots = super::slots::Slots::default();
        self.r_debug = None;
        let ended: Vec<ProbeId> = self
            .probes
            .iter()
            .filter(|(_, p)| p.active)
            .map(|(id, _)| *id)
            .collect();
        if let Ok(w) = CodeWriter::open(pid) {
            self.code = w;
        }
        let detached = self.exec_policy == ExecPolicy::Detach;
        if detached {
            let _ = ptrace::detach(pid, 0);
            self.threads.clear();
        } else {
            self.resume(pid, 0);
        }
        let _ = self.events.send(Event::Exec { pid, detached });
        for id in ended {
            self.probes.remove(&id);
            let _ = self.events.send(Event::ProbeEnded {
                probe: id,
                end: ProbeEnd::ImageGone,
            });
        }
    }

    /// Resumes a thread held at a breakpoint (after a ModulesChanged event).
    fn release(&mut self, tid: Tid) {
        let Some(ThreadState::Held { regs, bp }) = self.threads.get(&tid).map(|t| t.state.clone())
        else {
            return;
        };
        if let Some(t) = self.threads.get_mut(&tid) {
            t.state = ThreadState::Running;
        }
        crate::hit::resume_displaced(self, tid, regs, bp);
        // A snapshot's hold is thread-stop time like any other: charge it.
        if let Some((since, probes)) = self.held_for_snapshots.remove(&tid) {
            let now = Instant::now();
            let held = now.saturating_duration_since(since).as_nanos() as u64;
            self.overhead.take(held as f64, now);
            for probe in probes {
                if let Some(p) = self.probes.get_mut(&probe) {
                    p.overhead.take(held as f64, now);
                    p.counts.stopped_ns += held;
                }
            }
        }
        // A vfork child served for one stop is forgotten again.
        if self.children.get(&tid).is_some_and(|c| c.running) {
            self.threads.remove(&tid);
        }
    }

    pub(crate) fn detach_all(&mut self) -> DetachReport {
        super::detach::detach_all(self)
    }

    /// Reports a probe as ended and unplants it.
    pub(crate) fn end_probe(&mut self, probe: ProbeId, end: ProbeEnd) {
        self.unplant(probe);
        let _ = self.events.send(Event::ProbeEnded { probe, end });
    }

    /// Unplants a probe that a rate or the overhead budget stopped, keeping its state so
    /// it can be re-armed, and says so at once.
    pub(crate) fn pause_probe(&mut self, probe: ProbeId, reason: PauseReason) {
        let Some(p) = self.probes.get(&probe) else {
            return;
        };
        if !p.active {
            return;
        }
        let cooldown = p.cooldown(&reason, &self.overhead);
        let parked: Vec<(u64, u32)> = self
            .bps
            .iter()
            .flat_map(|(addr, bp)| {
                bp.users.iter().filter_map(move |u| match u {
                    BpUser::Probe { probe: p, site } if *p == probe => Some((*addr, *site)),
                    _ => None,
                })
            })
            .collect();
        for (addr, _) in &parked {
            let now_unused = {
                let bp = self.bps.get_mut(addr).unwrap();
                bp.users
                    .retain(|u| !matches!(u, BpUser::Probe { probe: p, .. } if *p == probe));
                bp.users.is_empty()
            };
            if now_unused {
                self.remove_bp(*addr);
            }
        }
        let p = self.probes.get_mut(&probe).unwrap();
        p.active = false;
        p.parked = parked;
        p.counts.pauses += 1;
        let counts = p.counts;
        let _ = self.events.send(Event::ProbePaused {
            probe,
            reason,
            cooldown,
            counts,
        });
    }

    /// Plants a paused probe again where it was.
    pub(crate) fn rearm(&mut self, probe: ProbeId) {
        let Some(p) = self.probes.get_mut(&probe) else {
            return;
        };
        if p.active {
            return;
        }
        let parked = std::mem::take(&mut p.parked);
        let mut failed = None;
        for (addr, site) in parked {
            if let Err(e) = self.plant_site(addr, BpUser::Probe { probe, site }) {
                failed = Some(e.to_string());
            }
        }
        if let Some(why) = failed {
            self.end_probe(probe, ProbeEnd::Failed(format!("re-arming failed: {why}")));
            return;
        }
        if let Some(p) = self.probes.get_mut(&probe) {
            p.active = true;
        }
        let _ = self.events.send(Event::ProbeRearmed { probe });
    }
}
