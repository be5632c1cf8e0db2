//! Planting and removing int3s.
//!
//! An int3 is one byte (0xCC) written over the first byte of an instruction through
//! /proc/PID/mem while the target runs: a single-byte store is seen by other CPUs either whole
//! or not at all, so no thread can execute a torn instruction, and no thread needs to stop.
//! The original byte is kept; removing writes it back, and the address moves to the phantom
//! set so a thread that had already trapped there is rewound instead of getting a SIGTRAP.

use super::core::{BpUser, Breakpoint, Engine, ProbeRt, SiteRt};
use super::{EngineError, PlantRequest, ProbeId};
use crate::addr::RuntimeAddr;
use crate::arch::relocate;

const INT3: u8 = 0xcc;

impl Engine {
    /// Plants a probe's sites. All sites are checked before any byte is written, so a refused
    /// site leaves the target untouched.
    pub(crate) fn plant(&mut self, req: PlantRequest) -> Result<usize, EngineError> {
        let mut new_bps: Vec<(u64, Breakpoint)> = Vec::new();
        for site in &req.sites {
            let addr = site.addr.0;
            if self.bps.contains_key(&addr) || new_bps.iter().any(|(a, _)| *a == addr) {
                continue;
            }
            let bp = self.prepare(addr, site.near.0)?;
            self.prepare_slot(addr, bp.near, &bp.displaced)
                .map_err(|detail| EngineError::Plant {
                    addr: site.addr,
                    detail,
                })?;
            new_bps.push((addr, bp));
        }
        let budget = self.budget;
        let probe = self
            .probes
            .entry(req.probe)
            .or_insert_with(|| ProbeRt::new(req.kind, req.quota, req.literal_bytes, &budget));
        let first_site = probe.sites.len() as u32;
        for site in &req.sites {
            probe.sites.push(SiteRt {
                plans: site.plans.clone(),
                condition: site.condition.clone(),
                exprs: site.exprs.clone(),
            });
        }
        for (addr, bp) in new_bps {
            self.code
                .write(addr, &[INT3])
                .map_err(|e| EngineError::Plant {
                    addr: RuntimeAddr(addr),
                    detail: format!("writing the int3 failed: {e}"),
                })?;
            self.phantoms.remove(&addr);
            self.bps.insert(addr, bp);
        }
        for (i, site) in req.sites.iter().enumerate() {
            if let Some(bp) = self.bps.get_mut(&site.addr.0) {
                bp.users.push(BpUser::Probe {
                    probe: req.probe,
                    site: first_site + i as u32,
                });
            }
        }
        Ok(req.sites.len())
    }

    /// Plants an int3 for the engine's own use (r_brk, the entry point), or for a paused
    /// probe's site again.
    pub(crate) fn plant_site(&mut self, addr: u64, user: BpUser) -> Result<(), EngineError> {
        self.plant_internal(addr, user)
    }

    /// Plants an int3 for the engine's own use (r_brk, the entry point).
    pub(crate) fn plant_internal(&mut self, addr: u64, user: BpUser) -> Result<(), EngineError> {
        if let Some(bp) = self.bps.get_mut(&addr) {
            if !bp.users.contains(&user) {
                bp.users.push(user);
            }
            return Ok(());
        }
        let bp = self.prepare(addr, addr)?;
        self.prepare_slot(addr, addr, &bp.displaced)
            .map_err(|detail| EngineError::Plant {
                addr: RuntimeAddr(addr),
                detail,
            })?;
        self.code
            .write(addr, &[INT3])
            .map_err(|e| EngineError::Plant {
                addr: RuntimeAddr(addr),
                detail: format!("writing the int3 failed: {e}"),
            })?;
        self.phantoms.remove(&addr);
        self.bps.insert(
            addr,
            Breakpoint {
                users: vec![user],
                ..bp
            },
        );
        Ok(())
    }

