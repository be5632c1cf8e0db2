//! Instruction-level work for x86-64: deciding how the instruction displaced by an int3 runs,
//! and building its out-of-line copy.

pub mod emulate;
pub mod relocate;
