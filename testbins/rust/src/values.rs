//! values.rs - the Rust testbin: the common Rust value shapes (String, &str,
//! Vec, slices, Option with and without a niche, Result, enums with and
//! without data, Box, Rc, Arc, HashMap, nested structs, tuples, arrays),
//! each held as arguments and locals of #[inline(never)] functions with
//! marked probe lines.
//!
//! Used by the integration tests for: reading Rust values at source lines,
//! and as the Rust program gdb and scry are compared on (tests/support/gdb.rs
//! is the gdb side). Built by tests/build.rs as bin/values-O0 (cargo dev
//! profile: opt-level 0, debug 2) and bin/values-O2 (profile o2: opt-level 2,
//! debug 2).
//!
//! Every iteration seq = 0, 1, 2, ... (s = seq as u32) makes these calls, in
//! this order; the values at the marked line, and the record it appends, are:
//!
//! text(seq: u32, owned: String, name: &str, nums: Vec<i32>, bytes: &[u8])
//!                                                        [probe text_body]
//!   owned = "owned-<s>"   name = NAMES[s % 3] ("alice", "bob", "carol")
//!   nums  = s % 3 + 2 elements, nums[i] = 10 * i + s
//!   bytes = the first s % 4 + 1 bytes of b"scry"
//!   local total = sum of nums
//!   "text seq=<s> owned=<owned> name=<name> nums=<n,n,..> bytes=<b,b,..>
//!    total=<total>"
//!
//! options(seq: u32, some: Option<u32>, none: Option<u32>,
//!         found: Option<&Point>, boxed: Option<Box<Point>>)
//!                                                        [probe options_body]
//!   some  = Some(3 * s)   none = None
//!   found = Some(&CORNERS[s % 4]) when s is even, else None
//!           (CORNERS = (0,0), (1,0), (1,1), (0,1))
//!   boxed = Some(Box::new(Point { x: s, y: -s })) when s is odd, else None
//!   local present = how many of some, none, found, boxed are Some (2)
//!   "options seq=<s> some=<3s> none=none found=<x,y|none> boxed=<x,y|none>
//!    present=2"
//!
//! results(seq: u32, ok: Result<i32, String>, err: Result<i32, String>)
//!                                                        [probe results_body]
//!   ok = Ok(2 * s)     err = Err("bad-<s>")
//!   local oks = how many of ok, err are Ok (1)
//!   "results seq=<s> ok=<2s> err=<bad-s> oks=1"
//!
//! enums(seq: u32, shape: &Shape, color: Color, pair: (i32, &str),
//!       triple: (u8, f64, bool))                        [probe enums_body]
//!   shape = by s % 4: Shape::Circle { r: s + 1 }, Shape::Rect { w: s, h: 2 },
//!           Shape::Label("label-<s>"), Shape::Empty
//!   color = by s % 3: Color::Red, Color::Green, Color::Blue
//!   pair  = (-s, NAMES[s % 3])   triple = (s as u8, 0.5 + s, s is even)
//!   local area = 3 * r * r (circle), w * h (rect), 0 (label, empty)
//!   "enums seq=<s> shape=<circle:r|rect:w,h|label:text|empty>
//!    color=<red|green|blue> pair=<a,b> triple=<a,b,c> area=<area>"
//!
//! pointers(seq: u32, boxed: Box<Point>, rc: Rc<Record>, arc: Arc<String>,
//!          map: &Map)                                   [probe pointers_body]
//!   boxed = Box::new(Point { x: 2s, y: 2s + 1 })
//!   rc    = this iteration's Record (see nested), main keeps the other
//!           reference: Rc::strong_count == 2
//!   arc   = Arc::new("shared-across-threads"), made once by main, which keeps
//!           the other reference: Arc::strong_count == 2
//!   map   = s % 3 + 2 entries "k<i>" -> 10 * i + s (Map is a HashMap<String,
//!           i32> with a fixed hasher, so its layout is the same in every run)
//!   local rc_count = Rc::strong_count(&rc)
//!   "pointers seq=<s> boxed=<x,y> rc_id=<id> rc_count=2 rc_label=<label>
//!    arc=<text> arc_count=2 map_size=<n> k0=<s>"
//!
//! Record::nested(&self, seq: u32, corners: [Point; 2])  [probe nested_body]
//!   self = Record { id: s, pos: Point { x: s, y: 1 },
//!                   inner: Inner { label: "inner-<s>", weight: 1.25 * s },
//!                   flags: (s is even, s as u8) }
//!   corners = [CORNERS[s % 4], CORNERS[(s + 1) % 4]]
//!   local dist = |pos.x - corners[0].x| + |pos.y - corners[0].y|
//!   "nested seq=<s> id=<id> pos=<x,y> label=<label> weight=<w>
//!    flags=<bool,n> corners=<x,y;x,y> dist=<d>"
//!
//! Each marked line is `<NAME>_HITS.fetch_add(1, Relaxed); record_<name>(...)`
//! (a call of an #[inline(never)] function: the line keeps its own code at
//! -O2), with nothing else on it: no closures or generic calls, whose code
//! gdb would count as more locations of the line. main passes every argument
//! through std::hint::black_box, so that at -O2 the (crate-internal)
//! functions are not specialized on known arguments (which turned `bytes`'s
//! pointer into <optimized out>); the functions use their arguments again
//! after the marked line, so they stay live there.
//!
//! Floats are written with Rust's Display (0.5, 1.25, 3). Nothing recorded
//! depends on addresses or time, so the n-th hit of a site sees the same
//! values in every run.
//!
//! Options:
//!   --iterations N     iterations, 0 = forever (default 0)
//!   --interval-us U    sleep between iterations in microseconds (default 1000)
//!   --record FILE      append the records above, one line (one write) each
//!   --wait-stdin       after "ready pid=<pid>", block until one byte (or EOF)
//!                      arrives on stdin before the first iteration

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::fs::File;
use std::hash::BuildHasherDefault;
use std::io::{Read, Write as _};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

