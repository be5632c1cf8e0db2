//! The symbol layer against gcc-built programs, with gdb as the oracle.
//!
//! The C sources are written and compiled here (-O0 PIE, -O2, -O0 -no-pie, DWARF 4, a split
//! debug file in a `.build-id` tree and by debuglink, a debug file of another build). For
//! lines and functions the addresses must equal the ones gdb picks for `break`; for variables
//! the plan must compute the address gdb prints for `&var` in the running program.

use scry_tracer::addr::{Bias, FileAddr, RuntimeAddr};
use scry_tracer::debuginfo::{DebugSearch, DebugSource, ModuleSymbols, Site, SymbolError};
use scry_tracer::plan::{AddrBase, Hop, Start, TypeDesc, ValuePlan};
use scry_tracer::regs::Reg;
use scry_tracer::template::parse_path;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const LOOP_C: &str = r#"#include <stdio.h>
#include <string.h>

struct order {
    int id;
    char name[16];
    int qty;
    double price;
    const char *customer;
    union { int flags; unsigned char raw[4]; };
};

enum color { RED, GREEN = 5, BLUE };

int global_counter = 0;
static const char *greeting = "hello";
enum color global_color = GREEN;
int primes[5] = {2, 3, 5, 7, 11};
extern int shared_total;
void tick(void);

static inline __attribute__((always_inline)) int twice(int x) {
    int y = x * 2; // @twice_body
    return y;
}

int one_liner(int a) { return a + VARIANT; } // @one_liner

int process_order(struct order *o, int counter) { // @po_open
    int total = o->qty * 2; // @po_first

    // a comment line @po_comment
    if (counter > 3) { // @po_if
        int extra = twice(counter);
        total += extra; // @po_extra
    }
    total += twice(o->id);
    global_counter += total; // @po_global
    return total;
}

int use_name(const char *name, struct order o) {
    static int calls;
    extern int shared_total; /* a block-scope extern declaration */
    calls++; // @un_calls
    fflush(stdout);
    return (int)strlen(name) + o.qty + calls + shared_total;
}

int main(int argc, char **argv) {
    struct order o = { 7, "alice", 3, 2.5, "bob", { 0 } };
    char c = 'a';
    for (int i = 0; i < 10; i++) { // @main_for
        o.qty = i;
        process_order(&o, i);
    }
    use_name(o.name, o);
    tick();
    printf("%s %d %c %d %d\n", greeting, global_counter, c, (int)global_color, one_liner(argc) + primes[2]);
    return 0;
}
"#;

/// A unit without location lists (no variables): at -O2 gdb plants `break tick` at the entry
/// of the frameless function, not at its second line.
const UTIL_C: &str = "int shared_total = 5;\nint ticks;\nvoid tick(void)\n{\n    ticks += 5;\n    ticks *= 3;\n    if (ticks > 100)\n        ticks = 0;\n}\n";

/// Programs compiled once for all tests.
struct Fixture {
    dir: PathBuf,
}

