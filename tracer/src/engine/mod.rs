//! The engine: one OS thread that owns every ptrace call for one target process.
//!
//! The rest of scry talks to it through [`EngineHandle`] (commands with replies) and receives
//! [`Event`]s on a channel. See docs/architecture.md for why there is exactly one such thread
//! (the kernel binds a tracee to the thread that attached it) and for the hit path.

mod attach;
mod breakpoints;
pub(crate) mod core;
mod detach;
mod inject;
mod slots;
pub(crate) mod waker;

use crate::addr::RuntimeAddr;
use crate::plan::{Fetched, ValuePlan};
use crate::ptrace::Tid;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, SystemTime};

pub use self::core::EngineStats;

/// A probe's id, unique within a session.
pub type ProbeId = u32;

/// How the engine was asked to take hold of the target.
#[derive(Clone, Debug)]
pub enum Launch {
    /// Attach to a running process (all its threads) by pid.
    Attach { pid: i32 },
    /// Start a program under the engine; it is held at its first instruction after exec.
    Spawn {
        program: std::path::PathBuf,
        args: Vec<String>,
    },
}

/// What to do when the target calls exec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecPolicy {
    /// Drop the old image's probes, report it, and detach.
    Detach,
    /// Drop the old image's probes, report it, and stay attached.
    Stay,
}

/// One address a probe is planted at, with the values to fetch there.
#[derive(Clone, Debug)]
pub struct PlantSite {
    /// Where the int3 goes.
    pub addr: RuntimeAddr,
    /// The module's mapped range, for placing the out-of-line slot within ±2 GiB.
    pub near: RuntimeAddr,
    /// Values to fetch at a hit, in template order.
    pub plans: Vec<ValuePlan>,
    /// A condition compiled for this site: the hit is reported only when it is true.
    pub condition: Option<crate::vm::Program>,
    /// The template's expression holes, compiled for this site (their values are words).
    pub exprs: Vec<crate::vm::Program>,
}

/// Planting a probe (or more sites of an existing one, after a dlopen).
#[derive(Clone, Debug)]
pub struct PlantRequest {
    /// The probe.
    pub probe: ProbeId,
    /// Its sites.
    pub sites: Vec<PlantSite>,
    /// What a hit does.
    pub kind: ProbeKind,
    /// Its bounds: max hits and the log rates are enforced on the hit path; the expiry is
    /// the session's (it ends the probe when the time comes).
    pub quota: crate::quota::Quota,
    /// The template's literal text, in bytes (with the captured values, a hit's share of the
    /// byte rate).
    pub literal_bytes: u32,
}

/// What a probe does at a hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    /// Fetch the values and send a [`HitRecord`].
    Log,
    /// Hold the thread ([`Event::SnapshotHit`]) until the session has read its frames and
    /// values and calls [`EngineHandle::release`].
    Snapshot,
    /// Only count (a metric): no record per hit; read the counts with
    /// [`EngineHandle::counts`].
    Count,
}

/// A probe's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeCounts {
    /// Executions of its sites (condition true or not).
    pub executions: u64,
    /// Hits (condition true).
    pub hits: u64,
    /// Thread-stop time its hits cost, ns (the tracer's service time plus the budget's
    /// per-stop cost).
    pub stopped_ns: u64,
    /// Times it was paused by a rate or the overhead budget.
    pub pauses: u64,
}

/// A hit, as raw bytes: the hit path does no formatting. Rendering happens on the consumer's
/// thread (`Session::render`).
#[derive(Clone, Debug)]
pub struct HitRecord {
    /// The probe that fired.
    pub probe: ProbeId,
    /// Which of its sites (index into the plant request's sites, counting all requests).
    pub site: u32,
    /// The process (the target, or a vfork child running in its memory).
    pub pid: i32,
    /// The thread that hit.
    pub tid: Tid,
    /// Wall-clock time of the hit.
    pub time: SystemTime,
    /// 1-based count of this probe's reported hits.
    pub seq: u64,
    /// The fetched values, in template order.
    pub values: Vec<Fetched>,
    /// The outcomes of the template's expression holes, in order.
    pub exprs: Vec<crate::vm::Outcome>,
    /// Time from waitpid's return to the thread's PTRACE_CONT, in ns (our share of the stop).
    pub service_ns: u64,
}

