//! The type graph: DWARF types as [`TypeRef`] handles and [`TypeKind`] descriptions, for the
//! expression compiler (member offsets, casts, `sizeof`) and for rendering.
//!
//! A [`TypeRef`] is a DIE of the module, so the graph costs nothing until asked: each
//! [`type_kind`] call reads one DIE and its children. Declarations (`struct node;` in a unit
//! that only uses pointers to it) are replaced by the full definition found elsewhere in the
//! module when handles are made, so a caller never sees an incomplete type that the module
//! defines somewhere.
//!
//! Names follow gdb's `whatis`: C declarator syntax (`char * const *`, `int (*)[4]`), C++
//! qualified names without the `struct` keyword (`std::vector<int, std::allocator<int> >`),
//! Rust paths (`core::option::Option<u32>`) and Rust's own pointer names (`&str`).

use super::dwarf::{DieId, DwarfData, Lang, R, UnitOff};
use gimli::{AttributeValue, DwTag};
use std::collections::HashMap;

/// Deepest chain of pointers, qualifiers and typedefs followed (guards malformed cycles).
const MAX_DEPTH: usize = 32;

/// A type of one module: an opaque handle (a DIE inside the module, or `void`). Only
/// meaningful with the [`ModuleSymbols`](super::ModuleSymbols) it came from.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TypeRef(pub(crate) TypeId);

/// What a [`TypeRef`] stands for.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum TypeId {
    /// `void` (DWARF: no `DW_AT_type`).
    Void,
    /// A type DIE (a definition when the module has one).
    Die(DieId),
}

/// How a base type's bits are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// A two's complement integer.
    Signed,
    /// An unsigned integer (also DWARF addresses).
    Unsigned,
    /// `char` / `signed char`.
    SignedChar,
    /// `unsigned char` (and C++ `char8_t`).
    UnsignedChar,
    /// `_Bool` / `bool`.
    Bool,
    /// An IEEE float (4, 8, or the 16-byte x87 `long double`).
    Float,
    /// A Unicode code unit or point: `char16_t`, `char32_t`, Rust `char`.
    Utf,
}

/// What kind of aggregate a `Struct` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StructKind {
    /// `struct` (also Rust structs, tuples and enums with data).
    Struct,
    /// C++ `class`.
    Class,
    /// `union`.
    Union,
}

/// One data member of an aggregate.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// The member's name; None for an anonymous struct or union member, whose members are
    /// reached as if they were the enclosing aggregate's.
    pub name: Option<String>,
    /// Byte offset from the start of the aggregate (for a bitfield, of the byte holding its
    /// first bit).
    pub offset: u64,
    /// The member's declared type.
    pub ty: TypeRef,
    /// For a bitfield: (bit offset from `offset`, counting from the least significant bit of
    /// the little-endian bytes there; bit size).
    pub bitfield: Option<(u64, u64)>,
    /// True for members the compiler made up (`_vptr.Base`, Rust's enum discriminants).
    pub artificial: bool,
}

/// The layout of a Rust enum with data (`DW_TAG_variant_part`): which variant a value holds
/// is decided by its discriminant.
#[derive(Clone, Debug, PartialEq)]
pub struct VariantInfo {
    /// Where the discriminant is (for a niche-optimised enum, the field whose invalid values
    /// encode the other variants). None for an enum with a single variant.
    pub discr: Option<Discriminant>,
    /// The variants, in DWARF order.
    pub variants: Vec<Variant>,
}

/// Where an enum's discriminant is stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Discriminant {
    /// Byte offset in the enum.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
    /// Its type (an unsigned integer, usually).
    pub ty: TypeRef,
}

/// One variant of a Rust enum.
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    /// The discriminant value selecting this variant; None for the default variant (the
    /// one whose data occupies the niche, taken when no other value matches).
    pub discr_value: Option<u64>,
    /// The variant's data as a member of the enum (named after the variant; its type is a
    /// struct of the variant's fields, `__0`, `__1`, … for tuple variants).
    pub member: Member,
}

