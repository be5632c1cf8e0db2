//! Snapshots: every frame of the stopped thread, the arguments and locals of the top frames,
//! and watch expressions, read into a bounded tree.
//!
//! A snapshot is taken while the thread that hit is held stopped (the engine holds it and the
//! session's router thread does this work, then releases it), so every value comes from the
//! same instant. It costs that thread milliseconds, not microseconds, which is why snapshots
//! default to one hit. All reads go through process_vm_readv: a wild pointer is a status in the
//! tree, never a fault. Bounds (all overridable, documented in docs/snapshots.md): object depth
//! 5, strings 256 bytes, collections 100 elements, 64 KiB of target memory per snapshot, 64
//! frames, arguments and locals for the top 5 frames. Cycles are detected.

use crate::addr::{Bias, FileAddr};
use crate::debuginfo::{Encoding, ModuleSymbols, Place, TypeKind, TypeRef, VarInfo};
use crate::vm::{self, HitContext, Limits, Outcome};
use std::collections::HashSet;

/// Bounds on one snapshot.
#[derive(Clone, Copy, Debug)]
pub struct SnapshotLimits {
    /// How many pointer / member levels below a variable are read.
    pub depth: u32,
    /// Bytes of a string shown.
    pub string_bytes: usize,
    /// Elements of an array shown.
    pub collection_items: usize,
    /// Bytes of target memory read for the whole snapshot.
    pub total_bytes: usize,
    /// Frames unwound.
    pub frames: usize,
    /// Frames whose arguments and locals are read.
    pub frames_with_variables: usize,
}

impl Default for SnapshotLimits {
    fn default() -> Self {
        SnapshotLimits {
            depth: 5,
            string_bytes: 256,
            collection_items: 100,
            total_bytes: 64 * 1024,
            frames: 64,
            frames_with_variables: 5,
        }
    }
}

/// A value in a snapshot.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Int(i64),
    Uint(u64),
    Float(f64),
    Bool(bool),
    /// A character: its code.
    Char(i64),
    Enum {
        value: i64,
        name: Option<String>,
    },
    /// A pointer: its value, what it points to (if followed), the string (for char *),
    /// the function (for a function pointer).
    Pointer {
        addr: u64,
        target: Option<Box<Node>>,
        string: Option<(String, bool)>,
        symbol: Option<String>,
    },
    /// A C++ reference: where it refers, and the value there.
    Ref {
        addr: u64,
        target: Box<Node>,
    },
    /// A char array's text.
    Str {
        text: String,
        truncated: bool,
    },
    /// A struct's members, base classes first as `<Base>`.
    Struct {
        /// For a Rust struct, its path (`values::Point`): Rust values are written in Rust's
        /// syntax, `values::Point {x: 1, y: 2}`. None for C and C++ (`{x = 1, y = 2}`).
        rust_name: Option<String>,
        fields: Vec<(String, Node)>,
    },
    /// An array's first elements and its length.
    Array {
        items: Vec<Node>,
        len: Option<u64>,
        /// A Rust array (`[1, 2]`) rather than a C one (`{1, 2}`).
        rust: bool,
    },
    /// A Rust tuple's elements.
    Tuple(Vec<Node>),
    /// A smart pointer (std::unique_ptr, std::shared_ptr, Rust's Rc and Arc): its spelling as
    /// gdb shows it (`std::unique_ptr<geo::Square>`, `Rc`), the pointer, what it points to,
    /// and for a shared pointer the use (strong) and weak counts, as the libraries' gdb
    /// printers count them (without the weak reference the owners hold together).
    Smart {
        spelled: String,
        ptr: u64,
        target: Option<Box<Node>>,
        counts: Option<(i64, i64)>,
    },
    /// A map (std::map, std::unordered_map, Rust's HashMap): its spelling, its size, its first entries.
    Map {
        spelled: String,
        len: u64,
        entries: Vec<(Node, Node)>,
    },
    /// A Rust enum's active variant: the enum's type name, the variant's name, its fields
    /// (`__0`, `__1`, … for tuple variants).
    Variant {
        enum_name: String,
        variant: String,
        fields: Vec<(String, Node)>,
    },
    /// Why there is no value here.
    Status(Status),
}

/// Why a value is missing or cut.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    OptimizedOut,
    Unreadable(u64),
    Unavailable(String),
    /// Not read: the depth limit.
    DepthLimit,
    /// Not read: the snapshot's byte budget is spent.
    SizeLimit,
    /// Already shown higher up (a cycle).
    Cycle(u64),
    /// A type not rendered yet.
    NotCaptured(String),
}

/// A named value.
#[derive(Clone, Debug, PartialEq)]
pub struct Var {
    pub name: String,
    /// Its type, as the source spells it.
    pub ty: String,
    pub value: Node,
    /// An inner variable of the same name hides this one.
    pub shadowed: bool,
}

/// One frame.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameSnap {
    pub index: usize,
    pub function: String,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub pc: u64,
    pub module: Option<String>,
    /// An inlined call (no frame of its own in the machine stack).
    pub inlined: bool,
    /// `<signal handler called>`.
    pub signal_frame: bool,
    /// Arguments and locals were read for this frame.
    pub has_variables: bool,
    pub args: Vec<Var>,
    pub locals: Vec<Var>,
}

/// A snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub frames: Vec<FrameSnap>,
    pub watches: Vec<Var>,
    /// Why the stack ends where it does.
    pub stack_end: String,
    /// Bytes of target memory read.
    pub bytes_read: usize,
    /// Some value was cut by a limit.
    pub truncated: bool,
}

