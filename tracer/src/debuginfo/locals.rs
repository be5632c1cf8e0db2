//! Variables visible at a pc, the way gdb sees them: [`VarInfo`] with its [`Place`] and
//! [`TypeRef`].
//!
//! gdb's blocks are rebuilt from the scope tree: a function (or inlined copy) and its lexical
//! blocks, where a block without pc bounds donates its variables to its parent and an
//! instance with an abstract origin inherits the origin's variables it does not instantiate
//! (they exist in the source, so gdb lists them, as `<optimized out>`). Lookup by name walks
//! the blocks innermost first up to the function (for an inlined copy, the inlined function:
//! the caller's locals are not in scope inside it), then the unit's file-level variables,
//! then every unit's globals.

use super::SymbolError;
use super::dwarf::{DieId, DwarfData, R};
use super::place::{Lower, Place, Tls, const_value};
use super::scope::{ScopeKind, ScopeTree};
use super::typegraph::{TypeRef, tref};
use super::vars::{self, Found};
use super::{cfa::FrameTables, symtab::SymbolTable};
use crate::addr::Bias;
use crate::vm::Op;
use gimli::{AttributeValue, Operation};
use std::collections::HashSet;

/// What a variable is to the function at the pc.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VarKind {
    /// A parameter of the (innermost, possibly inlined) function.
    Param,
    /// A local variable with automatic storage.
    Local,
    /// A file-level variable: a global, or a `static` of the unit.
    Global,
    /// A `static` variable declared inside a function.
    StaticLocal,
}

/// A variable visible at a pc: where its value is and what type it has.
#[derive(Clone, Debug, PartialEq)]
pub struct VarInfo {
    /// The source name.
    pub name: String,
    /// Where the value is at the pc.
    pub place: Place,
    /// Its type.
    pub ty: TypeRef,
    /// Parameter, local, global or function-level static.
    pub kind: VarKind,
    /// `DW_AT_decl_line`, when DWARF gives it.
    pub decl_line: Option<u32>,
    /// True when an inner variable of the same name hides this one at the pc (the name then
    /// refers to the inner one).
    pub shadowed: bool,
}

/// What the lookups need from the module.
pub(crate) struct Env<'a> {
    /// The DWARF.
    pub dwarf: &'a DwarfData,
    /// Call frame information (frame bases).
    pub frames: &'a FrameTables,
    /// ELF symbols (`extern` variables without a DWARF definition).
    pub symbols: &'a SymbolTable,
    /// The load bias.
    pub bias: Bias,
    /// The module's TLS layout.
    pub tls: Tls,
}

/// One variable symbol of a block, before its place is computed.
struct Sym {
    /// Its DIE (concrete, or abstract when inherited).
    id: DieId,
    /// Its name.
    name: String,
    /// Parameter or variable.
    param: bool,
}

/// A variable found in scope, with how to compute its place.
struct Hit {
    found: Found,
    kind: VarKind,
    shadowed: bool,
}