/// What a type is. Qualifiers and typedefs are kinds of their own (their target is one step
/// away); `restrict` and `_Atomic` are transparent.
#[derive(Clone, Debug, PartialEq)]
pub enum TypeKind {
    /// `void`.
    Void,
    /// An integer, character, boolean or floating-point type.
    Base {
        /// As DWARF names it (`int`, `long unsigned int`, `u32`).
        name: String,
        /// In bytes.
        size: u64,
        /// How its bits are read.
        encoding: Encoding,
    },
    /// A pointer.
    Pointer {
        /// What it points to; None for `void *`.
        pointee: Option<TypeRef>,
    },
    /// A C++ reference (8 bytes holding the referent's address).
    Reference {
        /// The referenced type.
        target: TypeRef,
        /// True for `&&`.
        rvalue: bool,
    },
    /// A struct, class or union (Rust structs, tuples and enums with data too).
    Struct {
        /// Qualified in C++ and Rust (`geo::Rect`); None for an anonymous aggregate.
        name: Option<String>,
        /// In bytes.
        size: u64,
        /// struct, class or union.
        kind: StructKind,
        /// Data members in declaration order (static members excluded).
        members: Vec<Member>,
        /// Non-virtual base classes and their offsets (virtual bases have no fixed offset
        /// and are left out).
        bases: Vec<(TypeRef, u64)>,
        /// Template type arguments (`int` and `std::allocator<int>` of a vector).
        template_args: Vec<TypeRef>,
        /// For a Rust enum with data: its variants.
        variant: Option<VariantInfo>,
    },
    /// An array; `dims` from outermost, each None when unknown (VLAs, flexible members).
    Array {
        /// The innermost element type (`double` for `double [3][4]`).
        element: TypeRef,
        /// Element counts, outermost dimension first.
        dims: Vec<Option<u64>>,
    },
    /// An enumeration.
    Enum {
        /// Qualified in C++ and Rust; None for an anonymous enum.
        name: Option<String>,
        /// In bytes.
        size: u64,
        /// True if values are read sign-extended (from the underlying type, else from
        /// whether any enumerator is negative).
        signed: bool,
        /// (value, name) in declaration order.
        enumerators: Vec<(i64, String)>,
    },
    /// A typedef.
    Typedef {
        /// Qualified in C++ and Rust.
        name: String,
        /// The type it names.
        target: TypeRef,
    },
    /// `const T`.
    Const(TypeRef),
    /// `volatile T`.
    Volatile(TypeRef),
    /// A function type (the target of a function pointer).
    Function {
        /// The function's name for a `DW_TAG_subprogram`; None for a function type.
        name: Option<String>,
    },
    /// A type this layer does not describe (complex numbers, pointers to members, a struct
    /// the module only declares).
    Unknown {
        /// Its name as `type_name` spells it.
        name: String,
        /// In bytes, 0 when unknown.
        size: u64,
    },
}

/// Qualified-name information of one unit's types.
#[derive(Debug, Default)]
pub(crate) struct UnitTypes {
    /// The scope prefix (`std::__cxx11::`) of type DIEs nested in namespaces or types (C++,
    /// Rust); DIEs not listed have none.
    prefix: HashMap<UnitOff, String>,
    /// Lookup keys of the unit's type definitions: (key, DIE, declared inside a function).
    names: Vec<(String, UnitOff, bool)>,
}

/// Type names of the whole module → definitions, file-level ones first.
#[derive(Debug, Default)]
pub(crate) struct TypeIndex {
    by_name: HashMap<String, Vec<DieId>>,
}

/// True for tags that are types with a name worth indexing.
fn is_named_type(tag: DwTag) -> bool {
    matches!(
        tag,
        gimli::DW_TAG_base_type
            | gimli::DW_TAG_typedef
            | gimli::DW_TAG_structure_type
            | gimli::DW_TAG_class_type
            | gimli::DW_TAG_union_type
            | gimli::DW_TAG_enumeration_type
            | gimli::DW_TAG_unspecified_type
    )
}

/// The keyword C spells before a tagged type's name.
fn keyword(tag: DwTag) -> Option<&'static str> {
    match tag {
        gimli::DW_TAG_structure_type => Some("struct"),
        gimli::DW_TAG_class_type => Some("class"),
        gimli::DW_TAG_union_type => Some("union"),
        gimli::DW_TAG_enumeration_type => Some("enum"),
        _ => None,
    }
}

