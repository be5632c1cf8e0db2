//! Stack unwinding for snapshots: the call stack of a stopped thread from its registers and
//! its memory, through call frame information (CFI).
//!
//! Each step looks up the CFI row of the frame's pc (`.eh_frame` through `.eh_frame_hdr`,
//! then `.debug_frame`, via gimli) and applies its rules: the canonical frame address (CFA)
//! from a register plus an offset or a DWARF expression, then every register rule (saved at
//! CFA+N, equal to CFA+N, in another register, at or equal to an expression's result) to
//! recover the caller's registers. The return-address column gives the caller's pc.
//!
//! - Frame 0 uses its pc as is. A caller's pc is a return address, just after its call
//!   instruction, which may be the first byte of the next function (after a call to a
//!   `noreturn` function), so its row is looked up at pc-1; the frame still reports the
//!   return address as its pc, as gdb does.
//! - Signal frames: a CIE with augmentation "S" marks a signal trampoline (glibc's
//!   `__restore_rt`); its CFI describes the kernel's `rt_sigframe`, so following the rules
//!   recovers the interrupted registers. The trampoline frame is marked `signal_frame`, and
//!   the interrupted frame's row is looked up at its pc itself (it was interrupted there,
//!   not called from there).
//! - A pc without CFI falls back to the frame-pointer chain (`rbp`) for one frame.
//! - The vDSO has `.eh_frame` but no file: it is found in memory (an ELF header on the pc's
//!   page or a few pages below) and its frames have no module.
//! - Unwinding stops, with a reason, at the depth limit, at a return address 0 or undefined
//!   (the outermost frame), on a CFA that does not grow (a loop or a corrupt stack), on
//!   unreadable memory, and where neither CFI nor the frame-pointer chain give a caller.
//!   Garbage on the stack gives a truncated stack and a reason, never a panic.
//!
//! [`expand_inlined`] names a frame's pc with its inlined calls expanded, innermost first.

use crate::addr::FileAddr;
use crate::debuginfo::ModuleSymbols;
use crate::regs::Reg;
use gimli::{CfaRule, RegisterRule};
use std::fmt;

/// The default depth of a snapshot's stack.
pub const DEFAULT_MAX_FRAMES: usize = 64;

/// Number of DWARF registers tracked: 0..=16 (rax … r15, and 16, the return address / rip).
const NREGS: usize = 17;
/// DWARF numbers of the registers the unwinder uses by name.
const RBP: usize = Reg::Rbp as usize;
const RSP: usize = Reg::Rsp as usize;
const RIP: usize = Reg::Rip as usize;
/// The callee-saved registers of the System V x86-64 ABI (besides rsp): a rule-less one has
/// the same value in the caller.
const CALLEE_SAVED: [usize; 6] = [3, 6, 12, 13, 14, 15];

/// The gimli reader of CFI sections (owned, shareable section bytes).
pub(crate) type CfiReader = gimli::EndianArcSlice<gimli::RunTimeEndian>;

/// The unwind row covering a pc, as handed out by the frame tables of a module
/// (`FrameTables::with_cfi_row`) or of the vDSO.
pub(crate) struct CfiRow<'a> {
    /// The row: the CFA rule and the register rules.
    pub row: &'a gimli::UnwindTableRow<usize>,
    /// The CIE has augmentation "S": this is a signal trampoline.
    pub signal_trampoline: bool,
    /// The CIE's return-address column (16, rip, on x86-64).
    pub return_address_register: u16,
    /// The bytes of a DWARF expression of the row (expressions are offsets into the section).
    pub expression:
        &'a dyn Fn(&gimli::UnwindExpression<usize>) -> Option<gimli::Expression<CfiReader>>,
}

/// The registers known in one frame, by DWARF register number 0..=16 (rax, rdx, rcx, rbx,
/// rsi, rdi, rbp, rsp, r8 … r15, and 16 for rip).
///
/// Frame 0 knows all of them. In a caller, `rsp` is the callee's CFA, `rip` the return
/// address, and the callee-saved registers (rbx, rbp, r12–r15) are known where the callee's
/// CFI says where it saved them or that it left them alone; the caller-saved ones are None.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnwindRegs {
    /// The value of each DWARF register 0..=16 in this frame, None where unknown.
    pub values: [Option<u64>; NREGS],
}