// ---------------------------------------------------------------------------
// The testbin conventions (the Rust side of testbins/c/testbin.h)
// ---------------------------------------------------------------------------

/// The --record file, if any.
static RECORD: OnceLock<File> = OnceLock::new();

/// Appends one whole line (the formatted args plus '\n') to the --record file
/// with a single write(); exits 3 if the write falls short.
#[inline(never)]
fn record(args: fmt::Arguments) {
    let Some(mut f) = RECORD.get() else { return };
    let mut line = String::new();
    let _ = line.write_fmt(args);
    line.push('\n');
    if f.write(line.as_bytes()).ok() != Some(line.len()) {
        std::process::exit(3);
    }
}

fn usage() -> ! {
    eprintln!("usage: values [--iterations N] [--interval-us U] [--record FILE] [--wait-stdin]");
    std::process::exit(2);
}

struct Options {
    iterations: u64,
    interval_us: u64,
    wait_stdin: bool,
}

fn parse_options() -> Options {
    let mut o = Options { iterations: 0, interval_us: 1000, wait_stdin: false };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--iterations" => o.iterations = value().parse().unwrap_or_else(|_| usage()),
            "--interval-us" => o.interval_us = value().parse().unwrap_or_else(|_| usage()),
            "--record" => {
                let path = value();
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .unwrap_or_else(|e| {
                        eprintln!("{path}: {e}");
                        std::process::exit(2)
                    });
                let _ = RECORD.set(f);
            }
            "--wait-stdin" => o.wait_stdin = true,
            _ => usage(),
        }
    }
    o
}

/// Prints "ready pid=<pid>" (stdout is line buffered: flushed at the
/// newline), then with --wait-stdin blocks until one byte (or EOF) arrives.
fn ready(wait_stdin: bool) {
    println!("ready pid={}", std::process::id());
    let _ = std::io::stdout().flush();
    if wait_stdin {
        let mut b = [0u8; 1];
        while let Err(e) = std::io::stdin().read(&mut b) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                break;
            }
        }
    }
}

/// Joins the items with ','.
fn join<T: fmt::Display>(items: &[T]) -> String {
    let mut s = String::new();
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{v}");
    }
    s
}

// ---------------------------------------------------------------------------
// The values
// ---------------------------------------------------------------------------

const NAMES: [&str; 3] = ["alice", "bob", "carol"];
const BYTES: &[u8] = b"scry";

#[derive(Debug, Clone, Copy, PartialEq)]
struct Point {
    x: i32,
    y: i32,
}

static CORNERS: [Point; 4] = [
    Point { x: 0, y: 0 },
    Point { x: 1, y: 0 },
    Point { x: 1, y: 1 },
    Point { x: 0, y: 1 },
];

struct Inner {
    label: String,
    weight: f64,
}

struct Record {
    id: u32,
    pos: Point,
    inner: Inner,
    flags: (bool, u8),
}

enum Shape {
    Circle { r: u32 },
    Rect { w: u32, h: u32 },
    Label(String),
    Empty,
}

#[derive(Clone, Copy)]
enum Color {
    Red,
    Green,
    Blue,
}

/// A HashMap<String, i32> whose hasher has fixed keys (SipHash-1-3 with zero
/// keys), so the same inserts give the same table in every run.
type Map = HashMap<String, i32, BuildHasherDefault<DefaultHasher>>;

