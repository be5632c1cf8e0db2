//! Where a variable's value is at a pc, as value-machine code: DWARF location expressions
//! lowered into [`Op`]s.
//!
//! A DWARF location is a little stack program; the value machine (`crate::vm`) is a stack
//! machine over the same kind of words, so most operations translate one to one. What is
//! known when the probe is set is folded in: `DW_OP_fbreg` becomes the CFA rule at the pc
//! plus the offset (one register read at the hit), `DW_OP_addr` gets the module's load bias,
//! a thread-local variable of the executable becomes `fs_base - block + offset`.
//!
//! The lowering never fails: what it cannot express becomes [`Place::Unavailable`] with the
//! reason, so one odd variable does not stop a probe from showing the others.

use super::cfa::FrameTables;
use super::dwarf::{DieId, DwarfData, R};
use crate::addr::Bias;
use crate::regs::Reg;
use crate::vm::Op;
use gimli::{AttributeValue, Operation, Reader};

/// Where a variable's value is at one pc.
#[derive(Clone, Debug, PartialEq)]
pub enum Place {
    /// In target memory: the ops push the value's address (read the type's size there).
    Memory(Vec<Op>),
    /// Not in memory: the ops push the value itself (a register, or a value DWARF computes
    /// from registers and constants: `DW_OP_stack_value`). Its low bytes are the value.
    Value(Vec<Op>),
    /// A value known when the probe is set (`DW_OP_implicit_value`, `DW_AT_const_value`):
    /// its little-endian bytes.
    Implicit(Vec<u8>),
    /// The value is split into pieces (`DW_OP_piece`), lowest-addressed first: each piece's
    /// place and its size in bytes. A piece without a location is `OptimizedOut`.
    Pieces(Vec<(Place, u64)>),
    /// The value does not exist at this pc (no location-list entry covers it, or the
    /// location is empty): gdb's `<optimized out>`.
    OptimizedOut,
    /// The value exists but this version cannot compute it; the reason, for the user.
    Unavailable(String),
}

/// The static TLS block of the executable (x86-64 TLS variant II: the thread pointer,
/// `fs_base`, is just above the executable's block).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tls {
    /// The module is the main executable; its block starts `offset` bytes below `fs_base`.
    Static { offset: u64 },
    /// The module is a shared library: its block is found through the DTV (not yet).
    Dynamic,
    /// The module has no PT_TLS segment.
    None,
}

impl Tls {
    /// The TLS layout of a module from its PT_TLS segment (`vaddr`, `memsz`, `align`),
    /// computed as glibc's `_dl_determine_tlsoffset` does for the first module (the
    /// executable): `round_up(memsz - firstbyte, align) + firstbyte`, where `firstbyte` is
    /// the misalignment of the segment's start (0 in practice, giving the psABI's
    /// `round_up(memsz, align)`).
    pub fn new(segment: Option<(u64, u64, u64)>, main_executable: bool) -> Tls {
        match segment {
            None => Tls::None,
            Some(_) if !main_executable => Tls::Dynamic,
            Some((vaddr, memsz, align)) => {
                let align = align.max(1);
                let firstbyte = vaddr.wrapping_neg() & (align - 1);
                let offset = (memsz.wrapping_sub(firstbyte)).div_ceil(align) * align + firstbyte;
                Tls::Static { offset }
            }
        }
    }
}

/// What lowering needs besides the expression.
pub(crate) struct Lower<'a> {
    /// The module's DWARF.
    pub dwarf: &'a DwarfData,
    /// Call frame information (`DW_OP_call_frame_cfa`, frame bases).
    pub frames: &'a FrameTables,
    /// The module's load bias (added to `DW_OP_addr`).
    pub bias: Bias,
    /// The module's TLS layout.
    pub tls: Tls,
    /// The out-of-line function whose frame `DW_OP_fbreg` refers to, with its entry address
    /// (where `DW_OP_entry_value` of a register is that register).
    pub frame: Option<(DieId, Option<u64>)>,
    /// The pc (file address).
    pub pc: u64,
}

/// A reason a location cannot be lowered (becomes `Place::Unavailable`).
type Why = String;