impl Fixture {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn gcc(dir: &Path, out: &str, flags: &[&str]) {
    run(Command::new("gcc")
        .current_dir(dir)
        .args(flags)
        .args(["-o", out, "loop.c", "util.c"]));
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        // Fixtures of earlier runs whose process is gone are removed (a static has no drop).
        if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("scry-symbols-")
                    && !Path::new("/proc").join(pid).exists()
                {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = std::env::temp_dir().join(format!("scry-symbols-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("loop.c"), LOOP_C).unwrap();
        std::fs::write(dir.join("util.c"), UTIL_C).unwrap();
        gcc(&dir, "loop0", &["-g", "-O0", "-DVARIANT=1"]);
        gcc(&dir, "loop2", &["-g", "-O2", "-DVARIANT=1"]);
        gcc(&dir, "loopnp", &["-g", "-O0", "-no-pie", "-DVARIANT=1"]);
        gcc(&dir, "loop0v4", &["-gdwarf-4", "-O0", "-DVARIANT=1"]);
        // Compressed debug sections (SHF_COMPRESSED, zlib).
        gcc(&dir, "loopz", &["-g", "-gz", "-O2", "-DVARIANT=1"]);
        // Another build of the same program: different code, different build-id.
        gcc(&dir, "other", &["-g", "-O0", "-DVARIANT=2"]);

        // Split debug info: loop0's DWARF in a .build-id tree, the binary stripped elsewhere.
        let bid = build_id_of(&dir.join("loop0"));
        let bid_dir = dir.join("dbg/.build-id").join(&bid[..2]);
        std::fs::create_dir_all(&bid_dir).unwrap();
        let debug = bid_dir.join(format!("{}.debug", &bid[2..]));
        run(Command::new("objcopy")
            .arg("--only-keep-debug")
            .arg(dir.join("loop0"))
            .arg(&debug));
        std::fs::create_dir_all(dir.join("stripped")).unwrap();
        run(Command::new("strip")
            .arg("-g")
            .arg("-o")
            .arg(dir.join("stripped/loop0"))
            .arg(dir.join("loop0")));

        // By debuglink: the debug file in the binary's .debug/ directory.
        std::fs::create_dir_all(dir.join("linked/.debug")).unwrap();
        run(Command::new("objcopy")
            .arg("--only-keep-debug")
            .arg(dir.join("loop0"))
            .arg(dir.join("linked/.debug/loop0.debug")));
        run(Command::new("strip")
            .arg("-g")
            .arg("-o")
            .arg(dir.join("linked/loop0.tmp"))
            .arg(dir.join("loop0")));
        run(Command::new("objcopy")
            .current_dir(dir.join("linked/.debug"))
            .arg("--add-gnu-debuglink=loop0.debug")
            .arg("../loop0.tmp")
            .arg("../loop0"));

        // The wrong debug file: `other`'s DWARF under loop0's build-id path.
        let wrong_dir = dir.join("wrong/.build-id").join(&bid[..2]);
        std::fs::create_dir_all(&wrong_dir).unwrap();
        run(Command::new("objcopy")
            .arg("--only-keep-debug")
            .arg(dir.join("other"))
            .arg(wrong_dir.join(format!("{}.debug", &bid[2..]))));
        Fixture { dir }
    })
}

fn build_id_of(path: &Path) -> String {
    let out = run(Command::new("readelf").arg("-n").arg(path));
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: "))
        .expect("a build-id")
        .trim()
        .to_string()
}

fn load(path: &Path) -> ModuleSymbols {
    ModuleSymbols::load(path, &DebugSearch { debug_dirs: vec![] })
        .unwrap_or_else(|e| panic!("load {}: {e}", path.display()))
}

/// The line of LOOP_C carrying `@marker`.
fn line_of(marker: &str) -> u32 {
    let tag = format!("@{marker}");
    LOOP_C
        .lines()
        .position(|l| l.contains(&tag))
        .unwrap_or_else(|| panic!("no marker {marker}")) as u32
        + 1
}

fn gdb(prog: &Path, cmds: &[String]) -> String {
    let mut c = Command::new("gdb");
    c.args(["-batch", "-nx", "-iex", "set debuginfod enabled off"]);
    for cmd in cmds {
        c.arg("-ex").arg(cmd);
    }
    c.arg(prog);
    let out = c.output().expect("gdb runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn hex_tokens(s: &str) -> Vec<u64> {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter_map(|t| t.strip_prefix("0x"))
        .filter_map(|h| u64::from_str_radix(h, 16).ok())
        .collect()
}

/// The addresses gdb plants for each `break SPEC` (file addresses: the program is not run).
fn gdb_breaks(prog: &Path, specs: &[String]) -> Vec<Vec<u64>> {
    gdb_break_locations(prog, specs)
        .into_iter()
        .map(|locs| locs.into_iter().map(|(a, _)| a).collect())
        .collect()
}

/// For each `break SPEC`: gdb's locations as (address, line gdb reports for it), sorted.
/// Empty when gdb sets no breakpoint.
fn gdb_break_locations(prog: &Path, specs: &[String]) -> Vec<Vec<(u64, u32)>> {
    let mut cmds = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        cmds.push(format!("echo @@{i}\\n"));
        cmds.push(format!("break {s}"));
    }
    cmds.push("echo @@end\\n".to_string());
    cmds.push("info breakpoints".to_string());
    let out = gdb(prog, &cmds);
    let (head, table) = out.split_once("@@end\n").expect("gdb output");
    // Breakpoint numbers per spec.
    let mut numbers = vec![None; specs.len()];
    for chunk in head.split("@@").skip(1) {
        let (i, rest) = chunk.split_once('\n').unwrap_or((chunk, ""));
        let i: usize = i.trim().parse().unwrap();
        numbers[i] = rest.lines().find_map(|l| {
            l.strip_prefix("Breakpoint ")?
                .split(' ')
                .next()?
                .parse::<u32>()
                .ok()
        });
    }
    // Table rows: `1  breakpoint keep y 0x...1144 in f at loop.c:25` or `1.2  y 0x... in f at loop.c:20`.
    let mut by_number: HashMap<u32, Vec<(u64, u32)>> = HashMap::new();
    for line in table.lines() {
        let Some(first) = line.split_whitespace().next() else {
            continue;
        };
        let Ok(n) = first.split('.').next().unwrap().parse::<u32>() else {
            continue;
        };
        let addr = line
            .split_whitespace()
            .find_map(|t| t.strip_prefix("0x"))
            .and_then(|h| u64::from_str_radix(h, 16).ok());
        let at = line
            .rsplit(':')
            .next()
            .and_then(|l| l.trim().parse::<u32>().ok());
        if let (Some(addr), Some(at)) = (addr, at) {
            by_number.entry(n).or_default().push((addr, at));
        }
    }
    numbers
        .iter()
        .map(|n| {
            let mut v = n
                .and_then(|n| by_number.get(&n).cloned())
                .unwrap_or_default();
            v.sort();
            v.dedup();
            v
        })
        .collect()
}

fn addrs(sites: &[Site]) -> Vec<u64> {
    sites.iter().map(|s| s.addr.0).collect()
}

fn value(m: &ModuleSymbols, pc: u64, path: &str) -> Result<(ValuePlan, TypeDesc), SymbolError> {
    m.compile_value(FileAddr(pc), &parse_path(path).unwrap(), Bias(0))
}

#[test]
fn elf_facts_match_readelf() {
    let f = fixture();
    for (name, pie) in [("loop0", true), ("loopnp", false)] {
        let path = f.path(name);
        let m = load(&path);
        assert_eq!(m.path(), path);
        assert_eq!(m.build_id(), Some(build_id_of(&path).as_str()));
        assert_eq!(m.is_dyn(), pie);
        assert_eq!(m.debug_source(), &DebugSource::Embedded);
        assert!(m.has_dwarf());
        let header = run(Command::new("readelf").args(["-hlW"]).arg(&path));
        let entry = header
            .lines()
            .find(|l| l.contains("Entry point address"))
            .map(hex_tokens)
            .unwrap()[0];
        assert_eq!(m.entry(), FileAddr(entry));
        let loads: Vec<Vec<u64>> = header
            .lines()
            .filter(|l| l.trim_start().starts_with("LOAD"))
            .map(hex_tokens)
            .collect();
        assert_eq!(m.segments().len(), loads.len());
        for (seg, l) in m.segments().iter().zip(&loads) {
            // LOAD offset vaddr paddr filesz memsz
            assert_eq!(
                (seg.offset, seg.vaddr, seg.filesz, seg.memsz),
                (l[0], l[1], l[3], l[4])
            );
        }
        assert_eq!(m.segments().iter().filter(|s| s.executable).count(), 1);
        let nm = run(Command::new("nm").arg(&path));
        let sym = |n: &str| {
            nm.lines()
                .find_map(|l| {
                    let mut it = l.split_whitespace();
                    let (a, _, s) = (it.next()?, it.next()?, it.next()?);
                    (s == n).then(|| u64::from_str_radix(a, 16).unwrap())
                })
                .unwrap()
        };
        assert_eq!(m.symbol_addr("main"), Some(FileAddr(sym("main"))));
        assert_eq!(
            m.symbol_addr("global_counter"),
            Some(FileAddr(sym("global_counter")))
        );
        assert_eq!(m.symbol_addr("no_such_symbol"), None);
        assert_eq!(
            m.symbol_for(FileAddr(sym("process_order") + 5)),
            Some(("process_order".to_string(), 5))
        );
    }
}

#[test]
fn lines_resolve_to_the_addresses_gdb_picks() {
    // Every line of the source, in every build: where gdb finds code at exactly that line,
    // we plant at the same addresses; where gdb has to move to a later line, we refuse with
    // NoCodeAtLine (except a function's opening line, which both move past the prologue).
    let f = fixture();
    let count = LOOP_C.lines().count() as u32;
    let mut compared = 0;
    for prog in ["loop0", "loop2", "loopnp", "loop0v4", "loopz"] {
        let path = f.path(prog);
        let m = load(&path);
        let specs: Vec<String> = (1..=count).map(|l| format!("loop.c:{l}")).collect();
        let expected = gdb_break_locations(&path, &specs);
        for (line, want) in (1..=count).zip(expected) {
            let ours = m.resolve_line("loop.c", line);
            let exact = !want.is_empty() && want.iter().all(|(_, l)| *l == line);
            match ours {
                Ok(sites) => {
                    let want: Vec<u64> = want.iter().map(|(a, _)| *a).collect();
                    assert_eq!(
                        addrs(&sites),
                        want,
                        "{prog}: loop.c:{line} vs gdb; ours: {sites:#x?}"
                    );
                    compared += 1;
                }
                Err(SymbolError::NoCodeAtLine { .. }) => {
                    assert!(!exact, "{prog}: gdb has code at loop.c:{line}: {want:#x?}")
                }
                Err(e) => panic!("{prog}: loop.c:{line}: {e}"),
            }
        }
    }
    assert!(compared > 5 * 20, "only {compared} lines with code");
}

#[test]
fn an_inlined_helper_line_has_one_site_per_copy() {
    let m = load(&fixture().path("loop0"));
    let sites = m.resolve_line("loop.c", line_of("twice_body")).unwrap();
    assert_eq!(sites.len(), 2, "{sites:#x?}");
    for s in &sites {
        assert!(s.inlined);
        assert_eq!(s.function, "twice");
        assert_eq!(s.line, line_of("twice_body"));
        assert!(
            s.file.ends_with("/loop.c") && s.file.starts_with('/'),
            "{}",
            s.file
        );
    }
    // The line in the caller is not inlined, and path suffixes on component boundaries match.
    let dir = fixture()
        .dir
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    for spec in [
        "loop.c".to_string(),
        format!("{dir}/loop.c"),
        fixture().path("loop.c").to_str().unwrap().to_string(),
    ] {
        let s = m.resolve_line(&spec, line_of("po_extra")).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].function, "process_order");
        assert!(!s[0].inlined);
    }
    assert!(matches!(
        m.resolve_line("oop.c", 3),
        Err(SymbolError::UnknownFile { .. })
    ));
}

