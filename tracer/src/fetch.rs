//! Running value plans at a hit: the only memory reads on the hit path.
//!
//! All values advance together, one pointer hop per round, and each round is one
//! process_vm_readv for every value that needs memory in it. A failed range marks only its
//! own value unreadable; the ranges after it are retried.

use crate::plan::{AddrBase, Fetched, Hop, Start, StringBytes, ValuePlan};
use crate::ptrace::mem::{self, PAGE};

enum Cursor {
    /// At this address, about to apply hop `next`.
    At {
        addr: u64,
        next: usize,
    },
    /// The value's bytes are in; maybe its string is still to read.
    Value {
        bytes: Vec<u8>,
        string_at: Option<u64>,
    },
    Done(Fetched),
}

/// Fetches every value of `plans` from thread registers `regs` and memory of `pid`.
pub(crate) fn run(pid: i32, regs: &libc::user_regs_struct, plans: &[ValuePlan]) -> Vec<Fetched> {
    let mut cursors: Vec<Cursor> = plans.iter().map(|p| start(p, regs)).collect();
    // Rounds: each one reads what every unfinished value needs next.
    for _round in 0..16 {
        // Offsets need no memory: apply them first.
        for (c, plan) in cursors.iter_mut().zip(plans) {
            while let Cursor::At { addr, next } = c {
                match plan.hops.get(*next) {
                    Some(Hop::Offset(off)) => {
                        *addr = addr.wrapping_add(*off as u64);
                        *next += 1;
                    }
                    _ => break,
                }
            }
        }
        let mut wants: Vec<(usize, u64, usize)> = Vec::new(); // (value, remote addr, len)
        for (i, (c, plan)) in cursors.iter().zip(plans).enumerate() {
            match c {
                Cursor::At { addr, next } => match plan.hops.get(*next) {
                    Some(Hop::Deref) => wants.push((i, *addr, 8)),
                    Some(Hop::Offset(_)) => unreachable!("offsets were applied above"),
                    None => wants.push((i, *addr, plan.size as usize)),
                },
                Cursor::Value {
                    string_at: Some(at),
                    ..
                } => {
                    let max = plan.then_string.unwrap_or(0) as u64;
                    // Split at the page boundary so a string ending just before an unmapped
                    // page is still read (process_vm_readv fails whole ranges).
                    let first = (PAGE - at % PAGE).min(max);
                    wants.push((i, *at, first as usize));
                    if first < max {
                        wants.push((i, at.wrapping_add(first), (max - first) as usize));
                    }
                }
                _ => {}
            }
        }
        if wants.is_empty() {
            break;
        }
        let mut results = read_all(pid, &wants);
        // Apply results in order; a value may own two ranges (a split string).
        let mut k = 0;
        while k < wants.len() {
            let i = wants[k].0;
            let end = (k..wants.len())
                .find(|j| wants[*j].0 != i)
                .unwrap_or(wants.len());
            let same = k..end;
            k = end;
            let plan = &plans[i];
            let c = &mut cursors[i];
            match c {
                Cursor::At { addr, next } => {
                    let (_, at, _) = wants[same.start];
                    match results[same.start].take() {
                        None => {
                            *c = Cursor::Done(Fetched::Unreadable {
                                at: crate::addr::RuntimeAddr(at),
                            })
                        }
                        Some(bytes) if plan.hops.get(*next).is_some() => {
                            *addr = u64::from_le_bytes(bytes[..8].try_into().unwrap());
                            *next += 1;
                        }
                        Some(bytes) => {
                            let string_at = plan.then_string.map(|_| pointer_of(&bytes));
                            *c = Cursor::Value { bytes, string_at };
                        }
                    }
                }
                Cursor::Value { bytes, .. } => {
                    let mut text = Vec::new();
                    let mut unreadable = true;
                    for j in same {
                        match &results[j] {
                            Some(b) => {
                                unreadable = false;
                                text.extend_from_slice(b);
                            }
                            None => break,
                        }
                    }
                    let nul = text.iter().position(|b| *b == 0);
                    let truncated = nul.is_none() && !unreadable;
                    text.truncate(nul.unwrap_or(text.len()));
                    let string = StringBytes {
                        bytes: text,
                        truncated,
                        unreadable,
                    };
                    *c = Cursor::Done(Fetched::Bytes {
                        value: std::mem::take(bytes),
                        string: Some(string),
                    });
                }
                Cursor::Done(_) => {}
            }
        }
    }
    cursors
        .into_iter()
        .map(|c| match c {
            Cursor::Done(f) => f,
            Cursor::Value { bytes, .. } => Fetched::Bytes {
                value: bytes,
                string: None,
            },
            Cursor::At { addr, .. } => Fetched::Unreadable {
                at: crate::addr::RuntimeAddr(addr),
            },
        })
        .collect()
}

