//! Builds the testbins, once per build of this package, into
//! `$OUT_DIR/testbins/`, and exports that directory to the support library as
//! the compile-time env var `SCRY_TESTBINS`:
//! - the C testbins (`testbins/c/*.c`, which all include the shared helpers
//!   of `testbins/c/testbin.h`) with gcc;
//! - the C++ testbin `testbins/cpp/shapes.cpp` (includes testbin.h too) with
//!   g++ -std=c++17;
//! - the Rust testbin crate `testbins/rust/` (bin `values`; no dependencies,
//!   its own workspace) with `$CARGO build`, target dir
//!   `$OUT_DIR/rust-target` (kept between builds: incremental), without the
//!   outer build's CARGO_* / RUSTFLAGS-like environment.
//!
//! It also exports `SCRY_RUST_SYSROOT` (`$RUSTC --print sysroot`, empty if
//! that fails): tests/support/gdb.rs loads the Rust pretty-printers from there.
//!
//! Layout of `$OUT_DIR/testbins/` (all with `-g -Wall -Wextra -Werror
//! -Wl,--build-id` unless said otherwise):
//!
//! ```text
//! bin/<prog>-O0, bin/<prog>-O2     prog in loop threads forker signals dlopener inline exprs secrets
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
//! bin/shapes-O0, bin/shapes-O2,   g++ -std=c++17 -g -Wall -Wextra -Werror -I../c
//! bin/faults-O0, bin/faults-O2
//!                                  -Wl,--build-id, -O0 / -O2 (PIE), compiled in
//!                                  testbins/cpp (DW_AT_name "shapes.cpp", "faults.cpp")
//! bin/values-O0                    cargo profile dev: opt-level 0, debug 2
//! bin/values-O2                    cargo profile o2 (inherits release):
//!                                  opt-level 2, debug 2, not stripped
//!                                  (both PIE; DW_AT_name "src/values.rs",
//!                                  DW_AT_comp_dir "<workspace>/testbins/rust")
//! ```
//!
//! No debug file is placed next to `bin/loop-split`, so it can only be found
//! through the build-id directory (or by the debuglink name in a debug dir).

use std::path::{Path, PathBuf};
use std::process::Command;

#[allow(dead_code)]
#[path = "support/elf.rs"]
mod elf;

const PROGRAMS: &[&str] = &[
    "loop", "threads", "forker", "signals", "dlopener", "inline", "exprs", "secrets",
];
const COMMON: &[&str] = &["-g", "-Wall", "-Wextra", "-Werror", "-Wl,--build-id"];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    // Compile in the source directory with bare file names, so the DWARF
    // says DW_AT_name "loop.c", DW_AT_comp_dir "<workspace>/testbins/c".
    let src = manifest
        .join("../testbins/c")
        .canonicalize()
        .expect("testbins/c must exist");
    // Not the whole testbins/ directory: testbins/rust/target (from a manual
    // cargo build there) must not trigger rebuilds.
    for p in [
        "../testbins/c",
        "../testbins/cpp",
        "../testbins/rust/src",
        "../testbins/rust/Cargo.toml",
        "../testbins/rust/Cargo.lock",
        "build.rs",
    ] {
        println!("cargo:rerun-if-changed={p}");
    }
    println!("cargo:rerun-if-changed=support/elf.rs");

    for tool in ["gcc", "g++", "objcopy", "strip"] {
        match Command::new(tool).arg("--version").output() {
            Ok(out) if out.status.success() => {}
            _ => panic!(
                "scry-tests: `{tool}` is required to build the C/C++ testbins but was not found \
                 or does not run (on Debian: apt-get install gcc g++ binutils)"
            ),
        }
    }

    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let out = out_dir.join("testbins");
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
    let mut jobs: Vec<Job> = Vec::new();
    let s = |name: &str| format!("{name}.c");
    let p = |p: &Path| p.display().to_string();

    for name in ["shared", "plugin"] {
        let so = lib.join(format!("libscry{name}.so"));
        jobs.push(gcc(args(&[
            "-O0",
            "-fPIC",
            "-shared",
            "-o",
            &p(&so),
            &s(name),
        ])));
    }
    let job_count_libs = jobs.len();
    for prog in PROGRAMS {
        for opt in ["-O0", "-O2"] {
            let exe = bin.join(format!("{prog}{opt}"));
            jobs.push(gcc(prog_args(prog, &[opt], &exe, &lib)));
        }
    }
    jobs.push(gcc(prog_args(
        "execer",
        &["-O0"],
        &bin.join("execer-O0"),
        &lib,
    )));
    jobs.push(gcc(prog_args(
        "loop",
        &["-O0", "-no-pie", "-fno-pie"],
        &bin.join("loop-O0-nopie"),
        &lib,
    )));
    jobs.push(gcc(prog_args(
        "threads",
        &["-O2", "-no-pie", "-fno-pie"],
        &bin.join("threads-O2-nopie"),
        &lib,
    )));
    let split_full = work.join("loop-split");
    jobs.push(gcc(prog_args("loop", &["-O0"], &split_full, &lib)));
    let wrong_full = work.join("loop-wrong");
    jobs.push(gcc(prog_args(
        "loop",
        &["-O0", "-DSCRY_WRONG_BUILD"],
        &wrong_full,
        &lib,
    )));
    let mut nodebug = prog_args("loop", &["-O0"], &bin.join("loop-nodebug"), &lib);
    nodebug.retain(|a| a != "-g");
    jobs.push(gcc(nodebug));
    let stripped = bin.join("loop-stripped");
    let mut st = prog_args("loop", &["-O0", "-rdynamic"], &stripped, &lib);
    st.retain(|a| a != "-g");
    jobs.push(gcc(st));
    let cpp_src = manifest
        .join("../testbins/cpp")
        .canonicalize()
        .expect("testbins/cpp must exist");
    for prog in ["shapes", "faults"] {
        for opt in ["-O0", "-O2"] {
            let exe = bin.join(format!("{prog}{opt}"));
            let source = format!("{prog}.cpp");
            let a = args(&["-std=c++17", "-I../c", opt, "-o", &p(&exe), &source]);
            jobs.push(Job {
                tool: "g++",
                args: a,
                cwd: cpp_src.clone(),
            });
        }
    }

    // The libraries must exist before dlopener links against them.
    run_parallel(&jobs[..job_count_libs], &src);
    run_parallel(&jobs[job_count_libs..], &src);

    build_rust_testbin(&manifest, &out_dir, &bin);

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
    println!("cargo:rustc-env=SCRY_RUST_SYSROOT={}", rust_sysroot());
}

