//! Runtime faults (issue "Values, expressions and snapshots", test 4): null and wild
//! pointers, a cyclic list, a list deeper than the depth limit, a string longer than the
//! string limit, and std containers made of garbage (a huge length, a far-away end, a wild
//! tree). Snapshots and log holes show them as bounded values with statuses; the program
//! runs on unharmed and sees its own data intact.

use scry_tests::scry::logged_run;
use scry_tests::*;
use serde_json::Value as Json;

fn watch<'a>(snapshot: &'a Json, name: &str) -> &'a Json {
    snapshot["watches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == name)
        .map(|w| &w["value"])
        .unwrap_or_else(|| panic!("no watch {name}: {snapshot}"))
}

/// The program's records: every iteration ran and saw its data intact.
fn assert_unharmed(run: &scry_tests::scry::LoggedRun, iterations: i64) {
    let records: Vec<&String> = run
        .records
        .iter()
        .filter(|r| r.starts_with("inspect "))
        .collect();
    assert_eq!(records.len() as i64, iterations, "{:?}", run.records);
    for r in records {
        assert_eq!(kv_i64(r, "ring"), 6, "{r}");
        assert_eq!(kv_i64(r, "chain"), 45, "{r}");
        assert_eq!(kv_i64(r, "long"), 4000, "{r}");
    }
}

#[test]
fn snapshots_of_bad_memory_are_bounded_and_say_why() {
    let loc = probe_location("faults.cpp", "inspect_body");
    for bin in ["faults-O0", "faults-O2"] {
        let run = logged_run(
            bin,
            &["--iterations", "5", "--interval-us", "1000"],
            &[
                "--json",
                "--snapshot",
                &loc,
                "--watch",
                "*h->null_ptr",
                "--watch",
                "h->wild_ptr[0]",
                "--watch",
                "h->ring",
                "--watch",
                "h->chain",
                "--watch",
                "h->long_str",
                "--watch",
                "*junk_str",
                "--watch",
                "*junk_vec",
                "--watch",
                "*junk_map",
            ],
        );
        assert_eq!(run.code, Some(0), "{bin}: {:?}", run.stderr);
        assert_eq!(run.hits.len(), 1, "{bin}: one snapshot by default");
        let s = &run.hits[0];
        // Null and wild pointers: unreadable, with the address.
        assert_eq!(
            watch(s, "*h->null_ptr"),
            &serde_json::json!({"status": "unreadable", "addr": "0x0"})
        );
        assert_eq!(
            watch(s, "h->wild_ptr[0]"),
            &serde_json::json!({"status": "unreadable", "addr": "0x10"})
        );
        // The ring a -> b -> c -> a: a's second appearance is a cycle, not a repeat.
        let ring = watch(s, "h->ring");
        let a = &ring["target"];
        let c = &a["next"]["target"]["next"]["target"];
        assert_eq!(
            (a["value"].as_i64(), c["value"].as_i64()),
            (Some(1), Some(3))
        );
        assert_eq!(c["next"]["target"]["status"], "cycle", "{ring}");
        assert_eq!(c["next"]["target"]["addr"], ring["addr"]);
        // Ten nodes, depth limit 5: cut with a status, and the snapshot says it was cut.
        let mut node = &watch(s, "h->chain")["target"];
        let mut shown = 0;
        while node.get("value").is_some() {
            assert_eq!(node["value"].as_i64(), Some(shown));
            shown += 1;
            node = &node["next"]["target"];
        }
        assert!((1..10).contains(&shown), "{shown} nodes shown");
        assert_eq!(
            node,
            &serde_json::json!({"status": "truncated", "reason": "depth"})
        );
        assert_eq!(s["truncated"], true);
        // 4000 characters, shown up to the 256-byte string limit.
        let long = watch(s, "h->long_str");
        assert_eq!(long["truncated"], true);
        assert_eq!(long["string"].as_str().unwrap(), "x".repeat(256));
        // Garbage containers: implausible lengths are refused, a wild tree is bounded.
        for name in ["*junk_str", "*junk_vec"] {
            let v = watch(s, name);
            assert_eq!(v["status"], "unavailable", "{name}: {v}");
            assert!(
                v["reason"].as_str().unwrap().contains("implausible length"),
                "{name}: {v}"
            );
        }
        let map = watch(s, "*junk_map");
        assert_eq!(map["len"].as_u64(), Some(0x6b6b6b6b6b6b));
        assert_eq!(map["truncated"], true);
        let entries = map["entries"].as_array().unwrap();
        assert!(entries.len() <= 100, "{map}");
        assert!(
            entries[0][0]["status"] == "unreadable",
            "the wild root is unreadable: {map}"
        );
        // Bounded in bytes too (64 KiB by default).
        assert!(s["bytes_read"].as_u64().unwrap() <= 64 * 1024);
        assert_unharmed(&run, 5);
    }
}

#[test]
fn log_holes_and_conditions_on_bad_memory_report_statuses() {
    let loc = probe_location("faults.cpp", "inspect_body");
    for bin in ["faults-O0", "faults-O2"] {
        let run = logged_run(
            bin,
            &["--iterations", "5", "--interval-us", "1000"],
            &[
                "--json",
                "--log",
                &loc,
                "{*h->null_ptr} {h->wild_ptr[0]} {h->ring->next->next->next->value} {h->count / (h->count - h->count)} {h->count}",
            ],
        );
        assert_eq!(run.code, Some(0), "{bin}: {:?}", run.stderr);
        assert_eq!(run.hits.len(), 5, "{bin}: {:?}", run.stderr);
        for (i, h) in run.hits.iter().enumerate() {
            let v = &h["values"];
            assert_eq!(v["h->count"].as_i64(), Some(i as i64));
            assert_eq!(
                v["*h->null_ptr"],
                serde_json::json!({"status": "unreadable", "addr": "0x0"})
            );
            assert_eq!(
                v["h->wild_ptr[0]"],
                serde_json::json!({"status": "unreadable", "addr": "0x10"})
            );
            assert_eq!(v["h->ring->next->next->next->value"].as_i64(), Some(1));
            assert_eq!(
                v["h->count / (h->count - h->count)"],
                serde_json::json!({"status": "unavailable", "reason": "division by zero"})
            );
            assert!(
                h["message"].as_str().unwrap().starts_with(
                    "<unreadable at 0x0> <unreadable at 0x10> 1 <unavailable: division by zero>"
                ),
                "{}",
                h["message"]
            );
        }
        assert_unharmed(&run, 5);

        // A condition through a wild pointer: reported (once a minute), never silently false,
        // and the program is unharmed.
        let run = logged_run(
            bin,
            &["--iterations", "5", "--interval-us", "1000"],
            &[
                "--json",
                "--log",
                &loc,
                "{h->count}",
                "--if",
                "*h->wild_ptr == 1",
            ],
        );
        assert_eq!(run.code, Some(0), "{bin}: {:?}", run.stderr);
        assert!(run.hits.is_empty());
        let reports: Vec<&String> = run
            .stderr
            .iter()
            .filter(|l| l.contains("could not be evaluated"))
            .collect();
        assert_eq!(reports.len(), 1, "{:?}", run.stderr);
        assert!(reports[0].contains("0x10"), "{}", reports[0]);
        assert_unharmed(&run, 5);
    }
}
