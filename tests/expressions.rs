//! Every expression operator on every type family, against the values the program itself
//! computes (issue "Values, expressions and snapshots", test 2).
//!
//! `testbins/c/exprs.c` lists the expressions (`X(expr)` lines of its EXPRS macro, string
//! comparisons as `S(expr, "literal")`) and records each one's value, evaluated by C, right
//! after the probe line. scry evaluates the same text at the same hit, in one template with
//! one hole per expression; every value must be equal (floats: the same double).

use scry_tests::scry::logged_run;
use scry_tests::*;
use std::collections::HashMap;

/// The expressions of exprs.c: (EXPRS, STRINGS as `expr == "literal"`).
fn expressions() -> (Vec<String>, Vec<String>) {
    let path = workspace_root().join("testbins/c/exprs.c");
    let src = std::fs::read_to_string(&path).expect("read exprs.c");
    let mut values = Vec::new();
    let mut strings = Vec::new();
    for line in src.lines() {
        let t = line.trim().trim_end_matches('\\').trim_end();
        if let Some(e) = t.strip_prefix("X(").and_then(|r| r.strip_suffix(')')) {
            values.push(e.to_string());
        } else if let Some(e) = t.strip_prefix("S(").and_then(|r| r.strip_suffix(')')) {
            let (expr, lit) = e.split_once(", ").expect("S(expr, \"lit\")");
            strings.push(format!("{expr} == {lit}"));
        }
    }
    (values, strings)
}

/// A JSON value as the number it shows: integers exactly, floats as doubles, booleans as
/// 0 and 1.
fn number(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Bool(b) => Some(*b as i32 as f64),
        serde_json::Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// Integers compare exactly (as text: an f64 cannot hold every 64-bit value).
fn same(scry: &serde_json::Value, c: &str) -> bool {
    match scry {
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string() == c,
        other => match (number(other), c.parse::<f64>()) {
            (Some(a), Ok(b)) => a == b,
            _ => false,
        },
    }
}

#[test]
fn every_operator_on_every_type_family_agrees_with_c() {
    let (values, strings) = expressions();
    assert!(values.len() >= 80, "only {} expressions", values.len());
    assert!(!strings.is_empty());
    let all: Vec<&String> = values.iter().chain(&strings).collect();
    let template: Vec<String> = all.iter().map(|e| format!("{{{e}}}")).collect();
    let template = template.join(" | ");
    let loc = probe_location("exprs.c", "exprs_body");
    for bin in ["exprs-O0", "exprs-O2"] {
        let run = logged_run(
            bin,
            &["--iterations", "6", "--interval-us", "1000"],
            &["--json", "--log", &loc, &template],
        );
        assert_eq!(run.code, Some(0), "{bin}: {:?}", run.stderr);
        assert_eq!(run.hits.len(), 6, "{bin}: {:?}", run.stderr);
        // (seq, kind, k) → C's value.
        let mut expected: HashMap<(i64, String, usize), String> = HashMap::new();
        for r in &run.records {
            let kind = r.split_whitespace().next().unwrap_or("").to_string();
            if kind != "value" && kind != "string" {
                continue;
            }
            let kv = parse_kv(r);
            expected.insert(
                (kv_i64(r, "seq"), kind, kv["k"].parse().unwrap()),
                kv["v"].clone(),
            );
        }
        let mut wrong = Vec::new();
        let mut compared = 0;
        for (seq, hit) in run.hits.iter().enumerate() {
            let got = &hit["values"];
            for (k, e) in values.iter().enumerate() {
                let c = &expected[&(seq as i64, "value".to_string(), k)];
                compared += 1;
                if !same(&got[e.as_str()], c) {
                    wrong.push(format!("seq {seq}: {e}: scry {} C {c}", got[e.as_str()]));
                }
            }
            for (k, e) in strings.iter().enumerate() {
                let c = &expected[&(seq as i64, "string".to_string(), k)];
                compared += 1;
                if !same(&got[e.as_str()], c) {
                    wrong.push(format!("seq {seq}: {e}: scry {} C {c}", got[e.as_str()]));
                }
            }
        }
        eprintln!(
            "{bin}: {compared} values compared, {} differ from C",
            wrong.len()
        );
        assert!(wrong.is_empty(), "{bin}:\n{}", wrong.join("\n"));
    }
}

/// String comparison by content for C++ std::string and Rust &str and String, in a template
/// and in a condition, against the program's own records.
#[test]
fn strings_compare_by_content_in_cpp_and_rust() {
    for (bin, src, marker, template, cond, kind) in [
        (
            "shapes-O0",
            "shapes.cpp",
            "inspect_body",
            "{banner == \"containers-of-iteration-2\"} {greeting == \"hello\"} {greeting != \"hell\"} {seq}",
            "banner != \"containers-of-iteration-4\"",
            "containers",
        ),
        (
            "values-O0",
            "values.rs",
            "text_body",
            "{name == \"bob\"} {owned == \"owned-2\"} {name != \"\"} {seq}",
            "name != \"carol\"",
            "text",
        ),
        (
            "values-O2",
            "values.rs",
            "text_body",
            "{name == \"bob\"} {owned == \"owned-2\"} {name != \"\"} {seq}",
            "name != \"carol\"",
            "text",
        ),
    ] {
        let loc = probe_location(src, marker);
        let run = logged_run(
            bin,
            &["--iterations", "6", "--interval-us", "1000"],
            &["--json", "--log", &loc, template, "--if", cond],
        );
        assert_eq!(run.code, Some(0), "{bin}: {:?}", run.stderr);
        let records: Vec<&String> = run
            .records
            .iter()
            .filter(|r| r.starts_with(&format!("{kind} ")))
            .collect();
        // The records say which hits the condition keeps, and what each comparison is.
        let mut expected = Vec::new();
        for r in &records {
            let kv = parse_kv(r);
            let seq = kv_i64(r, "seq");
            let row = if kind == "containers" {
                if kv["banner"] == "containers-of-iteration-4" {
                    continue;
                }
                vec![
                    kv["banner"] == "containers-of-iteration-2",
                    kv["greeting"] == "hello",
                    kv["greeting"] != "hell",
                ]
            } else {
                if kv["name"] == "carol" {
                    continue;
                }
                vec![
                    kv["name"] == "bob",
                    kv["owned"] == "owned-2",
                    !kv["name"].is_empty(),
                ]
            };
            expected.push((seq, row));
        }
        let holes: Vec<&str> = template
            .split('{')
            .skip(1)
            .map(|h| h.split('}').next().unwrap())
            .collect();
        let got: Vec<(i64, Vec<bool>)> = run
            .hits
            .iter()
            .map(|h| {
                let v = &h["values"];
                (
                    v["seq"].as_i64().unwrap(),
                    holes[..3]
                        .iter()
                        .map(|e| number(&v[*e]) == Some(1.0))
                        .collect(),
                )
            })
            .collect();
        assert!(expected.iter().any(|(_, r)| r[0]) && expected.iter().any(|(_, r)| !r[0]));
        assert_eq!(got, expected, "{bin}: {:?}", run.stderr);
    }
}
