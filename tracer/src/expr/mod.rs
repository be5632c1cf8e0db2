//! The expression language of conditions (`--if`) and template holes (`{expr:x}`).
//!
//! C-like and read-only: literals, variables, registers, `.` `->` `[]`, unary `* & - ! ~`,
//! arithmetic, bitwise, comparison and logical operators with C's promotions, `?:`, casts to
//! named types, `sizeof`, and string comparison by content. No calls, no assignment, no
//! increment: the grammar has no way to write them, and the machine they compile to
//! (crate::vm) has no op that writes or calls. See docs/expressions.md.

pub mod ast;
pub mod compile;
pub mod parse;

pub use ast::{Expr, ExprKind, Span};
pub use parse::parse;

use std::fmt;

/// An error in an expression, with the span it is about and what to do.
#[derive(Clone, Debug, PartialEq)]
pub struct ExprError {
    /// Where (byte offsets in the expression's text).
    pub span: Span,
    /// What is wrong, and the fix when there is one.
    pub message: String,
}

impl ExprError {
    /// An error at bytes `start..end`.
    pub fn at(start: usize, end: usize, message: impl Into<String>) -> ExprError {
        ExprError {
            span: Span {
                start,
                end: end.max(start + 1),
            },
            message: message.into(),
        }
    }

    /// The error with the expression quoted and the span underlined:
    /// ```text
    /// column 5: no member 'qtyy' in struct order; members: id, qty, price, st, note
    ///   o->qtyy > 3
    ///      ^^^^
    /// ```
    pub fn render(&self, text: &str) -> String {
        let col = text[..self.span.start.min(text.len())].chars().count();
        let width = text
            .get(self.span.start..self.span.end.min(text.len()))
            .map(|s| s.chars().count())
            .unwrap_or(1)
            .max(1);
        format!(
            "column {}: {}\n  {}\n  {}{}",
            col + 1,
            self.message,
            text,
            " ".repeat(col),
            "^".repeat(width)
        )
    }
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.span.start, self.message)
    }
}

impl std::error::Error for ExprError {}

#[cfg(test)]
mod tests {
    use super::ast::*;
    use super::*;

    fn p(s: &str) -> Expr {
        parse(s, &|n| n == "uint32_t" || n == "Order" || n == "ns::T")
            .unwrap_or_else(|e| panic!("{}", e.render(s)))
    }
    fn err(s: &str) -> ExprError {
        parse(s, &|n| n == "uint32_t").unwrap_err()
    }
    /// A compact printing of the tree, to assert on shape.
    fn show(e: &Expr) -> String {
        match &e.kind {
            ExprKind::Int { value, .. } => value.to_string(),
            ExprKind::Float { value, .. } => format!("{value}f"),
            ExprKind::Char(c) => format!("'{}'", *c as char),
            ExprKind::Str(s) => format!("{:?}", String::from_utf8_lossy(s)),
            ExprKind::Ident(n) => n.clone(),
            ExprKind::Reg(r) => format!("{r}"),
            ExprKind::Fact(f) => format!("{f:?}"),
            ExprKind::Unary(op, x) => format!("({op:?} {})", show(x)),
            ExprKind::Binary(op, a, b) => format!("({} {} {})", show(a), op.text(), show(b)),
            ExprKind::Cond(c, a, b) => format!("({} ? {} : {})", show(c), show(a), show(b)),
            ExprKind::Cast(t, x) => format!(
                "(({}{}) {})",
                t.base,
                "*".repeat(t.pointers as usize),
                show(x)
            ),
            ExprKind::SizeofType(t) => {
                format!("sizeof({}{})", t.base, "*".repeat(t.pointers as usize))
            }
            ExprKind::SizeofExpr(x) => format!("sizeof {}", show(x)),
            ExprKind::Member { base, field, arrow } => {
                format!("{}{}{field}", show(base), if *arrow { "->" } else { "." })
            }
            ExprKind::Index(a, i) => format!("{}[{}]", show(a), show(i)),
        }
    }

    #[test]
    fn precedence_and_associativity_follow_c() {
        assert_eq!(show(&p("a + b * c - d")), "((a + (b * c)) - d)");
        assert_eq!(show(&p("a - b - c")), "((a - b) - c)");
        assert_eq!(show(&p("a < b == c < d")), "((a < b) == (c < d))");
        assert_eq!(
            show(&p("a || b && c | d ^ e & f")),
            "(a || (b && (c | (d ^ (e & f)))))"
        );
        assert_eq!(show(&p("a << 2 + 1")), "(a << (2 + 1))");
        assert_eq!(show(&p("c ? a : b ? x : y")), "(c ? a : (b ? x : y))");
        assert_eq!(show(&p("-a[1]->b.c")), "(Neg a[1]->b.c)");
        assert_eq!(show(&p("*p + 1")), "((Deref p) + 1)");
        assert_eq!(show(&p("!x && ~y")), "((Not x) && (BitNot y))");
        assert_eq!(show(&p("&o->qty")), "(AddrOf o->qty)");
    }

