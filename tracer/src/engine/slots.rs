//! Pages of out-of-line slots in the target.
//!
//! A slot holds one displaced instruction, relocated, and a jump back. Slots must lie within
//! ±2 GiB of the code they came from (rel32 jumps and RIP-relative operands), so pages are
//! mapped near each module on demand, by a syscall injected into the thread that hit (see
//! inject.rs). Pages are never unmapped: a thread, or a signal frame on some thread's stack,
//! may still point into one. They stay in the target after detach (one 4 KiB anonymous r-x
//! page per module probed), as the kernel's own uprobe trampolines do.

use super::core::Engine;
use crate::arch::relocate::{self, SLOT_SIZE, SlotLayout};
use crate::ptrace::Tid;
use crate::ptrace::mem::PAGE;

/// Farthest a slot may be from the code it serves. Kept well inside ±2 GiB so RIP-relative
/// operands reaching a little beyond the instruction still fit.
pub const MAX_DISTANCE: u64 = (1 << 31) - (64 << 20);

/// A built slot: its layout and where the original instruction's successor is.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SlotInfo {
    pub layout: SlotLayout,
    pub next: u64,
}

#[derive(Default)]
pub(crate) struct Slots {
    pages: Vec<Page>,
    /// A `syscall` instruction in the target, for injected calls.
    pub gadget: Option<u64>,
}

struct Page {
    start: u64,
    used: u64,
}

impl Slots {
    /// A free slot within reach of `near`, if an existing page has one.
    fn take(&mut self, near: u64) -> Option<u64> {
        self.pages
            .iter_mut()
            .find(|p| p.start.abs_diff(near) < MAX_DISTANCE && p.used + SLOT_SIZE <= PAGE)
            .map(|p| {
                let slot = p.start + p.used;
                p.used += SLOT_SIZE;
                slot
            })
    }

    fn add_page(&mut self, start: u64) {
        self.pages.push(Page { start, used: 0 });
    }
}

impl Engine {
    /// The slot for the breakpoint at `addr`, building it (and mapping a page, using the stopped
    /// thread `tid`) if needed.
    pub(crate) fn ensure_slot(&mut self, addr: u64, tid: Tid, regs: &libc::user_regs_struct) -> Result<SlotLayout, String> {
        if let Some(info) = self.slot_of.get(&addr) {
            return Ok(info.layout);
        }
        let (displaced, near) = match self.bps.get(&addr) {
            Some(bp) => (bp.displaced.clone(), bp.near),
            None => return Err("no breakpoint there".into()),
        };
        let slot = match self.slots.take(near) {
            Some(s) => s,
            None => {
                let page = super::inject::map_page_near(self, tid, regs, near)?;
                self.stats.slot_pages += 1;
                self.slots.add_page(page);
                self.slots.take(near).ok_or("a new slot page is out of reach")?
            }
        };
        let (code, layout) = relocate::build_slot(&displaced, slot).map_err(|e| e.to_string())?;
        self.code.write(slot, &code).map_err(|e| format!("writing the slot at {slot:#x} failed: {e}"))?;
        self.slot_of.insert(addr, SlotInfo { layout, next: displaced.insn.next_ip() });
        Ok(layout)
    }

    /// If `rip` is inside a slot, where the thread would be in the original code: the original
    /// instruction (not yet run) or the one after it (done). `None` while it is in the middle
    /// of a multi-instruction sequence (a relocated call pushing its return address): it must
    /// run a few more instructions first.
    pub(crate) fn slot_exit(&self, rip: u64) -> Option<Option<u64>> {
        for (addr, info) in &self.slot_of {
            let layout = &info.layout;
            if layout.start <= rip && rip < layout.start + layout.len {
                return Some(if rip == layout.start {
                    Some(*addr)
                } else if rip == layout.start + layout.body_len {
                    Some(info.next)
                } else {
                    None
                });
            }
        }
        None
    }
}
