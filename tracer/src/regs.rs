//! x86-64 registers by name and by DWARF number, and reading them out of a `user_regs_struct`.

use std::fmt;

/// A general-purpose register (or rip / fs_base) of an x86-64 thread.
///
/// The discriminants are the DWARF register numbers of the System V x86-64 psABI (58 is
/// `%fs.base`; 54 is the `%fs` selector, which scry does not read).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Reg {
    Rax = 0,
    Rdx = 1,
    Rcx = 2,
    Rbx = 3,
    Rsi = 4,
    Rdi = 5,
    Rbp = 6,
    Rsp = 7,
    R8 = 8,
    R9 = 9,
    R10 = 10,
    R11 = 11,
    R12 = 12,
    R13 = 13,
    R14 = 14,
    R15 = 15,
    Rip = 16,
    Xmm0 = 17,
    Xmm1 = 18,
    Xmm2 = 19,
    Xmm3 = 20,
    Xmm4 = 21,
    Xmm5 = 22,
    Xmm6 = 23,
    Xmm7 = 24,
    Xmm8 = 25,
    Xmm9 = 26,
    Xmm10 = 27,
    Xmm11 = 28,
    Xmm12 = 29,
    Xmm13 = 30,
    Xmm14 = 31,
    Xmm15 = 32,
    FsBase = 58,
}

const ALL: [Reg; 34] = [
    Reg::Rax,
    Reg::Rdx,
    Reg::Rcx,
    Reg::Rbx,
    Reg::Rsi,
    Reg::Rdi,
    Reg::Rbp,
    Reg::Rsp,
    Reg::R8,
    Reg::R9,
    Reg::R10,
    Reg::R11,
    Reg::R12,
    Reg::R13,
    Reg::R14,
    Reg::R15,
    Reg::Rip,
    Reg::Xmm0,
    Reg::Xmm1,
    Reg::Xmm2,
    Reg::Xmm3,
    Reg::Xmm4,
    Reg::Xmm5,
    Reg::Xmm6,
    Reg::Xmm7,
    Reg::Xmm8,
    Reg::Xmm9,
    Reg::Xmm10,
    Reg::Xmm11,
    Reg::Xmm12,
    Reg::Xmm13,
    Reg::Xmm14,
    Reg::Xmm15,
    Reg::FsBase,
];

const XMM_NAMES: [&str; 16] = [
    "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
    "xmm11", "xmm12", "xmm13", "xmm14", "xmm15",
];

impl Reg {
    /// The register with this DWARF number, if it is one we read (xmm and x87 are not yet).
    pub fn from_dwarf(n: u16) -> Option<Reg> {
        ALL.iter().copied().find(|r| *r as u16 == n)
    }

    /// The register with this name (`rax`, `$rax` and `RAX` all work).
    pub fn from_name(name: &str) -> Option<Reg> {
        let name = name.trim_start_matches('$').to_ascii_lowercase();
        ALL.iter().copied().find(|r| r.name() == name)
    }

    /// The register's lower-case name, as gdb spells it.
    pub fn name(self) -> &'static str {
        match self {
            Reg::Rax => "rax",
            Reg::Rdx => "rdx",
            Reg::Rcx => "rcx",
            Reg::Rbx => "rbx",
            Reg::Rsi => "rsi",
            Reg::Rdi => "rdi",
            Reg::Rbp => "rbp",
            Reg::Rsp => "rsp",
            Reg::R8 => "r8",
            Reg::R9 => "r9",
            Reg::R10 => "r10",
            Reg::R11 => "r11",
            Reg::R12 => "r12",
            Reg::R13 => "r13",
            Reg::R14 => "r14",
            Reg::R15 => "r15",
            Reg::Rip => "rip",
            Reg::FsBase => "fs_base",
            x => XMM_NAMES[(x as u16 - 17) as usize],
        }
    }

    /// True for the SSE registers, which live in the FP register set (PTRACE_GETFPREGS), not
    /// in `user_regs_struct`.
    pub fn is_vector(self) -> bool {
        (17..=32).contains(&(self as u16))
    }

    /// The low 64 bits of an SSE register (a double, or a float in the low 32 bits).
    pub fn read_fp(self, fp: &libc::user_fpregs_struct) -> Option<u64> {
        if !self.is_vector() {
            return None;
        }
        let i = (self as u16 - 17) as usize * 4;
        Some(fp.xmm_space[i] as u64 | (fp.xmm_space[i + 1] as u64) << 32)
    }

    /// The general registers and rip (what an unwinder can recover in a caller's frame).
    pub fn general() -> impl Iterator<Item = Reg> {
        ALL.iter()
            .copied()
            .filter(|r| !r.is_vector() && *r != Reg::FsBase)
    }

    /// Sets this register in a thread's saved registers (vector registers are not there).
    pub fn write(self, regs: &mut libc::user_regs_struct, v: u64) {
        let slot = match self {
            Reg::Rax => &mut regs.rax,
            Reg::Rdx => &mut regs.rdx,
            Reg::Rcx => &mut regs.rcx,
            Reg::Rbx => &mut regs.rbx,
            Reg::Rsi => &mut regs.rsi,
            Reg::Rdi => &mut regs.rdi,
            Reg::Rbp => &mut regs.rbp,
            Reg::Rsp => &mut regs.rsp,
            Reg::R8 => &mut regs.r8,
            Reg::R9 => &mut regs.r9,
            Reg::R10 => &mut regs.r10,
            Reg::R11 => &mut regs.r11,
            Reg::R12 => &mut regs.r12,
            Reg::R13 => &mut regs.r13,
            Reg::R14 => &mut regs.r14,
            Reg::R15 => &mut regs.r15,
            Reg::Rip => &mut regs.rip,
            Reg::FsBase => &mut regs.fs_base,
            _ => return,
        };
        *slot = v;
    }

    /// This register's value in a thread's saved registers.
    pub fn read(self, regs: &libc::user_regs_struct) -> u64 {
        match self {
            Reg::Rax => regs.rax,
            Reg::Rdx => regs.rdx,
            Reg::Rcx => regs.rcx,
            Reg::Rbx => regs.rbx,
            Reg::Rsi => regs.rsi,
            Reg::Rdi => regs.rdi,
            Reg::Rbp => regs.rbp,
            Reg::Rsp => regs.rsp,
            Reg::R8 => regs.r8,
            Reg::R9 => regs.r9,
            Reg::R10 => regs.r10,
            Reg::R11 => regs.r11,
            Reg::R12 => regs.r12,
            Reg::R13 => regs.r13,
            Reg::R14 => regs.r14,
            Reg::R15 => regs.r15,
            Reg::Rip => regs.rip,
            Reg::FsBase => regs.fs_base,
            // Vector registers are not in this set: see `read_fp`.
            _ => 0,
        }
    }
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${}", self.name())
    }
}
