//! The stack unwinder against gcc-built programs, with gdb as the oracle.
//!
//! Each program raises SIGSTOP at the interesting point (inside a qsort comparator on its 3rd
//! call, inside a SIGUSR1 handler). The test reads the registers with ptrace (attach, GETREGS,
//! detach leaving it stopped), unwinds with memory read by process_vm_readv and modules from
//! /proc/PID/maps, then runs `gdb -batch -p PID` on the same stopped process and compares every
//! frame: pc, function names (inline frames expanded) and the recovered registers.

use scry_tracer::addr::RuntimeAddr;
use scry_tracer::debuginfo::{DebugSearch, ModuleSymbols};
use scry_tracer::modules::{bias, modules_from_maps};
use scry_tracer::procfs::read_maps;
use scry_tracer::regs::Reg;
use scry_tracer::unwind::{
    DEFAULT_MAX_FRAMES, UnwindFrame, UnwindModule, UnwindStop, expand_inlined, unwind,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const PROG_C: &str = r#"#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int calls;
volatile int sink;

/* Stops the process on the comparator's 3rd call. The store after raise keeps the call a
   call (no tail call), so every frame is a real one. */
__attribute__((noinline)) void probe_point(int n) {
    if (n == 3)
        raise(SIGSTOP);
    sink = n;
}

static inline __attribute__((always_inline)) int inlined_cmp(const int *a, const int *b) {
    calls++;
    probe_point(calls);
    return (*a > *b) - (*a < *b);
}

int cmp(const void *a, const void *b) {
    int r = inlined_cmp(a, b);
    sink = r;
    return r;
}

__attribute__((noinline)) void handler_work(int sig) {
    raise(SIGSTOP);
    sink = sig;
}

void handler(int sig) {
    handler_work(sig);
    sink++;
}

__attribute__((noinline)) void interrupted(void) {
    kill(getpid(), SIGUSR1);
    sink++;
}

int main(int argc, char **argv) {
    int v[8] = {5, 3, 8, 1, 9, 2, 7, 4};
    if (argc > 1 && strcmp(argv[1], "signal") == 0) {
        signal(SIGUSR1, handler);
        interrupted();
        return 0;
    }
    qsort(v, 8, sizeof v[0], cmp);
    printf("%d\n", v[0]);
    return 0;
}
"#;

/// gdb's view of every frame: type, pc, name and registers, one line each.
const GDB_FRAMES_PY: &str = r#"
f = gdb.newest_frame()
while f is not None:
    vals = []
    for r in ["rsp", "rbp", "rbx", "r12", "r13", "r14", "r15"]:
        try:
            v = f.read_register(r)
            vals.append("-" if v.is_optimized_out else hex(int(v) & 0xffffffffffffffff))
        except Exception:
            vals.append("-")
    print("FRAME", f.type(), hex(f.pc()), f.name() or "??", " ".join(vals))
    f = f.older()
"#;

/// Programs compiled once for all tests.
struct Fixture {
    dir: PathBuf,
}

impl Fixture {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        // Fixtures of earlier runs whose process is gone are removed (a static has no drop).
        if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("scry-unwind-")
                    && !Path::new("/proc").join(pid).exists()
                {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = std::env::temp_dir().join(format!("scry-unwind-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("prog.c"), PROG_C).unwrap();
        std::fs::write(dir.join("frames.py"), GDB_FRAMES_PY).unwrap();
        let gcc = |out: &str, flags: &[&str]| {
            run(Command::new("gcc")
                .current_dir(&dir)
                .args(flags)
                .args(["-o", out, "prog.c"]));
        };
        gcc("prog0", &["-g", "-O0"]);
        gcc("prog2", &["-g", "-O2", "-fomit-frame-pointer"]);
        // No CFI for the program's own functions (frame pointers only): neither .eh_frame
        // entries (crt files keep theirs) nor .debug_frame.
        gcc(
            "nocfi.tmp",
            &[
                "-g",
                "-O0",
                "-fno-asynchronous-unwind-tables",
                "-fno-unwind-tables",
            ],
        );
        run(Command::new("objcopy").current_dir(&dir).args([
            "--remove-section=.debug_frame",
            "nocfi.tmp",
            "nocfi",
        ]));
        Fixture { dir }
    })
}

/// A fixture program stopped by its own SIGSTOP; killed on drop.
struct Stopped {
    child: Child,
    pid: i32,
    exe: PathBuf,
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The state letter of /proc/PID/stat.
fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

impl Stopped {
    /// Runs `prog args` and waits until it has stopped itself.
    fn start(prog: &str, args: &[&str]) -> Stopped {
        let exe = fixture().path(prog);
        let child = Command::new(&exe)
            .args(args)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let s = Stopped { child, pid, exe };
        let deadline = Instant::now() + Duration::from_secs(20);
        while state(pid) != Some('T') {
            assert!(Instant::now() < deadline, "{prog} did not stop itself");
            std::thread::sleep(Duration::from_millis(5));
        }
        s
    }

    /// The registers, through ptrace; the process is left stopped (detached with SIGSTOP).
    fn regs(&self) -> libc::user_regs_struct {
        use nix::sys::ptrace;
        use nix::sys::signal::Signal;
        use nix::sys::wait::{WaitStatus, waitpid};
        use nix::unistd::Pid;
        let pid = Pid::from_raw(self.pid);
        ptrace::attach(pid).expect("PTRACE_ATTACH");
        match waitpid(pid, None).expect("waitpid") {
            WaitStatus::Stopped(_, _) => {}
            other => panic!("unexpected wait status {other:?}"),
        }
        let regs = ptrace::getregs(pid).expect("PTRACE_GETREGS");
        ptrace::detach(pid, Some(Signal::SIGSTOP)).expect("PTRACE_DETACH");
        let deadline = Instant::now() + Duration::from_secs(20);
        while state(self.pid) != Some('T') {
            assert!(Instant::now() < deadline, "not stopped after detach");
            std::thread::sleep(Duration::from_millis(5));
        }
        regs
    }

    /// Reads the process's memory (process_vm_readv).
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        scry_tracer::ptrace::mem::read(self.pid, addr, buf).is_ok()
    }
}

/// The modules mapped in `pid`, loaded.
struct Loaded {
    symbols: Vec<ModuleSymbols>,
    ranges: Vec<(u64, u64, u64)>,
}

impl Loaded {
    fn of(pid: i32, exe: &Path) -> Loaded {
        let maps = read_maps(pid).unwrap();
        let mut symbols = Vec::new();
        let mut ranges = Vec::new();
        for m in modules_from_maps(pid, &maps, Some(exe)) {
            let Ok(s) = ModuleSymbols::load(&m.read_path, &DebugSearch::default()) else {
                continue;
            };
            let b = bias(&m, s.segments());
            ranges.push((m.start.0, m.end.0, b.0));
            symbols.push(s);
        }
        Loaded { symbols, ranges }
    }

    fn modules(&self) -> Vec<UnwindModule<'_>> {
        self.symbols
            .iter()
            .zip(&self.ranges)
            .map(|(symbols, &(start, end, bias))| UnwindModule {
                start,
                end,
                bias,
                symbols,
            })
            .collect()
    }

    /// Index of the module whose file name ends with `suffix`.
    fn index(&self, suffix: &str) -> usize {
        self.symbols
            .iter()
            .position(|s| s.path().to_string_lossy().contains(suffix))
            .unwrap_or_else(|| panic!("no module {suffix}"))
    }
}

/// One line of a backtrace: pc and function name; inline frames share their caller's pc.
#[derive(Clone, Debug, PartialEq)]
struct Line {
    pc: u64,
    name: String,
}

const SIGTRAMP: &str = "<signal handler called>";

/// Our frames as backtrace lines, inline frames expanded.
fn lines(frames: &[UnwindFrame], loaded: &Loaded) -> Vec<Line> {
    let mut out = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        if f.signal_frame {
            out.push(Line {
                pc: f.pc,
                name: SIGTRAMP.to_string(),
            });
            continue;
        }
        let names = match f.module {
            Some(m) => expand_inlined(
                &loaded.symbols[m],
                RuntimeAddr(f.pc).to_file(scry_tracer::addr::Bias(loaded.ranges[m].2)),
                f.is_caller(i.checked_sub(1).map(|p| &frames[p])),
            ),
            None => vec![],
        };
        if names.is_empty() {
            out.push(Line {
                pc: f.pc,
                name: "??".to_string(),
            });
        }
        for (name, _, _) in names {
            out.push(Line { pc: f.pc, name });
        }
    }
    out
}