fn pointer_of(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = bytes.len().min(8);
    b[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(b)
}

fn start(plan: &ValuePlan, regs: &libc::user_regs_struct) -> Cursor {
    match &plan.start {
        Start::OptimizedOut => Cursor::Done(Fetched::OptimizedOut),
        Start::Const(bytes) => Cursor::Done(Fetched::Bytes {
            value: bytes.clone(),
            string: None,
        }),
        Start::Reg(r) => {
            let v = r.read(regs).to_le_bytes();
            let bytes = v[..(plan.size as usize).min(8)].to_vec();
            let string_at = plan.then_string.map(|_| r.read(regs));
            Cursor::Value { bytes, string_at }
        }
        Start::Addr(AddrBase::RegOffset { reg, offset }) => Cursor::At {
            addr: reg.read(regs).wrapping_add(*offset as u64),
            next: 0,
        },
        Start::Addr(AddrBase::Runtime(a)) => Cursor::At { addr: a.0, next: 0 },
    }
}

/// Reads every range, one process_vm_readv for all, retrying after any that fails.
fn read_all(pid: i32, wants: &[(usize, u64, usize)]) -> Vec<Option<Vec<u8>>> {
    let mut out: Vec<Option<Vec<u8>>> = wants.iter().map(|w| Some(vec![0u8; w.2])).collect();
    let mut from = 0;
    while from < wants.len() {
        let mut ranges: Vec<(u64, &mut [u8])> = Vec::new();
        for (w, buf) in wants[from..].iter().zip(out[from..].iter_mut()) {
            ranges.push((w.1, buf.as_mut().unwrap().as_mut_slice()));
        }
        let done = mem::read_ranges(pid, &mut ranges).unwrap_or(0);
        drop(ranges);
        if from + done < wants.len() {
            out[from + done] = None; // this one failed
        }
        from += done + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regs::Reg;

    #[test]
    fn reads_through_pointers_in_our_own_process() {
        #[repr(C)]
        struct Order {
            id: i32,
            qty: i32,
            name: *const u8,
        }
        let name = b"alice\0";
        let order = Order {
            id: 7,
            qty: 3,
            name: name.as_ptr(),
        };
        let optr: *const Order = &order;
        let holder: u64 = optr as u64; // a "variable" holding the pointer
        // SAFETY: zeroed user_regs_struct is valid.
        let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
        regs.rbp = &holder as *const u64 as u64 + 16;
        regs.rdi = optr as u64;
        let plans = vec![
            // o->qty with o at [rbp-16]
            ValuePlan {
                start: Start::Addr(AddrBase::RegOffset {
                    reg: Reg::Rbp,
                    offset: -16,
                }),
                hops: vec![Hop::Deref, Hop::Offset(4)],
                size: 4,
                then_string: None,
            },
            // o->name as a C string, o in rdi
            ValuePlan {
                start: Start::Addr(AddrBase::RegOffset {
                    reg: Reg::Rdi,
                    offset: 8,
                }),
                hops: vec![],
                size: 8,
                then_string: Some(256),
            },
            // a bad pointer
            ValuePlan {
                start: Start::Addr(AddrBase::Runtime(crate::addr::RuntimeAddr(8))),
                hops: vec![],
                size: 4,
                then_string: None,
            },
            ValuePlan {
                start: Start::Reg(Reg::Rdi),
                hops: vec![],
                size: 8,
                then_string: None,
            },
        ];
        let got = run(std::process::id() as i32, &regs, &plans);
        assert_eq!(
            got[0],
            Fetched::Bytes {
                value: 3i32.to_le_bytes().to_vec(),
                string: None
            }
        );
        match &got[1] {
            Fetched::Bytes {
                value,
                string: Some(s),
            } => {
                assert_eq!(
                    u64::from_le_bytes(value[..8].try_into().unwrap()),
                    name.as_ptr() as u64
                );
                assert_eq!(s.bytes, b"alice");
                assert!(!s.truncated && !s.unreadable);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            got[2],
            Fetched::Unreadable {
                at: crate::addr::RuntimeAddr(8)
            }
        );
        assert_eq!(
            got[3],
            Fetched::Bytes {
                value: (optr as u64).to_le_bytes().to_vec(),
                string: None
            }
        );
    }
}