impl UnwindRegs {
    /// All general-purpose registers and rip of a stopped thread (frame 0).
    pub fn from_user_regs(r: &libc::user_regs_struct) -> Self {
        let mut values = [None; NREGS];
        for (n, v) in values.iter_mut().enumerate() {
            *v = Reg::from_dwarf(n as u16).map(|reg| reg.read(r));
        }
        UnwindRegs { values }
    }

    /// The value of `reg` in this frame, if known. `fs_base` is not tracked (None): it is
    /// per thread, read it from the thread's registers.
    pub fn get(&self, reg: Reg) -> Option<u64> {
        self.dwarf(reg as u16)
    }

    /// The value of DWARF register `n` in this frame, if known (None above 16).
    pub fn dwarf(&self, n: u16) -> Option<u64> {
        self.values.get(n as usize).copied().flatten()
    }
}

/// One frame of an unwound stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnwindFrame {
    /// The runtime pc: the thread's rip for frame 0 and for a frame a signal interrupted,
    /// else the return address (one past the call instruction; describe it with
    /// `is_caller = true`, which looks it up at pc-1).
    pub pc: u64,
    /// The frame's canonical frame address (the caller's rsp before its call), None when the
    /// frame is the last one and its CFA could not be computed.
    pub cfa: Option<u64>,
    /// The registers recovered for this frame (all of them in frame 0).
    pub regs: UnwindRegs,
    /// The module containing the pc, as an index into the `modules` passed to [`unwind`];
    /// None in the vDSO and outside any module.
    pub module: Option<usize>,
    /// The frame is a signal trampoline (`__restore_rt`, gdb's `<signal handler called>`):
    /// the next frame is the code the signal interrupted.
    pub signal_frame: bool,
}

impl UnwindFrame {
    /// True if the pc is a return address (look up source positions at pc-1): every frame but
    /// the first and those a signal interrupted. `previous` is the frame before this one.
    pub fn is_caller(&self, previous: Option<&UnwindFrame>) -> bool {
        previous.is_some_and(|p| !p.signal_frame)
    }
}

/// Why unwinding stopped after the last frame returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnwindStop {
    /// `max_frames` frames were unwound; the stack goes on.
    Depth,
    /// The pc (of the last frame) is in no module and not in the vDSO, and the frame-pointer
    /// fallback gave no caller.
    NoModule(u64),
    /// No CFI covers the pc (of the last frame), and the frame-pointer fallback (`rbp`) gave
    /// no caller either (no sane `rbp`, unreadable, or already used for the frame before).
    NoCfi(u64),
    /// The CFI rules of the last frame need memory at this address, and it is unreadable.
    Unreadable(u64),
    /// The next frame's CFA would not be above the last frame's (or would repeat an earlier
    /// frame): a loop or a corrupt stack. That frame is left out, as gdb does.
    Loop,
    /// The outermost frame: the return address is 0 or undefined (`_start`, thread starts).
    ReturnAddressZero,
    /// The CFI could not be applied (an unknown register, an unsupported expression).
    Error(String),
}

impl fmt::Display for UnwindStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnwindStop::Depth => write!(f, "stopped at the depth limit"),
            UnwindStop::NoModule(pc) => write!(
                f,
                "{pc:#x} is in no loaded module and the frame-pointer chain gave no caller"
            ),
            UnwindStop::NoCfi(pc) => write!(
                f,
                "no call frame information at {pc:#x}, and the frame-pointer chain (rbp) gave no caller"
            ),
            UnwindStop::Unreadable(addr) => {
                write!(f, "the stack at {addr:#x} is unreadable")
            }
            UnwindStop::Loop => write!(
                f,
                "the caller's frame is not above its callee's (corrupt stack?)"
            ),
            UnwindStop::ReturnAddressZero => write!(f, "outermost frame"),
            UnwindStop::Error(e) => write!(f, "{e}"),
        }
    }
}

/// A module the unwinder can look pcs up in.
#[derive(Clone, Copy)]
pub struct UnwindModule<'a> {
    /// Lowest mapped runtime address.
    pub start: u64,
    /// One past the highest mapped runtime address.
    pub end: u64,
    /// The load bias (runtime address minus file address).
    pub bias: u64,
    /// The module's symbols (its CFI and DWARF).
    pub symbols: &'a ModuleSymbols,
}

