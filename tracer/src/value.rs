//! Rendering: fetched bytes plus a [`TypeDesc`] become a [`Value`], and a `Value` becomes the
//! text of a log line, gdb-like (`{id = 7, qty = 3}`, `0x5555… "alice"`, `97 'a'`).
//!
//! This runs off the hit path (on the thread that formats output), so it may allocate freely;
//! it never fails: bytes that do not fit the type render as a status, not an error.

use crate::plan::{Fetched, StringBytes, TypeDesc, Value};
use std::fmt::Write;

/// Elements of an array rendered at most.
pub const MAX_ELEMENTS: usize = 100;

/// The size in bytes of a value of type `ty`.
pub fn type_size(ty: &TypeDesc) -> usize {
    match ty {
        TypeDesc::Int { size, .. }
        | TypeDesc::Char { size, .. }
        | TypeDesc::Float { size, .. }
        | TypeDesc::Enum { size, .. }
        | TypeDesc::Struct { size, .. }
        | TypeDesc::Opaque { size, .. } => *size as usize,
        TypeDesc::Bool => 1,
        TypeDesc::Pointer { .. } => 8,
        TypeDesc::Array {
            element_size,
            count,
            ..
        } => *element_size as usize * *count as usize,
    }
}

/// Turns what a hit fetched into a value of type `ty`.
pub fn render(ty: &TypeDesc, fetched: &Fetched) -> Value {
    match fetched {
        Fetched::Unreadable { at } => Value::Unreadable(at.0),
        Fetched::OptimizedOut => Value::OptimizedOut,
        Fetched::Bytes { value, string } => render_bytes(ty, value, string.as_ref()),
    }
}

