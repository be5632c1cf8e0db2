//! Builds the C testbins (`testbins/c/*.c`, which all include the shared
//! helpers of `testbins/c/testbin.h`) with gcc, once per build of this
//! package, into `$OUT_DIR/testbins/`, and exports that directory to the
//! support library as the compile-time env var `SCRY_TESTBINS`.
//!
//! Layout of `$OUT_DIR/testbins/` (all with `-g -Wall -Wextra -Werror
//! -Wl,--build-id` unless said otherwise):
//!
//! ```text
//! bin/<prog>-O0, bin/<prog>-O2     prog in loop threads forker signals dlopener inline
//!                                  (PIE, the Debian default)
//! bin/execer-O0                    -O0 (PIE); by default it execs bin/loop-O0
//! bin/loop-O0-nopie                -O0 -no-pie -fno-pie
//! bin/threads-O2-nopie             -O2 -no-pie -fno-pie
//! bin/loop-split                   -O0; debug info split off (objcopy --only-keep-debug),
//!                                  binary strip --strip-debug'ed (.symtab kept), then
//!                                  objcopy --add-gnu-debuglink=loop-split.debug
//! debug/.build-id/<xx>/<rest>.debug
//!                                  loop-split's debug file, named by its build-id
//!                                  (<xx> = first 2 hex digits, <rest> = the others)
//! debug-wrong/.build-id/<xx>/<rest>.debug
//!                                  SAME path (loop-split's build-id) but the debug file
//!                                  of a DIFFERENT build (loop -O0 -DSCRY_WRONG_BUILD,
//!                                  which shifts the code), so its own build-id note
//!                                  does not match: a debugger must reject it
//! bin/loop-nodebug                 -O0 without -g, symbols kept
//! bin/loop-stripped                -O0 without -g, -rdynamic (process_order stays in
//!                                  .dynsym), strip --strip-all
//! lib/libscryshared.so             -O0 -fPIC -shared (dlopener links it; rpath $ORIGIN/../lib)
//! lib/libscryplugin.so             -O0 -fPIC -shared (dlopener dlopen()s it)
//! ```
//!
//! No debug file is placed next to `bin/loop-split`, so it can only be found
//! through the build-id directory (or by the debuglink name in a debug dir).

use std::path::{Path, PathBuf};
use std::process::Command;

#[allow(dead_code)]
#[path = "support/elf.rs"]
mod elf;

