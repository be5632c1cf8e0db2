//! Fault injection for tests: `SCRY_FAULT=engine-panic-at-trap:N` makes the engine thread
//! panic while serving its Nth trap, so tests can check that a bug in scry still leaves the
//! target intact (every byte restored, every thread detached). Unset, it costs one load and
//! compare per trap.

use std::sync::OnceLock;

fn panic_at_trap() -> Option<u64> {
    static AT: OnceLock<Option<u64>> = OnceLock::new();
    *AT.get_or_init(|| {
        std::env::var("SCRY_FAULT")
            .ok()?
            .strip_prefix("engine-panic-at-trap:")?
            .parse()
            .ok()
    })
}

/// Panics if fault injection asks for it at this trap count.
pub(crate) fn at_trap(traps: u64) {
    if panic_at_trap() == Some(traps) {
        panic!("SCRY_FAULT: injected engine panic at trap {traps}");
    }
}