impl UnitTypes {
    /// One pass over unit `ui`'s DIEs, tracking the enclosing namespaces and types.
    fn build(d: &DwarfData, ui: usize) -> UnitTypes {
        let mut out = UnitTypes::default();
        let unit = d.unit(ui);
        let qualify = d.units[ui].lang != Lang::C;
        // (DIE depth, the qualified name of the scope it opens; None for a function, whose
        // types are spelled unqualified as gdb does).
        let mut stack: Vec<(isize, Option<String>)> = Vec::new();
        let mut cursor = unit.entries();
        while let Ok(Some(die)) = cursor.next_dfs() {
            let depth = die.depth();
            while stack.last().is_some_and(|&(d, _)| d >= depth) {
                stack.pop();
            }
            let tag = die.tag();
            if !is_named_type(tag) && tag != gimli::DW_TAG_namespace {
                if die.has_children()
                    && matches!(
                        tag,
                        gimli::DW_TAG_subprogram
                            | gimli::DW_TAG_lexical_block
                            | gimli::DW_TAG_inlined_subroutine
                    )
                {
                    stack.push((depth, None));
                }
                continue;
            }
            let local = stack.iter().any(|(_, s)| s.is_none());
            let mut name = die
                .attr_value(gimli::DW_AT_name)
                .and_then(|v| d.attr_string(ui, v));
            let mut prefix = match stack.last() {
                Some((_, Some(scope))) if qualify => format!("{scope}::"),
                _ => String::new(),
            };
            // A definition outside its scope (type units put `class Rect` at the top with
            // DW_AT_specification to the declaration inside `namespace geo`) is named after
            // the declaration.
            if let Some(AttributeValue::UnitRef(spec)) = die.attr_value(gimli::DW_AT_specification)
            {
                if let Some(p) = out.prefix.get(&spec) {
                    prefix = p.clone();
                }
                if name.is_none() {
                    name = d.name_of(DieId {
                        unit: ui,
                        off: spec,
                    });
                }
            }
            if !prefix.is_empty() {
                out.prefix.insert(die.offset(), prefix.clone());
            }
            if let Some(n) = &name
                && is_named_type(tag)
                && !die.has_attr(gimli::DW_AT_declaration)
            {
                let q = format!("{prefix}{n}");
                match keyword(tag) {
                    Some(k) => {
                        if qualify {
                            out.names.push((q.clone(), die.offset(), local));
                        }
                        out.names.push((format!("{k} {q}"), die.offset(), local));
                    }
                    None => out.names.push((q, die.offset(), local)),
                }
            }
            if die.has_children() && (tag == gimli::DW_TAG_namespace || keyword(tag).is_some()) {
                let scope = match (&name, tag) {
                    (Some(n), _) => Some(format!("{prefix}{n}")),
                    (None, gimli::DW_TAG_namespace) => {
                        Some(format!("{prefix}(anonymous namespace)"))
                    }
                    // Members of an anonymous aggregate: no scope of their own.
                    (None, _) => stack.last().and_then(|(_, s)| s.clone()),
                };
                stack.push((depth, scope));
            }
        }
        out
    }
}

/// The qualified-name information of unit `ui`, built on first use.
fn unit_types(d: &DwarfData, ui: usize) -> &UnitTypes {
    d.units[ui].types.get_or_init(|| UnitTypes::build(d, ui))
}

/// The module's type-name index, built on first use.
fn index(d: &DwarfData) -> &TypeIndex {
    d.type_index.get_or_init(|| {
        let mut by_name: HashMap<String, Vec<(DieId, bool)>> = HashMap::new();
        for ui in 0..d.units.len() {
            for (key, off, local) in &unit_types(d, ui).names {
                by_name.entry(key.clone()).or_default().push((
                    DieId {
                        unit: ui,
                        off: *off,
                    },
                    *local,
                ));
            }
        }
        TypeIndex {
            by_name: by_name
                .into_iter()
                .map(|(k, mut v)| {
                    // File-level definitions before function-local ones (stable otherwise).
                    v.sort_by_key(|&(_, local)| local);
                    (k, v.into_iter().map(|(id, _)| id).collect())
                })
                .collect(),
        }
    })
}

/// The DIE's `DW_AT_name`, or its declaration's (a type unit's class definition names
/// itself only through `DW_AT_specification`).
fn own_name(d: &DwarfData, id: DieId, e: &gimli::DebuggingInformationEntry<R>) -> Option<String> {
    if let Some(n) = e
        .attr_value(gimli::DW_AT_name)
        .and_then(|v| d.attr_string(id.unit, v))
    {
        return Some(n);
    }
    let spec = e
        .attr_value(gimli::DW_AT_specification)
        .and_then(|v| d.resolve_ref(id.unit, &v))?;
    d.name_of(spec)
}

/// The referenced type (`DW_AT_type`) of a DIE.
fn target(d: &DwarfData, id: DieId, e: &gimli::DebuggingInformationEntry<R>) -> Option<DieId> {
    e.attr_value(gimli::DW_AT_type)
        .and_then(|v| d.resolve_ref(id.unit, &v))
}

/// The scope prefix of type DIE `id` (`std::`), through `DW_AT_specification` for
/// definitions placed outside their class.
fn prefix_of(d: &DwarfData, id: DieId) -> String {
    let mut cur = id;
    for _ in 0..4 {
        if let Some(p) = unit_types(d, cur.unit).prefix.get(&cur.off) {
            return p.clone();
        }
        let Ok(e) = d.entry(cur) else { break };
        let Some(spec) = e
            .attr_value(gimli::DW_AT_specification)
            .and_then(|v| d.resolve_ref(cur.unit, &v))
        else {
            break;
        };
        cur = spec;
    }
    String::new()
}

/// The qualified name of a named type DIE (`std::vector<int, std::allocator<int> >`), or
/// None for an anonymous one.
fn qualified_name(d: &DwarfData, id: DieId) -> Option<String> {
    let e = d.entry(id).ok()?;
    let n = own_name(d, id, &e)?;
    Some(format!("{}{n}", prefix_of(d, id)))
}

