//! Readers of /proc for a target process. No ptrace here: everything in this module works on a
//! process we are not (yet) attached to, which is what error diagnosis needs.

pub mod maps;
pub mod status;

pub use maps::{Mapping, read_maps};
pub use status::{ProcStatus, list_tasks, read_status};
