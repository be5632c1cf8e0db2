//! Printing hits: one human line, or one JSON object, per hit.

use scry_tracer::plan::Value;
use scry_tracer::{HitRecord, RenderedHit};
use serde_json::{Map, Value as Json, json};
use std::time::{SystemTime, UNIX_EPOCH};

/// A hit as one line of text: `12:00:01.123456 loop.c:42 [tid 1234] message`.
pub fn human(hit: &HitRecord, r: &RenderedHit) -> String {
    format!(
        "{} {} [tid {}] {}",
        local_time(hit.time),
        r.location,
        hit.tid,
        r.message
    )
}

/// A hit as one JSON object.
pub fn json(hit: &HitRecord, r: &RenderedHit, location_spec: &str) -> Json {
    let mut values = Map::new();
    for (name, v) in &r.values {
        values.insert(name.clone(), value_json(v));
    }
    json!({
        "time": utc_time(hit.time),
        "pid": hit.pid,
        "tid": hit.tid,
        "probe": hit.probe,
        "probe_location": location_spec,
        "location": r.location,
        "function": r.function,
        "hit": hit.seq,
        "message": r.message,
        "values": values,
    })
}

/// A value as JSON: numbers as numbers, C strings as strings, pointers as hex strings,
/// statuses as `{"status": …}`.
pub fn value_json(v: &Value) -> Json {
    match v {
        Value::Int(i) | Value::Char(i) => json!(i),
        Value::Uint(u) => json!(u),
        Value::Float(f) => json!(f),
        Value::Bool(b) => json!(b),
        Value::Enum { value, name } => match name {
            Some(n) => json!(n),
            None => json!(value),
        },
        Value::Pointer { addr, string } => match string.as_deref() {
            Some(Value::Str { text, truncated }) => {
                if *truncated {
                    json!({"addr": format!("{addr:#x}"), "string": text, "truncated": true})
                } else {
                    json!(text)
                }
            }
            Some(other) => json!({"addr": format!("{addr:#x}"), "target": value_json(other)}),
            None => json!(format!("{addr:#x}")),
        },
        Value::Str { text, truncated } => {
            if *truncated {
                json!({"string": text, "truncated": true})
            } else {
                json!(text)
            }
        }
        Value::Struct(members) => {
            let mut m = Map::new();
            for (k, v) in members {
                m.insert(k.clone(), value_json(v));
            }
            Json::Object(m)
        }
        Value::Array(items) => Json::Array(items.iter().map(value_json).collect()),
        Value::Opaque(name) => json!({"status": "not_rendered", "type": name}),
        Value::Unreadable(addr) => json!({"status": "unreadable", "addr": format!("{addr:#x}")}),
        Value::OptimizedOut => json!({"status": "optimized_out"}),
        Value::Unavailable(why) => json!({"status": "unavailable", "reason": why}),
    }
}

fn split(t: SystemTime) -> (i64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_micros()),
        Err(_) => (0, 0),
    }
}

/// `2026-11-23T12:00:01.123456Z`.
pub fn utc_time(t: SystemTime) -> String {
    let (secs, micros) = split(t);
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, m, d) = scry_server::time::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `12:00:01.123456` in local time.
pub fn local_time(t: SystemTime) -> String {
    let (secs, micros) = split(t);
    // SAFETY: localtime_r writes into the tm we own.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        let s = secs as libc::time_t;
        libc::localtime_r(&s, &mut tm);
        tm
    };
    format!(
        "{:02}:{:02}:{:02}.{micros:06}",
        tm.tm_hour, tm.tm_min, tm.tm_sec
    )
}

use scry_tracer::engine::SnapshotRecord;
use scry_tracer::snapshot::{Node, Status, Var};

