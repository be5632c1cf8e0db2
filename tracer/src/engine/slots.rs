//! Pages of out-of-line slots in the target.
//!
//! A slot holds one displaced instruction, relocated, and a jump back. Slots must lie within
//! ±2 GiB of the code they came from (rel32 jumps and RIP-relative operands), so pages are
//! placed near each module. The work is split so the hit path does as little as possible:
//!
//! * when a probe is planted, the engine picks a free address for the page (from
//!   /proc/PID/maps), assigns the breakpoint a slot in it and encodes the slot's code;
//! * at the first hit in that page, the page is mapped at exactly that address by a syscall
//!   injected into the thread that hit (see inject.rs), and the prepared code is written.
//!
//! Pages are never unmapped: a thread, or a signal frame on some thread's stack, may still
//! point into one. They stay in the target after detach (one 4 KiB anonymous r-x page per
//! module probed), as the kernel's own uprobe trampolines do.

use super::core::Engine;
use crate::arch::relocate::{self, Displaced, SLOT_SIZE, SlotLayout};
use crate::ptrace::Tid;
use crate::ptrace::mem::PAGE;

/// Farthest a slot may be from the code it serves. Kept well inside ±2 GiB so RIP-relative
/// operands reaching a little beyond the instruction still fit.
pub const MAX_DISTANCE: u64 = (1 << 31) - (64 << 20);

/// A slot assigned to a breakpoint address: where, what to write, whether it is written.
#[derive(Clone, Debug)]
pub(crate) struct SlotInfo {
    pub layout: SlotLayout,
    /// The address after the original instruction.
    pub next: u64,
    /// The relocated code, encoded for `layout.start`.
    pub code: Vec<u8>,
    /// The page it lives in (index into `Slots::pages`).
    pub page: usize,
    /// True once the code is in the target.
    pub written: bool,
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
    mapped: bool,
    /// Mapping it failed (the reason): its slots cannot be used.
    failed: Option<String>,
}

impl Slots {
    /// A free slot within reach of `near` in a page we have (mapped or only reserved).
    fn take(&mut self, near: u64) -> Option<(u64, usize)> {
        self.pages
            .iter_mut()
            .enumerate()
            .find(|(_, p)| {
                p.failed.is_none()
                    && p.start.abs_diff(near) < MAX_DISTANCE
                    && p.used + SLOT_SIZE <= PAGE
            })
            .map(|(i, p)| {
                let slot = p.start + p.used;
                p.used += SLOT_SIZE;
                (slot, i)
            })
    }

    fn reserve(&mut self, start: u64) {
        self.pages.push(Page {
            start,
            used: 0,
            mapped: false,
            failed: None,
        });
    }

    fn is_reserved_near(&self, addr: u64) -> bool {
        self.pages.iter().any(|p| p.start.abs_diff(addr) < 2 * PAGE)
    }
}

impl Engine {
    /// At plant time: gives the breakpoint at `addr` a slot and encodes its code (reusing the
    /// slot if this address was probed before: its code is the same).
    pub(crate) fn prepare_slot(
        &mut self,
        addr: u64,
        near: u64,
        displaced: &Displaced,
    ) -> Result<(), String> {
        // Register-only instructions are carried out on the hit path: no slot at all.
        if self.slot_of.contains_key(&addr)
            || crate::arch::emulate::classify(&displaced.insn).is_some()
        {
            return Ok(());
        }
        if self.slots.gadget.is_none() {
            self.slots.gadget = super::inject::find_syscall_gadget(self.pid);
        }
        let (slot, page) = match self.slots.take(near) {
            Some(s) => s,
            None => {
                let maps = crate::procfs::read_maps(self.pid)
                    .map_err(|e| format!("cannot read the target's maps: {e}"))?;
                let start = super::inject::candidate_pages(&maps, near)
                    .into_iter()
                    .find(|c| !self.slots.is_reserved_near(*c))
                    .ok_or(
                        "no free address range within ±2 GiB of the code for an out-of-line slot",
                    )?;
                self.slots.reserve(start);
                self.slots
                    .take(near)
                    .ok_or("a new slot page is out of reach")?
            }
        };
        let (code, layout) = relocate::build_slot(displaced, slot).map_err(|e| e.to_string())?;
        self.slot_of.insert(
            addr,
            SlotInfo {
                layout,
                next: displaced.insn.next_ip(),
                code,
                page,
                written: false,
            },
        );
        Ok(())
    }

    /// On the hit path: the slot for the breakpoint at `addr`, mapping its page (using the
    /// stopped thread `tid`) and writing its code the first time.
    pub(crate) fn ensure_slot(
        &mut self,
        addr: u64,
        tid: Tid,
        regs: &libc::user_regs_struct,
    ) -> Result<SlotLayout, String> {
        let Some(info) = self.slot_of.get(&addr) else {
            return Err("no slot was prepared for this address".into());
        };
        if info.written {
            return Ok(info.layout);
        }
        let started = std::time::Instant::now();
        let page = info.page;
        if let Some(why) = &self.slots.pages[page].failed {
            return Err(why.clone());
        }
        if !self.slots.pages[page].mapped {
            let want = self.slots.pages[page].start;
            match super::inject::map_page_at(self, tid, regs, want) {
                Ok(()) => {
                    self.slots.pages[page].mapped = true;
                    self.stats.slot_pages += 1;
                    self.stats.slot_page_ns_max = self
                        .stats
                        .slot_page_ns_max
                        .max(started.elapsed().as_nanos() as u64);
                }
                Err(why) => {
                    // Most likely the program mapped something there since we chose the
                    // address: choose again, now, once.
                    self.slots.pages[page].failed = Some(why.clone());
                    let Some(bp) = self.bps.get(&addr) else {
                        return Err(why);
                    };
                    let (near, displaced) = (bp.near, bp.displaced.clone());
                    self.slot_of.remove(&addr);
                    self.prepare_slot(addr, near, &displaced)
                        .map_err(|e| format!("{why}; then: {e}"))?;
                    let page = self.slot_of[&addr].page;
                    let want = self.slots.pages[page].start;
                    if let Err(again) = super::inject::map_page_at(self, tid, regs, want) {
                        self.slots.pages[page].failed = Some(again.clone());
                        return Err(format!("{why}; then: {again}"));
                    }
                    self.slots.pages[page].mapped = true;
                    self.stats.slot_pages += 1;
                }
            }
        }
        let info = self.slot_of.get_mut(&addr).unwrap();
        self.code
            .write(info.layout.start, &info.code)
            .map_err(|e| format!("writing the slot at {:#x} failed: {e}", info.layout.start))?;
        info.written = true;
        let layout = info.layout;
        self.stats.slot_build_ns_max = self
            .stats
            .slot_build_ns_max
            .max(started.elapsed().as_nanos() as u64);
        Ok(layout)
    }

    /// If `rip` is inside a slot, where the thread would be in the original code: the original
    /// instruction (not yet run) or the one after it (done). `None` while it is in the middle
    /// of a multi-instruction sequence (a relocated call pushing its return address): it must
    /// run a few more instructions first.
    pub(crate) fn slot_exit(&self, rip: u64) -> Option<Option<u64>> {
        for (addr, info) in &self.slot_of {
            let layout = &info.layout;
            if info.written && layout.start <= rip && rip < layout.start + layout.len {
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
