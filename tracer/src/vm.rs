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
    IToF { signed: bool },
    FToI { signed: bool },
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
    StrEq { lit: u32 },
    /// Pop a length and an address; push 1 if the `len` bytes there equal literal `lit`
    /// (std::string, Rust &str and String carry a pointer and a length).
    BytesEq { lit: u32 },
    /// The value does not exist here (no location-list entry covers the pc).
    OptimizedOut,
    /// The value cannot be computed here; the reason is literal `why`.
    Unavailable { why: u32 },
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
    /// This probe's hit count, this hit included (`$hits`).
    Hits,
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

/// The outcome of one program at one hit.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The program ended; `top` is the word left on the stack (conditions, scalar values),
    /// `captured` the bytes it captured (values shown by type), `strings` the C strings.
    Done { top: Option<u64>, captured: Vec<u8>, truncated: bool },
    /// It could not finish.
    Failed(Fault),
}
