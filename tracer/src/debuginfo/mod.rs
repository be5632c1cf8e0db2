//! The symbol layer: ELF and DWARF of one module, through object + gimli + addr2line.
//!
//! The public API below is the contract the engine codes against; signatures change only
//! additively. The work is split into small modules:
//!
//! - `loader`: reads the ELF (build-id, segments, entry) and finds the DWARF (embedded, by
//!   build-id, by .gnu_debuglink), refusing debug files whose build-id does not match.
//! - `symtab`: the ELF symbol tables (.symtab, .dynsym), usable without DWARF.
//! - `dwarf`: the loaded DWARF, its units, and helpers to follow DIE references and names.
//! - `scope`: per-unit trees of subprograms, inlined subroutines and lexical blocks.
//! - `lines`: line tables, source-path matching and `file:line` resolution.
//! - `functions`: function entries (after the prologue, like gdb) and inlined copies.
//! - `vars`: lowering a value path at a pc into a [`ValuePlan`].
//! - `types`: DWARF types lowered into [`TypeDesc`], member lookup.
//! - `place`: DWARF location expressions lowered into value-machine code ([`Place`]).
//! - `locals`: the variables visible at a pc, like gdb's `info args` / `info locals`
//!   ([`VarInfo`]).
//! - `typegraph`: the type graph ([`TypeRef`], [`TypeKind`]) and gdb-style type names.
//! - `cfa`: the canonical frame address rule at a pc (.eh_frame, then .debug_frame).
//!
//! Everything expensive is built on first use (per unit where possible) and cached, so
//! loading a module costs one read of the file plus unit headers.

mod callsite;
mod cfa;
mod dwarf;
mod functions;
mod lines;
mod loader;
mod locals;
mod place;
mod scope;
mod symtab;
mod typegraph;
mod types;
mod vars;

pub use callsite::{CallSite, CallSiteParam};
pub use locals::{VarInfo, VarKind};
pub use place::Place;
pub use typegraph::{
    Discriminant, Encoding, Member, StructKind, TypeKind, TypeRef, Variant, VariantInfo,
};

use crate::addr::{Bias, FileAddr};
use crate::plan::{TypeDesc, ValuePlan};
use crate::template::ValuePath;
use std::path::{Path, PathBuf};

/// Where to look for separate debug files (`/usr/lib/debug` by default, like gdb's
/// `debug-file-directory`).
#[derive(Clone, Debug)]
pub struct DebugSearch {
    /// Roots searched for `.build-id/xx/yyyy.debug` and for debuglink files.
    pub debug_dirs: Vec<PathBuf>,
}

impl Default for DebugSearch {
    fn default() -> Self {
        DebugSearch {
            debug_dirs: vec![PathBuf::from("/usr/lib/debug")],
        }
    }
}

/// Where a module's DWARF came from.
#[derive(Clone, Debug, PartialEq)]
pub enum DebugSource {
    /// The binary itself carries .debug_info.
    Embedded,
    /// A separate file found under `<dir>/.build-id/xx/yyyy.debug`.
    BuildId(PathBuf),
    /// A separate file named by .gnu_debuglink.
    DebugLink(PathBuf),
    /// No DWARF: only ELF symbol tables (function probes only; values from registers).
    None,
}

/// A loadable segment of the ELF file (for the load bias).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Segment {
    /// p_vaddr: where the file wants the segment.
    pub vaddr: u64,
    /// p_offset: where the segment's bytes are in the file.
    pub offset: u64,
    /// p_filesz: bytes backed by the file.
    pub filesz: u64,
    /// p_memsz: bytes in memory (the rest is zero-filled).
    pub memsz: u64,
    /// PF_X is set.
    pub executable: bool,
}

/// One address a location resolved to, with what it is.
#[derive(Clone, Debug, PartialEq)]
pub struct Site {
    /// Where to plant, as a file address.
    pub addr: FileAddr,
    /// The function the site is in (the inlined function's name for an inlined copy).
    pub function: String,
    /// The source file, as DWARF names it (full path when known).
    pub file: String,
    /// The line.
    pub line: u32,
    /// True when the site is in an inlined copy.
    pub inlined: bool,
}

/// The source position of an address.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceLoc {
    /// The innermost function (an inlined function's name when pc is in an inlined copy).
    pub function: Option<String>,
    /// The source file, full path when DWARF gives one.
    pub file: Option<String>,
    /// The line.
    pub line: Option<u32>,
}