/// Result of applying one frame's CFI row.
struct Step {
    /// The frame's CFA.
    cfa: u64,
    /// The caller's registers (rip: the return address, None if undefined).
    caller: UnwindRegs,
    /// The row belongs to a signal trampoline.
    signal: bool,
}

/// Why one step failed.
enum StepError {
    /// Memory the rules need is unreadable.
    Unreadable(u64),
    /// Anything else.
    Error(String),
}

/// Reads a little-endian u64.
fn read_u64(read: &mut dyn FnMut(u64, &mut [u8]) -> bool, addr: u64) -> Result<u64, StepError> {
    let mut b = [0u8; 8];
    if read(addr, &mut b) {
        Ok(u64::from_le_bytes(b))
    } else {
        Err(StepError::Unreadable(addr))
    }
}

/// The name of DWARF register `n` for messages.
fn reg_name(n: u16) -> String {
    match Reg::from_dwarf(n) {
        Some(r) => r.name().to_string(),
        None => format!("DWARF register {n}"),
    }
}

/// Evaluates a CFI DWARF expression in a frame with registers `regs`; `cfa` is pushed first
/// for register rules (DW_CFA_expression / val_expression), None for the CFA's own rule.
/// Returns the expression's value (an address for DW_CFA_expression).
fn evaluate(
    expr: gimli::Expression<CfiReader>,
    regs: &UnwindRegs,
    cfa: Option<u64>,
    bias: u64,
    read: &mut dyn FnMut(u64, &mut [u8]) -> bool,
) -> Result<u64, StepError> {
    use gimli::EvaluationResult as E;
    let err = |e: gimli::Error| StepError::Error(format!("evaluating a CFI expression: {e}"));
    let encoding = gimli::Encoding {
        address_size: 8,
        format: gimli::Format::Dwarf32,
        version: 4,
    };
    let mut eval = expr.evaluation(encoding);
    eval.set_max_iterations(10_000);
    if let Some(cfa) = cfa {
        eval.set_initial_value(cfa);
    }
    let mut state = eval.evaluate().map_err(err)?;
    loop {
        state = match state {
            E::Complete => break,
            E::RequiresMemory { address, size, .. } => {
                let size = (size as usize).clamp(1, 8);
                let mut b = [0u8; 8];
                if !read(address, &mut b[..size]) {
                    return Err(StepError::Unreadable(address));
                }
                eval.resume_with_memory(gimli::Value::Generic(u64::from_le_bytes(b)))
                    .map_err(err)?
            }
            E::RequiresRegister { register, .. } => {
                let Some(v) = regs.dwarf(register.0) else {
                    return Err(StepError::Error(format!(
                        "a CFI expression needs {}, unknown in this frame",
                        reg_name(register.0)
                    )));
                };
                eval.resume_with_register(gimli::Value::Generic(v))
                    .map_err(err)?
            }
            E::RequiresRelocatedAddress(a) => eval
                .resume_with_relocated_address(a.wrapping_add(bias))
                .map_err(err)?,
            E::RequiresCallFrameCfa if cfa.is_some() => eval
                .resume_with_call_frame_cfa(cfa.unwrap_or_default())
                .map_err(err)?,
            other => {
                return Err(StepError::Error(format!(
                    "a CFI expression needs {other:?}, which the unwinder does not provide"
                )));
            }
        };
    }
    let pieces = eval.result();
    match pieces.as_slice() {
        [piece] => match &piece.location {
            gimli::Location::Address { address } => Ok(*address),
            gimli::Location::Value { value } => value.to_u64(!0).map_err(err),
            gimli::Location::Register { register } => regs.dwarf(register.0).ok_or_else(|| {
                StepError::Error(format!(
                    "a CFI expression names {}, unknown in this frame",
                    reg_name(register.0)
                ))
            }),
            other => Err(StepError::Error(format!(
                "a CFI expression gives {other:?}, not an address or value"
            ))),
        },
        _ => Err(StepError::Error(
            "a CFI expression gives a composite location".to_string(),
        )),
    }
}

