//! Function entries: where a function probe plants.
//!
//! With DWARF: every out-of-line instance of the function after its prologue, plus the entry
//! of every inlined copy. Without DWARF (or when DWARF does not know the name): the ELF
//! symbol's address.

use super::cfa::FrameTables;
use super::dwarf::{DieId, DwarfData};
use super::scope::ScopeKind;
use super::symtab::SymbolTable;
use super::{Site, SymbolError};
use crate::addr::FileAddr;
use std::collections::HashMap;
use std::path::Path;

/// Function names → their concrete instances (out-of-line functions with code and inlined
/// copies), as (unit index, scope index).
#[derive(Debug, Default)]
pub(crate) struct FunctionIndex {
    /// Keyed by `DW_AT_name` and by linkage name (both, when they differ).
    pub by_name: HashMap<String, Vec<(usize, usize)>>,
}

impl FunctionIndex {
    /// Walks every unit's scope tree. Units whose DIEs cannot be read are skipped.
    fn build(d: &DwarfData) -> FunctionIndex {
        let mut by_name: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
        // Many inlined copies share one abstract origin; name it once.
        let mut origin_names: HashMap<DieId, (Option<String>, Option<String>)> = HashMap::new();
        for ui in 0..d.units.len() {
            if !d.is_code_unit(ui) {
                continue;
            }
            let Ok(tree) = d.scopes(ui) else { continue };
            for (si, s) in tree.scopes.iter().enumerate() {
                if !s.is_function() || s.ranges.is_empty() {
                    continue;
                }
                let (name, linkage) = match (&s.names, s.origin) {
                    (Some(own), _) if own.0.is_some() => (**own).clone(),
                    (_, Some(origin)) => origin_names
                        .entry(origin)
                        .or_insert_with(|| (d.name_of(origin), d.linkage_name_of(origin)))
                        .clone(),
                    (Some(own), None) => (**own).clone(),
                    (None, None) => continue,
                };
                if let Some(n) = &name {
                    by_name.entry(n.clone()).or_default().push((ui, si));
                }
                if let Some(l) = linkage.filter(|l| Some(l) != name.as_ref()) {
                    by_name.entry(l).or_default().push((ui, si));
                }
            }
        }
        FunctionIndex { by_name }
    }
}

/// Where a probe on function scope `sp` of unit `ui` plants, computed like gdb (13, for gcc
/// output on x86-64):
///
/// - in a unit with location lists (optimized code), the entry itself: gdb trusts the
///   locations there and does not skip prologues;
/// - a frameless function (no `push %rbp; mov %rsp,%rbp` at the entry, per its CFI): the
///   entry. Optimized code without location lists lands here; its "second line" may well be
///   inside a loop or behind an early return;
/// - with a frame pointer: the first line-table boundary at or after the `mov` (at -O0 that is
///   the function's second line; gcc puts the whole prologue on the opening line);
/// - without CFI: the second line by the line table alone (`second_line`).
pub(crate) fn post_prologue(
    d: &DwarfData,
    frames: &FrameTables,
    ui: usize,
    sp: usize,
) -> Result<u64, SymbolError> {
    let tree = d.scopes(ui)?;
    let s = &tree.scopes[sp];
    let Some(entry) = s.entry() else {
        return Err(d.error("function without code"));
    };
    if tree.has_loclists {
        return Ok(entry);
    }
    match frames.frame_setup_end(entry) {
        Some(None) => Ok(entry),
        Some(Some(after)) => {
            let lines = d.lines(ui)?;
            let Some(i) = lines
                .seqs
                .partition_point(|q| q.start <= after)
                .checked_sub(1)
            else {
                return Ok(after);
            };
            let seq = &lines.seqs[i];
            // gdb: if the analyzed pc is mid-line, move to where the next line-table entry
            // starts, if that is still inside the function.
            let next = seq
                .rows
                .iter()
                .filter(|r| r.visible)
                .map(|r| r.addr)
                .find(|&a| a >= after)
                .unwrap_or(seq.end);
            Ok(if next == after || s.contains(next) {
                next
            } else {
                after
            })
        }
        None => second_line(d, ui, sp, entry),
    }
}

