//! A minimal reader for 64-bit little-endian ELF files (x86-64 Linux), enough
//! to inspect the testbins: section headers, the GNU build-id note, the
//! `.gnu_debuglink` section and symbol names.
//!
//! This file is shared: `tests/build.rs` includes it with `#[path]` (to name
//! the split debug file after the build-id), and the support library exports
//! it as [`crate::elf`]. It has no dependencies beyond `std`.

use std::path::Path;

/// One section header of an ELF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Section name, e.g. `.debug_info`.
    pub name: String,
    /// `sh_type` (1 = PROGBITS, 2 = SYMTAB, 7 = NOTE, 8 = NOBITS, 11 = DYNSYM, ...).
    pub sh_type: u32,
    /// `sh_addr`: the section's link-time virtual address (0 if not allocated).
    pub addr: u64,
    /// `sh_offset`: where the section's bytes start in the file.
    pub offset: u64,
    /// `sh_size` in bytes (for NOBITS sections there are no bytes in the file).
    pub size: u64,
    /// `sh_link`: for symbol tables, the index of their string table.
    pub link: u32,
}

/// `sh_type` of a section that occupies no file bytes (`.bss`, and in a
/// `--only-keep-debug` file every code/data section).
pub const SHT_NOBITS: u32 = 8;
/// `sh_type` of a note section.
pub const SHT_NOTE: u32 = 7;
/// `sh_type` of `.symtab`.
pub const SHT_SYMTAB: u32 = 2;
/// `sh_type` of `.dynsym`.
pub const SHT_DYNSYM: u32 = 11;

/// One entry of a symbol table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    /// Symbol name.
    pub name: String,
    /// `st_value`: the link-time address (add the load bias for PIE / .so).
    pub value: u64,
    /// `st_size` in bytes.
    pub size: u64,
}

/// A parsed ELF file (owns its bytes).
#[derive(Debug, Clone)]
pub struct Elf {
    /// The whole file.
    pub data: Vec<u8>,
    /// All section headers, in file order (index 0 is the null section).
    pub sections: Vec<Section>,
}

