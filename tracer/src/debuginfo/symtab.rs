//! The ELF symbol tables (.symtab, then .dynsym): names to addresses and addresses to
//! functions. They work without DWARF, so function probes on stripped-of-DWARF binaries
//! still resolve.

use object::{Object, ObjectSymbol, SymbolKind};
use std::collections::HashMap;

/// A defined function symbol.
#[derive(Clone, Debug)]
struct FuncSym {
    addr: u64,
    size: u64,
    name: String,
    /// Global or weak (preferred over a local alias at the same address).
    global: bool,
}

/// Defined symbols of one ELF file.
#[derive(Debug, Default)]
pub(crate) struct SymbolTable {
    /// Every defined symbol with an address, .symtab entries winning over .dynsym ones.
    by_name: HashMap<String, u64>,
    /// Defined function symbols by name (.symtab first).
    funcs_by_name: HashMap<String, u64>,
    /// Defined function symbols sorted by address.
    funcs: Vec<FuncSym>,
    /// Defined data symbols (objects with a size) sorted by address, so a pointer into a
    /// global can be shown as `<global_counter>`, as gdb does.
    data: Vec<FuncSym>,
}

impl SymbolTable {
    /// Reads .symtab and .dynsym of `file`.
    pub fn read<'data>(file: &impl Object<'data>) -> SymbolTable {
        let mut t = SymbolTable::default();
        // .symtab first: a name's first definition wins.
        for sym in file.symbols().chain(file.dynamic_symbols()) {
            if !sym.is_definition() || sym.address() == 0 {
                continue;
            }
            let Ok(name) = sym.name() else { continue };
            if name.is_empty() {
                continue;
            }
            t.by_name.entry(name.to_string()).or_insert(sym.address());
            if sym.kind() == SymbolKind::Data && sym.size() > 0 {
                t.data.push(FuncSym {
                    addr: sym.address(),
                    size: sym.size(),
                    name: name.to_string(),
                    global: sym.is_global(),
                });
            }
            if sym.kind() == SymbolKind::Text {
                t.funcs_by_name
                    .entry(name.to_string())
                    .or_insert(sym.address());
                t.funcs.push(FuncSym {
                    addr: sym.address(),
                    size: sym.size(),
                    name: name.to_string(),
                    global: sym.is_global(),
                });
            }
        }
        // At one address prefer sized, then global symbols: they describe the function best.
        t.funcs.sort_by(|a, b| {
            a.addr
                .cmp(&b.addr)
                .then(b.size.cmp(&a.size))
                .then(b.global.cmp(&a.global))
        });
        t.funcs.dedup_by(|later, first| later.addr == first.addr);
        t.data
            .sort_by(|a, b| a.addr.cmp(&b.addr).then(b.global.cmp(&a.global)));
        t.data.dedup_by(|later, first| later.addr == first.addr);
        t
    }

    /// The data symbol containing `addr`, and the offset into it.
    pub fn data_at(&self, addr: u64) -> Option<(&str, u64)> {
        let i = self
            .data
            .partition_point(|f| f.addr <= addr)
            .checked_sub(1)?;
        let f = &self.data[i];
        let off = addr - f.addr;
        (off < f.size).then_some((f.name.as_str(), off))
    }

    /// The address of any defined symbol named `name`.
    pub fn addr_of(&self, name: &str) -> Option<u64> {
        self.by_name.get(name).copied()
    }

    /// The address of the function symbol named `name`.
    pub fn function_addr(&self, name: &str) -> Option<u64> {
        self.funcs_by_name.get(name).copied()
    }

    /// Names of all function symbols.
    pub fn function_names(&self) -> impl Iterator<Item = &str> {
        self.funcs_by_name.keys().map(String::as_str)
    }

    /// The bounds `[start, end)` of the function symbol containing `addr` (None for a
    /// symbol without a size: where it ends is not known).
    pub fn function_bounds(&self, addr: u64) -> Option<(u64, u64)> {
        let i = self
            .funcs
            .partition_point(|f| f.addr <= addr)
            .checked_sub(1)?;
        let f = &self.funcs[i];
        (f.size > 0 && addr < f.addr + f.size).then_some((f.addr, f.addr + f.size))
    }

    /// The function symbol containing `addr`, and the offset into it. A symbol without a
    /// size (hand-written assembly) is taken to extend to the next symbol.
    pub fn function_at(&self, addr: u64) -> Option<(&str, u64)> {
        let i = self
            .funcs
            .partition_point(|f| f.addr <= addr)
            .checked_sub(1)?;
        let f = &self.funcs[i];
        let off = addr - f.addr;
        if f.size == 0 || off < f.size {
            Some((&f.name, off))
        } else {
            None
        }
    }
}