    #[test]
    fn literals() {
        assert_eq!(
            show(&p("0x1F + 017 + 0b101 + 1'000")),
            "(((31 + 15) + 5) + 1000)"
        );
        assert_eq!(show(&p("'a' == '\\n'")), "('a' == '\n')");
        assert_eq!(show(&p("name == \"bob\" \"by\"")), "(name == \"bobby\")");
        assert_eq!(show(&p("1.5e3")), "1500f");
        assert!(matches!(
            p("10ul").kind,
            ExprKind::Int {
                value: 10,
                suffix: IntSuffix {
                    unsigned: true,
                    longs: 1
                },
                ..
            }
        ));
        assert!(matches!(
            p("2.5f").kind,
            ExprKind::Float { single: true, .. }
        ));
        assert_eq!(show(&p("true")), "1");
    }

    #[test]
    fn casts_sizeof_registers_and_facts() {
        assert_eq!(show(&p("(unsigned long) x")), "((unsigned long) x)");
        assert_eq!(show(&p("(uint32_t)x >> 1")), "(((uint32_t) x) >> 1)");
        assert_eq!(show(&p("(struct order *) $rdi")), "((struct order*) $rdi)");
        assert_eq!(show(&p("(const char *) p")), "((char*) p)");
        assert_eq!(show(&p("(x) + 1")), "(x + 1)");
        assert_eq!(show(&p("(Order*)p")), "((Order*) p)");
        assert_eq!(show(&p("(ns::T)v")), "((ns::T) v)");
        assert_eq!(
            show(&p("sizeof(struct order) + sizeof x")),
            "(sizeof(struct order) + sizeof x)"
        );
        assert_eq!(
            show(&p("$tid == 5 && $hits > 2")),
            "((Tid == 5) && (Hits > 2))"
        );
        assert_eq!(show(&p("ns::counter + std::x")), "(ns::counter + std::x)");
    }

    #[test]
    fn errors_point_at_the_problem_and_name_the_fix() {
        let e = err("a = 1");
        assert_eq!(e.span.start, 2);
        assert!(e.message.contains("'=='"));
        assert!(
            err("f(1)")
                .message
                .contains("function calls are not allowed")
        );
        assert!(err("i++").message.contains("read-only"));
        assert!(err("x += 1").message.contains("read-only"));
        let e = err("a + ");
        assert!(e.message.contains("operand"), "{}", e.message);
        let e = err("(a + b");
        assert!(e.message.contains("')'"));
        assert_eq!(e.span.start, 6);
        assert!(err("$nope").message.contains("unknown register"));
        assert!(err("\"abc").message.contains("unterminated"));
        assert!(err("a b").message.contains("unexpected"));
        assert!(err("1, 2").message.contains("comma"));
        assert!(err("o->").message.contains("member name"));
        assert!(err("").message.contains("empty"));
        assert!(err("12abc").message.contains("suffix"));
        let r = err("o->qty >= @").render("o->qty >= @");
        assert!(r.contains("column 11") && r.ends_with("          ^"), "{r}");
    }

    #[test]
    fn never_panics_on_garbage() {
        for s in [
            "(((", ")))", "->->", "'", "'ab'", "\"\\", "0x", "1e", "$", "sizeof", "sizeof(",
            "(int", "a ? b", "a[", "::", "a::", "(struct)", "*&*&", "~~~~", "...",
        ] {
            let _ = parse(s, &|_| false);
        }
    }
}

/// A fuzzer for the parser and the value machine, in the test suite so CI runs it for a
/// bounded time on every change: random token soups and random byte strings must parse or
/// fail with an error, never panic; random programs must run or fault, never panic or loop.
#[cfg(test)]
mod fuzz {
    use super::parse;