impl Env<'_> {
    /// The arguments, then the locals (innermost block first) visible at `pc`, as gdb's
    /// `info args` and `info locals` list them for the innermost frame.
    pub fn variables_at(&self, pc: u64) -> Vec<VarInfo> {
        self.variables_in_frame(pc, 0).unwrap_or_default()
    }

    /// The arguments and locals of inline frame `depth` at `pc` (0: the innermost function
    /// or inlined copy; 1: the function it was inlined into; …), as gdb lists them after
    /// `up`. None if `pc` has no such frame.
    pub fn variables_in_frame(&self, pc: u64, depth: usize) -> Option<Vec<VarInfo>> {
        Some(
            self.in_frame(pc, depth)?
                .into_iter()
                .map(|(hit, name)| self.info(hit, name, pc))
                .collect(),
        )
    }

    /// Names of the variables visible at `pc` (not shadowed), then the unit's file-level
    /// variables, for "did you mean" messages.
    pub fn names_in_scope(&self, pc: u64) -> Vec<String> {
        let d = self.dwarf;
        let mut out: Vec<String> = Vec::new();
        for (hit, name) in self.in_frame(pc, 0).unwrap_or_default() {
            if !hit.shadowed && !out.contains(&name) {
                out.push(name);
            }
        }
        for ui in d.units_for_pc(pc) {
            let Ok(tree) = d.scopes(ui) else { continue };
            for &v in &tree.scopes[0].vars {
                if let Some(n) = d.name_of(DieId { unit: ui, off: v })
                    && !out.contains(&n)
                {
                    out.push(n);
                }
            }
        }
        out
    }

    /// The variable `name` refers to at `pc`.
    pub fn variable(&self, pc: u64, name: &str) -> Result<Option<VarInfo>, SymbolError> {
        let d = self.dwarf;
        let vctx = self.vars_ctx();
        let mut hidden_later: Option<u32> = None;
        for ui in d.units_for_pc(pc) {
            let tree = d.scopes(ui)?;
            let chain = tree.chain_at(pc);
            let frame = tree.subprogram_at(pc).map(|s| tree.die_id(ui, s));
            if let Some(fi) = chain.iter().position(|&s| tree.scopes[s].is_function()) {
                let line = self.line_at(ui, pc);
                for (i, &si) in chain[..=fi].iter().enumerate() {
                    for sym in block_symbols(d, tree, ui, si) {
                        if sym.name != name {
                            continue;
                        }
                        let e = d.entry(sym.id)?;
                        if e.has_attr(gimli::DW_AT_declaration) && !has_location(d, sym.id) {
                            // `extern int x;` inside a function: the global it names.
                            let found = vars::definition_of(&vctx, sym.id, name);
                            return Ok(Some(self.info(
                                Hit {
                                    found,
                                    kind: VarKind::Global,
                                    shadowed: false,
                                },
                                sym.name,
                                pc,
                            )));
                        }
                        let kind = self.kind_of(&sym);
                        if i == fi
                            && kind != VarKind::Param
                            && let Some(decl) = self.declared_after(sym.id, line.as_ref())
                        {
                            // Declared further down the function: C scope starts at the
                            // declaration, so an outer variable of that name is meant.
                            hidden_later = Some(decl);
                            continue;
                        }
                        return Ok(Some(self.info(
                            Hit {
                                found: Found {
                                    var: sym.id,
                                    frame,
                                    optimized_out: false,
                                    elf_addr: None,
                                },
                                kind,
                                shadowed: false,
                            },
                            sym.name,
                            pc,
                        )));
                    }
                }
            }
            if let Some(found) = vars::unit_variable(&vctx, tree, ui, name)? {
                return Ok(Some(self.global(found, name, pc)));
            }
        }
        let index = vars::global_index(d);
        if let Some(defs) = index.get(name) {
            let pick = defs
                .iter()
                .copied()
                .find(|&id| d.attr_follow(id, gimli::DW_AT_external).is_some())
                .or_else(|| defs.first().copied());
            if let Some(var) = pick {
                let found = Found {
                    var,
                    frame: None,
                    optimized_out: false,
                    elf_addr: None,
                };
                return Ok(Some(self.global(found, name, pc)));
            }
        }
        if let Some(line) = hidden_later {
            return Err(SymbolError::UnknownVariable {
                name: name.to_string(),
                at: String::new(),
                hint: format!(
                    "; '{name}' is declared on line {line}, after this point of the function"
                ),
            });
        }
        Ok(None)
    }

    /// The context vars.rs lookups take.
    fn vars_ctx(&self) -> vars::Ctx<'_> {
        vars::Ctx {
            dwarf: self.dwarf,
            frames: self.frames,
            symbols: self.symbols,
            bias: self.bias,
            at: &String::new,
        }
    }

    /// A file-level variable as a `VarInfo`.
    fn global(&self, found: Found, name: &str, pc: u64) -> VarInfo {
        self.info(
            Hit {
                found,
                kind: VarKind::Global,
                shadowed: false,
            },
            name.to_string(),
            pc,
        )
    }

    /// The variables of inline frame `depth`'s blocks at `pc` (innermost first, up to its
    /// function), arguments first, with shadowing marked. None without such a frame.
    fn in_frame(&self, pc: u64, depth: usize) -> Option<Vec<(Hit, String)>> {
        let d = self.dwarf;
        let mut args = Vec::new();
        let mut locals = Vec::new();
        let mut found = false;
        for ui in d.units_for_pc(pc) {
            let Ok(tree) = d.scopes(ui) else { continue };
            let chain = tree.chain_at(pc);
            // The frame's blocks: after the previous frame's function, up to its own.
            let functions: Vec<usize> = (0..chain.len())
                .filter(|&i| tree.scopes[chain[i]].is_function())
                .collect();
            let Some(&last) = functions.get(depth) else {
                continue;
            };
            let first = match depth {
                0 => 0,
                _ => functions[depth - 1] + 1,
            };
            found = true;
            let frame = tree.subprogram_at(pc).map(|s| tree.die_id(ui, s));
            let mut seen: HashSet<String> = HashSet::new();
            for &si in &chain[first..=last] {
                let syms = block_symbols(d, tree, ui, si);
                // Shadowing is decided per block: names of this block hide outer ones.
                let mut here = Vec::new();
                for sym in syms {
                    let Ok(e) = d.entry(sym.id) else { continue };
                    if e.has_attr(gimli::DW_AT_declaration) && !has_location(d, sym.id) {
                        // Block-scope `extern` declarations are not locals (gdb's
                        // LOC_UNRESOLVED).
                        continue;
                    }
                    let kind = self.kind_of(&sym);
                    let hit = Hit {
                        found: Found {
                            var: sym.id,
                            frame,
                            optimized_out: false,
                            elf_addr: None,
                        },
                        kind,
                        shadowed: seen.contains(&sym.name),
                    };
                    here.push(sym.name.clone());
                    if sym.param {
                        args.push((hit, sym.name));
                    } else {
                        locals.push((hit, sym.name));
                    }
                }
                seen.extend(here);
            }
            break;
        }
        args.extend(locals);
        found.then_some(args)
    }

    /// Parameter, local or static local.
    fn kind_of(&self, sym: &Sym) -> VarKind {
        if sym.param {
            VarKind::Param
        } else if static_storage(self.dwarf, sym.id) {
            VarKind::StaticLocal
        } else {
            VarKind::Local
        }
    }

    /// The line (and file) gdb reports for `pc` in unit `ui`.
    fn line_at(&self, ui: usize, pc: u64) -> Option<(u32, String)> {
        let d = self.dwarf;
        let row = d.lines(ui).ok()?.row_at(pc)?;
        if row.line == 0 {
            return None;
        }
        let file = d.files(ui).get(row.file as usize)?.clone();
        Some((row.line, file))
    }

    /// `DW_AT_decl_line` of `var` if it is after `line` in the same file.
    fn declared_after(&self, var: DieId, line: Option<&(u32, String)>) -> Option<u32> {
        let d = self.dwarf;
        let (line, file) = line?;
        let decl = decl_line(d, var)?;
        if decl <= *line {
            return None;
        }
        let (at, v) = d.attr_follow(var, gimli::DW_AT_decl_file)?;
        let index = match v {
            AttributeValue::FileIndex(i) => i,
            other => other.udata_value()?,
        };
        let decl_file = d.files(at.unit).get(index as usize)?;
        (decl_file == file).then_some(decl)
    }

    /// The `VarInfo` of a found variable.
    fn info(&self, hit: Hit, name: String, pc: u64) -> VarInfo {
        let d = self.dwarf;
        let var = hit.found.var;
        let ty_die = d.ref_follow(var, gimli::DW_AT_type);
        let size = super::types::byte_size(d, ty_die);
        let place = if hit.found.optimized_out {
            Place::OptimizedOut
        } else if let Some(a) = hit.found.elf_addr {
            Place::Memory(vec![Op::Const(a.wrapping_add(self.bias.0))])
        } else {
            self.place_of(var, hit.found.frame, pc, size)
        };
        VarInfo {
            name,
            place,
            ty: tref(d, ty_die),
            kind: hit.kind,
            decl_line: decl_line(d, var),
            shadowed: hit.shadowed,
        }
    }

    /// Where variable `var` is at `pc`. A concrete copy without a location of its own uses
    /// its abstract origin's (gcc states a function-level `static` of an inlined function
    /// once, on the abstract variable).
    fn place_of(&self, var: DieId, frame: Option<DieId>, pc: u64, size: Option<u64>) -> Place {
        let d = self.dwarf;
        let Some((at, e)) = location_die(d, var) else {
            return Place::OptimizedOut;
        };
        if let Some(v) = e.attr_value(gimli::DW_AT_const_value) {
            return const_value(d, at.unit, v, size);
        }
        let Some(v) = e.attr_value(gimli::DW_AT_location) else {
            return Place::OptimizedOut;
        };
        let frame = frame.map(|f| (f, function_entry(d, f)));
        let lower = Lower {
            dwarf: d,
            frames: self.frames,
            bias: self.bias,
            tls: self.tls,
            frame,
            pc,
        };
        lower.attr(at.unit, v)
    }
}

