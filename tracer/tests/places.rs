//! Places, variables in scope and the type graph, against gcc/g++-built programs with gdb as
//! the oracle (and rustc-built ones checked for structure).
//!
//! For each probed pc the program runs under gdb to a breakpoint there: `info args` and
//! `info locals` give the names `variables_at` must list, `whatis` the type names, `&var` the
//! address a `Place::Memory` must compute from gdb's registers, `ptype /o` the member
//! offsets.

use scry_tracer::addr::{Bias, FileAddr};
use scry_tracer::debuginfo::{
    DebugSearch, Encoding, ModuleSymbols, Place, StructKind, TypeKind, TypeRef, VarInfo, VarKind,
};
use scry_tracer::regs::Reg;
use scry_tracer::vm::Op;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const PLACES_C: &str = r#"#include <stdio.h>
#include <string.h>

struct flags {
    unsigned int ready : 1;
    unsigned int mode : 3;
    int level : 5;
    unsigned char tag;
    unsigned long wide : 40;
};

union number { int i; float f; unsigned char bytes[4]; };

struct packet {
    int kind;
    union { int code; char letter; };
    struct { short x, y; } pos;
    struct flags fl;
    double grid[3][4];
    const char *label;
    char *const *argv_like;
    int (*grid_row)[4];
    int (*callback)(int, const char *);
};

enum level { LOW = -1, MID = 5, HIGH };

typedef struct packet *PacketPtr;

__thread int tls_counter = 7;
static __thread long tls_big[4];
int total = 100;
static int file_static = 3;
long ext_total = 9;

static int helper(int a, int b) {
    int sum = a + b; // @helper_sum
    if (sum > 1000)
        printf("big %d\n", sum);
    return sum * 2;
}

__attribute__((noinline)) int compute(PacketPtr p, int n) {
    int acc = total; // @compute_first
    for (int i = 0; i < n; i++) {
        int acc = i * 2;
        static int calls;
        calls++;
        tls_counter += acc; // @compute_inner
    }
    int total = acc + p->kind; // @compute_total_decl
    union number num;
    num.i = total;
    enum level lv = total > 10 ? HIGH : LOW;
    total += helper(total, num.i) + lv; // @compute_after
    return total;
}

int main(int argc, char **argv) {
    struct packet pk;
    memset(&pk, 0, sizeof pk);
    pk.kind = 2;
    pk.code = 65;
    pk.fl.mode = 5;
    pk.fl.level = -3;
    pk.fl.wide = 12345;
    pk.grid[1][2] = 1.5;
    pk.label = "pk";
    pk.argv_like = argv;
    const char *msg = "hello";
    extern long ext_total; /* a block-scope extern: not a local */
    PacketPtr pp = &pk;
    int r = compute(pp, argc + 2); // @main_call
    tls_big[1] = r;
    printf("%s %d %d %ld %d %ld\n", msg, r, file_static, tls_big[1], pk.fl.level, ext_total);
    return 0;
}
"#;

const PLACES_CPP: &str = r#"#include <cstdio>
#include <string>
#include <vector>

namespace geo {
struct Point { int x, y; };
class Shape {
public:
    virtual ~Shape() {}
    virtual int area() const = 0;
    int id = 0;
};
class Rect : public Shape {
public:
    Rect(int w, int h) : w(w), h(h) {}
    int area() const override {
        int a = w * h; // @rect_area
        return a;
    }
    int w, h;
};
template <typename T> struct Box { T value; T *ptr; };
enum class Color : unsigned char { Red = 1, Green = 2 };
}

struct Base1 { long a; };
struct Base2 { int b; };
struct Multi : Base1, Base2 { char c; };

__attribute__((noinline)) int sum_all(const std::vector<int> &v, int &out, const std::string &name) {
    int s = 0;
    for (int x : v) {
        s += x; // @sum_loop
    }
    out = s;
    return s + (int)name.size(); // @sum_ret
}

int main() {
    std::vector<int> nums = {1, 2, 3};
    std::string name = "abc";
    geo::Rect r(3, 4);
    geo::Shape *sp = &r;
    geo::Box<int> box{5, nullptr};
    box.ptr = &box.value;
    geo::Color col = geo::Color::Green;
    geo::Point pt{1, 2};
    Multi m{};
    m.a = 1;
    m.b = 2;
    m.c = 'z';
    int out = 0;
    int total = sum_all(nums, out, name); // @main_sum
    total += sp->area();
    std::printf("%d %d %d %d %d\n", total, out, (int)col, box.value + (int)m.a, pt.y);
    return 0;
}
"#;

const PLACES_RS: &str = r#"
#[derive(Debug)]
pub enum Shape {
    Circle(f64),
    Rect { w: u32, h: u32 },
    Empty,
}

pub struct Holder<'a> {
    pub a: Option<u32>,
    pub b: Option<&'a u64>,
    pub c: Shape,
    pub d: Result<u8, i64>,
    pub e: char,
}

#[inline(never)]
fn show(h: &Holder) -> u64 {
    let n = h.a.unwrap_or(0) as u64 + h.b.copied().unwrap_or(0);
    println!("{:?} {}", h.c, n);
    n
}

fn main() {
    let x = 5u64;
    let h = Holder { a: Some(3), b: Some(&x), c: Shape::Rect { w: 1, h: 2 }, d: Ok(1), e: 'x' };
    std::hint::black_box(&h);
    let circle = Shape::Circle(1.5);
    let empty = Shape::Empty;
    std::hint::black_box((&circle, &empty));
    show(&h);
}
"#;

/// A shared library with a thread-local variable (TLS through the DTV: not yet).
const TLSLIB_C: &str =
    "__thread int lib_tls = 3;\nint bump(int n) {\n    lib_tls += n;\n    return lib_tls;\n}\n";

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

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("scry-places-")
                    && !Path::new("/proc").join(pid).exists()
                {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = std::env::temp_dir().join(format!("scry-places-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("places.c"), PLACES_C).unwrap();
        std::fs::write(dir.join("places.cpp"), PLACES_CPP).unwrap();
        std::fs::write(dir.join("places.rs"), PLACES_RS).unwrap();
        std::fs::write(dir.join("tlslib.c"), TLSLIB_C).unwrap();
        let cc = |out: &str, compiler: &str, src: &str, flags: &[&str]| {
            run(Command::new(compiler)
                .current_dir(&dir)
                .args(flags)
                .args(["-o", out, src]));
        };
        cc("c0", "gcc", "places.c", &["-g", "-O0"]);
        cc("c2", "gcc", "places.c", &["-g", "-O2"]);
        // DWARF 4: bitfields as DW_AT_bit_offset, big-endian style.
        cc("c0v4", "gcc", "places.c", &["-gdwarf-4", "-O0"]);
        cc("c0np", "gcc", "places.c", &["-g", "-O0", "-no-pie"]);
        cc("cpp0", "g++", "places.cpp", &["-g", "-O0"]);
        cc("cpp2", "g++", "places.cpp", &["-g", "-O2"]);
        // Type units: structs referenced by signature (DW_FORM_ref_sig8), in .debug_info
        // (DWARF 5) and in .debug_types (DWARF 4).
        cc(
            "cpptu",
            "g++",
            "places.cpp",
            &["-g", "-O0", "-fdebug-types-section"],
        );
        cc(
            "cpptu4",
            "g++",
            "places.cpp",
            &["-gdwarf-4", "-O0", "-fdebug-types-section"],
        );
        cc(
            "libtls.so",
            "gcc",
            "tlslib.c",
            &["-g", "-O0", "-shared", "-fPIC"],
        );
        run(Command::new("rustc").current_dir(&dir).args([
            "-g",
            "-C",
            "opt-level=0",
            "--crate-name",
            "places",
            "-o",
            "rs0",
            "places.rs",
        ]));
        Fixture { dir }
    })
}

