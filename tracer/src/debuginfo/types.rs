//! DWARF types: peeling typedefs and qualifiers, sizes, members, C spellings, and lowering
//! into the [`TypeDesc`] rendering uses.
//!
//! Lowering is bounded: a struct's members are lowered one level deep (nested aggregates
//! become `Opaque`), so a self-referential or huge type cannot blow up a plan.

use super::SymbolError;
use super::dwarf::{DieId, DwarfData, R};
use crate::plan::{Member, TypeDesc};
use gimli::{AttributeValue, DwTag};

/// Deepest chain of typedefs/qualifiers/pointers followed (guards malformed cycles).
const MAX_CHAIN: usize = 32;

/// What a type is, after typedefs and qualifiers, as path steps see it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Shape {
    /// `void` (no type).
    Void,
    /// A base type or an enum.
    Scalar,
    /// A pointer (or C++ reference); `pointee` None is `void *`.
    Pointer { pointee: Option<DieId> },
    /// A struct, union or class (`id` is the peeled DIE).
    Aggregate { id: DieId, declaration: bool },
    /// An array with its element type and first-dimension count (None when unknown).
    Array {
        element: Option<DieId>,
        count: Option<u64>,
        dims: usize,
    },
    /// Anything else (functions, pointers to members, ...).
    Other,
}

/// One member of a struct as DWARF states it.
#[derive(Clone, Debug)]
pub(crate) struct MemberInfo {
    /// None for anonymous members (C11 anonymous structs and unions).
    pub name: Option<String>,
    /// Byte offset in the aggregate.
    pub offset: u64,
    /// The member's type.
    pub ty: Option<DieId>,
    /// `name : bits` for a bitfield (rendered opaque in this first cut).
    pub bitfield: Option<u64>,
}

/// The tag of `id`.
fn tag_of(d: &DwarfData, id: DieId) -> Option<DwTag> {
    d.entry(id).ok().map(|e| e.tag())
}

/// The `DW_AT_type` of `id` (None: void / absent).
pub(crate) fn type_of(d: &DwarfData, id: DieId) -> Option<DieId> {
    let e = d.entry(id).ok()?;
    d.resolve_ref(id.unit, &e.attr_value(gimli::DW_AT_type)?)
}

/// True for tags that only rename or qualify another type.
fn is_wrapper(tag: DwTag) -> bool {
    matches!(
        tag,
        gimli::DW_TAG_typedef
            | gimli::DW_TAG_const_type
            | gimli::DW_TAG_volatile_type
            | gimli::DW_TAG_restrict_type
            | gimli::DW_TAG_atomic_type
            | gimli::DW_TAG_immutable_type
            | gimli::DW_TAG_shared_type
    )
}

/// `ty` without typedefs and qualifiers (None: void).
pub(crate) fn peel(d: &DwarfData, mut ty: Option<DieId>) -> Option<DieId> {
    for _ in 0..MAX_CHAIN {
        let id = ty?;
        if !tag_of(d, id).is_some_and(is_wrapper) {
            return Some(id);
        }
        ty = type_of(d, id);
    }
    ty
}

/// An unsigned constant attribute value.
fn udata(v: &AttributeValue<R>) -> Option<u64> {
    v.udata_value()
}

/// The size in bytes of `ty` (None: unknown or void).
pub(crate) fn byte_size(d: &DwarfData, ty: Option<DieId>) -> Option<u64> {
    let id = peel(d, ty)?;
    let e = d.entry(id).ok()?;
    if let Some(size) = e
        .attr_value(gimli::DW_AT_byte_size)
        .as_ref()
        .and_then(udata)
    {
        return Some(size);
    }
    match e.tag() {
        gimli::DW_TAG_pointer_type
        | gimli::DW_TAG_reference_type
        | gimli::DW_TAG_rvalue_reference_type
        | gimli::DW_TAG_ptr_to_member_type => {
            Some(u64::from(d.unit(id.unit).encoding().address_size))
        }
        gimli::DW_TAG_array_type => {
            let (element, counts) = array_dims(d, id);
            let mut n = byte_size(d, element)?;
            for c in counts {
                n = n.checked_mul(c?)?;
            }
            Some(n)
        }
        _ => None,
    }
}