/// One compiler run: `tool args...` in `cwd` (empty: the C source directory).
struct Job {
    tool: &'static str,
    args: Vec<String>,
    cwd: PathBuf,
}

fn gcc(args: Vec<String>) -> Job {
    Job {
        tool: "gcc",
        args,
        cwd: PathBuf::new(),
    }
}

/// Environment variables of the outer cargo build that must not reach the
/// nested one: every CARGO_* (target dir, build/profile config, encoded
/// rustflags, jobserver, the build-script variables) except CARGO_HOME, and
/// the flags and wrappers cargo reads.
fn leaks_into_cargo(name: &str) -> bool {
    (name.starts_with("CARGO") && name != "CARGO_HOME")
        || name.starts_with("__CARGO")
        || matches!(
            name,
            "RUSTFLAGS"
                | "RUSTDOCFLAGS"
                | "RUSTC_WRAPPER"
                | "RUSTC_WORKSPACE_WRAPPER"
                | "RUSTC_LINKER"
                | "RUSTC_BOOTSTRAP"
                | "MAKEFLAGS"
                | "MFLAGS"
                | "OUT_DIR"
                | "TARGET"
                | "HOST"
                | "PROFILE"
                | "OPT_LEVEL"
                | "DEBUG"
                | "NUM_JOBS"
        )
}

/// Builds testbins/rust twice (profiles dev and o2) into
/// `$OUT_DIR/rust-target` and copies the `values` binaries to
/// `bin/values-O0` and `bin/values-O2`.
fn build_rust_testbin(manifest: &Path, out_dir: &Path, bin: &Path) {
    let crate_manifest = manifest
        .join("../testbins/rust/Cargo.toml")
        .canonicalize()
        .expect("testbins/rust/Cargo.toml must exist");
    let target_dir = out_dir.join("rust-target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    for (profile, dir, name) in [("dev", "debug", "values-O0"), ("o2", "o2", "values-O2")] {
        let mut cmd = Command::new(&cargo);
        for (k, _) in std::env::vars_os() {
            if k.to_str().is_some_and(leaks_into_cargo) {
                cmd.env_remove(&k);
            }
        }
        cmd.args(["build", "--locked", "--quiet", "--profile", profile])
            .arg("--manifest-path")
            .arg(&crate_manifest)
            .arg("--target-dir")
            .arg(&target_dir)
            // Not inside the workspace: no .cargo/config.toml of ours applies.
            .current_dir(out_dir);
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("scry-tests: cannot run {cargo:?}: {e}"));
        if !out.status.success() {
            panic!(
                "scry-tests: building testbins/rust (profile {profile}) failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let built = target_dir.join(dir).join("values");
        std::fs::copy(&built, bin.join(name))
            .unwrap_or_else(|e| panic!("scry-tests: copy {}: {e}", built.display()));
    }
}

/// `$RUSTC --print sysroot`, or "" if that fails.
fn rust_sysroot() -> String {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
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

fn run_parallel(jobs: &[Job], src: &Path) {
    for pair in jobs.chunks(2) {
        let children: Vec<_> = pair
            .iter()
            .map(|j| {
                let cwd = if j.cwd.as_os_str().is_empty() {
                    src
                } else {
                    &j.cwd
                };
                let child = Command::new(j.tool)
                    .args(&j.args)
                    .current_dir(cwd)
                    .spawn()
                    .unwrap_or_else(|e| panic!("scry-tests: cannot run {}: {e}", j.tool));
                (j, child)
            })
            .collect();
        for (j, child) in children {
            let out = child.wait_with_output().unwrap();
            if !out.status.success() {
                panic!(
                    "scry-tests: {} failed ({}): {} {}",
                    j.tool,
                    out.status,
                    j.tool,
                    j.args.join(" ")
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