fn load(path: &Path) -> ModuleSymbols {
    ModuleSymbols::load(path, &DebugSearch { debug_dirs: vec![] })
        .unwrap_or_else(|e| panic!("load {}: {e}", path.display()))
}

/// The line of `src` carrying `@marker`.
fn line_in(src: &str, marker: &str) -> u32 {
    let tag = format!("@{marker}");
    src.lines()
        .position(|l| l.contains(&tag))
        .unwrap_or_else(|| panic!("no marker {marker}")) as u32
        + 1
}

fn gdb(prog: &Path, cmds: &[String]) -> String {
    let mut c = Command::new("gdb");
    c.args(["-batch", "-nx", "-iex", "set debuginfod enabled off"]);
    c.args(["-iex", "set width 0", "-iex", "set height 0"]);
    c.args([
        "-iex",
        "set print elements 4",
        "-iex",
        "set print pretty off",
    ]);
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

/// What gdb says at a breakpoint at file address `pc` of `prog`.
#[derive(Debug, Default)]
struct Stop {
    /// `info args` names.
    args: Vec<String>,
    /// `info locals` names.
    locals: Vec<String>,
    /// True if gdb's frame 0 is an inlined copy.
    inlined: bool,
    /// `info args` and `info locals` after `up`.
    args1: Vec<String>,
    locals1: Vec<String>,
    /// Registers from `info registers` (general registers, fs_base).
    regs: HashMap<Reg, u64>,
    /// `&name` for each name asked for that has an address.
    addrs: HashMap<String, u64>,
    /// `whatis name` for each name asked for.
    whatis: HashMap<String, String>,
    /// `output/x name` for each name asked for, as gdb prints it.
    printed: HashMap<String, String>,
    /// Extra `output/x EXPR` values asked for, by expression.
    values: HashMap<String, u64>,
    /// The load bias gdb's run used.
    bias: u64,
}

/// The names of `name = value` lines.
fn names_of(block: &str) -> Vec<String> {
    block
        .lines()
        .filter_map(|l| {
            let (name, _) = l.split_once(" = ")?;
            (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                .then(|| name.to_string())
        })
        .collect()
}

/// What to ask gdb at one pc: `&n`, `whatis n`, `output/x n` for each name, `output/x e` for
/// each expression.
struct Ask {
    pc: u64,
    names: Vec<String>,
    exprs: Vec<String>,
}

/// Runs `prog` under gdb once, stopping at each asked pc (temporary breakpoints, driven by
/// a gdb Python script so that a failing command, `&r` of a register variable, does not end
/// the run), and collects what gdb says at each: args, locals, registers, the asked names
/// and expressions. Pcs never reached are absent.
fn gdb_stops(m: &ModuleSymbols, prog: &Path, asks: &[Ask]) -> HashMap<u64, Stop> {
    let main = m.symbol_addr("main").expect("main").0;
    let quote = |v: &[String]| -> String {
        let items: Vec<String> = v.iter().map(|x| format!("\"{x}\"")).collect();
        format!("[{}]", items.join(", "))
    };
    let mut table = String::new();
    for ask in asks {
        table += &format!(
            "    {}: ({}, {}),\n",
            ask.pc as i64 - main as i64,
            quote(&ask.names),
            quote(&ask.exprs)
        );
    }
    let script = format!(
        r#"import gdb

def run(cmd):
    try:
        return gdb.execute(cmd, to_string=True)
    except gdb.error as e:
        return "error: " + str(e) + "\n"

asks = {{
{table}}}
gdb.execute("set pagination off")
gdb.execute("starti", to_string=True)
main = int(gdb.parse_and_eval("(long)&main"))
for off in asks:
    run("tbreak *%d" % (main + off))
out = []
while True:
    run("continue")
    if gdb.selected_inferior().pid == 0:
        break
    pc = int(gdb.parse_and_eval("(long)$pc")) - main
    if pc not in asks:
        continue
    names, exprs = asks[pc]
    out.append("@@stop 0x%x\n" % ({main} + pc))
    for tag, cmd in [("bias", "output/x &main"), ("pc", "output/x $pc"), ("args", "info args"),
                     ("locals", "info locals"), ("regs", "info registers")]:
        out.append("@@%s\n%s\n" % (tag, run(cmd)))
    # Not in the general group on every machine.
    out.append("@@fsbase\n%s\n" % run("info registers fs_base"))
    # The frame the innermost was inlined into, if it was.
    out.append("@@frame\n%s\n" % run("info frame"))
    run("up")
    out.append("@@args1\n%s\n" % run("info args"))
    out.append("@@locals1\n%s\n" % run("info locals"))
    run("down")
    for n in names:
        out.append("@@addr %s=\n%s\n" % (n, run("output/x &" + n)))
        # Raw: without libstdc++'s type printers (`std::vector<int>`), as DWARF spells it.
        out.append("@@whatis %s=\n%s\n" % (n, run("whatis/r " + n)))
        out.append("@@print %s=\n%s\n" % (n, run("output/x " + n)))
    for e in exprs:
        out.append("@@value %s=\n%s\n" % (e, run("output/x " + e)))
    out.append("@@end\n")
run("kill")
print("".join(out))
"#
    );
    let file = prog.with_extension(format!("{}.py", asks.first().map_or(0, |a| a.pc)));
    std::fs::write(&file, script).unwrap();
    let out = gdb(prog, &["source ".to_string() + &file.display().to_string()]);
    let mut stops = HashMap::new();
    for chunk in out.split("@@stop ").skip(1) {
        let section = |start: &str| -> &str {
            let from = chunk
                .find(start)
                .map(|i| i + start.len())
                .unwrap_or(chunk.len());
            let rest = &chunk[from..];
            let to = rest.find("@@").unwrap_or(rest.len());
            &rest[..to]
        };
        let Some(&pc) = hex_tokens(chunk.lines().next().unwrap_or("")).first() else {
            continue;
        };
        let Some(ask) = asks.iter().find(|a| a.pc == pc) else {
            continue;
        };
        let Some(bias) = hex_tokens(section("@@bias\n")).first().map(|b| b - main) else {
            continue;
        };
        if hex_tokens(section("@@pc\n")).first() != Some(&(pc + bias)) {
            continue;
        }
        let mut stop = Stop {
            args: names_of(section("@@args\n")),
            locals: names_of(section("@@locals\n")),
            inlined: section("@@frame\n").contains("inlined into frame"),
            args1: names_of(section("@@args1\n")),
            locals1: names_of(section("@@locals1\n")),
            bias,
            ..Stop::default()
        };
        let regs = format!("{}{}", section("@@regs\n"), section("@@fsbase\n"));
        for l in regs.lines() {
            let mut it = l.split_whitespace();
            let (Some(name), Some(v)) = (it.next(), it.next()) else {
                continue;
            };
            if let (Some(r), Some(h)) = (Reg::from_name(name), v.strip_prefix("0x")) {
                stop.regs.insert(r, u64::from_str_radix(h, 16).unwrap());
            }
        }
        for n in &ask.names {
            let a = section(&format!("@@addr {n}=\n"));
            if let Some(&v) = hex_tokens(a).last()
                && !a.contains("Can't take address")
                && !a.contains("which is in register")
            {
                stop.addrs.insert(n.clone(), v);
            }
            stop.printed.insert(
                n.clone(),
                section(&format!("@@print {n}=\n")).trim().to_string(),
            );
            if let Some(t) = section(&format!("@@whatis {n}=\n"))
                .trim()
                .strip_prefix("type = ")
            {
                stop.whatis.insert(n.clone(), t.to_string());
            }
        }
        for e in &ask.exprs {
            if let Some(&v) = hex_tokens(section(&format!("@@value {e}=\n"))).last() {
                stop.values.insert(e.clone(), v);
            }
        }
        stops.insert(pc, stop);
    }
    stops
}

/// `gdb_stops` for one pc.
fn gdb_stop(
    m: &ModuleSymbols,
    prog: &Path,
    pc: u64,
    names: &[String],
    exprs: &[&str],
) -> Option<Stop> {
    let ask = Ask {
        pc,
        names: names.to_vec(),
        exprs: exprs.iter().map(|e| e.to_string()).collect(),
    };
    gdb_stops(m, prog, &[ask]).remove(&pc)
}

/// Evaluates address ops with gdb's registers (no memory: -O0 locations need none).
fn eval(ops: &[Op], regs: &HashMap<Reg, u64>) -> u64 {
    let mut stack: Vec<u64> = Vec::new();
    for op in ops {
        match op {
            Op::Reg(r) => stack.push(regs[r]),
            Op::Const(c) => stack.push(*c),
            Op::Add => {
                let b = stack.pop().unwrap();
                let a = stack.pop().unwrap();
                stack.push(a.wrapping_add(b));
            }
            Op::Sub => {
                let b = stack.pop().unwrap();
                let a = stack.pop().unwrap();
                stack.push(a.wrapping_sub(b));
            }
            other => panic!("unexpected op {other:?} in {ops:?}"),
        }
    }
    assert_eq!(stack.len(), 1, "{ops:?}");
    stack[0]
}

/// Runs value ops on gdb's registers; None if they need memory or something the test does
/// not model.
fn eval_value(ops: &[Op], regs: &HashMap<Reg, u64>) -> Option<u64> {
    let mut st: Vec<u64> = Vec::new();
    for op in ops {
        let bin = |st: &mut Vec<u64>, f: fn(u64, u64) -> u64| {
            let b = st.pop()?;
            let a = st.pop()?;
            st.push(f(a, b));
            Some(())
        };
        match op {
            Op::Reg(r) => st.push(*regs.get(r)?),
            Op::Const(c) => st.push(*c),
            Op::Add => bin(&mut st, u64::wrapping_add)?,
            Op::Sub => bin(&mut st, u64::wrapping_sub)?,
            Op::Mul => bin(&mut st, u64::wrapping_mul)?,
            Op::And => bin(&mut st, |a, b| a & b)?,
            Op::Or => bin(&mut st, |a, b| a | b)?,
            Op::Xor => bin(&mut st, |a, b| a ^ b)?,
            Op::Shl => bin(&mut st, |a, b| a.wrapping_shl(b as u32))?,
            Op::ShrU => bin(&mut st, |a, b| a.wrapping_shr(b as u32))?,
            Op::ShrS => bin(&mut st, |a, b| (a as i64).wrapping_shr(b as u32) as u64)?,
            Op::Neg => {
                let a = st.pop()?;
                st.push(a.wrapping_neg());
            }
            Op::Not => {
                let a = st.pop()?;
                st.push(!a);
            }
            Op::SExt(bits) => {
                let a = st.pop()?;
                let sh = 64 - u32::from(*bits);
                st.push((((a << sh) as i64) >> sh) as u64);
            }
            Op::ZExt(bits) => {
                let a = st.pop()?;
                st.push(a & (u64::MAX >> (64 - u32::from(*bits))));
            }
            _ => return None,
        }
    }
    st.pop()
}

/// Integer-like types (gdb's `output/x` prints their bits), with their size.
fn scalar_size(m: &ModuleSymbols, mut t: TypeRef) -> Option<u64> {
    for _ in 0..16 {
        match m.type_kind(t) {
            TypeKind::Typedef { target, .. }
            | TypeKind::Const(target)
            | TypeKind::Volatile(target) => t = target,
            TypeKind::Base {
                encoding: Encoding::Float,
                ..
            } => return None,
            TypeKind::Base { size, .. } | TypeKind::Enum { size, .. } => return Some(size),
            TypeKind::Pointer { .. } => return Some(8),
            _ => return None,
        }
    }
    None
}

/// Address ops as a gdb expression (`($rbp + -56)`), for reading through them in gdb.
fn gdb_expr(ops: &[Op]) -> String {
    let mut stack: Vec<String> = Vec::new();
    for op in ops {
        match op {
            Op::Reg(r) => stack.push(format!("${}", r.name())),
            Op::Const(c) => stack.push(format!("{}", *c as i64)),
            Op::Add => {
                let b = stack.pop().unwrap();
                let a = stack.pop().unwrap();
                stack.push(format!("({a} + {b})"));
            }
            other => panic!("unexpected op {other:?} in {ops:?}"),
        }
    }
    stack.pop().unwrap()
}

/// True if `t` is a C++ reference (gdb's `&r` is then the referent's address).
fn is_reference(m: &ModuleSymbols, t: TypeRef) -> bool {
    matches!(m.type_kind(t), TypeKind::Reference { .. })
}

fn names(vars: &[VarInfo], kinds: &[VarKind]) -> Vec<String> {
    vars.iter()
        .filter(|v| kinds.contains(&v.kind))
        .map(|v| v.name.clone())
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Where a breakpoint at the first address of line `line` of `file` lands in `m`: every
/// site's address.
fn line_sites(m: &ModuleSymbols, file: &str, line: u32) -> Vec<u64> {
    m.resolve_line(file, line)
        .unwrap_or_else(|e| panic!("{file}:{line}: {e}"))
        .iter()
        .map(|s| s.addr.0)
        .collect()
}

/// The instruction addresses of the first `len` bytes of function `name`'s out-of-line
/// copy (from its probe address on).
fn body_pcs(m: &ModuleSymbols, prog: &Path, name: &str, len: u64) -> Vec<u64> {
    let Some(entry) = m
        .resolve_function(name)
        .unwrap()
        .into_iter()
        .find(|s| !s.inlined)
    else {
        return Vec::new();
    };
    let entry = entry.addr.0;
    let dis = run(Command::new("objdump")
        .args(["-d", "--no-show-raw-insn"])
        .arg(format!("--start-address={entry:#x}"))
        // Beyond the window: objdump decodes the instruction cut at the stop address as
        // bytes, which would put a breakpoint mid-instruction.
        .arg(format!("--stop-address={:#x}", entry + len + 16))
        .arg(prog));
    dis.lines()
        .filter_map(|l| {
            let (a, rest) = l.trim().split_once(':')?;
            // Instruction lines only (`11a0:  mov ...`), not labels.
            (!rest.trim().is_empty()).then_some(())?;
            u64::from_str_radix(a.trim(), 16).ok()
        })
        .filter(|&a| a < entry + len)
        .collect()
}

/// Checks `variables_at` against gdb at each pc: argument names in order, local names as
/// a multiset (gdb keeps the locals of a lexical block in a hash table, so their order is
/// gdb's own), and for each variable the type name (`whatis`) and, for a `Memory` place,
/// the address; for a value in registers or known to DWARF, the value gdb prints; in an
/// inlined copy, the names of the frame it was inlined into (gdb's `up`). Returns how many
/// pcs gdb stopped at, how many values (not addresses) were compared, and at how many pcs
/// an outer inline frame was.
fn check_against_gdb(prog: &Path, pcs: &[u64], check_addresses: bool) -> (usize, usize, usize) {
    let m = load(prog);
    let mut compared = 0;
    let mut values = 0;
    let mut inlined_frames = 0;
    let mut pcs = pcs.to_vec();
    pcs.sort();
    pcs.dedup();
    // What to ask at each pc: every visible variable, and for references the word at the
    // slot our ops compute (gdb's `&r` is the referent's address, which that word holds).
    let mut asks = Vec::new();
    let mut throughs = Vec::new();
    for &pc in &pcs {
        let vars = m.variables_at(FileAddr(pc), Bias(0));
        let names: Vec<String> = vars
            .iter()
            .filter(|v| !v.shadowed)
            .map(|v| v.name.clone())
            .collect();
        let through: HashMap<String, String> = vars
            .iter()
            .filter(|v| !v.shadowed && is_reference(&m, v.ty))
            .filter_map(|v| match &v.place {
                Place::Memory(ops) => Some((
                    v.name.clone(),
                    format!("*(unsigned long *){}", gdb_expr(ops)),
                )),
                _ => None,
            })
            .collect();
        asks.push(Ask {
            pc,
            names,
            exprs: through.values().cloned().collect(),
        });
        throughs.push(through);
    }
    let mut stops = gdb_stops(&m, prog, &asks);
    for (&pc, through) in pcs.iter().zip(&throughs) {
        let vars = m.variables_at(FileAddr(pc), Bias(0));
        let Some(stop) = stops.remove(&pc) else {
            continue;
        };
        compared += 1;
        let at = format!(
            "{} at {pc:#x} ({:?})",
            prog.display(),
            m.describe(FileAddr(pc))
        );
        assert_eq!(names(&vars, &[VarKind::Param]), stop.args, "args {at}");
        assert_eq!(
            sorted(names(&vars, &[VarKind::Local, VarKind::StaticLocal])),
            sorted(stop.locals.clone()),
            "locals {at}"
        );
        // The frame the copy was inlined into, as gdb shows it after `up`.
        let outer = m.variables_in_frame(FileAddr(pc), 1, Bias(stop.bias));
        assert_eq!(outer.is_some(), stop.inlined, "inlined frame {at}");
        if let Some(outer) = outer {
            assert_eq!(
                names(&outer, &[VarKind::Param]),
                stop.args1,
                "args in frame 1 {at}"
            );
            assert_eq!(
                sorted(names(&outer, &[VarKind::Local, VarKind::StaticLocal])),
                sorted(stop.locals1.clone()),
                "locals in frame 1 {at}"
            );
            inlined_frames += 1;
        }
        let vars = m.variables_at(FileAddr(pc), Bias(stop.bias));
        for v in vars.iter().filter(|v| !v.shadowed) {
            if let Some(w) = stop.whatis.get(&v.name) {
                assert_eq!(&m.type_name(v.ty), w, "whatis {} {at}", v.name);
            }
            // Values not in memory: ours, computed from gdb's registers, against gdb's.
            let printed = stop.printed.get(&v.name).map(String::as_str).unwrap_or("");
            let size = scalar_size(&m, v.ty);
            let mask = |x: u64| match size {
                Some(s) if s < 8 => x & ((1u64 << (s * 8)) - 1),
                _ => x,
            };
            let gdb_value = hex_tokens(printed).first().copied();
            match &v.place {
                Place::OptimizedOut => {
                    assert!(
                        printed.contains("<optimized out>"),
                        "{} {at}: gdb says {printed}",
                        v.name
                    );
                    values += 1;
                    continue;
                }
                Place::Value(ops) if size.is_some() && !printed.contains('{') => {
                    if let Some(ours) = eval_value(ops, &stop.regs) {
                        assert_eq!(
                            Some(mask(ours)),
                            gdb_value,
                            "{} {at}: {ops:?}, gdb {printed}",
                            v.name
                        );
                        values += 1;
                    }
                    continue;
                }
                Place::Implicit(bytes) if size.is_some() => {
                    let mut w = [0u8; 8];
                    let n = bytes.len().min(8);
                    w[..n].copy_from_slice(&bytes[..n]);
                    assert_eq!(
                        Some(mask(u64::from_le_bytes(w))),
                        gdb_value,
                        "{} {at}: gdb {printed}",
                        v.name
                    );
                    values += 1;
                    continue;
                }
                _ => {}
            }
            if !check_addresses && !matches!(v.place, Place::Memory(_)) {
                continue;
            }
            match &v.place {
                Place::Memory(ops) => {
                    let gdb_addr = stop.addrs.get(&v.name).unwrap_or_else(|| {
                        panic!("gdb has no address for {} {at}; ours: {ops:?}", v.name)
                    });
                    match through.get(&v.name) {
                        Some(e) => assert_eq!(stop.values[e], *gdb_addr, "&{} {at}: {e}", v.name),
                        None => assert_eq!(
                            eval(ops, &stop.regs),
                            *gdb_addr,
                            "&{} {at}: {ops:?}",
                            v.name
                        ),
                    }
                }
                Place::Unavailable(_) | Place::Pieces(_) if !check_addresses => {}
                other => panic!("{} is not in memory at -O0 {at}: {other:?}", v.name),
            }
        }
    }
    (compared, values, inlined_frames)
}

#[test]
fn c_variables_at_o0_match_gdb_info_args_and_locals() {
    let f = fixture();
    let prog = f.path("c0");
    let m = load(&prog);
    let mut pcs = Vec::new();
    for marker in [
        "helper_sum",
        "compute_first",
        "compute_inner",
        "compute_total_decl",
        "compute_after",
        "main_call",
    ] {
        pcs.extend(line_sites(&m, "places.c", line_in(PLACES_C, marker)));
    }
    let (compared, _, _) = check_against_gdb(&prog, &pcs, true);
    assert_eq!(compared, pcs.len(), "gdb stopped at every pc");

    // Shadowing: in the loop body the inner `acc` hides the function's.
    let pc = line_sites(&m, "places.c", line_in(PLACES_C, "compute_inner"))[0];
    let vars = m.variables_at(FileAddr(pc), Bias(0));
    let accs: Vec<(bool, VarKind)> = vars
        .iter()
        .filter(|v| v.name == "acc")
        .map(|v| (v.shadowed, v.kind))
        .collect();
    assert_eq!(accs, [(false, VarKind::Local), (true, VarKind::Local)]);
    let calls = vars.iter().find(|v| v.name == "calls").unwrap();
    assert_eq!(calls.kind, VarKind::StaticLocal);
    assert!(matches!(&calls.place, Place::Memory(ops) if matches!(ops.as_slice(), [Op::Const(_)])));
    // The innermost `acc` is the one `variable` finds.
    let acc = m.variable(FileAddr(pc), "acc", Bias(0)).unwrap();
    assert!(!acc.shadowed);
    assert_eq!(acc.decl_line, Some(line_in(PLACES_C, "compute_first") + 2));
}

#[test]
fn c_variables_at_o2_match_gdb_info_args_and_locals() {
    let f = fixture();
    let prog = f.path("c2");
    let m = load(&prog);
    let mut pcs = Vec::new();
    for marker in [
        "helper_sum",
        "compute_first",
        "compute_inner",
        "compute_total_decl",
        "compute_after",
        "main_call",
    ] {
        if let Ok(sites) = m.resolve_line("places.c", line_in(PLACES_C, marker)) {
            pcs.extend(sites.iter().map(|s| s.addr.0));
        }
    }
    // Every instruction of compute's out-of-line body too: gdb's view must agree at each
    // one, not just at line starts (location lists change mid-line).
    pcs.extend(body_pcs(&m, &prog, "compute", 0x80));
    pcs.extend(body_pcs(&m, &prog, "main", 0x80));
    pcs.sort();
    pcs.dedup();
    let (compared, values, inlined) = check_against_gdb(&prog, &pcs, false);
    eprintln!("{compared} stops, {values} values, {inlined} in inlined copies");
    assert!(
        compared >= 10,
        "gdb stopped at only {compared} of {} pcs",
        pcs.len()
    );
    assert!(values >= 30, "only {values} values compared");
    assert!(inlined >= 1, "no pc in an inlined copy");
}

#[test]
fn cpp_variables_at_match_gdb_at_o0_and_o2() {
    let f = fixture();
    for (prog, addresses) in [
        ("cpp0", true),
        ("cpp2", false),
        ("cpptu", true),
        ("cpptu4", true),
    ] {
        let prog = f.path(prog);
        let m = load(&prog);
        let mut pcs = Vec::new();
        for marker in ["rect_area", "sum_loop", "sum_ret", "main_sum"] {
            if let Ok(sites) = m.resolve_line("places.cpp", line_in(PLACES_CPP, marker)) {
                pcs.extend(sites.iter().map(|s| s.addr.0));
            }
        }
        if prog.ends_with("cpp2") {
            pcs.extend(body_pcs(&m, &prog, "sum_all", 0x80));
            pcs.extend(body_pcs(&m, &prog, "main", 0x100));
        }
        let (compared, values, inlined) = check_against_gdb(&prog, &pcs, addresses);
        eprintln!(
            "{}: {compared} stops, {values} values, {inlined} in inlined copies",
            prog.display()
        );
        assert!(
            compared >= 3,
            "{}: gdb stopped at only {compared} pcs",
            prog.display()
        );
        if !addresses {
            assert!(
                values >= 10,
                "{}: only {values} values compared",
                prog.display()
            );
            assert!(
                inlined >= 5,
                "{}: only {inlined} pcs in inlined copies",
                prog.display()
            );
        }
    }
}

/// The leaf members `ptype /o` lists, in order: (byte offset, bit offset for bitfields,
/// name). Members of a union print no offset; they sit at the union's.
fn ptype_leaves(ptype: &str) -> Vec<(u64, Option<u64>, String)> {
    let mut out = Vec::new();
    let mut enclosing: Vec<u64> = vec![0];
    for line in ptype.lines().skip(1) {
        let t = line.trim();
        if t.starts_with('}') {
            enclosing.pop();
            continue;
        }
        let Some(rest) = t.strip_prefix("/*") else {
            continue;
        };
        let Some((numbers, decl)) = rest.split_once("*/") else {
            continue;
        };
        if numbers.contains("XXX") {
            continue;
        }
        let decl = decl.trim();
        let pos = numbers.split_once('|').map(|(o, _)| o.trim());
        let (offset, bit) = match pos {
            Some(p) if !p.is_empty() => match p.split_once(':') {
                Some((o, b)) => (o.trim().parse().unwrap(), Some(b.trim().parse().unwrap())),
                None => (p.parse().unwrap(), None),
            },
            _ => (*enclosing.last().unwrap(), None),
        };
        if decl.ends_with('{') {
            enclosing.push(offset);
            continue;
        }
        let Some(decl) = decl.strip_suffix(';') else {
            continue;
        };
        let decl = decl.split(" : ").next().unwrap();
        let name = match decl.split_once("(*") {
            Some((_, r)) => r.split(')').next().unwrap().to_string(),
            None => decl
                .split('[')
                .next()
                .unwrap()
                .rsplit([' ', '*'])
                .next()
                .unwrap()
                .to_string(),
        };
        out.push((offset, bit, name));
    }
    out
}

/// Our members of `t` flattened like `ptype /o` prints them: struct and union members
/// expanded in place (not through typedefs), compiler-made members left out.
fn our_leaves(m: &ModuleSymbols, t: TypeRef, base: u64, out: &mut Vec<(u64, Option<u64>, String)>) {
    let TypeKind::Struct { members, .. } = m.type_kind(t) else {
        panic!("{} is not a struct", m.type_name(t))
    };
    for mem in members.iter().filter(|mem| !mem.artificial) {
        let at = base + mem.offset;
        match (m.type_kind(mem.ty), mem.bitfield) {
            (TypeKind::Struct { .. }, None) => our_leaves(m, mem.ty, at, out),
            (_, bits) => out.push((
                at,
                bits.map(|(b, _)| b),
                mem.name.clone().unwrap_or_default(),
            )),
        }
    }
}

fn ty(m: &ModuleSymbols, name: &str) -> TypeRef {
    m.find_type(name)
        .unwrap_or_else(|| panic!("no type {name} in {}", m.path().display()))
}

/// Peels typedefs and qualifiers.
fn peel(m: &ModuleSymbols, mut t: TypeRef) -> TypeRef {
    while let TypeKind::Typedef { target, .. }
    | TypeKind::Const(target)
    | TypeKind::Volatile(target) = m.type_kind(t)
    {
        t = target;
    }
    t
}

fn member<'a>(kind: &'a TypeKind, name: &str) -> &'a scry_tracer::debuginfo::Member {
    let TypeKind::Struct { members, .. } = kind else {
        panic!("not a struct: {kind:?}")
    };
    members
        .iter()
        .find(|m| m.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no member {name} in {kind:?}"))
}

#[test]
fn c_struct_layouts_match_ptype_o() {
    let f = fixture();
    // DWARF 5 bitfields (DW_AT_data_bit_offset) and DWARF 4 ones (DW_AT_bit_offset).
    for prog in ["c0", "c0v4"] {
        let path = f.path(prog);
        let m = load(&path);
        for name in ["struct packet", "struct flags", "union number"] {
            let ptype = run(Command::new("gdb")
                .args(["-batch", "-nx", "-iex", "set debuginfod enabled off"])
                .arg("-ex")
                .arg(format!("ptype /o {name}"))
                .arg(&path));
            let mut ours = Vec::new();
            our_leaves(&m, ty(&m, name), 0, &mut ours);
            assert_eq!(ours, ptype_leaves(&ptype), "{prog} {name}:\n{ptype}");
            let size = run(Command::new("gdb")
                .args(["-batch", "-nx", "-iex", "set debuginfod enabled off"])
                .arg("-ex")
                .arg(format!("output sizeof({name})"))
                .arg(&path));
            assert_eq!(
                m.type_size(ty(&m, name)),
                Some(size.trim().parse().unwrap()),
                "{prog} sizeof {name}"
            );
        }
        // Bitfield sizes, and the anonymous union member.
        let flags = m.type_kind(ty(&m, "struct flags"));
        assert_eq!(member(&flags, "mode").bitfield, Some((1, 3)));
        assert_eq!(member(&flags, "level").bitfield, Some((4, 5)));
        assert_eq!(member(&flags, "wide").bitfield, Some((0, 40)));
        assert_eq!(member(&flags, "wide").offset, 3);
        assert_eq!(member(&flags, "tag").bitfield, None);
        let packet = m.type_kind(ty(&m, "struct packet"));
        let TypeKind::Struct {
            members,
            name,
            kind,
            size,
            ..
        } = &packet
        else {
            panic!()
        };
        assert_eq!(
            (name.as_deref(), *kind, *size),
            (Some("packet"), StructKind::Struct, 152)
        );
        let anon = &members[1];
        assert_eq!((anon.name.as_deref(), anon.offset), (None, 4));
        let TypeKind::Struct {
            kind: StructKind::Union,
            name: None,
            members: inner,
            ..
        } = m.type_kind(anon.ty)
        else {
            panic!("{:?}", m.type_kind(anon.ty))
        };
        let inner: Vec<_> = inner
            .iter()
            .map(|m| (m.name.clone().unwrap(), m.offset))
            .collect();
        assert_eq!(inner, [("code".to_string(), 0), ("letter".to_string(), 0)]);
        assert_eq!(m.type_name(anon.ty), "union {...}");
        assert_eq!(m.type_name(member(&packet, "pos").ty), "struct {...}");
    }
}

#[test]
fn c_types_kinds_and_names_match_gdb() {
    let f = fixture();
    let path = f.path("c0");
    let m = load(&path);
    let packet = m.type_kind(ty(&m, "struct packet"));
    // Names of member types as gdb's whatis spells them.
    let members = [
        "label",
        "argv_like",
        "grid_row",
        "callback",
        "grid",
        "fl",
        "pos",
    ];
    let mut cmds = vec!["-batch", "-nx", "-iex", "set debuginfod enabled off"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    for mem in members {
        cmds.push("-ex".into());
        cmds.push(format!("whatis ((struct packet *)0)->{mem}"));
    }
    let out = run(Command::new("gdb").args(&cmds).arg(&path));
    let gdb_names: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("type = "))
        .collect();
    let ours: Vec<String> = members
        .iter()
        .map(|mem| m.type_name(member(&packet, mem).ty))
        .collect();
    assert_eq!(ours, gdb_names);
    assert_eq!(
        ours,
        [
            "const char *",
            "char * const *",
            "int (*)[4]",
            "int (*)(int, const char *)",
            "double [3][4]",
            "struct flags",
            "struct {...}"
        ]
    );

    // A 2-D array.
    let TypeKind::Array { element, dims } = m.type_kind(member(&packet, "grid").ty) else {
        panic!()
    };
    assert_eq!(dims, [Some(3), Some(4)]);
    assert_eq!(
        m.type_kind(element),
        TypeKind::Base {
            name: "double".into(),
            size: 8,
            encoding: Encoding::Float
        }
    );
    // const char *: a pointer to a const signed char.
    let TypeKind::Pointer { pointee: Some(p) } = m.type_kind(member(&packet, "label").ty) else {
        panic!()
    };
    let TypeKind::Const(c) = m.type_kind(p) else {
        panic!()
    };
    assert_eq!(
        m.type_kind(c),
        TypeKind::Base {
            name: "char".into(),
            size: 1,
            encoding: Encoding::SignedChar
        }
    );
    // A function pointer.
    let TypeKind::Pointer { pointee: Some(fp) } = m.type_kind(member(&packet, "callback").ty)
    else {
        panic!()
    };
    assert_eq!(m.type_kind(fp), TypeKind::Function { name: None });
    // The typedef'd pointer.
    let pp = ty(&m, "PacketPtr");
    let TypeKind::Typedef { name, target } = m.type_kind(pp) else {
        panic!()
    };
    assert_eq!(name, "PacketPtr");
    let TypeKind::Pointer { pointee: Some(s) } = m.type_kind(target) else {
        panic!()
    };
    assert_eq!(s, ty(&m, "struct packet"));
    assert_eq!(m.type_name(target), "struct packet *");
    assert_eq!(m.type_size(pp), Some(8));
    // The enum, against gdb's ptype.
    let out = run(Command::new("gdb")
        .args([
            "-batch",
            "-nx",
            "-iex",
            "set debuginfod enabled off",
            "-ex",
            "ptype enum level",
        ])
        .arg(&path));
    assert_eq!(out.trim(), "type = enum level {LOW = -1, MID = 5, HIGH}");
    assert_eq!(
        m.type_kind(ty(&m, "enum level")),
        TypeKind::Enum {
            name: Some("level".into()),
            size: 4,
            signed: true,
            enumerators: vec![(-1, "LOW".into()), (5, "MID".into()), (6, "HIGH".into())]
        }
    );
    // The union.
    let TypeKind::Struct {
        kind: StructKind::Union,
        size: 4,
        members,
        ..
    } = m.type_kind(ty(&m, "union number"))
    else {
        panic!()
    };
    assert!(members.iter().all(|m| m.offset == 0));
    // Base types by C spellings, void, and what does not exist.
    assert_eq!(
        m.type_kind(ty(&m, "unsigned long")),
        TypeKind::Base {
            name: "long unsigned int".into(),
            size: 8,
            encoding: Encoding::Unsigned
        }
    );
    assert_eq!(m.type_name(ty(&m, "int")), "int");
    assert_eq!(m.type_kind(ty(&m, "void")), TypeKind::Void);
    assert_eq!(m.find_type("struct nosuch"), None);
    assert_eq!(m.find_type("packet"), None, "C needs the struct keyword");
    assert_eq!(m.pointer_size(), 8);
}

#[test]
fn thread_locals_of_the_executable_are_fs_base_relative() {
    let f = fixture();
    for prog in ["c0", "c0np", "c2"] {
        let path = f.path(prog);
        let m = load(&path);
        let pc = line_sites(&m, "places.c", line_in(PLACES_C, "compute_inner"))[0];
        let names = ["tls_counter".to_string(), "tls_big".to_string()];
        let stop = gdb_stop(&m, &path, pc, &names, &[]).expect("gdb stops");
        for n in &names {
            let v = m.variable(FileAddr(pc), n, Bias(stop.bias)).unwrap();
            assert_eq!(v.kind, VarKind::Global);
            if !stop.addrs.contains_key(n) {
                // -O2 drops the location of tls_big; gdb says so too.
                assert!(stop.printed[n].contains("<optimized out>"), "{prog} {n}");
                assert_eq!(v.place, Place::OptimizedOut, "{prog} {n}");
                continue;
            }
            let Place::Memory(ops) = &v.place else {
                panic!("{prog} {n}: {:?}", v.place)
            };
            assert_eq!(ops[0], Op::Reg(Reg::FsBase), "{prog} {n}: {ops:?}");
            assert_eq!(eval(ops, &stop.regs), stop.addrs[n], "{prog} &{n}: {ops:?}");
        }
    }
    // A shared library's thread-locals need the DTV.
    let m = load(&f.path("libtls.so"));
    let pc = m.resolve_function("bump").unwrap()[0].addr;
    let v = m.variable(pc, "lib_tls", Bias(0x7f00_0000_0000)).unwrap();
    assert_eq!(
        v.place,
        Place::Unavailable(
            "thread-local variable in a shared library: needs the DTV, not yet".into()
        )
    );
}

#[test]
fn a_local_declared_further_down_does_not_hide_a_global_yet() {
    let f = fixture();
    let path = f.path("c0");
    let m = load(&path);
    let bias = Bias(0x5555_5555_4000);
    let total_global = m.symbol_addr("total").unwrap().0 + bias.0;
    // Before `int total = ...;` the name is the global (C scope; gdb would show the local).
    let first = FileAddr(line_sites(&m, "places.c", line_in(PLACES_C, "compute_first"))[0]);
    let v = m.variable(first, "total", bias).unwrap();
    assert_eq!(
        (v.kind, v.place),
        (
            VarKind::Global,
            Place::Memory(vec![Op::Const(total_global)])
        )
    );
    // `variables_at` still lists the local, as gdb's info locals does.
    assert!(
        m.variables_at(first, bias)
            .iter()
            .any(|v| v.name == "total" && v.kind == VarKind::Local)
    );
    // Without an outer variable of that name: not in scope, saying why.
    let err = m.variable(first, "num", bias).unwrap_err().to_string();
    assert!(err.contains("'num' is declared on line"), "{err}");
    // From its line on, the local.
    for marker in ["compute_total_decl", "compute_after"] {
        let pc = FileAddr(line_sites(&m, "places.c", line_in(PLACES_C, marker))[0]);
        let v = m.variable(pc, "total", bias).unwrap();
        assert_eq!(v.kind, VarKind::Local, "{marker}");
        assert!(matches!(&v.place, Place::Memory(ops) if ops[0] == Op::Reg(Reg::Rbp)));
    }
    // Parameters are never hidden; neither are locals of inner blocks (their block starts at
    // the declaration).
    let inner = FileAddr(line_sites(&m, "places.c", line_in(PLACES_C, "compute_inner"))[0]);
    assert_eq!(
        m.variable(inner, "acc", bias).unwrap().decl_line,
        Some(line_in(PLACES_C, "compute_first") + 2)
    );
    assert_eq!(m.variable(first, "n", bias).unwrap().kind, VarKind::Param);
    // Unknown names list what is in scope.
    let err = m.variable(inner, "nosuch", bias).unwrap_err().to_string();
    assert!(
        err.contains("'nosuch' is not in scope at places.c:"),
        "{err}"
    );
    let names = m.names_in_scope(inner);
    for n in ["acc", "calls", "i", "p", "n", "file_static", "total"] {
        assert!(names.iter().any(|x| x == n), "{n} in {names:?}");
    }
}

#[test]
fn cpp_classes_bases_templates_and_references() {
    let f = fixture();
    for prog in ["cpp0", "cpptu", "cpptu4"] {
        let path = f.path(prog);
        let m = load(&path);
        let rect = m.type_kind(ty(&m, "geo::Rect"));
        let TypeKind::Struct {
            kind, bases, size, ..
        } = &rect
        else {
            panic!("{rect:?}")
        };
        assert_eq!((*kind, *size), (StructKind::Class, 24), "{prog}");
        assert_eq!(bases.len(), 1);
        assert_eq!(
            (m.type_name(bases[0].0), bases[0].1),
            ("geo::Shape".to_string(), 0)
        );
        assert_eq!(
            (member(&rect, "w").offset, member(&rect, "h").offset),
            (12, 16)
        );
        let shape = m.type_kind(bases[0].0);
        let TypeKind::Struct { members, .. } = &shape else {
            panic!()
        };
        assert!(members[0].artificial, "{prog}: {:?}", members[0]);
        assert_eq!(members[0].name.as_deref(), Some("_vptr.Shape"));
        assert_eq!(member(&shape, "id").offset, 8);

        // Multiple inheritance: gdb says Base2 is 8 bytes into a Multi.
        let multi = m.type_kind(ty(&m, "Multi"));
        let TypeKind::Struct { bases, .. } = &multi else {
            panic!()
        };
        let bases: Vec<(String, u64)> = bases.iter().map(|(b, o)| (m.type_name(*b), *o)).collect();
        assert_eq!(bases, [("Base1".to_string(), 0), ("Base2".to_string(), 8)]);
        assert_eq!(member(&multi, "c").offset, 12);
        assert_eq!(ty(&m, "struct Multi"), ty(&m, "Multi"));

        // Templates.
        let b = ty(&m, "geo::Box<int>");
        let TypeKind::Struct { template_args, .. } = m.type_kind(b) else {
            panic!()
        };
        assert_eq!(
            template_args
                .iter()
                .map(|t| m.type_name(*t))
                .collect::<Vec<_>>(),
            ["int"]
        );
        let v = ty(&m, "std::vector<int, std::allocator<int> >");
        assert_eq!(m.type_name(v), "std::vector<int, std::allocator<int> >");
        assert_eq!(m.type_size(v), Some(24));

        // enum class with an underlying unsigned char.
        assert_eq!(
            m.type_kind(ty(&m, "geo::Color")),
            TypeKind::Enum {
                name: Some("geo::Color".into()),
                size: 1,
                signed: false,
                enumerators: vec![(1, "Red".into()), (2, "Green".into())]
            }
        );

        // References and `this`.
        let pc = FileAddr(line_sites(&m, "places.cpp", line_in(PLACES_CPP, "sum_ret"))[0]);
        let v = m.variable(pc, "v", Bias(0)).unwrap();
        let TypeKind::Reference {
            target,
            rvalue: false,
        } = m.type_kind(v.ty)
        else {
            panic!()
        };
        assert_eq!(
            peel(&m, target),
            ty(&m, "std::vector<int, std::allocator<int> >")
        );
        let out = m.variable(pc, "out", Bias(0)).unwrap();
        assert_eq!(m.type_name(out.ty), "int &");
        let pc = FileAddr(line_sites(&m, "places.cpp", line_in(PLACES_CPP, "rect_area"))[0]);
        let this = m.variable(pc, "this", Bias(0)).unwrap();
        assert_eq!(
            (this.kind, m.type_name(this.ty)),
            (VarKind::Param, "const geo::Rect * const".to_string())
        );
    }
}

#[test]
fn rust_enums_describe_their_variants() {
    let f = fixture();
    let m = load(&f.path("rs0"));
    let variants = |name: &str| {
        let t = ty(&m, name);
        let TypeKind::Struct {
            variant: Some(info),
            members,
            ..
        } = m.type_kind(t)
        else {
            panic!("{name}: {:?}", m.type_kind(t))
        };
        assert!(members.is_empty(), "{name}: the variants hold the data");
        info
    };
    // Option<u32>: a tag at 0, the payload after it.
    let opt = variants("core::option::Option<u32>");
    let d = opt.discr.clone().expect("a discriminant");
    assert_eq!((d.offset, d.size), (0, 4));
    let vs: Vec<(&str, Option<u64>)> = opt
        .variants
        .iter()
        .map(|v| (v.member.name.as_deref().unwrap(), v.discr_value))
        .collect();
    assert_eq!(vs, [("None", Some(0)), ("Some", Some(1))]);
    let some = m.type_kind(opt.variants[1].member.ty);
    assert_eq!(member(&some, "__0").offset, 4);
    assert_eq!(m.type_name(member(&some, "__0").ty), "u32");
    assert_eq!(
        m.type_name(opt.variants[1].member.ty),
        "core::option::Option<u32>::Some"
    );

    // Option<&u64>: niche-optimised, the pointer is the discriminant; Some is the default.
    let opt = variants("core::option::Option<&u64>");
    let d = opt.discr.clone().expect("a discriminant");
    assert_eq!((d.offset, d.size), (0, 8));
    let vs: Vec<(&str, Option<u64>)> = opt
        .variants
        .iter()
        .map(|v| (v.member.name.as_deref().unwrap(), v.discr_value))
        .collect();
    assert_eq!(vs, [("None", Some(0)), ("Some", None)]);
    let some = m.type_kind(opt.variants[1].member.ty);
    let TypeKind::Pointer { pointee: Some(p) } = m.type_kind(member(&some, "__0").ty) else {
        panic!()
    };
    assert_eq!(m.type_name(p), "u64");
    assert_eq!(m.type_name(member(&some, "__0").ty), "&u64");

    // A plain enum with data.
    let shape = variants("places::Shape");
    let names: Vec<&str> = shape
        .variants
        .iter()
        .map(|v| v.member.name.as_deref().unwrap())
        .collect();
    assert_eq!(names, ["Circle", "Rect", "Empty"]);
    let values: Vec<Option<u64>> = shape.variants.iter().map(|v| v.discr_value).collect();
    assert_eq!(values, [Some(0), Some(1), Some(2)]);
    assert!(shape.discr.is_some());
    let rect = m.type_kind(shape.variants[1].member.ty);
    assert_eq!(
        (
            m.type_name(member(&rect, "w").ty),
            m.type_name(member(&rect, "h").ty)
        ),
        ("u32".to_string(), "u32".to_string())
    );
    let circle = m.type_kind(shape.variants[0].member.ty);
    assert_eq!(
        m.type_kind(member(&circle, "__0").ty),
        TypeKind::Base {
            name: "f64".into(),
            size: 8,
            encoding: Encoding::Float
        }
    );

    // Structs by path, a Rust reference parameter, and Rust's char.
    let holder = m.type_kind(ty(&m, "places::Holder"));
    let TypeKind::Struct { name: Some(n), .. } = &holder else {
        panic!()
    };
    assert_eq!(n, "places::Holder");
    let pc = m.resolve_function("show").unwrap()[0].addr;
    let h = m.variable(pc, "h", Bias(0)).unwrap();
    assert_eq!(
        (h.kind, m.type_name(h.ty)),
        (VarKind::Param, "&places::Holder".to_string())
    );
    let TypeKind::Pointer { pointee: Some(p) } = m.type_kind(h.ty) else {
        panic!()
    };
    assert_eq!(p, ty(&m, "places::Holder"));
    assert!(matches!(
        m.type_kind(ty(&m, "char")),
        TypeKind::Base {
            encoding: Encoding::Utf,
            size: 4,
            ..
        }
    ));
}

#[test]
fn block_scope_externs_are_globals_not_locals() {
    let f = fixture();
    for prog in ["c0", "c2"] {
        let m = load(&f.path(prog));
        let pc = FileAddr(line_sites(&m, "places.c", line_in(PLACES_C, "main_call"))[0]);
        // gdb's info locals leaves it out (checked against gdb in the tests above).
        assert!(
            !m.variables_at(pc, Bias(0))
                .iter()
                .any(|v| v.name == "ext_total")
        );
        let v = m.variable(pc, "ext_total", Bias(0x1000)).unwrap();
        let addr = m.symbol_addr("ext_total").unwrap().0 + 0x1000;
        assert_eq!(
            (v.kind, v.place),
            (VarKind::Global, Place::Memory(vec![Op::Const(addr)])),
            "{prog}"
        );
        assert_eq!(m.type_name(v.ty), "long int");
    }
}
