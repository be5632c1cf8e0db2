//! The value machine: what a probe runs at a hit to compute conditions and fetch values.
//!
//! Everything a probe reads is lowered, when the probe is set, into small [`Program`]s of
//! [`Op`]s for a stack machine over `u64` words: DWARF locations (`DW_OP_breg6 -20`,
//! `DW_OP_fbreg`, the CFA rule at the pc, `DW_OP_deref`, pieces, implicit values) and the
//! expression language (`o->qty * 2 > limit && name == "bob"`) become the same kind of code.
//! The machine can only read registers and target memory and compute; it has no op that writes,
//! calls or loops, so an expression is read-only and terminates by construction (jumps only go
//! forward).
//!
//! At a hit, all of a probe's programs run in lockstep ([`run_all`]): each runs until it needs
//! target memory it does not have, then every pending read of every program is made in one
//! process_vm_readv, and they go on. A value that needs no pointer hop costs no read beyond the
//! first batch; `o->qty` and `p->name` together cost two batched reads, not four.
//!
//! Values are raw `u64` words; the compiler knows each word's C type and picks the op for it
//! (signed or unsigned compare, sign or zero extension, float or integer add). Floats travel as
//! f64 bits.

use crate::regs::Reg;

/// One instruction of the value machine.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Push a register's value.
    Reg(Reg),
    /// Push the value a register had when the current function was entered
    /// (`DW_OP_entry_value`), recovered from the caller's call-site parameters; only a
    /// snapshot, which unwinds to the caller, knows it (see `HitContext::entry_regs`).
    EntryReg(Reg),
    /// Push a constant.
    Const(u64),
    /// Push a hit-time fact: `$tid`, `$pid`, `$hits`.
    Fact(Fact),
    /// Pop an address; push the `n`-byte (1, 2, 4, 8) little-endian value there, zero-extended.
    Load(u8),
    /// Integer arithmetic on two popped words (left below right), wrapping.
    Add,
    Sub,
    Mul,
    /// Signed and unsigned division and remainder; division by zero fails the program.
    DivS,
    DivU,
    RemS,
    RemU,
    And,
    Or,
    Xor,
    Shl,
    /// Arithmetic (signed) and logical right shifts.
    ShrS,
    ShrU,
    /// Unary: two's complement negation, bitwise not, logical not (0 → 1, else 0).
    Neg,
    Not,
    LNot,
    /// Comparisons push 1 or 0.
    Eq,
    Ne,
    LtS,
    LtU,
    LeS,
    LeU,
    /// Sign- or zero-extend the low `bits` bits of the top word.
    SExt(u8),
    ZExt(u8),
    /// Float arithmetic and comparison on f64 bit patterns.
    FAdd,
    FSub,
    FMul,
    FDiv,
    FNeg,
    FEq,
    FLt,
    FLe,
    /// Integer → f64 (signed or not), f64 → integer (truncating; signed or not), f32 bits → f64.
    IToF {
        signed: bool,
    },
    FToI {
        signed: bool,
    },
    F32ToF64,
    /// f64 → f32 bits (for storing a cast result of type float).
    F64ToF32,
    /// Jump forward to op index `target` if the popped word is zero / always.
    Jz(u32),
    Jmp(u32),
    /// Duplicate, drop, swap the top words.
    Dup,
    Drop,
    Swap,
    /// Pop an address; push 1 if the C string there equals string literal `lit` (compared by
    /// content, up to the literal's length + 1 bytes), else 0.
    StrEq {
        lit: u32,
    },
    /// Pop a length and an address; push 1 if the `len` bytes there equal literal `lit`
    /// (std::string, Rust &str and String carry a pointer and a length).
    BytesEq {
        lit: u32,
    },
    /// The value does not exist here (no location-list entry covers the pc).
    OptimizedOut,
    /// The value cannot be computed here; the reason is literal `why`.
    Unavailable {
        why: u32,
    },
    /// Output. Pop an address; capture `n` bytes there as (a piece of) the value.
    CaptureMem(u32),
    /// Pop a word; capture its low `n` bytes as (a piece of) the value.
    CaptureWord(u8),
    /// Capture literal `lit`'s bytes as (a piece of) the value (implicit values, constants).
    CaptureLit(u32),
    /// Pop an address; capture the C string there (up to `max` bytes, to the NUL).
    CaptureCStr(u32),
}