/// One frame of gdb's backtrace.
#[derive(Debug)]
struct GdbFrame {
    /// gdb.Frame.type(): 0 normal, 2 inline, 3 tail call, 4 signal trampoline.
    kind: u32,
    pc: u64,
    name: String,
    /// rsp, rbp, rbx, r12, r13, r14, r15 (None: not saved).
    regs: Vec<Option<u64>>,
}

/// The registers gdb's frames report, in GDB_FRAMES_PY's order.
const GDB_REGS: [Reg; 7] = [
    Reg::Rsp,
    Reg::Rbp,
    Reg::Rbx,
    Reg::R12,
    Reg::R13,
    Reg::R14,
    Reg::R15,
];

/// gdb's backtrace of the stopped process, past main.
fn gdb_frames(pid: i32) -> Vec<GdbFrame> {
    let out = run(Command::new("gdb").args([
        "-nx",
        "-batch",
        "-p",
        &pid.to_string(),
        "-ex",
        "set backtrace past-main on",
        "-x",
        fixture().path("frames.py").to_str().unwrap(),
    ]));
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    let frames: Vec<GdbFrame> = out
        .lines()
        .filter_map(|l| l.strip_prefix("FRAME "))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            GdbFrame {
                kind: w[0].parse().unwrap(),
                pc: hex(w[1]).unwrap(),
                name: w[2].to_string(),
                regs: w[3..].iter().map(|v| hex(v)).collect(),
            }
        })
        .collect();
    assert!(frames.len() > 3, "gdb gave no backtrace:\n{out}");
    frames
}