/// A snapshot, ready to show.
#[derive(Clone, Debug)]
pub struct SnapshotRecord {
    /// The probe.
    pub probe: ProbeId,
    /// The process and thread.
    pub pid: i32,
    pub tid: Tid,
    /// When it was taken.
    pub time: SystemTime,
    /// 1-based hit count of the probe.
    pub seq: u64,
    /// How long the thread was held for it, µs.
    pub held_us: u64,
    /// The frames and values.
    pub snapshot: crate::snapshot::Snapshot,
}

/// Why a probe is no longer planted.
#[derive(Clone, Debug, PartialEq)]
pub enum ProbeEnd {
    /// It reached its hit bound.
    Exhausted { hits: u64 },
    /// Its expiry came.
    Expired { after: std::time::Duration },
    /// The image it was planted in went away (exec, dlclose).
    ImageGone,
    /// The engine could not serve it (e.g. no slot could be mapped); the reason says why.
    Failed(String),
}

/// Something the engine reports.
#[derive(Clone, Debug)]
pub enum Event {
    /// A probe fired.
    Hit(HitRecord),
    /// A probe stopped firing, and why.
    ProbeEnded { probe: ProbeId, end: ProbeEnd },
    /// A probe was unplanted by a rate or the overhead budget; it can be re-armed
    /// ([`EngineHandle::rearm`]) after `cooldown`, when its buckets have refilled.
    ProbePaused {
        probe: ProbeId,
        reason: crate::quota::PauseReason,
        cooldown: std::time::Duration,
        counts: ProbeCounts,
    },
    /// A paused probe is planted again.
    ProbeRearmed { probe: ProbeId },
    /// Every probe's counters as the target exits (right before [`Event::Exited`]).
    FinalCounts(Vec<(ProbeId, ProbeCounts)>),
    /// Libraries were loaded or unloaded (the dynamic linker's r_brk fired with a consistent
    /// map, or the spawned program reached its entry point). `held` is a thread kept stopped
    /// until [`EngineHandle::release`] so pending probes can be planted before its code runs.
    ModulesChanged { held: Option<Tid> },
    /// The target called exec: every probe of the old image is gone.
    Exec { pid: i32, detached: bool },
    /// A forked child ran with our probes removed and was detached.
    ForkedChild { child: i32, vfork: bool },
    /// The target exited.
    Exited {
        code: Option<i32>,
        signal: Option<i32>,
    },
    /// A probe's condition could not be evaluated at a hit (a bad pointer, say). Reported at
    /// most once a minute per probe; `suppressed` counts the ones not reported since.
    ConditionError {
        probe: ProbeId,
        tid: Tid,
        fault: crate::vm::Fault,
        suppressed: u64,
    },
    /// A snapshot probe fired: the thread `tid` is held stopped with registers `regs` until
    /// released (if `release` is true, this event is the last one for this stop).
    SnapshotHit {
        probe: ProbeId,
        site: u32,
        pid: i32,
        tid: Tid,
        regs: Box<libc::user_regs_struct>,
        /// The FP/SSE registers (floats in optimized code live in xmm registers).
        fpregs: Option<Box<libc::user_fpregs_struct>>,
        seq: u64,
        time: SystemTime,
        release: bool,
    },
    /// A finished snapshot (made by the session from a SnapshotHit).
    Snapshot(Box<SnapshotRecord>),
    /// A pending probe was planted in a library that was just loaded.
    ProbePlanted {
        probe: ProbeId,
        sites: usize,
        module: String,
    },
    /// Something worth telling the user that is not an error of one request.
    Warning(String),
}