#[test]
fn the_opening_line_moves_past_the_prologue_like_gdb() {
    let m = load(&fixture().path("loop0"));
    let open = m.resolve_line("loop.c", line_of("po_open")).unwrap();
    let func = m.resolve_function("process_order").unwrap();
    assert_eq!(addrs(&open), addrs(&func));
    // gdb reports the line the address is on: the first line of the body.
    assert_eq!(open[0].line, line_of("po_first"));
}

#[test]
fn functions_resolve_to_the_addresses_gdb_picks() {
    let f = fixture();
    let names = [
        "process_order",
        "main",
        "twice",
        "one_liner",
        "use_name",
        "tick",
    ];
    for prog in ["loop0", "loop2", "loopnp", "loop0v4", "loopz"] {
        let path = f.path(prog);
        let m = load(&path);
        let specs: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let expected = gdb_breaks(&path, &specs);
        for (n, want) in names.iter().zip(expected) {
            let sites = m
                .resolve_function(n)
                .unwrap_or_else(|e| panic!("{prog} {n}: {e}"));
            assert_eq!(
                addrs(&sites),
                want,
                "{prog}: break {n} vs gdb; ours: {sites:#x?}"
            );
            for s in &sites {
                assert_eq!(s.function, *n);
                assert_eq!(
                    s.inlined,
                    *n == "twice" || m.symbol_for(s.addr).is_some_and(|(sym, _)| sym != *n)
                );
            }
        }
    }
}

