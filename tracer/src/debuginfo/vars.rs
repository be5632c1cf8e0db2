//! Lowering a value path (`o->qty`, `a[2]`, `*p`) at a pc into a [`ValuePlan`].
//!
//! The variable is looked up like a C compiler would: the innermost lexical block at the pc
//! outwards through inlined copies to the function, then file-level variables of the unit,
//! then globals of other units. Its DWARF location becomes a plan start (frame-base offsets
//! fold in the CFA rule at the pc), and each path step becomes an offset or a pointer hop.

use super::SymbolError;
use super::cfa::FrameTables;
use super::dwarf::{DieId, DwarfData, R};
use super::scope::{ScopeKind, ScopeTree};
use super::symtab::SymbolTable;
use super::types::{self, Shape};
use crate::addr::{Bias, RuntimeAddr};
use crate::plan::{AddrBase, Hop, Start, TypeDesc, ValuePlan};
use crate::regs::Reg;
use crate::template::{PathRoot, PathStep, ValuePath};
use gimli::{AttributeValue, Operation, Reader};
use std::collections::HashMap;

/// Bytes of C string read after a `char *` value.
const STRING_BOUND: u32 = 256;

/// Names listed in an "in scope" hint before it is cut short.
const SCOPE_HINT_NAMES: usize = 12;

/// What `compile_value` needs from the module.
pub(crate) struct Ctx<'a> {
    /// The module's DWARF.
    pub dwarf: &'a DwarfData,
    /// Call frame information for frame bases.
    pub frames: &'a FrameTables,
    /// ELF symbols, for `extern` variables whose definition has no DWARF (copy-relocated
    /// `stdout`, for example).
    pub symbols: &'a SymbolTable,
    /// Where the module is loaded (for absolute addresses).
    pub bias: Bias,
    /// `loop.c:42 in process_order` for the pc (only computed for errors).
    pub at: &'a dyn Fn() -> String,
}

/// A register root: its raw 8 bytes, untyped.
pub(crate) fn register_value(
    reg: Reg,
    path: &ValuePath,
) -> Result<(ValuePlan, TypeDesc), SymbolError> {
    if !path.steps.is_empty() || path.deref {
        return Err(SymbolError::BadPath {
            path: path.text.clone(),
            detail: format!(
                "registers have no type, so '.', '->', '[n]' and '*' do not apply to {reg}; write {{{reg}}} alone (casts come later)"
            ),
        });
    }
    let plan = ValuePlan {
        start: Start::Reg(reg),
        hops: Vec::new(),
        size: 8,
        then_string: None,
    };
    Ok((
        plan,
        TypeDesc::Int {
            name: "u64".to_string(),
            size: 8,
            signed: false,
        },
    ))
}

/// A variable found for a name, and how to read it.
pub(crate) struct Found {
    /// The DIE holding the location (the definition, for globals).
    pub var: DieId,
    /// The function whose frame base `DW_OP_fbreg` refers to.
    pub frame: Option<DieId>,
    /// True when DWARF knows the variable but it cannot exist here (an `extern` with no
    /// definition anywhere).
    pub optimized_out: bool,
    /// An ELF symbol address for an `extern` declaration without a DWARF definition.
    pub elf_addr: Option<u64>,
}