/// gdb's frames as backtrace lines. Tail-call frames are gdb's reconstruction from call-site
/// DWARF (no return address is on the stack for them), so a CFI unwinder cannot see them.
fn gdb_lines(frames: &[GdbFrame]) -> Vec<Line> {
    frames
        .iter()
        .filter(|f| f.kind != 3)
        .map(|f| Line {
            pc: f.pc,
            name: if f.kind == 4 {
                SIGTRAMP.to_string()
            } else {
                f.name.clone()
            },
        })
        .collect()
}

/// Unwinds the stopped process and checks every frame against gdb: the same pcs and names
/// (inline frames expanded), and the same registers wherever both know them. Returns our
/// frames and lines and why unwinding stopped.
fn check_against_gdb(s: &Stopped) -> (Vec<UnwindFrame>, Vec<Line>, UnwindStop) {
    let regs = s.regs();
    let loaded = Loaded::of(s.pid, &s.exe);
    let modules = loaded.modules();
    let mut read = |a: u64, b: &mut [u8]| s.read(a, b);
    let (frames, stop) = unwind(&regs, &mut read, &modules, DEFAULT_MAX_FRAMES);
    let ours = lines(&frames, &loaded);
    let gdb = gdb_frames(s.pid);
    let theirs = gdb_lines(&gdb);
    let show = |l: &[Line]| {
        l.iter()
            .map(|l| format!("  {:#x} {}", l.pc, l.name))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        ours,
        theirs,
        "ours (stop: {stop:?}):\n{}\ngdb:\n{}",
        show(&ours),
        show(&theirs)
    );
    // gdb's outermost frame is _start, whose CFI marks the return address undefined.
    assert_eq!(stop, UnwindStop::ReturnAddressZero);
    assert_eq!(ours.last().unwrap().name, "_start");

    // Physical frames one to one: registers agree wherever both unwinders know them.
    let physical: Vec<&GdbFrame> = gdb.iter().filter(|f| f.kind == 0 || f.kind == 4).collect();
    assert_eq!(physical.len(), frames.len());
    let mut compared = 0;
    for (i, (ours, theirs)) in frames.iter().zip(&physical).enumerate() {
        assert_eq!(ours.pc, theirs.pc, "frame {i}");
        for (reg, theirs) in GDB_REGS.iter().zip(&theirs.regs) {
            if let (Some(a), Some(b)) = (ours.regs.get(*reg), theirs) {
                assert_eq!(a, *b, "frame {i} ({:#x}): {reg}", ours.pc);
                compared += 1;
            }
        }
        // Every frame knows its rsp, and its caller's rsp is its CFA.
        assert!(ours.regs.get(Reg::Rsp).is_some(), "frame {i} rsp");
        if let Some(next) = frames.get(i + 1) {
            assert_eq!(ours.cfa, next.regs.get(Reg::Rsp), "frame {i} cfa");
        }
    }
    assert!(
        compared >= 3 * frames.len(),
        "only {compared} registers compared"
    );
    (frames, ours, stop)
}