/// The element type and the count of each dimension of array `id` (None: unknown count).
fn array_dims(d: &DwarfData, id: DieId) -> (Option<DieId>, Vec<Option<u64>>) {
    let element = type_of(d, id);
    let mut counts = Vec::new();
    let unit = d.unit(id.unit);
    let Ok(mut tree) = unit.entries_tree(Some(id.off)) else {
        return (element, counts);
    };
    let Ok(root) = tree.root() else {
        return (element, counts);
    };
    let mut children = root.children();
    while let Ok(Some(child)) = children.next() {
        let e = child.entry();
        if e.tag() != gimli::DW_TAG_subrange_type {
            continue;
        }
        let count = if let Some(c) = e.attr_value(gimli::DW_AT_count).as_ref().and_then(udata) {
            Some(c)
        } else {
            let lower = e
                .attr_value(gimli::DW_AT_lower_bound)
                .as_ref()
                .and_then(udata)
                .unwrap_or(0);
            match e.attr_value(gimli::DW_AT_upper_bound) {
                // gcc writes `int a[0]` / flexible arrays as upper_bound -1 (or omits it).
                Some(AttributeValue::Sdata(-1)) => Some(0),
                Some(v) => udata(&v).map(|u| (u + 1).saturating_sub(lower)),
                None => None,
            }
        };
        counts.push(count);
    }
    (element, counts)
}

/// What `ty` is, for path steps.
pub(crate) fn shape(d: &DwarfData, ty: Option<DieId>) -> Shape {
    let Some(id) = peel(d, ty) else {
        return Shape::Void;
    };
    let Ok(e) = d.entry(id) else {
        return Shape::Other;
    };
    match e.tag() {
        gimli::DW_TAG_base_type | gimli::DW_TAG_enumeration_type => Shape::Scalar,
        gimli::DW_TAG_pointer_type
        | gimli::DW_TAG_reference_type
        | gimli::DW_TAG_rvalue_reference_type => Shape::Pointer {
            pointee: type_of(d, id),
        },
        gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type | gimli::DW_TAG_class_type => {
            Shape::Aggregate {
                id,
                declaration: e.has_attr(gimli::DW_AT_declaration),
            }
        }
        gimli::DW_TAG_array_type => {
            let (element, counts) = array_dims(d, id);
            Shape::Array {
                element,
                count: counts.first().copied().flatten(),
                dims: counts.len(),
            }
        }
        _ => Shape::Other,
    }
}

/// The members of aggregate `id`, in declaration order.
pub(crate) fn members(d: &DwarfData, id: DieId) -> Vec<MemberInfo> {
    let mut out = Vec::new();
    let unit = d.unit(id.unit);
    let Ok(mut tree) = unit.entries_tree(Some(id.off)) else {
        return out;
    };
    let Ok(root) = tree.root() else { return out };
    let mut children = root.children();
    while let Ok(Some(child)) = children.next() {
        let e = child.entry();
        if e.tag() != gimli::DW_TAG_member || e.has_attr(gimli::DW_AT_external) {
            // C++ static members are DW_TAG_member + DW_AT_external (DWARF 4) and have no
            // storage in the object.
            continue;
        }
        let name = e
            .attr_value(gimli::DW_AT_name)
            .and_then(|v| d.attr_string(id.unit, v));
        let ty = e
            .attr_value(gimli::DW_AT_type)
            .and_then(|v| d.resolve_ref(id.unit, &v));
        let bit_size = e.attr_value(gimli::DW_AT_bit_size).as_ref().and_then(udata);
        let offset = match e.attr_value(gimli::DW_AT_data_member_location) {
            Some(AttributeValue::Exprloc(expr)) => {
                // DWARF 2 style: DW_OP_plus_uconst N.
                let mut ops = expr.operations(unit.encoding());
                match ops.next() {
                    Ok(Some(gimli::Operation::PlusConstant { value })) => value,
                    _ => 0,
                }
            }
            Some(v) => udata(&v).unwrap_or(0),
            None => e
                .attr_value(gimli::DW_AT_data_bit_offset)
                .as_ref()
                .and_then(udata)
                .map_or(0, |bits| bits / 8),
        };
        out.push(MemberInfo {
            name,
            offset,
            ty,
            bitfield: bit_size,
        });
    }
    out
}

/// Finds member `name` of aggregate `id`, looking into anonymous struct/union members too.
/// Returns its byte offset and type, or None.
pub(crate) fn find_member(
    d: &DwarfData,
    id: DieId,
    name: &str,
) -> Option<(u64, Option<DieId>, Option<u64>)> {
    let all = members(d, id);
    if let Some(m) = all.iter().find(|m| m.name.as_deref() == Some(name)) {
        return Some((m.offset, m.ty, m.bitfield));
    }
    for m in all.iter().filter(|m| m.name.is_none()) {
        if let Shape::Aggregate { id: inner, .. } = shape(d, m.ty)
            && let Some((off, ty, bits)) = find_member(d, inner, name)
        {
            return Some((m.offset + off, ty, bits));
        }
    }
    None
}

/// The names of aggregate `id`'s members (anonymous members' names inlined), for errors.
pub(crate) fn member_names(d: &DwarfData, id: DieId) -> Vec<String> {
    let mut out = Vec::new();
    for m in members(d, id) {
        match m.name {
            Some(n) => out.push(n),
            None => {
                if let Shape::Aggregate { id: inner, .. } = shape(d, m.ty) {
                    out.extend(member_names(d, inner));
                }
            }
        }
    }
    out
}

