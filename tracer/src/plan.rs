//! Value plans: how to fetch one value at a hit, lowered from DWARF when the probe is set.
//!
//! A probe's template names values (`{o->qty}`). When the probe is set, the symbol layer
//! lowers each one, at each probe address, into a [`ValuePlan`]: a start (a register, an address
//! computed from a register, a fixed address, a constant) and a short path of pointer hops and
//! member offsets. At a hit the engine only runs the plan: one GETREGS, then one batched
//! process_vm_readv per pointer hop for all values together. The bytes go to another thread,
//! where [`TypeDesc`] (also built at set time) turns them into a [`Value`].

use crate::addr::RuntimeAddr;
use crate::regs::Reg;

/// Where a value's fetch starts.
#[derive(Clone, Debug, PartialEq)]
pub enum Start {
    /// The value is the register's contents (its low `size` bytes).
    Reg(Reg),
    /// The value is in memory at an address computed from registers.
    Addr(AddrBase),
    /// The value is a constant known from DWARF (DW_AT_const_value, DW_OP_implicit_value).
    Const(Vec<u8>),
    /// DWARF says the value does not exist at this pc (no location-list entry covers it).
    OptimizedOut,
}

/// How to compute the address a value starts from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AddrBase {
    /// `reg + offset`, e.g. a frame-base-relative local (the CFA rule already folded in).
    RegOffset { reg: Reg, offset: i64 },
    /// A fixed address in the target (a global; the module's bias already added).
    Runtime(RuntimeAddr),
}

/// One hop after the start address.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Hop {
    /// Read an 8-byte pointer at the current address; it becomes the current address.
    Deref,
    /// Add a member or element offset to the current address.
    Offset(i64),
}

/// How to fetch one value at a hit. Built at set time; run by the hit path.
#[derive(Clone, Debug, PartialEq)]
pub struct ValuePlan {
    /// Where the fetch starts.
    pub start: Start,
    /// Pointer hops and offsets applied to the start address (empty unless `start` is `Addr`;
    /// a pointer held in a register followed by `->field` is lowered to `RegOffset` first, then
    /// hops).
    pub hops: Vec<Hop>,
    /// Bytes of the final value (read at the final address, or taken from the register).
    pub size: u32,
    /// If the final value is a pointer to a C string: also read up to this many bytes at it.
    pub then_string: Option<u32>,
}

/// How a fetched value fared. Statuses are data, shown to the user, never an error that stops
/// the probe.
#[derive(Clone, Debug, PartialEq)]
pub enum Fetched {
    /// The value's bytes, and the bytes of the C string it points to when the plan asked.
    Bytes {
        value: Vec<u8>,
        string: Option<StringBytes>,
    },
    /// Memory on the path could not be read (bad pointer, unmapped page).
    Unreadable { at: RuntimeAddr },
    /// DWARF says the value does not exist at this pc.
    OptimizedOut,
}

/// The bytes of a C string read at a hit.
#[derive(Clone, Debug, PartialEq)]
pub struct StringBytes {
    /// Bytes up to (not including) the NUL, or up to the bound.
    pub bytes: Vec<u8>,
    /// True if no NUL was found within the bound.
    pub truncated: bool,
    /// True if the pointer could not be read at all.
    pub unreadable: bool,
}

/// A type, lowered from DWARF at set time into what rendering needs.
#[derive(Clone, Debug, PartialEq)]
pub enum TypeDesc {
    /// An integer of `size` bytes (`name` as the source spells it, typedefs resolved).
    Int {
        name: String,
        size: u32,
        signed: bool,
    },
    /// A character type: shown as the number and the character.
    Char {
        name: String,
        size: u32,
        signed: bool,
    },
    /// C `_Bool` / C++ `bool` / Rust `bool`.
    Bool,
    /// A 4- or 8-byte IEEE float.
    Float { name: String, size: u32 },
    /// An enumeration: shown by enumerator name when the value matches one.
    Enum {
        name: String,
        size: u32,
        signed: bool,
        enumerators: Vec<(i64, String)>,
    },
    /// A pointer. `cstring` is true for `char *` (and signed/unsigned/const variants).
    Pointer { name: String, cstring: bool },
    /// A struct, class or union with its members (one level; nested aggregates summarised).
    Struct {
        name: String,
        size: u32,
        members: Vec<Member>,
    },
    /// A fixed-size array of `count` elements.
    Array {
        name: String,
        element: Box<TypeDesc>,
        element_size: u32,
        count: u32,
    },
    /// Something this first cut does not render yet; shown by name and size.
    Opaque { name: String, size: u32 },
}

/// One member of a struct as rendering sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// Member name (`<anon>` for anonymous members).
    pub name: String,
    /// Byte offset in the struct.
    pub offset: u32,
    /// The member's type.
    pub ty: TypeDesc,
}

/// A rendered value: what a log line and a JSON event show.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    Uint(u64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A character (its code and the character).
    Char(i64),
    /// An enumerator, by name when one matches.
    Enum { value: i64, name: Option<String> },
    /// A pointer, with the C string it points to when it is one.
    Pointer {
        addr: u64,
        string: Option<Box<Value>>,
    },
    /// Text (a C string's contents).
    Str { text: String, truncated: bool },
    /// A struct's members.
    Struct(Vec<(String, Value)>),
    /// An array's elements.
    Array(Vec<Value>),
    /// A value that exists but is not rendered yet (type name).
    Opaque(String),
    /// Memory on the value's path could not be read.
    Unreadable(u64),
    /// DWARF says the value does not exist at this pc.
    OptimizedOut,
    /// The value could not be computed at this hit (division by zero, an entry value the
    /// hit path cannot recover): why.
    Unavailable(String),
}
