//! scry's engine. See docs/architecture.md.
pub mod addr;
pub mod debuginfo;
pub mod plan;
pub mod regs;
pub mod template;
