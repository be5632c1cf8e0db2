//! Call sites: what a caller passed in each argument register at one call
//! (`DW_TAG_call_site_parameter`, DWARF 5, or the GNU extension before it).
//!
//! Optimized code often reuses an argument register once the argument is no longer needed;
//! DWARF then describes the argument as `DW_OP_entry_value(DW_OP_reg5)`: "what rdi held when
//! the function was entered". The caller's call site can say what that was in terms of the
//! caller's own frame (`DW_AT_call_value`: a constant, a callee-saved register, a stack
//! slot), which an unwound caller frame can evaluate, as gdb does.
//!
//! A tail call breaks the link between a return address and the function that runs: the
//! frame above the caller may be a function the call site never named. So a call site is only
//! used when it names the frame's function, and not at all for a function some tail call
//! reaches (the caller may have reached it through one).

use super::cfa::FrameTables;
use super::dwarf::{DieId, DwarfData};
use super::place::{Lower, Place, Tls};
use crate::addr::Bias;
use crate::regs::Reg;
use gimli::AttributeValue;
use std::collections::HashSet;

/// One argument a call passed: the register and how to compute its value in the caller's
/// frame at the call.
#[derive(Clone, Debug, PartialEq)]
pub struct CallSiteParam {
    /// The register the argument was passed in.
    pub reg: Reg,
    /// Its value in the caller's frame (a `Place::Memory` program computes the value itself,
    /// not an address: `DW_AT_call_value` is a DWARF expression, not a location).
    pub value: Place,
}

/// The call that returns to a given address.
#[derive(Clone, Debug, PartialEq)]
pub struct CallSite {
    /// The called function (linkage name, else name), when the site names it.
    pub callee: Option<String>,
    /// The site is a tail call (it has no return address of its own on the stack).
    pub tail_call: bool,
    /// What it passed, per register.
    pub params: Vec<CallSiteParam>,
}

/// The call site of module `d` whose return address is `return_pc` (a file address).
pub(crate) fn call_site_at(
    d: &DwarfData,
    frames: &FrameTables,
    bias: Bias,
    tls: Tls,
    return_pc: u64,
) -> Option<CallSite> {
    let call_pc = return_pc.checked_sub(1)?;
    for ui in d.units_for_pc(call_pc) {
        let Ok(tree) = d.scopes(ui) else { continue };
        let Some(si) = tree.subprogram_at(call_pc) else {
            continue;
        };
        let function = tree.die_id(ui, si);
        let lower = Lower {
            dwarf: d,
            frames,
            bias,
            tls,
            frame: Some((function, tree.scopes[si].entry())),
            pc: call_pc,
        };
        let unit = d.unit(ui);
        let Ok(mut cursor) = unit.entries_at_offset(function.off) else {
            continue;
        };
        let Ok(Some(root)) = cursor.next_dfs() else {
            continue;
        };
        let root_depth = root.depth();
        // The matching site's depth once found; its parameters are its direct children.
        let mut found: Option<(isize, CallSite)> = None;
        while let Ok(Some(e)) = cursor.next_dfs() {
            let depth = e.depth();
            if depth <= root_depth {
                break;
            }
            if let Some((site_depth, site)) = found.as_mut() {
                if depth <= *site_depth {
                    break;
                }
                if depth == *site_depth + 1
                    && matches!(
                        e.tag(),
                        gimli::DW_TAG_call_site_parameter | gimli::DW_TAG_GNU_call_site_parameter
                    )
                    && let Some(p) = param(&lower, ui, e)
                {
                    site.params.push(p);
                }
                continue;
            }
            if !matches!(
                e.tag(),
                gimli::DW_TAG_call_site | gimli::DW_TAG_GNU_call_site
            ) {
                continue;
            }
            let ret = e
                .attr_value(gimli::DW_AT_call_return_pc)
                .or_else(|| e.attr_value(gimli::DW_AT_low_pc))
                .and_then(|v| d.dwarf.attr_address(unit, v).ok().flatten());
            if ret != Some(return_pc) {
                continue;
            }
            let callee = e
                .attr_value(gimli::DW_AT_call_origin)
                .or_else(|| e.attr_value(gimli::DW_AT_abstract_origin))
                .and_then(|v| d.resolve_ref(ui, &v))
                .and_then(|id| function_key(d, id));
            let tail_call =
                e.has_attr(gimli::DW_AT_call_tail_call) || e.has_attr(gimli::DW_AT_GNU_tail_call);
            found = Some((
                depth,
                CallSite {
                    callee,
                    tail_call,
                    params: Vec::new(),
                },
            ));
        }
        if let Some((_, site)) = found {
            return Some(site);
        }
    }
    None
}

/// One `DW_TAG_call_site_parameter`: a register location and a value expression.
fn param(
    lower: &Lower<'_>,
    ui: usize,
    e: &gimli::DebuggingInformationEntry<super::dwarf::R>,
) -> Option<CallSiteParam> {
    let AttributeValue::Exprloc(loc) = e.attr_value(gimli::DW_AT_location)? else {
        return None;
    };
    let reg = match lower.expr(ui, loc) {
        Place::Value(ops) => match ops.as_slice() {
            [crate::vm::Op::Reg(r)] => *r,
            _ => return None,
        },
        _ => return None,
    };
    let AttributeValue::Exprloc(value) = e
        .attr_value(gimli::DW_AT_call_value)
        .or_else(|| e.attr_value(gimli::DW_AT_GNU_call_site_value))?
    else {
        return None;
    };
    Some(CallSiteParam {
        reg,
        value: lower.expr(ui, value),
    })
}

/// The name a function is matched by across modules: its linkage name, else its name.
pub(crate) fn function_key(d: &DwarfData, id: DieId) -> Option<String> {
    d.linkage_name_of(id).or_else(|| d.name_of(id))
}

/// The functions some tail call in module `d` reaches (by `function_key`), walked once.
pub(crate) fn tail_callees(d: &DwarfData) -> HashSet<String> {
    let mut out = HashSet::new();
    for ui in 0..d.units.len() {
        if !d.is_code_unit(ui) {
            continue;
        }
        let unit = d.unit(ui);
        let mut cursor = unit.entries();
        while let Ok(Some(e)) = cursor.next_dfs() {
            if !matches!(
                e.tag(),
                gimli::DW_TAG_call_site | gimli::DW_TAG_GNU_call_site
            ) {
                continue;
            }
            if !(e.has_attr(gimli::DW_AT_call_tail_call) || e.has_attr(gimli::DW_AT_GNU_tail_call))
            {
                continue;
            }
            if let Some(key) = e
                .attr_value(gimli::DW_AT_call_origin)
                .or_else(|| e.attr_value(gimli::DW_AT_abstract_origin))
                .and_then(|v| d.resolve_ref(ui, &v))
                .and_then(|id| function_key(d, id))
            {
                out.insert(key);
            }
        }
    }
    out
}
