//! scry's engine. See docs/architecture.md.
pub mod addr;
pub mod arch;
pub mod debuginfo;
pub mod plan;
pub mod procfs;
pub mod ptrace;
pub mod regs;
pub mod template;
