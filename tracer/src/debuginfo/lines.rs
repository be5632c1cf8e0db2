//! Line tables and `file:line` resolution.
//!
//! A source line maps to every address that starts it: one per inlined copy, one per
//! lexical block. Within one block only the lowest address is kept (gdb's rule), so one
//! execution of the line gives one hit. A line that starts a function (its opening line)
//! moves past the prologue exactly as a function probe does.

use super::cfa::FrameTables;
use super::dwarf::DwarfData;
use super::functions::post_prologue;
use super::{Site, SymbolError};
use crate::addr::FileAddr;
use gimli::Reader;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// One row of a line table (end-of-sequence rows are kept as `Sequence::end`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Row {
    /// The address the row starts at.
    pub addr: u64,
    /// The file index (into `DwarfData::files`).
    pub file: u32,
    /// The line (0 = no line).
    pub line: u32,
    /// True if the row is a recommended breakpoint location.
    pub is_stmt: bool,
    /// True if gdb keeps the row in its line table (see `GdbLineTable`). Rows gdb drops are
    /// zero-length markers, chiefly a caller's line at the very address where code of another
    /// file (an inlined header function) starts; planting there would hit twice per line.
    pub visible: bool,
}

/// One contiguous run of rows, ending at `end` (the end_sequence address).
#[derive(Clone, Debug)]
pub(crate) struct Sequence {
    /// The first row's address.
    pub start: u64,
    /// The end_sequence address (one past the last byte).
    pub end: u64,
    /// The rows in address order. Rows at `end` have no code and are not used.
    pub rows: Vec<Row>,
}

/// The decoded line program of one unit.
#[derive(Debug, Default)]
pub(crate) struct LineTable {
    /// Sequences sorted by start address (sequences of discarded code removed).
    pub seqs: Vec<Sequence>,
}

impl LineTable {
    /// Runs the line program of unit `index`.
    pub fn build(d: &DwarfData, index: usize) -> gimli::Result<LineTable> {
        let unit = d.unit(index);
        let Some(program) = unit.line_program.clone() else {
            return Ok(LineTable::default());
        };
        // gdb groups rows by file *name*; DWARF 5 lists the primary file twice (0 and 1).
        let files = d.files(index);
        let mut ids: HashMap<&str, usize> = HashMap::new();
        let file_ids: Vec<usize> = files
            .iter()
            .map(|f| {
                let n = ids.len();
                *ids.entry(f.as_str()).or_insert(n)
            })
            .collect();
        let mut gdb = GdbLineTable::default();
        let mut seqs = Vec::new();
        let mut rows_of_seq: Vec<Row> = Vec::new();
        let mut discriminators: Vec<u64> = Vec::new();
        let mut rows = program.rows();
        while let Some((_, row)) = rows.next_row()? {
            if row.end_sequence() {
                let start = rows_of_seq.first().map_or(row.address(), |r: &Row| r.addr);
                // Code the linker discarded keeps its line rows at address 0 (or a tombstone).
                if start != 0 && !unit.header.is_tombstone_address(start) && start < row.address() {
                    seqs.push(Sequence {
                        start,
                        end: row.address(),
                        rows: std::mem::take(&mut rows_of_seq),
                    });
                    gdb.sequence(&mut seqs, &file_ids, &discriminators);
                }
                rows_of_seq.clear();
                discriminators.clear();
                continue;
            }
            rows_of_seq.push(Row {
                addr: row.address(),
                file: row.file_index() as u32,
                line: row.line().map_or(0, |l| l.get() as u32),
                is_stmt: row.is_stmt(),
                visible: false,
            });
            discriminators.push(row.discriminator());
        }
        seqs.sort_by_key(|s| s.start);
        Ok(LineTable { seqs })
    }

    /// The row gdb reports for `pc`: the last row gdb keeps at or before pc, preferring an
    /// `is_stmt` row at the same address.
    pub fn row_at(&self, pc: u64) -> Option<Row> {
        let i = self
            .seqs
            .partition_point(|s| s.start <= pc)
            .checked_sub(1)?;
        let seq = &self.seqs[i];
        if pc >= seq.end {
            return None;
        }
        let j = seq.rows.partition_point(|r| r.addr <= pc);
        let mut kept = seq.rows[..j].iter().rev().filter(|r| r.visible);
        let row = *kept.next()?;
        let stmt = std::iter::once(&row)
            .chain(kept.take_while(|r| r.addr == row.addr))
            .find(|r| r.is_stmt);
        Some(*stmt.unwrap_or(&row))
    }
}