/// The type's name as C spells it (`const char *`, `struct order`, `int [16]`, `size_t`).
pub(crate) fn type_name(d: &DwarfData, ty: Option<DieId>) -> String {
    name_rec(d, ty, 0)
}

/// `base *`, without a space between stars.
fn pointer_to(base: String, op: &str) -> String {
    if base.ends_with('*') || base.ends_with('&') {
        format!("{base}{op}")
    } else {
        format!("{base} {op}")
    }
}

fn name_rec(d: &DwarfData, ty: Option<DieId>, depth: usize) -> String {
    let Some(id) = ty else {
        return "void".to_string();
    };
    if depth > MAX_CHAIN {
        return "...".to_string();
    }
    let Ok(e) = d.entry(id) else {
        return "?".to_string();
    };
    let own = e
        .attr_value(gimli::DW_AT_name)
        .and_then(|v| d.attr_string(id.unit, v));
    let inner = || {
        e.attr_value(gimli::DW_AT_type)
            .and_then(|v| d.resolve_ref(id.unit, &v))
    };
    let c = !d.units[id.unit].cplusplus;
    let tagged = |kw: &str| match &own {
        Some(n) if c => format!("{kw} {n}"),
        Some(n) => n.clone(),
        None => format!("{kw} {{...}}"),
    };
    match e.tag() {
        gimli::DW_TAG_structure_type => tagged("struct"),
        gimli::DW_TAG_union_type => tagged("union"),
        gimli::DW_TAG_class_type => tagged("class"),
        gimli::DW_TAG_enumeration_type => tagged("enum"),
        gimli::DW_TAG_pointer_type
        | gimli::DW_TAG_reference_type
        | gimli::DW_TAG_rvalue_reference_type => {
            let op = match e.tag() {
                gimli::DW_TAG_pointer_type => "*",
                gimli::DW_TAG_reference_type => "&",
                _ => "&&",
            };
            let target = inner();
            if target.and_then(|t| tag_of(d, t)) == Some(gimli::DW_TAG_subroutine_type) {
                let (ret, args) = signature(d, target.expect("checked above"), depth);
                return format!("{ret} ({op})({args})");
            }
            pointer_to(name_rec(d, target, depth + 1), op)
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
            let target = inner();
            let base = name_rec(d, target, depth + 1);
            // A qualified pointer reads `char * const`; anything else `const char`.
            if target.and_then(|t| tag_of(d, t)) == Some(gimli::DW_TAG_pointer_type) {
                format!("{base} {q}")
            } else {
                format!("{q} {base}")
            }
        }
        gimli::DW_TAG_array_type => {
            let (element, counts) = array_dims(d, id);
            let dims: String = counts
                .iter()
                .map(|c| c.map_or("[]".to_string(), |n| format!("[{n}]")))
                .collect();
            format!("{} {dims}", name_rec(d, element, depth + 1))
        }
        gimli::DW_TAG_subroutine_type => {
            let (ret, args) = signature(d, id, depth);
            format!("{ret} ({args})")
        }
        _ => own.unwrap_or_else(|| "?".to_string()),
    }
}

/// Return type and parameter list of a subroutine type, C style.
fn signature(d: &DwarfData, id: DieId, depth: usize) -> (String, String) {
    let ret = name_rec(d, type_of(d, id), depth + 1);
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
                    let t = e
                        .attr_value(gimli::DW_AT_type)
                        .and_then(|v| d.resolve_ref(id.unit, &v));
                    args.push(name_rec(d, t, depth + 1));
                }
                gimli::DW_TAG_unspecified_parameters => args.push("...".to_string()),
                _ => {}
            }
        }
    }
    let args = if args.is_empty() {
        "void".to_string()
    } else {
        args.join(", ")
    };
    (ret, args)
}

/// True if `pointee` (a pointer's target) is a 1-byte character type: the pointer is a C
/// string.
pub(crate) fn is_char(d: &DwarfData, pointee: Option<DieId>) -> bool {
    let Some(id) = peel(d, pointee) else {
        return false;
    };
    let Ok(e) = d.entry(id) else { return false };
    e.tag() == gimli::DW_TAG_base_type
        && e.attr_value(gimli::DW_AT_byte_size)
            .as_ref()
            .and_then(udata)
            == Some(1)
        && matches!(
            e.attr_value(gimli::DW_AT_encoding),
            Some(AttributeValue::Encoding(
                gimli::DW_ATE_signed_char | gimli::DW_ATE_unsigned_char | gimli::DW_ATE_UTF
            ))
        )
}

