//! The symbol layer: ELF and DWARF of one module, through object + gimli + addr2line.
//!
//! STUB: the public API below is the contract the engine codes against. Bodies are being
//! written (see the symbol-layer task); signatures change only additively.

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
        DebugSearch { debug_dirs: vec![PathBuf::from("/usr/lib/debug")] }
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
    pub vaddr: u64,
    pub offset: u64,
    pub filesz: u64,
    pub memsz: u64,
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
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
}

/// Errors of the symbol layer. Each message names what was looked for and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum SymbolError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot parse {path} as ELF: {detail}")]
    Elf { path: PathBuf, detail: String },
    #[error("DWARF error in {path}: {detail}")]
    Dwarf { path: PathBuf, detail: String },
    #[error("the debug file {debug} does not belong to the running {binary}: its build-id is {found}, the binary's is {expected}. Install the debug info built with this binary (or pass --debug-dir to where it is)")]
    BuildIdMismatch { binary: PathBuf, debug: PathBuf, expected: String, found: String },
    #[error("{binary} has no DWARF debug info, so {what} needs it. Looked in: the binary itself{looked}. Rebuild with -g, install its debug package, or pass --debug-dir DIR holding .build-id/xx/yyyy.debug; function probes without DWARF still work from the ELF symbol table")]
    NoDebugInfo { binary: PathBuf, what: String, looked: String },
    #[error("no source file matching '{file}' in {binary}{hint}")]
    UnknownFile { file: String, binary: PathBuf, hint: String },
    #[error("{file}:{line} has no code (comments, blank lines and declarations compile to nothing){hint}")]
    NoCodeAtLine { file: String, line: u32, hint: String },
    #[error("no function named '{name}' in {binary}{hint}")]
    UnknownFunction { name: String, binary: PathBuf, hint: String },
    #[error("'{name}' is not in scope at {at}{hint}")]
    UnknownVariable { name: String, at: String, hint: String },
    #[error("{path}: {detail}")]
    BadPath { path: String, detail: String },
    #[error("{what} is not supported yet: {detail}")]
    Unsupported { what: String, detail: String },
}

/// The symbols of one module (an executable or shared library file).
pub struct ModuleSymbols {
    _private: (),
}

impl ModuleSymbols {
    /// Loads the ELF at `path`, finds its DWARF (embedded, by build-id, by debuglink).
    pub fn load(_path: &Path, _search: &DebugSearch) -> Result<ModuleSymbols, SymbolError> {
        todo!()
    }
    /// The file this was loaded from.
    pub fn path(&self) -> &Path {
        todo!()
    }
    /// The GNU build-id, hex.
    pub fn build_id(&self) -> Option<&str> {
        todo!()
    }
    /// Where the DWARF came from.
    pub fn debug_source(&self) -> &DebugSource {
        todo!()
    }
    /// True if lines and variables can be resolved.
    pub fn has_dwarf(&self) -> bool {
        todo!()
    }
    /// The PT_LOAD segments.
    pub fn segments(&self) -> &[Segment] {
        todo!()
    }
    /// True for ET_DYN (PIE executables and shared libraries).
    pub fn is_dyn(&self) -> bool {
        todo!()
    }
    /// e_entry.
    pub fn entry(&self) -> FileAddr {
        todo!()
    }
    /// The address of a symbol (.symtab, then .dynsym).
    pub fn symbol_addr(&self, _name: &str) -> Option<FileAddr> {
        todo!()
    }
    /// The function symbol containing `addr` and the offset into it.
    pub fn symbol_for(&self, _addr: FileAddr) -> Option<(String, u64)> {
        todo!()
    }
    /// Every address that starts `file:line` (one per function instance / block).
    pub fn resolve_line(&self, _file: &str, _line: u32) -> Result<Vec<Site>, SymbolError> {
        todo!()
    }
    /// Every entry of function `name` (after the prologue; inlined copies too).
    pub fn resolve_function(&self, _name: &str) -> Result<Vec<Site>, SymbolError> {
        todo!()
    }
    /// Function, file and line of `pc` (the innermost inlined function).
    pub fn describe(&self, _pc: FileAddr) -> SourceLoc {
        todo!()
    }
    /// Lowers a value path at `pc` into a plan and the type for rendering.
    pub fn compile_value(&self, _pc: FileAddr, _path: &ValuePath, _bias: Bias) -> Result<(ValuePlan, TypeDesc), SymbolError> {
        todo!()
    }
}