/// Lowers `path` at `pc`.
pub(crate) fn compile_value(
    ctx: &Ctx<'_>,
    pc: u64,
    path: &ValuePath,
) -> Result<(ValuePlan, TypeDesc), SymbolError> {
    let d = ctx.dwarf;
    let name = match &path.root {
        PathRoot::Var(n) => n.as_str(),
        PathRoot::Reg(r) => return register_value(*r, path),
    };
    let Some(found) = find_variable(ctx, pc, name)? else {
        return Err(SymbolError::UnknownVariable {
            name: name.to_string(),
            at: (ctx.at)(),
            hint: scope_hint(d, pc),
        });
    };
    let ty = d.ref_follow(found.var, gimli::DW_AT_type);
    let size = types::byte_size(d, ty).unwrap_or(0);
    let start = if found.optimized_out {
        Start::OptimizedOut
    } else if let Some(a) = found.elf_addr {
        Start::Addr(AddrBase::Runtime(RuntimeAddr(a).offset(ctx.bias.0 as i64)))
    } else {
        location(ctx, found.var, found.frame, pc, size)?
    };
    let mut cur = Cursor {
        start,
        hops: Vec::new(),
        ty,
        text: name.to_string(),
        path: &path.text,
    };
    for step in &path.steps {
        cur.step(d, step)?;
    }
    if path.deref {
        cur.deref_final(d)?;
    }
    let size = types::byte_size(d, cur.ty).unwrap_or(0);
    if let Start::Const(bytes) = &mut cur.start {
        bytes.resize(size as usize, 0);
    }
    let then_string = match types::shape(d, cur.ty) {
        Shape::Pointer { pointee } if types::is_char(d, pointee) => Some(STRING_BOUND),
        _ => None,
    };
    let desc = types::lower(d, cur.ty, 0)?;
    Ok((
        ValuePlan {
            start: cur.start,
            hops: cur.hops,
            size: size as u32,
            then_string,
        },
        desc,
    ))
}

/// Looks `name` up at `pc`: scopes of the unit innermost first, the unit's file-level
/// variables, then every unit's globals.
fn find_variable(ctx: &Ctx<'_>, pc: u64, name: &str) -> Result<Option<Found>, SymbolError> {
    let d = ctx.dwarf;
    for ui in d.units_for_pc(pc) {
        let tree = d.scopes(ui)?;
        let chain = tree.chain_at(pc);
        let frame = tree.subprogram_at(pc).map(|s| tree.die_id(ui, s));
        for &si in &chain {
            let scope = &tree.scopes[si];
            if scope.kind == ScopeKind::Unit {
                break;
            }
            for &v in &scope.vars {
                let id = DieId { unit: ui, off: v };
                if d.name_of(id).as_deref() == Some(name) {
                    let e = d.entry(id)?;
                    if e.has_attr(gimli::DW_AT_declaration) && !e.has_attr(gimli::DW_AT_location) {
                        // `extern int x;` inside a function: the global it names.
                        return Ok(Some(definition_of(ctx, id, name)));
                    }
                    return Ok(Some(Found {
                        var: id,
                        frame,
                        optimized_out: false,
                        elf_addr: None,
                    }));
                }
            }
            // The abstract function of an inlined copy declares variables the copy may lack:
            // those exist in the source but not at this pc (optimized out), except statics,
            // whose one location gcc puts on the abstract variable.
            if let Some(id) = inherited_var(d, tree, ui, si, name) {
                return Ok(Some(Found {
                    var: id,
                    frame,
                    optimized_out: false,
                    elf_addr: None,
                }));
            }
        }
        if let Some(found) = unit_variable(ctx, tree, ui, name)? {
            return Ok(Some(found));
        }
    }
    // Globals of other units (prefer definitions with external linkage).
    let index = global_index(d);
    if let Some(defs) = index.get(name) {
        let pick = defs
            .iter()
            .copied()
            .find(|&id| d.attr_follow(id, gimli::DW_AT_external).is_some())
            .or_else(|| defs.first().copied());
        if let Some(var) = pick {
            return Ok(Some(Found {
                var,
                frame: None,
                optimized_out: false,
                elf_addr: None,
            }));
        }
    }
    Ok(None)
}