/// A replay of how gdb 13 builds its line table from a line program (gdb/dwarf2/read.c
/// `lnp_state_machine::record_line`, gdb/buildsym.c `record_line`), to know which rows gdb
/// keeps: gdb's `break FILE:LINE` only sees those, and matching it keeps "one hit per
/// execution of the line" in optimized code.
///
/// - gdb keeps one table per source file. When the program switches files at address X,
///   gdb ends the previous file's table at X, which deletes that file's rows at X.
/// - A non-statement row of a new file at an address that already has a statement row is
///   ignored (and then ends nothing); rows with line 0 are ignored.
/// - A row repeating the previous row's file and line is dropped if that line has had a
///   non-zero discriminator.
/// - end_sequence ends the current file's table at the end address.
#[derive(Default)]
struct GdbLineTable {
    /// Per file id: gdb's table for that file so far.
    tables: HashMap<usize, Vec<GdbEntry>>,
}

/// An entry of gdb's per-file table: address, line, and the row it came from as
/// (sequence, index) — None for the end markers gdb inserts.
type GdbEntry = (u64, u32, Option<(usize, usize)>);

impl GdbLineTable {
    /// Ends file `file`'s table at `pc`: drops its trailing rows at `pc`, adds an end marker.
    fn finish(&mut self, seqs: &mut [Sequence], file: usize, pc: u64) {
        let table = self.tables.entry(file).or_default();
        let mut last_line = None;
        while let Some(&(addr, line, id)) = table.last() {
            last_line = Some(line);
            if addr != pc {
                break;
            }
            table.pop();
            if let Some((s, r)) = id {
                seqs[s].rows[r].visible = false;
            }
        }
        if last_line.is_some_and(|l| l != 0) {
            table.push((pc, 0, None));
        }
    }

    /// Replays the last sequence of `seqs` (its rows' `visible` flags are set here).
    fn sequence(&mut self, seqs: &mut [Sequence], file_ids: &[usize], discriminators: &[u64]) {
        let s = seqs.len() - 1;
        let mut last_file: Option<usize> = None;
        let mut last_line = 0u32;
        let mut last_address: Option<u64> = None;
        let mut stmt_at_address = false;
        let mut prev_line: Option<u32> = None;
        let mut line_has_discriminator = false;
        for r in 0..seqs[s].rows.len() {
            let row = seqs[s].rows[r];
            let file = file_ids
                .get(row.file as usize)
                .copied()
                .unwrap_or(usize::MAX - row.file as usize);
            let disc = discriminators.get(r).copied().unwrap_or(0) != 0;
            if prev_line != Some(row.line) {
                line_has_discriminator = disc;
            } else {
                line_has_discriminator |= disc;
            }
            prev_line = Some(row.line);
            let file_changed = last_file != Some(file);
            let ignore =
                (file_changed && last_address == Some(row.addr) && !row.is_stmt && stmt_at_address)
                    || row.line == 0;
            if file_changed
                && !ignore
                && let Some(prev) = last_file
            {
                self.finish(seqs, prev, row.addr);
            }
            if !ignore {
                if file_changed || row.line != last_line || !line_has_discriminator {
                    self.tables
                        .entry(file)
                        .or_default()
                        .push((row.addr, row.line, Some((s, r))));
                    seqs[s].rows[r].visible = true;
                }
                last_file = Some(file);
                last_line = row.line;
            }
            if last_address != Some(row.addr) {
                stmt_at_address = false;
                last_address = Some(row.addr);
            }
            stmt_at_address |= row.is_stmt;
        }
        if let Some(prev) = last_file {
            let end = seqs[s].end;
            self.finish(seqs, prev, end);
        }
    }
}

