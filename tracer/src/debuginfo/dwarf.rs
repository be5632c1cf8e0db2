//! The loaded DWARF of one module: its units, DIE references across units, names through
//! `DW_AT_abstract_origin` / `DW_AT_specification`, and the pc → unit lookup.
//!
//! Sections are owned (`Arc<[u8]>` readers) so a `ModuleSymbols` is self-contained and
//! `Send + Sync`. Per-unit indexes (scope tree, line table) are built on first use.

use super::functions::FunctionIndex;
use super::lines::LineTable;
use super::scope::ScopeTree;
use super::typegraph::{TypeIndex, UnitTypes};
use super::{SourceLoc, SymbolError};
use gimli::{AttributeValue, DwAt, Reader};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// The gimli reader used everywhere: owned, shareable section data.
pub(crate) type R = gimli::EndianArcSlice<gimli::RunTimeEndian>;

/// An offset of a DIE within its unit.
pub(crate) type UnitOff = gimli::UnitOffset<usize>;

/// A DIE anywhere in the module: its unit (index into `DwarfData::units`) and offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct DieId {
    /// Index of the unit in `DwarfData::units`.
    pub unit: usize,
    /// Offset of the DIE within that unit.
    pub off: UnitOff,
}

/// The source language of a unit, as far as naming types goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lang {
    /// C (and anything not listed: C spelling is gdb's default).
    C,
    /// C++: qualified names, no `struct ` keyword.
    Cplus,
    /// Rust: qualified names, Rust spellings of pointers and arrays.
    Rust,
}

/// One unit and its lazily built indexes.
pub(crate) struct UnitData {
    /// The parsed unit (header, abbreviations, line program header).
    pub unit: gimli::Unit<R>,
    /// The unit's language.
    pub lang: Lang,
    /// Qualified-name prefixes and names of the unit's types (built on first use).
    pub types: OnceLock<UnitTypes>,
    /// Subprograms, inlined subroutines and blocks of this unit (built on first use).
    scopes: OnceLock<Result<ScopeTree, String>>,
    /// The decoded line table (built on first use).
    lines: OnceLock<Result<LineTable, String>>,
    /// Full paths of the line program's files, by DWARF file index (built on first use).
    files: OnceLock<Vec<String>>,
}

/// All the DWARF of a module.
pub(crate) struct DwarfData {
    /// The sections (shared with addr2line).
    pub dwarf: Arc<gimli::Dwarf<R>>,
    /// Every unit of .debug_info, in section order.
    pub units: Vec<UnitData>,
    /// The file the DWARF was read from (for error messages).
    pub path: PathBuf,
    /// (.debug_info offset of the unit header, unit index), sorted, for DW_FORM_ref_addr.
    starts: Vec<(usize, usize)>,
    /// (begin, end, unit index) of every unit's address ranges, sorted by begin.
    pc_index: OnceLock<Vec<(u64, u64, usize)>>,
    /// addr2line's context for `describe`; it is not `Sync`, hence the mutex.
    a2l: OnceLock<Option<Mutex<addr2line::Context<R>>>>,
    /// Function names → entries (built on first `resolve_function`).
    pub functions: OnceLock<FunctionIndex>,
    /// Global variable names → their defining DIEs (built on first need).
    pub globals: OnceLock<HashMap<String, Vec<DieId>>>,
    /// Type signatures (DW_FORM_ref_sig8) → the type DIE in its type unit.
    sigs: HashMap<u64, DieId>,
    /// Type names of every unit → their definitions (built on first need).
    pub type_index: OnceLock<TypeIndex>,
    /// Functions some tail call reaches (built on the first entry-value recovery).
    pub tail_callees: OnceLock<std::collections::HashSet<String>>,
}

impl DwarfData {
    /// Parses the unit headers of `dwarf` (abbreviations and line program headers too).
    /// Units gimli cannot parse are skipped rather than failing the whole module.
    pub fn new(dwarf: gimli::Dwarf<R>, path: PathBuf) -> Result<DwarfData, SymbolError> {
        let mut units = Vec::new();
        let mut starts = Vec::new();
        let mut headers = dwarf.units();
        loop {
            let header = match headers.next() {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(e) => {
                    return Err(SymbolError::Dwarf {
                        path,
                        detail: format!("reading unit headers: {e}"),
                    });
                }
            };
            let Some(start) = header.offset().to_debug_info_offset(&header) else {
                continue;
            };
            let Ok(unit) = dwarf.unit(header) else {
                continue;
            };
            starts.push((start.0, units.len()));
            units.push(UnitData::new(unit));
        }
        // DWARF 4 type units live in .debug_types; they are only reached by signature (no
        // DW_FORM_ref_addr points into them), so they get no entry in `starts`.
        let mut type_headers = dwarf.type_units();
        while let Ok(Some(header)) = type_headers.next() {
            if let Ok(unit) = dwarf.unit(header) {
                units.push(UnitData::new(unit));
            }
        }
        let mut sigs = HashMap::new();
        for (i, u) in units.iter().enumerate() {
            if let gimli::UnitType::Type {
                type_signature,
                type_offset,
            }
            | gimli::UnitType::SplitType {
                type_signature,
                type_offset,
            } = u.unit.header.type_()
            {
                sigs.insert(
                    type_signature.0,
                    DieId {
                        unit: i,
                        off: type_offset,
                    },
                );
            }
        }
        Ok(DwarfData {
            dwarf: Arc::new(dwarf),
            units,
            path,
            starts,
            pc_index: OnceLock::new(),
            a2l: OnceLock::new(),
            functions: OnceLock::new(),
            globals: OnceLock::new(),
            sigs,
            type_index: OnceLock::new(),
            tail_callees: OnceLock::new(),
        })
    }