/// The full definition of declaration `id` (`struct node;`): through `DW_AT_signature`
/// (type units), else by name, preferring the declaring unit.
fn definition_of(
    d: &DwarfData,
    id: DieId,
    e: &gimli::DebuggingInformationEntry<R>,
) -> Option<DieId> {
    if let Some(def) = e
        .attr_value(gimli::DW_AT_signature)
        .and_then(|v| d.resolve_ref(id.unit, &v))
    {
        return Some(def);
    }
    let q = qualified_name(d, id)?;
    let key = match (d.units[id.unit].lang, keyword(e.tag())) {
        (Lang::C, Some(k)) => format!("{k} {q}"),
        _ => q,
    };
    let defs = index(d).by_name.get(&key)?;
    let same_kind = |def: &DieId| {
        d.entry(*def).is_ok_and(|de| {
            let agg = |t| matches!(t, gimli::DW_TAG_structure_type | gimli::DW_TAG_class_type);
            de.tag() == e.tag() || (agg(de.tag()) && agg(e.tag()))
        })
    };
    defs.iter()
        .copied()
        .filter(same_kind)
        .find(|def| def.unit == id.unit)
        .or_else(|| defs.iter().copied().find(same_kind))
}

/// `id` with a declaration replaced by its definition, when the module has one.
pub(crate) fn canonical(d: &DwarfData, id: DieId) -> DieId {
    let Ok(e) = d.entry(id) else { return id };
    if keyword(e.tag()).is_some()
        && (e.has_attr(gimli::DW_AT_declaration) || e.has_attr(gimli::DW_AT_signature))
    {
        // A stub naming its type unit by signature (with or without DW_AT_declaration), or
        // a declaration.
        return definition_of(d, id, &e).unwrap_or(id);
    }
    id
}

/// The handle of an optional type DIE (None: void).
pub(crate) fn tref(d: &DwarfData, id: Option<DieId>) -> TypeRef {
    TypeRef(match id {
        None => TypeId::Void,
        Some(id) => TypeId::Die(canonical(d, id)),
    })
}

/// The DIE of a handle (None: void).
pub(crate) fn die_of(t: TypeRef) -> Option<DieId> {
    match t.0 {
        TypeId::Void => None,
        TypeId::Die(id) => Some(id),
    }
}

/// An unsigned constant attribute.
fn udata(v: Option<AttributeValue<R>>) -> Option<u64> {
    v?.udata_value()
}

/// A signed constant attribute (DW_AT_bit_offset may be negative).
fn sdata(v: Option<AttributeValue<R>>) -> Option<i64> {
    match v? {
        AttributeValue::Sdata(s) => Some(s),
        other => other.udata_value().map(|u| u as i64),
    }
}

/// A `DW_AT_data_member_location`: a constant, or the DWARF 2 `DW_OP_plus_uconst N` form.
/// None for a location computed at run time (virtual bases).
fn member_location(d: &DwarfData, ui: usize, v: Option<AttributeValue<R>>) -> Option<u64> {
    match v {
        None => Some(0),
        Some(AttributeValue::Exprloc(expr)) => {
            let ops = super::place::parse(d, ui, expr).ok()?;
            match ops.as_slice() {
                [gimli::Operation::PlusConstant { value }]
                | [gimli::Operation::UnsignedConstant { value }] => Some(*value),
                [
                    gimli::Operation::UnsignedConstant { value },
                    gimli::Operation::Plus,
                ] => Some(*value),
                _ => None,
            }
        }
        Some(v) => v.udata_value(),
    }
}

/// A `DW_TAG_member` (or `DW_TAG_inheritance`) of unit `ui` as a [`Member`]. None for static
/// members (no storage in the object) and members at run-time offsets.
fn member(d: &DwarfData, ui: usize, e: &gimli::DebuggingInformationEntry<R>) -> Option<Member> {
    // C++ static data members: DW_AT_external / DW_AT_declaration (DWARF 4) members.
    if e.has_attr(gimli::DW_AT_external) || e.has_attr(gimli::DW_AT_declaration) {
        return None;
    }
    let id = DieId {
        unit: ui,
        off: e.offset(),
    };
    let ty_die = target(d, id, e);
    let location = member_location(d, ui, e.attr_value(gimli::DW_AT_data_member_location));
    let bit_size = udata(e.attr_value(gimli::DW_AT_bit_size));
    let (offset, bitfield) = match bit_size {
        None => (location?, None),
        Some(bits) => {
            let bitpos = if let Some(dbo) = udata(e.attr_value(gimli::DW_AT_data_bit_offset)) {
                dbo
            } else if let Some(bo) = sdata(e.attr_value(gimli::DW_AT_bit_offset)) {
                // DWARF 2/3: bits from the most significant bit of a storage unit of
                // DW_AT_byte_size (else the type's size) at the member location.
                let storage = udata(e.attr_value(gimli::DW_AT_byte_size))
                    .or_else(|| super::types::byte_size(d, ty_die))
                    .unwrap_or(0);
                let from_lsb = (storage * 8) as i64 - bo - bits as i64;
                (location.unwrap_or(0) as i64 * 8 + from_lsb).max(0) as u64
            } else {
                location.unwrap_or(0) * 8
            };
            (bitpos / 8, Some((bitpos % 8, bits)))
        }
    };
    Some(Member {
        name: own_name(d, id, e),
        offset,
        ty: tref(d, ty_die),
        bitfield,
        artificial: matches!(
            e.attr_value(gimli::DW_AT_artificial),
            Some(AttributeValue::Flag(true))
        ),
    })
}

