//! Lexer and parser for the expression language: C's expression grammar without calls,
//! assignment, increment or the comma operator, plus registers (`$rdi`) and hit facts
//! (`$tid`). A precedence-climbing parser; every error carries the span to point at.

use super::ExprError;
use super::ast::*;
use crate::regs::Reg;
use crate::vm::Fact;

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Int(u64, IntSuffix, bool),
    Float(f64, bool),
    Char(u8),
    Str(Vec<u8>),
    Ident(String),
    Dollar(String),
    Punct(&'static str),
    End,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    span: Span,
}

/// Multi-character punctuators first, so `->` wins over `-`.
const PUNCTS: &[&str] = &[
    "<<=", ">>=", "->", "<<", ">>", "<=", ">=", "==", "!=", "&&", "||", "++", "--", "+=", "-=",
    "*=", "/=", "::", "+", "-", "*", "/", "%", "<", ">", "&", "^", "|", "!", "~", "?", ":", "(",
    ")", "[", "]", ".", "=", ",", "{", "}", ";",
];

fn lex(text: &str) -> Result<Vec<Token>, ExprError> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            let (tok, len) =
                lex_number(&text[i..]).map_err(|m| ExprError::at(start, start + 1, m))?;
            i += len;
            out.push(Token {
                tok,
                span: Span { start, end: i },
            });
        } else if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Ident(text[start..i].to_string()),
                span: Span { start, end: i },
            });
        } else if c == b'$' {
            i += 1;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            if i == start + 1 {
                return Err(ExprError::at(
                    start,
                    i,
                    "expected a register or fact name after '$' (e.g. $rdi, $tid)",
                ));
            }
            out.push(Token {
                tok: Tok::Dollar(text[start + 1..i].to_string()),
                span: Span { start, end: i },
            });
        } else if c == b'\'' {
            let (v, len) = lex_char(&b[i..]).map_err(|m| ExprError::at(start, start + 1, m))?;
            i += len;
            out.push(Token {
                tok: Tok::Char(v),
                span: Span { start, end: i },
            });
        } else if c == b'"' {
            let (v, len) = lex_string(&b[i..]).map_err(|m| ExprError::at(start, start + 1, m))?;
            i += len;
            out.push(Token {
                tok: Tok::Str(v),
                span: Span { start, end: i },
            });
        } else if let Some(p) = PUNCTS.iter().find(|p| text[i..].starts_with(**p)) {
            i += p.len();
            out.push(Token {
                tok: Tok::Punct(p),
                span: Span { start, end: i },
            });
        } else {
            let ch = text[i..].chars().next().unwrap();
            return Err(ExprError::at(
                start,
                start + ch.len_utf8(),
                format!("unexpected character '{ch}'"),
            ));
        }
    }
    out.push(Token {
        tok: Tok::End,
        span: Span {
            start: text.len(),
            end: text.len(),
        },
    });
    Ok(out)
}

fn lex_number(s: &str) -> Result<(Tok, usize), String> {
    let b = s.as_bytes();
    let mut i = 0;
    let (radix, digits_start) = if s.starts_with("0x") || s.starts_with("0X") {
        (16, 2)
    } else if s.starts_with("0b") || s.starts_with("0B") {
        (2, 2)
    } else {
        (10, 0)
    };
    i = digits_start.max(i);
    let is_digit = |c: u8| match radix {
        16 => c.is_ascii_hexdigit(),
        2 => c == b'0' || c == b'1',
        _ => c.is_ascii_digit(),
    };
    while i < b.len() && (is_digit(b[i]) || b[i] == b'\'') {
        i += 1;
    }
    let mut float = false;
    if radix == 10 && i < b.len() && b[i] == b'.' {
        float = true;
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if radix == 10 && i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            float = true;
            i = j;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    let body: String = s[..i].chars().filter(|c| *c != '\'').collect();
    if float {
        let single = i < b.len() && (b[i] == b'f' || b[i] == b'F');
        let end = i + single as usize;
        if end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
            return Err(format!("bad suffix on the number '{}'", &s[..end + 1]));
        }
        let v: f64 = body
            .parse()
            .map_err(|_| format!("bad floating-point number '{body}'"))?;
        return Ok((Tok::Float(v, single), end));
    }
    let digits = &body[digits_start..];
    if digits.is_empty() {
        return Err(format!("'{}' has no digits", &s[..i]));
    }
    // C: a leading 0 means octal.
    let (radix, digits) = if radix == 10 && digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (radix, digits)
    };
    let value = u64::from_str_radix(digits, radix).map_err(|_| {
        format!(
            "the number '{}' does not fit in 64 bits or is not valid",
            &s[..i]
        )
    })?;
    let mut suffix = IntSuffix {
        unsigned: false,
        longs: 0,
    };
    while i < b.len() {
        match b[i] {
            b'u' | b'U' if !suffix.unsigned => suffix.unsigned = true,
            b'l' | b'L' if suffix.longs < 2 => suffix.longs += 1,
            c if c.is_ascii_alphanumeric() || c == b'_' => {
                return Err(format!("bad suffix '{}' on a number", c as char));
            }
            _ => break,
        }
        i += 1;
    }
    Ok((Tok::Int(value, suffix, radix == 10), i))
}