#[test]
fn unknown_files_lines_and_functions_explain_themselves() {
    let path = fixture().path("loop0");
    let m = load(&path);
    match m.resolve_line("nosuch.c", 3) {
        Err(SymbolError::UnknownFile { file, hint, .. }) => {
            assert_eq!(file, "nosuch.c");
            assert!(hint.contains("loop.c"), "{hint}");
        }
        other => panic!("{other:?}"),
    }
    match m.resolve_line("oop.c", 3) {
        Err(SymbolError::UnknownFile { hint, .. }) => assert!(
            hint.starts_with("; similar files: ") && hint.contains("/loop.c"),
            "{hint}"
        ),
        other => panic!("{other:?}"),
    }
    // A comment line: gdb moves a breakpoint there to the next line with code; we refuse and
    // name the neighbours.
    let comment = line_of("po_comment");
    let gdb_next = gdb(&path, &[format!("break loop.c:{comment}")]);
    let next: u32 = gdb_next
        .rsplit("line ")
        .next()
        .unwrap()
        .trim()
        .trim_end_matches('.')
        .parse()
        .unwrap();
    assert_eq!(next, line_of("po_if"));
    match m.resolve_line("loop.c", comment) {
        Err(SymbolError::NoCodeAtLine { line, hint, .. }) => {
            assert_eq!(line, comment);
            assert_eq!(
                hint,
                format!(
                    "; nearest lines with code: {} and {next}",
                    line_of("po_first")
                )
            );
        }
        other => panic!("{other:?}"),
    }
    // Blank line right after po_first.
    assert!(matches!(
        m.resolve_line("loop.c", line_of("po_first") + 1),
        Err(SymbolError::NoCodeAtLine { .. })
    ));
    match m.resolve_function("process") {
        Err(SymbolError::UnknownFunction { name, hint, .. }) => {
            assert_eq!(name, "process");
            assert!(hint.contains("process_order"), "{hint}");
        }
        other => panic!("{other:?}"),
    }
    let e = m.resolve_function("zzz_nothing").unwrap_err();
    assert!(matches!(e, SymbolError::UnknownFunction { .. }));
    assert!(e.to_string().contains("zzz_nothing"));
}

#[test]
fn split_debug_info_by_build_id_and_by_debuglink() {
    let f = fixture();
    let full = load(&f.path("loop0"));
    let line = line_of("po_extra");

    let bid = build_id_of(&f.path("loop0"));
    let expected_debug = f
        .path("dbg/.build-id")
        .join(&bid[..2])
        .join(format!("{}.debug", &bid[2..]));
    let by_id = ModuleSymbols::load(
        &f.path("stripped/loop0"),
        &DebugSearch {
            debug_dirs: vec![f.path("dbg")],
        },
    )
    .unwrap();
    assert_eq!(by_id.debug_source(), &DebugSource::BuildId(expected_debug));
    assert_eq!(
        by_id.resolve_line("loop.c", line).unwrap(),
        full.resolve_line("loop.c", line).unwrap()
    );
    assert_eq!(
        by_id.resolve_function("twice").unwrap(),
        full.resolve_function("twice").unwrap()
    );
    // Frame-based locals need the stripped binary's .eh_frame and the debug file's DWARF.
    let pc = full.resolve_line("loop.c", line).unwrap()[0].addr.0;
    assert_eq!(
        value(&by_id, pc, "total").unwrap(),
        value(&full, pc, "total").unwrap()
    );

    let by_link = ModuleSymbols::load(
        &f.path("linked/loop0"),
        &DebugSearch {
            debug_dirs: vec![f.path("nowhere")],
        },
    )
    .unwrap();
    let real_dir = std::fs::canonicalize(f.path("linked")).unwrap();
    assert_eq!(
        by_link.debug_source(),
        &DebugSource::DebugLink(real_dir.join(".debug/loop0.debug"))
    );
    assert_eq!(
        by_link.resolve_line("loop.c", line).unwrap(),
        full.resolve_line("loop.c", line).unwrap()
    );

    // Nothing found: symbols only, and the error lists where we looked.
    let none = ModuleSymbols::load(
        &f.path("stripped/loop0"),
        &DebugSearch {
            debug_dirs: vec![f.path("nowhere")],
        },
    )
    .unwrap();
    assert_eq!(none.debug_source(), &DebugSource::None);
    assert!(!none.has_dwarf());
    match none.resolve_line("loop.c", line) {
        Err(SymbolError::NoDebugInfo { what, looked, .. }) => {
            assert_eq!(what, "a line probe (file.c:LINE)");
            let want = format!(
                ", {}",
                f.path("nowhere/.build-id")
                    .join(&bid[..2])
                    .join(format!("{}.debug", &bid[2..]))
                    .display()
            );
            assert!(looked.starts_with(&want), "{looked}");
        }
        other => panic!("{other:?}"),
    }
    let sym = none.resolve_function("process_order").unwrap();
    assert_eq!(sym.len(), 1);
    assert_eq!(sym[0].addr, none.symbol_addr("process_order").unwrap());
    assert_eq!(
        (sym[0].file.as_str(), sym[0].line, sym[0].inlined),
        ("", 0, false)
    );
    assert_eq!(
        none.describe(FileAddr(sym[0].addr.0 + 4))
            .function
            .as_deref(),
        Some("process_order")
    );
}