/// Reads values of one module's types from a stopped process, within limits.
pub struct Reader<'a> {
    pub pid: i32,
    pub symbols: &'a ModuleSymbols,
    /// The module's load bias (to name pointers into its globals and functions).
    pub bias: Bias,
    /// The FP/SSE registers of the frame being read (frame 0 only: they are caller-saved).
    pub fpregs: Option<libc::user_fpregs_struct>,
    /// Argument registers' values when the frame's function was entered, recovered from the
    /// caller's call site (for `DW_OP_entry_value`).
    pub entry_regs: Vec<(crate::regs::Reg, u64)>,
    pub limits: SnapshotLimits,
    pub bytes_read: usize,
    pub truncated: bool,
    visited: HashSet<(u64, TypeRef)>,
}

impl<'a> Reader<'a> {
    /// A reader for `symbols`' types in process `pid`.
    pub fn new(pid: i32, symbols: &'a ModuleSymbols, limits: SnapshotLimits) -> Reader<'a> {
        Reader {
            pid,
            symbols,
            bias: Bias(0),
            fpregs: None,
            entry_regs: Vec::new(),
            limits,
            bytes_read: 0,
            truncated: false,
            visited: HashSet::new(),
        }
    }

    fn read(&mut self, addr: u64, len: usize) -> Result<Vec<u8>, Status> {
        if self.bytes_read + len > self.limits.total_bytes {
            self.truncated = true;
            return Err(Status::SizeLimit);
        }
        let mut buf = vec![0u8; len];
        if len > 0 && crate::ptrace::mem::read(self.pid, addr, &mut buf).is_err() {
            return Err(Status::Unreadable(addr));
        }
        self.bytes_read += len;
        Ok(buf)
    }

    fn peel(&self, mut t: TypeRef) -> (TypeRef, TypeKind) {
        for _ in 0..32 {
            match self.symbols.type_kind(t) {
                TypeKind::Typedef { target, .. }
                | TypeKind::Const(target)
                | TypeKind::Volatile(target) => t = target,
                k => return (t, k),
            }
        }
        (
            t,
            TypeKind::Unknown {
                name: "typedef cycle".into(),
                size: 0,
            },
        )
    }

    fn is_char(&self, t: TypeRef) -> bool {
        matches!(
            self.peel(t).1,
            TypeKind::Base {
                size: 1,
                encoding: Encoding::SignedChar
                    | Encoding::UnsignedChar
                    | Encoding::Signed
                    | Encoding::Unsigned,
                ..
            }
        ) && matches!(self.peel(t).1, TypeKind::Base { ref name, .. } if name.contains("char"))
    }

    /// A variable's value, from its place, in a frame with registers `regs`.
    pub fn var(
        &mut self,
        v: &VarInfo,
        regs: &libc::user_regs_struct,
        known: &dyn Fn(crate::regs::Reg) -> bool,
    ) -> Node {
        self.visited.clear();
        self.place(&v.place, v.ty, regs, known)
    }

    fn run(
        &mut self,
        ops: &[vm::Op],
        regs: &libc::user_regs_struct,
        known: &dyn Fn(crate::regs::Reg) -> bool,
    ) -> Result<u64, Status> {
        if let Some(r) = ops.iter().find_map(|o| {
            if let vm::Op::Reg(r) = o {
                (!known(*r)).then_some(*r)
            } else {
                None
            }
        }) {
            return Err(Status::Unavailable(format!(
                "{r} is not saved across the call in this frame"
            )));
        }
        let program = vm::Program {
            ops: ops.to_vec(),
            lits: Vec::new(),
        };
        let ctx = HitContext {
            regs,
            pid: self.pid,
            tid: self.pid,
            hits: 0,
            fpregs: self.fpregs.as_ref(),
            entry_regs: Some(&self.entry_regs),
        };
        let mut mem = vm::ProcessMemory { pid: self.pid };
        match vm::run_all(&[&program], &ctx, &mut mem, Limits::default()).pop() {
            Some(Outcome::Done { top: Some(w), .. }) => Ok(w),
            Some(Outcome::Done { top: None, .. }) | None => {
                Err(Status::Unavailable("empty location".into()))
            }
            Some(Outcome::Failed(vm::Fault::Unreadable(a))) => Err(Status::Unreadable(a)),
            Some(Outcome::Failed(vm::Fault::OptimizedOut)) => Err(Status::OptimizedOut),
            Some(Outcome::Failed(vm::Fault::Unavailable(why))) => Err(Status::Unavailable(why)),
            Some(Outcome::Failed(f)) => Err(Status::Unavailable(f.to_string())),
        }
    }

    /// The value a call site's `DW_AT_call_value` computes in this (the caller's) frame:
    /// None when it needs a register the unwinder did not recover, or memory that cannot be
    /// read.
    pub fn call_value(
        &mut self,
        value: &Place,
        regs: &libc::user_regs_struct,
        known: &dyn Fn(crate::regs::Reg) -> bool,
    ) -> Option<u64> {
        match value {
            Place::Memory(ops) | Place::Value(ops) => self.run(ops, regs, known).ok(),
            Place::Implicit(b) => {
                let mut w = [0u8; 8];
                let n = b.len().min(8);
                w[..n].copy_from_slice(&b[..n]);
                Some(u64::from_le_bytes(w))
            }
            _ => None,
        }
    }

    fn place(
        &mut self,
        place: &Place,
        ty: TypeRef,
        regs: &libc::user_regs_struct,
        known: &dyn Fn(crate::regs::Reg) -> bool,
    ) -> Node {
        match place {
            Place::Memory(ops) => match self.run(ops, regs, known) {
                Ok(addr) => self.at(addr, ty, 0),
                Err(s) => Node::Status(s),
            },
            Place::Value(ops) => match self.run(ops, regs, known) {
                Ok(w) => {
                    let size = self.symbols.type_size(ty).unwrap_or(8).min(8) as usize;
                    self.decode(&w.to_le_bytes()[..size], ty, 0)
                }
                Err(s) => Node::Status(s),
            },
            Place::Implicit(bytes) => self.decode(bytes, ty, 0),
            Place::OptimizedOut => Node::Status(Status::OptimizedOut),
            Place::Unavailable(why) => Node::Status(Status::Unavailable(why.clone())),
            Place::Pieces(pieces) => {
                let mut bytes = Vec::new();
                for (p, size) in pieces {
                    let size = *size as usize;
                    let part = match p {
                        Place::Memory(ops) => {
                            self.run(ops, regs, known).and_then(|a| self.read(a, size))
                        }
                        Place::Value(ops) => self.run(ops, regs, known).map(|w| {
                            let mut b = w.to_le_bytes().to_vec();
                            b.resize(size, 0);
                            b
                        }),
                        Place::Implicit(b) => Ok(b.clone()),
                        _ => Err(Status::OptimizedOut),
                    };
                    match part {
                        Ok(b) => bytes.extend_from_slice(&b[..size.min(b.len())]),
                        Err(s) => return Node::Status(s),
                    }
                }
                self.decode(&bytes, ty, 0)
            }
        }
    }

    /// The value of type `ty` at `addr`.
    pub fn at(&mut self, addr: u64, ty: TypeRef, depth: u32) -> Node {
        let (_, kind) = self.peel(ty);
        let size = match kind {
            TypeKind::Array { .. } => self.array_bytes(ty),
            _ => self.symbols.type_size(ty).unwrap_or(0) as usize,
        };
        if size == 0 {
            return self.decode(&[], ty, depth);
        }
        match self.read(addr, size) {
            Ok(bytes) => self.decode(&bytes, ty, depth),
            Err(s) => Node::Status(s),
        }
    }

    /// Bytes of an array to read: its elements up to the collection limit.
    fn array_bytes(&self, ty: TypeRef) -> usize {
        let (_, TypeKind::Array { element, dims }) = self.peel(ty) else {
            return 0;
        };
        let esize = self.symbols.type_size(element).unwrap_or(0) as usize;
        let inner: u64 = dims
            .iter()
            .skip(1)
            .map(|d| d.unwrap_or(0))
            .product::<u64>()
            .max(1);
        let n = dims
            .first()
            .copied()
            .flatten()
            .unwrap_or(0)
            .min(self.limits.collection_items as u64) as usize;
        let limit = if self.is_char(element) {
            self.limits.string_bytes
        } else {
            usize::MAX
        };
        (n * inner as usize * esize).min(limit.max(esize))
    }

    /// Decodes `bytes` as a value of type `ty`.
    pub fn decode(&mut self, bytes: &[u8], ty: TypeRef, depth: u32) -> Node {
        let (pt, kind) = self.peel(ty);
        if let TypeKind::Struct { .. } = kind
            && let Some(n) = self.special(pt, "", bytes, depth)
        {
            return n;
        }
        if let TypeKind::Struct {
            variant: Some(v), ..
        } = &kind
        {
            return self.variant(pt, v, bytes, depth);
        }
        // A Rust tuple (`(i32, &str)`): its fields are __0, __1, …
        if let TypeKind::Struct {
            name: Some(n),
            members,
            ..
        } = &kind
            && n.starts_with('(')
            && members
                .iter()
                .all(|m| m.name.as_deref().is_some_and(|f| f.starts_with("__")))
        {
            let items = members
                .iter()
                .map(|m| {
                    let size = self.symbols.type_size(m.ty).unwrap_or(0) as usize;
                    let off = m.offset as usize;
                    match bytes.get(off..off + size) {
                        Some(b) => self.decode(b, m.ty, depth + 1),
                        None => {
                            Node::Status(Status::Unavailable("member outside the value".into()))
                        }
                    }
                })
                .collect();
            return Node::Tuple(items);
        }
        let word = |n: usize| {
            let mut w = [0u8; 8];
            let n = n.min(bytes.len()).min(8);
            w[..n].copy_from_slice(&bytes[..n]);
            u64::from_le_bytes(w)
        };
        match kind {
            TypeKind::Base {
                size,
                encoding,
                name,
            } => {
                let size = size as usize;
                if bytes.len() < size {
                    return Node::Status(Status::Unavailable("short read".into()));
                }
                let w = word(size);
                let sext = |w: u64| {
                    if size < 8 {
                        ((w << (64 - size * 8)) as i64) >> (64 - size * 8)
                    } else {
                        w as i64
                    }
                };
                match encoding {
                    Encoding::Bool => Node::Bool(w != 0),
                    Encoding::Float if size == 4 => Node::Float(f32::from_bits(w as u32) as f64),
                    Encoding::Float if size == 8 => Node::Float(f64::from_bits(w)),
                    Encoding::Float => Node::Status(Status::NotCaptured(name)),
                    Encoding::SignedChar => Node::Char(sext(w)),
                    Encoding::UnsignedChar => Node::Char(w as i64),
                    Encoding::Signed if size == 1 && name.contains("char") => Node::Char(sext(w)),
                    Encoding::Signed => Node::Int(sext(w)),
                    Encoding::Unsigned | Encoding::Utf => Node::Uint(w),
                }
            }
            TypeKind::Enum {
                size,
                signed,
                enumerators,
                name: enum_name,
            } => {
                let w = word(size as usize);
                let v = if signed && size < 8 {
                    ((w << (64 - size * 8)) as i64) >> (64 - size * 8)
                } else {
                    w as i64
                };
                Node::Enum {
                    value: v,
                    // Rust names an enumerator by its path (`values::Color::Blue`).
                    name: enumerators.iter().find(|(e, _)| *e == v).map(
                        |(_, n)| match &enum_name {
                            Some(en) if self.symbols.is_rust(pt) => format!("{en}::{n}"),
                            _ => n.clone(),
                        },
                    ),
                }
            }
            TypeKind::Pointer { pointee } if bytes.len() >= 8 => {
                let _ = pt;
                self.pointer(word(8), pointee, depth)
            }
            TypeKind::Reference { target, .. } if bytes.len() >= 8 => {
                let addr = word(8);
                let value = if depth >= self.limits.depth {
                    self.truncated = true;
                    Node::Status(Status::DepthLimit)
                } else {
                    self.at(addr, target, depth + 1)
                };
                Node::Ref {
                    addr,
                    target: Box::new(value),
                }
            }
            TypeKind::Pointer { .. } | TypeKind::Reference { .. } => {
                Node::Status(Status::Unavailable("short read".into()))
            }
            TypeKind::Struct { members, bases, .. } => {
                if depth > self.limits.depth {
                    self.truncated = true;
                    return Node::Status(Status::DepthLimit);
                }
                let mut fields = Vec::new();
                for (b, off) in bases {
                    let size = self.symbols.type_size(b).unwrap_or(0) as usize;
                    let off = off as usize;
                    if off + size <= bytes.len() {
                        let name = format!("<{}>", self.symbols.type_name(b));
                        let v = self.decode(&bytes[off..off + size], b, depth + 1);
                        fields.push((name, v));
                    }
                }
                for m in members {
                    // Artificial members are compiler bookkeeping; the vtable pointer is shown
                    // (as gdb does: it tells the dynamic type).
                    if m.artificial && !m.name.as_deref().is_some_and(|n| n.starts_with("_vptr")) {
                        continue;
                    }
                    let name = m.name.clone().unwrap_or_else(|| "<anonymous>".into());
                    let size = self.symbols.type_size(m.ty).unwrap_or(0) as usize;
                    let off = m.offset as usize;
                    let v = match m.bitfield {
                        Some((bit_off, bits)) => {
                            let mut w = [0u8; 8];
                            let avail = bytes.len().saturating_sub(off).min(8);
                            w[..avail].copy_from_slice(&bytes[off..off + avail]);
                            let raw = (u64::from_le_bytes(w) >> bit_off)
                                & if bits >= 64 {
                                    u64::MAX
                                } else {
                                    (1 << bits) - 1
                                };
                            let signed = matches!(
                                self.peel(m.ty).1,
                                TypeKind::Base {
                                    encoding: Encoding::Signed,
                                    ..
                                }
                            );
                            if signed && bits < 64 && raw >> (bits - 1) & 1 == 1 {
                                Node::Int((raw | (u64::MAX << bits)) as i64)
                            } else if signed {
                                Node::Int(raw as i64)
                            } else {
                                Node::Uint(raw)
                            }
                        }
                        None if off + size <= bytes.len() => {
                            self.decode(&bytes[off..off + size], m.ty, depth + 1)
                        }
                        None if matches!(self.peel(m.ty).1, TypeKind::Array { .. })
                            && off <= bytes.len() =>
                        {
                            self.decode(&bytes[off..], m.ty, depth + 1)
                        }
                        None => {
                            Node::Status(Status::Unavailable("member outside the value".into()))
                        }
                    };
                    fields.push((name, v));
                }
                Node::Struct {
                    rust_name: (self.symbols.is_rust(pt)).then(|| self.symbols.type_name(pt)),
                    fields,
                }
            }
            TypeKind::Array { element, dims } => {
                let esize = self.symbols.type_size(element).unwrap_or(0) as usize;
                let len = dims.first().copied().flatten();
                if self.is_char(element) && dims.len() == 1 {
                    let text =
                        &bytes[..bytes.len().min(len.unwrap_or(bytes.len() as u64) as usize)];
                    let nul = text.iter().position(|b| *b == 0);
                    let shown = &text[..nul.unwrap_or(text.len())];
                    return Node::Str {
                        text: String::from_utf8_lossy(shown).into_owned(),
                        truncated: nul.is_none() && len.is_some_and(|l| l as usize > text.len()),
                    };
                }
                if esize == 0 || dims.len() > 1 {
                    return Node::Status(Status::NotCaptured(self.symbols.type_name(ty)));
                }
                let n = (bytes.len() / esize).min(self.limits.collection_items);
                if len.is_some_and(|l| l as usize > n) {
                    self.truncated = true;
                }
                let items = (0..n)
                    .map(|i| self.decode(&bytes[i * esize..(i + 1) * esize], element, depth + 1))
                    .collect();
                Node::Array {
                    items,
                    len,
                    rust: self.symbols.is_rust(ty),
                }
            }
            TypeKind::Void => Node::Status(Status::NotCaptured("void".into())),
            TypeKind::Function { .. } => Node::Status(Status::NotCaptured("function".into())),
            TypeKind::Typedef { .. } | TypeKind::Const(_) | TypeKind::Volatile(_) => {
                unreachable!("peeled")
            }
            TypeKind::Unknown { name, .. } => Node::Status(Status::NotCaptured(name)),
        }
    }

    /// The active variant of a Rust enum, chosen by its discriminant (a tag, or the niche
    /// field whose invalid values stand for the other variants).
    fn variant(
        &mut self,
        t: TypeRef,
        v: &crate::debuginfo::VariantInfo,
        bytes: &[u8],
        depth: u32,
    ) -> Node {
        let discr = v.discr.as_ref().map(|d| {
            let (off, size) = (d.offset as usize, (d.size as usize).min(8));
            let mut w = [0u8; 8];
            if let Some(b) = bytes.get(off..off + size) {
                w[..size].copy_from_slice(b);
            }
            let mask = if size >= 8 {
                u64::MAX
            } else {
                (1u64 << (size * 8)) - 1
            };
            (u64::from_le_bytes(w), mask)
        });
        let chosen = v
            .variants
            .iter()
            .find(|x| matches!((x.discr_value, discr), (Some(want), Some((got, mask))) if want & mask == got))
            .or_else(|| v.variants.iter().find(|x| x.discr_value.is_none()))
            .or_else(|| if v.variants.len() == 1 { v.variants.first() } else { None });
        let Some(chosen) = chosen else {
            return Node::Status(Status::Unavailable(format!(
                "no variant of {} has discriminant {:#x}",
                self.symbols.type_name(t),
                discr.map(|d| d.0).unwrap_or(0)
            )));
        };
        let off = chosen.member.offset as usize;
        let size = self.symbols.type_size(chosen.member.ty).unwrap_or(0) as usize;
        let fields = match self.decode(
            bytes.get(off..off + size).unwrap_or(&[]),
            chosen.member.ty,
            depth,
        ) {
            Node::Struct { fields, .. } => fields,
            other => vec![("__0".to_string(), other)],
        };
        Node::Variant {
            enum_name: self.symbols.type_name(t),
            variant: chosen.member.name.clone().unwrap_or_else(|| "?".into()),
            fields,
        }
    }

    /// A member by name (through anonymous members and base classes): offset and type.
    fn member(&self, t: TypeRef, name: &str, depth: u32) -> Option<(u64, TypeRef)> {
        if depth > 8 {
            return None;
        }
        let (_, TypeKind::Struct { members, bases, .. }) = self.peel(t) else {
            return None;
        };
        if let Some(m) = members.iter().find(|m| m.name.as_deref() == Some(name)) {
            return Some((m.offset, m.ty));
        }
        for m in members.iter().filter(|m| m.name.is_none()) {
            if let Some((o, ty)) = self.member(m.ty, name, depth + 1) {
                return Some((m.offset + o, ty));
            }
        }
        for (b, off) in &bases {
            if let Some((o, ty)) = self.member(*b, name, depth + 1) {
                return Some((off + o, ty));
            }
        }
        // Last, inside named members: library internals are nested (`_M_impl._M_start`,
        // `_M_t._M_impl._M_node_count`), and these names are unique within them.
        for m in members.iter().filter(|m| m.name.is_some()) {
            if matches!(self.peel(m.ty).1, TypeKind::Struct { .. })
                && let Some((o, ty)) = self.member(m.ty, name, depth + 1)
            {
                return Some((m.offset + o, ty));
            }
        }
        None
    }

    /// The first pointer inside a struct, depth-first (Rust's `Unique<NonNull<T>>` wrappers).
    fn first_pointer(&self, t: TypeRef, depth: u32) -> Option<(u64, Option<TypeRef>)> {
        if depth > 8 {
            return None;
        }
        let (_, TypeKind::Struct { members, bases, .. }) = self.peel(t) else {
            return None;
        };
        for (b, off) in bases {
            if let Some((o, p)) = self.first_pointer(b, depth + 1) {
                return Some((off + o, p));
            }
        }
        for m in members {
            match self.peel(m.ty).1 {
                TypeKind::Pointer { pointee } => return Some((m.offset, pointee)),
                TypeKind::Struct { .. } => {
                    if let Some((o, p)) = self.first_pointer(m.ty, depth + 1) {
                        return Some((m.offset + o, p));
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// A Rust HashMap (hashbrown's swiss table): one control byte per bucket, top bit clear
    /// for a full one; bucket `i`'s `(K, V)` lies `(i + 1) * size` bytes below the control
    /// bytes. Entries come in bucket order, as gdb's printer lists them.
    fn hash_map(&mut self, t: TypeRef, bytes: &[u8], depth: u32) -> Node {
        let layout = (|| {
            let (items_off, _) = self.member(t, "items", 0)?;
            let (mask_off, _) = self.member(t, "bucket_mask", 0)?;
            let (ctrl_off, ctrl_ty) = self.member(t, "ctrl", 0)?;
            let ctrl_ptr_off = match self.peel(ctrl_ty).1 {
                TypeKind::Pointer { .. } => 0,
                _ => self.first_pointer(ctrl_ty, 0)?.0,
            };
            let (_, raw_table) = self.member(t, "table", 0)?;
            let TypeKind::Struct { template_args, .. } = self.peel(raw_table).1 else {
                return None;
            };
            Some((
                Self::word_at(bytes, items_off)?,
                Self::word_at(bytes, mask_off)?,
                Self::word_at(bytes, ctrl_off + ctrl_ptr_off)?,
                *template_args.first()?,
            ))
        })();
        let Some((len, mask, ctrl, pair_ty)) = layout else {
            return Node::Status(Status::NotCaptured(self.symbols.type_name(t)));
        };
        let spelled = "HashMap".to_string();
        let buckets = mask.wrapping_add(1);
        if len > buckets || buckets > 1 << 24 {
            return Node::Status(Status::Unavailable(format!(
                "implausible table ({len} items in {buckets} buckets; not initialised yet?)"
            )));
        }
        let mut entries = Vec::new();
        let want = len.min(self.limits.collection_items as u64);
        if len > want {
            self.truncated = true;
        }
        if want > 0 && depth < self.limits.depth {
            let pair_size = self.symbols.type_size(pair_ty).unwrap_or(0);
            let control = match self.read(ctrl, buckets as usize) {
                Ok(c) => c,
                Err(s) => return Node::Status(s),
            };
            for (i, c) in control.iter().enumerate() {
                if entries.len() as u64 >= want {
                    break;
                }
                if c & 0x80 != 0 {
                    continue;
                }
                let at = ctrl.wrapping_sub((i as u64 + 1) * pair_size);
                let (k, v) = match self.at(at, pair_ty, depth + 1) {
                    Node::Tuple(mut kv) if kv.len() == 2 => {
                        let v = kv.pop().unwrap();
                        (kv.pop().unwrap(), v)
                    }
                    other => (
                        other,
                        Node::Status(Status::Unavailable("not a pair".into())),
                    ),
                };
                entries.push((k, v));
            }
        }
        Node::Map {
            spelled,
            len,
            entries,
        }
    }

    fn word_at(bytes: &[u8], off: u64) -> Option<u64> {
        let off = off as usize;
        bytes
            .get(off..off + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    }

    /// Strings and sequences of the standard libraries, shown by content rather than by
    /// their internals: libstdc++'s std::string and std::vector, Rust's String, &str, Vec and
    /// slices.
    fn special(&mut self, t: TypeRef, _name: &str, bytes: &[u8], depth: u32) -> Option<Node> {
        let name = self.symbols.type_name(t);
        let text = |r: &mut Self, ptr: u64, len: u64| -> Node {
            let shown = len.min(r.limits.string_bytes as u64) as usize;
            match r.read(ptr, shown) {
                Ok(b) => Node::Str {
                    text: String::from_utf8_lossy(&b).into_owned(),
                    truncated: (shown as u64) < len,
                },
                Err(s) => Node::Status(s),
            }
        };
        if name.starts_with("std::__cxx11::basic_string<char")
            || name == "std::string"
            || name.starts_with("std::basic_string<char")
        {
            let (dp, dpt) = self.member(t, "_M_dataplus", 0)?;
            let (p, _) = self.member(dpt, "_M_p", 0)?;
            let (l, _) = self.member(t, "_M_string_length", 0)?;
            let (ptr, len) = (Self::word_at(bytes, dp + p)?, Self::word_at(bytes, l)?);
            if len > 1 << 32 {
                return Some(Node::Status(Status::Unavailable(format!(
                    "implausible length {len} (not initialised yet?)"
                ))));
            }
            return Some(text(self, ptr, len));
        }
        if name == "&str" {
            let (p, _) = self.member(t, "data_ptr", 0)?;
            let (l, _) = self.member(t, "length", 0)?;
            let (ptr, len) = (Self::word_at(bytes, p)?, Self::word_at(bytes, l)?);
            return Some(text(self, ptr, len));
        }
        if name == "alloc::string::String" {
            let (v, vt) = self.member(t, "vec", 0)?;
            let (l, _) = self.member(vt, "len", 0)?;
            let (p, _) = self.first_pointer(vt, 0)?;
            let (ptr, len) = (Self::word_at(bytes, v + p)?, Self::word_at(bytes, v + l)?);
            if len > 1 << 32 {
                return Some(Node::Status(Status::Unavailable(format!(
                    "implausible length {len}"
                ))));
            }
            return Some(text(self, ptr, len));
        }
        let sequence = |r: &mut Self, ptr: u64, len: u64, elem: TypeRef| -> Node {
            if len > 1 << 32 {
                return Node::Status(Status::Unavailable(format!(
                    "implausible length {len} (not initialised yet?)"
                )));
            }
            let esize = r.symbols.type_size(elem).unwrap_or(0);
            let n = len.min(r.limits.collection_items as u64);
            if n < len {
                r.truncated = true;
            }
            if esize == 0 || n == 0 {
                return Node::Array {
                    items: Vec::new(),
                    len: Some(len),
                    rust: false,
                };
            }
            match r.read(ptr, (n * esize) as usize) {
                Ok(b) => Node::Array {
                    items: (0..n as usize)
                        .map(|i| {
                            r.decode(
                                &b[i * esize as usize..(i + 1) * esize as usize],
                                elem,
                                depth + 1,
                            )
                        })
                        .collect(),
                    len: Some(len),
                    rust: false,
                },
                Err(s) => Node::Status(s),
            }
        };
        if name.starts_with("alloc::vec::Vec<") {
            let (l, _) = self.member(t, "len", 0)?;
            let (p, pointee) = self.first_pointer(t, 0)?;
            let elem = match self.peel(t).1 {
                TypeKind::Struct { template_args, .. } if !template_args.is_empty() => {
                    template_args[0]
                }
                _ => pointee?,
            };
            let (ptr, len) = (Self::word_at(bytes, p)?, Self::word_at(bytes, l)?);
            return Some(sequence(self, ptr, len, elem));
        }
        if name.starts_with("&[") || name.starts_with("&mut [") {
            let (p, pt) = self.member(t, "data_ptr", 0)?;
            let (l, _) = self.member(t, "length", 0)?;
            let TypeKind::Pointer {
                pointee: Some(elem),
            } = self.peel(pt).1
            else {
                return None;
            };
            let (ptr, len) = (Self::word_at(bytes, p)?, Self::word_at(bytes, l)?);
            return Some(sequence(self, ptr, len, elem));
        }
        if name.starts_with("std::unique_ptr<") || name.starts_with("std::shared_ptr<") {
            let shared = name.starts_with("std::shared_ptr<");
            let arg = match self.peel(t).1 {
                TypeKind::Struct { template_args, .. } => {
                    template_args.first().map(|a| self.symbols.type_name(*a))
                }
                _ => None,
            }?;
            let (p, pointee) = if shared {
                self.member(t, "_M_ptr", 0).map(|(o, ty)| {
                    (
                        o,
                        match self.peel(ty).1 {
                            TypeKind::Pointer { pointee } => pointee,
                            _ => None,
                        },
                    )
                })?
            } else {
                self.first_pointer(t, 0)?
            };
            let ptr = Self::word_at(bytes, p)?;
            let counts = if shared {
                let (rc, _) = self.member(t, "_M_refcount", 0)?;
                let pi = Self::word_at(bytes, rc)?;
                if pi == 0 {
                    Some((0, 0))
                } else {
                    match self.read(pi.wrapping_add(8), 8) {
                        Ok(b) => {
                            let usec = i32::from_le_bytes(b[0..4].try_into().unwrap()) as i64;
                            let weak = i32::from_le_bytes(b[4..8].try_into().unwrap()) as i64;
                            // As libstdc++'s printer: the weak count includes one for the owners.
                            Some((usec, if usec > 0 { weak - 1 } else { weak }))
                        }
                        Err(_) => None,
                    }
                }
            } else {
                None
            };
            let target = match pointee {
                Some(pt) if ptr != 0 && depth < self.limits.depth => {
                    Some(Box::new(self.at(ptr, pt, depth + 1)))
                }
                _ => None,
            };
            let kind = if shared { "shared_ptr" } else { "unique_ptr" };
            return Some(Node::Smart {
                spelled: format!("std::{kind}<{arg}>"),
                ptr,
                target,
                counts,
            });
        }
        if name.starts_with("alloc::rc::Rc<") || name.starts_with("alloc::sync::Arc<") {
            // `ptr` points to the shared allocation: the strong and weak counts (each a usize
            // inside Cell / AtomicUsize wrappers), then the value (`value` in Rc, `data` in Arc).
            let is_rc = name.starts_with("alloc::rc::");
            let (p, inner) = self.first_pointer(t, 0)?;
            let inner = inner?;
            let (strong_off, _) = self.member(inner, "strong", 0)?;
            let (weak_off, _) = self.member(inner, "weak", 0)?;
            let (value_off, value_ty) =
                self.member(inner, if is_rc { "value" } else { "data" }, 0)?;
            let ptr = Self::word_at(bytes, p)?;
            let count = |r: &mut Self, off: u64| {
                r.read(ptr.wrapping_add(off), 8)
                    .ok()
                    .map(|b| u64::from_le_bytes(b[..8].try_into().unwrap()) as i64)
            };
            let counts = match (count(self, strong_off), count(self, weak_off)) {
                // The strong owners together hold one weak reference; gdb's printer hides it.
                (Some(strong), Some(weak)) => Some((strong, weak - 1)),
                _ => None,
            };
            let target = if depth < self.limits.depth {
                Some(Box::new(self.at(
                    ptr.wrapping_add(value_off),
                    value_ty,
                    depth + 1,
                )))
            } else {
                self.truncated = true;
                Some(Box::new(Node::Status(Status::DepthLimit)))
            };
            return Some(Node::Smart {
                spelled: if is_rc { "Rc" } else { "Arc" }.to_string(),
                ptr,
                target,
                counts,
            });
        }
        if name.starts_with("std::collections::hash::map::HashMap<") {
            return Some(self.hash_map(t, bytes, depth));
        }
        if name.starts_with("std::map<") {
            // A red-black tree: the header's left is the leftmost node; walk in order.
            let (count_off, _) = self.member(t, "_M_node_count", 0)?;
            let (header_off, _) = self.member(t, "_M_header", 0)?;
            let len = Self::word_at(bytes, count_off)?;
            let TypeKind::Struct { template_args, .. } = self.peel(t).1 else {
                return None;
            };
            let (kt, vt) = (*template_args.first()?, *template_args.get(1)?);
            let ksize = self.symbols.type_size(kt).unwrap_or(0);
            let kalign = 8; // keys and values of the testbins' maps are 8-aligned; see the gap note
            let voff = ksize.div_ceil(kalign) * kalign;
            let mut entries = Vec::new();
            let mut node = Self::word_at(bytes, header_off + 16)?; // _M_left
            let header_addr = 0u64; // the header lives inside `bytes`; stop when we come back to it
            let n = len.min(self.limits.collection_items as u64);
            for _ in 0..n {
                if node == 0 || node == header_addr {
                    break;
                }
                // _Rb_tree_node_base is 32 bytes: color, parent, left, right; the pair follows.
                let k = self.at(node.wrapping_add(32), kt, depth + 1);
                let v = self.at(node.wrapping_add(32 + voff), vt, depth + 1);
                entries.push((k, v));
                // In-order successor.
                let Ok(b) = self.read(node, 32) else { break };
                let right = u64::from_le_bytes(b[24..32].try_into().unwrap());
                if right != 0 {
                    let mut cur = right;
                    // Bounded: a red-black tree of 2^64 nodes is 128 levels deep at most.
                    for _ in 0..128 {
                        let Ok(c) = self.read(cur.wrapping_add(16), 8) else {
                            break;
                        };
                        let left = u64::from_le_bytes(c[..8].try_into().unwrap());
                        if left == 0 {
                            break;
                        }
                        cur = left;
                    }
                    node = cur;
                } else {
                    let mut cur = node;
                    let mut parent = u64::from_le_bytes(b[8..16].try_into().unwrap());
                    for _ in 0..128 {
                        let Ok(p) = self.read(parent, 32) else { break };
                        let pright = u64::from_le_bytes(p[24..32].try_into().unwrap());
                        if cur != pright {
                            break;
                        }
                        cur = parent;
                        parent = u64::from_le_bytes(p[8..16].try_into().unwrap());
                    }
                    node = parent;
                }
            }
            if len > n {
                self.truncated = true;
            }
            return Some(Node::Map {
                spelled: "std::map".into(),
                len,
                entries,
            });
        }
        if name.starts_with("std::unordered_map<") {
            // A hashtable: a singly linked list of nodes from _M_before_begin.
            let (before, _) = self.member(t, "_M_before_begin", 0)?;
            let (count_off, _) = self.member(t, "_M_element_count", 0)?;
            let len = Self::word_at(bytes, count_off)?;
            let TypeKind::Struct { template_args, .. } = self.peel(t).1 else {
                return None;
            };
            let (kt, vt) = (*template_args.first()?, *template_args.get(1)?);
            let ksize = self.symbols.type_size(kt).unwrap_or(0);
            let voff = ksize.div_ceil(8) * 8;
            let mut entries = Vec::new();
            let mut node = Self::word_at(bytes, before)?;
            let n = len.min(self.limits.collection_items as u64);
            for _ in 0..n {
                if node == 0 {
                    break;
                }
                // _Hash_node: the next pointer, then the pair.
                let k = self.at(node.wrapping_add(8), kt, depth + 1);
                let v = self.at(node.wrapping_add(8 + voff), vt, depth + 1);
                entries.push((k, v));
                match self.read(node, 8) {
                    Ok(b) => node = u64::from_le_bytes(b[..8].try_into().unwrap()),
                    Err(_) => break,
                }
            }
            if len > n {
                self.truncated = true;
            }
            return Some(Node::Map {
                spelled: "std::unordered_map".into(),
                len,
                entries,
            });
        }
        if name.starts_with("std::vector<") {
            let (s0, st) = self.member(t, "_M_start", 0)?;
            let (f0, _) = self.member(t, "_M_finish", 0)?;
            let TypeKind::Pointer {
                pointee: Some(elem),
            } = self.peel(st).1
            else {
                return None;
            };
            let esize = self.symbols.type_size(elem).unwrap_or(1).max(1);
            let (start, finish) = (Self::word_at(bytes, s0)?, Self::word_at(bytes, f0)?);
            let len = finish.wrapping_sub(start) / esize;
            return Some(sequence(self, start, len, elem));
        }
        None
    }

    fn pointer(&mut self, addr: u64, pointee: Option<TypeRef>, depth: u32) -> Node {
        // A pointer into one of the module's globals is named, as gdb does (`<global_counter>`).
        let file = crate::addr::RuntimeAddr(addr).to_file(self.bias);
        let data_symbol = if addr == 0 {
            None
        } else {
            self.symbols.data_symbol_for(file)
        }
        .map(|(n, o)| {
            let n = demangle(&n);
            if o == 0 { n } else { format!("{n}+{o}") }
        });
        let mut node = Node::Pointer {
            addr,
            target: None,
            string: None,
            symbol: data_symbol,
        };
        let Some(p) = pointee else { return node };
        if addr == 0 {
            return node;
        }
        let (pp, pkind) = self.peel(p);
        if let Node::Pointer {
            target,
            string,
            symbol,
            ..
        } = &mut node
        {
            if self.is_char(p) {
                // A C string: up to the bound, to its NUL.
                let max = self.limits.string_bytes;
                let first = ((crate::ptrace::mem::PAGE - addr % crate::ptrace::mem::PAGE) as usize)
                    .min(max);
                let mut text = match self.read(addr, first) {
                    Ok(b) => b,
                    Err(s) => {
                        *target = Some(Box::new(Node::Status(s)));
                        return node;
                    }
                };
                if !text.contains(&0)
                    && first < max
                    && let Ok(more) = self.read(addr.wrapping_add(first as u64), max - first)
                {
                    text.extend_from_slice(&more);
                }
                let nul = text.iter().position(|b| *b == 0);
                *string = Some((
                    String::from_utf8_lossy(&text[..nul.unwrap_or(text.len())]).into_owned(),
                    nul.is_none(),
                ));
            } else if matches!(pkind, TypeKind::Function { .. }) {
                *symbol = self.symbols.symbol_for(file).map(|(n, o)| {
                    let n = demangle(&n);
                    if o == 0 { n } else { format!("{n}+{o}") }
                });
            } else if matches!(
                pkind,
                TypeKind::Struct { .. } | TypeKind::Base { .. } | TypeKind::Enum { .. }
            ) || matches!(pkind, TypeKind::Pointer { pointee: Some(q) } if !matches!(self.peel(q).1, TypeKind::Function { .. }))
            {
                // A cycle first: "shown above" says more than "too deep".
                if self.visited.contains(&(addr, pp)) {
                    *target = Some(Box::new(Node::Status(Status::Cycle(addr))));
                } else if depth >= self.limits.depth {
                    self.truncated = true;
                    *target = Some(Box::new(Node::Status(Status::DepthLimit)));
                } else {
                    self.visited.insert((addr, pp));
                    *target = Some(Box::new(self.at(addr, p, depth + 1)));
                }
            }
        }
        node
    }
}

/// Fills in the frames' variables: `bias` of the module each frame is in, pc per frame.
pub fn frame_vars(
    reader: &mut Reader,
    pc: FileAddr,
    inline_depth: usize,
    bias: Bias,
    regs: &libc::user_regs_struct,
    known: &dyn Fn(crate::regs::Reg) -> bool,
) -> (Vec<Var>, Vec<Var>) {
    reader.bias = bias;
    let mut args = Vec::new();
    let mut locals = Vec::new();
    let vars = reader
        .symbols
        .variables_in_frame(pc, inline_depth, bias)
        .unwrap_or_default();
    for v in vars {
        let node = reader.var(&v, regs, known);
        let var = Var {
            name: v.name.clone(),
            ty: reader.symbols.type_name(v.ty),
            value: node,
            shadowed: v.shadowed,
        };
        if v.kind == crate::debuginfo::VarKind::Param {
            args.push(var);
        } else {
            locals.push(var);
        }
    }
    (args, locals)
}

/// A symbol name as gdb shows it: C++ names demangled (`vtable for geo::Triangle`,
/// `shop::order_count`), Rust's without the hash, C's as they are.
pub fn demangle(name: &str) -> String {
    if let Some(rest) = name.strip_prefix("_ZTV") {
        return format!("vtable for {}", demangle(&format!("_Z{rest}")));
    }
    if let Some(rest) = name.strip_prefix("_ZTI") {
        return format!("typeinfo for {}", demangle(&format!("_Z{rest}")));
    }
    addr2line::demangle_auto(std::borrow::Cow::from(name), None).into_owned()
}