const PROGRAMS: &[&str] = &["loop", "threads", "forker", "signals", "dlopener", "inline"];
const COMMON: &[&str] = &["-g", "-Wall", "-Wextra", "-Werror", "-Wl,--build-id"];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    // Compile in the source directory with bare file names, so the DWARF
    // says DW_AT_name "loop.c", DW_AT_comp_dir "<workspace>/testbins/c".
    let src = manifest
        .join("../testbins/c")
        .canonicalize()
        .expect("testbins/c must exist");
    println!("cargo:rerun-if-changed=../testbins");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=support/elf.rs");

    for tool in ["gcc", "objcopy", "strip"] {
        match Command::new(tool).arg("--version").output() {
            Ok(out) if out.status.success() => {}
            _ => panic!(
                "scry-tests: `{tool}` is required to build the C testbins but was not found or \
                 does not run (on Debian: apt-get install gcc binutils)"
            ),
        }
    }

    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("testbins");
    if out.exists() {
        std::fs::remove_dir_all(&out).expect("remove old testbins dir");
    }
    let bin = out.join("bin");
    let lib = out.join("lib");
    let work = out.join("work");
    for d in [&bin, &lib, &work] {
        std::fs::create_dir_all(d).unwrap();
    }

    // Independent compiles, run two at a time (the machine has 2 cores).
    let mut jobs: Vec<Vec<String>> = Vec::new();
    let s = |name: &str| format!("{name}.c");
    let p = |p: &Path| p.display().to_string();

    for name in ["shared", "plugin"] {
        let so = lib.join(format!("libscry{name}.so"));
        jobs.push(args(&["-O0", "-fPIC", "-shared", "-o", &p(&so), &s(name)]));
    }
    let job_count_libs = jobs.len();
    for prog in PROGRAMS {
        for opt in ["-O0", "-O2"] {
            let exe = bin.join(format!("{prog}{opt}"));
            jobs.push(prog_args(prog, &[opt], &exe, &lib));
        }
    }
    jobs.push(prog_args("execer", &["-O0"], &bin.join("execer-O0"), &lib));
    jobs.push(prog_args(
        "loop",
        &["-O0", "-no-pie", "-fno-pie"],
        &bin.join("loop-O0-nopie"),
        &lib,
    ));
    jobs.push(prog_args(
        "threads",
        &["-O2", "-no-pie", "-fno-pie"],
        &bin.join("threads-O2-nopie"),
        &lib,
    ));
    let split_full = work.join("loop-split");
    jobs.push(prog_args("loop", &["-O0"], &split_full, &lib));
    let wrong_full = work.join("loop-wrong");
    jobs.push(prog_args(
        "loop",
        &["-O0", "-DSCRY_WRONG_BUILD"],
        &wrong_full,
        &lib,
    ));
    let mut nodebug = prog_args("loop", &["-O0"], &bin.join("loop-nodebug"), &lib);
    nodebug.retain(|a| a != "-g");
    jobs.push(nodebug);
    let stripped = bin.join("loop-stripped");
    let mut st = prog_args("loop", &["-O0", "-rdynamic"], &stripped, &lib);
    st.retain(|a| a != "-g");
    jobs.push(st);

    // The libraries must exist before dlopener links against them.
    run_parallel(&jobs[..job_count_libs], &src);
    run_parallel(&jobs[job_count_libs..], &src);

    // loop-split: debug info split off, found through the build-id.
    let split_dbg = work.join("loop-split.debug");
    let split = bin.join("loop-split");
    tool(
        "objcopy",
        &["--only-keep-debug", &p(&split_full), &p(&split_dbg)],
    );
    std::fs::copy(&split_full, &split).unwrap();
    tool("strip", &["--strip-debug", &p(&split)]);
    tool(
        "objcopy",
        &[
            &format!("--add-gnu-debuglink={}", p(&split_dbg)),
            &p(&split),
        ],
    );
    let split_id = build_id_of(&split);
    assert_eq!(
        split_id,
        build_id_of(&split_full),
        "strip/objcopy changed the build-id"
    );
    let dbg_path = elf::build_id_debug_path(&out.join("debug"), &split_id);
    std::fs::create_dir_all(dbg_path.parent().unwrap()).unwrap();
    std::fs::copy(&split_dbg, &dbg_path).unwrap();

    // debug-wrong: the same build-id path, holding a different build's debug file.
    let wrong_dbg = work.join("loop-wrong.debug");
    tool(
        "objcopy",
        &["--only-keep-debug", &p(&wrong_full), &p(&wrong_dbg)],
    );
    let wrong_id = build_id_of(&wrong_dbg);
    assert_ne!(wrong_id, split_id, "the wrong build has the same build-id");
    let wrong_path = elf::build_id_debug_path(&out.join("debug-wrong"), &split_id);
    std::fs::create_dir_all(wrong_path.parent().unwrap()).unwrap();
    std::fs::copy(&wrong_dbg, &wrong_path).unwrap();

    tool("strip", &["--strip-all", &p(&stripped)]);

    std::fs::remove_dir_all(&work).unwrap();
    println!("cargo:rustc-env=SCRY_TESTBINS={}", out.display());
}

fn args(a: &[&str]) -> Vec<String> {
    COMMON.iter().chain(a).map(|s| s.to_string()).collect()
}

/// gcc arguments for a testbin program `prog` with extra `flags`, output `exe`.
fn prog_args(prog: &str, flags: &[&str], exe: &Path, lib: &Path) -> Vec<String> {
    let mut v = args(flags);
    v.extend(["-o".to_string(), exe.display().to_string()]);
    v.push(format!("{prog}.c"));
    match prog {
        "threads" => v.push("-pthread".into()),
        "dlopener" => v.extend([
            format!("-L{}", lib.display()),
            "-lscryshared".into(),
            "-ldl".into(),
            "-Wl,-rpath,$ORIGIN/../lib".into(),
        ]),
        _ => {}
    }
    v
}

fn run_parallel(jobs: &[Vec<String>], src: &Path) {
    for pair in jobs.chunks(2) {
        let children: Vec<_> = pair
            .iter()
            .map(|a| {
                let child = Command::new("gcc")
                    .args(a)
                    .current_dir(src)
                    .spawn()
                    .unwrap_or_else(|e| panic!("scry-tests: cannot run gcc: {e}"));
                (a, child)
            })
            .collect();
        for (a, child) in children {
            let out = child.wait_with_output().unwrap();
            if !out.status.success() {
                panic!(
                    "scry-tests: gcc failed ({}): gcc {}",
                    out.status,
                    a.join(" ")
                );
            }
        }
    }
}

fn tool(name: &str, a: &[&str]) {
    let st = Command::new(name)
        .args(a)
        .status()
        .unwrap_or_else(|e| panic!("scry-tests: cannot run {name}: {e}"));
    assert!(
        st.success(),
        "scry-tests: {name} {} failed: {st}",
        a.join(" ")
    );
}

fn build_id_of(path: &Path) -> String {
    elf::Elf::open(path)
        .unwrap_or_else(|e| panic!("scry-tests: {e}"))
        .build_id_hex()
        .unwrap_or_else(|| panic!("scry-tests: {} has no build-id", path.display()))
}
