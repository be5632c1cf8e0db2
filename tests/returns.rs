//! `function@entry` and `function@return`: the first instruction, and every way out (each
//! `ret`, each tail call). The stack pointer is the same at both, so entries and returns pair
//! up frame by frame — recursion included — which is what the duration metric relies on.

use scry_tests::scry::logged_run;
use scry_tests::*;

#[test]
fn entries_and_returns_pair_up_by_stack_pointer_in_recursion() {
    for bin in ["exprs-O0", "exprs-O2"] {
        let run = logged_run(
            bin,
            &["--iterations", "12", "--interval-us", "1000"],
            &[
                "--json",
                "--log",
                "recurse@entry",
                "in {n} {$rsp}",
                "--log",
                "recurse@return",
                "out {$rsp}",
            ],
        );
        assert_eq!(run.code, Some(0), "{bin}: {:?}", run.stderr);
        // recurse(seq % 4) runs seq % 4 + 1 frames.
        let frames: usize = (0..12).map(|s| s % 4 + 1).sum();
        let mut stack: Vec<(i64, String)> = Vec::new();
        let (mut entries, mut returns) = (0, 0);
        for h in &run.hits {
            let msg = h["message"].as_str().unwrap();
            let words: Vec<&str> = msg.split_whitespace().collect();
            match words.as_slice() {
                ["in", n, sp] => {
                    entries += 1;
                    stack.push((n.parse().unwrap(), sp.to_string()));
                }
                ["out", sp] => {
                    returns += 1;
                    let (n, entry_sp) = stack
                        .pop()
                        .unwrap_or_else(|| panic!("{bin}: a return without an entry"));
                    assert_eq!(
                        &entry_sp, sp,
                        "{bin}: the frame of recurse({n}) returned with another sp"
                    );
                }
                _ => panic!("{bin}: {msg}"),
            }
        }
        assert_eq!(
            (entries, returns),
            (frames, frames),
            "{bin}: {:?}",
            run.stderr
        );
        assert!(stack.is_empty());
        // Every return instruction of the function is a site (two at -O2: the early one too).
        let planted = run
            .stderr
            .iter()
            .find(|l| l.contains("recurse@return"))
            .unwrap();
        assert!(planted.contains("site(s)"), "{planted}");
    }
}

#[test]
fn a_function_without_a_size_or_unknown_says_what_to_do() {
    require_ptrace();
    let target = Target::spawn("exprs-O0", &["--interval-us", "1000"]);
    let (code, _, stderr) = scry_tests::scry::run_scry(
        &[
            "attach",
            "--pid",
            &target.pid().to_string(),
            "--log",
            "no_such_fn@return",
            "x",
        ],
        std::time::Duration::from_secs(20),
    );
    assert_ne!(code, 0);
    assert!(stderr.join("\n").contains("no_such_fn"), "{stderr:?}");
    let (code, _, stderr) = scry_tests::scry::run_scry(
        &[
            "attach",
            "--pid",
            &target.pid().to_string(),
            "--log",
            "recurse@exit",
            "x",
        ],
        std::time::Duration::from_secs(20),
    );
    assert_ne!(code, 0);
    assert!(stderr.join("\n").contains("`entry`"), "{stderr:?}");
}