/// A file-level variable of unit `ui` named `name`, with `extern` declarations resolved to
/// their definition (in this unit, another unit, or the ELF symbol table).
pub(crate) fn unit_variable(
    ctx: &Ctx<'_>,
    tree: &ScopeTree,
    ui: usize,
    name: &str,
) -> Result<Option<Found>, SymbolError> {
    let d = ctx.dwarf;
    let vars = &tree.scopes[0].vars;
    let Some(id) = vars
        .iter()
        .map(|&v| DieId { unit: ui, off: v })
        .find(|&id| d.name_of(id).as_deref() == Some(name))
    else {
        return Ok(None);
    };
    let e = d.entry(id)?;
    if e.has_attr(gimli::DW_AT_location)
        || e.has_attr(gimli::DW_AT_const_value)
        || !e.has_attr(gimli::DW_AT_declaration)
    {
        return Ok(Some(Found {
            var: id,
            frame: None,
            optimized_out: false,
            elf_addr: None,
        }));
    }
    // A declaration: its definition in this unit names it through DW_AT_specification.
    for &v in vars {
        let def = DieId { unit: ui, off: v };
        let Ok(de) = d.entry(def) else { continue };
        let spec = de
            .attr_value(gimli::DW_AT_specification)
            .and_then(|s| d.resolve_ref(ui, &s));
        if spec == Some(id) && de.has_attr(gimli::DW_AT_location) {
            return Ok(Some(Found {
                var: def,
                frame: None,
                optimized_out: false,
                elf_addr: None,
            }));
        }
    }
    Ok(Some(definition_of(ctx, id, name)))
}

/// Where the variable `extern` declaration `decl` names is defined: another unit's
/// definition, else the ELF symbol (a copy-relocated variable of a shared library, such as
/// `stdout`), else nowhere (optimized out).
pub(crate) fn definition_of(ctx: &Ctx<'_>, decl: DieId, name: &str) -> Found {
    let d = ctx.dwarf;
    if let Some(&def) = global_index(d).get(name).and_then(|defs| defs.first()) {
        return Found {
            var: def,
            frame: None,
            optimized_out: false,
            elf_addr: None,
        };
    }
    if let Some(addr) = ctx.symbols.addr_of(name) {
        return Found {
            var: decl,
            frame: None,
            optimized_out: false,
            elf_addr: Some(addr),
        };
    }
    Found {
        var: decl,
        frame: None,
        optimized_out: true,
        elf_addr: None,
    }
}

/// Names of file-level variable definitions (with a location) of every unit.
pub(crate) fn global_index(d: &DwarfData) -> &HashMap<String, Vec<DieId>> {
    d.globals.get_or_init(|| {
        let mut index: HashMap<String, Vec<DieId>> = HashMap::new();
        for ui in 0..d.units.len() {
            if !d.is_code_unit(ui) {
                continue;
            }
            let Ok(tree) = d.scopes(ui) else { continue };
            for &v in &tree.scopes[0].vars {
                let id = DieId { unit: ui, off: v };
                let Ok(e) = d.entry(id) else { continue };
                if !e.has_attr(gimli::DW_AT_location) && !e.has_attr(gimli::DW_AT_const_value) {
                    continue;
                }
                if let Some(name) = d.name_of(id) {
                    index.entry(name).or_default().push(id);
                }
            }
        }
        index
    })
}

/// A variable named `name` that the abstract origin of scope `si` declares but the concrete
/// scope does not instantiate (gdb's "inherit abstract DIEs"): directly, or inside an
/// abstract lexical block that has no concrete copy here. It has no location at this pc.
fn inherited_var(
    d: &DwarfData,
    tree: &ScopeTree,
    ui: usize,
    si: usize,
    name: &str,
) -> Option<DieId> {
    let origin = tree.scopes[si].origin?;
    // Abstract DIEs the concrete scope already instantiates (its variables and blocks).
    let mut concrete: Vec<DieId> = Vec::new();
    for &v in &tree.scopes[si].vars {
        let e = d.entry(DieId { unit: ui, off: v }).ok()?;
        if let Some(o) = e
            .attr_value(gimli::DW_AT_abstract_origin)
            .and_then(|o| d.resolve_ref(ui, &o))
        {
            concrete.push(o);
        }
    }
    concrete.extend(
        tree.scopes
            .iter()
            .filter(|s| s.parent == Some(si))
            .filter_map(|s| s.origin),
    );
    abstract_var_named(d, origin, name, &concrete, 0)
}