/// Facts about the hit that expressions can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fact {
    /// The thread id (`$tid`).
    Tid,
    /// The process id (`$pid`).
    Pid,
    /// How many times this probe's sites have executed, this time included, whether its
    /// condition held or not (`$hits`): `$hits == 5` takes the fifth execution.
    Hits,
}

impl Program {
    /// True if the program reads an SSE register (the hit must then read the FP registers).
    pub fn needs_fpregs(&self) -> bool {
        self.ops
            .iter()
            .any(|o| matches!(o, Op::Reg(r) if r.is_vector()))
    }
}

/// A compiled program with its literals (strings for comparisons, constant bytes, reasons).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Program {
    /// The code.
    pub ops: Vec<Op>,
    /// Literals referenced by index from `ops`.
    pub lits: Vec<Vec<u8>>,
}

/// Why a program did not produce a value at a hit. Statuses, not errors: shown to the user.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Memory at this address could not be read (null or wild pointer, unmapped page).
    Unreadable(u64),
    /// Division or remainder by zero.
    DivByZero,
    /// DWARF says the value does not exist at this pc.
    OptimizedOut,
    /// The value cannot be computed here (the reason).
    Unavailable(String),
    /// A bug in the compiler: the program popped an empty stack or jumped backwards.
    Malformed(&'static str),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Unreadable(a) => write!(f, "unreadable at {a:#x}"),
            Fault::DivByZero => write!(f, "division by zero"),
            Fault::OptimizedOut => write!(f, "optimized out"),
            Fault::Unavailable(why) => write!(f, "{why}"),
            Fault::Malformed(what) => {
                write!(f, "internal error in the expression program ({what})")
            }
        }
    }
}

/// The outcome of one program at one hit.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The program ended; `top` is the word left on the stack (conditions, scalar values),
    /// `captured` the bytes it captured (values shown by type), `strings` the C strings.
    Done {
        top: Option<u64>,
        captured: Vec<u8>,
        truncated: bool,
    },
    /// It could not finish.
    Failed(Fault),
}

/// What the machine may read at a hit, besides target memory.
#[derive(Clone, Copy, Debug)]
pub struct HitContext<'a> {
    /// The stopped thread's registers (or an unwound frame's, for caller frames).
    pub regs: &'a libc::user_regs_struct,
    /// The process.
    pub pid: i32,
    /// The thread.
    pub tid: i32,
    /// The probe's hit count, this hit included.
    pub hits: u64,
    /// The thread's FP/SSE registers, when the probe's programs need them (read with one
    /// more ptrace call only then).
    pub fpregs: Option<&'a libc::user_fpregs_struct>,
    /// Argument registers' values at the function's entry, recovered from the caller's
    /// call-site parameters (`Op::EntryReg`); None where the caller was not unwound (the
    /// hit path does not unwind).
    pub entry_regs: Option<&'a [(Reg, u64)]>,
}

/// Batched access to target memory.
pub trait Memory {
    /// Reads every range; returns, per range, whether it was read completely.
    fn read_batch(&mut self, ranges: &mut [(u64, &mut [u8])]) -> Vec<bool>;
}

/// The target's memory through process_vm_readv: one system call per batch (more only when
/// a range fails, to read the ones after it).
pub struct ProcessMemory {
    /// The process to read.
    pub pid: i32,
}