#[test]
fn a_debug_file_of_another_build_is_refused() {
    let f = fixture();
    let bid = build_id_of(&f.path("loop0"));
    match ModuleSymbols::load(
        &f.path("stripped/loop0"),
        &DebugSearch {
            debug_dirs: vec![f.path("wrong")],
        },
    ) {
        Err(SymbolError::BuildIdMismatch {
            expected,
            found,
            debug,
            ..
        }) => {
            assert_eq!(expected, bid);
            assert_eq!(found, build_id_of(&f.path("other")));
            assert!(debug.starts_with(f.path("wrong")));
        }
        Err(e) => panic!("{e}"),
        Ok(m) => panic!("loaded with {:?}", m.debug_source()),
    }
}

#[test]
fn describe_names_function_file_and_line() {
    let m = load(&fixture().path("loop0"));
    let site = &m.resolve_line("loop.c", line_of("po_extra")).unwrap()[0];
    let loc = m.describe(site.addr);
    assert_eq!(loc.function.as_deref(), Some("process_order"));
    assert_eq!(loc.line, Some(line_of("po_extra")));
    assert!(loc.file.unwrap().ends_with("/loop.c"));
    let inl = &m.resolve_line("loop.c", line_of("twice_body")).unwrap()[0];
    assert_eq!(m.describe(inl.addr).function.as_deref(), Some("twice"));
}

/// Values gdb prints at a breakpoint in the running program: each `p/x EXPR` as a number.
fn gdb_live(prog: &Path, at: &str, exprs: &[&str]) -> Vec<u64> {
    let mut cmds = vec![format!("break {at}"), "run".to_string()];
    for e in exprs {
        cmds.push("echo @@v=".to_string());
        cmds.push(format!("output/x {e}"));
        cmds.push("echo \\n".to_string());
    }
    cmds.push("kill".to_string());
    let out = gdb(prog, &cmds);
    let vals: Vec<u64> = out
        .lines()
        .filter_map(|l| l.strip_prefix("@@v="))
        .map(|l| hex_tokens(l)[0])
        .collect();
    assert_eq!(vals.len(), exprs.len(), "gdb output: {out}");
    vals
}

/// Member offsets from `ptype /o`: `/*  20  |  4 */  int qty;`; members of an anonymous
/// union print no offset and sit at the union's.
fn ptype_offsets(ptype: &str) -> HashMap<String, i64> {
    let mut out = HashMap::new();
    let mut enclosing = 0i64;
    for line in ptype.lines().skip(1) {
        let Some(rest) = line.trim_start().strip_prefix("/*") else {
            continue;
        };
        let Some((numbers, decl)) = rest.split_once("*/") else {
            continue;
        };
        let decl = decl.trim();
        let offset = numbers
            .split_once('|')
            .and_then(|(o, _)| o.trim().parse::<i64>().ok());
        if decl.ends_with('{') {
            enclosing = offset.unwrap_or(enclosing);
            continue;
        }
        let Some(decl) = decl.strip_suffix(';') else {
            continue;
        };
        let name = decl
            .rsplit([' ', '*'])
            .next()
            .unwrap()
            .split('[')
            .next()
            .unwrap();
        out.insert(name.to_string(), offset.unwrap_or(enclosing));
    }
    out
}

/// Evaluates a plan's address the way the hit path would, from gdb's register values and
/// memory (`Deref` reads an 8-byte pointer through gdb).
fn plan_address(plan: &ValuePlan, regs: &HashMap<Reg, u64>) -> (AddrBase, Vec<Hop>, u64) {
    let Start::Addr(base) = plan.start else {
        panic!("not an address: {plan:?}")
    };
    let start = match base {
        AddrBase::RegOffset { reg, offset } => regs[&reg].wrapping_add(offset as u64),
        AddrBase::Runtime(RuntimeAddr(a)) => a,
    };
    (base, plan.hops.clone(), start)
}

