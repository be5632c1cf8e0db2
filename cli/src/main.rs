//! `scry`: the one binary. For now: `scry attach` (one-shot local log points) and `scry demo`.

mod admin;
mod agent;
mod attach;
mod bench;
mod bundled;
mod client;
mod demo;
mod http;
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
    /// Run the management server (agents, actions, events; SQLite in --data).
    Server(ServerArgs),
    /// Attach to a process and keep its probes in line with the management server.
    Agent(agent::AgentArgs),
    /// List the agents the server knows.
    Agents(client::ServerOpts),
    /// Log points: `scry log add LOC TEMPLATE`.
    Log {
        #[command(flatten)]
        opts: client::ServerOpts,
        #[command(subcommand)]
        cmd: client::LogCmd,
    },
    /// Snapshot points: `scry snapshot add LOC`, `scry snapshot show ID`.
    Snapshot {
        #[command(flatten)]
        opts: client::ServerOpts,
        #[command(subcommand)]
        cmd: client::SnapshotCmd,
    },
    /// Metrics: `scry metric add counter|tictoc|duration|value LOC`.
    Metric {
        #[command(flatten)]
        opts: client::ServerOpts,
        #[command(subcommand)]
        cmd: client::MetricCmd,
    },
    /// List the actions and their state on each agent.
    Actions(client::ServerOpts),
    /// `scry action rm ID`.
    Action {
        #[command(flatten)]
        opts: client::ServerOpts,
        #[command(subcommand)]
        cmd: client::ActionCmd,
    },
    /// Log lines (`--follow` to keep printing them).
    Logs {
        #[command(flatten)]
        opts: client::ServerOpts,
        #[command(flatten)]
        args: client::LogsArgs,
    },
    /// Snapshots taken.
    Snapshots {
        #[command(flatten)]
        opts: client::ServerOpts,
        #[command(flatten)]
        args: client::SnapshotsArgs,
    },
    /// Metric values.
    Metrics(client::ServerOpts),
    /// Tokens: `scry token create --role developer --tag env=prod`, `list`, `revoke ID`.
    Token {
        #[command(flatten)]
        opts: client::ServerOpts,
        #[command(subcommand)]
        cmd: admin::TokenCmd,
    },
    /// The audit trail (`--json`: JSON lines, the export format).
    Audit {
        #[command(flatten)]
        opts: client::ServerOpts,
        /// Entries since this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: u64,
    },
    /// PII redaction rules: `scry redact add name password`, `add value 'ssn-\d+'`, `list`, `rm ID`.
    Redact {
        #[command(flatten)]
        opts: client::ServerOpts,
        #[command(subcommand)]
        cmd: admin::RedactCmd,
    },
    /// Where no probe may be set: `scry blocklist add function '*password*'`, `list`, `rm ID`.
    Blocklist {
        #[command(flatten)]
        opts: client::ServerOpts,
        #[command(subcommand)]
        cmd: admin::BlocklistCmd,
    },
    /// Kill switch: every agent unplants every probe and detaches.
    DetachAll(client::ServerOpts),
    /// Undo detach-all.
    AttachAll(client::ServerOpts),
}

/// `scry server [--listen ADDR] [--data DIR] [--tls-cert F --tls-key F] [--insecure-listen]`.
#[derive(clap::Args, Debug)]
struct ServerArgs {
    /// Address to listen on. Plain HTTP binds only to loopback; anything else needs
    /// --tls-cert/--tls-key (or --insecure-listen, explicitly).
    #[arg(long, default_value = "127.0.0.1:7070")]
    listen: std::net::SocketAddr,
    /// Where the SQLite database lives (created if missing).
    #[arg(long, default_value = "./scry-data")]
    data: std::path::PathBuf,
    /// Serve HTTPS with this certificate chain (PEM) …
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// … and this private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Allow plain HTTP on a non-loopback address (tokens then cross the network in clear).
    #[arg(long)]
    insecure_listen: bool,
    /// Create an admin token in --data, print it once, and exit.
    #[arg(long)]
    init_admin: bool,
}

fn run_server(args: ServerArgs) -> anyhow::Result<ExitCode> {
    if args.init_admin {
        let token = scry_server::init_admin(&args.data)?;
        println!("{token}");
        eprintln!(
            "an admin token for {} (shown this once)",
            args.data.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut config = scry_server::ServerConfig::new(args.listen, args.data);
    config.insecure_listen = args.insecure_listen;
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        config.tls = Some(scry_server::TlsFiles { cert, key });
    }
    scry_server::run_blocking(config)?;
    Ok(ExitCode::SUCCESS)
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
        Command::Server(args) => run_server(args),
        Command::Agent(args) => agent::run(args),
        Command::Agents(opts) => return client::exit_code(client::agents(&opts)),
        Command::Log { opts, cmd } => return client::exit_code(client::log(&opts, &cmd)),
        Command::Snapshot { opts, cmd } => {
            return client::exit_code(client::snapshot(&opts, &cmd));
        }
        Command::Metric { opts, cmd } => return client::exit_code(client::metric(&opts, &cmd)),
        Command::Actions(opts) => return client::exit_code(client::actions(&opts)),
        Command::Action { opts, cmd } => return client::exit_code(client::action(&opts, &cmd)),
        Command::Logs { opts, args } => return client::exit_code(client::logs(&opts, &args)),
        Command::Snapshots { opts, args } => {
            return client::exit_code(client::snapshots(&opts, &args));
        }
        Command::Metrics(opts) => return client::exit_code(client::metrics(&opts)),
        Command::Token { opts, cmd } => return client::exit_code(admin::token(&opts, &cmd)),
        Command::Audit { opts, since, limit } => {
            return client::exit_code(admin::audit(&opts, since.as_deref(), limit));
        }
        Command::Redact { opts, cmd } => return client::exit_code(admin::redact(&opts, &cmd)),
        Command::Blocklist { opts, cmd } => {
            return client::exit_code(admin::blocklist(&opts, &cmd));
        }
        Command::DetachAll(opts) => return client::exit_code(admin::kill_switch(&opts, true)),
        Command::AttachAll(opts) => return client::exit_code(admin::kill_switch(&opts, false)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("scry: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