/// A snapshot node on one line, gdb-like.
pub fn node_text(n: &Node) -> String {
    match n {
        Node::Int(i) => i.to_string(),
        Node::Uint(u) => u.to_string(),
        Node::Float(f) => float_text(*f),
        Node::Bool(b) => b.to_string(),
        Node::Char(c) => match u8::try_from(*c) {
            Ok(b) if b.is_ascii_graphic() || b == b' ' => format!("{c} '{}'", b as char),
            _ => c.to_string(),
        },
        Node::Enum { value, name } => name.clone().unwrap_or_else(|| value.to_string()),
        Node::Pointer {
            addr,
            target,
            string,
            symbol,
        } => {
            let mut s = format!("{addr:#x}");
            if let Some(sym) = symbol {
                s.push_str(&format!(" <{sym}>"));
            }
            if let Some((text, truncated)) = string {
                s.push_str(&format!(" {text:?}{}", if *truncated { "..." } else { "" }));
            }
            if let Some(t) = target {
                s.push_str(&format!(" -> {}", node_text(t)));
            }
            s
        }
        Node::Str { text, truncated } => format!("{text:?}{}", if *truncated { "..." } else { "" }),
        // gdb shows a reference as `@addr: value`, except when a pretty-printer shows the
        // value (strings, containers, smart pointers): then only the value.
        Node::Ref { addr, target } => match target.as_ref() {
            Node::Str { .. }
            | Node::Array { .. }
            | Node::Map { .. }
            | Node::Smart { .. }
            | Node::Variant { .. }
            | Node::Tuple(_) => node_text(target),
            _ => format!("@{addr:#x}: {}", node_text(target)),
        },
        Node::Tuple(items) => {
            let inner: Vec<String> = items.iter().map(node_text).collect();
            format!("({})", inner.join(", "))
        }
        // As Rust's gdb printers show them.
        Node::Smart {
            spelled,
            target,
            counts,
            ..
        } if spelled == "Rc" || spelled == "Arc" => {
            let (strong, weak) = counts.unwrap_or((0, 0));
            let value = target.as_deref().map(node_text).unwrap_or_default();
            format!(
                "{spelled}(strong={strong}, weak={weak}) = {{value = {value}, strong = {strong}, weak = {weak}}}"
            )
        }
        // As libstdc++'s gdb printers show them.
        Node::Smart {
            spelled,
            ptr,
            counts,
            ..
        } => match counts {
            Some((0, weak)) => {
                format!("{spelled} (expired, weak count {weak}) = {{get() = {ptr:#x}}}")
            }
            Some((usec, weak)) => {
                format!("{spelled} (use count {usec}, weak count {weak}) = {{get() = {ptr:#x}}}")
            }
            None if *ptr == 0 => format!("{spelled} = {{get() = 0x0}}"),
            None => format!("{spelled} = {{get() = {ptr:#x}}}"),
        },
        Node::Map {
            spelled,
            len,
            entries,
        } => {
            let inner: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("[{}] = {}", node_text(k), node_text(v)))
                .collect();
            let more = if (*len as usize) > entries.len() {
                "..."
            } else {
                ""
            };
            if *len == 0 && spelled != "HashMap" {
                // As libstdc++'s printers: nothing after the count when empty.
                format!("{spelled} with 0 elements")
            } else if spelled == "HashMap" {
                format!("HashMap(size={len}) = {{{}{more}}}", inner.join(", "))
            } else {
                format!(
                    "{spelled} with {len} element{} = {{{}{more}}}",
                    if *len == 1 { "" } else { "s" },
                    inner.join(", ")
                )
            }
        }
        Node::Variant {
            enum_name,
            variant,
            fields,
        } => {
            if fields.is_empty() {
                format!("{enum_name}::{variant}")
            } else if fields.iter().all(|(k, _)| k.starts_with("__")) {
                let inner: Vec<String> = fields.iter().map(|(_, v)| node_text(v)).collect();
                format!("{enum_name}::{variant}({})", inner.join(", "))
            } else {
                let inner: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", node_text(v)))
                    .collect();
                format!("{enum_name}::{variant}{{{}}}", inner.join(", "))
            }
        }
        // Rust's syntax for Rust values (`values::Point {x: 1, y: 2}`, a tuple struct as
        // `values::Meters (3)`), C's for the rest, as gdb writes each language.
        Node::Struct {
            rust_name: Some(name),
            fields,
        } => {
            if fields.is_empty() {
                name.clone()
            } else if fields.iter().all(|(k, _)| k.starts_with("__")) {
                let inner: Vec<String> = fields.iter().map(|(_, v)| node_text(v)).collect();
                format!("{name} ({})", inner.join(", "))
            } else {
                let inner: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", node_text(v)))
                    .collect();
                format!("{name} {{{}}}", inner.join(", "))
            }
        }
        Node::Struct {
            rust_name: None,
            fields,
        } => {
            let inner: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{k} = {}", node_text(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
        Node::Array { items, len, rust } => {
            let inner: Vec<String> = items.iter().map(node_text).collect();
            let more = match len {
                Some(l) if *l as usize > items.len() => format!(", ...({l} in all)"),
                _ => String::new(),
            };
            if *rust {
                format!("[{}{more}]", inner.join(", "))
            } else {
                format!("{{{}{more}}}", inner.join(", "))
            }
        }
        Node::Status(s) => format!("<{}>", status_text(s)),
    }
}