/// The element type and each dimension's count of array `id` (None: unknown).
pub(crate) fn array_dims(d: &DwarfData, id: DieId) -> (Option<DieId>, Vec<Option<u64>>) {
    let mut element = None;
    let mut counts = Vec::new();
    let unit = d.unit(id.unit);
    let Ok(mut tree) = unit.entries_tree(Some(id.off)) else {
        return (element, counts);
    };
    let Ok(root) = tree.root() else {
        return (element, counts);
    };
    element = target(d, id, root.entry());
    let mut children = root.children();
    while let Ok(Some(child)) = children.next() {
        let e = child.entry();
        if !matches!(
            e.tag(),
            gimli::DW_TAG_subrange_type | gimli::DW_TAG_enumeration_type
        ) {
            continue;
        }
        let count = if let Some(c) = e.attr_value(gimli::DW_AT_count) {
            c.udata_value()
        } else {
            let lower = e
                .attr_value(gimli::DW_AT_lower_bound)
                .map_or(Some(0), |v| v.udata_value());
            match (lower, e.attr_value(gimli::DW_AT_upper_bound)) {
                // gcc writes `int a[0]` as upper_bound -1.
                (_, Some(AttributeValue::Sdata(-1))) => Some(0),
                (Some(lower), Some(v)) => v.udata_value().map(|u| (u + 1).saturating_sub(lower)),
                _ => None,
            }
        };
        counts.push(count);
    }
    (element, counts)
}

/// The enumerators of enum `id` and whether it is signed: from the underlying type when
/// DWARF gives it, else from whether any enumerator is negative.
pub(crate) fn enumerators(d: &DwarfData, id: DieId, size: u64) -> (bool, Vec<(i64, String)>) {
    let mut out = Vec::new();
    let unit = d.unit(id.unit);
    let Ok(mut tree) = unit.entries_tree(Some(id.off)) else {
        return (false, out);
    };
    let Ok(root) = tree.root() else {
        return (false, out);
    };
    let underlying = target(d, id, root.entry())
        .and_then(|u| super::types::peel(d, Some(u)))
        .and_then(|u| d.entry(u).ok())
        .map(|u| {
            matches!(
                u.attr_value(gimli::DW_AT_encoding),
                Some(AttributeValue::Encoding(
                    gimli::DW_ATE_signed | gimli::DW_ATE_signed_char
                ))
            )
        });
    let mut any_negative = false;
    let mut children = root.children();
    while let Ok(Some(child)) = children.next() {
        let c = child.entry();
        if c.tag() != gimli::DW_TAG_enumerator {
            continue;
        }
        let Some(n) = c
            .attr_value(gimli::DW_AT_name)
            .and_then(|v| d.attr_string(id.unit, v))
        else {
            continue;
        };
        let value = match c.attr_value(gimli::DW_AT_const_value) {
            Some(AttributeValue::Sdata(v)) => v,
            // Fixed-size forms carry no sign: extend only for a signed enum.
            Some(v) if underlying == Some(true) => {
                v.udata_value().map_or(0, |u| sign_extend(u, size))
            }
            Some(v) => v.udata_value().map_or(0, |u| u as i64),
            None => continue,
        };
        any_negative |= value < 0;
        out.push((value, n));
    }
    (underlying.unwrap_or(any_negative), out)
}

/// `u` (read from a fixed-size form) as a signed value of `size` bytes.
fn sign_extend(u: u64, size: u64) -> i64 {
    match size {
        1 => u as u8 as i8 as i64,
        2 => u as u16 as i16 as i64,
        4 => u as u32 as i32 as i64,
        _ => u as i64,
    }
}

