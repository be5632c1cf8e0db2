//! Register-only instructions at a probe site (nop, lea, mov between registers, a taken
//! conditional jump, a jump) are carried out on the registers at the hit, with no slot; the
//! others run from a slot. `testbins/c/exprs.c`'s `emulated()` has one of each on its own
//! line, and a wrong emulation of either jump would run a ud2 and kill the program.

use scry_tests::scry::logged_run;
use scry_tests::*;

#[test]
fn register_only_instructions_run_without_a_slot_and_the_program_is_unharmed() {
    let emulated = ["emu_nop", "emu_lea", "emu_mov", "emu_jnz", "emu_jmp"];
    // At -O2 the nop's line starts at the function's first instruction (`push rbx`, which
    // writes the stack): that site runs from a slot, the other four are emulated.
    for (bin, expected) in [
        ("exprs-O0", "100 traps (100 emulated, no slot)"),
        ("exprs-O2", "100 traps (80 emulated, no slot)"),
    ] {
        let mut args: Vec<String> = vec!["--json".into(), "--stats".into()];
        for m in emulated {
            args.extend([
                "--log".into(),
                probe_location("exprs.c", m),
                format!("{m} {{seq}}"),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = logged_run(bin, &["--iterations", "20", "--interval-us", "1000"], &args);
        assert_eq!(run.code, Some(0), "{bin}: {:?}", run.stderr);
        let seqs: Vec<i64> = run
            .records
            .iter()
            .filter(|r| r.starts_with("emulated "))
            .map(|r| kv_i64(r, "seq"))
            .collect();
        assert_eq!(
            seqs,
            (0..20).collect::<Vec<_>>(),
            "{bin}: the program ran every call"
        );
        for m in emulated {
            let got: Vec<i64> = run
                .hits
                .iter()
                .filter_map(|h| {
                    let msg = h["message"].as_str()?;
                    msg.strip_prefix(&format!("{m} "))?.parse().ok()
                })
                .collect();
            assert_eq!(got, (0..20).collect::<Vec<_>>(), "{bin} {m}");
        }
        let stats = run
            .stderr
            .iter()
            .find(|l| l.contains("stats:"))
            .expect("no stats line");
        let slot_pages = if bin == "exprs-O0" {
            " 0 slot pages"
        } else {
            " 1 slot pages"
        };
        assert!(
            stats.contains(expected) && stats.contains(slot_pages),
            "{bin}: {stats}"
        );
    }
}

#[test]
fn other_instructions_still_run_from_a_slot() {
    // `test rsp, rsp` sets flags: not emulated, so it needs a slot page.
    let loc = probe_location("exprs.c", "emu_test");
    let run = logged_run(
        "exprs-O2",
        &["--iterations", "5", "--interval-us", "1000"],
        &["--json", "--stats", "--log", &loc, "t {seq}"],
    );
    assert_eq!(run.code, Some(0), "{:?}", run.stderr);
    assert_eq!(run.hits.len(), 5);
    let stats = run.stderr.iter().find(|l| l.contains("stats:")).unwrap();
    assert!(
        stats.contains("5 traps (0 emulated, no slot)") && stats.contains(" 1 slot pages"),
        "{stats}"
    );
}

#[test]
fn an_instruction_neither_can_run_is_refused_at_set_time_with_the_nearest_that_works() {
    require_ptrace();
    let target = Target::spawn("exprs-O0", &["--interval-us", "1000"]);
    let loc = probe_location("exprs.c", "refused_syscall");
    let (code, _, stderr) = scry_tests::scry::run_scry(
        &[
            "attach",
            "--pid",
            &target.pid().to_string(),
            "--log",
            &loc,
            "x",
        ],
        std::time::Duration::from_secs(20),
    );
    let err = stderr.join("\n");
    assert_ne!(code, 0, "accepted: {err}");
    assert!(
        err.contains("syscall") && err.contains("probe the line before it"),
        "the reason: {err}"
    );
    assert!(
        err.contains("the nearest instruction that can be probed is at 0x") && err.contains("nop"),
        "the nearest address that works: {err}"
    );
    code_bytes_match_file(target.pid(), testbin("exprs-O0")).unwrap();
}