fn names(lines: &[Line]) -> Vec<&str> {
    lines.iter().map(|l| l.name.as_str()).collect()
}

/// Position of the first name satisfying `p` at or after `from`.
fn find(names: &[&str], from: usize, p: impl Fn(&str) -> bool) -> usize {
    names[from..]
        .iter()
        .position(|n| p(n))
        .map(|i| i + from)
        .unwrap_or_else(|| panic!("no matching frame after {from} in {names:?}"))
}

/// comparator → (inlined helper) → qsort internals → qsort → main → libc start → _start.
fn check_qsort_stack(prog: &str) {
    let s = Stopped::start(prog, &[]);
    let (frames, lines, _) = check_against_gdb(&s);
    let n = names(&lines);
    let probe = find(&n, 0, |f| f == "probe_point");
    // The helper inlined into the comparator: two names at one pc, innermost first.
    assert_eq!(n[probe + 1], "inlined_cmp", "{n:?}");
    assert_eq!(n[probe + 2], "cmp", "{n:?}");
    assert_eq!(lines[probe + 1].pc, lines[probe + 2].pc);
    assert_ne!(lines[probe].pc, lines[probe + 1].pc);
    // Below the comparator: glibc's merge sort, then qsort_r (qsort tail-calls it), main.
    assert!(n[probe + 3].starts_with("msort"), "{n:?}");
    let qsort = find(&n, probe + 3, |f| f.contains("qsort"));
    assert!(
        n[probe + 3..qsort].iter().all(|f| f.starts_with("msort")),
        "{n:?}"
    );
    let main = find(&n, qsort, |f| f == "main");
    assert!(n[qsort..main].iter().all(|f| f.contains("qsort")), "{n:?}");
    assert_eq!(n[main + 1], "__libc_start_call_main", "{n:?}");
    // Frame 0 is in libc (raise's internals), every caller pc is a return address.
    assert!(frames[0].module.is_some());
    for f in &frames[1..] {
        assert!(!f.signal_frame);
    }
}

#[test]
fn qsort_comparator_at_o0_matches_gdb() {
    check_qsort_stack("prog0");
}

#[test]
fn qsort_comparator_at_o2_without_frame_pointers_matches_gdb() {
    check_qsort_stack("prog2");
}

/// handler → <signal handler called> → the interrupted function → main.
fn check_signal_stack(prog: &str) {
    let s = Stopped::start(prog, &["signal"]);
    let (frames, lines, _) = check_against_gdb(&s);
    let n = names(&lines);
    let work = find(&n, 0, |f| f == "handler_work");
    assert_eq!(n[work + 1], "handler", "{n:?}");
    assert_eq!(n[work + 2], SIGTRAMP, "{n:?}");
    // The signal arrived as kill() returned: libc's kill, then its caller.
    assert!(n[work + 3].contains("kill"), "{n:?}");
    assert_eq!(n[work + 4], "interrupted", "{n:?}");
    assert_eq!(n[work + 5], "main", "{n:?}");
    let sig: Vec<usize> = (0..frames.len())
        .filter(|&i| frames[i].signal_frame)
        .collect();
    assert_eq!(sig.len(), 1);
    let i = sig[0];
    // The interrupted frame's pc is where the signal arrived (right after the syscall
    // instruction), not a return address; its registers come from the signal's ucontext.
    let interrupted = &frames[i + 1];
    let mut insn = [0u8; 2];
    assert!(s.read(interrupted.pc - 2, &mut insn));
    assert_eq!(insn, [0x0f, 0x05], "syscall before the interrupted pc");
    assert!(!interrupted.is_caller(Some(&frames[i])));
    assert!(interrupted.regs.get(Reg::Rsp).unwrap() > frames[i - 1].cfa.unwrap());
}

#[test]
fn signal_handler_at_o0_matches_gdb() {
    check_signal_stack("prog0");
}

#[test]
fn signal_handler_at_o2_without_frame_pointers_matches_gdb() {
    check_signal_stack("prog2");
}

