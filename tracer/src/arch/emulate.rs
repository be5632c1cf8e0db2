//! Carrying out the displaced instruction on the registers alone.
//!
//! Some instructions change nothing but registers: a nop (endbr64 included), a relative
//! jump, a conditional jump (decided by the saved flags), a move between two registers, a
//! `lea`. For those the hit path computes the effect on the stopped thread's registers and
//! continues it at the next instruction (or the branch target): no slot page, no code of
//! ours in the target, the same one SETREGS the slot needs anyway. Anything that touches
//! memory or the flags runs from a slot (relocate.rs): emulating a store would cost a write
//! system call where the slot costs nothing, and flag arithmetic is where emulators go wrong.

use iced_x86::{ConditionCode, FlowControl, Instruction, Mnemonic, OpKind, Register};

/// What an emulated instruction does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emulation {
    /// Nothing but advance RIP (nop, endbr64).
    Skip,
    /// Continue at this address (jmp rel).
    Jump(u64),
    /// Continue at `target` if the condition holds on the saved flags, else after it.
    CondJump { cond: ConditionCode, target: u64 },
    /// `dst = src` (64-bit, or 32-bit zero-extended).
    MovRegReg {
        dst: Register,
        src: Register,
        wide: bool,
    },
    /// `dst = base + index * scale + disp` (RIP-relative: `disp` is absolute), 64-bit or
    /// 32-bit zero-extended.
    Lea {
        dst: Register,
        base: Register,
        index: Register,
        scale: u32,
        disp: u64,
        wide: bool,
    },
}

/// The emulation of `insn`, if it is one of the register-only forms.
pub fn classify(insn: &Instruction) -> Option<Emulation> {
    match insn.mnemonic() {
        Mnemonic::Nop | Mnemonic::Endbr64 => return Some(Emulation::Skip),
        _ => {}
    }
    match insn.flow_control() {
        FlowControl::UnconditionalBranch if insn.op0_kind() == OpKind::NearBranch64 => {
            return Some(Emulation::Jump(insn.near_branch_target()));
        }
        FlowControl::ConditionalBranch
            if insn.op0_kind() == OpKind::NearBranch64
                && insn.condition_code() != ConditionCode::None
                && matches!(
                    insn.mnemonic(),
                    Mnemonic::Jo
                        | Mnemonic::Jno
                        | Mnemonic::Jb
                        | Mnemonic::Jae
                        | Mnemonic::Je
                        | Mnemonic::Jne
                        | Mnemonic::Jbe
                        | Mnemonic::Ja
                        | Mnemonic::Js
                        | Mnemonic::Jns
                        | Mnemonic::Jp
                        | Mnemonic::Jnp
                        | Mnemonic::Jl
                        | Mnemonic::Jge
                        | Mnemonic::Jle
                        | Mnemonic::Jg
                ) =>
        {
            return Some(Emulation::CondJump {
                cond: insn.condition_code(),
                target: insn.near_branch_target(),
            });
        }
        FlowControl::Next => {}
        _ => return None,
    }
    let gpr = |r: Register| r.is_gpr64() || r.is_gpr32();
    match insn.mnemonic() {
        Mnemonic::Mov
            if insn.op_count() == 2
                && insn.op0_kind() == OpKind::Register
                && insn.op1_kind() == OpKind::Register
                && gpr(insn.op0_register())
                && insn.op0_register().size() == insn.op1_register().size() =>
        {
            Some(Emulation::MovRegReg {
                dst: insn.op0_register(),
                src: insn.op1_register(),
                wide: insn.op0_register().is_gpr64(),
            })
        }
        Mnemonic::Lea
            if insn.op0_kind() == OpKind::Register
                && gpr(insn.op0_register())
                && insn.memory_segment() != Register::FS
                && insn.memory_segment() != Register::GS
                && (insn.memory_base() == Register::None
                    || insn.memory_base() == Register::RIP
                    || insn.memory_base().is_gpr64())
                && (insn.memory_index() == Register::None || insn.memory_index().is_gpr64()) =>
        {
            Some(Emulation::Lea {
                dst: insn.op0_register(),
                base: insn.memory_base(),
                index: insn.memory_index(),
                scale: insn.memory_index_scale(),
                // For RIP-relative operands iced gives the absolute target here.
                disp: insn.memory_displacement64(),
                wide: insn.op0_register().is_gpr64(),
            })
        }
        _ => None,
    }
}