/// What a detach did.
#[derive(Clone, Debug, Default)]
pub struct DetachReport {
    /// Breakpoint bytes written back.
    pub bytes_restored: usize,
    /// Threads detached.
    pub threads: usize,
    /// Threads that were inside an out-of-line slot and were moved back to the original code.
    pub moved_out_of_slots: usize,
    /// Threads that had trapped on an int3 we just removed (rewound to the original instruction).
    pub rewound: usize,
    /// Problems (a thread that would not stop in time, a write that failed).
    pub problems: Vec<String>,
}

/// Errors the engine reports.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Attach(String),
    #[error("cannot plant at {addr}: {detail}")]
    Plant { addr: RuntimeAddr, detail: String },
    #[error("the engine thread has stopped (target gone or detached)")]
    Gone,
    #[error("{0}")]
    Other(String),
}

pub(crate) enum Command {
    Plant(PlantRequest, Sender<Result<usize, EngineError>>),
    Unplant(ProbeId, Sender<()>),
    /// Forget breakpoints in an unmapped range (dlclose): the bytes are gone with the mapping.
    ForgetRange(RuntimeAddr, RuntimeAddr, Sender<()>),
    /// Watch the dynamic linker: plant on r_brk, read r_state at `r_debug`.
    WatchLinkMap {
        r_debug: RuntimeAddr,
        r_brk: RuntimeAddr,
        reply: Sender<Result<(), EngineError>>,
    },
    Release(Tid, Sender<()>),
    Stats(Sender<EngineStats>),
    /// Plant a paused probe again (its cooldown is over).
    Rearm(ProbeId, Sender<()>),
    /// End a probe for good with this reason (its expiry, say).
    End(ProbeId, ProbeEnd, Sender<()>),
    /// Every probe's counters.
    Counts(Sender<Vec<(ProbeId, ProbeCounts)>>),
    /// The process-wide overhead budget.
    SetBudget(crate::quota::OverheadBudget, Sender<()>),
    /// How long to poll for the next stop after a hit.
    SetSpin(std::time::Duration, Sender<()>),
    Detach(Sender<DetachReport>),
}

/// The handle other threads use to talk to the engine thread.
pub struct EngineHandle {
    tx: Sender<Command>,
    engine_tid: Tid,
    pid: i32,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// What attaching found.
#[derive(Clone, Debug)]
pub struct AttachInfo {
    /// The target's pid.
    pub pid: i32,
    /// Threads seized.
    pub threads: usize,
    /// Threads that vanished while we attached (skipped).
    pub vanished: usize,
    /// Time spent attaching.
    pub elapsed: Duration,
    /// Time any application thread was stopped by the attach (0: PTRACE_SEIZE stops nobody).
    pub stopped: Duration,
}

impl EngineHandle {
    /// Starts the engine thread and takes hold of the target. Events arrive on the returned
    /// receiver.
    pub fn start(
        launch: Launch,
        exec_policy: ExecPolicy,
    ) -> Result<(EngineHandle, AttachInfo, Receiver<Event>), EngineError> {
        waker::install();
        let (cmd_tx, cmd_rx) = mpsc::channel();
        let (ev_tx, ev_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("scry-ptrace".into())
            .spawn(move || core::run(launch, exec_policy, cmd_rx, ev_tx, ready_tx))
            .map_err(|e| EngineError::Other(format!("cannot start the engine thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok((engine_tid, info))) => Ok((
                EngineHandle {
                    tx: cmd_tx,
                    engine_tid,
                    pid: info.pid,
                    thread: std::sync::Mutex::new(Some(thread)),
                },
                info,
                ev_rx,
            )),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(EngineError::Other(
                    "the engine thread died while attaching".into(),
                ))
            }
        }
    }