#[test]
fn locals_at_o0_are_frame_based_like_gdb_says() {
    let f = fixture();
    let path = f.path("loop0");
    let m = load(&path);
    let line = line_of("po_extra");
    let pc = m.resolve_line("loop.c", line).unwrap()[0].addr.0;
    let vars = ["total", "counter", "extra", "o"];
    let mut exprs = vec!["$rbp", "$rsp"];
    let addr_exprs: Vec<String> = vars.iter().map(|v| format!("&{v}")).collect();
    exprs.extend(addr_exprs.iter().map(String::as_str));
    exprs.extend(["o", "&o->qty", "&o->flags", "&o->customer"]);
    let live = gdb_live(&path, &format!("loop.c:{line}"), &exprs);
    let regs: HashMap<Reg, u64> = [(Reg::Rbp, live[0]), (Reg::Rsp, live[1])].into();
    for (i, v) in vars.iter().enumerate() {
        let (plan, _) = value(&m, pc, v).unwrap();
        let (base, hops, addr) = plan_address(&plan, &regs);
        assert!(
            matches!(base, AddrBase::RegOffset { reg: Reg::Rbp, .. }),
            "{v}: {plan:?}"
        );
        assert!(hops.is_empty());
        assert_eq!(addr, live[2 + i], "&{v}");
    }
    let (plan, ty) = value(&m, pc, "total").unwrap();
    assert_eq!(plan.size, 4);
    assert_eq!(
        ty,
        TypeDesc::Int {
            name: "int".into(),
            size: 4,
            signed: true
        }
    );

    // o->qty: the pointer's slot, Deref, then qty's offset from `ptype /o struct order`.
    let ptype = gdb(&path, &["ptype /o struct order".to_string()]);
    let offset_of = |member: &str| -> i64 { ptype_offsets(&ptype)[member] };
    let o_slot = live[2 + 3];
    let o_value = live[6];
    for (member, live_addr) in [("qty", live[7]), ("flags", live[8]), ("customer", live[9])] {
        let (plan, _) = value(&m, pc, &format!("o->{member}")).unwrap();
        let (_, hops, slot) = plan_address(&plan, &regs);
        assert_eq!(slot, o_slot);
        assert_eq!(
            hops,
            vec![Hop::Deref, Hop::Offset(offset_of(member))],
            "o->{member}"
        );
        assert_eq!(o_value.wrapping_add(offset_of(member) as u64), live_addr);
    }
    let (qty, _) = value(&m, pc, "o->qty").unwrap();
    assert_eq!((qty.size, qty.then_string), (4, None));
    let (cust, ty) = value(&m, pc, "o->customer").unwrap();
    assert_eq!(cust.then_string, Some(256));
    assert_eq!(
        ty,
        TypeDesc::Pointer {
            name: "const char *".into(),
            cstring: true
        }
    );
    let (name, ty) = value(&m, pc, "o->name").unwrap();
    assert_eq!((name.size, name.then_string), (16, None));
    assert!(
        matches!(
            ty,
            TypeDesc::Array {
                count: 16,
                element_size: 1,
                ..
            }
        ),
        "{ty:?}"
    );
    let (elem, _) = value(&m, pc, "o->name[3]").unwrap();
    assert_eq!(
        elem.hops,
        vec![Hop::Deref, Hop::Offset(offset_of("name") + 3)]
    );
    assert_eq!(elem.size, 1);
    let (whole, ty) = value(&m, pc, "*o").unwrap();
    assert_eq!(whole.hops, vec![Hop::Deref]);
    assert_eq!(whole.size, 48);
    let TypeDesc::Struct { name, members, .. } = ty else {
        panic!("{ty:?}")
    };
    assert_eq!(name, "struct order");
    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["id", "name", "qty", "price", "customer", "<anon>"]);
    assert_eq!(members[2].offset as i64, offset_of("qty"));
}

#[test]
fn globals_statics_and_externs_are_absolute() {
    let f = fixture();
    let path = f.path("loop0");
    let m = load(&path);
    let pc = m.resolve_line("loop.c", line_of("un_calls")).unwrap()[0]
        .addr
        .0;
    let info = |var: &str| -> u64 {
        let out = gdb(
            &path,
            &[
                format!("info scope loop.c:{}", line_of("un_calls")),
                format!("info address {var}"),
            ],
        );
        let line = out
            .lines()
            .rev()
            .find(|l| l.contains("static storage at address"))
            .unwrap_or_else(|| panic!("{out}"));
        *hex_tokens(line).last().unwrap()
    };
    let bias = Bias(0x5555_5555_4000);
    for var in [
        "global_counter",
        "greeting",
        "global_color",
        "shared_total",
        "primes",
    ] {
        let (plan, _) = m
            .compile_value(FileAddr(pc), &parse_path(var).unwrap(), bias)
            .unwrap();
        assert_eq!(
            plan.start,
            Start::Addr(AddrBase::Runtime(RuntimeAddr(info(var) + bias.0))),
            "{var}"
        );
    }
    // A function-level static, in scope at the probe.
    let out = gdb(
        &path,
        &[format!("info scope loop.c:{}", line_of("un_calls"))],
    );
    let calls_line = out
        .lines()
        .find(|l| l.contains("Symbol calls is in static storage"))
        .unwrap_or_else(|| panic!("{out}"));
    let calls = *hex_tokens(calls_line).last().unwrap();
    let (plan, _) = value(&m, pc, "calls").unwrap();
    assert_eq!(
        plan.start,
        Start::Addr(AddrBase::Runtime(RuntimeAddr(calls)))
    );

    // `stdout` is declared by stdio.h and defined in libc; the executable holds a copy
    // (copy relocation) that only the ELF symbol table knows.
    let nm = run(Command::new("nm").arg(&path));
    let stdout_addr = nm
        .lines()
        .find_map(|l| {
            l.strip_suffix(" stdout@GLIBC_2.2.5")
                .or_else(|| l.strip_suffix(" stdout"))
                .and_then(|a| a.split(' ').next())
        })
        .map(|a| u64::from_str_radix(a, 16).unwrap())
        .unwrap_or_else(|| panic!("no stdout in {nm}"));
    let (plan, ty) = m
        .compile_value(FileAddr(pc), &parse_path("stdout").unwrap(), bias)
        .unwrap();
    assert_eq!(
        plan.start,
        Start::Addr(AddrBase::Runtime(RuntimeAddr(stdout_addr + bias.0)))
    );
    assert_eq!(
        (plan.size, ty),
        (
            8,
            TypeDesc::Pointer {
                name: "FILE *".into(),
                cstring: false
            }
        )
    );

    let (plan, ty) = value(&m, pc, "primes[2]").unwrap();
    assert_eq!(
        plan.start,
        Start::Addr(AddrBase::Runtime(RuntimeAddr(info("primes") + 8)))
    );
    assert_eq!(
        ty,
        TypeDesc::Int {
            name: "int".into(),
            size: 4,
            signed: true
        }
    );
    let (plan, ty) = value(&m, pc, "global_color").unwrap();
    assert_eq!(plan.size, 4);
    assert_eq!(
        ty,
        TypeDesc::Enum {
            name: "enum color".into(),
            size: 4,
            signed: false,
            enumerators: vec![(0, "RED".into()), (5, "GREEN".into()), (6, "BLUE".into())]
        }
    );
    let (plan, _) = value(&m, pc, "greeting").unwrap();
    assert_eq!(plan.then_string, Some(256));
    // A const char * parameter is a C string too; a struct parameter passed by value is
    // addressable and `.` works on it.
    let (plan, ty) = value(&m, pc, "name").unwrap();
    assert_eq!((plan.then_string, plan.size), (Some(256), 8));
    assert_eq!(
        ty,
        TypeDesc::Pointer {
            name: "const char *".into(),
            cstring: true
        }
    );
    let (whole, _) = value(&m, pc, "o").unwrap();
    let (qty, _) = value(&m, pc, "o.qty").unwrap();
    let (
        Start::Addr(AddrBase::RegOffset {
            reg: r1,
            offset: o1,
        }),
        Start::Addr(AddrBase::RegOffset {
            reg: r2,
            offset: o2,
        }),
    ) = (&whole.start, &qty.start)
    else {
        panic!("{whole:?} {qty:?}")
    };
    assert_eq!((r1, o1 + 20), (r2, *o2));
    assert!(qty.hops.is_empty());
}