fn u16_at(d: &[u8], off: usize) -> Result<u16, String> {
    d.get(off..off + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or_else(|| format!("ELF truncated at {off:#x}"))
}

fn u32_at(d: &[u8], off: usize) -> Result<u32, String> {
    d.get(off..off + 4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
        .ok_or_else(|| format!("ELF truncated at {off:#x}"))
}

fn u64_at(d: &[u8], off: usize) -> Result<u64, String> {
    d.get(off..off + 8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
        .ok_or_else(|| format!("ELF truncated at {off:#x}"))
}

fn cstr_at(d: &[u8], off: usize) -> String {
    let tail = d.get(off..).unwrap_or(&[]);
    let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
    String::from_utf8_lossy(&tail[..end]).into_owned()
}

impl Elf {
    /// Reads and parses the file at `path`.
    pub fn open(path: &Path) -> Result<Elf, String> {
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Elf::parse(data).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses the bytes of an ELF64 little-endian file.
    pub fn parse(data: Vec<u8>) -> Result<Elf, String> {
        if data.len() < 64 || &data[..4] != b"\x7fELF" {
            return Err("not an ELF file".into());
        }
        if data[4] != 2 || data[5] != 1 {
            return Err("not a 64-bit little-endian ELF file".into());
        }
        let shoff = u64_at(&data, 0x28)? as usize;
        let shentsize = u16_at(&data, 0x3a)? as usize;
        let shnum = u16_at(&data, 0x3c)? as usize;
        let shstrndx = u16_at(&data, 0x3e)? as usize;
        let mut raw = Vec::with_capacity(shnum);
        for i in 0..shnum {
            let h = shoff + i * shentsize;
            raw.push((
                u32_at(&data, h)?,        // sh_name
                u32_at(&data, h + 4)?,    // sh_type
                u64_at(&data, h + 0x10)?, // sh_addr
                u64_at(&data, h + 0x18)?, // sh_offset
                u64_at(&data, h + 0x20)?, // sh_size
                u32_at(&data, h + 0x28)?, // sh_link
            ));
        }
        let strtab_off = raw.get(shstrndx).map(|r| r.3 as usize).unwrap_or(0);
        let sections = raw
            .into_iter()
            .map(|(name, sh_type, addr, offset, size, link)| Section {
                name: cstr_at(&data, strtab_off + name as usize),
                sh_type,
                addr,
                offset,
                size,
                link,
            })
            .collect();
        Ok(Elf { data, sections })
    }

    /// The first section called `name`.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// Whether a section called `name` exists and has bytes in the file
    /// (a NOBITS placeholder, as `--only-keep-debug` leaves, does not count).
    pub fn has_section_data(&self, name: &str) -> bool {
        self.section(name)
            .is_some_and(|s| s.sh_type != SHT_NOBITS && s.size > 0)
    }

    /// The file bytes of a section (empty for NOBITS or out-of-range sections).
    pub fn section_data(&self, s: &Section) -> &[u8] {
        if s.sh_type == SHT_NOBITS {
            return &[];
        }
        let start = s.offset as usize;
        let end = start.saturating_add(s.size as usize);
        self.data.get(start..end).unwrap_or(&[])
    }

    /// The GNU build-id (the desc of the `NT_GNU_BUILD_ID` note), if any.
    pub fn build_id(&self) -> Option<Vec<u8>> {
        for s in self.sections.iter().filter(|s| s.sh_type == SHT_NOTE) {
            let d = self.section_data(s);
            let mut off = 0usize;
            while off + 12 <= d.len() {
                let namesz = u32_at(d, off).ok()? as usize;
                let descsz = u32_at(d, off + 4).ok()? as usize;
                let ntype = u32_at(d, off + 8).ok()?;
                let name_start = off + 12;
                let desc_start = name_start + namesz.div_ceil(4) * 4;
                let next = desc_start + descsz.div_ceil(4) * 4;
                let name = d.get(name_start..name_start + namesz)?;
                if ntype == 3 && name == b"GNU\0" {
                    return d.get(desc_start..desc_start + descsz).map(<[u8]>::to_vec);
                }
                off = next;
            }
        }
        None
    }

    /// The build-id as lowercase hex, if any.
    pub fn build_id_hex(&self) -> Option<String> {
        self.build_id()
            .map(|id| id.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The `.gnu_debuglink` file name and CRC32, if the section exists.
    pub fn debuglink(&self) -> Option<(String, u32)> {
        let s = self.section(".gnu_debuglink")?;
        let d = self.section_data(s);
        let name = cstr_at(d, 0);
        let crc_off = (name.len() + 1).div_ceil(4) * 4;
        let crc = u32_at(d, crc_off).ok()?;
        Some((name, crc))
    }

    /// The ELF type `e_type`: 2 = ET_EXEC (non-PIE executable), 3 = ET_DYN
    /// (PIE executable or shared library).
    pub fn e_type(&self) -> u16 {
        u16_at(&self.data, 0x10).unwrap_or(0)
    }

    /// The symbols in the first section of type `sh_type` ([`SHT_SYMTAB`]
    /// for `.symtab`, [`SHT_DYNSYM`] for `.dynsym`); unnamed ones are left out.
    pub fn symbols(&self, sh_type: u32) -> Vec<Symbol> {
        let Some(symtab) = self.sections.iter().find(|s| s.sh_type == sh_type) else {
            return Vec::new();
        };
        let Some(strtab) = self.sections.get(symtab.link as usize) else {
            return Vec::new();
        };
        let strs = self.section_data(strtab);
        self.section_data(symtab)
            .chunks_exact(24)
            .filter_map(|e| {
                let name = u32::from_le_bytes(e[0..4].try_into().unwrap()) as usize;
                (name != 0).then(|| Symbol {
                    name: cstr_at(strs, name),
                    value: u64::from_le_bytes(e[8..16].try_into().unwrap()),
                    size: u64::from_le_bytes(e[16..24].try_into().unwrap()),
                })
            })
            .collect()
    }

    /// The first symbol called `name` in `.symtab`, else in `.dynsym`.
    pub fn symbol(&self, name: &str) -> Option<Symbol> {
        [SHT_SYMTAB, SHT_DYNSYM]
            .into_iter()
            .flat_map(|t| self.symbols(t))
            .find(|s| s.name == name)
    }

    /// The function symbol for a source-level path: a plain name (`main`,
    /// `process_order`) is looked up as is ([`Elf::symbol`]); a path with
    /// `::` (`shop::price_order`, `values::Record::nested`) is matched
    /// against the Itanium / Rust-legacy mangled form of its nested name,
    /// `_ZN4shop11price_order` followed by `E` (C++: then the parameter
    /// types) or by `17h` (Rust: the hash component). Clones and parts
    /// (`.cold`, `.isra.0`, ...) are not the function: names with a `.` are
    /// skipped. Templates and generics are not supported.
    pub fn function_symbol(&self, path: &str) -> Option<Symbol> {
        if !path.contains("::") {
            return self.symbol(path);
        }
        let mut prefix = String::from("_ZN");
        for part in path.split("::") {
            prefix.push_str(&format!("{}{part}", part.len()));
        }
        [SHT_SYMTAB, SHT_DYNSYM]
            .into_iter()
            .flat_map(|t| self.symbols(t))
            .find(|s| {
                !s.name.contains('.')
                    && s.name
                        .strip_prefix(&prefix)
                        .is_some_and(|rest| rest.starts_with('E') || rest.starts_with("17h"))
            })
    }
}

/// The standard path of a split debug file inside a debug directory, by
/// build-id: `<dir>/.build-id/<first 2 hex digits>/<remaining hex>.debug`.
pub fn build_id_debug_path(debug_dir: &Path, build_id_hex: &str) -> std::path::PathBuf {
    let (head, rest) = build_id_hex.split_at(2.min(build_id_hex.len()));
    debug_dir
        .join(".build-id")
        .join(head)
        .join(format!("{rest}.debug"))
}

/// The CRC-32 (IEEE, as zlib computes it) that `.gnu_debuglink` stores for
/// the debug file's contents.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
