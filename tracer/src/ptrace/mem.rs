//! Reading and writing target memory.
//!
//! Reads use process_vm_readv: one system call for many ranges, and it does not need the
//! target stopped. Note its granularity: a remote range that is partly unmapped fails as a
//! whole, and the call stops at the first failing range, so callers split ranges at page
//! boundaries when partial reads are useful (C strings) and retry after a failing range.
//!
//! Code is written through /proc/PID/mem: the kernel writes with FOLL_FORCE, which breaks
//! copy-on-write of a private read-only text page for this process only (the file on disk and
//! other processes mapping it are untouched). process_vm_writev cannot write read-only pages.

use nix::errno::Errno;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;

/// Page size of x86-64 Linux.
pub const PAGE: u64 = 4096;

/// Reads `ranges` (remote address, local buffer) in one process_vm_readv. Returns how many
/// leading ranges were read completely; the range after them failed (unmapped or unreadable).
pub fn read_ranges(pid: i32, ranges: &mut [(u64, &mut [u8])]) -> Result<usize, Errno> {
    if ranges.is_empty() {
        return Ok(0);
    }
    let mut local: Vec<libc::iovec> = Vec::with_capacity(ranges.len());
    let mut remote: Vec<libc::iovec> = Vec::with_capacity(ranges.len());
    for (addr, buf) in ranges.iter_mut() {
        local.push(libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        });
        remote.push(libc::iovec {
            iov_base: *addr as *mut libc::c_void,
            iov_len: buf.len(),
        });
    }
    // SAFETY: each local iovec points into a live &mut buffer of exactly iov_len bytes, borrowed
    // for the duration of the call; remote iovecs are only addresses in the other process.
    let n = unsafe {
        libc::process_vm_readv(
            pid,
            local.as_ptr(),
            local.len() as _,
            remote.as_ptr(),
            remote.len() as _,
            0,
        )
    };
    if n < 0 {
        let e = Errno::last();
        // EFAULT on the first range means zero ranges were readable.
        return if e == Errno::EFAULT { Ok(0) } else { Err(e) };
    }
    let mut left = n as usize;
    let mut complete = 0;
    for (_, buf) in ranges.iter() {
        if left >= buf.len() {
            left -= buf.len();
            complete += 1;
        } else {
            break;
        }
    }
    Ok(complete)
}

/// Reads one range; Err(EFAULT) if any byte of it is unreadable.
pub fn read(pid: i32, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
    match read_ranges(pid, &mut [(addr, buf)])? {
        1 => Ok(()),
        _ => Err(Errno::EFAULT),
    }
}

/// An open /proc/PID/mem for writing code bytes.
pub struct CodeWriter {
    file: File,
}

impl CodeWriter {
    /// Opens /proc/PID/mem read-write (needs ptrace access to the process).
    pub fn open(pid: i32) -> std::io::Result<CodeWriter> {
        Ok(CodeWriter {
            file: OpenOptions::new()
                .read(true)
                .write(true)
                .open(format!("/proc/{pid}/mem"))?,
        })
    }

    /// Writes `bytes` at `addr`, even into read-only text (FOLL_FORCE).
    pub fn write(&self, addr: u64, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all_at(bytes, addr)
    }

    /// Reads through /proc/PID/mem (works on pages process_vm_readv refuses, e.g. PROT_NONE
    /// is still refused, but read-only text always works).
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.file.read_exact_at(buf, addr)
    }
}
