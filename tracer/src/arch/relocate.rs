//! Running the displaced instruction without lifting the int3.
//!
//! When a thread traps on our int3, the original instruction at that address still has to run,
//! and the int3 must stay in place so that other threads keep trapping (lifting it and
//! single-stepping, as Delve does, lets hits of other threads slip by). We run a *relocated
//! copy* of the instruction from a slot in a page we mapped into the target, followed by a jump
//! back to the next original instruction. The thread is simply continued at the slot: one stop
//! per hit, no single-step.
//!
//! iced-x86's BlockEncoder re-encodes the copy for the slot's address: it fixes RIP-relative
//! operands and relative branches (lengthening them when they no longer reach). Calls need
//! care: a plain re-encoded `call` would push the *slot's* return address, which breaks
//! unwinders and C++ exceptions, so a call becomes "push the original return address; jmp
//! target". Instructions that cannot be moved are refused when the probe is set, with the
//! reason. The strategy is one swappable piece: the issue "Hits at the ptrace floor" adds
//! emulation of the simple instructions so they need no slot at all.

use iced_x86::{
    BlockEncoder, BlockEncoderOptions, Code, Decoder, DecoderOptions, FlowControl, Instruction,
    InstructionBlock, MemoryOperand, Mnemonic, Register,
};

/// Bytes reserved for one slot. The longest sequence we build (an indirect call through a
/// RIP-relative pointer, with an absolute jump back) is well under this.
pub const SLOT_SIZE: u64 = 64;

/// Why an instruction cannot be displaced.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RelocError {
    #[error(
        "the bytes at {addr:#x} do not decode as an x86-64 instruction (is the address inside an instruction, or data?)"
    )]
    Invalid { addr: u64 },
    #[error("the instruction at {addr:#x} ({text}) cannot be run out of line: {why}")]
    Refused {
        addr: u64,
        text: String,
        why: &'static str,
    },
    #[error("could not re-encode the instruction at {addr:#x} for a slot at {slot:#x}: {detail}")]
    Encode {
        addr: u64,
        slot: u64,
        detail: String,
    },
}

/// The instruction an int3 displaces, decoded once when the breakpoint is planted.
#[derive(Clone, Debug)]
pub struct Displaced {
    /// The instruction, decoded at its original address.
    pub insn: Instruction,
    /// Its length in bytes.
    pub len: usize,
    /// Its text (Intel syntax) for messages.
    pub text: String,
}

/// What a slot's code looks like, so a thread stopped inside it can be moved back out
/// (at detach).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlotLayout {
    /// Where the slot starts.
    pub start: u64,
    /// Bytes of the relocated instruction (or call sequence) before the jump back.
    pub body_len: u64,
    /// Total bytes written.
    pub len: u64,
}

/// Decodes the instruction at `addr` from its original bytes and checks it can run out of line.
pub fn decode(bytes: &[u8], addr: u64) -> Result<Displaced, RelocError> {
    let mut decoder = Decoder::with_ip(64, bytes, addr, DecoderOptions::NONE);
    let insn = decoder.decode();
    if insn.is_invalid() {
        return Err(RelocError::Invalid { addr });
    }
    let text = format!("{insn}");
    let refuse = |why| {
        Err(RelocError::Refused {
            addr,
            text: text.clone(),
            why,
        })
    };
    match insn.flow_control() {
        FlowControl::Interrupt | FlowControl::Exception => {
            return refuse(
                "it is a trap or interrupt instruction (int3, int, ud2): the program would see it at a different address",
            );
        }
        FlowControl::XbeginXabortXend => {
            return refuse(
                "transactional-memory instructions cannot be moved; probe the next line",
            );
        }
        _ => {}
    }
    match insn.mnemonic() {
        Mnemonic::Call if insn.is_call_far() || insn.is_call_far_indirect() => {
            return refuse("far calls are not supported");
        }
        Mnemonic::Jmp if insn.is_jmp_far() || insn.is_jmp_far_indirect() => {
            return refuse("far jumps are not supported");
        }
        Mnemonic::Syscall | Mnemonic::Sysenter | Mnemonic::Int1 => {
            return refuse(
                "a syscall run from a slot would be reported at the slot's address; probe the line before it",
            );
        }
        _ => {}
    }
    Ok(Displaced {
        len: insn.len(),
        insn,
        text,
    })
}

/// Builds the code for a slot at `slot`: the relocated instruction, then a jump back to the
/// instruction after the original.
pub fn build_slot(d: &Displaced, slot: u64) -> Result<(Vec<u8>, SlotLayout), RelocError> {
    let orig = d.insn.ip();
    let next = d.insn.next_ip();
    let enc_err = |e: iced_x86::IcedError| RelocError::Encode {
        addr: orig,
        slot,
        detail: e.to_string(),
    };
    let mut body: Vec<Instruction> = Vec::new();
    match d.insn.flow_control() {
        FlowControl::Call => {
            // call rel32 → push the original return address, jump to the target.
            push_u64(&mut body, next).map_err(enc_err)?;
            body.push(
                Instruction::with_branch(Code::Jmp_rel32_64, d.insn.near_branch_target())
                    .map_err(enc_err)?,
            );
        }
        FlowControl::IndirectCall => {
            // call r/m64 → push the original return address, jmp r/m64. A memory operand based
            // on RSP must see RSP as the call saw it, before our push.
            let mut jmp = d.insn;
            jmp.set_code(match d.insn.code() {
                Code::Call_rm64 => Code::Jmp_rm64,
                _ => {
                    return Err(RelocError::Refused {
                        addr: orig,
                        text: d.text.clone(),
                        why: "unusual indirect call form",
                    });
                }
            });
            if jmp.op0_kind() == iced_x86::OpKind::Memory && jmp.memory_base() == Register::RSP {
                jmp.set_memory_displacement64(jmp.memory_displacement64().wrapping_add(8));
            }
            push_u64(&mut body, next).map_err(enc_err)?;
            body.push(jmp);
        }
        _ => body.push(d.insn),
    }
    // The jump back. For ret/jmp it is never reached, and costs nothing.
    let body_block = BlockEncoder::encode(
        64,
        InstructionBlock::new(&body, slot),
        BlockEncoderOptions::NONE,
    )
    .map_err(enc_err)?;
    let body_len = body_block.code_buffer.len() as u64;
    let back = [Instruction::with_branch(Code::Jmp_rel32_64, next).map_err(enc_err)?];
    let back_block = BlockEncoder::encode(
        64,
        InstructionBlock::new(&back, slot + body_len),
        BlockEncoderOptions::NONE,
    )
    .map_err(enc_err)?;
    let mut code = body_block.code_buffer;
    code.extend_from_slice(&back_block.code_buffer);
    if code.len() as u64 > SLOT_SIZE {
        return Err(RelocError::Encode {
            addr: orig,
            slot,
            detail: format!("needs {} bytes, a slot has {SLOT_SIZE}", code.len()),
        });
    }
    let len = code.len() as u64;
    Ok((
        code,
        SlotLayout {
            start: slot,
            body_len,
            len,
        },
    ))
}

