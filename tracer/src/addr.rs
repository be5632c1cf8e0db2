//! Address newtypes. A debugger mixes two address spaces: addresses as the ELF file and its
//! DWARF state them (`FileAddr`), and addresses in the running process (`RuntimeAddr`). They
//! differ by the load bias of the module's mapping (`Bias`). Keeping them apart in the type
//! system makes "forgot to add the bias" a compile error instead of a planted int3 in the wrong
//! place.

use std::fmt;

/// An address as written in an ELF file or its DWARF (a virtual address before relocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FileAddr(pub u64);

/// An address in the running target's address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RuntimeAddr(pub u64);

/// The difference between where a module is loaded and where its file says it is
/// (0 for a non-PIE executable, the mapping base for a PIE or shared library).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Bias(pub u64);

impl FileAddr {
    /// Where this file address lives in a module loaded with `bias`.
    pub fn to_runtime(self, bias: Bias) -> RuntimeAddr {
        RuntimeAddr(self.0.wrapping_add(bias.0))
    }
}

impl RuntimeAddr {
    /// The file address this runtime address corresponds to in a module loaded with `bias`.
    pub fn to_file(self, bias: Bias) -> FileAddr {
        FileAddr(self.0.wrapping_sub(bias.0))
    }
    /// This address moved by `delta` bytes.
    pub fn offset(self, delta: i64) -> RuntimeAddr {
        RuntimeAddr(self.0.wrapping_add(delta as u64))
    }
}

impl fmt::Display for FileAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::Display for RuntimeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::Display for Bias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}
