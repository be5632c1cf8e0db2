//! Type-checking an expression against DWARF at one probe address, and lowering it to a
//! value-machine program (crate::vm).
//!
//! Types follow C: integer promotions, the usual arithmetic conversions, pointer arithmetic
//! scaled by the pointee's size, comparisons yielding `int`. Words on the machine are 64-bit;
//! after each operation on a narrower type the result is sign- or zero-extended to the type's
//! width, so 32-bit `int` arithmetic wraps as it does in the program.

use super::ExprError;
use super::ast::*;
use crate::addr::{Bias, FileAddr};
use crate::debuginfo::{Encoding, ModuleSymbols, Place, TypeKind, TypeRef};
use crate::vm::{Fact, Op, Program};

/// A type during checking: a DWARF type, or one the language makes up (literals, results of
/// arithmetic, registers, pointers from `&`).
#[derive(Clone, Debug, PartialEq)]
pub enum Ty {
    /// A type from the module's DWARF.
    D(TypeRef),
    /// An integer of `size` bytes.
    Int { size: u8, signed: bool },
    /// A double (floats compute as f64).
    Double,
    /// A pointer to `0`.
    Ptr(Box<Ty>),
    /// The rows of a multi-dimensional DWARF array (`grid[1]` of `int grid[2][3]` is an
    /// `int [3]`, which DWARF does not describe on its own): `element` with dimensions
    /// `dims`, outermost first.
    Rows {
        element: TypeRef,
        dims: Vec<Option<u64>>,
    },
    /// void.
    Void,
}

/// What a type is, with typedefs, const and volatile peeled off.
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    Int {
        size: u8,
        signed: bool,
    },
    Float {
        size: u8,
    },
    Bool,
    Ptr(Ty),
    Array {
        elem: Ty,
        count: Option<u64>,
    },
    Struct {
        name: String,
        size: u64,
    },
    Enum {
        size: u8,
        signed: bool,
        enumerators: Vec<(i64, String)>,
    },
    Void,
    Other(String),
}

const INT: Ty = Ty::Int {
    size: 4,
    signed: true,
};
const LONG: Ty = Ty::Int {
    size: 8,
    signed: true,
};
const ULONG: Ty = Ty::Int {
    size: 8,
    signed: false,
};

/// An operand during compilation.
#[derive(Clone, Debug)]
enum Val {
    /// An object in memory: `ops` push its address.
    Mem { ops: Vec<Op>, ty: Ty },
    /// A value on the stack after `ops`.
    Word { ops: Vec<Op>, ty: Ty },
    /// A string literal (only for comparisons).
    Str(Vec<u8>),
    /// A struct optimized code keeps in pieces (`DW_OP_piece`: a Rust `&str`'s pointer in
    /// one register, its length in another); its members are read from the piece that
    /// holds them.
    Pieces { pieces: Vec<(Place, u64)>, ty: Ty },
}

/// Compiles expressions at one probe address of one module.
pub struct Compiler<'a> {
    /// The module's symbols.
    pub symbols: &'a ModuleSymbols,
    /// The probe address (file address).
    pub pc: FileAddr,
    /// The module's load bias.
    pub bias: Bias,
    /// Literals collected for the program.
    lits: Vec<Vec<u8>>,
    /// The expression's text, to quote operands in errors.
    source: String,
}

/// A compiled expression: its program and its static type.
pub struct Compiled {
    /// The program; for conditions the top word is the result.
    pub program: Program,
    /// The expression's type.
    pub ty: Ty,
}