    /// The target's pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    fn call<T>(&self, make: impl FnOnce(Sender<T>) -> Command) -> Result<T, EngineError> {
        let (tx, rx) = mpsc::channel();
        self.tx.send(make(tx)).map_err(|_| EngineError::Gone)?;
        loop {
            waker::wake(self.engine_tid);
            match rx.recv_timeout(Duration::from_millis(2)) {
                Ok(v) => return Ok(v),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return Err(EngineError::Gone),
            }
        }
    }

    /// Plants a probe's sites. Returns how many were planted.
    pub fn plant(&self, req: PlantRequest) -> Result<usize, EngineError> {
        self.call(|tx| Command::Plant(req, tx))?
    }

    /// Removes a probe everywhere.
    pub fn unplant(&self, probe: ProbeId) -> Result<(), EngineError> {
        self.call(|tx| Command::Unplant(probe, tx))
    }

    /// Forgets the breakpoints in `[start, end)` (the module there was unloaded).
    pub fn forget_range(&self, start: RuntimeAddr, end: RuntimeAddr) -> Result<(), EngineError> {
        self.call(|tx| Command::ForgetRange(start, end, tx))
    }

    /// Starts watching the dynamic linker's r_brk for library loads.
    pub fn watch_link_map(
        &self,
        r_debug: RuntimeAddr,
        r_brk: RuntimeAddr,
    ) -> Result<(), EngineError> {
        self.call(|tx| Command::WatchLinkMap {
            r_debug,
            r_brk,
            reply: tx,
        })?
    }

    /// Lets a thread held by [`Event::ModulesChanged`] run again.
    pub fn release(&self, tid: Tid) -> Result<(), EngineError> {
        self.call(|tx| Command::Release(tid, tx))
    }

    /// Counters of the engine.
    pub fn stats(&self) -> Result<EngineStats, EngineError> {
        self.call(Command::Stats)
    }

    /// Plants a paused probe again.
    pub fn rearm(&self, probe: ProbeId) -> Result<(), EngineError> {
        self.call(|tx| Command::Rearm(probe, tx))
    }

    /// Ends a probe for good, reporting `end` ([`Event::ProbeEnded`]).
    pub fn end_probe(&self, probe: ProbeId, end: ProbeEnd) -> Result<(), EngineError> {
        self.call(|tx| Command::End(probe, end, tx))
    }

    /// Every probe's counters.
    pub fn counts(&self) -> Result<Vec<(ProbeId, ProbeCounts)>, EngineError> {
        self.call(Command::Counts)
    }

    /// Sets how long the engine polls for the next stop after a hit before it blocks.
    pub fn set_spin(&self, spin: std::time::Duration) -> Result<(), EngineError> {
        self.call(|tx| Command::SetSpin(spin, tx))
    }

    /// Sets the process-wide overhead budget.
    pub fn set_budget(&self, budget: crate::quota::OverheadBudget) -> Result<(), EngineError> {
        self.call(|tx| Command::SetBudget(budget, tx))
    }

    /// Removes every int3, moves threads out of slots, detaches every thread, and ends the
    /// engine thread.
    pub fn detach(&self) -> Result<DetachReport, EngineError> {
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(thread) = thread else {
            return Err(EngineError::Gone);
        };
        let report = self.call(Command::Detach);
        let _ = thread.join();
        match report {
            // The engine thread ended on its own (after an internal error it detaches by
            // itself and says so in a Warning event).
            Err(EngineError::Gone) => Ok(DetachReport {
                problems: vec![
                    "the engine had already detached on its own after an internal error".into(),
                ],
                ..Default::default()
            }),
            other => other,
        }
    }

    /// True until [`EngineHandle::detach`] ran.
    pub fn is_attached(&self) -> bool {
        self.thread.lock().map(|t| t.is_some()).unwrap_or(false)
    }
}

impl Drop for EngineHandle {
    fn drop(&mut self) {
        // A handle dropped without detach (an error path, a panic unwinding) still detaches:
        // leaving int3s behind would kill the target at its next hit.
        let _ = self.detach();
    }
}