fn status_text(s: &Status) -> String {
    match s {
        Status::OptimizedOut => "optimized out".into(),
        Status::Unreadable(a) => format!("unreadable at {a:#x}"),
        Status::Unavailable(w) => format!("unavailable: {w}"),
        Status::DepthLimit => "not shown: depth limit".into(),
        Status::SizeLimit => "not shown: snapshot size limit".into(),
        Status::Cycle(a) => format!("cycle: {a:#x} shown above"),
        Status::NotCaptured(t) => format!("not captured: {t}"),
    }
}

fn status_json(s: &Status) -> Json {
    match s {
        Status::OptimizedOut => json!({"status": "optimized_out"}),
        Status::Unreadable(a) => json!({"status": "unreadable", "addr": format!("{a:#x}")}),
        Status::Unavailable(w) => json!({"status": "unavailable", "reason": w}),
        Status::DepthLimit => json!({"status": "truncated", "reason": "depth"}),
        Status::SizeLimit => json!({"status": "truncated", "reason": "size"}),
        Status::Cycle(a) => json!({"status": "cycle", "addr": format!("{a:#x}")}),
        Status::NotCaptured(t) => json!({"status": "not_captured", "type": t}),
    }
}

/// A snapshot node as JSON (schema: docs/snapshots.md).
pub fn node_json(n: &Node) -> Json {
    match n {
        Node::Int(i) | Node::Char(i) => json!(i),
        Node::Uint(u) => json!(u),
        Node::Float(f) => json!(f),
        Node::Bool(b) => json!(b),
        Node::Enum { value, name } => match name {
            Some(n) => json!(n),
            None => json!(value),
        },
        Node::Pointer {
            addr,
            target,
            string,
            symbol,
        } => {
            let mut m = Map::new();
            m.insert("addr".into(), json!(format!("{addr:#x}")));
            if let Some((text, truncated)) = string {
                m.insert("string".into(), json!(text));
                if *truncated {
                    m.insert("truncated".into(), json!(true));
                }
            }
            if let Some(sym) = symbol {
                m.insert("symbol".into(), json!(sym));
            }
            if let Some(t) = target {
                m.insert("target".into(), node_json(t));
            }
            Json::Object(m)
        }
        Node::Str { text, truncated } => {
            if *truncated {
                json!({"string": text, "truncated": true})
            } else {
                json!(text)
            }
        }
        Node::Ref { addr, target } => {
            json!({"ref": format!("{addr:#x}"), "target": node_json(target)})
        }
        Node::Tuple(items) => Json::Array(items.iter().map(node_json).collect()),
        Node::Smart {
            ptr,
            target,
            counts,
            ..
        } => {
            let mut o = json!({"ptr": format!("{ptr:#x}")});
            if let Some(t) = target {
                o["target"] = node_json(t);
            }
            if let Some((u, w)) = counts {
                o["use_count"] = json!(u);
                o["weak_count"] = json!(w);
            }
            o
        }
        Node::Map { len, entries, .. } => {
            let e: Vec<Json> = entries
                .iter()
                .map(|(k, v)| json!([node_json(k), node_json(v)]))
                .collect();
            if (*len as usize) > e.len() {
                json!({"len": len, "entries": e, "truncated": true})
            } else {
                json!({"len": len, "entries": e})
            }
        }
        Node::Variant {
            variant, fields, ..
        } => {
            let mut m = Map::new();
            for (k, v) in fields {
                m.insert(k.clone(), node_json(v));
            }
            json!({"variant": variant, "fields": m})
        }
        Node::Struct { fields, .. } => {
            let mut m = Map::new();
            for (k, v) in fields {
                m.insert(k.clone(), node_json(v));
            }
            Json::Object(m)
        }
        Node::Array { items, len, .. } => {
            let items: Vec<Json> = items.iter().map(node_json).collect();
            match len {
                Some(l) if *l as usize > items.len() => {
                    json!({"items": items, "len": l, "truncated": true})
                }
                _ => Json::Array(items),
            }
        }
        Node::Status(s) => status_json(s),
    }
}