    /// A `SymbolError::Dwarf` for this module.
    pub fn error(&self, detail: impl std::fmt::Display) -> SymbolError {
        SymbolError::Dwarf {
            path: self.path.clone(),
            detail: detail.to_string(),
        }
    }

    /// The unit at `index`.
    pub fn unit(&self, index: usize) -> &gimli::Unit<R> {
        &self.units[index].unit
    }

    /// True if the unit is a compilation (or partial) unit, not a type unit.
    pub fn is_code_unit(&self, index: usize) -> bool {
        matches!(
            self.unit(index).header.type_(),
            gimli::UnitType::Compilation | gimli::UnitType::Partial | gimli::UnitType::Skeleton(_)
        )
    }

    /// The scope tree of unit `index`, built on first use.
    pub fn scopes(&self, index: usize) -> Result<&ScopeTree, SymbolError> {
        self.units[index]
            .scopes
            .get_or_init(|| ScopeTree::build(self, index).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| self.error(e))
    }

    /// The line table of unit `index`, built on first use.
    pub fn lines(&self, index: usize) -> Result<&LineTable, SymbolError> {
        self.units[index]
            .lines
            .get_or_init(|| LineTable::build(self, index).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| self.error(e))
    }

    /// The full paths of unit `index`'s source files by DWARF file index, built on first use.
    pub fn files(&self, index: usize) -> &[String] {
        self.units[index]
            .files
            .get_or_init(|| super::lines::file_names(self, index))
    }

    /// Reads the DIE `id` (with all its attributes).
    pub fn entry(&self, id: DieId) -> Result<gimli::DebuggingInformationEntry<R>, SymbolError> {
        self.unit(id.unit)
            .entry(id.off)
            .map_err(|e| self.error(format!("DIE at {:#x}: {e}", id.off.0)))
    }

    /// Resolves a reference attribute found in unit `from` to the DIE it names (in this
    /// unit, another unit, or a type unit by signature).
    pub fn resolve_ref(&self, from: usize, value: &AttributeValue<R>) -> Option<DieId> {
        match *value {
            AttributeValue::UnitRef(off) => Some(DieId { unit: from, off }),
            AttributeValue::DebugTypesRef(sig) => self.sigs.get(&sig.0).copied(),
            AttributeValue::DebugInfoRef(off) => {
                let i = self
                    .starts
                    .partition_point(|(start, _)| *start <= off.0)
                    .checked_sub(1)?;
                let unit = self.starts[i].1;
                let off = off.to_unit_offset(&self.unit(unit).header)?;
                Some(DieId { unit, off })
            }
            _ => None,
        }
    }

    /// A string attribute's value (inline, .debug_str, .debug_line_str, str_offsets).
    pub fn attr_string(&self, unit: usize, value: AttributeValue<R>) -> Option<String> {
        let s = self.dwarf.attr_string(self.unit(unit), value).ok()?;
        Some(s.to_string_lossy().ok()?.into_owned())
    }

    /// The value of attribute `at` on `id`, or on the DIE it is an instance or completion of
    /// (`DW_AT_abstract_origin`, `DW_AT_specification`), with the DIE it was found on (its
    /// references are relative to that DIE's unit).
    pub fn attr_follow(&self, id: DieId, at: DwAt) -> Option<(DieId, AttributeValue<R>)> {
        let mut cur = id;
        // The chain is short in practice (concrete → abstract → declaration); the bound
        // protects against malformed cycles.
        for _ in 0..8 {
            let die = self.entry(cur).ok()?;
            if let Some(v) = die.attr_value(at) {
                return Some((cur, v));
            }
            let next = die
                .attr_value(gimli::DW_AT_abstract_origin)
                .or_else(|| die.attr_value(gimli::DW_AT_specification))?;
            cur = self.resolve_ref(cur.unit, &next)?;
        }
        None
    }

    /// The source name of a DIE (`DW_AT_name`, through origins and specifications).
    pub fn name_of(&self, id: DieId) -> Option<String> {
        let (at, v) = self.attr_follow(id, gimli::DW_AT_name)?;
        self.attr_string(at.unit, v)
    }

    /// The linkage (mangled) name of a DIE, through origins and specifications.
    pub fn linkage_name_of(&self, id: DieId) -> Option<String> {
        let (at, v) = self
            .attr_follow(id, gimli::DW_AT_linkage_name)
            .or_else(|| self.attr_follow(id, gimli::DW_AT_MIPS_linkage_name))?;
        self.attr_string(at.unit, v)
    }

