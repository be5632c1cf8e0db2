//! The syntax tree of an expression. Every node keeps its span so errors can point at it.

use crate::regs::Reg;
use crate::vm::Fact;

/// A byte range in the expression's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    /// Offset of the first byte.
    pub start: usize,
    /// Offset one past the last byte.
    pub end: usize,
}

impl Span {
    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// An expression node.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it is in the text.
    pub span: Span,
}

/// Integer literal suffixes, which pick the literal's type as in C.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntSuffix {
    /// `u` / `U`.
    pub unsigned: bool,
    /// 0 (none), 1 (`l`), 2 (`ll`).
    pub longs: u8,
}

/// Unary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    /// `-x`
    Neg,
    /// `+x`
    Plus,
    /// `~x`
    BitNot,
    /// `!x`
    Not,
    /// `*p`
    Deref,
    /// `&x`
    AddrOf,
}

/// Binary operators, including the short-circuit logical ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Mul,
    Div,
    Rem,
    Add,
    Sub,
    Shl,
    Shr,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    BitAnd,
    BitXor,
    BitOr,
    And,
    Or,
}

impl BinOp {
    /// The operator as written.
    pub fn text(self) -> &'static str {
        match self {
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Shl => "<<",
            BinOp::Shr => ">>",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::BitAnd => "&",
            BinOp::BitXor => "^",
            BinOp::BitOr => "|",
            BinOp::And => "&&",
            BinOp::Or => "||",
        }
    }
}

/// A type as written in a cast or `sizeof`: a base name and pointer stars.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeName {
    /// The base type's name, normalised (`unsigned int`, `struct order`, `ns::Shape`).
    pub base: String,
    /// Number of `*` after it.
    pub pointers: u32,
    /// Where it is.
    pub span: Span,
}

/// What an expression node is.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// An integer literal.
    Int {
        value: u64,
        suffix: IntSuffix,
        decimal: bool,
    },
    /// A floating literal (`f` suffix: float).
    Float { value: f64, single: bool },
    /// A character literal.
    Char(u8),
    /// A string literal (only meaningful in comparisons).
    Str(Vec<u8>),
    /// A variable (C++ names may contain `::`).
    Ident(String),
    /// A register, `$rdi`.
    Reg(Reg),
    /// `$tid`, `$pid`, `$hits`.
    Fact(Fact),
    /// A unary operator.
    Unary(UnOp, Box<Expr>),
    /// A binary operator.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `c ? a : b`.
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `(type) x`.
    Cast(TypeName, Box<Expr>),
    /// `sizeof(type)`.
    SizeofType(TypeName),
    /// `sizeof x`.
    SizeofExpr(Box<Expr>),
    /// `x.f` (arrow false) or `p->f` (arrow true).
    Member {
        base: Box<Expr>,
        field: String,
        arrow: bool,
    },
    /// `a[i]`.
    Index(Box<Expr>, Box<Expr>),
}