impl Lower<'_> {
    /// The place of a location attribute (`DW_AT_location`: an expression or a location
    /// list) found on a DIE of unit `ui`.
    pub fn attr(&self, ui: usize, value: AttributeValue<R>) -> Place {
        match value {
            AttributeValue::Exprloc(expr) => self.expr(ui, expr),
            list => match pick_location(self.dwarf, ui, list, self.pc) {
                Ok(Some(expr)) => self.expr(ui, expr),
                Ok(None) => Place::OptimizedOut,
                Err(e) => Place::Unavailable(format!("unreadable location list: {e}")),
            },
        }
    }

    /// The place a location expression of unit `ui` describes.
    pub fn expr(&self, ui: usize, expr: gimli::Expression<R>) -> Place {
        let ops = match parse(self.dwarf, ui, expr) {
            Ok(ops) => ops,
            Err(e) => return Place::Unavailable(e),
        };
        self.ops(ui, &ops)
    }

    /// Lowers parsed operations, splitting at `DW_OP_piece`.
    fn ops(&self, ui: usize, ops: &[Operation<R>]) -> Place {
        let mut pieces: Vec<(Place, u64)> = Vec::new();
        let mut code: Vec<Op> = Vec::new();
        // Set by an operation that completes a location (register, implicit value, stack
        // value, implicit pointer) or by a failure; the rest up to the next piece is ignored.
        let mut done: Option<Place> = None;
        for op in ops {
            if let Operation::Piece {
                size_in_bits,
                bit_offset,
            } = *op
            {
                let place = match done.take() {
                    Some(p) => p,
                    None if code.is_empty() => Place::OptimizedOut,
                    None => Place::Memory(std::mem::take(&mut code)),
                };
                code.clear();
                if bit_offset.is_some() || size_in_bits % 8 != 0 {
                    return Place::Unavailable(format!(
                        "the value is split into bit pieces (DW_OP_bit_piece, {size_in_bits} bits), which this version does not assemble"
                    ));
                }
                pieces.push((place, size_in_bits / 8));
                continue;
            }
            if done.is_some() {
                continue;
            }
            let step = match *op {
                Operation::Register { register } => {
                    if code.is_empty() {
                        reg(register.0).map(|r| Place::Value(vec![Op::Reg(r)]))
                    } else {
                        Err("a register location after other operations (malformed DWARF)".into())
                    }
                }
                Operation::ImplicitValue { ref data } => match data.to_slice() {
                    Ok(b) => Ok(Place::Implicit(b.into_owned())),
                    Err(e) => Err(format!("unreadable DW_OP_implicit_value: {e}")),
                },
                Operation::StackValue => {
                    if code.is_empty() {
                        Err("DW_OP_stack_value on an empty stack (malformed DWARF)".into())
                    } else {
                        Ok(Place::Value(std::mem::take(&mut code)))
                    }
                }
                Operation::ImplicitPointer { value, .. } => {
                    let target = self
                        .dwarf
                        .resolve_ref(ui, &AttributeValue::DebugInfoRef(value))
                        .and_then(|id| self.dwarf.name_of(id))
                        .unwrap_or_else(|| "an unnamed value".to_string());
                    Ok(Place::Unavailable(format!(
                        "implicit pointer to {target} (the pointer was optimized away; the value it points to exists only in DWARF)"
                    )))
                }
                ref other => self
                    .emit(ui, other, &mut code)
                    .map(|()| Place::OptimizedOut),
            };
            match (step, op) {
                (Ok(_), op) if !completes(op) => {}
                (Ok(place), _) => done = Some(place),
                (Err(why), _) => done = Some(Place::Unavailable(why)),
            }
        }
        if pieces.is_empty() {
            return match done {
                Some(p) => p,
                None if code.is_empty() => Place::OptimizedOut,
                None => Place::Memory(code),
            };
        }
        if done.is_some() || !code.is_empty() {
            return Place::Unavailable(
                "operations after the last DW_OP_piece (malformed DWARF)".to_string(),
            );
        }
        // All pieces unknown: the whole value is.
        if pieces.iter().all(|(p, _)| *p == Place::OptimizedOut) {
            return Place::OptimizedOut;
        }
        Place::Pieces(pieces)
    }

    /// Appends the code of one non-completing operation.
    fn emit(&self, ui: usize, op: &Operation<R>, code: &mut Vec<Op>) -> Result<(), Why> {
        let d = self.dwarf;
        match *op {
            Operation::Address { address } => {
                code.push(Op::Const(address.wrapping_add(self.bias.0)))
            }
            Operation::AddressIndex { index } => {
                let a = d
                    .dwarf
                    .address(d.unit(ui), index)
                    .map_err(|e| format!("unreadable DW_OP_addrx: {e}"))?;
                code.push(Op::Const(a.wrapping_add(self.bias.0)));
            }
            Operation::ConstantIndex { index } => {
                let a = d
                    .dwarf
                    .address(d.unit(ui), index)
                    .map_err(|e| format!("unreadable DW_OP_constx: {e}"))?;
                code.push(Op::Const(a));
            }
            Operation::UnsignedConstant { value } => code.push(Op::Const(value)),
            Operation::SignedConstant { value } => code.push(Op::Const(value as u64)),
            Operation::RegisterOffset {
                register,
                offset,
                base_type,
            } => {
                code.push(Op::Reg(reg(register.0)?));
                if base_type.0 != 0 {
                    // DW_OP_regval_type: the register as a typed value.
                    code.extend(self.convert(ui, base_type, true)?);
                }
                add_const(code, offset as u64);
            }
            Operation::FrameOffset { offset } => {
                code.extend(self.frame_base()?);
                add_const(code, offset as u64);
            }
            Operation::CallFrameCFA => code.extend(self.cfa()?),
            Operation::Deref {
                base_type,
                size,
                space,
            } => {
                if space {
                    return Err("DW_OP_xderef (address spaces) is not supported".into());
                }
                if !matches!(size, 1 | 2 | 4 | 8) {
                    return Err(format!("a {size}-byte DW_OP_deref_size is not supported"));
                }
                code.push(Op::Load(size));
                if base_type.0 != 0 {
                    code.extend(self.convert(ui, base_type, true)?);
                }
            }
            Operation::Drop => code.push(Op::Drop),
            Operation::Pick { index: 0 } => code.push(Op::Dup),
            Operation::Swap => code.push(Op::Swap),
            Operation::And => code.push(Op::And),
            Operation::Or => code.push(Op::Or),
            Operation::Xor => code.push(Op::Xor),
            Operation::Div => code.push(Op::DivS),
            Operation::Mod => code.push(Op::RemU),
            Operation::Mul => code.push(Op::Mul),
            Operation::Minus => code.push(Op::Sub),
            Operation::Plus => code.push(Op::Add),
            Operation::PlusConstant { value } => add_const(code, value),
            Operation::Neg => code.push(Op::Neg),
            Operation::Not => code.push(Op::Not),
            Operation::Shl => code.push(Op::Shl),
            Operation::Shr => code.push(Op::ShrU),
            Operation::Shra => code.push(Op::ShrS),
            Operation::Eq => code.push(Op::Eq),
            Operation::Ne => code.push(Op::Ne),
            Operation::Lt => code.push(Op::LtS),
            Operation::Le => code.push(Op::LeS),
            Operation::Gt => code.extend([Op::Swap, Op::LtS]),
            Operation::Ge => code.extend([Op::Swap, Op::LeS]),
            Operation::Nop | Operation::Uninitialized => {}
            Operation::TLS => match self.tls {
                Tls::Static { offset } => {
                    // fs_base - block + (the offset on the stack), folded when constant.
                    if let Some(&Op::Const(off)) = code.last() {
                        code.pop();
                        code.push(Op::Reg(Reg::FsBase));
                        add_const(code, off.wrapping_sub(offset));
                    } else {
                        code.extend([Op::Reg(Reg::FsBase), Op::Add]);
                        add_const(code, offset.wrapping_neg());
                    }
                }
                Tls::Dynamic => {
                    return Err(
                        "thread-local variable in a shared library: needs the DTV, not yet".into(),
                    );
                }
                Tls::None => {
                    return Err("a thread-local variable in a module without PT_TLS".into());
                }
            },
            Operation::EntryValue { ref expression } => {
                code.push(self.entry_value(ui, expression)?)
            }
            Operation::TypedLiteral {
                base_type,
                ref value,
            } => {
                let bytes = value
                    .to_slice()
                    .map_err(|e| format!("unreadable DW_OP_const_type: {e}"))?;
                if bytes.len() > 8 {
                    return Err(format!("a {}-byte typed constant", bytes.len()));
                }
                let mut w = [0u8; 8];
                w[..bytes.len()].copy_from_slice(&bytes);
                code.push(Op::Const(u64::from_le_bytes(w)));
                code.extend(self.convert(ui, base_type, true)?);
            }
            Operation::Convert { base_type } => code.extend(self.convert(ui, base_type, false)?),
            Operation::Reinterpret { base_type } => {
                code.extend(self.convert(ui, base_type, true)?);
            }
            Operation::Pick { index } => {
                return Err(format!("DW_OP_pick {index} is not supported"));
            }
            Operation::Rot => return Err("DW_OP_rot is not supported".into()),
            Operation::Abs => return Err("DW_OP_abs is not supported".into()),
            Operation::Bra { .. } | Operation::Skip { .. } => {
                return Err(
                    "DWARF expressions with branches (DW_OP_bra/skip) are not supported".into(),
                );
            }
            Operation::PushObjectAddress => {
                return Err("DW_OP_push_object_address is not supported".into());
            }
            Operation::Call { .. } => return Err("DW_OP_call is not supported".into()),
            Operation::VariableValue { .. } => {
                return Err("DW_OP_GNU_variable_value is not supported".into());
            }
            Operation::ParameterRef { .. } => {
                return Err(
                    "the value the caller passed (DW_OP_GNU_parameter_ref) is not recoverable here"
                        .into(),
                );
            }
            Operation::WasmLocal { .. }
            | Operation::WasmGlobal { .. }
            | Operation::WasmStack { .. } => return Err("WebAssembly locations".into()),
            // Handled by the caller.
            Operation::Register { .. }
            | Operation::ImplicitValue { .. }
            | Operation::StackValue
            | Operation::ImplicitPointer { .. }
            | Operation::Piece { .. } => {}
        }
        Ok(())
    }

    /// Ops pushing the CFA at the pc (its rule folded in: `rbp + 16`).
    fn cfa(&self) -> Result<Vec<Op>, Why> {
        let (r, off) = self.frames.cfa_at(self.pc)?;
        let mut code = vec![Op::Reg(r)];
        add_const(&mut code, off as u64);
        Ok(code)
    }

    /// Ops pushing the frame base of the function at the pc (`DW_AT_frame_base`).
    fn frame_base(&self) -> Result<Vec<Op>, Why> {
        let d = self.dwarf;
        let Some((frame, _)) = self.frame else {
            return Err(format!(
                "DW_OP_fbreg outside a function at {:#x} (malformed DWARF)",
                self.pc
            ));
        };
        let e = d.entry(frame).map_err(|e| e.to_string())?;
        let Some(value) = e.attr_value(gimli::DW_AT_frame_base) else {
            return Err("the function has no DW_AT_frame_base".into());
        };
        // The frame base is itself a location; lowered without a frame (no recursion).
        let inner = Lower {
            frame: None,
            ..*self
        };
        match inner.attr(frame.unit, value) {
            // DW_OP_call_frame_cfa, DW_OP_breg7 8: the ops compute the base.
            Place::Memory(ops) => Ok(ops),
            // DW_OP_reg6: the base is the register's value.
            Place::Value(ops) => Ok(ops),
            Place::Unavailable(why) => Err(format!("the frame base: {why}")),
            Place::OptimizedOut => Err(format!("no frame base covers {:#x}", self.pc)),
            other => Err(format!("an unusual frame base ({other:?})")),
        }
    }

    /// `DW_OP_entry_value(expr)`: the value `expr` had when the function was entered. At the
    /// function's first instruction that is the register itself; elsewhere it is what the
    /// caller's call site says it passed in that register (`Op::EntryReg`, which a snapshot
    /// resolves after unwinding to the caller).
    fn entry_value(&self, ui: usize, expression: &R) -> Result<Op, Why> {
        let inner = parse(self.dwarf, ui, gimli::Expression(expression.clone()))?;
        match inner.as_slice() {
            [Operation::Register { register }] => {
                let r = reg(register.0)?;
                if self.frame.and_then(|(_, entry)| entry) == Some(self.pc) {
                    return Ok(Op::Reg(r));
                }
                Ok(Op::EntryReg(r))
            }
            _ => Err(
                "the value of an expression when the function was entered (DW_OP_entry_value of more than a register), which this version does not recover".to_string(),
            ),
        }
    }

    /// Ops converting the top word to base type `base_type` of unit `ui` (DW_OP_convert and
    /// typed operations): words are kept as the 64-bit sign or zero extension of their type,
    /// so an integer conversion truncates and re-extends; generic type (offset 0) is a no-op.
    /// `keep_bits` (reinterpret, typed loads) allows float types, whose bits stay as they are.
    fn convert(
        &self,
        ui: usize,
        base_type: gimli::UnitOffset<usize>,
        keep_bits: bool,
    ) -> Result<Vec<Op>, Why> {
        if base_type.0 == 0 {
            return Ok(Vec::new());
        }
        let e = self
            .dwarf
            .entry(DieId {
                unit: ui,
                off: base_type,
            })
            .map_err(|e| e.to_string())?;
        let size = e
            .attr_value(gimli::DW_AT_byte_size)
            .and_then(|v| v.udata_value())
            .unwrap_or(8);
        let encoding = match e.attr_value(gimli::DW_AT_encoding) {
            Some(AttributeValue::Encoding(enc)) => enc,
            _ => gimli::DwAte(0),
        };
        let bits = (size * 8) as u8;
        match encoding {
            _ if size > 8 => Err(format!("a {size}-byte typed DWARF value")),
            gimli::DW_ATE_signed | gimli::DW_ATE_signed_char => Ok(if bits < 64 {
                vec![Op::SExt(bits)]
            } else {
                Vec::new()
            }),
            gimli::DW_ATE_unsigned
            | gimli::DW_ATE_unsigned_char
            | gimli::DW_ATE_boolean
            | gimli::DW_ATE_UTF
            | gimli::DW_ATE_address => Ok(if bits < 64 {
                vec![Op::ZExt(bits)]
            } else {
                Vec::new()
            }),
            gimli::DW_ATE_float if keep_bits => Ok(Vec::new()),
            other => Err(format!("a DWARF conversion to {other} values")),
        }
    }
}