/// Without CFI for the program's functions, the frame-pointer chain gives one caller; the
/// next frame without CFI stops the unwind, saying where.
#[test]
fn without_cfi_the_frame_pointer_chain_is_used_once() {
    let s = Stopped::start("nocfi", &[]);
    let regs = s.regs();
    let loaded = Loaded::of(s.pid, &s.exe);
    let modules = loaded.modules();
    let mut read = |a: u64, b: &mut [u8]| s.read(a, b);
    let (frames, stop) = unwind(&regs, &mut read, &modules, DEFAULT_MAX_FRAMES);
    let ours = lines(&frames, &loaded);
    let gdb = gdb_lines(&gdb_frames(s.pid));
    let n = names(&ours);
    // libc's frames (with CFI), probe_point (no CFI: its rbp chain gives the caller), then
    // the comparator, also without CFI: stop there.
    let probe = find(&n, 0, |f| f == "probe_point");
    assert_eq!(&n[probe + 1..], ["inlined_cmp", "cmp"], "{n:?}");
    let exe = loaded.index("nocfi");
    let last = frames.last().unwrap();
    assert_eq!(last.module, Some(exe));
    assert_eq!(stop, UnwindStop::NoCfi(last.pc));
    // Everything we found is what gdb (which analyzes prologues) shows first.
    assert_eq!(ours[..], gdb[..ours.len()], "gdb: {gdb:?}");
    // probe_point's CFA from the frame pointer: rbp + 16.
    let pf = &frames[frames.len() - 2];
    assert_eq!(pf.cfa, Some(pf.regs.get(Reg::Rbp).unwrap() + 16));
}

/// Wrong stack contents give a truncated stack with a reason, never a panic.
#[test]
fn garbage_on_the_stack_truncates_with_a_reason() {
    let s = Stopped::start("prog2", &[]);
    let regs = s.regs();
    let loaded = Loaded::of(s.pid, &s.exe);
    let modules = loaded.modules();
    let (good, _) = unwind(
        &regs,
        &mut |a: u64, b: &mut [u8]| s.read(a, b),
        &modules,
        DEFAULT_MAX_FRAMES,
    );
    assert!(good.len() > 8);

    // A return address overwritten with junk: the frames below the junk are gone, the junk
    // frame is reported with no module, and the reason says why.
    let slot = good[4].cfa.unwrap() - 8;
    let junk = 0x1234_5678u64;
    let mut read = |a: u64, b: &mut [u8]| {
        if !s.read(a, b) {
            return false;
        }
        for (i, byte) in junk.to_le_bytes().iter().enumerate() {
            if let Some(j) = (slot + i as u64).checked_sub(a)
                && (j as usize) < b.len()
            {
                b[j as usize] = *byte;
            }
        }
        true
    };
    let (frames, stop) = unwind(&regs, &mut read, &modules, DEFAULT_MAX_FRAMES);
    assert_eq!(frames[..5], good[..5]);
    assert_eq!(frames[5].pc, junk);
    assert_eq!(frames[5].module, None);
    assert!(frames.len() <= 7, "{frames:?}");
    assert!(
        matches!(
            stop,
            UnwindStop::NoModule(_)
                | UnwindStop::NoCfi(_)
                | UnwindStop::Unreadable(_)
                | UnwindStop::Loop
        ),
        "{stop:?}"
    );

    // The depth limit.
    let (frames, stop) = unwind(&regs, &mut |a: u64, b: &mut [u8]| s.read(a, b), &modules, 3);
    assert_eq!(frames[..], good[..3]);
    assert_eq!(stop, UnwindStop::Depth);

    // Random stacks and random registers: any outcome but a panic or an endless stack.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let libc = loaded.index("libc.so");
    let (lo, hi, _) = loaded.ranges[libc];
    for round in 0..300 {
        let seed = next();
        let mut r = regs;
        r.rip = lo + next() % (hi - lo);
        r.rbp = if round % 2 == 0 {
            next()
        } else {
            regs.rsp + next() % 4096
        };
        r.rbx = next();
        r.r12 = next();
        let mut read = |a: u64, b: &mut [u8]| {
            if a >= regs.rsp.saturating_sub(4096) && a < regs.rsp + 65536 {
                let mut y = seed ^ a;
                for byte in b.iter_mut() {
                    y ^= y << 13;
                    y ^= y >> 7;
                    y ^= y << 17;
                    // Sometimes a plausible pointer: the stack or a libc address.
                    *byte = y as u8;
                }
                if b.len() == 8 && seed % 3 == 0 {
                    let v = if y.is_multiple_of(2) {
                        regs.rsp + y % 8192
                    } else {
                        lo + y % (hi - lo)
                    };
                    b.copy_from_slice(&v.to_le_bytes());
                }
                true
            } else {
                s.read(a, b)
            }
        };
        let (frames, stop) = unwind(&r, &mut read, &modules, DEFAULT_MAX_FRAMES);
        assert!(!frames.is_empty());
        assert_eq!(frames[0].pc, r.rip);
        assert!(frames.len() <= DEFAULT_MAX_FRAMES);
        if stop == UnwindStop::Depth {
            assert_eq!(frames.len(), DEFAULT_MAX_FRAMES);
        }
        // CFAs grow between ordinary frames: no frame repeats.
        for w in frames.windows(2) {
            if let (Some(a), Some(b)) = (w[0].cfa, w[1].cfa)
                && !w[1].signal_frame
            {
                assert!(b > a, "{frames:?}");
            }
        }
    }
}