impl<'a> Compiler<'a> {
    /// A compiler for expressions at `pc` in the module of `symbols`, loaded with `bias`.
    pub fn new(symbols: &'a ModuleSymbols, pc: FileAddr, bias: Bias) -> Compiler<'a> {
        Compiler {
            symbols,
            pc,
            bias,
            lits: Vec::new(),
            source: String::new(),
        }
    }

    /// The expression's text, so errors can quote its operands.
    pub fn with_source(mut self, text: &str) -> Self {
        self.source = text.to_string();
        self
    }

    /// An operand as written (`o->next`), or where it is.
    fn quote(&self, e: &Expr) -> String {
        match self.source.get(e.span.start..e.span.end) {
            Some(t) if !t.is_empty() => format!("'{t}'"),
            _ => format!("the operand at column {}", e.span.start + 1),
        }
    }

    /// Compiles a condition: a scalar whose top word is non-zero when true.
    pub fn condition(mut self, e: &Expr) -> Result<Compiled, ExprError> {
        let v = self.expr(e)?;
        let ty = self.ty_of(&v);
        if !self.is_scalar(&ty) {
            return Err(err(
                e.span,
                format!(
                    "a condition must be a number or a pointer, not {}",
                    self.name(&ty)
                ),
            ));
        }
        let ops = self.truth(v, e.span)?;
        Ok(Compiled {
            program: Program {
                ops,
                lits: self.lits,
            },
            ty: INT,
        })
    }

    /// Compiles a scalar value (its top word).
    pub fn scalar(mut self, e: &Expr) -> Result<Compiled, ExprError> {
        let v = self.expr(e)?;
        let ty = self.ty_of(&v);
        let ops = self.rvalue(v, e.span)?;
        Ok(Compiled {
            program: Program {
                ops,
                lits: self.lits,
            },
            ty,
        })
    }

    // ----- types -----

    /// The shape of a type.
    pub fn shape(&self, ty: &Ty) -> Shape {
        match ty {
            Ty::Int { size, signed } => Shape::Int {
                size: *size,
                signed: *signed,
            },
            Ty::Double => Shape::Float { size: 8 },
            Ty::Ptr(t) => Shape::Ptr((**t).clone()),
            Ty::Void => Shape::Void,
            Ty::Rows { element, dims } => Self::rows(*element, dims),
            Ty::D(r) => {
                let mut r = *r;
                for _ in 0..32 {
                    match self.symbols.type_kind(r) {
                        TypeKind::Typedef { target, .. }
                        | TypeKind::Const(target)
                        | TypeKind::Volatile(target) => r = target,
                        TypeKind::Base { size, encoding, .. } => {
                            let size = size.min(8) as u8;
                            return match encoding {
                                Encoding::Signed | Encoding::SignedChar => {
                                    Shape::Int { size, signed: true }
                                }
                                Encoding::Unsigned | Encoding::UnsignedChar | Encoding::Utf => {
                                    Shape::Int {
                                        size,
                                        signed: false,
                                    }
                                }
                                Encoding::Bool => Shape::Bool,
                                Encoding::Float => Shape::Float { size },
                            };
                        }
                        TypeKind::Pointer { pointee } => {
                            return Shape::Ptr(pointee.map(Ty::D).unwrap_or(Ty::Void));
                        }
                        TypeKind::Reference { target, .. } => return Shape::Ptr(Ty::D(target)),
                        TypeKind::Array { element, dims } => return Self::rows(element, &dims),
                        TypeKind::Struct { size, .. } => {
                            return Shape::Struct {
                                name: self.symbols.type_name(r),
                                size,
                            };
                        }
                        TypeKind::Enum {
                            size,
                            signed,
                            enumerators,
                            ..
                        } => {
                            return Shape::Enum {
                                size: size.min(8) as u8,
                                signed,
                                enumerators,
                            };
                        }
                        TypeKind::Void => return Shape::Void,
                        _ => return Shape::Other(self.symbols.type_name(r)),
                    }
                }
                Shape::Other("a typedef cycle".into())
            }
        }
    }

    /// An array of `element` with dimensions `dims`: indexing it gives the next row, or an
    /// element once one dimension is left.
    fn rows(element: TypeRef, dims: &[Option<u64>]) -> Shape {
        let count = dims.first().copied().flatten();
        let elem = if dims.len() > 1 {
            Ty::Rows {
                element,
                dims: dims[1..].to_vec(),
            }
        } else {
            Ty::D(element)
        };
        Shape::Array { elem, count }
    }

    /// A type's name as the source spells it.
    pub fn name(&self, ty: &Ty) -> String {
        match ty {
            Ty::D(r) => self.symbols.type_name(*r),
            Ty::Int { size, signed } => match (size, signed) {
                (1, true) => "signed char".into(),
                (1, false) => "unsigned char".into(),
                (2, true) => "short".into(),
                (2, false) => "unsigned short".into(),
                (4, true) => "int".into(),
                (4, false) => "unsigned int".into(),
                (_, true) => "long".into(),
                (_, false) => "unsigned long".into(),
            },
            Ty::Double => "double".into(),
            Ty::Ptr(t) => format!("{} *", self.name(t)),
            Ty::Rows { element, dims } => {
                let dims: String = dims
                    .iter()
                    .map(|d| d.map(|n| format!("[{n}]")).unwrap_or_else(|| "[]".into()))
                    .collect();
                format!("{} {dims}", self.symbols.type_name(*element))
            }
            Ty::Void => "void".into(),
        }
    }

    fn size_of(&self, ty: &Ty) -> Option<u64> {
        match self.shape(ty) {
            Shape::Int { size, .. } | Shape::Float { size } | Shape::Enum { size, .. } => {
                Some(size as u64)
            }
            Shape::Bool => Some(1),
            Shape::Ptr(_) => Some(8),
            Shape::Array { elem, count } => Some(self.size_of(&elem)? * count?),
            Shape::Struct { size, .. } => Some(size),
            Shape::Void => Some(1),
            Shape::Other(_) => match ty {
                Ty::D(r) => self.symbols.type_size(*r),
                _ => None,
            },
        }
    }

    fn is_scalar(&self, ty: &Ty) -> bool {
        matches!(
            self.shape(ty),
            Shape::Int { .. }
                | Shape::Float { .. }
                | Shape::Bool
                | Shape::Ptr(_)
                | Shape::Enum { .. }
                | Shape::Array { .. }
        )
    }

    fn arith_kind(&self, ty: &Ty) -> Option<(bool /*float*/, u8, bool /*signed*/)> {
        match self.shape(ty) {
            Shape::Int { size, signed } => Some((false, size, signed)),
            Shape::Enum { size, signed, .. } => Some((false, size, signed)),
            Shape::Bool => Some((false, 1, false)),
            Shape::Float { size } => Some((true, size, true)),
            _ => None,
        }
    }

    /// C's integer promotion: narrower than int becomes int.
    fn promote(&self, ty: &Ty) -> Ty {
        match self.arith_kind(ty) {
            Some((true, _, _)) => Ty::Double,
            Some((false, size, signed)) if size < 4 || (size == 4 && signed) => {
                let _ = signed;
                INT
            }
            Some((false, size, signed)) => Ty::Int { size, signed },
            None => ty.clone(),
        }
    }

    /// The usual arithmetic conversions.
    fn common(&self, a: &Ty, b: &Ty) -> Ty {
        let (pa, pb) = (self.promote(a), self.promote(b));
        if pa == Ty::Double || pb == Ty::Double {
            return Ty::Double;
        }
        let (
            Ty::Int {
                size: sa,
                signed: ga,
            },
            Ty::Int {
                size: sb,
                signed: gb,
            },
        ) = (&pa, &pb)
        else {
            return LONG;
        };
        if ga == gb {
            return Ty::Int {
                size: (*sa).max(*sb),
                signed: *ga,
            };
        }
        let (us, ss) = if *ga { (*sb, *sa) } else { (*sa, *sb) };
        if us >= ss {
            Ty::Int {
                size: us,
                signed: false,
            }
        } else {
            Ty::Int {
                size: ss,
                signed: true,
            }
        }
    }

    // ----- operands -----

    fn ty_of(&self, v: &Val) -> Ty {
        match v {
            Val::Mem { ty, .. } | Val::Word { ty, .. } | Val::Pieces { ty, .. } => ty.clone(),
            Val::Str(_) => Ty::Ptr(Box::new(Ty::Int {
                size: 1,
                signed: true,
            })),
        }
    }

    fn lit(&mut self, bytes: Vec<u8>) -> u32 {
        if let Some(i) = self.lits.iter().position(|l| *l == bytes) {
            return i as u32;
        }
        self.lits.push(bytes);
        (self.lits.len() - 1) as u32
    }

    /// Ops that push the value of `v` as a word of its type (arrays decay to pointers).
    fn rvalue(&mut self, v: Val, span: Span) -> Result<Vec<Op>, ExprError> {
        match v {
            Val::Word { ops, .. } => Ok(ops),
            Val::Str(_) => Err(err(
                span,
                "a string literal can only be compared with ==, != (e.g. name == \"bob\")",
            )),
            Val::Pieces { ty, .. } => Err(err(
                span,
                format!("{} is a struct: name a member with '.'", self.name(&ty)),
            )),
            Val::Mem { mut ops, ty } => {
                match self.shape(&ty) {
                    Shape::Array { .. } => {} // decays: the address is the value
                    Shape::Int { size, signed } | Shape::Enum { size, signed, .. } => {
                        ops.push(Op::Load(size));
                        if signed && size < 8 {
                            ops.push(Op::SExt(size * 8));
                        }
                    }
                    Shape::Bool => ops.extend([Op::Load(1), Op::Const(0), Op::Ne]),
                    Shape::Float { size: 4 } => ops.extend([Op::Load(4), Op::F32ToF64]),
                    Shape::Float { .. } => ops.push(Op::Load(8)),
                    Shape::Ptr(_) => ops.push(Op::Load(8)),
                    Shape::Struct { name, .. } => {
                        return Err(err(
                            span,
                            format!(
                                "{name} is a struct: name a member with '.' (or '->' through a pointer)"
                            ),
                        ));
                    }
                    Shape::Void => return Err(err(span, "a void value has no value")),
                    Shape::Other(what) => {
                        return Err(err(
                            span,
                            format!("values of type {what} cannot be used in expressions yet"),
                        ));
                    }
                }
                Ok(ops)
            }
        }
    }

    /// The effective type of an rvalue (arrays decay to pointers).
    fn rtype(&self, v: &Val) -> Ty {
        let ty = self.ty_of(v);
        match self.shape(&ty) {
            Shape::Array { elem, .. } => Ty::Ptr(Box::new(elem)),
            _ => ty,
        }
    }

    /// Ops pushing 1 if `v` is true (non-zero), else 0.
    fn truth(&mut self, v: Val, span: Span) -> Result<Vec<Op>, ExprError> {
        let ty = self.rtype(&v);
        let float = matches!(self.shape(&ty), Shape::Float { .. });
        let mut ops = self.rvalue(v, span)?;
        if float {
            ops.extend([Op::Const(0f64.to_bits()), Op::FEq, Op::LNot]);
        } else {
            ops.extend([Op::LNot, Op::LNot]);
        }
        Ok(ops)
    }

    /// Ops pushing `v` converted to type `to`.
    fn convert(&mut self, v: Val, to: &Ty, span: Span) -> Result<Vec<Op>, ExprError> {
        let from = self.rtype(&v);
        let mut ops = self.rvalue(v, span)?;
        let (fk, tk) = (self.arith_kind(&from), self.arith_kind(to));
        match (fk, tk) {
            (Some((false, _, fs)), Some((true, _, _))) => ops.push(Op::IToF { signed: fs }),
            (Some((true, _, _)), Some((false, size, signed))) => {
                ops.push(Op::FToI { signed });
                ops.extend(narrow(size, signed));
            }
            (Some((false, _, _)), Some((false, size, signed))) => ops.extend(narrow(size, signed)),
            (Some((true, _, _)), Some((true, 4, _))) => ops.extend([Op::F64ToF32, Op::F32ToF64]),
            _ => {}
        }
        Ok(ops)
    }

    // ----- expressions -----

    fn expr(&mut self, e: &Expr) -> Result<Val, ExprError> {
        match &e.kind {
            ExprKind::Int {
                value,
                suffix,
                decimal,
            } => {
                let fits_int = *value <= i32::MAX as u64;
                let ty = match (suffix.unsigned, suffix.longs) {
                    (false, 0) if fits_int => INT,
                    (false, 0) if !decimal && *value <= u32::MAX as u64 => Ty::Int {
                        size: 4,
                        signed: false,
                    },
                    (true, 0) if *value <= u32::MAX as u64 => Ty::Int {
                        size: 4,
                        signed: false,
                    },
                    (false, _) if *value <= i64::MAX as u64 => LONG,
                    _ => ULONG,
                };
                Ok(Val::Word {
                    ops: vec![Op::Const(*value)],
                    ty,
                })
            }
            ExprKind::Float { value, .. } => Ok(Val::Word {
                ops: vec![Op::Const(value.to_bits())],
                ty: Ty::Double,
            }),
            ExprKind::Char(c) => Ok(Val::Word {
                ops: vec![Op::Const(*c as i8 as i64 as u64)],
                ty: INT,
            }),
            ExprKind::Str(s) => Ok(Val::Str(s.clone())),
            ExprKind::Reg(r) => Ok(Val::Word {
                ops: vec![Op::Reg(*r)],
                ty: ULONG,
            }),
            ExprKind::Fact(f) => Ok(Val::Word {
                ops: vec![Op::Fact(*f)],
                ty: match f {
                    Fact::Hits => ULONG,
                    _ => INT,
                },
            }),
            ExprKind::Ident(name) => self.variable(name, e.span),
            ExprKind::Member { base, field, arrow } => self.member(base, field, *arrow, e.span),
            ExprKind::Index(a, i) => {
                let av = self.expr(a)?;
                let at = self.rtype(&av);
                let Shape::Ptr(elem) = self.shape(&at) else {
                    return Err(err(
                        a.span,
                        format!(
                            "[] needs an array or a pointer; {} is {}",
                            self.quote(a),
                            self.name(&self.ty_of(&av))
                        ),
                    ));
                };
                let iv = self.expr(i)?;
                let it = self.rtype(&iv);
                if !matches!(self.arith_kind(&it), Some((false, ..))) {
                    return Err(err(
                        i.span,
                        format!("an index must be an integer, not {}", self.name(&it)),
                    ));
                }
                let size = self.size_of(&elem).ok_or_else(|| {
                    err(
                        a.span,
                        format!("the size of {} is unknown", self.name(&elem)),
                    )
                })?;
                let mut ops = self.rvalue(av, a.span)?;
                ops.extend(self.convert(iv, &LONG, i.span)?);
                ops.extend([Op::Const(size), Op::Mul, Op::Add]);
                Ok(Val::Mem { ops, ty: elem })
            }
            ExprKind::Unary(op, x) => self.unary(*op, x, e.span),
            ExprKind::Binary(op, a, b) => self.binary(*op, a, b, e.span),
            ExprKind::Cond(c, a, b) => {
                let cv = self.expr(c)?;
                let mut ops = self.truth(cv, c.span)?;
                let av = self.expr(a)?;
                let bv = self.expr(b)?;
                let (at, bt) = (self.rtype(&av), self.rtype(&bv));
                let ty = if self.arith_kind(&at).is_some() && self.arith_kind(&bt).is_some() {
                    self.common(&at, &bt)
                } else {
                    at.clone()
                };
                let a_ops = self.convert(av, &ty, a.span)?;
                let b_ops = self.convert(bv, &ty, b.span)?;
                let jz_at = ops.len();
                ops.push(Op::Jz(0));
                ops.extend(relocate(a_ops, ops.len()));
                let jmp_at = ops.len();
                ops.push(Op::Jmp(0));
                ops[jz_at] = Op::Jz(ops.len() as u32);
                ops.extend(relocate(b_ops, ops.len()));
                ops[jmp_at] = Op::Jmp(ops.len() as u32);
                Ok(Val::Word { ops, ty })
            }
            ExprKind::Cast(tn, x) => {
                let to = self.type_name(tn)?;
                let v = self.expr(x)?;
                let from = self.rtype(&v);
                let ok = (self.arith_kind(&to).is_some()
                    || matches!(self.shape(&to), Shape::Ptr(_)))
                    && (self.arith_kind(&from).is_some()
                        || matches!(self.shape(&from), Shape::Ptr(_)));
                if !ok {
                    return Err(err(
                        e.span,
                        format!(
                            "cannot cast {} to {}: casts convert numbers and pointers",
                            self.name(&from),
                            self.name(&to)
                        ),
                    ));
                }
                let ops = self.convert(v, &to, x.span)?;
                Ok(Val::Word { ops, ty: to })
            }
            ExprKind::SizeofType(tn) => {
                let t = self.type_name(tn)?;
                let n = self.size_of(&t).ok_or_else(|| {
                    err(tn.span, format!("the size of {} is unknown", self.name(&t)))
                })?;
                Ok(Val::Word {
                    ops: vec![Op::Const(n)],
                    ty: ULONG,
                })
            }
            ExprKind::SizeofExpr(x) => {
                let v = self.expr(x)?;
                let t = self.ty_of(&v);
                let n = self.size_of(&t).ok_or_else(|| {
                    err(x.span, format!("the size of {} is unknown", self.name(&t)))
                })?;
                Ok(Val::Word {
                    ops: vec![Op::Const(n)],
                    ty: ULONG,
                })
            }
        }
    }

    fn variable(&mut self, name: &str, span: Span) -> Result<Val, ExprError> {
        let var = match self.symbols.variable(self.pc, name, self.bias) {
            Ok(v) => v,
            Err(e) => {
                let in_scope = self.symbols.names_in_scope(self.pc);
                let hint = if in_scope.is_empty() {
                    String::new()
                } else {
                    format!("; in scope here: {}", in_scope.join(", "))
                };
                let what = match e {
                    crate::debuginfo::SymbolError::UnknownVariable { .. } => {
                        format!("no variable named '{name}' here{hint}")
                    }
                    other => format!("'{name}': {other}"),
                };
                return Err(err(span, what));
            }
        };
        let ty = Ty::D(var.ty);
        Ok(match var.place {
            Place::Pieces(pieces) => Val::Pieces { pieces, ty },
            // A whole place is a value in one piece.
            place => {
                let size = self.symbols.type_size(var.ty).unwrap_or(8).max(1);
                self.piece_at(&[(place, size)], 0, size, ty)
                    .expect("one piece holds the whole value")
            }
        })
    }

    fn member(
        &mut self,
        base: &Expr,
        field: &str,
        arrow: bool,
        span: Span,
    ) -> Result<Val, ExprError> {
        let bv = self.expr(base)?;
        let (mut ops, sty) = if arrow {
            let bt = self.rtype(&bv);
            let Shape::Ptr(target) = self.shape(&bt) else {
                return Err(err(
                    base.span,
                    format!(
                        "'->' needs a pointer, but {} is {}: use '.'",
                        self.quote(base),
                        self.name(&bt)
                    ),
                ));
            };
            (self.rvalue(bv, base.span)?, target)
        } else {
            match bv {
                Val::Pieces { pieces, ty } => {
                    return self.member_of_pieces(&pieces, &ty, field, span);
                }
                Val::Mem { ops, ty } => {
                    if let Shape::Ptr(_) = self.shape(&ty) {
                        return Err(err(
                            base.span,
                            format!(
                                "{} is a pointer ({}): use '->'",
                                self.quote(base),
                                self.name(&ty)
                            ),
                        ));
                    }
                    (ops, ty)
                }
                other => {
                    let t = self.ty_of(&other);
                    if let Shape::Ptr(_) = self.shape(&t) {
                        return Err(err(
                            base.span,
                            format!(
                                "{} is a pointer ({}): use '->'",
                                self.quote(base),
                                self.name(&t)
                            ),
                        ));
                    }
                    return Err(err(
                        base.span,
                        format!(
                            "{} is not in memory here (it lives in registers); its members cannot be read yet",
                            self.quote(base)
                        ),
                    ));
                }
            }
        };
        let Ty::D(mut r) = sty.clone() else {
            return Err(err(span, format!("{} has no members", self.name(&sty))));
        };
        // Peel typedefs and qualifiers down to the struct.
        for _ in 0..32 {
            match self.symbols.type_kind(r) {
                TypeKind::Typedef { target, .. }
                | TypeKind::Const(target)
                | TypeKind::Volatile(target) => r = target,
                _ => break,
            }
        }
        let field_span = Span {
            start: span.end.saturating_sub(field.len()),
            end: span.end,
        };
        let (offset, mty, bitfield) = self.find_member(r, field, 0).ok_or_else(|| {
            let names = match self.symbols.type_kind(r) {
                TypeKind::Struct { members, .. } => members
                    .iter()
                    .filter_map(|m| m.name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
                _ => String::new(),
            };
            let tn = self.symbols.type_name(r);
            if names.is_empty() {
                err(
                    field_span,
                    format!("{tn} has no member '{field}' (it has no members)"),
                )
            } else {
                err(
                    field_span,
                    format!("{tn} has no member '{field}'; members: {names}"),
                )
            }
        })?;
        if offset != 0 {
            ops.extend([Op::Const(offset), Op::Add]);
        }
        match bitfield {
            None => Ok(Val::Mem {
                ops,
                ty: Ty::D(mty),
            }),
            Some((bit_off, bits)) => {
                // Read the bytes that hold the field, shift and mask it.
                let ty = Ty::D(mty);
                let signed = matches!(self.arith_kind(&ty), Some((false, _, true)));
                ops.push(Op::Load(8));
                ops.extend([
                    Op::Const(64 - bit_off - bits),
                    Op::Shl,
                    Op::Const(64 - bits),
                    if signed { Op::ShrS } else { Op::ShrU },
                ]);
                Ok(Val::Word { ops, ty })
            }
        }
    }

    /// Member `field` of a struct kept in pieces: read from the piece that holds all of it.
    fn member_of_pieces(
        &mut self,
        pieces: &[(Place, u64)],
        sty: &Ty,
        field: &str,
        span: Span,
    ) -> Result<Val, ExprError> {
        let Ty::D(r) = sty.clone() else {
            return Err(err(span, format!("{} has no members", self.name(sty))));
        };
        let r = self.peel(r);
        let Some((offset, mty, None)) = self.find_member(r, field, 0) else {
            return Err(err(
                span,
                format!(
                    "{} has no member '{field}' this version can read from registers",
                    self.symbols.type_name(r)
                ),
            ));
        };
        let size = self.symbols.type_size(mty).unwrap_or(0);
        self.piece_at(pieces, offset, size, Ty::D(mty))
            .ok_or_else(|| {
                err(
                    span,
                    format!(
                        "'{field}' straddles two of the registers and memory pieces {} is kept in here",
                        self.symbols.type_name(r)
                    ),
                )
            })
    }

    /// The bytes `offset..offset + size` of a value kept in pieces, as a value of type `ty`,
    /// when one piece holds them all.
    fn piece_at(&mut self, pieces: &[(Place, u64)], offset: u64, size: u64, ty: Ty) -> Option<Val> {
        let mut start = 0;
        for (place, psize) in pieces {
            let (pstart, pend) = (start, start + psize);
            start = pend;
            if offset < pstart || offset + size > pend {
                continue;
            }
            let within = offset - pstart;
            return Some(match place {
                Place::Memory(ops) => {
                    let mut ops = ops.clone();
                    if within != 0 {
                        ops.extend([Op::Const(within), Op::Add]);
                    }
                    Val::Mem { ops, ty }
                }
                Place::Value(ops) => {
                    let mut ops = ops.clone();
                    if within != 0 {
                        ops.extend([Op::Const(within * 8), Op::ShrU]);
                    }
                    if let Some((false, size, signed)) = self.arith_kind(&ty) {
                        ops.extend(narrow(size, signed));
                    }
                    Val::Word { ops, ty }
                }
                Place::Implicit(bytes) => {
                    let mut w = [0u8; 8];
                    let from = (within as usize).min(bytes.len());
                    let to = (from + size.min(8) as usize).min(bytes.len());
                    w[..to - from].copy_from_slice(&bytes[from..to]);
                    let mut ops = vec![Op::Const(u64::from_le_bytes(w))];
                    if let Some((false, size, signed)) = self.arith_kind(&ty) {
                        ops.extend(narrow(size, signed));
                    }
                    Val::Word { ops, ty }
                }
                Place::OptimizedOut => Val::Word {
                    ops: vec![Op::OptimizedOut],
                    ty,
                },
                Place::Unavailable(why) => {
                    let why = self.lit(why.clone().into_bytes());
                    Val::Word {
                        ops: vec![Op::Unavailable { why }],
                        ty,
                    }
                }
                Place::Pieces(_) => return None,
            });
        }
        None
    }

    /// A type without its typedefs and qualifiers.
    fn peel(&self, mut r: TypeRef) -> TypeRef {
        for _ in 0..32 {
            match self.symbols.type_kind(r) {
                TypeKind::Typedef { target, .. }
                | TypeKind::Const(target)
                | TypeKind::Volatile(target) => r = target,
                _ => break,
            }
        }
        r
    }

    /// A member by name, searching anonymous members and base classes.
    fn find_member(&self, r: TypeRef, field: &str, depth: u32) -> Option<FoundMember> {
        if depth > 8 {
            return None;
        }
        let TypeKind::Struct { members, bases, .. } = self.symbols.type_kind(r) else {
            return None;
        };
        for m in &members {
            if m.name.as_deref() == Some(field) {
                return Some((m.offset, m.ty, m.bitfield));
            }
        }
        for m in members.iter().filter(|m| m.name.is_none()) {
            let mut t = m.ty;
            while let TypeKind::Typedef { target, .. }
            | TypeKind::Const(target)
            | TypeKind::Volatile(target) = self.symbols.type_kind(t)
            {
                t = target;
            }
            if let Some((o, ty, b)) = self.find_member(t, field, depth + 1) {
                return Some((m.offset + o, ty, b));
            }
        }
        for (base, off) in &bases {
            if let Some((o, ty, b)) = self.find_member(*base, field, depth + 1) {
                return Some((off + o, ty, b));
            }
        }
        None
    }

    fn unary(&mut self, op: UnOp, x: &Expr, span: Span) -> Result<Val, ExprError> {
        let v = self.expr(x)?;
        match op {
            UnOp::Deref => {
                let t = self.rtype(&v);
                let Shape::Ptr(target) = self.shape(&t) else {
                    return Err(err(
                        x.span,
                        format!(
                            "'*' needs a pointer, but {} is {}",
                            self.quote(x),
                            self.name(&t)
                        ),
                    ));
                };
                if target == Ty::Void {
                    return Err(err(
                        x.span,
                        "cannot dereference a void pointer: cast it first, e.g. *(int *)p",
                    ));
                }
                Ok(Val::Mem {
                    ops: self.rvalue(v, x.span)?,
                    ty: target,
                })
            }
            UnOp::AddrOf => match v {
                Val::Mem { ops, ty } => Ok(Val::Word {
                    ops,
                    ty: Ty::Ptr(Box::new(ty)),
                }),
                _ => Err(err(
                    x.span,
                    format!(
                        "'&' needs an object in memory; {} has no address here",
                        self.quote(x)
                    ),
                )),
            },
            UnOp::Not => {
                let mut ops = self.truth(v, x.span)?;
                ops.push(Op::LNot);
                Ok(Val::Word { ops, ty: INT })
            }
            UnOp::Neg | UnOp::Plus | UnOp::BitNot => {
                let t = self.rtype(&v);
                let Some((float, ..)) = self.arith_kind(&t) else {
                    return Err(err(
                        x.span,
                        format!(
                            "'{}' needs a number, not {}",
                            match op {
                                UnOp::Neg => "-",
                                UnOp::Plus => "+",
                                _ => "~",
                            },
                            self.name(&t)
                        ),
                    ));
                };
                if float && op == UnOp::BitNot {
                    return Err(err(
                        span,
                        "'~' needs an integer, not a floating-point number",
                    ));
                }
                let pt = self.promote(&t);
                let mut ops = self.convert(v, &pt, x.span)?;
                match op {
                    UnOp::Neg if float => ops.push(Op::FNeg),
                    UnOp::Neg => ops.push(Op::Neg),
                    UnOp::BitNot => ops.push(Op::Not),
                    _ => {}
                }
                if let Ty::Int { size, signed } = pt {
                    ops.extend(narrow(size, signed));
                }
                Ok(Val::Word { ops, ty: pt })
            }
        }
    }

    fn binary(&mut self, op: BinOp, a: &Expr, b: &Expr, span: Span) -> Result<Val, ExprError> {
        if matches!(op, BinOp::And | BinOp::Or) {
            let av = self.expr(a)?;
            let bv = self.expr(b)?;
            let mut ops = self.truth(av, a.span)?;
            let b_ops = self.truth(bv, b.span)?;
            // a && b: if !a → 0 else b.   a || b: if a → 1 else b.
            if op == BinOp::Or {
                ops.push(Op::LNot);
            }
            let jz_at = ops.len();
            ops.push(Op::Jz(0));
            ops.extend(relocate(b_ops, ops.len()));
            let jmp_at = ops.len();
            ops.push(Op::Jmp(0));
            ops[jz_at] = Op::Jz(ops.len() as u32);
            ops.push(Op::Const(if op == BinOp::Or { 1 } else { 0 }));
            ops[jmp_at] = Op::Jmp(ops.len() as u32);
            return Ok(Val::Word { ops, ty: INT });
        }
        // An enumerator named against an enum (`o->st == PAID`) is found through the enum.
        let (av, bv) = match (self.expr(a), self.expr(b)) {
            (Ok(av), Ok(bv)) => (av, bv),
            (Ok(av), Err(e)) => {
                let bv = self.enumerator(&av, b).ok_or(e)?;
                (av, bv)
            }
            (Err(e), Ok(bv)) => (self.enumerator(&bv, a).ok_or(e)?, bv),
            (Err(e), Err(_)) => return Err(e),
        };
        // String comparison by content.
        if matches!(op, BinOp::Eq | BinOp::Ne)
            && (matches!(av, Val::Str(_)) || matches!(bv, Val::Str(_)))
        {
            let (s, other, other_e) = match (av, bv) {
                (Val::Str(s), o) => (s, o, b),
                (o, Val::Str(s)) => (s, o, a),
                _ => unreachable!(),
            };
            let mut ops = self.string_eq(other, other_e, s)?;
            if op == BinOp::Ne {
                ops.push(Op::LNot);
            }
            return Ok(Val::Word { ops, ty: INT });
        }
        let (at, bt) = (self.rtype(&av), self.rtype(&bv));
        let (ap, bp) = (
            matches!(self.shape(&at), Shape::Ptr(_)),
            matches!(self.shape(&bt), Shape::Ptr(_)),
        );
        let (aa, ba) = (
            self.arith_kind(&at).is_some(),
            self.arith_kind(&bt).is_some(),
        );
        // Pointer arithmetic.
        if matches!(op, BinOp::Add | BinOp::Sub) && (ap || bp) {
            if ap && bp && op == BinOp::Sub {
                let Shape::Ptr(elem) = self.shape(&at) else {
                    unreachable!()
                };
                let size = self.size_of(&elem).unwrap_or(1).max(1);
                let mut ops = self.rvalue(av, a.span)?;
                ops.extend(self.rvalue(bv, b.span)?);
                ops.extend([Op::Sub, Op::Const(size), Op::DivS]);
                return Ok(Val::Word { ops, ty: LONG });
            }
            let (pv, pe, iv, ie, pt) = if ap {
                (av, a, bv, b, at.clone())
            } else {
                (bv, b, av, a, bt.clone())
            };
            if !matches!(self.arith_kind(&self.rtype(&iv)), Some((false, ..)))
                || (op == BinOp::Sub && !ap)
            {
                return Err(err(
                    span,
                    format!(
                        "cannot {} {} and {}",
                        if op == BinOp::Add { "add" } else { "subtract" },
                        self.name(&at),
                        self.name(&bt)
                    ),
                ));
            }
            let Shape::Ptr(elem) = self.shape(&pt) else {
                unreachable!()
            };
            let size = self.size_of(&elem).unwrap_or(1).max(1);
            let mut ops = self.rvalue(pv, pe.span)?;
            ops.extend(self.convert(iv, &LONG, ie.span)?);
            ops.extend([
                Op::Const(size),
                Op::Mul,
                if op == BinOp::Add { Op::Add } else { Op::Sub },
            ]);
            return Ok(Val::Word { ops, ty: pt });
        }
        // Pointer comparisons (with each other, or with 0).
        if matches!(
            op,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge
        ) && (ap || bp)
        {
            if !(ap || aa) || !(bp || ba) {
                return Err(err(
                    span,
                    format!("cannot compare {} with {}", self.name(&at), self.name(&bt)),
                ));
            }
            let mut ops = self.rvalue(av, a.span)?;
            ops.extend(self.rvalue(bv, b.span)?);
            ops.extend(compare(op, false, false));
            return Ok(Val::Word { ops, ty: INT });
        }
        if !aa || !ba {
            let bad = if !aa { (a, &at) } else { (b, &bt) };
            return Err(err(
                bad.0.span,
                format!(
                    "'{}' needs numbers, but {} is {}",
                    op.text(),
                    self.quote(bad.0),
                    self.name(bad.1)
                ),
            ));
        }
        let is_shift = matches!(op, BinOp::Shl | BinOp::Shr);
        let ty = if is_shift {
            self.promote(&at)
        } else {
            self.common(&at, &bt)
        };
        let float = ty == Ty::Double;
        if float
            && matches!(
                op,
                BinOp::Rem | BinOp::Shl | BinOp::Shr | BinOp::BitAnd | BinOp::BitOr | BinOp::BitXor
            )
        {
            return Err(err(
                span,
                format!("'{}' needs integers, not floating-point numbers", op.text()),
            ));
        }
        let signed = matches!(ty, Ty::Int { signed: true, .. });
        let mut ops = self.convert(av, &ty, a.span)?;
        let bty = if is_shift {
            self.promote(&bt)
        } else {
            ty.clone()
        };
        ops.extend(self.convert(bv, &bty, b.span)?);
        if matches!(
            op,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge
        ) {
            ops.extend(compare(op, signed, float));
            return Ok(Val::Word { ops, ty: INT });
        }
        ops.push(match (op, float) {
            (BinOp::Add, true) => Op::FAdd,
            (BinOp::Sub, true) => Op::FSub,
            (BinOp::Mul, true) => Op::FMul,
            (BinOp::Div, true) => Op::FDiv,
            (BinOp::Add, _) => Op::Add,
            (BinOp::Sub, _) => Op::Sub,
            (BinOp::Mul, _) => Op::Mul,
            (BinOp::Div, _) => {
                if signed {
                    Op::DivS
                } else {
                    Op::DivU
                }
            }
            (BinOp::Rem, _) => {
                if signed {
                    Op::RemS
                } else {
                    Op::RemU
                }
            }
            (BinOp::Shl, _) => Op::Shl,
            (BinOp::Shr, _) => {
                if signed {
                    Op::ShrS
                } else {
                    Op::ShrU
                }
            }
            (BinOp::BitAnd, _) => Op::And,
            (BinOp::BitOr, _) => Op::Or,
            (BinOp::BitXor, _) => Op::Xor,
            _ => unreachable!("handled above"),
        });
        if let Ty::Int { size, signed } = ty {
            ops.extend(narrow(size, signed));
        }
        Ok(Val::Word { ops, ty })
    }

    /// `x == "text"`: by content for char pointers and arrays, std::string, Rust &str/String.
    fn string_eq(&mut self, v: Val, e: &Expr, s: Vec<u8>) -> Result<Vec<Op>, ExprError> {
        let ty = self.ty_of(&v);
        match self.shape(&ty) {
            Shape::Ptr(t) | Shape::Array { elem: t, .. }
                if matches!(self.shape(&t), Shape::Int { size: 1, .. }) =>
            {
                let mut ops = self.rvalue(v, e.span)?;
                let lit = self.lit(s);
                ops.push(Op::StrEq { lit });
                Ok(ops)
            }
            Shape::Struct { name, .. } => {
                // A (pointer, length) string: std::string, Rust &str and String.
                if let Val::Pieces { pieces, .. } = &v
                    && let Some((ptr_path, len_off)) = self.string_layout(&ty)
                    && let [ptr_off] = ptr_path.as_slice()
                {
                    let (ptr, len) = (
                        self.piece_at(pieces, *ptr_off, 8, ULONG),
                        self.piece_at(pieces, len_off, 8, ULONG),
                    );
                    if let (Some(ptr), Some(len)) = (ptr, len) {
                        let mut ops = self.rvalue(ptr, e.span)?;
                        ops.extend(self.rvalue(len, e.span)?);
                        let lit = self.lit(s);
                        ops.push(Op::BytesEq { lit });
                        return Ok(ops);
                    }
                }
                let Val::Mem { ops: base, .. } = v else {
                    return Err(err(
                        e.span,
                        format!("{} is not in memory here", self.quote(e)),
                    ));
                };
                let (ptr_path, len_path) = self.string_layout(&ty).ok_or_else(|| {
                    err(e.span, format!("cannot compare {name} with a string: only char *, char[], std::string, &str and String compare by content"))
                })?;
                let mut ops = base.clone();
                for (i, off) in ptr_path.iter().enumerate() {
                    if i > 0 {
                        ops.push(Op::Load(8));
                    }
                    ops.extend([Op::Const(*off), Op::Add]);
                }
                ops.push(Op::Load(8));
                ops.extend(base);
                ops.extend([Op::Const(len_path), Op::Add, Op::Load(8)]);
                let lit = self.lit(s);
                ops.push(Op::BytesEq { lit });
                Ok(ops)
            }
            _ => Err(err(
                e.span,
                format!(
                    "cannot compare {} with a string: only char *, char[], std::string, &str and String compare by content",
                    self.name(&ty)
                ),
            )),
        }
    }

    /// Offsets of the data pointer and of the length in a string struct (one level each):
    /// libstdc++'s std::string (`_M_dataplus._M_p`, `_M_string_length`), Rust `&str`
    /// (`data_ptr`, `length`) and `String` (`vec.buf.inner.ptr…`, `vec.len`).
    fn string_layout(&self, ty: &Ty) -> Option<(Vec<u64>, u64)> {
        let Ty::D(mut r) = ty.clone() else {
            return None;
        };
        while let TypeKind::Typedef { target, .. }
        | TypeKind::Const(target)
        | TypeKind::Volatile(target) = self.symbols.type_kind(r)
        {
            r = target;
        }
        let name = self.symbols.type_name(r);
        if name.starts_with("std::__cxx11::basic_string<char")
            || name == "std::string"
            || name.starts_with("std::basic_string<char")
        {
            let (p, _, _) = self.find_member(r, "_M_dataplus", 0)?;
            let (l, _, _) = self.find_member(r, "_M_string_length", 0)?;
            return Some((vec![p], l));
        }
        if name == "&str" {
            let (p, _, _) = self.find_member(r, "data_ptr", 0)?;
            let (l, _, _) = self.find_member(r, "length", 0)?;
            return Some((vec![p], l));
        }
        if name == "alloc::string::String" {
            // vec: Vec<u8> { buf: RawVec { inner: RawVecInner { ptr: Unique { pointer: NonNull { pointer } } } … }, len }
            let (v, vt, _) = self.find_member(r, "vec", 0)?;
            let (len, _, _) = self.find_member(vt, "len", 0)?;
            let ptr = self.first_pointer_offset(vt, 0)?;
            return Some((vec![v + ptr], v + len));
        }
        None
    }

    /// The offset of the first pointer member, depth-first (Rust's nested pointer wrappers).
    fn first_pointer_offset(&self, r: TypeRef, depth: u32) -> Option<u64> {
        if depth > 8 {
            return None;
        }
        let TypeKind::Struct { members, .. } = self.symbols.type_kind(r) else {
            return None;
        };
        for m in members {
            let mut t = m.ty;
            while let TypeKind::Typedef { target, .. }
            | TypeKind::Const(target)
            | TypeKind::Volatile(target) = self.symbols.type_kind(t)
            {
                t = target;
            }
            match self.symbols.type_kind(t) {
                TypeKind::Pointer { .. } => return Some(m.offset),
                TypeKind::Struct { .. } => {
                    if let Some(o) = self.first_pointer_offset(t, depth + 1) {
                        return Some(m.offset + o);
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// If `e` names an enumerator of `other`'s enum type, its value.
    fn enumerator(&self, other: &Val, e: &Expr) -> Option<Val> {
        let ExprKind::Ident(name) = &e.kind else {
            return None;
        };
        let ty = self.ty_of(other);
        let Shape::Enum { enumerators, .. } = self.shape(&ty) else {
            return None;
        };
        let (value, _) = enumerators
            .iter()
            .find(|(_, n)| n == name || n.rsplit("::").next() == Some(name))?;
        Some(Val::Word {
            ops: vec![Op::Const(*value as u64)],
            ty,
        })
    }

    /// Resolves a type name from a cast or sizeof.
    fn type_name(&self, tn: &TypeName) -> Result<Ty, ExprError> {
        let base =
            match tn.base.as_str() {
                "char" | "signed char" => Ty::Int {
                    size: 1,
                    signed: true,
                },
                "unsigned char" => Ty::Int {
                    size: 1,
                    signed: false,
                },
                "short" => Ty::Int {
                    size: 2,
                    signed: true,
                },
                "unsigned short" => Ty::Int {
                    size: 2,
                    signed: false,
                },
                "int" => INT,
                "unsigned int" => Ty::Int {
                    size: 4,
                    signed: false,
                },
                "long" | "long long" => LONG,
                "unsigned long" | "unsigned long long" => ULONG,
                "_Bool" | "bool" => Ty::Int {
                    size: 1,
                    signed: false,
                },
                "float" | "double" => Ty::Double,
                "void" => Ty::Void,
                other => Ty::D(self.symbols.find_type(other).ok_or_else(|| {
                    err(tn.span, format!("no type named '{other}' in this program"))
                })?),
            };
        let mut t = base;
        for _ in 0..tn.pointers {
            t = Ty::Ptr(Box::new(t));
        }
        if t == Ty::Void {
            return Err(err(tn.span, "cannot convert to void"));
        }
        Ok(t)
    }
}

fn err(span: Span, msg: impl Into<String>) -> ExprError {
    ExprError {
        span,
        message: msg.into(),
    }
}

/// Sign- or zero-extend to a type's width after an operation.
fn narrow(size: u8, signed: bool) -> Vec<Op> {
    if size >= 8 {
        return vec![];
    }
    vec![if signed {
        Op::SExt(size * 8)
    } else {
        Op::ZExt(size * 8)
    }]
}

/// Comparison ops (operands already on the stack: a then b).
fn compare(op: BinOp, signed: bool, float: bool) -> Vec<Op> {
    let (lt, le, eq) = if float {
        (Op::FLt, Op::FLe, Op::FEq)
    } else if signed {
        (Op::LtS, Op::LeS, Op::Eq)
    } else {
        (Op::LtU, Op::LeU, Op::Eq)
    };
    match op {
        BinOp::Eq => vec![eq],
        BinOp::Ne => vec![eq, Op::LNot],
        BinOp::Lt => vec![lt],
        BinOp::Le => vec![le],
        BinOp::Gt => vec![Op::Swap, lt],
        BinOp::Ge => vec![Op::Swap, le],
        _ => unreachable!(),
    }
}

/// Shifts the jump targets of a code fragment placed at `base`.
fn relocate(ops: Vec<Op>, base: usize) -> Vec<Op> {
    ops.into_iter()
        .map(|op| match op {
            Op::Jz(t) => Op::Jz(t + base as u32),
            Op::Jmp(t) => Op::Jmp(t + base as u32),
            other => other,
        })
        .collect()
}

/// A member found by name: its offset in the struct, its type, and its bitfield (bit offset,
/// bit size) if it is one.
type FoundMember = (u64, TypeRef, Option<(u64, u64)>);

/// How to read a watch expression at a hit.
#[derive(Clone, Debug)]
pub enum WatchPlan {
    /// An object in memory: the program pushes its address; show it by its DWARF type.
    Object { program: Program, ty: TypeRef },
    /// A computed value: the program pushes it; `ty` says how to show the word.
    Scalar { program: Program, ty: Ty },
}

impl Compiler<'_> {
    /// Compiles a watch expression: any value, shown whole (structs, arrays) when it is an
    /// object in memory of a program type.
    pub fn watch(mut self, e: &Expr) -> Result<WatchPlan, ExprError> {
        let v = self.expr(e)?;
        match v {
            Val::Mem { ops, ty: Ty::D(r) } => Ok(WatchPlan::Object {
                program: Program {
                    ops,
                    lits: self.lits,
                },
                ty: r,
            }),
            other => {
                let ty = self.rtype(&other);
                let ops = self.rvalue(other, e.span)?;
                Ok(WatchPlan::Scalar {
                    program: Program {
                        ops,
                        lits: self.lits,
                    },
                    ty,
                })
            }
        }
    }
}
