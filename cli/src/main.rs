//! `scry`: the one binary. For now: `scry attach` (one-shot local log points) and `scry demo`.

mod attach;
mod bench;
mod demo;
mod output;
mod signals;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// scry: a live debugger for running native Linux programs.
#[derive(Parser)]
#[command(name = "scry", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Attach to a running process (or start one) and print log lines at source locations.
    Attach(attach::AttachArgs),
    /// Build a bundled program, start it, attach, log for a few seconds, detach, show it runs on.
    Demo(demo::DemoArgs),
    /// Measure what probes cost a hot loop, side by side with the baseline and gdb.
    Bench(bench::BenchArgs),
}

/// Exit codes (documented in README.md):
/// 0 clean end (duration, max hits, signal, target exit); 1 error (attach, probe, target);
/// 2 usage error (from clap); 3 detach reported a problem.
fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Attach(args) => attach::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("scry: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