/// The full path of every file of unit `index`'s line program header, indexed by DWARF file
/// index (DWARF 4 counts from 1; index 0 then is the unit's primary file): comp_dir +
/// directory + name, like addr2line renders them.
pub(crate) fn file_names(d: &DwarfData, index: usize) -> Vec<String> {
    let unit = d.unit(index);
    let Some(program) = &unit.line_program else {
        return Vec::new();
    };
    let header = program.header();
    let comp_dir = unit
        .comp_dir
        .as_ref()
        .and_then(|c| c.to_string_lossy().ok())
        .map(|c| c.into_owned());
    let count = header.file_names().len() + usize::from(header.version() <= 4);
    (0..count)
        .map(|i| {
            let Some(file) = header.file(i as u64) else {
                return String::new();
            };
            let mut path = comp_dir.clone().unwrap_or_default();
            // Directory 0 is the compilation directory itself.
            if file.directory_index() != 0
                && let Some(dir) = file.directory(header).and_then(|v| d.attr_string(index, v))
            {
                path_push(&mut path, &dir);
            }
            if let Some(name) = d.attr_string(index, file.path_name()) {
                path_push(&mut path, &name);
            }
            path
        })
        .collect()
}

/// Appends `p` to `path` with a `/`, or replaces it when `p` is absolute.
fn path_push(path: &mut String, p: &str) {
    if p.starts_with('/') {
        *path = p.to_string();
    } else {
        if !path.is_empty() && !path.ends_with('/') {
            path.push('/');
        }
        path.push_str(p);
    }
}