/// `lea rsp,[rsp-8]; mov dword [rsp],lo; mov dword [rsp+4],hi`: pushes a 64-bit constant without
/// touching flags or any other register (`push imm32` would sign-extend).
fn push_u64(out: &mut Vec<Instruction>, value: u64) -> Result<(), iced_x86::IcedError> {
    out.push(Instruction::with2(
        Code::Lea_r64_m,
        Register::RSP,
        MemoryOperand::with_base_displ(Register::RSP, -8),
    )?);
    out.push(Instruction::with2(
        Code::Mov_rm32_imm32,
        MemoryOperand::with_base(Register::RSP),
        value as u32,
    )?);
    out.push(Instruction::with2(
        Code::Mov_rm32_imm32,
        MemoryOperand::with_base_displ(Register::RSP, 4),
        (value >> 32) as u32,
    )?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_at(bytes: &[u8], ip: u64) -> Vec<Instruction> {
        let mut d = Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE);
        let mut v = Vec::new();
        while d.can_decode() {
            v.push(d.decode());
        }
        v
    }

    #[test]
    fn rip_relative_operand_is_fixed_for_the_slot() {
        // mov eax, [rip+0x100] at 0x401000 reads 0x401106.
        let d = decode(&[0x8b, 0x05, 0x00, 0x01, 0x00, 0x00], 0x401000).unwrap();
        let slot = 0x7000_0000;
        let (code, layout) = build_slot(&d, slot).unwrap();
        let insns = decode_at(&code, slot);
        assert_eq!(insns[0].mnemonic(), Mnemonic::Mov);
        assert_eq!(insns[0].ip_rel_memory_address(), 0x401106);
        assert_eq!(insns[1].mnemonic(), Mnemonic::Jmp);
        assert_eq!(insns[1].near_branch_target(), 0x401006);
        assert_eq!(layout.body_len, insns[0].len() as u64);
    }

    #[test]
    fn call_pushes_the_original_return_address() {
        // call rel32 at 0x401000 → 0x402000.
        let d = decode(&[0xe8, 0xfb, 0x0f, 0x00, 0x00], 0x401000).unwrap();
        let (code, _) = build_slot(&d, 0x7fff_0000_0000).unwrap();
        let insns = decode_at(&code, 0x7fff_0000_0000);
        assert_eq!(insns[0].mnemonic(), Mnemonic::Lea);
        assert_eq!(insns[1].immediate32(), 0x401005);
        assert_eq!(insns[2].immediate32(), 0);
        // The target is too far for rel32 from that slot, so the encoder uses an absolute form.
        assert!(insns.iter().any(|i| i.mnemonic() == Mnemonic::Jmp));
        assert!(!insns.iter().any(|i| i.mnemonic() == Mnemonic::Call));
    }

    #[test]
    fn rsp_based_indirect_call_sees_the_callers_rsp() {
        // call qword ptr [rsp+0x10]
        let d = decode(&[0xff, 0x54, 0x24, 0x10], 0x401000).unwrap();
        let (code, _) = build_slot(&d, 0x402000).unwrap();
        let insns = decode_at(&code, 0x402000);
        let jmp = insns.iter().find(|i| i.code() == Code::Jmp_rm64).unwrap();
        assert_eq!(jmp.memory_base(), Register::RSP);
        assert_eq!(jmp.memory_displacement64(), 0x18);
    }

    #[test]
    fn conditional_branches_keep_their_targets() {
        // je +0x10 (rel8) at 0x401000 → 0x401012.
        let d = decode(&[0x74, 0x10], 0x401000).unwrap();
        let (code, _) = build_slot(&d, 0x5000_0000).unwrap();
        let insns = decode_at(&code, 0x5000_0000);
        assert_eq!(insns[0].mnemonic(), Mnemonic::Je);
        assert_eq!(insns[0].near_branch_target(), 0x401012);
        assert_eq!(insns.last().unwrap().near_branch_target(), 0x401002);
    }

    #[test]
    fn traps_and_syscalls_are_refused_with_a_reason() {
        assert!(matches!(
            decode(&[0xcc], 0x1000),
            Err(RelocError::Refused { .. })
        ));
        assert!(matches!(
            decode(&[0x0f, 0x05], 0x1000),
            Err(RelocError::Refused { .. })
        ));
        assert!(matches!(
            decode(&[0x0f, 0x0b], 0x1000),
            Err(RelocError::Refused { .. })
        ));
    }
}