impl Memory for ProcessMemory {
    fn read_batch(&mut self, ranges: &mut [(u64, &mut [u8])]) -> Vec<bool> {
        let mut ok = vec![false; ranges.len()];
        let mut from = 0;
        while from < ranges.len() {
            let done = crate::ptrace::mem::read_ranges(self.pid, &mut ranges[from..]).unwrap_or(0);
            for o in ok.iter_mut().skip(from).take(done) {
                *o = true;
            }
            from += done + 1; // the range after the complete ones failed
        }
        ok
    }
}

/// Bounds on what one program may capture.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most bytes one program captures; beyond, the value is marked truncated.
    pub capture_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            capture_bytes: 64 * 1024,
        }
    }
}

/// Flags after a captured C string's length (see [`Op::CaptureCStr`]).
pub const CSTR_TRUNCATED: u8 = 1;
/// The C string's pointer could not be read at all.
pub const CSTR_UNREADABLE: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Need {
    /// Exactly `len` bytes at `addr`.
    Bytes { addr: u64, len: usize },
    /// Up to `max` bytes at `addr` (a string: a short read at a page end is fine).
    Str { addr: u64, max: usize },
}

struct State {
    pc: usize,
    stack: Vec<u64>,
    captured: Vec<u8>,
    truncated: bool,
    end: Option<Outcome>,
    need: Option<Need>,
}

/// Reads already made at this hit: (address, bytes or failure).
#[derive(Default)]
struct Cache {
    entries: Vec<(u64, usize, Option<Vec<u8>>)>,
}

enum Lookup<'c> {
    Hit(&'c [u8]),
    Failed,
    Miss,
}

impl Cache {
    fn get(&self, addr: u64, len: usize) -> Lookup<'_> {
        for (a, l, data) in &self.entries {
            match data {
                Some(d)
                    if *a <= addr
                        && (addr - a)
                            .checked_add(len as u64)
                            .is_some_and(|end| end <= d.len() as u64) =>
                {
                    let off = (addr - a) as usize;
                    return Lookup::Hit(&d[off..off + len]);
                }
                None if *a == addr && *l == len => return Lookup::Failed,
                _ => {}
            }
        }
        Lookup::Miss
    }
}

const PAGE: u64 = crate::ptrace::mem::PAGE;

/// Runs `programs` together against one stopped thread (see the module docs).
pub fn run_all(
    programs: &[&Program],
    ctx: &HitContext,
    mem: &mut dyn Memory,
    limits: Limits,
) -> Vec<Outcome> {
    let mut states: Vec<State> = programs
        .iter()
        .map(|_| State {
            pc: 0,
            stack: Vec::with_capacity(8),
            captured: Vec::new(),
            truncated: false,
            end: None,
            need: None,
        })
        .collect();
    let mut cache = Cache::default();
    // Each round runs every program as far as it can go; programs are straight-line code with
    // forward jumps, so rounds are bounded by the number of memory ops.
    loop {
        for (p, s) in programs.iter().zip(states.iter_mut()) {
            if s.end.is_none() {
                step(p, s, ctx, &cache, limits);
            }
        }
        let mut wants: Vec<(u64, usize)> = Vec::new();
        for s in &states {
            match s.need {
                Some(Need::Bytes { addr, len }) if !wants.contains(&(addr, len)) => {
                    wants.push((addr, len))
                }
                Some(Need::Bytes { .. }) => {}
                Some(Need::Str { addr, max }) => {
                    let first = ((PAGE - addr % PAGE) as usize).min(max);
                    wants.push((addr, first));
                    if first < max {
                        wants.push((addr.wrapping_add(first as u64), max - first));
                    }
                }
                None => {}
            }
        }
        if wants.is_empty() {
            break;
        }
        let mut bufs: Vec<Vec<u8>> = wants.iter().map(|(_, l)| vec![0u8; *l]).collect();
        let ok = {
            let mut ranges: Vec<(u64, &mut [u8])> = wants
                .iter()
                .zip(bufs.iter_mut())
                .map(|((a, _), b)| (*a, b.as_mut_slice()))
                .collect();
            mem.read_batch(&mut ranges)
        };
        for (((addr, len), buf), ok) in wants.into_iter().zip(bufs).zip(ok) {
            cache.entries.push((addr, len, ok.then_some(buf)));
        }
        for s in states.iter_mut() {
            s.need = None;
        }
    }
    states
        .into_iter()
        .map(|s| {
            s.end.unwrap_or(Outcome::Done {
                top: s.stack.last().copied(),
                captured: s.captured,
                truncated: s.truncated,
            })
        })
        .collect()
}

