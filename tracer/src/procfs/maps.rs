//! /proc/PID/maps: which file is mapped where, for load biases, trampoline placement and the
//! syscall gadget.

use std::io;
use std::path::PathBuf;

/// One line of /proc/PID/maps.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapping {
    /// First byte of the mapping.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// `r`, `w`, `x` permission bits.
    pub read: bool,
    pub write: bool,
    pub exec: bool,
    /// Offset of the mapping in the file.
    pub offset: u64,
    /// Inode of the mapped file (0 for anonymous mappings).
    pub inode: u64,
    /// The path or pseudo-name (`[vdso]`, `[stack]`), empty for anonymous mappings. A
    /// trailing ` (deleted)` is kept, since the file then has to be read through map_files.
    pub path: String,
}

impl Mapping {
    /// True if the mapping is backed by a file (not `[vdso]`, not anonymous).
    pub fn is_file(&self) -> bool {
        self.inode != 0 && self.path.starts_with('/')
    }

    /// True if `addr` lies inside the mapping.
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// The path without a ` (deleted)` suffix.
    pub fn file_path(&self) -> PathBuf {
        PathBuf::from(self.path.strip_suffix(" (deleted)").unwrap_or(&self.path))
    }
}

/// Reads and parses /proc/PID/maps.
pub fn read_maps(pid: i32) -> io::Result<Vec<Mapping>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    Ok(parse_maps(&text))
}

/// Parses the text of a maps file; malformed lines are skipped.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mapping> {
    // "start-end perms offset dev inode   path" where path may contain spaces.
    let mut rest = line;
    let mut field = || -> Option<&str> {
        let r = rest.trim_start();
        let end = r.find(' ').unwrap_or(r.len());
        let (f, tail) = r.split_at(end);
        rest = tail;
        Some(f)
    };
    let range = field()?;
    let perms = field()?;
    let offset = field()?;
    let _dev = field()?;
    let inode = field()?;
    let path = rest.trim_start().to_string();
    let (s, e) = range.split_once('-')?;
    let p = perms.as_bytes();
    Some(Mapping {
        start: u64::from_str_radix(s, 16).ok()?,
        end: u64::from_str_radix(e, 16).ok()?,
        read: p.first() == Some(&b'r'),
        write: p.get(1) == Some(&b'w'),
        exec: p.get(2) == Some(&b'x'),
        offset: u64::from_str_radix(offset, 16).ok()?,
        inode: inode.parse().ok()?,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_file_anonymous_and_pseudo_mappings() {
        let text = "55d0c0a00000-55d0c0a01000 r--p 00000000 fe:01 1234   /usr/bin/my prog\n\
                    55d0c0a01000-55d0c0a02000 r-xp 00001000 fe:01 1234   /usr/bin/my prog\n\
                    7ffd1000-7ffd3000 rw-p 00000000 00:00 0 \n\
                    7fff0000-7fff2000 r-xp 00000000 00:00 0                  [vdso]\n\
                    7fff3000-7fff4000 r-xp 00000000 fe:01 99 /tmp/x.so (deleted)\n";
        let m = parse_maps(text);
        assert_eq!(m.len(), 5);
        assert_eq!(m[1].start, 0x55d0c0a01000);
        assert!(m[1].exec && !m[1].write && m[1].read);
        assert_eq!(m[1].offset, 0x1000);
        assert_eq!(m[1].path, "/usr/bin/my prog");
        assert!(m[1].is_file());
        assert_eq!(m[2].path, "");
        assert!(!m[2].is_file());
        assert_eq!(m[3].path, "[vdso]");
        assert!(!m[3].is_file());
        assert_eq!(m[4].file_path(), PathBuf::from("/tmp/x.so"));
    }
}