/// Applies one CFI row to a frame with registers `regs`: its CFA and the caller's registers.
fn apply_row(
    row: CfiRow<'_>,
    regs: &UnwindRegs,
    bias: u64,
    read: &mut dyn FnMut(u64, &mut [u8]) -> bool,
) -> Result<Step, StepError> {
    let expression = |e: &gimli::UnwindExpression<usize>| {
        (row.expression)(e)
            .ok_or_else(|| StepError::Error("a CFI expression is out of its section".to_string()))
    };
    let cfa = match row.row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } => {
            let Some(base) = regs.dwarf(register.0) else {
                return Err(StepError::Error(format!(
                    "the CFA is based on {}, unknown in this frame",
                    reg_name(register.0)
                )));
            };
            base.wrapping_add(*offset as u64)
        }
        CfaRule::Expression(e) => evaluate(expression(e)?, regs, None, bias, read)?,
    };
    let mut caller = UnwindRegs::default();
    for r in CALLEE_SAVED {
        caller.values[r] = regs.values[r];
    }
    caller.values[RSP] = Some(cfa);
    // The return-address column has no value unless a rule gives one.
    let ra = row.return_address_register as usize;
    let mut return_address = None;
    for (register, rule) in row.row.registers() {
        let n = register.0 as usize;
        if n >= NREGS && n != ra {
            continue; // vector and x87 registers are not tracked
        }
        let value = match rule {
            RegisterRule::Undefined | RegisterRule::Architectural => None,
            RegisterRule::SameValue => regs.dwarf(register.0),
            RegisterRule::Offset(off) => Some(read_u64(read, cfa.wrapping_add(*off as u64))?),
            RegisterRule::ValOffset(off) => Some(cfa.wrapping_add(*off as u64)),
            RegisterRule::Register(other) => regs.dwarf(other.0),
            RegisterRule::Expression(e) => {
                let addr = evaluate(expression(e)?, regs, Some(cfa), bias, read)?;
                Some(read_u64(read, addr)?)
            }
            RegisterRule::ValExpression(e) => {
                Some(evaluate(expression(e)?, regs, Some(cfa), bias, read)?)
            }
            RegisterRule::Constant(c) => Some(*c),
        };
        if n == ra {
            return_address = value;
        }
        if n < NREGS {
            caller.values[n] = value;
        }
    }
    // The caller's pc is the return-address column's value (None if undefined).
    caller.values[RIP] = return_address;
    Ok(Step {
        cfa,
        caller,
        signal: row.signal_trampoline,
    })
}

/// The frame-pointer fallback for a frame without CFI: with `push %rbp; mov %rsp,%rbp`, the
/// caller's rbp is at [rbp], the return address at [rbp+8], and the CFA is rbp+16. None if
/// rbp is not a plausible frame pointer or its slots are unreadable.
fn frame_pointer_step(
    regs: &UnwindRegs,
    read: &mut dyn FnMut(u64, &mut [u8]) -> bool,
) -> Option<Step> {
    let rbp = regs.values[RBP]?;
    if rbp == 0 || rbp % 8 != 0 {
        return None;
    }
    if let Some(rsp) = regs.values[RSP]
        && (rbp < rsp || rbp - rsp > 64 << 20)
    {
        return None;
    }
    let saved_rbp = read_u64(read, rbp).ok()?;
    let return_address = read_u64(read, rbp.checked_add(8)?).ok()?;
    let mut caller = UnwindRegs::default();
    caller.values[RBP] = Some(saved_rbp);
    caller.values[RSP] = Some(rbp + 16);
    caller.values[RIP] = Some(return_address);
    Some(Step {
        cfa: rbp + 16,
        caller,
        signal: false,
    })
}

/// The vDSO found in memory: its runtime range, bias and .eh_frame.
struct Vdso {
    start: u64,
    end: u64,
    bias: u64,
    eh_frame: gimli::EhFrame<CfiReader>,
    bases: gimli::BaseAddresses,
}