/// The GNU build-id of the ELF file at `path`, hex; None if it has none or cannot be read.
pub fn build_id_of_file(path: &Path) -> Option<String> {
    use object::Object;
    let data = std::fs::read(path).ok()?;
    let file = object::File::parse(&*data).ok()?;
    let id = file.build_id().ok().flatten()?;
    Some(id.iter().map(|b| format!("{b:02x}")).collect())
}

/// Errors of the symbol layer. Each message names what was looked for and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum SymbolError {
    /// The file could not be read.
    #[error("cannot read {path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// The file is not an ELF this layer understands.
    #[error("cannot parse {path} as ELF: {detail}")]
    Elf { path: PathBuf, detail: String },
    /// The DWARF is malformed or uses a form gimli cannot read.
    #[error("DWARF error in {path}: {detail}")]
    Dwarf { path: PathBuf, detail: String },
    /// A separate debug file was found but belongs to another build: refused.
    #[error(
        "the debug file {debug} does not belong to the running {binary}: its build-id is {found}, the binary's is {expected}. Install the debug info built with this binary (or pass --debug-dir to where it is)"
    )]
    BuildIdMismatch {
        binary: PathBuf,
        debug: PathBuf,
        expected: String,
        found: String,
    },
    /// The request needs DWARF and the module has none.
    #[error(
        "{binary} has no DWARF debug info, so {what} needs it. Looked in: the binary itself{looked}. Rebuild with -g, install its debug package, or pass --debug-dir DIR holding .build-id/xx/yyyy.debug; function probes without DWARF still work from the ELF symbol table"
    )]
    NoDebugInfo {
        binary: PathBuf,
        what: String,
        looked: String,
    },
    /// No compilation unit has a source file matching the given path suffix.
    #[error("no source file matching '{file}' in {binary}{hint}")]
    UnknownFile {
        file: String,
        binary: PathBuf,
        hint: String,
    },
    /// The file is known but the line has no code.
    #[error(
        "{file}:{line} has no code (comments, blank lines and declarations compile to nothing){hint}"
    )]
    NoCodeAtLine {
        file: String,
        line: u32,
        hint: String,
    },
    /// Neither DWARF nor the ELF symbol tables know the function.
    #[error("no function named '{name}' in {binary}{hint}")]
    UnknownFunction {
        name: String,
        binary: PathBuf,
        hint: String,
    },
    /// No variable of that name is visible at the pc.
    #[error("'{name}' is not in scope at {at}{hint}")]
    UnknownVariable {
        name: String,
        at: String,
        hint: String,
    },
    /// The value path does not fit the variable's type (the message names the fix).
    #[error("{path}: {detail}")]
    BadPath { path: String, detail: String },
    /// A DWARF construct this first cut does not lower yet.
    #[error("{what} is not supported yet: {detail}")]
    Unsupported { what: String, detail: String },
}

/// The symbols of one module (an executable or shared library file).
///
/// `Send + Sync`: the engine may share one behind an `Arc` between threads; lazily built
/// indexes live in `OnceLock`s and addr2line's (single-threaded) context behind a `Mutex`.
pub struct ModuleSymbols {
    /// The file this was loaded from.
    path: PathBuf,
    /// GNU build-id, lower-case hex.
    build_id: Option<String>,
    /// Where the DWARF came from.
    debug_source: DebugSource,
    /// The separate debug files tried, each as ", path" (for `NoDebugInfo::looked`).
    looked: String,
    /// PT_LOAD segments.
    segments: Vec<Segment>,
    /// ET_DYN.
    is_dyn: bool,
    /// e_entry.
    entry: u64,
    /// .symtab and .dynsym.
    symbols: symtab::SymbolTable,
    /// Call frame information (.eh_frame of the binary, .debug_frame of either file).
    frames: cfa::FrameTables,
    /// The DWARF, when there is some.
    dwarf: Option<dwarf::DwarfData>,
    /// Where the module's thread-local block is (PT_TLS; static only for the executable).
    tls: place::Tls,
}