/// Reads a string through the cache: `Some(bytes up to max)` (possibly short at a page end),
/// `None` if its first byte is unreadable; `Err(())` if not read yet.
fn cached_str(cache: &Cache, addr: u64, max: usize) -> Result<Option<Vec<u8>>, ()> {
    let first = ((PAGE - addr % PAGE) as usize).min(max);
    let mut out = match cache.get(addr, first) {
        Lookup::Hit(b) => b.to_vec(),
        Lookup::Failed => return Ok(None),
        Lookup::Miss => return Err(()),
    };
    if first < max {
        match cache.get(addr.wrapping_add(first as u64), max - first) {
            Lookup::Hit(b) => out.extend_from_slice(b),
            Lookup::Failed => {}
            Lookup::Miss => return Err(()),
        }
    }
    Ok(Some(out))
}

fn step(p: &Program, s: &mut State, ctx: &HitContext, cache: &Cache, limits: Limits) {
    macro_rules! fail {
        ($f:expr) => {{
            s.end = Some(Outcome::Failed($f));
            return;
        }};
    }
    macro_rules! pop {
        () => {
            match s.stack.pop() {
                Some(v) => v,
                None => fail!(Fault::Malformed("stack underflow")),
            }
        };
    }
    let lit = |i: u32| p.lits.get(i as usize).map(Vec::as_slice).unwrap_or(&[]);
    while s.pc < p.ops.len() {
        let op = &p.ops[s.pc];
        match op {
            Op::Reg(r) if r.is_vector() => match ctx.fpregs.and_then(|fp| r.read_fp(fp)) {
                Some(v) => s.stack.push(v),
                None => fail!(Fault::Unavailable(format!("{r} was not read at this hit"))),
            },
            Op::Reg(r) => s.stack.push(r.read(ctx.regs)),
            Op::EntryReg(r) => match ctx.entry_regs.map(|e| e.iter().find(|(x, _)| x == r)) {
                Some(Some((_, v))) => s.stack.push(*v),
                Some(None) => fail!(Fault::Unavailable(format!(
                    "the value of {r} when the function was entered (DW_OP_entry_value); the caller's call site does not record it"
                ))),
                None => fail!(Fault::Unavailable(format!(
                    "the value of {r} when the function was entered (DW_OP_entry_value); only a snapshot, which unwinds to the caller, recovers it"
                ))),
            },
            Op::Const(c) => s.stack.push(*c),
            Op::Fact(f) => s.stack.push(match f {
                Fact::Tid => ctx.tid as u64,
                Fact::Pid => ctx.pid as u64,
                Fact::Hits => ctx.hits,
            }),
            Op::Load(n) => {
                let addr = *s.stack.last().unwrap_or(&0);
                if s.stack.is_empty() {
                    fail!(Fault::Malformed("stack underflow"));
                }
                let n = (*n as usize).clamp(1, 8);
                match cache.get(addr, n) {
                    Lookup::Hit(b) => {
                        let mut w = [0u8; 8];
                        w[..n].copy_from_slice(b);
                        *s.stack.last_mut().unwrap() = u64::from_le_bytes(w);
                    }
                    Lookup::Failed => fail!(Fault::Unreadable(addr)),
                    Lookup::Miss => {
                        s.need = Some(Need::Bytes { addr, len: n });
                        return;
                    }
                }
            }
            Op::CaptureMem(n) => {
                let addr = *s.stack.last().unwrap_or(&0);
                if s.stack.is_empty() {
                    fail!(Fault::Malformed("stack underflow"));
                }
                let want = *n as usize;
                let room = limits.capture_bytes.saturating_sub(s.captured.len());
                let n = want.min(room);
                if n < want {
                    s.truncated = true;
                }
                if n > 0 {
                    match cache.get(addr, n) {
                        Lookup::Hit(b) => s.captured.extend_from_slice(b),
                        Lookup::Failed => fail!(Fault::Unreadable(addr)),
                        Lookup::Miss => {
                            s.need = Some(Need::Bytes { addr, len: n });
                            return;
                        }
                    }
                }
                s.stack.pop();
            }
            Op::CaptureCStr(_) | Op::StrEq { .. } => {
                let addr = *s.stack.last().unwrap_or(&0);
                if s.stack.is_empty() {
                    fail!(Fault::Malformed("stack underflow"));
                }
                let want = match op {
                    Op::StrEq { lit: l } => lit(*l).len() + 1,
                    Op::CaptureCStr(max) => *max as usize,
                    _ => unreachable!(),
                };
                let got = if addr == 0 {
                    Ok(None)
                } else {
                    cached_str(cache, addr, want)
                };
                match got {
                    Err(()) => {
                        s.need = Some(Need::Str { addr, max: want });
                        return;
                    }
                    Ok(bytes) => {
                        s.stack.pop();
                        if let Op::StrEq { lit: l } = op {
                            let Some(b) = bytes else {
                                fail!(Fault::Unreadable(addr))
                            };
                            let l = lit(*l);
                            let equal = b.len() > l.len() && &b[..l.len()] == l && b[l.len()] == 0;
                            s.stack.push(equal as u64);
                        } else {
                            let (body, flags) = match bytes {
                                None => (Vec::new(), CSTR_UNREADABLE),
                                Some(b) => match b.iter().position(|c| *c == 0) {
                                    Some(nul) => (b[..nul].to_vec(), 0),
                                    None => (b, CSTR_TRUNCATED),
                                },
                            };
                            s.captured
                                .extend_from_slice(&(body.len() as u32).to_le_bytes());
                            s.captured.push(flags);
                            s.captured.extend_from_slice(&body);
                        }
                    }
                }
            }
            Op::BytesEq { lit: l } => {
                let len = pop!();
                let addr = pop!();
                let l = lit(*l);
                if len != l.len() as u64 {
                    s.stack.push(0);
                } else if len == 0 {
                    s.stack.push(1);
                } else {
                    match cache.get(addr, l.len()) {
                        Lookup::Hit(b) => s.stack.push((b == l) as u64),
                        Lookup::Failed => fail!(Fault::Unreadable(addr)),
                        Lookup::Miss => {
                            s.stack.push(addr);
                            s.stack.push(len);
                            s.need = Some(Need::Bytes { addr, len: l.len() });
                            return;
                        }
                    }
                }
            }
            Op::CaptureWord(n) => {
                let v = pop!();
                let n = (*n as usize).clamp(1, 8);
                s.captured.extend_from_slice(&v.to_le_bytes()[..n]);
            }
            Op::CaptureLit(l) => s.captured.extend_from_slice(lit(*l)),
            Op::OptimizedOut => fail!(Fault::OptimizedOut),
            Op::Unavailable { why } => fail!(Fault::Unavailable(
                String::from_utf8_lossy(lit(*why)).into_owned()
            )),
            Op::Jz(t) | Op::Jmp(t) => {
                if (*t as usize) <= s.pc {
                    fail!(Fault::Malformed("backward jump"));
                }
                let take = match op {
                    Op::Jz(_) => pop!() == 0,
                    _ => true,
                };
                if take {
                    s.pc = *t as usize;
                    continue;
                }
            }
            Op::Dup => {
                let v = pop!();
                s.stack.push(v);
                s.stack.push(v);
            }
            Op::Drop => {
                pop!();
            }
            Op::Swap => {
                let b = pop!();
                let a = pop!();
                s.stack.push(b);
                s.stack.push(a);
            }
            Op::Neg
            | Op::Not
            | Op::LNot
            | Op::SExt(_)
            | Op::ZExt(_)
            | Op::FNeg
            | Op::IToF { .. }
            | Op::FToI { .. }
            | Op::F32ToF64
            | Op::F64ToF32 => {
                let a = pop!();
                s.stack.push(unary(op, a));
            }
            _ => {
                let b = pop!();
                let a = pop!();
                match binary(op, a, b) {
                    Some(v) => s.stack.push(v),
                    None => fail!(Fault::DivByZero),
                }
            }
        }
        s.pc += 1;
    }
    s.end = Some(Outcome::Done {
        top: s.stack.last().copied(),
        captured: std::mem::take(&mut s.captured),
        truncated: s.truncated,
    });
}

