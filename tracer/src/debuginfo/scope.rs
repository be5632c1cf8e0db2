//! Per-unit scope trees: every subprogram, inlined subroutine and lexical block of a unit
//! with its address ranges, its parent, and the variables declared directly in it.
//!
//! One DFS over the unit's DIEs builds the tree; it serves three questions: which block a
//! line-table address belongs to (for one site per block), which function a pc is in, and
//! which variables are visible at a pc (innermost scope outwards).

use super::dwarf::{DieId, DwarfData, UnitOff, die_ranges};
use gimli::AttributeValue;

/// What kind of scope a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScopeKind {
    /// The compilation unit itself (its variables are the file-level ones).
    Unit,
    /// `DW_TAG_subprogram`: a function (concrete, abstract or a declaration).
    Subprogram,
    /// `DW_TAG_inlined_subroutine`: an inlined copy of a function.
    Inlined,
    /// `DW_TAG_lexical_block`.
    Block,
}

/// One scope of the tree.
#[derive(Clone, Debug)]
pub(crate) struct Scope {
    /// What it is.
    pub kind: ScopeKind,
    /// Its DIE.
    pub die: UnitOff,
    /// The enclosing scope (None for the unit).
    pub parent: Option<usize>,
    /// Nesting depth (unit = 0).
    pub depth: usize,
    /// Address ranges in the order DWARF lists them (empty for declarations and abstract
    /// instances, which have no code).
    pub ranges: Vec<(u64, u64)>,
    /// `DW_AT_entry_pc`, when given.
    pub entry_pc: Option<u64>,
    /// `DW_AT_abstract_origin` (or `DW_AT_specification`) target: where names live.
    pub origin: Option<DieId>,
    /// The function's own `DW_AT_name` and linkage name (read during the walk so indexing
    /// names does not re-read every DIE; instances with an `origin` usually have neither).
    pub names: Option<Box<(Option<String>, Option<String>)>>,
    /// `DW_TAG_formal_parameter` and `DW_TAG_variable` children, in DIE order.
    pub vars: Vec<UnitOff>,
    /// True if gdb would make this a block of its own: functions and inlined copies always,
    /// lexical blocks only when they declare something (gdb drops empty lexical blocks, and
    /// "one site per block" must use the same blocks to give the same sites).
    pub has_symbols: bool,
}

impl Scope {
    /// True if `pc` is in one of the scope's ranges.
    pub fn contains(&self, pc: u64) -> bool {
        self.ranges.iter().any(|&(b, e)| b <= pc && pc < e)
    }

    /// The entry address: `DW_AT_entry_pc`, else the start of the first listed range
    /// (gdb's BLOCK_ENTRY_PC).
    pub fn entry(&self) -> Option<u64> {
        self.entry_pc.or_else(|| self.ranges.first().map(|r| r.0))
    }

    /// True for functions and inlined copies of functions.
    pub fn is_function(&self) -> bool {
        matches!(self.kind, ScopeKind::Subprogram | ScopeKind::Inlined)
    }
}

/// All scopes of one unit, in DIE (DFS) order; index 0 is the unit.
#[derive(Debug)]
pub(crate) struct ScopeTree {
    /// The scopes.
    pub scopes: Vec<Scope>,
    /// True if any variable of the unit uses a location list. gdb takes this as "optimized
    /// code with trustworthy locations" and then does not skip prologues (the function's
    /// first address is already a valid place to read arguments).
    pub has_loclists: bool,
}

