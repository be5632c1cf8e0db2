//! Loading a module: the ELF facts (build-id, segments, entry, symbols, frame tables) and
//! its DWARF, embedded or in a separate debug file found the way gdb finds them:
//!
//! 1. `.debug_info` in the binary itself;
//! 2. `<debug dir>/.build-id/ab/cdef….debug` for each debug directory;
//! 3. the `.gnu_debuglink` name in the binary's directory, its `.debug/` subdirectory, and
//!    `<debug dir>/<binary's directory>/`.
//!
//! A separate file is used only if its build-id equals the binary's (or, for binaries without
//! a build-id, its CRC matches the debuglink's): DWARF of another build would put probes at
//! wrong addresses, so a mismatch is an error, not a fallback.

use super::cfa::FrameTables;
use super::dwarf::{DwarfData, R};
use super::place::Tls;
use super::symtab::SymbolTable;
use super::{DebugSearch, DebugSource, ModuleSymbols, Segment, SymbolError};
use object::elf;
use object::read::elf::{Dyn, ElfFile64, FileHeader, ProgramHeader};
use object::{Endianness, Object, ObjectSection, SectionKind};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Reads the ELF at `path` and its DWARF.
pub(crate) fn load(path: &Path, search: &DebugSearch) -> Result<ModuleSymbols, SymbolError> {
    let data = std::fs::read(path).map_err(|cause| SymbolError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    let file = parse_elf(path, &data)?;
    let e = file.endian();
    let endian = if file.is_little_endian() {
        gimli::RunTimeEndian::Little
    } else {
        gimli::RunTimeEndian::Big
    };
    let build_id = file.build_id().ok().flatten().map(hex);
    let segments = file
        .elf_program_headers()
        .iter()
        .filter(|ph| ph.p_type(e) == elf::PT_LOAD)
        .map(|ph| Segment {
            vaddr: ph.p_vaddr(e),
            offset: ph.p_offset(e),
            filesz: ph.p_filesz(e),
            memsz: ph.p_memsz(e),
            executable: ph.p_flags(e).contains(elf::PF_X),
        })
        .collect();
    let is_dyn = file.elf_header().e_type(e) == elf::ET_DYN;
    let tls_segment = file
        .elf_program_headers()
        .iter()
        .find(|ph| ph.p_type(e) == elf::PT_TLS)
        .map(|ph| (ph.p_vaddr(e), ph.p_memsz(e), ph.p_align(e)));
    let tls = Tls::new(tls_segment, is_main_executable(&file));
    let symbols = SymbolTable::read(&file);
    let mut frames = FrameTables::from_binary(&file, endian);

    let mut looked = String::new();
    let (debug_source, dwarf) = if has_debug_info(&file) {
        (
            DebugSource::Embedded,
            Some(load_dwarf(&file, endian, path)?),
        )
    } else {
        match find_debug_file(path, &file, build_id.as_deref(), search, &mut looked)? {
            Some((source, debug_path, debug_data)) => {
                let debug = parse_elf(&debug_path, &debug_data)?;
                frames.add_debug_frame(&debug, endian);
                (source, Some(load_dwarf(&debug, endian, &debug_path)?))
            }
            None => (DebugSource::None, None),
        }
    };
    Ok(ModuleSymbols {
        path: path.to_path_buf(),
        build_id,
        debug_source,
        looked,
        segments,
        is_dyn,
        entry: file.entry(),
        symbols,
        frames,
        dwarf,
        tls,
    })
}

/// True if `file` is a program rather than a shared library: ET_EXEC, or a PIE (DF_1_PIE in
/// DT_FLAGS_1, or, for linkers that do not set it, an interpreter and no DT_SONAME — shared
/// libraries such as libc.so.6 may have an interpreter but always have a soname). Only the
/// program's TLS block sits at a fixed offset from the thread pointer.
fn is_main_executable(file: &ElfFile64<'_, Endianness>) -> bool {
    let e = file.endian();
    match file.elf_header().e_type(e) {
        elf::ET_EXEC => return true,
        elf::ET_DYN => {}
        _ => return false,
    }
    let headers = file.elf_program_headers();
    let interp = headers.iter().any(|ph| ph.p_type(e) == elf::PT_INTERP);
    let mut soname = false;
    for ph in headers {
        let Ok(Some(dynamic)) = ph.dynamic(e, file.data()) else {
            continue;
        };
        for entry in dynamic {
            let tag = entry.d_tag(e);
            if tag == elf::DT_FLAGS_1 && entry.d_val(e) & elf::DF_1_PIE.0 != 0 {
                return true;
            }
            soname |= tag == elf::DT_SONAME;
        }
    }
    interp && !soname
}

/// Parses `data` as a 64-bit ELF file.
fn parse_elf<'d>(path: &Path, data: &'d [u8]) -> Result<ElfFile64<'d, Endianness>, SymbolError> {
    ElfFile64::<Endianness>::parse(data).map_err(|e| SymbolError::Elf {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// True if `file` carries DWARF (a `.debug_info` with contents, not a NOBITS placeholder).
fn has_debug_info<'d>(file: &impl Object<'d>) -> bool {
    file.section_by_name(".debug_info")
        .is_some_and(|s| s.size() > 0 && s.kind() != SectionKind::UninitializedData)
}

/// Loads the DWARF sections of `file` into owned buffers (decompressing as needed).
fn load_dwarf<'d>(
    file: &impl Object<'d>,
    endian: gimli::RunTimeEndian,
    path: &Path,
) -> Result<DwarfData, SymbolError> {
    let dwarf = gimli::Dwarf::load(|id: gimli::SectionId| -> Result<R, SymbolError> {
        let data = match file.section_by_name(id.name()) {
            Some(s) if s.kind() != SectionKind::UninitializedData => {
                s.uncompressed_data().map_err(|e| SymbolError::Dwarf {
                    path: path.to_path_buf(),
                    detail: format!("cannot read {}: {e}", id.name()),
                })?
            }
            _ => Cow::Borrowed(&[][..]),
        };
        Ok(R::new(Arc::from(&*data), endian))
    })?;
    DwarfData::new(dwarf, path.to_path_buf())
}