#[test]
fn optimized_code_uses_registers_and_location_lists_like_gdb() {
    let f = fixture();
    let path = f.path("loop2");
    let m = load(&path);
    // Out-of-line process_order: gdb's `break process_order` location that is not inlined.
    let entry = m
        .resolve_function("process_order")
        .unwrap()
        .into_iter()
        .find(|s| !s.inlined)
        .unwrap();
    let scope = gdb(&path, &[format!("info scope *{:#x}", entry.addr.0)]);
    for (var, reg) in [("o", Reg::Rdi), ("counter", Reg::Rsi)] {
        assert!(
            scope.contains(&format!("Symbol {var} is a variable in ${}", reg.name())),
            "{scope}"
        );
        let (plan, _) = value(&m, entry.addr.0, var).unwrap();
        assert_eq!(plan.start, Start::Reg(reg), "{var}");
    }
    // A pointer in a register followed by `->`: the register is the base.
    let (plan, _) = value(&m, entry.addr.0, "o->qty").unwrap();
    assert_eq!(
        plan.start,
        Start::Addr(AddrBase::RegOffset {
            reg: Reg::Rdi,
            offset: 20
        })
    );
    assert!(plan.hops.is_empty());
    // Every variable gdb lists in `info scope` at each probe site agrees with our plan:
    // registers, location lists (the entry covering the pc), constants, optimized out.
    let mut pcs: Vec<u64> = Vec::new();
    for k in [
        "po_first",
        "po_if",
        "po_extra",
        "po_global",
        "main_for",
        "un_calls",
    ] {
        pcs.extend(addrs(&m.resolve_line("loop.c", line_of(k)).unwrap()));
    }
    for n in ["process_order", "use_name", "main", "one_liner"] {
        pcs.extend(addrs(&m.resolve_function(n).unwrap()));
    }
    let cmds: Vec<String> = pcs
        .iter()
        .map(|pc| format!("info scope *{pc:#x}"))
        .collect();
    let out = gdb(&path, &cmds);
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (pc, scope) in pcs.iter().zip(out.split("Scope for *").skip(1)) {
        assert!(scope.starts_with(&format!("{pc:#x}")), "{scope}");
        for sym in scope.split("Symbol ").skip(1) {
            let var = sym.split_whitespace().next().unwrap();
            if sym.contains("is a function") {
                continue;
            }
            let got = value(&m, *pc, var);
            let ctx = format!("{var} at {pc:#x}: gdb says {sym}; we say {got:?}");
            let reg_of = |text: &str| {
                let r = text.split("a variable in $").nth(1)?;
                Reg::from_name(r.split(|c: char| !c.is_alphanumeric()).next()?)
            };
            if sym.contains("is optimized out") {
                assert_eq!(got.unwrap().0.start, Start::OptimizedOut, "{ctx}");
                *seen.entry("optimized out").or_default() += 1;
            } else if sym.contains("is multi-location") {
                // Ranges are printed as `Range 0xA-0xB: <location>`.
                let entry = sym.split("Range ").skip(1).find(|r| {
                    let (a, b) = r.split_once(':').unwrap().0.split_once('-').unwrap();
                    let (a, b) = (hex_tokens(a)[0], hex_tokens(b)[0]);
                    a <= *pc && *pc < b
                });
                match entry {
                    None => assert_eq!(got.unwrap().0.start, Start::OptimizedOut, "{ctx}"),
                    Some(e) if e.contains("DW_OP_entry_value") => {
                        assert!(
                            matches!(got, Err(SymbolError::Unsupported { ref what, .. }) if what.contains("DW_OP_entry_value")),
                            "{ctx}"
                        )
                    }
                    Some(e) => match reg_of(e) {
                        Some(reg) => assert_eq!(got.unwrap().0.start, Start::Reg(reg), "{ctx}"),
                        None => continue,
                    },
                }
                *seen.entry("location list").or_default() += 1;
            } else if let Some(reg) = reg_of(sym) {
                assert_eq!(got.unwrap().0.start, Start::Reg(reg), "{ctx}");
                *seen.entry("register").or_default() += 1;
            } else if let Some(v) = sym.split("a constant with value ").nth(1) {
                let v: u64 = v.split_whitespace().next().unwrap().parse().unwrap();
                let (plan, _) = got.unwrap();
                assert_eq!(
                    plan.start,
                    Start::Const(v.to_le_bytes()[..plan.size as usize].to_vec()),
                    "{ctx}"
                );
                *seen.entry("constant").or_default() += 1;
            } else if sym.contains("DW_OP_fbreg") {
                let (plan, _) = got.unwrap();
                assert!(
                    matches!(
                        plan.start,
                        Start::Addr(AddrBase::RegOffset { reg: Reg::Rsp, .. })
                    ),
                    "{ctx}"
                );
                *seen.entry("frame base").or_default() += 1;
            }
        }
    }
    for kind in [
        "optimized out",
        "location list",
        "register",
        "constant",
        "frame base",
    ] {
        assert!(
            seen.get(kind).is_some_and(|n| *n > 0),
            "no {kind} variable checked: {seen:?}"
        );
    }
    // A stack variable of frameless -O2 code: CFA-based on rsp, at the address gdb prints.
    let sites = m.resolve_line("loop.c", line_of("main_for")).unwrap();
    assert_eq!(sites.len(), 1, "{sites:#x?}");
    let site = sites[0].addr.0;
    let live = gdb_live(
        &path,
        &format!("loop.c:{}", line_of("main_for")),
        &["$rsp", "&o"],
    );
    let (plan, _) = value(&m, site, "o").unwrap();
    let (_, hops, addr) = plan_address(&plan, &[(Reg::Rsp, live[0])].into());
    assert!(hops.is_empty());
    assert_eq!(addr, live[1]);
}