/// A frame in the vDSO (no file): found in memory, unwound by its .eh_frame, module None.
#[test]
fn vdso_frames_unwind_by_its_eh_frame() {
    use object::{Object, ObjectSymbol};
    // This test process's own vDSO and libc.
    // SAFETY: getauxval only reads the auxiliary vector.
    let base = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) };
    assert_ne!(base, 0);
    let pid = std::process::id() as i32;
    let mut image = vec![0u8; 0x2000];
    scry_tracer::ptrace::mem::read(pid, base, &mut image).unwrap();
    let vdso = object::File::parse(&*image).unwrap();
    let entry = vdso
        .dynamic_symbols()
        .find(|s| s.name() == Ok("__vdso_clock_gettime"))
        .expect("__vdso_clock_gettime")
        .address();
    let entry = base + entry; // the vDSO is linked at 0

    let exe = std::fs::read_link("/proc/self/exe").unwrap();
    let maps = read_maps(pid).unwrap();
    let mut symbols = Vec::new();
    let mut ranges = Vec::new();
    for m in modules_from_maps(pid, &maps, Some(&exe)) {
        if m.path.to_string_lossy().contains("libc.so") {
            let s = ModuleSymbols::load(&m.read_path, &DebugSearch { debug_dirs: vec![] }).unwrap();
            ranges.push((m.start.0, m.end.0, bias(&m, s.segments()).0));
            symbols.push(s);
        }
    }
    let loaded = Loaded { symbols, ranges };
    let modules = loaded.modules();
    assert_eq!(modules.len(), 1);

    // Stopped at the vDSO function's first instruction, called from libc's getpid (its
    // entry + 1 as the return address: the row at entry says CFA = rsp + 8), whose caller's
    // return address is 0.
    let getpid = libc::getpid as *const () as usize as u64;
    assert!(modules[0].start <= getpid && getpid < modules[0].end);
    let ret = getpid + 1;
    let stack: [u64; 4] = [ret, 0, 0, 0];
    let sp = stack.as_ptr() as u64;
    // SAFETY: user_regs_struct is plain integers; all-zero is a valid value.
    let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    regs.rip = entry;
    regs.rsp = sp;
    let mut read = |a: u64, b: &mut [u8]| scry_tracer::ptrace::mem::read(pid, a, b).is_ok();
    let (frames, stop) = unwind(&regs, &mut read, &modules, DEFAULT_MAX_FRAMES);
    assert_eq!(frames.len(), 2, "{frames:?} {stop:?}");
    assert_eq!(frames[0].pc, entry);
    assert_eq!(frames[0].module, None);
    assert_eq!(frames[0].cfa, Some(sp + 8));
    assert_eq!(frames[1].pc, ret);
    assert_eq!(frames[1].module, Some(0));
    assert_eq!(frames[1].regs.get(Reg::Rsp), Some(sp + 8));
    assert_eq!(frames[1].cfa, Some(sp + 16));
    assert_eq!(stop, UnwindStop::ReturnAddressZero);
    std::hint::black_box(&stack);
}