/// The address of the function's second line by the line table alone: the first `is_stmt`
/// row after the entry, inside the function, whose line differs from the entry row's line. A
/// one-line function has no such row; then the second row of the same line (the first
/// statement after the prologue); else the entry.
fn second_line(d: &DwarfData, ui: usize, sp: usize, entry: u64) -> Result<u64, SymbolError> {
    let s = &d.scopes(ui)?.scopes[sp];
    let lines = d.lines(ui)?;
    let Some(i) = lines
        .seqs
        .partition_point(|q| q.start <= entry)
        .checked_sub(1)
    else {
        return Ok(entry);
    };
    let seq = &lines.seqs[i];
    if entry >= seq.end {
        return Ok(entry);
    }
    let first = seq.rows.partition_point(|r| r.addr < entry);
    let entry_line = match seq.rows.get(first) {
        Some(r) if r.addr == entry => r.line,
        _ => match lines.row_at(entry) {
            Some(r) => r.line,
            None => return Ok(entry),
        },
    };
    let mut same_line_next = None;
    for r in &seq.rows[first..] {
        if r.addr <= entry || !r.is_stmt || !r.visible {
            continue;
        }
        if r.addr >= seq.end || !s.contains(r.addr) {
            break;
        }
        if r.line != entry_line && r.line != 0 {
            return Ok(r.addr);
        }
        same_line_next.get_or_insert(r.addr);
    }
    Ok(same_line_next.unwrap_or(entry))
}

/// Every entry of function `name`: DWARF instances after their prologue and inlined copies;
/// else the ELF symbol.
pub(crate) fn resolve_function(
    dwarf: Option<&DwarfData>,
    frames: &FrameTables,
    symbols: &SymbolTable,
    binary: &Path,
    name: &str,
) -> Result<Vec<Site>, SymbolError> {
    let mut sites = Vec::new();
    if let Some(d) = dwarf {
        let index = d.functions.get_or_init(|| FunctionIndex::build(d));
        for &(ui, si) in index.by_name.get(name).into_iter().flatten() {
            let tree = d.scopes(ui)?;
            let s = &tree.scopes[si];
            let (addr, inlined) = match s.kind {
                ScopeKind::Inlined => match s.entry() {
                    Some(a) => (a, true),
                    None => continue,
                },
                _ => (post_prologue(d, frames, ui, si)?, false),
            };
            let (file, line) = match d.lines(ui)?.row_at(addr) {
                Some(row) => (
                    d.files(ui)
                        .get(row.file as usize)
                        .cloned()
                        .unwrap_or_default(),
                    row.line,
                ),
                None => (String::new(), 0),
            };
            let function = d
                .name_of(tree.die_id(ui, si))
                .unwrap_or_else(|| name.to_string());
            sites.push(Site {
                addr: FileAddr(addr),
                function,
                file,
                line,
                inlined,
            });
        }
    }
    if sites.is_empty()
        && let Some(addr) = symbols.function_addr(name)
    {
        sites.push(Site {
            addr: FileAddr(addr),
            function: name.to_string(),
            file: String::new(),
            line: 0,
            inlined: false,
        });
    }
    if sites.is_empty() {
        let mut known: Vec<&str> = symbols.function_names().collect();
        if let Some(index) = dwarf.and_then(|d| d.functions.get()) {
            known.extend(index.by_name.keys().map(String::as_str));
        }
        return Err(SymbolError::UnknownFunction {
            name: name.to_string(),
            binary: binary.to_path_buf(),
            hint: similar_names(name, known),
        });
    }
    sites.sort_by_key(|s| s.addr);
    sites.dedup_by_key(|s| s.addr);
    Ok(sites)
}

/// "; did you mean: a, b" with up to 5 names that contain `name` or are contained in it,
/// ignoring case; the closest in length first.
pub(crate) fn similar_names<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    let q = name.to_ascii_lowercase();
    let mut picks: Vec<&str> = known
        .into_iter()
        .filter(|k| {
            let lower = k.to_ascii_lowercase();
            *k != name && (lower.contains(&q) || (lower.len() >= 3 && q.contains(&lower)))
        })
        .collect();
    picks.sort_by_key(|k| (k.len().abs_diff(name.len()), *k));
    picks.dedup();
    picks.truncate(5);
    if picks.is_empty() {
        String::new()
    } else {
        format!("; did you mean: {}", picks.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_names_are_substrings_ignoring_case() {
        let known = ["process_order", "Process", "main", "processor_init", "x"];
        assert_eq!(
            similar_names("process", known),
            "; did you mean: Process, process_order, processor_init"
        );
        assert_eq!(similar_names("zzz", known), "");
    }
}