fn vars_json(vars: &[Var]) -> Json {
    Json::Array(
        vars.iter()
            .map(|v| {
                let mut o = json!({"name": v.name, "type": v.ty, "value": node_json(&v.value)});
                if v.shadowed {
                    o["shadowed"] = json!(true);
                }
                o
            })
            .collect(),
    )
}

/// A snapshot as one JSON object.
pub fn snapshot_json(r: &SnapshotRecord, location_spec: &str) -> Json {
    let s = &r.snapshot;
    let frames: Vec<Json> = s
        .frames
        .iter()
        .map(|f| {
            let mut o = json!({
                "index": f.index,
                "function": f.function,
                "file": f.file,
                "line": f.line,
                "pc": format!("{:#x}", f.pc),
                "module": f.module,
                "inlined": f.inlined,
            });
            if f.signal_frame {
                o["signal_frame"] = json!(true);
            }
            if f.has_variables {
                o["args"] = vars_json(&f.args);
                o["locals"] = vars_json(&f.locals);
            }
            o
        })
        .collect();
    json!({
        "kind": "snapshot",
        "time": utc_time(r.time),
        "pid": r.pid,
        "tid": r.tid,
        "probe": r.probe,
        "probe_location": location_spec,
        "hit": r.seq,
        "held_us": r.held_us,
        "bytes_read": s.bytes_read,
        "truncated": s.truncated,
        "stack_end": s.stack_end,
        "frames": frames,
        "watches": vars_json(&s.watches),
    })
}

/// A snapshot as an indented tree.
pub fn snapshot_human(r: &SnapshotRecord, location_spec: &str) -> String {
    let s = &r.snapshot;
    let mut out = format!(
        "{} snapshot of probe {} at {} [tid {}] (hit {}; thread held {} µs; {} bytes read{})\n",
        local_time(r.time),
        r.probe,
        location_spec,
        r.tid,
        r.seq,
        r.held_us,
        s.bytes_read,
        if s.truncated {
            "; some values cut by limits"
        } else {
            ""
        }
    );
    for f in &s.frames {
        let place = match (&f.file, f.line) {
            (Some(file), Some(line)) => {
                format!(" at {}:{line}", file.rsplit('/').next().unwrap_or(file))
            }
            _ => String::new(),
        };
        let module = f
            .module
            .as_deref()
            .map(|m| format!(" in {m}"))
            .unwrap_or_default();
        let inl = if f.inlined { " (inlined)" } else { "" };
        out.push_str(&format!(
            "  #{:<2} {}{inl}{place} {:#x}{module}\n",
            f.index, f.function, f.pc
        ));
        if f.has_variables {
            for (title, vars) in [("args", &f.args), ("locals", &f.locals)] {
                if vars.is_empty() {
                    continue;
                }
                out.push_str(&format!("       {title}:\n"));
                for v in vars {
                    let sh = if v.shadowed { " (shadowed)" } else { "" };
                    out.push_str(&format!(
                        "         {} = ({}) {}{sh}\n",
                        v.name,
                        v.ty,
                        node_text(&v.value)
                    ));
                }
            }
        }
    }
    out.push_str(&format!("  stack: {}\n", s.stack_end));
    if !s.watches.is_empty() {
        out.push_str("  watches:\n");
        for w in &s.watches {
            out.push_str(&format!(
                "    {} = ({}) {}\n",
                w.name,
                w.ty,
                node_text(&w.value)
            ));
        }
    }
    out
}

/// A float as gdb would print it: plain for ordinary magnitudes, exponent otherwise.
fn float_text(f: f64) -> String {
    let a = f.abs();
    if a != 0.0 && !(1e-6..1e16).contains(&a) {
        format!("{f:e}")
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn utc_times_are_iso8601() {
        let t = UNIX_EPOCH + Duration::from_micros(1_795_435_201_123_456);
        assert_eq!(utc_time(t), "2026-11-23T12:00:01.123456Z");
        assert_eq!(utc_time(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn values_become_json() {
        assert_eq!(value_json(&Value::Int(-3)), json!(-3));
        let s = Value::Pointer {
            addr: 0x10,
            string: Some(Box::new(Value::Str {
                text: "bob".into(),
                truncated: false,
            })),
        };
        assert_eq!(value_json(&s), json!("bob"));
        assert_eq!(
            value_json(&Value::OptimizedOut),
            json!({"status": "optimized_out"})
        );
        assert_eq!(
            value_json(&Value::Enum {
                value: 1,
                name: Some("PAID".into())
            }),
            json!("PAID")
        );
    }
}
