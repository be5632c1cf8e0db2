//! scry's engine. See docs/architecture.md.
pub mod addr;
pub mod arch;
pub mod debuginfo;
pub mod engine;
mod fault;
mod fetch;
mod hit;
pub mod location;
pub mod modules;
pub mod plan;
pub mod procfs;
pub mod ptrace;
pub mod quota;
pub mod regs;
pub mod session;
pub mod template;
pub mod unwind;
pub mod value;

pub use engine::{DetachReport, Event, ExecPolicy, HitRecord, ProbeEnd, ProbeId};
pub use session::{
    ProbeInfo, ProbeSpec, RenderedHit, Session, SessionError, SessionOptions, SnapshotSpec,
};
pub mod expr;
pub mod snapshot;
pub mod vm;
