//! The canonical frame address (CFA) rule at a pc, from call frame information.
//!
//! `DW_OP_call_frame_cfa` frame bases (what gcc emits) make every stack variable
//! `CFA + N`. The CFA rule at the probe's pc (e.g. `rbp + 16` after an -O0 prologue,
//! `rsp + 8` at a function's first instruction) folds into the value plan's `RegOffset`, so
//! the hit path needs one register read and no unwinding.

use super::dwarf::R;
use crate::regs::Reg;
use gimli::{BaseAddresses, CfaRule, UnwindSection};
use object::{Object, ObjectSection};
use std::sync::Arc;

/// .eh_frame (with its .eh_frame_hdr search table when present) and .debug_frame.
#[derive(Default)]
pub(crate) struct FrameTables {
    /// .eh_frame of the binary, its base addresses, and the parsed .eh_frame_hdr.
    eh_frame: Option<(
        gimli::EhFrame<R>,
        BaseAddresses,
        Option<gimli::ParsedEhFrameHdr<R>>,
    )>,
    /// .debug_frame (from the binary or the separate debug file).
    debug_frame: Option<(gimli::DebugFrame<R>, BaseAddresses)>,
}

/// The bytes of section `name`, if present with contents.
fn section_reader<'data>(
    file: &impl Object<'data>,
    name: &str,
    endian: gimli::RunTimeEndian,
) -> Option<(R, u64)> {
    let s = file.section_by_name(name)?;
    let data = s.uncompressed_data().ok()?;
    if data.is_empty() {
        return None;
    }
    Some((R::new(Arc::from(&*data), endian), s.address()))
}