/// The components of a path, lexically normalized (`.` and empty components dropped, `..`
/// applied).
fn components(p: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else {
                    out.push(c);
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// True if `query` names `full`: a suffix of it on component boundaries (`loop.c` and
/// `c/loop.c` match `/w/c/loop.c`, `oop.c` does not), or all of it when `query` is absolute.
pub(crate) fn path_matches(full: &str, query: &str) -> bool {
    let f = components(full);
    let q = components(query);
    if q.is_empty() || full.is_empty() {
        return false;
    }
    if query.starts_with('/') {
        return full.starts_with('/') && f == q;
    }
    f.len() >= q.len() && f[f.len() - q.len()..] == q[..]
}

/// Every address that starts `file:line`, one per block, sorted.
pub(crate) fn resolve_line(
    d: &DwarfData,
    frames: &FrameTables,
    binary: &Path,
    file: &str,
    line: u32,
) -> Result<Vec<Site>, SymbolError> {
    let mut any_file = false;
    // (unit, address, file index) of every is_stmt row of the line.
    let mut candidates: Vec<(usize, u64, u32)> = Vec::new();
    let mut below: Option<u32> = None;
    let mut above: Option<u32> = None;
    for ui in 0..d.units.len() {
        if !d.is_code_unit(ui) {
            continue;
        }
        let files = d.files(ui);
        let matching: Vec<bool> = files.iter().map(|f| path_matches(f, file)).collect();
        if !matching.contains(&true) {
            continue;
        }
        any_file = true;
        for seq in &d.lines(ui)?.seqs {
            for row in &seq.rows {
                if row.addr >= seq.end
                    || !row.is_stmt
                    || !row.visible
                    || row.line == 0
                    || !matching.get(row.file as usize).copied().unwrap_or(false)
                {
                    continue;
                }
                if row.line == line {
                    candidates.push((ui, row.addr, row.file));
                } else if row.line < line {
                    below = below.max(Some(row.line));
                } else {
                    above = Some(above.map_or(row.line, |a| a.min(row.line)));
                }
            }
        }
    }
    if !any_file {
        return Err(SymbolError::UnknownFile {
            file: file.to_string(),
            binary: binary.to_path_buf(),
            hint: similar_files(d, file),
        });
    }
    if candidates.is_empty() {
        let hint = match (below, above) {
            (Some(b), Some(a)) => format!("; nearest lines with code: {b} and {a}"),
            (Some(l), None) | (None, Some(l)) => format!("; nearest line with code: {l}"),
            (None, None) => String::new(),
        };
        return Err(SymbolError::NoCodeAtLine {
            file: file.to_string(),
            line,
            hint,
        });
    }

    // One site per block: the lowest address of the line in each innermost block.
    #[derive(Hash, PartialEq, Eq)]
    enum Key {
        Block(usize, usize),
        Loose(usize, u64),
    }
    let mut best: HashMap<Key, (usize, u64, u32)> = HashMap::new();
    for (ui, addr, f) in candidates {
        let key = match d.scopes(ui)?.block_at(addr) {
            Some(b) => Key::Block(ui, b),
            None => Key::Loose(ui, addr),
        };
        let slot = best.entry(key).or_insert((ui, addr, f));
        if addr < slot.1 {
            *slot = (ui, addr, f);
        }
    }

    let mut sites: Vec<Site> = Vec::new();
    for (ui, mut addr, mut f) in best.into_values() {
        let tree = d.scopes(ui)?;
        let mut site_line = line;
        // The function's opening line: plant where a function probe would (after the prologue).
        if let Some(sp) = tree.subprogram_at(addr)
            && let Some(entry) = tree.scopes[sp].entry()
        {
            let after = post_prologue(d, frames, ui, sp)?;
            if entry <= addr && addr < after {
                addr = after;
                if let Some(row) = d.lines(ui)?.row_at(addr) {
                    site_line = row.line;
                    f = row.file;
                }
            }
        }
        let (function, inlined) = function_name_at(d, ui, addr)?;
        let file_name = d.files(ui).get(f as usize).cloned().unwrap_or_default();
        sites.push(Site {
            addr: FileAddr(addr),
            function,
            file: file_name,
            line: site_line,
            inlined,
        });
    }
    sites.sort_by_key(|s| s.addr);
    sites.dedup_by_key(|s| s.addr);
    Ok(sites)
}

/// The innermost function (or inlined function) at `pc` in unit `ui`, and whether it is an
/// inlined copy.
pub(crate) fn function_name_at(
    d: &DwarfData,
    ui: usize,
    pc: u64,
) -> Result<(String, bool), SymbolError> {
    let tree = d.scopes(ui)?;
    Ok(match tree.function_at(pc) {
        Some(fi) => {
            let name = d
                .name_of(tree.die_id(ui, fi))
                .unwrap_or_else(|| "??".to_string());
            (
                name,
                tree.scopes[fi].kind == super::scope::ScopeKind::Inlined,
            )
        }
        None => ("??".to_string(), false),
    })
}

/// "; similar files: ..." for an unknown file: the same base name in other directories, then
/// names containing the stem; else a few of the module's source files.
fn similar_files(d: &DwarfData, query: &str) -> String {
    let mut all: BTreeSet<&str> = BTreeSet::new();
    let mut primaries: BTreeSet<&str> = BTreeSet::new();
    for ui in 0..d.units.len() {
        if !d.is_code_unit(ui) {
            continue;
        }
        let files = d.files(ui);
        // The unit's primary file: index 0 in DWARF 5, 1 in DWARF 4.
        let primary = if d.unit(ui).header.version() <= 4 {
            files.get(1)
        } else {
            files.first()
        };
        if let Some(p) = primary {
            primaries.insert(p);
        }
        all.extend(files.iter().filter(|f| !f.is_empty()).map(String::as_str));
    }
    let base = query
        .rsplit('/')
        .next()
        .unwrap_or(query)
        .to_ascii_lowercase();
    let stem = base.split('.').next().unwrap_or("").to_string();
    let base_of = |f: &str| f.rsplit('/').next().unwrap_or(f).to_ascii_lowercase();
    let mut picks: Vec<&str> = all.iter().copied().filter(|f| base_of(f) == base).collect();
    if !stem.is_empty() {
        picks.extend(
            all.iter()
                .copied()
                .filter(|f| base_of(f) != base && base_of(f).contains(&stem)),
        );
    }
    if picks.is_empty() {
        let some: Vec<&str> = primaries.into_iter().take(5).collect();
        return if some.is_empty() {
            String::new()
        } else {
            format!("; its source files include: {}", some.join(", "))
        };
    }
    picks.truncate(5);
    format!("; similar files: {}", picks.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_on_component_boundaries() {
        let full = "/work/x/testbins/c/loop.c";
        assert!(path_matches(full, "loop.c"));
        assert!(path_matches(full, "c/loop.c"));
        assert!(path_matches(full, "./c/loop.c"));
        assert!(path_matches(full, "/work/x/testbins/c/loop.c"));
        assert!(path_matches(
            "/work/x/./testbins/d/../c/loop.c",
            "/work/x/testbins/c/loop.c"
        ));
        assert!(!path_matches(full, "oop.c"));
        assert!(!path_matches(full, "/testbins/c/loop.c"));
        assert!(!path_matches(full, "d/loop.c"));
        assert!(!path_matches(full, ""));
    }
}