impl Vdso {
    /// Finds the vDSO image containing `pc`: an ELF header on pc's page or up to 3 pages
    /// below (the x86-64 vDSO is 2 pages), read through `read`. None if there is none.
    fn find(pc: u64, read: &mut dyn FnMut(u64, &mut [u8]) -> bool) -> Option<Vdso> {
        let page = pc & !0xfff;
        for back in 0..4u64 {
            let base = page.checked_sub(back * 0x1000)?;
            let mut header = [0u8; 64];
            if !read(base, &mut header) {
                return None;
            }
            if header[..4] == *b"\x7fELF" {
                return Vdso::parse(base, &header, pc, read);
            }
        }
        None
    }

    /// Reads and parses the image whose ELF header (64 bytes) is at `base`.
    fn parse(
        base: u64,
        header: &[u8; 64],
        pc: u64,
        read: &mut dyn FnMut(u64, &mut [u8]) -> bool,
    ) -> Option<Vdso> {
        use object::{Object, ObjectSection, ObjectSegment};
        // ELFCLASS64, little-endian, ET_DYN.
        if header[4] != 2 || header[5] != 1 || u16::from_le_bytes([header[16], header[17]]) != 3 {
            return None;
        }
        let shoff = u64::from_le_bytes(header[0x28..0x30].try_into().ok()?);
        let shentsize = u16::from_le_bytes([header[0x3a], header[0x3b]]) as u64;
        let shnum = u16::from_le_bytes([header[0x3c], header[0x3d]]) as u64;
        let size = shoff.checked_add(shentsize.checked_mul(shnum)?)?;
        if !(64..=256 << 10).contains(&size) {
            return None;
        }
        let mut image = vec![0u8; size as usize];
        if !read(base, &mut image) {
            return None;
        }
        let file = object::File::parse(&*image).ok()?;
        let first = file.segments().map(|s| s.address()).min()?;
        let bias = base.wrapping_sub(first & !0xfff);
        let end = file
            .segments()
            .map(|s| s.address().wrapping_add(s.size()))
            .max()?
            .wrapping_add(bias);
        if !(base <= pc && pc < end) {
            return None;
        }
        let section = file.section_by_name(".eh_frame")?;
        let data = section.data().ok()?;
        let mut bases = gimli::BaseAddresses::default().set_eh_frame(section.address());
        if let Some(text) = file.section_by_name(".text") {
            bases = bases.set_text(text.address());
        }
        let mut eh_frame = gimli::EhFrame::from(CfiReader::new(
            std::sync::Arc::from(data),
            gimli::RunTimeEndian::Little,
        ));
        eh_frame.set_address_size(8);
        Some(Vdso {
            start: base,
            end,
            bias,
            eh_frame,
            bases,
        })
    }

    /// True if runtime address `pc` is in the image.
    fn contains(&self, pc: u64) -> bool {
        self.start <= pc && pc < self.end
    }