impl FrameTables {
    /// Reads .eh_frame and .eh_frame_hdr from `binary`.
    pub fn from_binary<'data>(
        binary: &impl Object<'data>,
        endian: gimli::RunTimeEndian,
    ) -> FrameTables {
        let mut t = FrameTables::default();
        let section_addr = |name: &str| binary.section_by_name(name).map(|s| s.address());
        let mut bases = BaseAddresses::default();
        if let Some(a) = section_addr(".text") {
            bases = bases.set_text(a);
        }
        if let Some(a) = section_addr(".got") {
            bases = bases.set_got(a);
        }
        if let Some((eh, addr)) = section_reader(binary, ".eh_frame", endian) {
            let bases = bases.clone().set_eh_frame(addr);
            let mut section = gimli::EhFrame::from(eh);
            section.set_address_size(8);
            let hdr =
                section_reader(binary, ".eh_frame_hdr", endian).and_then(|(hdr, hdr_addr)| {
                    let bases = bases.clone().set_eh_frame_hdr(hdr_addr);
                    gimli::EhFrameHdr::from(hdr)
                        .parse(&bases, 8)
                        .ok()
                        .map(|p| (p, bases))
                });
            match hdr {
                Some((parsed, bases)) => t.eh_frame = Some((section, bases, Some(parsed))),
                None => t.eh_frame = Some((section, bases, None)),
            }
        }
        t.add_debug_frame(binary, endian);
        t
    }

    /// Adds .debug_frame from `file` (the binary or its separate debug file) if not yet known.
    pub fn add_debug_frame<'data>(
        &mut self,
        file: &impl Object<'data>,
        endian: gimli::RunTimeEndian,
    ) {
        if self.debug_frame.is_some() {
            return;
        }
        if let Some((data, _)) = section_reader(file, ".debug_frame", endian) {
            let mut section = gimli::DebugFrame::from(data);
            section.set_address_size(8);
            self.debug_frame = Some((section, BaseAddresses::default()));
        }
    }

    /// The CFA rule at `pc` as `register + offset`.
    pub fn cfa_at(&self, pc: u64) -> Result<(Reg, i64), String> {
        let rule = self.rule_at(pc)?;
        match rule {
            CfaRule::RegisterAndOffset { register, offset } => match Reg::from_dwarf(register.0) {
                Some(reg) => Ok((reg, offset)),
                None => Err(format!(
                    "the CFA at {pc:#x} is based on DWARF register {}",
                    register.0
                )),
            },
            CfaRule::Expression(_) => Err(format!("the CFA at {pc:#x} is a DWARF expression")),
        }
    }

    /// The raw CFA rule at `pc`.
    fn rule_at(&self, pc: u64) -> Result<CfaRule<usize>, String> {
        self.with_row(pc, |row| row.cfa().clone())
            .ok_or_else(|| format!("no call frame information covers {pc:#x}"))
    }

    /// Applies `f` to the unwind row covering `pc`: .eh_frame first, .debug_frame as a
    /// fallback. None if no CFI covers `pc`.
    fn with_row<T>(&self, pc: u64, f: impl Fn(&gimli::UnwindTableRow<usize>) -> T) -> Option<T> {
        let mut ctx = Box::new(gimli::UnwindContext::new());
        if let Some((section, bases, hdr)) = &self.eh_frame {
            let row = match hdr.as_ref().and_then(|h| h.table()) {
                Some(table) => table.unwind_info_for_address(
                    section,
                    bases,
                    &mut ctx,
                    pc,
                    gimli::EhFrame::cie_from_offset,
                ),
                None => section.unwind_info_for_address(
                    bases,
                    &mut ctx,
                    pc,
                    gimli::EhFrame::cie_from_offset,
                ),
            };
            if let Ok(row) = row {
                return Some(f(row));
            }
        }
        if let Some((section, bases)) = &self.debug_frame
            && let Ok(row) = section.unwind_info_for_address(
                bases,
                &mut ctx,
                pc,
                gimli::DebugFrame::cie_from_offset,
            )
        {
            return Some(f(row));
        }
        None
    }

    /// Applies `f` to the unwind row covering `pc` (.eh_frame first, .debug_frame as a
    /// fallback) together with what the stack unwinder needs besides the rules: whether the
    /// CIE marks a signal trampoline (augmentation "S"), its return-address column, and a
    /// way to fetch the row's DWARF expressions from their section. None if no CFI covers `pc`.
    pub fn with_cfi_row<T>(
        &self,
        pc: u64,
        f: impl FnOnce(crate::unwind::CfiRow<'_>) -> T,
    ) -> Option<T> {
        let mut ctx = Box::new(gimli::UnwindContext::new());
        if let Some((section, bases, hdr)) = &self.eh_frame {
            let fde = match hdr.as_ref().and_then(|h| h.table()) {
                Some(table) => {
                    table.fde_for_address(section, bases, pc, gimli::EhFrame::cie_from_offset)
                }
                None => section.fde_for_address(bases, pc, gimli::EhFrame::cie_from_offset),
            };
            if let Ok(fde) = fde
                && let Ok(row) = fde.unwind_info_for_address(section, bases, &mut ctx, pc)
            {
                let expression = |e: &gimli::UnwindExpression<usize>| e.get(section).ok();
                return Some(f(crate::unwind::CfiRow {
                    row,
                    signal_trampoline: fde.cie().is_signal_trampoline(),
                    return_address_register: fde.cie().return_address_register().0,
                    expression: &expression,
                }));
            }
        }
        if let Some((section, bases)) = &self.debug_frame
            && let Ok(fde) = section.fde_for_address(bases, pc, gimli::DebugFrame::cie_from_offset)
            && let Ok(row) = fde.unwind_info_for_address(section, bases, &mut ctx, pc)
        {
            let expression = |e: &gimli::UnwindExpression<usize>| e.get(section).ok();
            return Some(f(crate::unwind::CfiRow {
                row,
                signal_trampoline: fde.cie().is_signal_trampoline(),
                return_address_register: fde.cie().return_address_register().0,
                expression: &expression,
            }));
        }
        None
    }

    /// Whether the function entered at `entry` starts by setting up a frame pointer
    /// (`push %rbp; mov %rsp,%rbp`, after an optional 4-byte `endbr64`), read from its CFI:
    /// after 1 byte the CFA is `rsp+16` with rbp saved at CFA-16, after 3 more it is `rbp+16`.
    /// This is what gdb's amd64 prologue analyzer looks for.
    ///
    /// Returns None without CFI at `entry`, `Some(None)` for a frameless function, and
    /// `Some(Some(pc))` with the address after the `mov`.
    pub fn frame_setup_end(&self, entry: u64) -> Option<Option<u64>> {
        self.with_row(entry, |_| ())?;
        let rsp = gimli::Register(Reg::Rsp as u16);
        let rbp = gimli::Register(Reg::Rbp as u16);
        for skip in [0u64, 4] {
            let pushed = self.with_row(entry + skip + 1, |row| {
                *row.cfa()
                    == CfaRule::RegisterAndOffset {
                        register: rsp,
                        offset: 16,
                    }
                    && row.register(rbp) == Some(gimli::RegisterRule::Offset(-16))
            });
            let framed = self.with_row(entry + skip + 4, |row| {
                *row.cfa()
                    == CfaRule::RegisterAndOffset {
                        register: rbp,
                        offset: 16,
                    }
            });
            if pushed == Some(true) && framed == Some(true) {
                return Some(Some(entry + skip + 4));
            }
        }
        Some(None)
    }
}