/// Little-endian unsigned integer of up to 8 bytes.
fn le_u64(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = bytes.len().min(8);
    b[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(b)
}

/// `bytes` (of `size` bytes) as a signed integer.
fn le_i64(bytes: &[u8], size: usize) -> i64 {
    let u = le_u64(bytes);
    match size {
        1 => u as u8 as i8 as i64,
        2 => u as u16 as i16 as i64,
        4 => u as u32 as i32 as i64,
        _ => u as i64,
    }
}

/// Renders `bytes` as `ty`; `string` is the C string a `char *` points to, when fetched.
fn render_bytes(ty: &TypeDesc, bytes: &[u8], string: Option<&StringBytes>) -> Value {
    let size = type_size(ty);
    if bytes.len() < size.clamp(1, 8)
        && !matches!(
            ty,
            TypeDesc::Opaque { .. } | TypeDesc::Struct { .. } | TypeDesc::Array { .. }
        )
    {
        return Value::Opaque(format!(
            "{} (only {} of {size} bytes)",
            type_name(ty),
            bytes.len()
        ));
    }
    match ty {
        TypeDesc::Int { name, size, signed } => {
            if *size > 8 {
                Value::Opaque(name.clone())
            } else if *signed {
                Value::Int(le_i64(bytes, *size as usize))
            } else {
                Value::Uint(le_u64(&bytes[..*size as usize]))
            }
        }
        TypeDesc::Char { size, signed, .. } => {
            let size = *size as usize;
            Value::Char(if *signed {
                le_i64(bytes, size)
            } else {
                le_u64(&bytes[..size.min(8)]) as i64
            })
        }
        TypeDesc::Bool => Value::Bool(bytes.iter().take(size.max(1)).any(|b| *b != 0)),
        TypeDesc::Float { size, name } => match size {
            4 => Value::Float(f64::from(f32::from_le_bytes(
                bytes[..4].try_into().expect("length checked"),
            ))),
            8 => Value::Float(f64::from_le_bytes(
                bytes[..8].try_into().expect("length checked"),
            )),
            _ => Value::Opaque(name.clone()),
        },
        TypeDesc::Enum {
            size,
            signed,
            enumerators,
            ..
        } => {
            let size = *size as usize;
            let value = if *signed {
                le_i64(bytes, size)
            } else {
                le_u64(&bytes[..size.min(8)]) as i64
            };
            let name = enumerators
                .iter()
                .find(|(v, _)| *v == value)
                .map(|(_, n)| n.clone());
            Value::Enum { value, name }
        }
        TypeDesc::Pointer { .. } => {
            let addr = le_u64(&bytes[..8]);
            let string = string.map(|s| {
                Box::new(if s.unreadable {
                    Value::Unreadable(addr)
                } else {
                    Value::Str {
                        text: String::from_utf8_lossy(&s.bytes).into_owned(),
                        truncated: s.truncated,
                    }
                })
            });
            Value::Pointer { addr, string }
        }
        TypeDesc::Struct { members, .. } => Value::Struct(
            members
                .iter()
                .map(|m| {
                    let start = m.offset as usize;
                    let end = start + type_size(&m.ty);
                    let v = match bytes.get(start..end) {
                        Some(b) => render_bytes(&m.ty, b, None),
                        None => Value::Opaque(format!(
                            "{} (beyond the fetched bytes)",
                            type_name(&m.ty)
                        )),
                    };
                    (m.name.clone(), v)
                })
                .collect(),
        ),
        TypeDesc::Array {
            element,
            element_size,
            count,
            ..
        } => {
            let es = *element_size as usize;
            let count = *count as usize;
            // A char array is text in C: show it as a string up to its NUL, like gdb.
            if let TypeDesc::Char { size: 1, .. } = **element {
                let avail = &bytes[..bytes.len().min(count)];
                let (text, truncated) = match avail.iter().position(|b| *b == 0) {
                    Some(nul) => (&avail[..nul], false),
                    None => (avail, true),
                };
                return Value::Str {
                    text: String::from_utf8_lossy(text).into_owned(),
                    truncated,
                };
            }
            if es == 0 {
                return Value::Array(Vec::new());
            }
            Value::Array(
                (0..count.min(MAX_ELEMENTS))
                    .map_while(|i| bytes.get(i * es..(i + 1) * es))
                    .map(|b| render_bytes(element, b, None))
                    .collect(),
            )
        }
        TypeDesc::Opaque { name, .. } => Value::Opaque(name.clone()),
    }
}

/// The display name of a type (for opaque values).
fn type_name(ty: &TypeDesc) -> String {
    match ty {
        TypeDesc::Int { name, .. }
        | TypeDesc::Char { name, .. }
        | TypeDesc::Float { name, .. }
        | TypeDesc::Enum { name, .. }
        | TypeDesc::Pointer { name, .. }
        | TypeDesc::Struct { name, .. }
        | TypeDesc::Array { name, .. }
        | TypeDesc::Opaque { name, .. } => name.clone(),
        TypeDesc::Bool => "bool".to_string(),
    }
}

/// A value as a log line shows it, gdb-like.
pub fn display(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v);
    out
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Uint(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Float(f) => {
            if f.is_nan() {
                out.push_str("nan");
            } else if f.is_infinite() {
                out.push_str(if *f > 0.0 { "inf" } else { "-inf" });
            } else {
                let _ = write!(out, "{f}");
            }
        }
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Char(c) => {
            let _ = write!(out, "{c} '");
            push_char(out, *c, '\'');
            out.push('\'');
        }
        Value::Enum { value, name } => match name {
            Some(n) => out.push_str(n),
            None => {
                let _ = write!(out, "{value}");
            }
        },
        Value::Pointer { addr, string } => {
            let _ = write!(out, "{addr:#x}");
            match string.as_deref() {
                Some(Value::Unreadable(a)) => {
                    let _ = write!(out, " <error: Cannot access memory at address {a:#x}>");
                }
                Some(s) => {
                    out.push(' ');
                    write_value(out, s);
                }
                None => {}
            }
        }
        Value::Str { text, truncated } => {
            out.push('"');
            for ch in text.chars() {
                if ch.is_ascii() {
                    push_char(out, ch as i64, '"');
                } else {
                    out.push(ch);
                }
            }
            out.push('"');
            if *truncated {
                out.push_str("...");
            }
        }
        Value::Struct(members) => {
            out.push('{');
            for (i, (name, value)) in members.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(name);
                out.push_str(" = ");
                write_value(out, value);
            }
            out.push('}');
        }
        Value::Array(elements) => {
            out.push('{');
            for (i, e) in elements.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, e);
            }
            out.push('}');
        }
        Value::Opaque(name) => {
            let _ = write!(out, "<{name}>");
        }
        Value::Unreadable(a) => {
            let _ = write!(out, "<unreadable at {a:#x}>");
        }
        Value::OptimizedOut => out.push_str("<optimized out>"),
        Value::Unavailable(why) => {
            let _ = write!(out, "<unavailable: {why}>");
        }
    }
}