/// Runs of each function so far; bumped on the probe lines.
static TEXT_HITS: AtomicU32 = AtomicU32::new(0);
static OPTIONS_HITS: AtomicU32 = AtomicU32::new(0);
static RESULTS_HITS: AtomicU32 = AtomicU32::new(0);
static ENUMS_HITS: AtomicU32 = AtomicU32::new(0);
static POINTERS_HITS: AtomicU32 = AtomicU32::new(0);
static NESTED_HITS: AtomicU32 = AtomicU32::new(0);

#[inline(never)]
fn record_text(seq: u32, owned: &str, name: &str, nums: &[i32], bytes: &[u8], total: i32) {
    record(format_args!(
        "text seq={seq} owned={owned} name={name} nums={} bytes={} total={total}",
        join(nums),
        join(bytes)
    ));
}

#[inline(never)]
fn text(seq: u32, owned: String, name: &str, nums: Vec<i32>, bytes: &[u8]) -> usize {
    let total: i32 = nums.iter().sum();

    TEXT_HITS.fetch_add(1, Relaxed); record_text(seq, &owned, name, &nums, bytes, total); // @probe text_body
    // Everything is used again after the marked line, so that at -O2 too
    // the values are still live there.
    owned.len() + name.len() + nums.len() + bytes.len() + bytes[0] as usize
}

fn show<T: fmt::Display>(v: Option<T>) -> String {
    match v {
        Some(v) => v.to_string(),
        None => "none".to_string(),
    }
}

fn show_point(p: Option<&Point>) -> String {
    match p {
        Some(p) => format!("{},{}", p.x, p.y),
        None => "none".to_string(),
    }
}

fn show_result(r: &Result<i32, String>) -> String {
    match r {
        Ok(v) => v.to_string(),
        Err(e) => e.clone(),
    }
}

#[inline(never)]
fn record_options(seq: u32, some: Option<u32>, none: Option<u32>, found: Option<&Point>, boxed: Option<&Point>, present: u32) {
    record(format_args!(
        "options seq={seq} some={} none={} found={} boxed={} present={present}",
        show(some),
        show(none),
        show_point(found),
        show_point(boxed)
    ));
}

#[inline(never)]
fn options(seq: u32, some: Option<u32>, none: Option<u32>, found: Option<&Point>, boxed: Option<Box<Point>>) -> u32 {
    let present = some.is_some() as u32 + none.is_some() as u32 + found.is_some() as u32 + boxed.is_some() as u32;

    OPTIONS_HITS.fetch_add(1, Relaxed); record_options(seq, some, none, found, boxed.as_deref(), present); // @probe options_body
    // Everything is used again after the marked line, so that at -O2 too
    // the values are still live there.
    let after = some.unwrap_or(0) + none.unwrap_or(1) + found.map_or(0, |p| p.x as u32);
    after + boxed.map_or(0, |b| (b.x + b.y) as u32) + present
}

#[inline(never)]
fn record_results(seq: u32, ok: &Result<i32, String>, err: &Result<i32, String>, oks: u32) {
    record(format_args!("results seq={seq} ok={} err={} oks={oks}", show_result(ok), show_result(err)));
}

#[inline(never)]
fn results(seq: u32, ok: Result<i32, String>, err: Result<i32, String>) -> u32 {
    let oks = ok.is_ok() as u32 + err.is_ok() as u32;

    RESULTS_HITS.fetch_add(1, Relaxed); record_results(seq, &ok, &err, oks); // @probe results_body
    oks + ok.unwrap_or(0) as u32 + err.map_or_else(|e| e.len() as u32, |v| v as u32)
}

#[inline(never)]
fn record_enums(seq: u32, shape: &Shape, color: Color, pair: (i32, &str), triple: (u8, f64, bool), area: u32) {
    let shape_text = match shape {
        Shape::Circle { r } => format!("circle:{r}"),
        Shape::Rect { w, h } => format!("rect:{w},{h}"),
        Shape::Label(t) => format!("label:{t}"),
        Shape::Empty => "empty".to_string(),
    };
    let color_text = match color {
        Color::Red => "red",
        Color::Green => "green",
        Color::Blue => "blue",
    };
    record(format_args!(
        "enums seq={seq} shape={shape_text} color={color_text} pair={},{} triple={},{},{} area={area}",
        pair.0, pair.1, triple.0, triple.1, triple.2
    ));
}

#[inline(never)]
fn enums(seq: u32, shape: &Shape, color: Color, pair: (i32, &str), triple: (u8, f64, bool)) -> u32 {
    let area = match shape {
        Shape::Circle { r } => 3 * r * r,
        Shape::Rect { w, h } => w * h,
        Shape::Label(_) | Shape::Empty => 0,
    };

    ENUMS_HITS.fetch_add(1, Relaxed); record_enums(seq, shape, color, pair, triple, area); // @probe enums_body
    area + color as u32 + pair.1.len() as u32
}