/// What `t` is.
pub(crate) fn type_kind(d: &DwarfData, t: TypeRef) -> TypeKind {
    let Some(id) = die_of(t) else {
        return TypeKind::Void;
    };
    let Ok(e) = d.entry(id) else {
        return TypeKind::Unknown {
            name: "?".to_string(),
            size: 0,
        };
    };
    let size = udata(e.attr_value(gimli::DW_AT_byte_size));
    let unknown = || TypeKind::Unknown {
        name: type_name(d, Some(id)),
        size: type_size(d, t).unwrap_or(0),
    };
    let next = || tref(d, target(d, id, &e));
    match e.tag() {
        gimli::DW_TAG_base_type => {
            let encoding = match e.attr_value(gimli::DW_AT_encoding) {
                Some(AttributeValue::Encoding(enc)) => match enc {
                    gimli::DW_ATE_signed => Encoding::Signed,
                    gimli::DW_ATE_unsigned | gimli::DW_ATE_address => Encoding::Unsigned,
                    gimli::DW_ATE_signed_char => Encoding::SignedChar,
                    gimli::DW_ATE_unsigned_char => Encoding::UnsignedChar,
                    gimli::DW_ATE_boolean => Encoding::Bool,
                    gimli::DW_ATE_float => Encoding::Float,
                    gimli::DW_ATE_UTF => Encoding::Utf,
                    _ => return unknown(),
                },
                _ => return unknown(),
            };
            TypeKind::Base {
                name: own_name(d, id, &e).unwrap_or_default(),
                size: size.unwrap_or(0),
                encoding,
            }
        }
        gimli::DW_TAG_pointer_type => TypeKind::Pointer {
            pointee: target(d, id, &e).map(|p| tref(d, Some(p))),
        },
        gimli::DW_TAG_reference_type | gimli::DW_TAG_rvalue_reference_type => TypeKind::Reference {
            target: next(),
            rvalue: e.tag() == gimli::DW_TAG_rvalue_reference_type,
        },
        gimli::DW_TAG_const_type => TypeKind::Const(next()),
        gimli::DW_TAG_volatile_type => TypeKind::Volatile(next()),
        gimli::DW_TAG_restrict_type
        | gimli::DW_TAG_atomic_type
        | gimli::DW_TAG_immutable_type
        | gimli::DW_TAG_shared_type => type_kind(d, next()),
        gimli::DW_TAG_typedef => TypeKind::Typedef {
            name: qualified_name(d, id).unwrap_or_default(),
            target: next(),
        },
        gimli::DW_TAG_structure_type | gimli::DW_TAG_class_type | gimli::DW_TAG_union_type => {
            if e.has_attr(gimli::DW_AT_declaration) {
                return unknown();
            }
            aggregate(d, id, &e, size.unwrap_or(0))
        }
        gimli::DW_TAG_enumeration_type => {
            if e.has_attr(gimli::DW_AT_declaration) {
                return unknown();
            }
            let size = size
                .or_else(|| super::types::byte_size(d, target(d, id, &e)))
                .unwrap_or(4);
            let (signed, enumerators) = enumerators(d, id, size);
            TypeKind::Enum {
                name: qualified_name(d, id),
                size,
                signed,
                enumerators,
            }
        }
        gimli::DW_TAG_array_type => {
            let (element, dims) = array_dims(d, id);
            TypeKind::Array {
                element: tref(d, element),
                dims,
            }
        }
        gimli::DW_TAG_subroutine_type => TypeKind::Function { name: None },
        gimli::DW_TAG_subprogram => TypeKind::Function {
            name: d.name_of(id),
        },
        _ => unknown(),
    }
}

/// A struct, class or union with its members, bases, template arguments and variants.
fn aggregate(
    d: &DwarfData,
    id: DieId,
    e: &gimli::DebuggingInformationEntry<R>,
    size: u64,
) -> TypeKind {
    let kind = match e.tag() {
        gimli::DW_TAG_class_type => StructKind::Class,
        gimli::DW_TAG_union_type => StructKind::Union,
        _ => StructKind::Struct,
    };
    let mut members = Vec::new();
    let mut bases = Vec::new();
    let mut template_args = Vec::new();
    let mut variant = None;
    let unit = d.unit(id.unit);
    if let Ok(mut tree) = unit.entries_tree(Some(id.off))
        && let Ok(root) = tree.root()
    {
        let mut children = root.children();
        while let Ok(Some(child)) = children.next() {
            let c = child.entry();
            match c.tag() {
                gimli::DW_TAG_member => members.extend(member(d, id.unit, c)),
                gimli::DW_TAG_inheritance => {
                    if let Some(m) = member(d, id.unit, c) {
                        bases.push((m.ty, m.offset));
                    }
                }
                gimli::DW_TAG_template_type_parameter => {
                    let cid = DieId {
                        unit: id.unit,
                        off: c.offset(),
                    };
                    template_args.push(tref(d, target(d, cid, c)));
                }
                gimli::DW_TAG_variant_part if variant.is_none() => {
                    variant = Some(variant_part(d, id.unit, child));
                }
                _ => {}
            }
        }
    }
    TypeKind::Struct {
        name: qualified_name(d, id),
        size,
        kind,
        members,
        bases,
        template_args,
        variant,
    }
}