/// The entry address of out-of-line function `f` (its low pc / entry pc).
fn function_entry(d: &DwarfData, f: DieId) -> Option<u64> {
    let tree = d.scopes(f.unit).ok()?;
    tree.scopes
        .iter()
        .find(|s| s.die == f.off)
        .and_then(|s| s.entry())
}

/// The DIE that states `var`'s location or constant value: itself, else its abstract
/// origin (or specification). None if neither does.
fn location_die(d: &DwarfData, var: DieId) -> Option<(DieId, gimli::DebuggingInformationEntry<R>)> {
    let own = d.entry(var).ok()?;
    if own.has_attr(gimli::DW_AT_const_value) || own.has_attr(gimli::DW_AT_location) {
        return Some((var, own));
    }
    let (at, _) = d
        .attr_follow(var, gimli::DW_AT_location)
        .or_else(|| d.attr_follow(var, gimli::DW_AT_const_value))?;
    Some((at, d.entry(at).ok()?))
}

/// True if `var` (or its origin) has a location or a constant value.
fn has_location(d: &DwarfData, var: DieId) -> bool {
    location_die(d, var).is_some()
}

/// True if `var` lives in static storage: its location is a single expression starting with
/// an address (`DW_OP_addr`), or a thread-local one.
fn static_storage(d: &DwarfData, var: DieId) -> bool {
    let Some((at, e)) = location_die(d, var) else {
        return false;
    };
    let Some(AttributeValue::Exprloc(expr)) = e.attr_value(gimli::DW_AT_location) else {
        return false;
    };
    let Ok(ops) = super::place::parse(d, at.unit, expr) else {
        return false;
    };
    matches!(
        ops.first(),
        Some(Operation::Address { .. } | Operation::AddressIndex { .. })
    ) || ops.iter().any(|o| matches!(o, Operation::TLS))
}