#[inline(never)]
fn record_pointers(seq: u32, boxed: &Point, rc: &Record, rc_count: usize, arc: &str, arc_count: usize, map: &Map) {
    record(format_args!(
        "pointers seq={seq} boxed={},{} rc_id={} rc_count={rc_count} rc_label={} arc={arc} arc_count={arc_count} map_size={} k0={}",
        boxed.x,
        boxed.y,
        rc.id,
        rc.inner.label,
        map.len(),
        map["k0"]
    ));
}

#[inline(never)]
fn pointers(seq: u32, boxed: Box<Point>, rc: Rc<Record>, arc: Arc<String>, map: &Map) -> usize {
    let rc_count = Rc::strong_count(&rc);

    POINTERS_HITS.fetch_add(1, Relaxed); record_pointers(seq, &boxed, &rc, rc_count, &arc, Arc::strong_count(&arc), map); // @probe pointers_body
    rc_count + arc.len() + map.len() + boxed.x as usize
}

#[inline(never)]
fn record_nested(seq: u32, rec: &Record, corners: &[Point; 2], dist: i32) {
    record(format_args!(
        "nested seq={seq} id={} pos={},{} label={} weight={} flags={},{} corners={},{};{},{} dist={dist}",
        rec.id,
        rec.pos.x,
        rec.pos.y,
        rec.inner.label,
        rec.inner.weight,
        rec.flags.0,
        rec.flags.1,
        corners[0].x,
        corners[0].y,
        corners[1].x,
        corners[1].y
    ));
}

impl Record {
    #[inline(never)]
    fn nested(&self, seq: u32, corners: [Point; 2]) -> f64 {
        let dist = (self.pos.x - corners[0].x).abs() + (self.pos.y - corners[0].y).abs();

        NESTED_HITS.fetch_add(1, Relaxed); record_nested(seq, self, &corners, dist); // @probe nested_body
        self.inner.weight + dist as f64
    }
}

/// The arguments of the probed functions go through black_box, so that the
/// optimizer cannot specialize the (internal) functions on constant or known
/// arguments: at -O2 too every argument arrives as a run-time value.
use std::hint::black_box as bb;

fn main() {
    let opts = parse_options();
    let arc = Arc::new(String::from("shared-across-threads"));
    let mut sink = 0u64;

    ready(opts.wait_stdin);

    let mut seq = 0u64;
    while opts.iterations == 0 || seq < opts.iterations {
        let s = seq as u32;
        let i = s as i32;

        let nums: Vec<i32> = (0..s % 3 + 2).map(|k| 10 * k as i32 + i).collect();
        sink += text(bb(s), bb(format!("owned-{s}")), bb(NAMES[(s % 3) as usize]), bb(nums), bb(&BYTES[..(s % 4 + 1) as usize])) as u64;

        let found = if s % 2 == 0 { Some(&CORNERS[(s % 4) as usize]) } else { None };
        let boxed = if s % 2 == 1 { Some(Box::new(Point { x: i, y: -i })) } else { None };
        sink += options(bb(s), bb(Some(3 * s)), bb(None), bb(found), bb(boxed)) as u64;
        sink += results(bb(s), bb(Ok(2 * i)), bb(Err(format!("bad-{s}")))) as u64;

        let shape = match s % 4 {
            0 => Shape::Circle { r: s + 1 },
            1 => Shape::Rect { w: s, h: 2 },
            2 => Shape::Label(format!("label-{s}")),
            _ => Shape::Empty,
        };
        let color = [Color::Red, Color::Green, Color::Blue][(s % 3) as usize];
        sink += enums(bb(s), bb(&shape), bb(color), bb((-i, NAMES[(s % 3) as usize])), bb((s as u8, 0.5 + s as f64, s % 2 == 0))) as u64;

        let rec = Rc::new(Record {
            id: s,
            pos: Point { x: i, y: 1 },
            inner: Inner { label: format!("inner-{s}"), weight: 1.25 * s as f64 },
            flags: (s % 2 == 0, s as u8),
        });
        let mut map = Map::default();
        for k in 0..s % 3 + 2 {
            map.insert(format!("k{k}"), 10 * k as i32 + i);
        }
        sink += pointers(bb(s), bb(Box::new(Point { x: 2 * i, y: 2 * i + 1 })), bb(Rc::clone(&rec)), bb(Arc::clone(&arc)), bb(&map)) as u64;

        let corners = [CORNERS[(s % 4) as usize], CORNERS[((s + 1) % 4) as usize]];
        sink += bb(&*rec).nested(bb(s), bb(corners)) as u64;

        std::hint::black_box(sink);
        if opts.interval_us > 0 {
            std::thread::sleep(Duration::from_micros(opts.interval_us));
        }
        seq += 1;
    }
}
