//! The program bundled into scry (the testbins' `loop.c`), for `scry demo` and `scry bench`:
//! written out, built with the system C compiler, its probe line found by its marker.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The bundled program's source.
pub const LOOP_C: &str = include_str!("../../testbins/c/loop.c");
/// The testbins' shared helpers, which `loop.c` includes.
const TESTBIN_H: &str = include_str!("../../testbins/c/testbin.h");

/// Writes the sources into `dir` and builds `dir/loop{opt}` with `cc -g OPT`.
pub fn build(dir: &Path, opt: &str) -> Result<PathBuf> {
    std::fs::write(dir.join("loop.c"), LOOP_C)?;
    std::fs::write(dir.join("testbin.h"), TESTBIN_H)?;
    let bin = dir.join(format!("loop{opt}"));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-g", opt, "-o"])
        .arg(&bin)
        .arg(dir.join("loop.c"))
        .status()
        .with_context(|| {
            format!("running {cc}: install a C compiler (Debian: apt-get install gcc)")
        })?;
    if !status.success() {
        bail!("{cc} failed to build the bundled program");
    }
    Ok(bin)
}

/// `loop.c:LINE` of the marked probe line (`// @probe process_order_body`).
pub fn probe_location() -> Result<String> {
    // The marker ends a line of code; the header comment mentions it too.
    let tag = "// @probe process_order_body";
    LOOP_C
        .lines()
        .position(|l| {
            let t = l.trim();
            t.ends_with(tag) && !t.starts_with("//") && !t.starts_with('*')
        })
        .map(|i| format!("loop.c:{}", i + 1))
        .context("the bundled source lost its probe marker")
}