fn escape(b: &[u8], i: &mut usize) -> Result<u8, String> {
    // at b[*i] == '\\'
    *i += 1;
    let c = *b.get(*i).ok_or("unfinished escape")?;
    *i += 1;
    Ok(match c {
        b'n' => b'\n',
        b't' => b'\t',
        b'r' => b'\r',
        b'0' => 0,
        b'\\' => b'\\',
        b'\'' => b'\'',
        b'"' => b'"',
        b'a' => 7,
        b'b' => 8,
        b'f' => 12,
        b'v' => 11,
        b'x' => {
            let start = *i;
            while *i < b.len() && b[*i].is_ascii_hexdigit() && *i - start < 2 {
                *i += 1;
            }
            u8::from_str_radix(std::str::from_utf8(&b[start..*i]).unwrap_or(""), 16)
                .map_err(|_| "bad \\x escape")?
        }
        other => return Err(format!("unknown escape '\\{}'", other as char)),
    })
}

fn lex_char(b: &[u8]) -> Result<(u8, usize), String> {
    let mut i = 1;
    let v = match b.get(i) {
        Some(b'\\') => escape(b, &mut i)?,
        Some(b'\'') | None => return Err("empty character literal".into()),
        Some(c) => {
            i += 1;
            *c
        }
    };
    if b.get(i) != Some(&b'\'') {
        return Err("a character literal holds one character: close it with '".into());
    }
    Ok((v, i + 1))
}

fn lex_string(b: &[u8]) -> Result<(Vec<u8>, usize), String> {
    let mut i = 1;
    let mut out = Vec::new();
    loop {
        match b.get(i) {
            None => return Err("unterminated string: close it with \"".into()),
            Some(b'"') => return Ok((out, i + 1)),
            Some(b'\\') => out.push(escape(b, &mut i)?),
            Some(c) => {
                out.push(*c);
                i += 1;
            }
        }
    }
}

/// Words that start a type name in a cast or sizeof.
const TYPE_WORDS: &[&str] = &[
    "void", "char", "short", "int", "long", "float", "double", "signed", "unsigned", "_Bool",
    "bool", "struct", "union", "enum", "class", "const", "volatile",
];

struct Parser<'a> {
    toks: Vec<Token>,
    pos: usize,
    is_type: &'a dyn Fn(&str) -> bool,
}