/// Searches the children of abstract DIE `parent` for a variable named `name`, descending
/// into lexical blocks; DIEs in `skip` (instantiated concretely) are not considered.
fn abstract_var_named(
    d: &DwarfData,
    parent: DieId,
    name: &str,
    skip: &[DieId],
    depth: usize,
) -> Option<DieId> {
    if depth > 8 {
        return None;
    }
    let unit = d.unit(parent.unit);
    let mut tree = unit.entries_tree(Some(parent.off)).ok()?;
    let root = tree.root().ok()?;
    let mut children = root.children();
    let mut blocks = Vec::new();
    while let Ok(Some(child)) = children.next() {
        let e = child.entry();
        let id = DieId {
            unit: parent.unit,
            off: e.offset(),
        };
        if skip.contains(&id) {
            continue;
        }
        match e.tag() {
            gimli::DW_TAG_formal_parameter | gimli::DW_TAG_variable
                if d.name_of(id).as_deref() == Some(name) =>
            {
                return Some(id);
            }
            gimli::DW_TAG_lexical_block => blocks.push(id),
            _ => {}
        }
    }
    blocks
        .into_iter()
        .find_map(|b| abstract_var_named(d, b, name, &[], depth + 1))
}

/// "; in scope: a, b, c…": variables visible at `pc`, innermost first.
fn scope_hint(d: &DwarfData, pc: u64) -> String {
    let mut names: Vec<String> = Vec::new();
    for ui in d.units_for_pc(pc) {
        let Ok(tree) = d.scopes(ui) else { continue };
        for si in tree.chain_at(pc) {
            for &v in &tree.scopes[si].vars {
                if let Some(n) = d.name_of(DieId { unit: ui, off: v })
                    && !names.contains(&n)
                {
                    names.push(n);
                }
            }
        }
    }
    if names.is_empty() {
        return String::new();
    }
    let more = names.len() > SCOPE_HINT_NAMES;
    names.truncate(SCOPE_HINT_NAMES);
    format!(
        "; in scope: {}{}",
        names.join(", "),
        if more { "…" } else { "" }
    )
}

/// The location of variable `var` at `pc` as a plan start. A concrete copy without a
/// location of its own uses its abstract origin's (gcc states a function-level `static`
/// of an inlined function once, on the abstract variable).
fn location(
    ctx: &Ctx<'_>,
    var: DieId,
    frame: Option<DieId>,
    pc: u64,
    size: u64,
) -> Result<Start, SymbolError> {
    let d = ctx.dwarf;
    let own = d.entry(var)?;
    let (at, value) =
        if own.has_attr(gimli::DW_AT_const_value) || own.has_attr(gimli::DW_AT_location) {
            (var, own)
        } else {
            let from = d
                .attr_follow(var, gimli::DW_AT_location)
                .or_else(|| d.attr_follow(var, gimli::DW_AT_const_value))
                .map(|(at, _)| at);
            match from {
                Some(at) => (at, d.entry(at)?),
                None => return Ok(Start::OptimizedOut),
            }
        };
    if let Some(v) = value.attr_value(gimli::DW_AT_const_value) {
        return const_value(d, at.unit, v, size);
    }
    let what = || d.name_of(var).unwrap_or_else(|| "?".to_string());
    match value.attr_value(gimli::DW_AT_location) {
        None => Ok(Start::OptimizedOut),
        Some(AttributeValue::Exprloc(expr)) => eval(ctx, at.unit, expr, frame, pc, size, &what()),
        Some(list) => match pick_location(d, at.unit, list, pc)? {
            Some(expr) => eval(ctx, at.unit, expr, frame, pc, size, &what()),
            None => Ok(Start::OptimizedOut),
        },
    }
}