/// Searches for a separate debug file. Returns where it was found and its bytes; records
/// every path tried in `looked` (", path" each). A file that exists but belongs to another
/// build is an error.
fn find_debug_file<'d>(
    binary: &Path,
    file: &ElfFile64<'d, Endianness>,
    build_id: Option<&str>,
    search: &DebugSearch,
    looked: &mut String,
) -> Result<Option<(DebugSource, PathBuf, Vec<u8>)>, SymbolError> {
    if let Some(id) = build_id.filter(|id| id.len() > 2) {
        for dir in &search.debug_dirs {
            let p = dir
                .join(".build-id")
                .join(&id[..2])
                .join(format!("{}.debug", &id[2..]));
            if let Some(data) = try_candidate(binary, &p, build_id, None, looked)? {
                return Ok(Some((DebugSource::BuildId(p.clone()), p, data)));
            }
        }
    }
    if let Ok(Some((name, crc))) = file.gnu_debuglink() {
        let name = String::from_utf8_lossy(name).into_owned();
        // gdb searches relative to the binary's real directory.
        let real = std::fs::canonicalize(binary).unwrap_or_else(|_| binary.to_path_buf());
        let dir = real.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut candidates = vec![dir.join(&name), dir.join(".debug").join(&name)];
        for root in &search.debug_dirs {
            candidates.push(root.join(dir.strip_prefix("/").unwrap_or(&dir)).join(&name));
        }
        for p in candidates {
            if std::fs::canonicalize(&p).is_ok_and(|c| c == real) {
                continue;
            }
            if let Some(data) = try_candidate(binary, &p, build_id, Some(crc), looked)? {
                return Ok(Some((DebugSource::DebugLink(p.clone()), p, data)));
            }
        }
    }
    Ok(None)
}

/// Reads candidate debug file `p` if it exists and carries DWARF; refuses it if it is from
/// another build.
fn try_candidate(
    binary: &Path,
    p: &Path,
    build_id: Option<&str>,
    crc: Option<u32>,
    looked: &mut String,
) -> Result<Option<Vec<u8>>, SymbolError> {
    looked.push_str(", ");
    looked.push_str(&p.display().to_string());
    if !p.is_file() {
        return Ok(None);
    }
    let Ok(data) = std::fs::read(p) else {
        looked.push_str(" (unreadable)");
        return Ok(None);
    };
    let Ok(debug) = ElfFile64::<Endianness>::parse(&*data) else {
        looked.push_str(" (not ELF)");
        return Ok(None);
    };
    let found = debug.build_id().ok().flatten().map(hex);
    match (build_id, crc) {
        (Some(expected), _) if found.as_deref() != Some(expected) => {
            return Err(SymbolError::BuildIdMismatch {
                binary: binary.to_path_buf(),
                debug: p.to_path_buf(),
                expected: expected.to_string(),
                found: found.unwrap_or_else(|| "missing".to_string()),
            });
        }
        (None, Some(crc)) => {
            let actual = crc32(&data);
            if actual != crc {
                return Err(SymbolError::BuildIdMismatch {
                    binary: binary.to_path_buf(),
                    debug: p.to_path_buf(),
                    expected: format!("absent (debuglink CRC {crc:08x})"),
                    found: format!(
                        "{} (file CRC {actual:08x})",
                        found.as_deref().unwrap_or("absent")
                    ),
                });
            }
        }
        _ => {}
    }
    if !has_debug_info(&debug) {
        looked.push_str(" (no .debug_info)");
        return Ok(None);
    }
    Ok(Some(data))
}

/// CRC-32 (IEEE, as zlib and .gnu_debuglink use it).
fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, slot) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *slot = c;
    }
    let mut crc = !0u32;
    for &b in data {
        crc = table[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn hex_is_lower_case() {
        assert_eq!(hex(&[0xab, 0x01, 0xff]), "ab01ff");
    }
}