/// The saved value of a 64-bit general register.
fn get(regs: &libc::user_regs_struct, r: Register) -> u64 {
    match r.full_register() {
        Register::RAX => regs.rax,
        Register::RBX => regs.rbx,
        Register::RCX => regs.rcx,
        Register::RDX => regs.rdx,
        Register::RSI => regs.rsi,
        Register::RDI => regs.rdi,
        Register::RBP => regs.rbp,
        Register::RSP => regs.rsp,
        Register::R8 => regs.r8,
        Register::R9 => regs.r9,
        Register::R10 => regs.r10,
        Register::R11 => regs.r11,
        Register::R12 => regs.r12,
        Register::R13 => regs.r13,
        Register::R14 => regs.r14,
        Register::R15 => regs.r15,
        _ => 0,
    }
}

fn set(regs: &mut libc::user_regs_struct, r: Register, v: u64) {
    let slot = match r.full_register() {
        Register::RAX => &mut regs.rax,
        Register::RBX => &mut regs.rbx,
        Register::RCX => &mut regs.rcx,
        Register::RDX => &mut regs.rdx,
        Register::RSI => &mut regs.rsi,
        Register::RDI => &mut regs.rdi,
        Register::RBP => &mut regs.rbp,
        Register::RSP => &mut regs.rsp,
        Register::R8 => &mut regs.r8,
        Register::R9 => &mut regs.r9,
        Register::R10 => &mut regs.r10,
        Register::R11 => &mut regs.r11,
        Register::R12 => &mut regs.r12,
        Register::R13 => &mut regs.r13,
        Register::R14 => &mut regs.r14,
        Register::R15 => &mut regs.r15,
        _ => return,
    };
    *slot = v;
}

/// Whether condition `cond` holds on flags `eflags`.
fn holds(cond: ConditionCode, eflags: u64) -> bool {
    let f = |bit: u32| eflags >> bit & 1 == 1;
    let (cf, pf, zf, sf, of) = (f(0), f(2), f(6), f(7), f(11));
    match cond {
        ConditionCode::o => of,
        ConditionCode::no => !of,
        ConditionCode::b => cf,
        ConditionCode::ae => !cf,
        ConditionCode::e => zf,
        ConditionCode::ne => !zf,
        ConditionCode::be => cf || zf,
        ConditionCode::a => !cf && !zf,
        ConditionCode::s => sf,
        ConditionCode::ns => !sf,
        ConditionCode::p => pf,
        ConditionCode::np => !pf,
        ConditionCode::l => sf != of,
        ConditionCode::ge => sf == of,
        ConditionCode::le => zf || sf != of,
        ConditionCode::g => !zf && sf == of,
        ConditionCode::None => true,
    }
}