impl ModuleSymbols {
    /// Loads the ELF at `path`, finds its DWARF (embedded, by build-id, by debuglink).
    pub fn load(path: &Path, search: &DebugSearch) -> Result<ModuleSymbols, SymbolError> {
        loader::load(path, search)
    }
    /// The file this was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The GNU build-id, hex.
    pub fn build_id(&self) -> Option<&str> {
        self.build_id.as_deref()
    }
    /// Where the DWARF came from.
    pub fn debug_source(&self) -> &DebugSource {
        &self.debug_source
    }
    /// True if lines and variables can be resolved.
    pub fn has_dwarf(&self) -> bool {
        self.dwarf.is_some()
    }
    /// The PT_LOAD segments.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }
    /// True for ET_DYN (PIE executables and shared libraries).
    pub fn is_dyn(&self) -> bool {
        self.is_dyn
    }
    /// e_entry.
    pub fn entry(&self) -> FileAddr {
        FileAddr(self.entry)
    }
    /// The address of a symbol (.symtab, then .dynsym).
    pub fn symbol_addr(&self, name: &str) -> Option<FileAddr> {
        self.symbols.addr_of(name).map(FileAddr)
    }
    /// The function symbol containing `addr` and the offset into it.
    pub fn symbol_for(&self, addr: FileAddr) -> Option<(String, u64)> {
        self.symbols
            .function_at(addr.0)
            .map(|(name, off)| (name.to_string(), off))
    }
    /// The data symbol (a global or static object) containing `addr`, and the offset into it.
    pub fn data_symbol_for(&self, addr: FileAddr) -> Option<(String, u64)> {
        self.symbols
            .data_at(addr.0)
            .map(|(name, off)| (name.to_string(), off))
    }
    /// Every address that starts `file:line` (one per function instance / block).
    pub fn resolve_line(&self, file: &str, line: u32) -> Result<Vec<Site>, SymbolError> {
        match &self.dwarf {
            Some(d) => lines::resolve_line(d, &self.frames, &self.path, file, line),
            None => Err(self.no_debug_info("a line probe (file.c:LINE)")),
        }
    }
    /// Every entry of function `name` (after the prologue; inlined copies too).
    pub fn resolve_function(&self, name: &str) -> Result<Vec<Site>, SymbolError> {
        functions::resolve_function(
            self.dwarf.as_ref(),
            &self.frames,
            &self.symbols,
            &self.path,
            name,
        )
    }
    /// `name@entry` (`returns == false`): the first instruction of each out-of-line copy of
    /// the function; `name@return`: every way out of it — each `ret`, and each jump that
    /// leaves it (a tail call) — found by decoding the function's code from the file.
    pub fn resolve_function_bounds(
        &self,
        name: &str,
        returns: bool,
    ) -> Result<Vec<Site>, SymbolError> {
        let sites = self.resolve_function(name)?;
        let data = std::fs::read(&self.path).map_err(|cause| SymbolError::Io {
            path: self.path.clone(),
            cause,
        })?;
        let mut out: Vec<Site> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for s in sites.iter().filter(|s| !s.inlined) {
            let Some((start, end)) = self.symbols.function_bounds(s.addr.0) else {
                continue;
            };
            if !seen.insert(start) {
                continue;
            }
            let site = |addr: u64| {
                let loc = self.describe(FileAddr(addr));
                Site {
                    addr: FileAddr(addr),
                    function: s.function.clone(),
                    file: loc.file.unwrap_or_default(),
                    line: loc.line.unwrap_or(0),
                    inlined: false,
                }
            };
            if !returns {
                out.push(site(start));
                continue;
            }
            let Some(code) = self.file_bytes(&data, start, end - start) else {
                continue;
            };
            let mut dec =
                iced_x86::Decoder::with_ip(64, code, start, iced_x86::DecoderOptions::NONE);
            while dec.can_decode() {
                let insn = dec.decode();
                let leaves = match insn.flow_control() {
                    iced_x86::FlowControl::Return => true,
                    iced_x86::FlowControl::UnconditionalBranch => {
                        let t = insn.near_branch_target();
                        insn.is_jmp_short_or_near() && (t < start || t >= end)
                    }
                    _ => false,
                };
                if leaves {
                    out.push(site(insn.ip()));
                }
            }
        }
        if out.is_empty() {
            return Err(SymbolError::Unsupported {
                what: format!("{name}@{}", if returns { "return" } else { "entry" }),
                detail: "the function's bounds are not in the symbol table (no size), so its \
                         ways out cannot be found; probe its return lines instead"
                    .into(),
            });
        }
        Ok(out)
    }