/// A `DW_TAG_variant_part`: the discriminant (`DW_AT_discr` names a member inside the part)
/// and each `DW_TAG_variant` with its `DW_AT_discr_value` (none: the default variant).
fn variant_part(d: &DwarfData, ui: usize, node: gimli::EntriesTreeNode<'_, '_, R>) -> VariantInfo {
    let discr_die = node
        .entry()
        .attr_value(gimli::DW_AT_discr)
        .and_then(|v| d.resolve_ref(ui, &v));
    let mut discr = None;
    let mut variants = Vec::new();
    let mut children = node.children();
    while let Ok(Some(child)) = children.next() {
        let c = child.entry();
        match c.tag() {
            gimli::DW_TAG_member => {
                let here = DieId {
                    unit: ui,
                    off: c.offset(),
                };
                if Some(here) == discr_die
                    && let Some(m) = member(d, ui, c)
                {
                    discr = Some(Discriminant {
                        offset: m.offset,
                        size: type_size(d, m.ty).unwrap_or(0),
                        ty: m.ty,
                    });
                }
            }
            gimli::DW_TAG_variant => {
                let discr_value = match c.attr_value(gimli::DW_AT_discr_value) {
                    Some(AttributeValue::Sdata(s)) => Some(s as u64),
                    Some(AttributeValue::Data16(v)) => Some(v as u64),
                    Some(v) => v.udata_value(),
                    None => None,
                };
                let mut inner = child.children();
                while let Ok(Some(m)) = inner.next() {
                    if m.entry().tag() == gimli::DW_TAG_member
                        && let Some(member) = member(d, ui, m.entry())
                    {
                        variants.push(Variant {
                            discr_value,
                            member,
                        });
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    VariantInfo { discr, variants }
}

/// The size in bytes of `t` (typedefs and qualifiers followed; None: void, unknown, an
/// incomplete type or an array of unknown length).
pub(crate) fn type_size(d: &DwarfData, t: TypeRef) -> Option<u64> {
    super::types::byte_size(d, die_of(t))
}

/// The type named `name`: a base type or typedef (`int`, `size_t`), `struct X` / `union X` /
/// `enum X`, or a C++/Rust qualified name (`Shape`, `std::string`, `alloc::string::String`).
/// C's integer spellings are normalised to gcc's (`unsigned` is `unsigned int`, `long` is
/// `long int`). File-level definitions are preferred to function-local ones.
pub(crate) fn find_type(d: &DwarfData, name: &str) -> Option<TypeRef> {
    let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
    if name == "void" {
        return Some(TypeRef(TypeId::Void));
    }
    let idx = index(d);
    let found = idx
        .by_name
        .get(&name)
        .or_else(|| idx.by_name.get(&gcc_spelling(&name)?));
    found
        .and_then(|v| v.first())
        .map(|&id| TypeRef(TypeId::Die(id)))
}

/// gcc's `DW_AT_name` for a C integer type spelled another way (`unsigned long` →
/// `long unsigned int`, `short` → `short int`, `signed` → `int`).
fn gcc_spelling(name: &str) -> Option<String> {
    let words: Vec<&str> = name.split(' ').collect();
    if words.iter().any(|w| {
        !matches!(
            *w,
            "signed" | "unsigned" | "short" | "long" | "int" | "char"
        )
    }) {
        return None;
    }
    let unsigned = words.contains(&"unsigned");
    let signed = words.contains(&"signed");
    let longs = words.iter().filter(|w| **w == "long").count();
    let short = words.contains(&"short");
    if words.contains(&"char") {
        return Some(
            match (signed, unsigned) {
                (true, _) => "signed char",
                (_, true) => "unsigned char",
                _ => "char",
            }
            .to_string(),
        );
    }
    let base = match (short, longs) {
        (true, _) => "short",
        (_, 0) => "",
        (_, 1) => "long",
        _ => "long long",
    };
    Some(match (base, unsigned) {
        ("", false) => "int".to_string(),
        ("", true) => "unsigned int".to_string(),
        (b, false) => format!("{b} int"),
        (b, true) => format!("{b} unsigned int"),
    })
}

/// The type's name as gdb's `whatis` prints it.
pub(crate) fn type_name(d: &DwarfData, ty: Option<DieId>) -> String {
    declarator(d, ty, String::new(), 0)
}

/// `ty` spelled around declarator `inner` (C declarator syntax: the type of `*p[3]` is
/// spelled `int *[3]`, of `(*p)[3]` `int (*)[3]`).
fn declarator(d: &DwarfData, ty: Option<DieId>, inner: String, depth: usize) -> String {
    let leaf = |name: String| {
        if inner.is_empty() {
            name
        } else {
            format!("{name} {inner}")
        }
    };
    let Some(id) = ty else {
        return leaf("void".to_string());
    };
    if depth > MAX_DEPTH {
        return leaf("...".to_string());
    }
    let Ok(e) = d.entry(id) else {
        return leaf("?".to_string());
    };
    let lang = d.units[id.unit].lang;
    let own = own_name(d, id, &e);
    let next = target(d, id, &e);
    let next_tag = next.and_then(|n| d.entry(n).ok()).map(|n| n.tag());
    match e.tag() {
        gimli::DW_TAG_pointer_type
        | gimli::DW_TAG_reference_type
        | gimli::DW_TAG_rvalue_reference_type => {
            if lang == Lang::Rust
                && let Some(n) = own
            {
                // rustc names its pointers: `&str`, `*const u8`, `&mut [u32]`.
                return leaf(n);
            }
            let op = match e.tag() {
                gimli::DW_TAG_pointer_type => "*",
                gimli::DW_TAG_reference_type => "&",
                _ => "&&",
            };
            let inner = if matches!(
                next_tag,
                Some(gimli::DW_TAG_array_type | gimli::DW_TAG_subroutine_type)
            ) {
                format!("({op}{inner})")
            } else {
                format!("{op}{inner}")
            };
            declarator(d, next, inner, depth + 1)
        }
        gimli::DW_TAG_const_type
        | gimli::DW_TAG_volatile_type
        | gimli::DW_TAG_restrict_type
        | gimli::DW_TAG_atomic_type => {
            let q = match e.tag() {
                gimli::DW_TAG_const_type => "const",
                gimli::DW_TAG_volatile_type => "volatile",
                gimli::DW_TAG_restrict_type => "restrict",
                _ => "_Atomic",
            };
            if matches!(
                next_tag,
                Some(
                    gimli::DW_TAG_pointer_type
                        | gimli::DW_TAG_reference_type
                        | gimli::DW_TAG_rvalue_reference_type
                )
            ) {
                // A qualified pointer: `char * const`, `char * const *`, and (gdb puts no
                // space before a reference) `char * const&`.
                let inner = if inner.is_empty() || inner.starts_with('&') {
                    format!(" {q}{inner}")
                } else {
                    format!(" {q} {inner}")
                };
                declarator(d, next, inner, depth + 1)
            } else {
                format!("{q} {}", declarator(d, next, inner, depth + 1))
            }
        }
        gimli::DW_TAG_array_type => {
            let (element, counts) = array_dims(d, id);
            if lang == Lang::Rust {
                let mut name = type_name(d, element);
                for c in counts.iter().rev() {
                    name = match c {
                        Some(n) => format!("[{name}; {n}]"),
                        None => format!("[{name}]"),
                    };
                }
                return leaf(name);
            }
            let dims: String = counts
                .iter()
                .map(|c| c.map_or("[]".to_string(), |n| format!("[{n}]")))
                .collect();
            declarator(d, element, format!("{inner}{dims}"), depth + 1)
        }
        gimli::DW_TAG_subroutine_type => {
            let args = parameters(d, id, depth);
            declarator(d, next, format!("{inner}({args})"), depth + 1)
        }
        tag => {
            let qualified = || own.as_ref().map(|n| format!("{}{n}", prefix_of(d, id)));
            let name = match (keyword(tag), lang) {
                (Some(k), Lang::C) => match &own {
                    Some(n) => format!("{k} {n}"),
                    None => format!("{k} {{...}}"),
                },
                (Some(k), _) => qualified().unwrap_or_else(|| format!("{k} {{...}}")),
                (None, Lang::C) => own.clone().unwrap_or_else(|| "?".to_string()),
                (None, _) => qualified().unwrap_or_else(|| "?".to_string()),
            };
            leaf(name)
        }
    }
}

/// The parameter list of a subroutine type, C style (`int, char **`, `void` for none).
fn parameters(d: &DwarfData, id: DieId, depth: usize) -> String {
    let mut args = Vec::new();
    let unit = d.unit(id.unit);
    if let Ok(mut tree) = unit.entries_tree(Some(id.off))
        && let Ok(root) = tree.root()
    {
        let mut children = root.children();
        while let Ok(Some(child)) = children.next() {
            let e = child.entry();
            match e.tag() {
                gimli::DW_TAG_formal_parameter => {
                    let cid = DieId {
                        unit: id.unit,
                        off: e.offset(),
                    };
                    args.push(declarator(d, target(d, cid, e), String::new(), depth + 1));
                }
                gimli::DW_TAG_unspecified_parameters => args.push("...".to_string()),
                _ => {}
            }
        }
    }
    if args.is_empty() {
        "void".to_string()
    } else {
        args.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::gcc_spelling;

    #[test]
    fn c_integer_spellings_normalise_to_gccs() {
        assert_eq!(
            gcc_spelling("unsigned long").as_deref(),
            Some("long unsigned int")
        );
        assert_eq!(gcc_spelling("long").as_deref(), Some("long int"));
        assert_eq!(gcc_spelling("unsigned").as_deref(), Some("unsigned int"));
        assert_eq!(gcc_spelling("short").as_deref(), Some("short int"));
        assert_eq!(
            gcc_spelling("long long unsigned").as_deref(),
            Some("long long unsigned int")
        );
        assert_eq!(gcc_spelling("signed char").as_deref(), Some("signed char"));
        assert_eq!(gcc_spelling("size_t"), None);
    }
}