/// True for the operations that complete a location (the rest up to a piece is ignored).
fn completes(op: &Operation<R>) -> bool {
    matches!(
        op,
        Operation::Register { .. }
            | Operation::ImplicitValue { .. }
            | Operation::StackValue
            | Operation::ImplicitPointer { .. }
    )
}

/// Adds constant `c` to the top word, folding it into a constant already there:
/// `[Reg(rbp), Const(16), Add]` + -20 is `[Reg(rbp), Const(-4), Add]`.
pub(crate) fn add_const(code: &mut Vec<Op>, c: u64) {
    let n = code.len();
    if n >= 2
        && let [Op::Const(a), Op::Add] = &mut code[n - 2..]
    {
        *a = a.wrapping_add(c);
        if *a == 0 {
            code.truncate(n - 2);
        }
        return;
    }
    if let Some(Op::Const(a)) = code.last_mut() {
        *a = a.wrapping_add(c);
        return;
    }
    if c != 0 {
        code.extend([Op::Const(c), Op::Add]);
    }
}

/// The register DWARF number `n` names, or why it cannot be read.
pub(crate) fn reg(n: u16) -> Result<Reg, Why> {
    // psABI numbering: 54 is the %fs selector (not read), 58 the fs base.
    match n {
        58 => return Ok(Reg::FsBase),
        54 => return Err("the value is in segment register fs, which is not read".into()),
        _ => {}
    }
    if let Some(r) = Reg::from_dwarf(n) {
        return Ok(r);
    }
    let name = match n {
        17..=32 => format!("xmm{}", n - 17),
        33..=40 => format!("st{}", n - 33),
        41..=48 => format!("mm{}", n - 41),
        49 => "rflags".to_string(),
        50..=55 => ["es", "cs", "ss", "ds", "fs", "gs"][(n - 50) as usize].to_string(),
        59 => "gs_base".to_string(),
        _ => format!("DWARF register {n}"),
    };
    Err(format!(
        "the value is in register {name}, which is not read yet (general-purpose registers, xmm0-15, rip and fs_base are)"
    ))
}