#[test]
fn path_errors_name_the_fix() {
    let m = load(&fixture().path("loop0"));
    let pc = m.resolve_line("loop.c", line_of("po_extra")).unwrap()[0]
        .addr
        .0;
    let bad = |p: &str| match value(&m, pc, p) {
        Err(SymbolError::BadPath { detail, .. }) => detail,
        other => panic!("{p}: {other:?}"),
    };
    assert!(bad("o.qty").contains("use 'o->qty'"));
    assert!(bad("counter->x").contains("not a pointer"));
    let d = bad("o->nosuch");
    assert!(
        d.contains("no member 'nosuch'")
            && d.contains("id, name, qty, price, customer, flags, raw"),
        "{d}"
    );
    assert!(bad("*counter").contains("needs a pointer"));
    assert!(bad("o->name[16]").contains("out of bounds"));
    match value(&m, pc, "nosuch") {
        Err(SymbolError::UnknownVariable { name, at, hint }) => {
            assert_eq!(name, "nosuch");
            assert_eq!(
                at,
                format!("loop.c:{} in process_order", line_of("po_extra"))
            );
            assert!(
                hint.starts_with("; in scope: extra, o, counter, total, "),
                "{hint}"
            );
            assert!(hint.contains("global_counter"), "{hint}");
        }
        other => panic!("{other:?}"),
    }
    let (plan, ty) = value(&m, pc, "$rdi").unwrap();
    assert_eq!(
        plan,
        ValuePlan {
            start: Start::Reg(Reg::Rdi),
            hops: vec![],
            size: 8,
            then_string: None
        }
    );
    assert_eq!(
        ty,
        TypeDesc::Int {
            name: "u64".into(),
            size: 8,
            signed: false
        }
    );
    assert!(matches!(
        value(&m, pc, "$rdi->x"),
        Err(SymbolError::BadPath { .. })
    ));
    // Without DWARF, variables need DWARF; registers still work.
    let f = fixture();
    let none = ModuleSymbols::load(
        &f.path("stripped/loop0"),
        &DebugSearch { debug_dirs: vec![] },
    )
    .unwrap();
    assert!(matches!(
        value(&none, pc, "total"),
        Err(SymbolError::NoDebugInfo { .. })
    ));
    assert!(value(&none, pc, "$rsp").is_ok());
}

#[test]
fn loading_and_resolving_is_fast() {
    // This test binary itself: a few MB of Rust DWARF.
    let exe = std::env::current_exe().unwrap();
    let t = std::time::Instant::now();
    let m = load(&exe);
    let loaded = t.elapsed();
    let this_file = file!().rsplit('/').next().unwrap().to_string();
    let sites = m
        .resolve_line(&format!("tests/{this_file}"), line!())
        .unwrap();
    let resolved = t.elapsed();
    assert!(!sites.is_empty());
    let size = std::fs::metadata(&exe).unwrap().len();
    eprintln!(
        "{} ({} MB): load {loaded:?}, load + resolve_line {resolved:?}",
        exe.display(),
        size >> 20
    );
    let t = std::time::Instant::now();
    let funcs = m.resolve_function("main").unwrap();
    let functions = t.elapsed();
    let described = m.describe(sites[0].addr);
    eprintln!(
        "first resolve_function (indexes every unit): {functions:?}; first describe: {:?}",
        t.elapsed() - functions
    );
    assert!(!funcs.is_empty());
    assert_eq!(described.line, Some(sites[0].line));
    // Generous for unoptimized test builds on a loaded machine; release is far faster.
    assert!(resolved.as_millis() < 3000, "{resolved:?}");
}
