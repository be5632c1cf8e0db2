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