/// The expression of the location-list entry covering `pc` (None: no entry covers it).
fn pick_location(
    d: &DwarfData,
    ui: usize,
    list: AttributeValue<R>,
    pc: u64,
) -> Result<Option<gimli::Expression<R>>, SymbolError> {
    super::place::pick_location(d, ui, list, pc).map_err(|e| d.error(e))
}

/// `DW_AT_const_value` as little-endian bytes of the type's size.
fn const_value(
    d: &DwarfData,
    ui: usize,
    v: AttributeValue<R>,
    size: u64,
) -> Result<Start, SymbolError> {
    let mut bytes = match v {
        AttributeValue::Block(b) => b.to_slice().map_err(|e| d.error(e))?.into_owned(),
        AttributeValue::Sdata(s) => s.to_le_bytes().to_vec(),
        AttributeValue::Data16(u) => u.to_le_bytes().to_vec(),
        ref other => match other.udata_value() {
            Some(u) => u.to_le_bytes().to_vec(),
            None => match d.attr_string(ui, v.clone()) {
                Some(s) => s.into_bytes(),
                None => {
                    return Err(SymbolError::Unsupported {
                        what: "this DW_AT_const_value form".to_string(),
                        detail: format!("{v:?}"),
                    });
                }
            },
        },
    };
    if size > 0 {
        bytes.resize(size as usize, 0);
    }
    Ok(Start::Const(bytes))
}

/// The register with DWARF number `r`, or an `Unsupported` error naming it.
fn dwarf_reg(r: gimli::Register) -> Result<Reg, SymbolError> {
    Reg::from_dwarf(r.0).ok_or_else(|| SymbolError::Unsupported {
        what: format!("values in DWARF register {}", r.0),
        detail: "only general-purpose registers, rip and fs_base are read so far (no xmm/x87)"
            .to_string(),
    })
}

/// Parses a DWARF expression into operations, each with its opcode (for messages).
fn parse_ops(
    d: &DwarfData,
    ui: usize,
    expr: gimli::Expression<R>,
) -> Result<Vec<(Operation<R>, gimli::DwOp)>, SymbolError> {
    let encoding = d.unit(ui).encoding();
    let mut input = expr.0;
    let mut ops = Vec::new();
    while !input.is_empty() {
        let opcode = input.clone().read_u8().map_err(|e| d.error(e))?;
        let op = Operation::parse(&mut input, encoding)
            .map_err(|e| d.error(format!("in a location expression: {e}")))?;
        ops.push((op, gimli::DwOp(opcode)));
    }
    Ok(ops)
}

/// `value` as `size` little-endian bytes.
fn le_bytes(value: u64, size: u64) -> Vec<u8> {
    let mut b = value.to_le_bytes().to_vec();
    b.resize(size.max(1) as usize, 0);
    b
}