    /// Applies `f` to the row covering file address `pc`, None without CFI there.
    fn with_cfi_row<T>(&self, pc: u64, f: impl FnOnce(CfiRow<'_>) -> T) -> Option<T> {
        use gimli::UnwindSection;
        let mut ctx = Box::new(gimli::UnwindContext::new());
        let fde = self
            .eh_frame
            .fde_for_address(&self.bases, pc, gimli::EhFrame::cie_from_offset)
            .ok()?;
        let row = fde
            .unwind_info_for_address(&self.eh_frame, &self.bases, &mut ctx, pc)
            .ok()?;
        let expression = |e: &gimli::UnwindExpression<usize>| e.get(&self.eh_frame).ok();
        Some(f(CfiRow {
            row,
            signal_trampoline: fde.cie().is_signal_trampoline(),
            return_address_register: fde.cie().return_address_register().0,
            expression: &expression,
        }))
    }
}

/// Where a frame's pc is.
enum Place {
    /// In `modules[i]`.
    Module(usize),
    /// In the vDSO.
    Vdso,
    /// Nowhere known.
    Unknown,
}

/// Unwinds the stack of a thread stopped with registers `regs`, reading its memory through
/// `read(address, buffer)` (false if any byte is unreadable), with pcs looked up in `modules`
/// (and the vDSO, found in memory). Returns at most `max_frames` frames, innermost first
/// (frame 0 is the thread's pc), and why unwinding stopped.
pub fn unwind(
    regs: &libc::user_regs_struct,
    read: &mut dyn FnMut(u64, &mut [u8]) -> bool,
    modules: &[UnwindModule<'_>],
    max_frames: usize,
) -> (Vec<UnwindFrame>, UnwindStop) {
    let mut frames: Vec<UnwindFrame> = Vec::new();
    let mut cur = UnwindRegs::from_user_regs(regs);
    // Frame 0 and a frame a signal interrupted are looked up at their pc, callers at pc-1.
    let mut exact_pc = true;
    // The current frame was found through the frame-pointer fallback.
    let mut via_frame_pointer = false;
    let mut vdso: Option<Vdso> = None;
    loop {
        if frames.len() >= max_frames {
            return (frames, UnwindStop::Depth);
        }
        let pc = match cur.values[RIP] {
            Some(pc) if pc != 0 => pc,
            _ => return (frames, UnwindStop::ReturnAddressZero),
        };
        let lookup = if exact_pc { pc } else { pc.wrapping_sub(1) };
        let place = match modules
            .iter()
            .position(|m| m.start <= lookup && lookup < m.end)
        {
            Some(i) => Place::Module(i),
            None => {
                if !vdso.as_ref().is_some_and(|v| v.contains(lookup)) {
                    vdso = Vdso::find(lookup, read).or(vdso);
                }
                if vdso.as_ref().is_some_and(|v| v.contains(lookup)) {
                    Place::Vdso
                } else {
                    Place::Unknown
                }
            }
        };
        let mut frame = UnwindFrame {
            pc,
            cfa: None,
            regs: cur,
            module: match place {
                Place::Module(i) => Some(i),
                _ => None,
            },
            signal_frame: false,
        };
        let step = match place {
            Place::Module(i) => {
                let m = &modules[i];
                let (tables, _) = m.symbols.unwind_parts();
                tables.with_cfi_row(lookup.wrapping_sub(m.bias), |row| {
                    apply_row(row, &cur, m.bias, read)
                })
            }
            Place::Vdso => {
                let v = vdso.as_ref().expect("place is Vdso only when found");
                v.with_cfi_row(lookup.wrapping_sub(v.bias), |row| {
                    apply_row(row, &cur, v.bias, read)
                })
            }
            Place::Unknown => None,
        };
        let step = match step {
            Some(Ok(step)) => {
                via_frame_pointer = false;
                step
            }
            Some(Err(e)) => {
                frames.push(frame);
                let stop = match e {
                    StepError::Unreadable(a) => UnwindStop::Unreadable(a),
                    StepError::Error(m) => UnwindStop::Error(format!("at {pc:#x}: {m}")),
                };
                return (frames, stop);
            }
            None => {
                let no_caller = match place {
                    Place::Unknown => UnwindStop::NoModule(pc),
                    _ => UnwindStop::NoCfi(pc),
                };
                let fallback = match place {
                    Place::Vdso => None,
                    _ if via_frame_pointer => None,
                    _ => frame_pointer_step(&cur, read),
                };
                match fallback {
                    Some(step) => {
                        via_frame_pointer = true;
                        step
                    }
                    None => {
                        frames.push(frame);
                        return (frames, no_caller);
                    }
                }
            }
        };
        // A caller's CFA is above its callee's, except a signal frame's (the interrupted
        // stack may be another one, e.g. with sigaltstack); no (pc, CFA) may repeat. Like
        // gdb, a frame failing this is not shown: its CFA, and so its identity, is bogus.
        let grows = match frames.last().and_then(|f| f.cfa) {
            Some(prev) => step.signal || step.cfa > prev,
            None => true,
        };
        let repeats = frames.iter().any(|f| f.pc == pc && f.cfa == Some(step.cfa));
        if !grows || repeats {
            return (frames, UnwindStop::Loop);
        }
        frame.cfa = Some(step.cfa);
        frame.signal_frame = step.signal;
        frames.push(frame);
        cur = step.caller;
        exact_pc = step.signal;
    }
}

/// The functions at a pc of a module, innermost first, with inlined calls expanded (like
/// gdb's inline frames): each with its source file and line (for an outer function, the
/// line of the inlined call). For a caller frame (`is_caller`, the pc is a return
/// address) the lookup is at pc-1, so the line is the call's. Without DWARF: the ELF
/// symbol's name alone; empty if nothing names the pc.
pub fn expand_inlined(
    symbols: &ModuleSymbols,
    file_pc: FileAddr,
    is_caller: bool,
) -> Vec<(String, Option<String>, Option<u32>)> {
    let lookup = FileAddr(if is_caller {
        file_pc.0.wrapping_sub(1)
    } else {
        file_pc.0
    });
    let symbol = || symbols.symbol_for(lookup).map(|(name, _)| name);
    let (_, dwarf) = symbols.unwind_parts();
    let locs = dwarf.map(|d| d.frames_at(lookup.0)).unwrap_or_default();
    let n = locs.len();
    let mut out = Vec::with_capacity(n.max(1));
    for (i, loc) in locs.into_iter().enumerate() {
        let function = loc
            .function
            .or_else(|| if i + 1 == n { symbol() } else { None })
            .unwrap_or_else(|| "??".to_string());
        out.push((function, loc.file, loc.line));
    }
    if out.is_empty()
        && let Some(name) = symbol()
    {
        out.push((name, None, None));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regs(rip: u64, rsp: u64, rbp: u64) -> libc::user_regs_struct {
        // SAFETY: user_regs_struct is plain integers; all-zero is a valid value.
        let mut r: libc::user_regs_struct = unsafe { std::mem::zeroed() };
        r.rip = rip;
        r.rsp = rsp;
        r.rbp = rbp;
        r
    }

    #[test]
    fn registers_by_dwarf_number() {
        let mut r = regs(0x1000, 0x2000, 0x3000);
        r.rbx = 7;
        r.r15 = 9;
        let u = UnwindRegs::from_user_regs(&r);
        assert_eq!(u.get(Reg::Rip), Some(0x1000));
        assert_eq!(u.get(Reg::Rsp), Some(0x2000));
        assert_eq!(u.get(Reg::Rbp), Some(0x3000));
        assert_eq!(u.get(Reg::Rbx), Some(7));
        assert_eq!(u.get(Reg::R15), Some(9));
        assert_eq!(u.get(Reg::FsBase), None);
        assert_eq!(u.dwarf(17), None);
    }

    #[test]
    fn depth_zero_and_pc_zero() {
        let mut read = |_: u64, _: &mut [u8]| false;
        let (frames, stop) = unwind(&regs(0x1000, 0x2000, 0), &mut read, &[], 0);
        assert!(frames.is_empty());
        assert_eq!(stop, UnwindStop::Depth);
        let (frames, stop) = unwind(&regs(0, 0x2000, 0), &mut read, &[], 64);
        assert!(frames.is_empty());
        assert_eq!(stop, UnwindStop::ReturnAddressZero);
    }

    /// Outside any module the frame-pointer chain gives one caller, then the unwinder stops.
    #[test]
    fn frame_pointer_fallback_is_used_once() {
        let stack: Vec<(u64, u64)> = vec![(0x7000, 0x7100), (0x7008, 0x5555)];
        let mut read = |addr: u64, buf: &mut [u8]| {
            for (a, v) in &stack {
                if *a == addr && buf.len() == 8 {
                    buf.copy_from_slice(&v.to_le_bytes());
                    return true;
                }
            }
            false
        };
        let (frames, stop) = unwind(&regs(0x1234, 0x6ff0, 0x7000), &mut read, &[], 64);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].pc, 0x1234);
        assert_eq!(frames[0].cfa, Some(0x7010));
        assert_eq!(frames[1].pc, 0x5555);
        assert_eq!(frames[1].regs.get(Reg::Rbp), Some(0x7100));
        assert_eq!(frames[1].regs.get(Reg::Rsp), Some(0x7010));
        assert_eq!(stop, UnwindStop::NoModule(0x5555));
    }

    #[test]
    fn garbage_frame_pointer_stops_with_a_reason() {
        let mut read = |_: u64, buf: &mut [u8]| {
            buf.fill(0xff);
            true
        };
        // rbp below rsp: not a frame pointer.
        let (frames, stop) = unwind(&regs(0x1234, 0x7000, 0x10), &mut read, &[], 64);
        assert_eq!(frames.len(), 1);
        assert_eq!(stop, UnwindStop::NoModule(0x1234));
    }
}