/// Parses `text` into an expression. `is_type` says whether a name is a type (typedefs,
/// classes) so `(T) x` can be told from `(x)`.
pub fn parse(text: &str, is_type: &dyn Fn(&str) -> bool) -> Result<Expr, ExprError> {
    let toks = lex(text)?;
    let mut p = Parser {
        toks,
        pos: 0,
        is_type,
    };
    if matches!(p.peek(), Tok::End) {
        return Err(ExprError::at(0, text.len().max(1), "empty expression"));
    }
    let e = p.expr()?;
    match p.peek().clone() {
        Tok::End => Ok(e),
        Tok::Punct(",") => {
            Err(p.err_here("the comma operator is not supported; write one expression"))
        }
        _ => Err(p.err_here("unexpected text after the expression (a missing operator?)")),
    }
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].tok
    }
    fn peek_at(&self, k: usize) -> &Tok {
        &self.toks[(self.pos + k).min(self.toks.len() - 1)].tok
    }
    fn span(&self) -> Span {
        self.toks[self.pos].span
    }
    fn bump(&mut self) -> Token {
        let t = self.toks[self.pos].clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }
    fn eat(&mut self, p: &str) -> bool {
        if matches!(self.peek(), Tok::Punct(q) if *q == p) {
            self.bump();
            true
        } else {
            false
        }
    }
    fn err_here(&self, msg: impl Into<String>) -> ExprError {
        let s = self.span();
        ExprError::at(s.start, s.end.max(s.start + 1), msg)
    }
    fn expect(&mut self, p: &str, what: &str) -> Result<Span, ExprError> {
        if self.eat(p) {
            Ok(self.toks[self.pos - 1].span)
        } else {
            Err(self.err_here(format!("expected '{p}' {what}")))
        }
    }

    fn expr(&mut self) -> Result<Expr, ExprError> {
        let cond = self.binary(1)?;
        if self.eat("?") {
            let a = self.expr()?;
            self.expect(":", "in 'c ? a : b'")?;
            let b = self.expr()?;
            let span = cond.span.to(b.span);
            return Ok(Expr {
                kind: ExprKind::Cond(Box::new(cond), Box::new(a), Box::new(b)),
                span,
            });
        }
        if let Tok::Punct(p) = self.peek() {
            let p = *p;
            if p == "=" {
                return Err(self.err_here(
                    "assignment is not allowed (expressions are read-only); did you mean '=='?",
                ));
            }
            if matches!(p, "+=" | "-=" | "*=" | "/=" | "<<=" | ">>=") {
                return Err(self.err_here("assignment is not allowed: expressions are read-only"));
            }
        }
        Ok(cond)
    }

    fn binop(&self) -> Option<(BinOp, u8)> {
        let Tok::Punct(p) = self.peek() else {
            return None;
        };
        Some(match *p {
            "||" => (BinOp::Or, 1),
            "&&" => (BinOp::And, 2),
            "|" => (BinOp::BitOr, 3),
            "^" => (BinOp::BitXor, 4),
            "&" => (BinOp::BitAnd, 5),
            "==" => (BinOp::Eq, 6),
            "!=" => (BinOp::Ne, 6),
            "<" => (BinOp::Lt, 7),
            "<=" => (BinOp::Le, 7),
            ">" => (BinOp::Gt, 7),
            ">=" => (BinOp::Ge, 7),
            "<<" => (BinOp::Shl, 8),
            ">>" => (BinOp::Shr, 8),
            "+" => (BinOp::Add, 9),
            "-" => (BinOp::Sub, 9),
            "*" => (BinOp::Mul, 10),
            "/" => (BinOp::Div, 10),
            "%" => (BinOp::Rem, 10),
            _ => return None,
        })
    }

    /// Precedence climbing: operators at or above `min` bind here; all are left-associative.
    fn binary(&mut self, min: u8) -> Result<Expr, ExprError> {
        let mut lhs = self.unary()?;
        while let Some((op, prec)) = self.binop() {
            if prec < min {
                break;
            }
            self.bump();
            if matches!(self.peek(), Tok::End) {
                return Err(self.err_here(format!("expected an operand after '{}'", op.text())));
            }
            let rhs = self.binary(prec + 1)?;
            let span = lhs.span.to(rhs.span);
            lhs = Expr {
                kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                span,
            };
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        let start = self.span();
        let op = match self.peek() {
            Tok::Punct("-") => Some(UnOp::Neg),
            Tok::Punct("+") => Some(UnOp::Plus),
            Tok::Punct("~") => Some(UnOp::BitNot),
            Tok::Punct("!") => Some(UnOp::Not),
            Tok::Punct("*") => Some(UnOp::Deref),
            Tok::Punct("&") => Some(UnOp::AddrOf),
            Tok::Punct("++") | Tok::Punct("--") => {
                return Err(
                    self.err_here("'++' and '--' change the program: expressions are read-only")
                );
            }
            _ => None,
        };
        if let Some(op) = op {
            self.bump();
            let e = self.unary()?;
            let span = start.to(e.span);
            return Ok(Expr {
                kind: ExprKind::Unary(op, Box::new(e)),
                span,
            });
        }
        if matches!(self.peek(), Tok::Ident(s) if s == "sizeof") {
            self.bump();
            if matches!(self.peek(), Tok::Punct("(")) && self.starts_type(1) {
                self.bump();
                let ty = self.type_name()?;
                let end = self.expect(")", "to close sizeof(type)")?;
                return Ok(Expr {
                    kind: ExprKind::SizeofType(ty),
                    span: start.to(end),
                });
            }
            let e = self.unary()?;
            let span = start.to(e.span);
            return Ok(Expr {
                kind: ExprKind::SizeofExpr(Box::new(e)),
                span,
            });
        }
        if matches!(self.peek(), Tok::Punct("(")) && self.starts_type(1) {
            self.bump();
            let ty = self.type_name()?;
            self.expect(")", "to close the cast's type")?;
            let e = self.unary()?;
            let span = start.to(e.span);
            return Ok(Expr {
                kind: ExprKind::Cast(ty, Box::new(e)),
                span,
            });
        }
        self.postfix()
    }

    /// True if the token `k` ahead starts a type name.
    fn starts_type(&self, k: usize) -> bool {
        match self.peek_at(k) {
            Tok::Ident(s) => {
                if TYPE_WORDS.contains(&s.as_str()) {
                    return true;
                }
                // A qualified or plain name the symbol layer knows as a type.
                let mut name = s.clone();
                let mut j = k + 1;
                while matches!(self.peek_at(j), Tok::Punct("::")) {
                    if let Tok::Ident(n) = self.peek_at(j + 1) {
                        name.push_str("::");
                        name.push_str(n);
                        j += 2;
                    } else {
                        break;
                    }
                }
                (self.is_type)(&name)
                    && matches!(self.peek_at(j), Tok::Punct(")") | Tok::Punct("*"))
            }
            _ => false,
        }
    }

    fn type_name(&mut self) -> Result<TypeName, ExprError> {
        let start = self.span();
        let mut words: Vec<String> = Vec::new();
        loop {
            match self.peek().clone() {
                Tok::Ident(s) if s == "const" || s == "volatile" => {
                    self.bump();
                }
                Tok::Ident(s) if matches!(s.as_str(), "struct" | "union" | "enum" | "class") => {
                    self.bump();
                    match self.bump().tok {
                        Tok::Ident(n) => words.push(format!("{s} {n}")),
                        _ => return Err(self.err_here(format!("expected a name after '{s}'"))),
                    }
                }
                Tok::Ident(s) if TYPE_WORDS.contains(&s.as_str()) => {
                    self.bump();
                    words.push(s);
                }
                Tok::Ident(s) if words.is_empty() => {
                    self.bump();
                    let mut name = s;
                    while matches!(self.peek(), Tok::Punct("::")) {
                        self.bump();
                        match self.bump().tok {
                            Tok::Ident(n) => {
                                name.push_str("::");
                                name.push_str(&n);
                            }
                            _ => return Err(self.err_here("expected a name after '::'")),
                        }
                    }
                    words.push(name);
                }
                _ => break,
            }
        }
        if words.is_empty() {
            return Err(self.err_here("expected a type name"));
        }
        let mut pointers = 0;
        let mut end = self.toks[self.pos - 1].span;
        loop {
            if self.eat("*") {
                pointers += 1;
                end = self.toks[self.pos - 1].span;
            } else if matches!(self.peek(), Tok::Ident(s) if s == "const" || s == "volatile") {
                self.bump();
            } else {
                break;
            }
        }
        Ok(TypeName {
            base: normalize_type(&words),
            pointers,
            span: start.to(end),
        })
    }

    fn postfix(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.primary()?;
        loop {
            if self.eat(".") || matches!(self.peek(), Tok::Punct("->")) {
                let arrow = matches!(self.toks[self.pos].tok, Tok::Punct("->"));
                if arrow {
                    self.bump();
                }
                let t = self.bump();
                let Tok::Ident(field) = t.tok else {
                    return Err(ExprError::at(
                        t.span.start,
                        t.span.end.max(t.span.start + 1),
                        format!(
                            "expected a member name after '{}'",
                            if arrow { "->" } else { "." }
                        ),
                    ));
                };
                let span = e.span.to(t.span);
                e = Expr {
                    kind: ExprKind::Member {
                        base: Box::new(e),
                        field,
                        arrow,
                    },
                    span,
                };
            } else if self.eat("[") {
                let i = self.expr()?;
                let end = self.expect("]", "to close the index")?;
                let span = e.span.to(end);
                e = Expr {
                    kind: ExprKind::Index(Box::new(e), Box::new(i)),
                    span,
                };
            } else if matches!(self.peek(), Tok::Punct("(")) {
                return Err(self.err_here(
                    "function calls are not allowed: expressions only read registers and memory",
                ));
            } else if matches!(self.peek(), Tok::Punct("++") | Tok::Punct("--")) {
                return Err(
                    self.err_here("'++' and '--' change the program: expressions are read-only")
                );
            } else {
                return Ok(e);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, ExprError> {
        let t = self.bump();
        let span = t.span;
        let kind = match t.tok {
            Tok::Int(value, suffix, decimal) => ExprKind::Int {
                value,
                suffix,
                decimal,
            },
            Tok::Float(value, single) => ExprKind::Float { value, single },
            Tok::Char(c) => ExprKind::Char(c),
            Tok::Str(s) => {
                let mut s = s;
                let mut span = span;
                // Adjacent literals concatenate, as in C.
                while let Tok::Str(more) = self.peek().clone() {
                    s.extend_from_slice(&more);
                    span = span.to(self.bump().span);
                }
                return Ok(Expr {
                    kind: ExprKind::Str(s),
                    span,
                });
            }
            Tok::Ident(name) => {
                if name == "sizeof" {
                    return Err(ExprError::at(span.start, span.end, "misplaced sizeof"));
                }
                let mut name = name;
                let mut span = span;
                while matches!(self.peek(), Tok::Punct("::")) {
                    self.bump();
                    let n = self.bump();
                    match n.tok {
                        Tok::Ident(part) => {
                            name.push_str("::");
                            name.push_str(&part);
                            span = span.to(n.span);
                        }
                        _ => {
                            return Err(ExprError::at(
                                n.span.start,
                                n.span.end.max(n.span.start + 1),
                                "expected a name after '::'",
                            ));
                        }
                    }
                }
                let kind = match name.as_str() {
                    "true" => ExprKind::Int {
                        value: 1,
                        suffix: IntSuffix {
                            unsigned: false,
                            longs: 0,
                        },
                        decimal: true,
                    },
                    "false" => ExprKind::Int {
                        value: 0,
                        suffix: IntSuffix {
                            unsigned: false,
                            longs: 0,
                        },
                        decimal: true,
                    },
                    _ => ExprKind::Ident(name),
                };
                return Ok(Expr { kind, span });
            }
            Tok::Dollar(name) => match name.as_str() {
                "tid" => ExprKind::Fact(Fact::Tid),
                "pid" => ExprKind::Fact(Fact::Pid),
                "hits" => ExprKind::Fact(Fact::Hits),
                reg => match Reg::from_name(reg) {
                    Some(r) => ExprKind::Reg(r),
                    None => {
                        return Err(ExprError::at(
                            span.start,
                            span.end,
                            format!(
                                "unknown register or fact ${reg}: use $rax..$r15, $rip, $rsp, $fs_base, $tid, $pid or $hits"
                            ),
                        ));
                    }
                },
            },
            Tok::Punct("(") => {
                let e = self.expr()?;
                let end = self.expect(")", "to close '('")?;
                return Ok(Expr {
                    kind: e.kind,
                    span: span.to(end),
                });
            }
            Tok::End => {
                return Err(ExprError::at(
                    span.start,
                    span.start + 1,
                    "expected a value here; the expression ends too early",
                ));
            }
            Tok::Punct(p) => {
                return Err(ExprError::at(
                    span.start,
                    span.end,
                    format!("expected a value, found '{p}'"),
                ));
            }
        };
        Ok(Expr { kind, span })
    }
}

/// Spells a list of type words canonically (`unsigned` alone is `unsigned int`, `long int` is
/// `long`).
fn normalize_type(words: &[String]) -> String {
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    let has = |x: &str| w.contains(&x);
    let longs = w.iter().filter(|x| **x == "long").count();
    if w.len() == 1 && !matches!(w[0], "signed" | "unsigned" | "long" | "short") {
        return w[0].to_string();
    }
    let base = if has("char") {
        "char"
    } else if has("double") {
        "double"
    } else if has("short") {
        "short"
    } else if longs == 2 {
        "long long"
    } else if longs == 1 {
        "long"
    } else {
        "int"
    };
    let base = if has("double") && longs == 1 {
        "long double"
    } else {
        base
    };
    if has("unsigned") {
        format!("unsigned {base}")
    } else if has("signed") && base == "char" {
        "signed char".to_string()
    } else {
        base.to_string()
    }
}