/// Lowers one location expression. Accepts the shapes compilers use for plain variables;
/// anything else is `Unsupported`, naming the operation.
fn eval(
    ctx: &Ctx<'_>,
    ui: usize,
    expr: gimli::Expression<R>,
    frame: Option<DieId>,
    pc: u64,
    size: u64,
    var: &str,
) -> Result<Start, SymbolError> {
    let d = ctx.dwarf;
    let ops = parse_ops(d, ui, expr)?;
    let runtime = |a: u64| RuntimeAddr(a).offset(ctx.bias.0 as i64);
    let only: Vec<&Operation<R>> = ops.iter().map(|(o, _)| o).collect();
    Ok(match only.as_slice() {
        [] => Start::OptimizedOut,
        [Operation::FrameOffset { offset }] => {
            let (reg, base) = frame_base(ctx, frame, pc)?;
            Start::Addr(AddrBase::RegOffset {
                reg,
                offset: base + offset,
            })
        }
        [
            Operation::RegisterOffset {
                register, offset, ..
            },
        ] => Start::Addr(AddrBase::RegOffset {
            reg: dwarf_reg(*register)?,
            offset: *offset,
        }),
        [Operation::Register { register }] => Start::Reg(dwarf_reg(*register)?),
        [Operation::Address { address }] => Start::Addr(AddrBase::Runtime(runtime(*address))),
        [Operation::AddressIndex { index }] => {
            let a = d
                .dwarf
                .address(d.unit(ui), *index)
                .map_err(|e| d.error(e))?;
            Start::Addr(AddrBase::Runtime(runtime(a)))
        }
        [Operation::ImplicitValue { data }] => {
            Start::Const(data.to_slice().map_err(|e| d.error(e))?.into_owned())
        }
        [Operation::UnsignedConstant { value }, Operation::StackValue] => {
            Start::Const(le_bytes(*value, size))
        }
        [Operation::SignedConstant { value }, Operation::StackValue] => {
            Start::Const(le_bytes(*value as u64, size))
        }
        [Operation::Address { address }, Operation::StackValue] => {
            Start::Const(le_bytes(runtime(*address).0, size))
        }
        [
            Operation::RegisterOffset {
                register,
                offset: 0,
                ..
            },
            Operation::StackValue,
        ] => Start::Reg(dwarf_reg(*register)?),
        _ => {
            let names: Vec<String> = ops.iter().map(|(_, code)| code.to_string()).collect();
            let first_odd = ops
                .iter()
                .find(|(o, _)| {
                    !matches!(
                        o,
                        Operation::FrameOffset { .. }
                            | Operation::RegisterOffset { .. }
                            | Operation::Register { .. }
                            | Operation::Address { .. }
                            | Operation::StackValue
                    )
                })
                .map_or_else(|| names.join(" "), |(_, code)| code.to_string());
            return Err(SymbolError::Unsupported {
                what: format!("the DWARF operation {first_odd}"),
                detail: format!(
                    "'{var}' at {pc:#x} is located by '{}', which this version does not evaluate",
                    names.join(" ")
                ),
            });
        }
    })
}

/// The frame base of function `frame` at `pc` as `register + offset`.
fn frame_base(ctx: &Ctx<'_>, frame: Option<DieId>, pc: u64) -> Result<(Reg, i64), SymbolError> {
    let d = ctx.dwarf;
    let unsupported = |detail: String| SymbolError::Unsupported {
        what: "this frame base".to_string(),
        detail,
    };
    let Some(frame) = frame else {
        return Err(unsupported(format!(
            "DW_OP_fbreg outside a function at {pc:#x}"
        )));
    };
    let e = d.entry(frame)?;
    let expr = match e.attr_value(gimli::DW_AT_frame_base) {
        Some(AttributeValue::Exprloc(expr)) => expr,
        Some(list) => match pick_location(d, frame.unit, list, pc)? {
            Some(expr) => expr,
            None => return Err(unsupported(format!("no frame base covers {pc:#x}"))),
        },
        None => {
            return Err(unsupported(
                "the function has no DW_AT_frame_base".to_string(),
            ));
        }
    };
    let ops = parse_ops(d, frame.unit, expr)?;
    match ops.as_slice() {
        [(Operation::CallFrameCFA, _)] => ctx.frames.cfa_at(pc).map_err(unsupported),
        [
            (
                Operation::RegisterOffset {
                    register, offset, ..
                },
                _,
            ),
        ] => Ok((dwarf_reg(*register)?, *offset)),
        [(Operation::Register { register }, _)] => Ok((dwarf_reg(*register)?, 0)),
        other => {
            let names: Vec<String> = other.iter().map(|(_, c)| c.to_string()).collect();
            Err(unsupported(format!(
                "DW_AT_frame_base '{}'",
                names.join(" ")
            )))
        }
    }
}