    /// xorshift64*: deterministic, so a failure reproduces from its iteration number.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const TOKENS: &[&str] = &[
        "a",
        "o",
        "qty",
        "ns::x",
        "$rdi",
        "$hits",
        "$nope",
        "0",
        "1",
        "0x1f",
        "017",
        "1.5e3",
        "2.5f",
        "10ul",
        "'a'",
        "'\\n'",
        "\"bob\"",
        "\"",
        "'",
        "+",
        "-",
        "*",
        "/",
        "%",
        "<<",
        ">>",
        "<",
        "<=",
        ">",
        ">=",
        "==",
        "!=",
        "&",
        "^",
        "|",
        "&&",
        "||",
        "!",
        "~",
        "?",
        ":",
        "(",
        ")",
        "[",
        "]",
        ".",
        "->",
        "=",
        "++",
        ",",
        "sizeof",
        "(int)",
        "(struct order *)",
        "(unsigned long)",
        " ",
        "::",
        "9999999999999999999999",
        "1e",
        "0x",
        "$",
        "\\",
        "\u{e9}",
    ];

    #[test]
    fn the_parser_never_panics() {
        let mut rng = Rng(0x5eed_1234_5678_9abc);
        let budget = std::time::Instant::now() + std::time::Duration::from_secs(3);
        let mut n = 0u64;
        while std::time::Instant::now() < budget {
            n += 1;
            let len = rng.below(24);
            let text: String = if rng.below(4) == 0 {
                // Raw bytes (valid UTF-8 only: expressions come from the command line as strings).
                (0..len)
                    .map(|_| char::from(32 + rng.below(95) as u8))
                    .collect()
            } else {
                (0..len)
                    .map(|_| TOKENS[rng.below(TOKENS.len())])
                    .collect::<Vec<_>>()
                    .join(if rng.below(2) == 0 { "" } else { " " })
            };
            let result = std::panic::catch_unwind(|| parse(&text, &|name| name == "uint32_t"));
            match result {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    // Errors point inside (or just past) the text and render without panicking.
                    assert!(
                        e.span.start <= text.len(),
                        "iteration {n}: span past the end for {text:?}"
                    );
                    let _ = e.render(&text);
                }
                Err(_) => panic!("iteration {n}: the parser panicked on {text:?}"),
            }
        }
        assert!(n > 1000, "too few iterations ({n}) to mean anything");
    }

    #[test]
    fn the_value_machine_never_panics_or_loops() {
        use crate::regs::Reg;
        use crate::vm::*;
        struct NoMemory;
        impl Memory for NoMemory {
            fn read_batch(&mut self, ranges: &mut [(u64, &mut [u8])]) -> Vec<bool> {
                ranges.iter().map(|(a, _)| *a % 3 == 0).collect()
            }
        }
        let mut rng = Rng(0xfeed_beef_cafe_f00d);
        // SAFETY: all-zero registers are a valid value.
        let regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
        let ctx = HitContext {
            regs: &regs,
            pid: 1,
            tid: 1,
            hits: 1,
            fpregs: None,
            entry_regs: None,
        };
        let ops = |rng: &mut Rng, len: usize| -> Vec<Op> {
            (0..len)
                .map(|i| match rng.below(24) {
                    0 => Op::Reg(Reg::Rsp),
                    1 => Op::Const(rng.next()),
                    2 => Op::Load([1u8, 2, 4, 8][rng.below(4)]),
                    3 => Op::Add,
                    4 => Op::DivS,
                    5 => Op::RemU,
                    6 => Op::Shl,
                    7 => Op::SExt(rng.below(70) as u8),
                    8 => Op::ZExt(rng.below(70) as u8),
                    9 => Op::Jz(rng.below(len + 3) as u32),
                    10 => Op::Jmp((i + 1 + rng.below(3)) as u32),
                    11 => Op::Dup,
                    12 => Op::Swap,
                    13 => Op::Drop,
                    14 => Op::StrEq {
                        lit: rng.below(3) as u32,
                    },
                    15 => Op::BytesEq {
                        lit: rng.below(3) as u32,
                    },
                    16 => Op::CaptureMem(rng.below(1 << 20) as u32),
                    17 => Op::CaptureCStr(rng.below(5000) as u32),
                    18 => Op::CaptureWord(rng.below(12) as u8),
                    19 => Op::FToI {
                        signed: rng.below(2) == 0,
                    },
                    20 => Op::FDiv,
                    21 => Op::Unavailable {
                        why: rng.below(4) as u32,
                    },
                    22 => Op::LtS,
                    _ => Op::Fact(Fact::Hits),
                })
                .collect()
        };
        for _ in 0..20_000 {
            let len = 1 + rng.below(20);
            let programs: Vec<Program> = (0..1 + rng.below(3))
                .map(|_| Program {
                    ops: ops(&mut rng, len),
                    lits: vec![b"bob".to_vec()],
                })
                .collect();
            let refs: Vec<&Program> = programs.iter().collect();
            let out = run_all(
                &refs,
                &ctx,
                &mut NoMemory,
                Limits {
                    capture_bytes: 4096,
                },
            );
            assert_eq!(out.len(), programs.len());
        }
    }
}