fn f(v: u64) -> f64 {
    f64::from_bits(v)
}

fn unary(op: &Op, a: u64) -> u64 {
    match op {
        Op::Neg => a.wrapping_neg(),
        Op::Not => !a,
        Op::LNot => (a == 0) as u64,
        Op::SExt(bits) => {
            let shift = 64 - (*bits as u32).clamp(1, 64);
            (((a << shift) as i64) >> shift) as u64
        }
        Op::ZExt(bits) => {
            if *bits >= 64 {
                a
            } else {
                a & ((1u64 << bits) - 1)
            }
        }
        Op::FNeg => (-f(a)).to_bits(),
        Op::IToF { signed: true } => (a as i64 as f64).to_bits(),
        Op::IToF { signed: false } => (a as f64).to_bits(),
        Op::FToI { signed: true } => f(a) as i64 as u64,
        Op::FToI { signed: false } => f(a) as u64,
        Op::F32ToF64 => (f32::from_bits(a as u32) as f64).to_bits(),
        Op::F64ToF32 => (f(a) as f32).to_bits() as u64,
        _ => a,
    }
}

/// `None` for a division by zero.
fn binary(op: &Op, a: u64, b: u64) -> Option<u64> {
    let (sa, sb) = (a as i64, b as i64);
    Some(match op {
        Op::Add => a.wrapping_add(b),
        Op::Sub => a.wrapping_sub(b),
        Op::Mul => a.wrapping_mul(b),
        Op::DivS => {
            if b == 0 {
                return None;
            }
            sa.wrapping_div(sb) as u64
        }
        Op::DivU => a.checked_div(b)?,
        Op::RemS => {
            if b == 0 {
                return None;
            }
            sa.wrapping_rem(sb) as u64
        }
        Op::RemU => a.checked_rem(b)?,
        Op::And => a & b,
        Op::Or => a | b,
        Op::Xor => a ^ b,
        Op::Shl => a.wrapping_shl(b as u32),
        Op::ShrS => sa.wrapping_shr(b as u32) as u64,
        Op::ShrU => a.wrapping_shr(b as u32),
        Op::Eq => (a == b) as u64,
        Op::Ne => (a != b) as u64,
        Op::LtS => (sa < sb) as u64,
        Op::LtU => (a < b) as u64,
        Op::LeS => (sa <= sb) as u64,
        Op::LeU => (a <= b) as u64,
        Op::FAdd => (f(a) + f(b)).to_bits(),
        Op::FSub => (f(a) - f(b)).to_bits(),
        Op::FMul => (f(a) * f(b)).to_bits(),
        Op::FDiv => (f(a) / f(b)).to_bits(),
        Op::FEq => (f(a) == f(b)) as u64,
        Op::FLt => (f(a) < f(b)) as u64,
        Op::FLe => (f(a) <= f(b)) as u64,
        _ => a,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regs::Reg;

    /// Memory backed by a map of regions; counts batches.
    struct Fake {
        regions: Vec<(u64, Vec<u8>)>,
        batches: usize,
    }

    impl Memory for Fake {
        fn read_batch(&mut self, ranges: &mut [(u64, &mut [u8])]) -> Vec<bool> {
            self.batches += 1;
            ranges
                .iter_mut()
                .map(|(addr, buf)| {
                    for (base, data) in &self.regions {
                        if *addr >= *base
                            && (*addr - base).saturating_add(buf.len() as u64) <= data.len() as u64
                        {
                            let off = (*addr - base) as usize;
                            buf.copy_from_slice(&data[off..off + buf.len()]);
                            return true;
                        }
                    }
                    false
                })
                .collect()
        }
    }

    fn regs() -> libc::user_regs_struct {
        // SAFETY: all-zero registers are a valid value.
        let mut r: libc::user_regs_struct = unsafe { std::mem::zeroed() };
        r.rbp = 0x1010;
        r.rdi = 0x2000;
        r
    }

    fn prog(ops: Vec<Op>, lits: Vec<&[u8]>) -> Program {
        Program {
            ops,
            lits: lits.into_iter().map(|l| l.to_vec()).collect(),
        }
    }

    fn fake() -> Fake {
        let mut stack = vec![0u8; 0x100];
        stack[0..8].copy_from_slice(&0x2000u64.to_le_bytes()); // at 0x1000: a pointer to the order
        stack[8..12].copy_from_slice(&(-5i32).to_le_bytes()); // at 0x1008: int -5
        let mut order = vec![0u8; 0x40];
        order[4..8].copy_from_slice(&3i32.to_le_bytes()); // qty at +4
        order[8..16].copy_from_slice(&0x3000u64.to_le_bytes()); // name pointer at +8
        let mut name = b"bob\0".to_vec();
        name.resize(0x1000, 0); // a whole page, as real mappings are
        Fake {
            regions: vec![(0x1000, stack), (0x2000, order), (0x3000, name)],
            batches: 0,
        }
    }

    #[test]
    fn independent_values_cost_one_batch_and_dependent_ones_one_more() {
        let mut mem = fake();
        let r = regs();
        let ctx = HitContext {
            regs: &r,
            pid: 1,
            tid: 2,
            hits: 7,
            fpregs: None,
            entry_regs: None,
        };
        // x: int at rbp-8, sign-extended.
        let x = prog(
            vec![
                Op::Reg(Reg::Rbp),
                Op::Const((-8i64) as u64),
                Op::Add,
                Op::Load(4),
                Op::SExt(32),
            ],
            vec![],
        );
        // o->qty > 2, o at rbp-16.
        let cond = prog(
            vec![
                Op::Reg(Reg::Rbp),
                Op::Const((-16i64) as u64),
                Op::Add,
                Op::Load(8),
                Op::Const(4),
                Op::Add,
                Op::Load(4),
                Op::SExt(32),
                Op::Const(2),
                Op::Swap,
                Op::LtS,
            ],
            vec![],
        );
        let outs = run_all(&[&x, &cond], &ctx, &mut mem, Limits::default());
        assert_eq!(
            outs[0],
            Outcome::Done {
                top: Some((-5i64) as u64),
                captured: vec![],
                truncated: false
            }
        );
        assert_eq!(
            outs[1],
            Outcome::Done {
                top: Some(1),
                captured: vec![],
                truncated: false
            }
        );
        assert_eq!(
            mem.batches, 2,
            "two rounds: the locals, then through the pointer"
        );
    }

    #[test]
    fn strings_compare_by_content_and_capture_with_their_length() {
        let mut mem = fake();
        let r = regs();
        let ctx = HitContext {
            regs: &r,
            pid: 1,
            tid: 2,
            hits: 1,
            fpregs: None,
            entry_regs: None,
        };
        let name_ptr = vec![Op::Reg(Reg::Rdi), Op::Const(8), Op::Add, Op::Load(8)];
        let eq = prog(
            [name_ptr.clone(), vec![Op::StrEq { lit: 0 }]].concat(),
            vec![b"bob"],
        );
        let ne = prog(
            [name_ptr.clone(), vec![Op::StrEq { lit: 0 }]].concat(),
            vec![b"bo"],
        );
        let cap = prog(
            [
                name_ptr.clone(),
                vec![Op::Dup, Op::CaptureWord(8), Op::CaptureCStr(256)],
            ]
            .concat(),
            vec![],
        );
        let outs = run_all(&[&eq, &ne, &cap], &ctx, &mut mem, Limits::default());
        assert!(matches!(outs[0], Outcome::Done { top: Some(1), .. }));
        assert!(matches!(outs[1], Outcome::Done { top: Some(0), .. }));
        let Outcome::Done { captured, .. } = &outs[2] else {
            panic!()
        };
        assert_eq!(&captured[..8], &0x3000u64.to_le_bytes());
        assert_eq!(&captured[8..12], &3u32.to_le_bytes());
        assert_eq!(captured[12], 0);
        assert_eq!(&captured[13..], b"bob");
    }

    #[test]
    fn faults_are_statuses() {
        let mut mem = fake();
        let r = regs();
        let ctx = HitContext {
            regs: &r,
            pid: 1,
            tid: 2,
            hits: 1,
            fpregs: None,
            entry_regs: None,
        };
        let null = prog(vec![Op::Const(0), Op::Load(4)], vec![]);
        let div = prog(vec![Op::Const(1), Op::Const(0), Op::DivS], vec![]);
        let gone = prog(vec![Op::OptimizedOut], vec![]);
        let why = prog(vec![Op::Unavailable { why: 0 }], vec![b"entry value"]);
        let bad = prog(vec![Op::Add], vec![]);
        let back = prog(vec![Op::Const(0), Op::Jz(0)], vec![]);
        let outs = run_all(
            &[&null, &div, &gone, &why, &bad, &back],
            &ctx,
            &mut mem,
            Limits::default(),
        );
        assert_eq!(outs[0], Outcome::Failed(Fault::Unreadable(0)));
        assert_eq!(outs[1], Outcome::Failed(Fault::DivByZero));
        assert_eq!(outs[2], Outcome::Failed(Fault::OptimizedOut));
        assert_eq!(
            outs[3],
            Outcome::Failed(Fault::Unavailable("entry value".into()))
        );
        assert!(matches!(outs[4], Outcome::Failed(Fault::Malformed(_))));
        assert!(matches!(outs[5], Outcome::Failed(Fault::Malformed(_))));
    }

    #[test]
    fn logic_jumps_facts_floats_and_capture_limits() {
        let mut mem = fake();
        let r = regs();
        let ctx = HitContext {
            regs: &r,
            pid: 10,
            tid: 20,
            hits: 3,
            fpregs: None,
            entry_regs: None,
        };
        // $hits > 2 ? 100 : *(int*)0  — the unreadable branch is never run.
        let tern = prog(
            vec![
                Op::Const(2),
                Op::Fact(Fact::Hits),
                Op::LtU,
                Op::Jz(6),
                Op::Const(100),
                Op::Jmp(8),
                Op::Const(0),
                Op::Load(4),
            ],
            vec![],
        );
        let float = prog(
            vec![
                Op::Const(3),
                Op::IToF { signed: true },
                Op::Const(2.5f64.to_bits()),
                Op::FMul,
            ],
            vec![],
        );
        let big = prog(vec![Op::Const(0x1000), Op::CaptureMem(0x100)], vec![]);
        let outs = run_all(
            &[&tern, &float, &big],
            &ctx,
            &mut mem,
            Limits { capture_bytes: 16 },
        );
        assert!(matches!(outs[0], Outcome::Done { top: Some(100), .. }));
        let Outcome::Done { top: Some(v), .. } = outs[1] else {
            panic!()
        };
        assert_eq!(f64::from_bits(v), 7.5);
        let Outcome::Done {
            captured,
            truncated,
            ..
        } = &outs[2]
        else {
            panic!()
        };
        assert_eq!(captured.len(), 16);
        assert!(*truncated);
    }
}