impl ScopeTree {
    /// Builds the tree of unit `index` with one pass over its DIEs.
    pub fn build(d: &DwarfData, index: usize) -> gimli::Result<ScopeTree> {
        let unit = d.unit(index);
        let mut scopes = vec![Scope {
            kind: ScopeKind::Unit,
            die: unit.root_offset(),
            parent: None,
            depth: 0,
            ranges: Vec::new(),
            entry_pc: None,
            origin: None,
            names: None,
            vars: Vec::new(),
            has_symbols: true,
        }];
        let mut has_loclists = false;
        // (DIE depth, scope index) of the scopes enclosing the current DIE.
        let mut stack: Vec<(isize, usize)> = vec![(0, 0)];
        let mut cursor = unit.entries();
        while let Some(die) = cursor.next_dfs()? {
            let depth = die.depth();
            while stack.len() > 1 && stack.last().is_some_and(|&(d, _)| d >= depth) {
                stack.pop();
            }
            let &(parent_depth, parent) = stack.last().expect("the unit scope stays on the stack");
            let direct_child = depth == parent_depth + 1;
            let tag = die.tag();
            match tag {
                gimli::DW_TAG_subprogram
                | gimli::DW_TAG_inlined_subroutine
                | gimli::DW_TAG_lexical_block => {
                    let kind = match tag {
                        gimli::DW_TAG_subprogram => ScopeKind::Subprogram,
                        gimli::DW_TAG_inlined_subroutine => ScopeKind::Inlined,
                        _ => ScopeKind::Block,
                    };
                    let ranges = die_ranges(&d.dwarf, unit, die)?;
                    let entry_pc = match die.attr_value(gimli::DW_AT_entry_pc) {
                        // DWARF 5 allows entry_pc as an offset from low_pc.
                        Some(AttributeValue::Udata(off)) => ranges.first().map(|r| r.0 + off),
                        Some(v) => d.dwarf.attr_address(unit, v).ok().flatten(),
                        None => None,
                    };
                    let origin = die
                        .attr_value(gimli::DW_AT_abstract_origin)
                        .or_else(|| die.attr_value(gimli::DW_AT_specification))
                        .and_then(|v| d.resolve_ref(index, &v));
                    // Only instances with code are ever looked up by name.
                    let names = if kind == ScopeKind::Block || ranges.is_empty() {
                        None
                    } else {
                        let name = die
                            .attr_value(gimli::DW_AT_name)
                            .and_then(|v| d.attr_string(index, v));
                        let linkage = die
                            .attr_value(gimli::DW_AT_linkage_name)
                            .or_else(|| die.attr_value(gimli::DW_AT_MIPS_linkage_name))
                            .and_then(|v| d.attr_string(index, v));
                        (name.is_some() || linkage.is_some()).then(|| Box::new((name, linkage)))
                    };
                    if kind == ScopeKind::Subprogram
                        && direct_child
                        && scopes[parent].kind == ScopeKind::Block
                    {
                        // A function declared inside a block is a symbol of that block.
                        scopes[parent].has_symbols = true;
                    }
                    scopes.push(Scope {
                        kind,
                        die: die.offset(),
                        parent: Some(parent),
                        depth: scopes[parent].depth + 1,
                        ranges,
                        entry_pc,
                        origin,
                        names,
                        vars: Vec::new(),
                        has_symbols: kind != ScopeKind::Block,
                    });
                    if die.has_children() {
                        stack.push((depth, scopes.len() - 1));
                    }
                }
                gimli::DW_TAG_formal_parameter | gimli::DW_TAG_variable if direct_child => {
                    if die
                        .attr_value(gimli::DW_AT_location)
                        .is_some_and(|v| !matches!(v, AttributeValue::Exprloc(_)))
                    {
                        has_loclists = true;
                    }
                    let scope = &mut scopes[parent];
                    scope.vars.push(die.offset());
                    if tag == gimli::DW_TAG_variable {
                        scope.has_symbols = true;
                    }
                }
                gimli::DW_TAG_typedef
                | gimli::DW_TAG_structure_type
                | gimli::DW_TAG_union_type
                | gimli::DW_TAG_enumeration_type
                | gimli::DW_TAG_label
                    if direct_child && die.has_attr(gimli::DW_AT_name) =>
                {
                    scopes[parent].has_symbols = true;
                }
                _ => {}
            }
        }
        Ok(ScopeTree {
            scopes,
            has_loclists,
        })
    }

    /// The scopes containing `pc`, innermost first (the unit scope last).
    pub fn chain_at(&self, pc: u64) -> Vec<usize> {
        let Some(innermost) = (1..self.scopes.len())
            .filter(|&i| self.scopes[i].contains(pc))
            .max_by_key(|&i| self.scopes[i].depth)
        else {
            return vec![0];
        };
        let mut chain = vec![innermost];
        let mut cur = innermost;
        while let Some(p) = self.scopes[cur].parent {
            chain.push(p);
            cur = p;
        }
        chain
    }

    /// The innermost scope containing `pc` that gdb treats as a block (see `has_symbols`).
    pub fn block_at(&self, pc: u64) -> Option<usize> {
        self.chain_at(pc)
            .into_iter()
            .find(|&i| i != 0 && self.scopes[i].has_symbols)
    }

    /// The innermost function or inlined copy containing `pc`.
    pub fn function_at(&self, pc: u64) -> Option<usize> {
        self.chain_at(pc)
            .into_iter()
            .find(|&i| self.scopes[i].is_function())
    }

    /// The innermost out-of-line function (`DW_TAG_subprogram`) containing `pc`.
    pub fn subprogram_at(&self, pc: u64) -> Option<usize> {
        self.chain_at(pc)
            .into_iter()
            .find(|&i| self.scopes[i].kind == ScopeKind::Subprogram)
    }

    /// The DIE of scope `i` as a module-wide id.
    pub fn die_id(&self, unit: usize, i: usize) -> DieId {
        DieId {
            unit,
            off: self.scopes[i].die,
        }
    }
}