/// `DW_AT_decl_line` of a DIE, through its origin.
fn decl_line(d: &DwarfData, id: DieId) -> Option<u32> {
    let (_, v) = d.attr_follow(id, gimli::DW_AT_decl_line)?;
    v.udata_value().map(|l| l as u32)
}

/// The variable symbols gdb puts in the block of scope `si`, in gdb's order: the scope's own
/// parameters and variables, those of child lexical blocks without pc bounds (gdb reads
/// their children as the parent's), then the variables of the abstract origin that the
/// instance does not instantiate (descending into uninstantiated abstract blocks).
fn block_symbols(d: &DwarfData, tree: &ScopeTree, ui: usize, si: usize) -> Vec<Sym> {
    let mut ids: Vec<DieId> = Vec::new();
    own_symbols(d, tree, ui, si, &mut ids, 0);
    if let Some(origin) = tree.scopes[si].origin {
        // Abstract DIEs the instance already covers: its children's origins.
        let mut covered: HashSet<DieId> = HashSet::new();
        let children = tree.scopes[si]
            .vars
            .iter()
            .map(|&v| DieId { unit: ui, off: v })
            .chain(
                tree.scopes
                    .iter()
                    .filter(|s| s.parent == Some(si))
                    .map(|s| DieId {
                        unit: ui,
                        off: s.die,
                    }),
            );
        for child in children {
            if let Ok(e) = d.entry(child)
                && let Some(o) = e
                    .attr_value(gimli::DW_AT_abstract_origin)
                    .and_then(|o| d.resolve_ref(ui, &o))
            {
                covered.insert(o);
            }
        }
        abstract_symbols(d, origin, &covered, &mut ids, 0);
    }
    ids.into_iter()
        .filter_map(|id| {
            let e = d.entry(id).ok()?;
            let param = match e.tag() {
                gimli::DW_TAG_formal_parameter => true,
                gimli::DW_TAG_variable => false,
                _ => return None,
            };
            Some(Sym {
                name: d.name_of(id)?,
                id,
                param,
            })
        })
        .collect()
}

