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
    let id = super::typegraph::canonical(d, peel(d, ty)?);
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
    super::typegraph::array_dims(d, id)
}

/// What `ty` is, for path steps.
pub(crate) fn shape(d: &DwarfData, ty: Option<DieId>) -> Shape {
    let Some(id) = peel(d, ty).map(|id| super::typegraph::canonical(d, id)) else {
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

/// The type's name as gdb's `whatis` spells it (`const char *`, `struct order`,
/// `int [16]`, `size_t`, `std::vector<int, std::allocator<int> >`).
pub(crate) fn type_name(d: &DwarfData, ty: Option<DieId>) -> String {
    super::typegraph::type_name(d, ty)
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
    let Some(id) = peel(d, ty).map(|id| super::typegraph::canonical(d, id)) else {
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
            let (signed, enumerators) = super::typegraph::enumerators(d, id, u64::from(size));
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
