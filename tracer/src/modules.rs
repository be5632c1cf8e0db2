//! The modules (executable and shared libraries) mapped in the target, their load biases, and
//! the dynamic linker's `r_debug`.

use crate::addr::{Bias, RuntimeAddr};
use crate::debuginfo::Segment;
use crate::procfs::Mapping;
use crate::ptrace::mem;
use std::path::{Path, PathBuf};

/// One file mapped into the target.
#[derive(Clone, Debug)]
pub struct Module {
    /// The path as /proc/PID/maps shows it.
    pub path: PathBuf,
    /// Where to read the file from: the path through the target's root
    /// (/proc/PID/root/...), so targets in containers and deleted files work.
    pub read_path: PathBuf,
    /// Inode, to tell a replaced file from the one mapped.
    pub inode: u64,
    /// Lowest and highest mapped address.
    pub start: RuntimeAddr,
    pub end: RuntimeAddr,
    /// The mapping with the lowest file offset (for the bias).
    pub first_offset: u64,
    /// True for the main executable.
    pub is_main: bool,
}

/// Groups file-backed mappings into modules (only files with at least one executable mapping).
pub fn modules_from_maps(pid: i32, maps: &[Mapping], main_exe: Option<&Path>) -> Vec<Module> {
    let mut out: Vec<Module> = Vec::new();
    for m in maps.iter().filter(|m| m.is_file()) {
        let path = m.file_path();
        if let Some(existing) = out
            .iter_mut()
            .find(|x| x.path == path && x.inode == m.inode)
        {
            if m.start < existing.start.0 {
                existing.start = RuntimeAddr(m.start);
                existing.first_offset = m.offset;
            }
            existing.end = RuntimeAddr(existing.end.0.max(m.end));
            continue;
        }
        let read_path = if m.path.ends_with(" (deleted)") {
            PathBuf::from(format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end))
        } else {
            let root = PathBuf::from(format!("/proc/{pid}/root"));
            let through_root = root.join(path.strip_prefix("/").unwrap_or(&path));
            if through_root.exists() {
                through_root
            } else {
                path.clone()
            }
        };
        out.push(Module {
            is_main: main_exe.is_some_and(|e| e == path),
            path,
            read_path,
            inode: m.inode,
            start: RuntimeAddr(m.start),
            end: RuntimeAddr(m.end),
            first_offset: m.offset,
        });
    }
    out.retain(|module| maps.iter().any(|m| m.exec && m.file_path() == module.path));
    out.sort_by_key(|m| !m.is_main);
    out
}

/// The load bias of a module: where its lowest mapping is, minus where the segment at that
/// file offset says it should be.
pub fn bias(module: &Module, segments: &[Segment]) -> Bias {
    const PAGE_MASK: u64 = !(mem::PAGE - 1);
    let seg = segments
        .iter()
        .find(|s| s.offset & PAGE_MASK == module.first_offset);
    match seg {
        Some(s) => Bias(module.start.0.wrapping_sub(s.vaddr & PAGE_MASK)),
        None => Bias(module.start.0.wrapping_sub(module.first_offset)),
    }
}

/// The PT_DYNAMIC segment's virtual address, if the file is dynamically linked.
pub fn dynamic_vaddr(path: &Path) -> Option<u64> {
    use object::read::elf::{FileHeader, ProgramHeader};
    let data = std::fs::read(path).ok()?;
    let header = object::elf::FileHeader64::<object::Endianness>::parse(&*data).ok()?;
    let endian = header.endian().ok()?;
    let phdrs = header.program_headers(endian, &*data).ok()?;
    phdrs
        .iter()
        .find(|p| p.p_type(endian) == object::elf::PT_DYNAMIC)
        .map(|p| p.p_vaddr(endian))
}

/// Where the dynamic linker's `r_debug` is, read from DT_DEBUG in the executable's dynamic
/// section in the target (0 until ld.so has filled it in, at startup).
pub fn find_r_debug(pid: i32, dynamic: RuntimeAddr) -> Option<RuntimeAddr> {
    let mut buf = [0u8; 16 * 64];
    mem::read(pid, dynamic.0, &mut buf).ok()?;
    for entry in buf.chunks_exact(16) {
        let tag = i64::from_le_bytes(entry[..8].try_into().unwrap());
        let val = u64::from_le_bytes(entry[8..].try_into().unwrap());
        match tag {
            0 => return None,
            21 if val != 0 => return Some(RuntimeAddr(val)), // DT_DEBUG
            _ => {}
        }
    }
    None
}

/// `r_brk` of an `r_debug` (the function the dynamic linker calls around library changes).
pub fn read_r_brk(pid: i32, r_debug: RuntimeAddr) -> Option<RuntimeAddr> {
    let mut b = [0u8; 8];
    mem::read(pid, r_debug.0 + 16, &mut b).ok()?;
    let v = u64::from_le_bytes(b);
    (v != 0).then_some(RuntimeAddr(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bias_of_pie_and_non_pie() {
        let seg = |vaddr, offset| Segment {
            vaddr,
            offset,
            filesz: 0x1000,
            memsz: 0x1000,
            executable: false,
        };
        let pie = Module {
            path: "/x".into(),
            read_path: "/x".into(),
            inode: 1,
            start: RuntimeAddr(0x5555_5555_4000),
            end: RuntimeAddr(0x5555_5555_9000),
            first_offset: 0,
            is_main: true,
        };
        assert_eq!(
            bias(&pie, &[seg(0, 0), seg(0x1000, 0x1000)]),
            Bias(0x5555_5555_4000)
        );
        let exec = Module {
            start: RuntimeAddr(0x40_0000),
            ..pie
        };
        assert_eq!(
            bias(&exec, &[seg(0x40_0000, 0), seg(0x40_1000, 0x1000)]),
            Bias(0)
        );
    }
}