    /// The referenced DIE of attribute `at` (e.g. `DW_AT_type`), following origins.
    pub fn ref_follow(&self, id: DieId, at: DwAt) -> Option<DieId> {
        let (found, v) = self.attr_follow(id, at)?;
        self.resolve_ref(found.unit, &v)
    }

    /// The units whose address ranges contain `pc` (usually one).
    pub fn units_for_pc(&self, pc: u64) -> Vec<usize> {
        let index = self.pc_index.get_or_init(|| {
            let mut v = Vec::new();
            for i in 0..self.units.len() {
                if !self.is_code_unit(i) {
                    continue;
                }
                let Ok(mut ranges) = self.dwarf.unit_ranges(self.unit(i)) else {
                    continue;
                };
                while let Ok(Some(r)) = ranges.next() {
                    if r.begin < r.end && r.begin != 0 {
                        v.push((r.begin, r.end, i));
                    }
                }
            }
            v.sort_unstable();
            v
        });
        let end = index.partition_point(|(begin, _, _)| *begin <= pc);
        let mut out: Vec<usize> = index[..end]
            .iter()
            .filter(|(_, e, _)| pc < *e)
            .map(|(_, _, u)| *u)
            .collect();
        out.dedup();
        out
    }

    /// Function, file and line of `pc` via addr2line (innermost inlined frame first).
    pub fn describe(&self, pc: u64) -> SourceLoc {
        let mut loc = SourceLoc {
            function: None,
            file: None,
            line: None,
        };
        let ctx = self.a2l.get_or_init(|| {
            addr2line::Context::from_arc_dwarf(self.dwarf.clone())
                .ok()
                .map(Mutex::new)
        });
        let Some(ctx) = ctx else { return loc };
        let Ok(ctx) = ctx.lock() else { return loc };
        let Ok(mut frames) = ctx.find_frames(pc).skip_all_loads() else {
            return loc;
        };
        if let Ok(Some(frame)) = frames.next() {
            if let Some(f) = &frame.function {
                loc.function = f.demangle().ok().map(|s| s.into_owned());
            }
            if let Some(l) = &frame.location {
                loc.file = l.file.map(str::to_string);
                loc.line = l.line;
            }
        }
        loc
    }

    /// Every frame at `pc` via addr2line, innermost (inlined) first: the function and the
    /// source position in it (for an outer frame, the call site of the inlined one).
    pub(crate) fn frames_at(&self, pc: u64) -> Vec<SourceLoc> {
        let mut out = Vec::new();
        let ctx = self.a2l.get_or_init(|| {
            addr2line::Context::from_arc_dwarf(self.dwarf.clone())
                .ok()
                .map(Mutex::new)
        });
        let Some(ctx) = ctx else { return out };
        let Ok(ctx) = ctx.lock() else { return out };
        let Ok(mut frames) = ctx.find_frames(pc).skip_all_loads() else {
            return out;
        };
        while let Ok(Some(frame)) = frames.next() {
            let (file, line) = match &frame.location {
                Some(l) => (l.file.map(str::to_string), l.line),
                None => (None, None),
            };
            out.push(SourceLoc {
                function: frame
                    .function
                    .as_ref()
                    .and_then(|f| f.demangle().ok().map(|s| s.into_owned())),
                file,
                line,
            });
        }
        out
    }
}

impl UnitData {
    /// Wraps a parsed unit; its indexes are built on first use.
    fn new(unit: gimli::Unit<R>) -> UnitData {
        let language = unit
            .entry(unit.root_offset())
            .ok()
            .and_then(|root| root.attr_value(gimli::DW_AT_language));
        let lang = match language {
            Some(AttributeValue::Language(l)) => match l {
                gimli::DW_LANG_C_plus_plus
                | gimli::DW_LANG_C_plus_plus_03
                | gimli::DW_LANG_C_plus_plus_11
                | gimli::DW_LANG_C_plus_plus_14
                | gimli::DW_LANG_C_plus_plus_17
                | gimli::DW_LANG_C_plus_plus_20 => Lang::Cplus,
                gimli::DW_LANG_Rust => Lang::Rust,
                _ => Lang::C,
            },
            _ => Lang::C,
        };
        UnitData {
            unit,
            lang,
            types: OnceLock::new(),
            scopes: OnceLock::new(),
            lines: OnceLock::new(),
            files: OnceLock::new(),
        }
    }
}

/// The address ranges of a DIE (`DW_AT_low_pc`/`high_pc` or `DW_AT_ranges`), in the order
/// DWARF lists them, without empty ranges and without ranges of discarded code (address 0 or
/// a tombstone).
pub(crate) fn die_ranges(
    dwarf: &gimli::Dwarf<R>,
    unit: &gimli::Unit<R>,
    die: &gimli::DebuggingInformationEntry<R>,
) -> gimli::Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    let mut it = dwarf.die_ranges(unit, die)?;
    while let Some(r) = it.next()? {
        if r.begin < r.end && r.begin != 0 && !unit.header.is_tombstone_address(r.begin) {
            out.push((r.begin, r.end));
        }
    }
    Ok(out)
}