/// One character code as C source would write it inside `quote`s: printable ASCII as is,
/// the usual escapes, other bytes as octal (`'\377'`, like gdb).
fn push_char(out: &mut String, c: i64, quote: char) {
    let byte = (c & 0xff) as u8;
    match byte {
        0 => out.push_str("\\000"),
        b'\n' => out.push_str("\\n"),
        b'\t' => out.push_str("\\t"),
        b'\r' => out.push_str("\\r"),
        7 => out.push_str("\\a"),
        8 => out.push_str("\\b"),
        12 => out.push_str("\\f"),
        11 => out.push_str("\\v"),
        27 => out.push_str("\\033"),
        b'\\' => out.push_str("\\\\"),
        b if b as char == quote => {
            out.push('\\');
            out.push(quote);
        }
        0x20..=0x7e if (0..=0x7f).contains(&c) => out.push(byte as char),
        _ => {
            let _ = write!(out, "\\{byte:03o}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::RuntimeAddr;
    use crate::plan::Member;

    fn bytes(value: Vec<u8>) -> Fetched {
        Fetched::Bytes {
            value,
            string: None,
        }
    }

    fn int(name: &str, size: u32, signed: bool) -> TypeDesc {
        TypeDesc::Int {
            name: name.into(),
            size,
            signed,
        }
    }

    #[test]
    fn integers_by_size_and_sign() {
        assert_eq!(
            render(&int("int", 4, true), &bytes(vec![0xff, 0xff, 0xff, 0xff])),
            Value::Int(-1)
        );
        assert_eq!(
            render(
                &int("unsigned int", 4, false),
                &bytes(vec![0xff, 0xff, 0xff, 0xff])
            ),
            Value::Uint(4294967295)
        );
        assert_eq!(
            render(&int("short", 2, true), &bytes(vec![0x00, 0x80])),
            Value::Int(-32768)
        );
        assert_eq!(
            render(&int("long", 8, true), &bytes(42i64.to_le_bytes().to_vec())),
            Value::Int(42)
        );
        // A register start hands over 8 bytes; only the type's size counts.
        assert_eq!(
            render(
                &int("int", 4, true),
                &bytes(vec![7, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd])
            ),
            Value::Int(7)
        );
        assert_eq!(display(&Value::Int(-1)), "-1");
        assert_eq!(display(&Value::Uint(4294967295)), "4294967295");
    }

    #[test]
    fn floats_bools_chars() {
        let f = TypeDesc::Float {
            name: "double".into(),
            size: 8,
        };
        assert_eq!(
            render(&f, &bytes(2.5f64.to_le_bytes().to_vec())),
            Value::Float(2.5)
        );
        let f4 = TypeDesc::Float {
            name: "float".into(),
            size: 4,
        };
        assert_eq!(
            render(&f4, &bytes(0.5f32.to_le_bytes().to_vec())),
            Value::Float(0.5)
        );
        assert_eq!(display(&Value::Float(2.5)), "2.5");
        assert_eq!(display(&Value::Float(3.0)), "3");
        assert_eq!(render(&TypeDesc::Bool, &bytes(vec![1])), Value::Bool(true));
        assert_eq!(display(&Value::Bool(false)), "false");
        let c = TypeDesc::Char {
            name: "char".into(),
            size: 1,
            signed: true,
        };
        assert_eq!(render(&c, &bytes(vec![b'a'])), Value::Char(97));
        assert_eq!(display(&Value::Char(97)), "97 'a'");
        assert_eq!(render(&c, &bytes(vec![0xff])), Value::Char(-1));
        assert_eq!(display(&Value::Char(-1)), "-1 '\\377'");
        assert_eq!(display(&Value::Char(0)), "0 '\\000'");
        assert_eq!(display(&Value::Char(10)), "10 '\\n'");
        assert_eq!(display(&Value::Char(39)), "39 '\\''");
    }

    #[test]
    fn enums_by_name() {
        let e = TypeDesc::Enum {
            name: "enum color".into(),
            size: 4,
            signed: false,
            enumerators: vec![(0, "RED".into()), (5, "GREEN".into())],
        };
        let v = render(&e, &bytes(vec![5, 0, 0, 0]));
        assert_eq!(
            v,
            Value::Enum {
                value: 5,
                name: Some("GREEN".into())
            }
        );
        assert_eq!(display(&v), "GREEN");
        let v = render(&e, &bytes(vec![9, 0, 0, 0]));
        assert_eq!(display(&v), "9");
    }

    #[test]
    fn pointers_and_c_strings() {
        let p = TypeDesc::Pointer {
            name: "const char *".into(),
            cstring: true,
        };
        let addr = 0x5555_5555_6004u64;
        let fetched = Fetched::Bytes {
            value: addr.to_le_bytes().to_vec(),
            string: Some(StringBytes {
                bytes: b"alice".to_vec(),
                truncated: false,
                unreadable: false,
            }),
        };
        let v = render(&p, &fetched);
        assert_eq!(display(&v), "0x555555556004 \"alice\"");
        let fetched = Fetched::Bytes {
            value: addr.to_le_bytes().to_vec(),
            string: Some(StringBytes {
                bytes: b"say \"hi\"\n".to_vec(),
                truncated: true,
                unreadable: false,
            }),
        };
        assert_eq!(
            display(&render(&p, &fetched)),
            "0x555555556004 \"say \\\"hi\\\"\\n\"..."
        );
        let fetched = Fetched::Bytes {
            value: 16u64.to_le_bytes().to_vec(),
            string: Some(StringBytes {
                bytes: vec![],
                truncated: false,
                unreadable: true,
            }),
        };
        assert_eq!(
            display(&render(&p, &fetched)),
            "0x10 <error: Cannot access memory at address 0x10>"
        );
        let plain = TypeDesc::Pointer {
            name: "int *".into(),
            cstring: false,
        };
        assert_eq!(
            display(&render(&plain, &bytes(0u64.to_le_bytes().to_vec()))),
            "0x0"
        );
        // Invalid UTF-8 is shown lossily, not refused.
        let fetched = Fetched::Bytes {
            value: addr.to_le_bytes().to_vec(),
            string: Some(StringBytes {
                bytes: vec![b'a', 0xff, b'b'],
                truncated: false,
                unreadable: false,
            }),
        };
        assert_eq!(
            display(&render(&p, &fetched)),
            "0x555555556004 \"a\u{fffd}b\""
        );
    }

    #[test]
    fn structs_member_by_member() {
        let s = TypeDesc::Struct {
            name: "struct order".into(),
            size: 40,
            members: vec![
                Member {
                    name: "id".into(),
                    offset: 0,
                    ty: int("int", 4, true),
                },
                Member {
                    name: "name".into(),
                    offset: 4,
                    ty: TypeDesc::Array {
                        name: "char [16]".into(),
                        element: Box::new(TypeDesc::Char {
                            name: "char".into(),
                            size: 1,
                            signed: true,
                        }),
                        element_size: 1,
                        count: 16,
                    },
                },
                Member {
                    name: "qty".into(),
                    offset: 20,
                    ty: int("int", 4, true),
                },
                Member {
                    name: "price".into(),
                    offset: 24,
                    ty: TypeDesc::Float {
                        name: "double".into(),
                        size: 8,
                    },
                },
                Member {
                    name: "customer".into(),
                    offset: 32,
                    ty: TypeDesc::Pointer {
                        name: "const char *".into(),
                        cstring: true,
                    },
                },
            ],
        };
        let mut b = vec![0u8; 40];
        b[0..4].copy_from_slice(&7i32.to_le_bytes());
        b[4..9].copy_from_slice(b"alice");
        b[20..24].copy_from_slice(&3i32.to_le_bytes());
        b[24..32].copy_from_slice(&2.5f64.to_le_bytes());
        b[32..40].copy_from_slice(&0x4010u64.to_le_bytes());
        let v = render(&s, &bytes(b));
        assert_eq!(
            display(&v),
            "{id = 7, name = \"alice\", qty = 3, price = 2.5, customer = 0x4010}"
        );
    }

    #[test]
    fn arrays_element_by_element_bounded() {
        let a = TypeDesc::Array {
            name: "int [3]".into(),
            element: Box::new(int("int", 4, true)),
            element_size: 4,
            count: 3,
        };
        let b: Vec<u8> = [1i32, -2, 3].iter().flat_map(|i| i.to_le_bytes()).collect();
        let v = render(&a, &bytes(b));
        assert_eq!(
            v,
            Value::Array(vec![Value::Int(1), Value::Int(-2), Value::Int(3)])
        );
        assert_eq!(display(&v), "{1, -2, 3}");
        let big = TypeDesc::Array {
            name: "char [500]".into(),
            element: Box::new(int("uint8_t", 1, false)),
            element_size: 1,
            count: 500,
        };
        let Value::Array(items) = render(&big, &bytes(vec![1; 500])) else {
            panic!("not an array")
        };
        assert_eq!(items.len(), MAX_ELEMENTS);
        // A char array without a NUL is a truncated string.
        let chars = TypeDesc::Array {
            name: "char [3]".into(),
            element: Box::new(TypeDesc::Char {
                name: "char".into(),
                size: 1,
                signed: true,
            }),
            element_size: 1,
            count: 3,
        };
        assert_eq!(
            display(&render(&chars, &bytes(b"abc".to_vec()))),
            "\"abc\"..."
        );
    }

    #[test]
    fn statuses_map_through() {
        let t = int("int", 4, true);
        assert_eq!(render(&t, &Fetched::OptimizedOut), Value::OptimizedOut);
        assert_eq!(
            display(&render(&t, &Fetched::OptimizedOut)),
            "<optimized out>"
        );
        let v = render(
            &t,
            &Fetched::Unreadable {
                at: RuntimeAddr(0x10),
            },
        );
        assert_eq!(v, Value::Unreadable(0x10));
        assert_eq!(display(&v), "<unreadable at 0x10>");
        assert_eq!(
            display(&render(
                &TypeDesc::Opaque {
                    name: "struct inner".into(),
                    size: 8
                },
                &bytes(vec![0; 8])
            )),
            "<struct inner>"
        );
        // Too few bytes for the type: shown, not a panic.
        assert!(matches!(render(&t, &bytes(vec![1])), Value::Opaque(_)));
    }
}