    /// `len` bytes of the file at file address `addr` (from the PT_LOAD segment holding it).
    fn file_bytes<'d>(&self, data: &'d [u8], addr: u64, len: u64) -> Option<&'d [u8]> {
        let seg = self
            .segments
            .iter()
            .find(|s| s.vaddr <= addr && addr + len <= s.vaddr + s.filesz)?;
        let off = (seg.offset + addr - seg.vaddr) as usize;
        data.get(off..off + len as usize)
    }

    /// Function, file and line of `pc` (the innermost inlined function).
    pub fn describe(&self, pc: FileAddr) -> SourceLoc {
        let mut loc = match &self.dwarf {
            Some(d) => d.describe(pc.0),
            None => SourceLoc {
                function: None,
                file: None,
                line: None,
            },
        };
        if loc.function.is_none() {
            loc.function = self
                .symbols
                .function_at(pc.0)
                .map(|(name, _)| name.to_string());
        }
        loc
    }
    /// Lowers a value path at `pc` into a plan and the type for rendering.
    pub fn compile_value(
        &self,
        pc: FileAddr,
        path: &ValuePath,
        bias: Bias,
    ) -> Result<(ValuePlan, TypeDesc), SymbolError> {
        if let crate::template::PathRoot::Reg(reg) = path.root {
            return vars::register_value(reg, path);
        }
        let Some(d) = &self.dwarf else {
            return Err(self.no_debug_info(&format!("the value '{}'", path.text)));
        };
        let at = || self.describe_short(pc);
        let ctx = vars::Ctx {
            dwarf: d,
            frames: &self.frames,
            symbols: &self.symbols,
            bias,
            at: &at,
        };
        vars::compile_value(&ctx, pc.0, path)
    }

    /// The call frame tables and the DWARF (if any), for the stack unwinder (`crate::unwind`).
    pub(crate) fn unwind_parts(&self) -> (&cfa::FrameTables, Option<&dwarf::DwarfData>) {
        (&self.frames, self.dwarf.as_ref())
    }

    /// The variable `name` refers to at `pc`, and where its value is, for a module loaded
    /// with `bias`. Looked up like gdb: the innermost block at `pc` outwards to the function
    /// (for an inlined copy, the inlined function), then the unit's file-level variables,
    /// then every unit's globals; an `extern` declaration resolves to its definition (or the
    /// ELF symbol). One difference from gdb, following C scope (and Delve): a local of the
    /// function's outermost block declared on a later line than `pc`'s is not yet in scope,
    /// so the name refers to an outer variable (gdb would show the uninitialised local).
    pub fn variable(&self, pc: FileAddr, name: &str, bias: Bias) -> Result<VarInfo, SymbolError> {
        let Some(d) = &self.dwarf else {
            return Err(self.no_debug_info(&format!("the variable '{name}'")));
        };
        let not_found = |hint: String| SymbolError::UnknownVariable {
            name: name.to_string(),
            at: self.describe_short(pc),
            hint,
        };
        match self.locals_env(d, bias).variable(pc.0, name) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => {
                let names = self.names_in_scope(pc);
                let hint = if names.is_empty() {
                    String::new()
                } else {
                    format!("; in scope: {}", names.join(", "))
                };
                Err(not_found(hint))
            }
            Err(SymbolError::UnknownVariable { hint, .. }) => Err(not_found(hint)),
            Err(e) => Err(e),
        }
    }

    /// The variables visible at `pc` as gdb's `info args` then `info locals` list them for
    /// the innermost frame: the function's parameters in declaration order (an inlined
    /// copy's own), then the locals of each block from the innermost outwards, including
    /// function-level statics and variables that exist only in the source (optimized out).
    /// An outer variable hidden by an inner one of the same name is marked `shadowed`.
    /// Empty without DWARF or outside any function.
    pub fn variables_at(&self, pc: FileAddr, bias: Bias) -> Vec<VarInfo> {
        match &self.dwarf {
            Some(d) => self.locals_env(d, bias).variables_at(pc.0),
            None => Vec::new(),
        }
    }

    /// The arguments and locals of inline frame `inline_depth` at `pc`, as gdb lists them
    /// after `up`: 0 is the innermost function or inlined copy (`variables_at`), 1 the
    /// function that copy was inlined into (its blocks around the inlined call), and so on.
    /// None if `pc` has fewer inline levels (the next frame is a real caller with its own pc).
    pub fn variables_in_frame(
        &self,
        pc: FileAddr,
        inline_depth: usize,
        bias: Bias,
    ) -> Option<Vec<VarInfo>> {
        self.locals_env(self.dwarf.as_ref()?, bias)
            .variables_in_frame(pc.0, inline_depth)
    }

    /// The names visible at `pc` (locals and arguments, then the unit's file-level
    /// variables), for "not in scope" messages.
    pub fn names_in_scope(&self, pc: FileAddr) -> Vec<String> {
        match &self.dwarf {
            Some(d) => self.locals_env(d, Bias(0)).names_in_scope(pc.0),
            None => Vec::new(),
        }
    }

    /// The call whose return address is `return_pc`: the callee it names and what it passed
    /// in each argument register (to recover a callee's `DW_OP_entry_value`).
    pub fn call_site(&self, return_pc: FileAddr, bias: Bias) -> Option<CallSite> {
        callsite::call_site_at(
            self.dwarf.as_ref()?,
            &self.frames,
            bias,
            self.tls,
            return_pc.0,
        )
    }

    /// The name calls name the out-of-line function containing `pc` by (its linkage name,
    /// else its name), unless a tail call somewhere in this module reaches it: then a
    /// return address does not tell which call entered it, and None is returned.
    pub fn entered_function(&self, pc: FileAddr) -> Option<String> {
        let d = self.dwarf.as_ref()?;
        for ui in d.units_for_pc(pc.0) {
            let Ok(tree) = d.scopes(ui) else { continue };
            if let Some(si) = tree.subprogram_at(pc.0) {
                let key = callsite::function_key(d, tree.die_id(ui, si))?;
                let tail = d.tail_callees.get_or_init(|| callsite::tail_callees(d));
                return (!tail.contains(&key)).then_some(key);
            }
        }
        None
    }

    /// True when type `t` comes from a Rust unit: its values are shown in Rust's syntax
    /// (`values::Point {x: 1, y: 2}`, `[1, 2]`, `values::Color::Blue`), as gdb does.
    pub fn is_rust(&self, t: TypeRef) -> bool {
        match (&self.dwarf, typegraph::die_of(t)) {
            (Some(d), Some(id)) => d.units[id.unit].lang == dwarf::Lang::Rust,
            _ => false,
        }
    }

    /// What type `t` is (one level: members, targets and elements are further handles).
    pub fn type_kind(&self, t: TypeRef) -> TypeKind {
        match &self.dwarf {
            Some(d) => typegraph::type_kind(d, t),
            None => TypeKind::Void,
        }
    }

    /// The name of type `t` as gdb's `whatis` prints it: `int`, `struct order *`,
    /// `const char *`, `int (*)[4]`, `std::vector<int, std::allocator<int> >`,
    /// `alloc::string::String`.
    pub fn type_name(&self, t: TypeRef) -> String {
        match &self.dwarf {
            Some(d) => typegraph::type_name(d, typegraph::die_of(t)),
            None => "void".to_string(),
        }
    }

    /// The size of type `t` in bytes (None: void, incomplete, or an array of unknown
    /// length).
    pub fn type_size(&self, t: TypeRef) -> Option<u64> {
        typegraph::type_size(self.dwarf.as_ref()?, t)
    }

    /// The type named `name`, for casts and `sizeof`: base types and typedefs (`int`,
    /// `unsigned long`, `size_t`), `struct X` / `union X` / `enum X`, and qualified C++ and
    /// Rust names (`Shape`, `ns::Widget`, `alloc::string::String`). Pointer suffixes are the
    /// caller's. `void` is a type.
    pub fn find_type(&self, name: &str) -> Option<TypeRef> {
        typegraph::find_type(self.dwarf.as_ref()?, name)
    }

    /// The size of a pointer (x86-64 only).
    pub fn pointer_size(&self) -> u64 {
        8
    }

    /// The lookup context of the locals module.
    fn locals_env<'a>(&'a self, d: &'a dwarf::DwarfData, bias: Bias) -> locals::Env<'a> {
        locals::Env {
            dwarf: d,
            frames: &self.frames,
            symbols: &self.symbols,
            bias,
            tls: self.tls,
        }
    }

    /// The `NoDebugInfo` error for `what`, listing where separate debug files were sought.
    fn no_debug_info(&self, what: &str) -> SymbolError {
        SymbolError::NoDebugInfo {
            binary: self.path.clone(),
            what: what.to_string(),
            looked: self.looked.clone(),
        }
    }

    /// `loop.c:42 in process_order`, for error messages about a pc.
    fn describe_short(&self, pc: FileAddr) -> String {
        let loc = self.describe(pc);
        let mut s = match (&loc.file, loc.line) {
            (Some(f), Some(l)) => format!("{}:{l}", f.rsplit('/').next().unwrap_or(f)),
            _ => format!("{pc}"),
        };
        if let Some(f) = &loc.function {
            s.push_str(" in ");
            s.push_str(f);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine shares modules between threads; keep that possible.
    #[test]
    fn module_symbols_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<ModuleSymbols>();
    }
}