    /// Reads and decodes the instruction at `addr` and checks it can be displaced.
    fn prepare(&self, addr: u64, near: u64) -> Result<Breakpoint, EngineError> {
        let err = |detail: String| EngineError::Plant {
            addr: RuntimeAddr(addr),
            detail,
        };
        for (other, bp) in &self.bps {
            if *other < addr && addr < other + bp.displaced.len as u64 {
                return Err(err(format!(
                    "it is inside the instruction at {other:#x} ({}), which is already probed",
                    bp.displaced.text
                )));
            }
        }
        let mut bytes = [0u8; 16];
        self.code
            .read(addr, &mut bytes)
            .map_err(|e| err(format!("cannot read the code there: {e}")))?;
        if bytes[0] == INT3 {
            return Err(err(
                "there is already an int3 there (another debugger's breakpoint, one compiled into the program, \
                 or one left behind by a tracer that was killed)"
                    .into(),
            ));
        }
        // Decode from the original bytes: our own int3s in the following bytes are undone.
        for (i, b) in bytes.iter_mut().enumerate().skip(1) {
            if let Some(bp) = self.bps.get(&(addr + i as u64)) {
                *b = bp.orig;
            }
        }
        let displaced = match relocate::decode(&bytes, addr) {
            Ok(d) => d,
            Err(e @ relocate::RelocError::Refused { .. }) => {
                return Err(err(format!("{e}{}", self.nearest_workable(addr))));
            }
            Err(e) => return Err(err(e.to_string())),
        };
        for other in self.bps.keys() {
            if addr < *other && *other < addr + displaced.len as u64 {
                return Err(err(format!(
                    "the instruction there ({}) spans {other:#x}, which is already probed",
                    displaced.text
                )));
            }
        }
        Ok(Breakpoint {
            orig: bytes[0],
            displaced,
            near,
            users: Vec::new(),
        })
    }

    /// For a refused instruction at `addr`: where the next instruction that can be probed is
    /// (within the following 64 bytes), as advice for the error message.
    fn nearest_workable(&self, addr: u64) -> String {
        let mut code = [0u8; 80];
        if self.code.read(addr, &mut code).is_err() {
            return String::new();
        }
        let mut at = 0usize;
        let mut skipped = 0;
        while at < 64 {
            let Ok(d) = relocate::decode(&code[at..], addr + at as u64) else {
                // Refused too (or undecodable): step over it and keep looking.
                let mut dec = iced_x86::Decoder::with_ip(
                    64,
                    &code[at..],
                    addr + at as u64,
                    iced_x86::DecoderOptions::NONE,
                );
                let len = dec.decode().len().max(1);
                at += len;
                skipped += 1;
                continue;
            };
            if at == 0 {
                return String::new();
            }
            return format!(
                "; the nearest instruction that can be probed is at {:#x} ({}, {at} bytes further{}): \
                 probe the next line, or that function's next statement",
                addr + at as u64,
                d.text,
                if skipped > 1 {
                    ", past other refused ones"
                } else {
                    ""
                }
            );
        }
        String::new()
    }

    /// Removes a probe from every int3 it uses; an int3 nobody uses any more is removed.
    pub(crate) fn unplant(&mut self, probe: ProbeId) {
        if let Some(p) = self.probes.get_mut(&probe) {
            p.active = false;
        }
        self.probes.remove(&probe);
        let addrs: Vec<u64> = self
            .bps
            .iter()
            .filter(|(_, bp)| {
                bp.users
                    .iter()
                    .any(|u| matches!(u, BpUser::Probe { probe: p, .. } if *p == probe))
            })
            .map(|(a, _)| *a)
            .collect();
        for addr in addrs {
            let now_unused = {
                let bp = self.bps.get_mut(&addr).unwrap();
                bp.users
                    .retain(|u| !matches!(u, BpUser::Probe { probe: p, .. } if *p == probe));
                bp.users.is_empty()
            };
            if now_unused {
                self.remove_bp(addr);
            }
        }
    }

    /// Writes the original byte back and remembers the address as a phantom.
    pub(crate) fn remove_bp(&mut self, addr: u64) {
        if let Some(bp) = self.bps.remove(&addr) {
            let _ = self.code.write(addr, &[bp.orig]);
            self.phantoms.insert(addr, bp.orig);
        }
    }

    /// Forgets int3s in an unmapped range (a library was unloaded): nothing to write back.
    pub(crate) fn forget_range(&mut self, start: RuntimeAddr, end: RuntimeAddr) {
        let gone: Vec<u64> = self
            .bps
            .keys()
            .copied()
            .filter(|a| start.0 <= *a && *a < end.0)
            .collect();
        for addr in &gone {
            self.bps.remove(addr);
        }
        // Slots for code that is gone: never reused (a new library there is different code).
        self.slot_of.retain(|a, _| !(start.0 <= *a && *a < end.0));
        self.phantoms.retain(|a, _| !(start.0 <= *a && *a < end.0));
    }
}