/// Lowers `ty` for rendering. `depth` 0 lowers a struct's members; deeper structs are opaque.
pub(crate) fn lower(
    d: &DwarfData,
    ty: Option<DieId>,
    depth: usize,
) -> Result<TypeDesc, SymbolError> {
    let name = type_name(d, ty);
    let size = byte_size(d, ty).unwrap_or(0) as u32;
    let Some(id) = peel(d, ty) else {
        return Ok(TypeDesc::Opaque { name, size: 0 });
    };
    let e = d.entry(id)?;
    Ok(match e.tag() {
        gimli::DW_TAG_base_type => {
            let encoding = match e.attr_value(gimli::DW_AT_encoding) {
                Some(AttributeValue::Encoding(enc)) => enc,
                _ => gimli::DwAte(0),
            };
            match encoding {
                gimli::DW_ATE_signed => TypeDesc::Int {
                    name,
                    size,
                    signed: true,
                },
                gimli::DW_ATE_unsigned => TypeDesc::Int {
                    name,
                    size,
                    signed: false,
                },
                gimli::DW_ATE_signed_char => TypeDesc::Char {
                    name,
                    size,
                    signed: true,
                },
                gimli::DW_ATE_unsigned_char | gimli::DW_ATE_UTF => TypeDesc::Char {
                    name,
                    size,
                    signed: false,
                },
                gimli::DW_ATE_boolean => TypeDesc::Bool,
                gimli::DW_ATE_float if size == 4 || size == 8 => TypeDesc::Float { name, size },
                _ => TypeDesc::Opaque { name, size },
            }
        }
        gimli::DW_TAG_enumeration_type => {
            // Signedness from the underlying type when DWARF gives it (gcc does since DWARF 3
            // extensions); else from whether any enumerator is negative.
            let underlying = peel(d, type_of(d, id))
                .and_then(|u| d.entry(u).ok())
                .map(|u| {
                    matches!(
                        u.attr_value(gimli::DW_AT_encoding),
                        Some(AttributeValue::Encoding(
                            gimli::DW_ATE_signed | gimli::DW_ATE_signed_char
                        ))
                    )
                });
            let mut enumerators = Vec::new();
            let mut any_negative = false;
            let unit = d.unit(id.unit);
            let mut tree = unit.entries_tree(Some(id.off)).map_err(|e| d.error(e))?;
            let root = tree.root().map_err(|e| d.error(e))?;
            let mut children = root.children();
            while let Some(child) = children.next().map_err(|e| d.error(e))? {
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
                        udata(&v).map_or(0, |u| sign_extend(u, size))
                    }
                    Some(v) => udata(&v).map_or(0, |u| u as i64),
                    None => continue,
                };
                any_negative |= value < 0;
                enumerators.push((value, n));
            }
            let signed = underlying.unwrap_or(any_negative);
            TypeDesc::Enum {
                name,
                size,
                signed,
                enumerators,
            }
        }
        gimli::DW_TAG_pointer_type
        | gimli::DW_TAG_reference_type
        | gimli::DW_TAG_rvalue_reference_type => TypeDesc::Pointer {
            name,
            cstring: is_char(d, type_of(d, id)),
        },
        gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type | gimli::DW_TAG_class_type => {
            if depth > 0 || e.has_attr(gimli::DW_AT_declaration) {
                TypeDesc::Opaque { name, size }
            } else {
                let mut out = Vec::new();
                for m in members(d, id) {
                    let ty = match m.bitfield {
                        Some(bits) => TypeDesc::Opaque {
                            name: format!("{} : {bits}", type_name(d, m.ty)),
                            size: 0,
                        },
                        None => lower(d, m.ty, depth + 1)?,
                    };
                    out.push(Member {
                        name: m.name.unwrap_or_else(|| "<anon>".to_string()),
                        offset: m.offset as u32,
                        ty,
                    });
                }
                TypeDesc::Struct {
                    name,
                    size,
                    members: out,
                }
            }
        }
        gimli::DW_TAG_array_type => {
            let (element, counts) = array_dims(d, id);
            match counts.as_slice() {
                [count] => {
                    let element_size = byte_size(d, element).unwrap_or(0) as u32;
                    TypeDesc::Array {
                        name,
                        element: Box::new(lower(d, element, depth)?),
                        element_size,
                        count: count.unwrap_or(0) as u32,
                    }
                }
                _ => TypeDesc::Opaque { name, size },
            }
        }
        _ => TypeDesc::Opaque { name, size },
    })
}

/// `u` (read from a fixed-size form) as a signed value of `size` bytes.
fn sign_extend(u: u64, size: u32) -> i64 {
    match size {
        1 => u as u8 as i8 as i64,
        2 => u as u16 as i16 as i64,
        4 => u as u32 as i32 as i64,
        _ => u as i64,
    }
}
