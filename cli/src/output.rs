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
    let (y, m, d) = civil_from_days(days);
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

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
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