/// Parses a DWARF expression of unit `ui` into operations.
pub(crate) fn parse(
    d: &DwarfData,
    ui: usize,
    expr: gimli::Expression<R>,
) -> Result<Vec<Operation<R>>, Why> {
    let encoding = d.unit(ui).encoding();
    let mut ops = expr.operations(encoding);
    let mut out = Vec::new();
    loop {
        match ops.next() {
            Ok(Some(op)) => out.push(op),
            Ok(None) => return Ok(out),
            Err(e) => return Err(format!("unreadable DWARF expression: {e}")),
        }
    }
}

/// The expression of the location-list entry covering `pc` (None: no entry covers it).
pub(crate) fn pick_location(
    d: &DwarfData,
    ui: usize,
    list: AttributeValue<R>,
    pc: u64,
) -> gimli::Result<Option<gimli::Expression<R>>> {
    let Some(mut entries) = d.dwarf.attr_locations(d.unit(ui), list)? else {
        return Ok(None);
    };
    while let Some(entry) = entries.next()? {
        if entry.range.begin <= pc && pc < entry.range.end {
            return Ok(Some(entry.data));
        }
    }
    Ok(None)
}

/// `DW_AT_const_value` as little-endian bytes, resized to `size` when known.
pub(crate) fn const_value(
    d: &DwarfData,
    ui: usize,
    v: AttributeValue<R>,
    size: Option<u64>,
) -> Place {
    let mut bytes = match v {
        AttributeValue::Block(b) => match b.to_slice() {
            Ok(b) => b.into_owned(),
            Err(e) => return Place::Unavailable(format!("unreadable DW_AT_const_value: {e}")),
        },
        AttributeValue::Sdata(s) => s.to_le_bytes().to_vec(),
        AttributeValue::Data16(u) => u.to_le_bytes().to_vec(),
        ref other => match other.udata_value() {
            Some(u) => u.to_le_bytes().to_vec(),
            None => match d.attr_string(ui, v.clone()) {
                Some(s) => s.into_bytes(),
                None => {
                    return Place::Unavailable(format!(
                        "a DW_AT_const_value of an unusual form ({v:?})"
                    ));
                }
            },
        },
    };
    if let Some(size) = size.filter(|&s| s > 0) {
        bytes.resize(size as usize, 0);
    }
    Place::Implicit(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_fold_into_the_last_add() {
        let mut code = vec![Op::Reg(Reg::Rbp), Op::Const(16), Op::Add];
        add_const(&mut code, (-20i64) as u64);
        assert_eq!(
            code,
            [Op::Reg(Reg::Rbp), Op::Const((-4i64) as u64), Op::Add]
        );
        add_const(&mut code, 4);
        assert_eq!(code, [Op::Reg(Reg::Rbp)]);
        add_const(&mut code, 0);
        assert_eq!(code, [Op::Reg(Reg::Rbp)]);
        let mut code = vec![Op::Const(0x1000)];
        add_const(&mut code, 8);
        assert_eq!(code, [Op::Const(0x1008)]);
    }

    #[test]
    fn the_executables_tls_block_sits_below_the_thread_pointer() {
        assert_eq!(
            Tls::new(Some((0x3df0, 0x14, 8)), true),
            Tls::Static { offset: 0x18 }
        );
        assert_eq!(
            Tls::new(Some((0x3dc0, 0x40, 64)), true),
            Tls::Static { offset: 0x40 }
        );
        // A block starting off its alignment keeps that misalignment below fs_base.
        assert_eq!(
            Tls::new(Some((0x3df0, 0x40, 64)), true),
            Tls::Static { offset: 0x50 }
        );
        assert_eq!(Tls::new(Some((0x3df0, 4, 4)), false), Tls::Dynamic);
        assert_eq!(Tls::new(None, true), Tls::None);
    }

    #[test]
    fn vector_registers_are_named() {
        // xmm0-15 are read (PTRACE_GETFPREGS); the x87 stack and MMX are not, and say so.
        assert_eq!(reg(17), Ok(Reg::Xmm0));
        assert_eq!(reg(32), Ok(Reg::Xmm15));
        assert!(reg(33).unwrap_err().contains("st0"));
        assert_eq!(reg(6), Ok(Reg::Rbp));
        assert_eq!(reg(58), Ok(Reg::FsBase));
    }
}