/// The plan under construction while path steps apply.
struct Cursor<'p> {
    start: Start,
    hops: Vec<Hop>,
    /// The type of the value the cursor designates.
    ty: Option<DieId>,
    /// The path so far as the user would write it (for messages).
    text: String,
    /// The whole path (for messages).
    path: &'p str,
}

impl Cursor<'_> {
    fn bad(&self, detail: String) -> SymbolError {
        SymbolError::BadPath {
            path: self.path.to_string(),
            detail,
        }
    }

    /// Moves the designated location by `off` bytes within the same object.
    fn add_offset(&mut self, off: i64) -> Result<(), SymbolError> {
        match &mut self.start {
            Start::Addr(base) if self.hops.is_empty() => match base {
                AddrBase::RegOffset { offset, .. } => *offset += off,
                AddrBase::Runtime(a) => *a = a.offset(off),
            },
            Start::Addr(_) => match self.hops.last_mut() {
                Some(Hop::Offset(o)) => *o += off,
                _ => self.hops.push(Hop::Offset(off)),
            },
            Start::Reg(r) => {
                return Err(SymbolError::Unsupported {
                    what: "members of values held in registers".to_string(),
                    detail: format!("'{}' lives in {r} here", self.text),
                });
            }
            Start::Const(bytes) => {
                let off = (off.max(0) as usize).min(bytes.len());
                bytes.drain(..off);
            }
            Start::OptimizedOut => {}
        }
        Ok(())
    }

    /// Follows the pointer the cursor designates, then moves `off` bytes into the pointee.
    fn follow(&mut self, off: i64, with_offset: bool) {
        match &self.start {
            Start::Reg(r) if self.hops.is_empty() => {
                self.start = Start::Addr(AddrBase::RegOffset {
                    reg: *r,
                    offset: off,
                });
            }
            Start::Const(bytes) => {
                let mut b = [0u8; 8];
                let n = bytes.len().min(8);
                b[..n].copy_from_slice(&bytes[..n]);
                // A pointer value DWARF knows is already a runtime address.
                self.start = Start::Addr(AddrBase::Runtime(
                    RuntimeAddr(u64::from_le_bytes(b)).offset(off),
                ));
            }
            Start::OptimizedOut => {}
            _ => {
                self.hops.push(Hop::Deref);
                if with_offset {
                    self.hops.push(Hop::Offset(off));
                }
            }
        }
    }

    /// The aggregate `ty` designates, or a message-bearing error for `step`.
    fn member(
        &self,
        d: &DwarfData,
        agg: DieId,
        declaration: bool,
        field: &str,
    ) -> Result<(u64, Option<DieId>), SymbolError> {
        let name = types::type_name(d, Some(agg));
        if declaration {
            return Err(self.bad(format!("{name} is only declared in this unit (an incomplete type), so its members are unknown here")));
        }
        match types::find_member(d, agg, field) {
            Some((_, _, Some(bits))) => Err(SymbolError::Unsupported {
                what: "bitfield members".to_string(),
                detail: format!("'{field}' of {name} is a {bits}-bit field"),
            }),
            Some((off, ty, None)) => Ok((off, ty)),
            None => Err(self.bad(format!(
                "{name} has no member '{field}'; its members are: {}",
                types::member_names(d, agg).join(", ")
            ))),
        }
    }

    /// Applies one path step.
    fn step(&mut self, d: &DwarfData, step: &PathStep) -> Result<(), SymbolError> {
        let ty_name = types::type_name(d, self.ty);
        match step {
            PathStep::Field(f) => match types::shape(d, self.ty) {
                Shape::Aggregate { id, declaration } => {
                    let (off, ty) = self.member(d, id, declaration, f)?;
                    self.add_offset(off as i64)?;
                    self.ty = ty;
                    self.text = format!("{}.{f}", self.text);
                }
                Shape::Pointer { .. } => {
                    return Err(self.bad(format!(
                        "'{}' is a pointer ({ty_name}); use '{}->{f}'",
                        self.text, self.text
                    )));
                }
                _ => {
                    return Err(self.bad(format!(
                        "'{}' is a {ty_name}, which has no members",
                        self.text
                    )));
                }
            },
            PathStep::Arrow(f) => match types::shape(d, self.ty) {
                Shape::Pointer { pointee } => match types::shape(d, pointee) {
                    Shape::Aggregate { id, declaration } => {
                        let (off, ty) = self.member(d, id, declaration, f)?;
                        self.follow(off as i64, true);
                        self.ty = ty;
                        self.text = format!("{}->{f}", self.text);
                    }
                    Shape::Void => {
                        return Err(self.bad(format!("'{}' is a void pointer, so '->{f}' has no type to use (casts come later)", self.text)));
                    }
                    _ => {
                        return Err(self.bad(format!(
                            "'{}' points to {}, which has no members",
                            self.text,
                            types::type_name(d, pointee)
                        )));
                    }
                },
                Shape::Aggregate { .. } => {
                    return Err(self.bad(format!(
                        "'{}' is a {ty_name}, not a pointer; use '{}.{f}'",
                        self.text, self.text
                    )));
                }
                _ => {
                    return Err(self.bad(format!(
                        "'{}' is a {ty_name}, not a pointer to a struct",
                        self.text
                    )));
                }
            },
            PathStep::Index(n) => match types::shape(d, self.ty) {
                Shape::Array {
                    element,
                    count,
                    dims,
                } => {
                    if dims > 1 {
                        return Err(SymbolError::Unsupported {
                            what: "indexing multi-dimensional arrays".to_string(),
                            detail: format!("'{}' is a {ty_name}", self.text),
                        });
                    }
                    if let Some(c) = count.filter(|&c| *n >= c && c > 0) {
                        return Err(self.bad(format!(
                            "index {n} is out of bounds for '{}' ({ty_name}, {c} elements)",
                            self.text
                        )));
                    }
                    let elem = self.element_size(d, element)?;
                    self.add_offset((*n * elem) as i64)?;
                    self.ty = element;
                    self.text = format!("{}[{n}]", self.text);
                }
                Shape::Pointer { pointee } => {
                    let elem = self.element_size(d, pointee)?;
                    self.follow((*n * elem) as i64, true);
                    self.ty = pointee;
                    self.text = format!("{}[{n}]", self.text);
                }
                _ => {
                    return Err(self.bad(format!(
                        "'{}' is a {ty_name}; [{n}] needs an array or a pointer",
                        self.text
                    )));
                }
            },
        }
        Ok(())
    }

    /// The size of an array or pointee element (void and unsized types refused).
    fn element_size(&self, d: &DwarfData, element: Option<DieId>) -> Result<u64, SymbolError> {
        match types::byte_size(d, element) {
            Some(s) if element.is_some() => Ok(s),
            _ => Err(self.bad(format!(
                "'{}' has elements of type {}, whose size is unknown (void or incomplete)",
                self.text,
                types::type_name(d, element)
            ))),
        }
    }

    /// The leading `*`: the value the final pointer points to.
    fn deref_final(&mut self, d: &DwarfData) -> Result<(), SymbolError> {
        match types::shape(d, self.ty) {
            Shape::Pointer { pointee: Some(p) } => {
                self.follow(0, false);
                self.ty = Some(p);
                self.text = format!("*{}", self.text);
                Ok(())
            }
            Shape::Pointer { pointee: None } => Err(self.bad(format!(
                "'{}' is a void pointer; '*' has no type to read (casts come later)",
                self.text
            ))),
            _ => Err(self.bad(format!(
                "'*' needs a pointer, and '{}' is a {}",
                self.text,
                types::type_name(d, self.ty)
            ))),
        }
    }
}