/// Applies `e` (the instruction at `rip`, `len` bytes long) to `regs`, RIP included.
pub fn apply(e: &Emulation, regs: &mut libc::user_regs_struct, rip: u64, len: usize) {
    let next = rip.wrapping_add(len as u64);
    regs.rip = next;
    match *e {
        Emulation::Skip => {}
        Emulation::Jump(target) => regs.rip = target,
        Emulation::CondJump { cond, target } => {
            if holds(cond, regs.eflags) {
                regs.rip = target;
            }
        }
        Emulation::MovRegReg { dst, src, wide } => {
            let v = get(regs, src);
            set(regs, dst, if wide { v } else { v & 0xffff_ffff });
        }
        Emulation::Lea {
            dst,
            base,
            index,
            scale,
            disp,
            wide,
        } => {
            let b = match base {
                Register::None | Register::RIP => 0,
                r => get(regs, r),
            };
            let i = match index {
                Register::None => 0,
                r => get(regs, r).wrapping_mul(scale as u64),
            };
            let v = b.wrapping_add(i).wrapping_add(disp);
            set(regs, dst, if wide { v } else { v & 0xffff_ffff });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions};

    fn decode(bytes: &[u8], ip: u64) -> Instruction {
        Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE).decode()
    }

    fn regs() -> libc::user_regs_struct {
        // SAFETY: all-zero registers are a valid value.
        let mut r: libc::user_regs_struct = unsafe { std::mem::zeroed() };
        r.rax = 0x1111_2222_3333_4444;
        r.rbx = 0x10;
        r.rcx = 3;
        r.rsp = 0x7fff_0000;
        r
    }

    fn run(bytes: &[u8], ip: u64, r: &mut libc::user_regs_struct) -> Option<Emulation> {
        let insn = decode(bytes, ip);
        let e = classify(&insn)?;
        apply(&e, r, ip, insn.len());
        Some(e)
    }

    #[test]
    fn nops_and_endbr64_only_advance() {
        for bytes in [
            &[0x90][..],
            &[0xf3, 0x0f, 0x1e, 0xfa],
            &[0x0f, 0x1f, 0x44, 0x00, 0x00],
        ] {
            let mut r = regs();
            let before = r;
            assert_eq!(run(bytes, 0x1000, &mut r), Some(Emulation::Skip));
            assert_eq!(r.rip, 0x1000 + bytes.len() as u64);
            r.rip = before.rip;
            assert_eq!(format!("{r:?}"), format!("{before:?}"));
        }
    }

    #[test]
    fn jumps_follow_the_target_and_conditions_the_flags() {
        let mut r = regs();
        run(&[0xeb, 0x10], 0x1000, &mut r).unwrap(); // jmp short +16
        assert_eq!(r.rip, 0x1012);
        // je +0x20: taken with ZF, not without.
        let mut r = regs();
        r.eflags = 1 << 6;
        run(&[0x74, 0x20], 0x1000, &mut r).unwrap();
        assert_eq!(r.rip, 0x1022);
        let mut r = regs();
        r.eflags = 0;
        run(&[0x74, 0x20], 0x1000, &mut r).unwrap();
        assert_eq!(r.rip, 0x1002);
        // jl rel32 (0f 8c): SF != OF.
        let mut r = regs();
        r.eflags = 1 << 7;
        run(&[0x0f, 0x8c, 0x00, 0x01, 0x00, 0x00], 0x1000, &mut r).unwrap();
        assert_eq!(r.rip, 0x1006 + 0x100);
        let mut r = regs();
        r.eflags = (1 << 7) | (1 << 11);
        run(&[0x0f, 0x8c, 0x00, 0x01, 0x00, 0x00], 0x1000, &mut r).unwrap();
        assert_eq!(r.rip, 0x1006);
    }

    #[test]
    fn register_moves_and_lea() {
        let mut r = regs();
        run(&[0x48, 0x89, 0xc7], 0x1000, &mut r).unwrap(); // mov rdi, rax
        assert_eq!((r.rdi, r.rip), (0x1111_2222_3333_4444, 0x1003));
        let mut r = regs();
        r.rdi = u64::MAX;
        run(&[0x89, 0xc7], 0x1000, &mut r).unwrap(); // mov edi, eax: zero-extends
        assert_eq!(r.rdi, 0x3333_4444);
        let mut r = regs();
        run(&[0x48, 0x8d, 0x54, 0x8b, 0x08], 0x1000, &mut r).unwrap(); // lea rdx, [rbx+rcx*4+8]
        assert_eq!(r.rdx, 0x10 + 3 * 4 + 8);
        let mut r = regs();
        run(&[0x48, 0x8d, 0x05, 0x10, 0x00, 0x00, 0x00], 0x1000, &mut r).unwrap(); // lea rax, [rip+0x10]
        assert_eq!(r.rax, 0x1007 + 0x10);
    }

    #[test]
    fn memory_stack_and_flag_instructions_are_left_to_slots() {
        for bytes in [
            &[0x55][..],                     // push rbp
            &[0x48, 0x8b, 0x07],             // mov rax, [rdi]
            &[0x48, 0x89, 0x07],             // mov [rdi], rax
            &[0x48, 0x83, 0xec, 0x10],       // sub rsp, 16 (flags)
            &[0xe8, 0x00, 0x00, 0x00, 0x00], // call rel32 (a stack write)
            &[0xc3],                         // ret
            &[0x88, 0xc4],                   // mov ah, al (8-bit: partial write)
        ] {
            assert_eq!(classify(&decode(bytes, 0x1000)), None, "{bytes:x?}");
        }
    }
}