/// Scope `si`'s variables, then those of its child blocks that have no pc bounds.
fn own_symbols(
    d: &DwarfData,
    tree: &ScopeTree,
    ui: usize,
    si: usize,
    out: &mut Vec<DieId>,
    depth: usize,
) {
    out.extend(
        tree.scopes[si]
            .vars
            .iter()
            .map(|&v| DieId { unit: ui, off: v }),
    );
    if depth > 16 {
        return;
    }
    for (ci, s) in tree.scopes.iter().enumerate() {
        if s.parent != Some(si) || s.kind != ScopeKind::Block || !s.ranges.is_empty() {
            continue;
        }
        // No ranges: either no pc attributes at all (children belong to the parent) or
        // invalid ones (gdb drops the block and its variables).
        let Ok(e) = d.entry(DieId {
            unit: ui,
            off: s.die,
        }) else {
            continue;
        };
        if e.has_attr(gimli::DW_AT_low_pc) || e.has_attr(gimli::DW_AT_ranges) {
            continue;
        }
        own_symbols(d, tree, ui, ci, out, depth + 1);
    }
}

/// The parameters and variables among abstract DIE `parent`'s children that are not in
/// `covered`; uncovered abstract lexical blocks contribute all their variables.
fn abstract_symbols(
    d: &DwarfData,
    parent: DieId,
    covered: &HashSet<DieId>,
    out: &mut Vec<DieId>,
    depth: usize,
) {
    if depth > 16 {
        return;
    }
    let unit = d.unit(parent.unit);
    let Ok(mut tree) = unit.entries_tree(Some(parent.off)) else {
        return;
    };
    let Ok(root) = tree.root() else { return };
    let mut children = root.children();
    let none = HashSet::new();
    while let Ok(Some(child)) = children.next() {
        let e = child.entry();
        let id = DieId {
            unit: parent.unit,
            off: e.offset(),
        };
        if covered.contains(&id) {
            continue;
        }
        match e.tag() {
            gimli::DW_TAG_formal_parameter | gimli::DW_TAG_variable => out.push(id),
            gimli::DW_TAG_lexical_block => abstract_symbols(d, id, &none, out, depth + 1),
            _ => {}
        }
    }
}
