//! `scry demo`: the three tiers in one command, on a program bundled into scry.
//!
//! Builds the bundled `loop.c` with the system C compiler and starts it; starts a management
//! server (`scry server`, SQLite in a temporary directory) and an agent (`scry agent`)
//! attached to the program; adds a log point, a snapshot and a counter through the server's
//! API, exactly as `scry log add` & co. do; shows them arriving; removes them; stops the agent
//! and shows the program kept running, untraced. Cleans up everything it started.

use crate::http::Client;
use anyhow::{Context, Result, bail};
use clap::Args;
use scry_server::api::{
    Action, ActionKind, Agent, LogLine, MetricKind, MetricSeries, NewAction, SnapshotSummary,
    StoredSnapshot, Target,
};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// How long to show log lines arriving.
    #[arg(long, default_value_t = 3.0, value_name = "SECS")]
    pub duration: f64,
}

/// Everything the demo started, stopped and removed on the way out, whatever happens.
pub(crate) struct Cleanup {
    pub dir: std::path::PathBuf,
    pub children: Vec<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            // SIGTERM first: the agent detaches cleanly, the server commits and stops.
            // SAFETY: kill(2) of our own child process.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reads `child`'s stderr until every one of `needles` has appeared in some line; returns the
/// lines read (the rest of its stderr is drained in the background).
fn wait_lines(child: &mut Child, needles: &[&str], timeout: Duration) -> Result<Vec<String>> {
    let stderr = child.stderr.take().context("no stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        seen.push(line);
        if needles.iter().all(|n| seen.iter().any(|l| l.contains(n))) {
            std::thread::spawn(move || while rx.recv().is_ok() {});
            return Ok(seen);
        }
    }
    bail!("timed out waiting for {needles:?}; saw {seen:?}")
}

fn action(
    kind: ActionKind,
    metric: Option<MetricKind>,
    location: &str,
    template: &str,
) -> NewAction {
    let mut tags = std::collections::BTreeMap::new();
    tags.insert("app".to_string(), "demo".to_string());
    NewAction {
        kind,
        metric,
        location: location.to_string(),
        end_location: None,
        template: template.to_string(),
        condition: None,
        watches: if kind == ActionKind::Snapshot {
            vec!["o->qty * o->price".into()]
        } else {
            Vec::new()
        },
        target: Target {
            agents: Vec::new(),
            tags,
        },
        quota: Default::default(),
    }
}

/// A server started for the demo (or the bench): where, a client with its admin token, and
/// a token for agents.
pub(crate) struct LocalServer {
    pub url: String,
    pub client: Client,
    pub agent_token: String,
}

/// Starts `scry server` on a fresh data directory under `dir` (port 0), reads where it
/// listens and its first admin token from its stderr, and makes an agent token.
pub(crate) fn start_server(
    exe: &std::path::Path,
    dir: &std::path::Path,
    cleanup: &mut Cleanup,
) -> Result<LocalServer> {
    let mut server = Command::new(exe)
        .args(["server", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting scry server")?;
    // A new data directory: the server prints its first admin token, once.
    let lines = wait_lines(
        &mut server,
        &["listening on", "scry_"],
        Duration::from_secs(30),
    );
    cleanup.children.push(server);
    let lines = lines?;
    let word = |prefix: &str| {
        lines
            .iter()
            .flat_map(|l| l.split_whitespace())
            .find(|w| w.starts_with(prefix))
            .map(str::to_string)
    };
    let url = word("http://").context("the server did not say where it listens")?;
    let admin = word("scry_").context("the server printed no admin token")?;
    let client = Client::new(&url, Some(admin), Duration::from_secs(30));
    let agent_token: scry_server::api::CreatedToken = client.post(
        "/v1/tokens",
        &scry_server::api::NewToken {
            role: scry_server::api::Role::Agent,
            tags: Default::default(),
            expires_secs: Some(3600),
            name: "local agent".into(),
        },
    )?;
    Ok(LocalServer {
        url,
        client,
        agent_token: agent_token.token,
    })
}

/// Starts `scry agent` on `pid` with tag `tag`; returns once it has registered.
pub(crate) fn start_agent(
    exe: &std::path::Path,
    url: &str,
    token: &str,
    pid: i32,
    tag: &str,
    cleanup: &mut Cleanup,
) -> Result<()> {
    let mut agent = Command::new(exe)
        .args([
            "agent",
            "--server",
            url,
            "--pid",
            &pid.to_string(),
            "--tag",
            tag,
        ])
        .env("SCRY_TOKEN", token)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting scry agent")?;
    let registered = wait_lines(&mut agent, &["registered with"], Duration::from_secs(30));
    cleanup.children.push(agent);
    registered.map(|_| ())
}

pub fn run(args: DemoArgs) -> Result<ExitCode> {
    let dir = std::env::temp_dir().join(format!("scry-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut cleanup = Cleanup {
        dir: dir.clone(),
        children: Vec::new(),
    };
    let exe = std::env::current_exe().context("finding the scry executable")?;
    println!("1. building the bundled program: cc -g -O0 loop.c -o loop-O0");
    let bin = crate::bundled::build(&dir, "-O0")?;

    println!(
        "2. starting the management server: scry server --listen 127.0.0.1:0 --data {}/data",
        dir.display()
    );
    let LocalServer {
        url,
        client,
        agent_token,
    } = start_server(&exe, &dir, &mut cleanup)?;
    println!("   listening on {url}; its first admin token was printed once (used below)");

    println!("3. starting the program: ./loop --interval-us 100000 (10 orders a second)");
    let mut program = Command::new(&bin)
        .args(["--interval-us", "100000"])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the demo program")?;
    let pid = program.id() as i32;
    let mut ready = String::new();
    BufReader::new(program.stdout.take().context("no stdout")?).read_line(&mut ready)?;
    cleanup.children.insert(0, program);
    println!("   running as pid {pid}");

    println!(
        "4. starting an agent on it with an agent token: scry agent --server {url} --token … --pid {pid} --tag app=demo"
    );
    start_agent(&exe, &url, &agent_token, pid, "app=demo", &mut cleanup)?;
    let agents: Vec<Agent> = client.get("/v1/agents")?;
    for a in &agents {
        println!(
            "   agent {} on {} attached to pid {} ({}), status {}",
            a.id,
            a.host,
            a.pid,
            a.executable.rsplit('/').next().unwrap_or(""),
            a.status
        );
    }

    let location = crate::bundled::probe_location()?;
    let template = "order {o->id} qty={o->qty} for {name}";
    println!("5. adding actions for every agent tagged app=demo:");
    println!("   scry log add {location} '{template}' --tag app=demo");
    let log: Action = client.post(
        "/v1/actions",
        &action(ActionKind::Log, None, &location, template),
    )?;
    println!("   scry snapshot add {location} --watch 'o->qty * o->price' --tag app=demo");
    let snap: Action = client.post(
        "/v1/actions",
        &action(ActionKind::Snapshot, None, &location, ""),
    )?;
    println!("   scry metric add counter process_order --tag app=demo");
    let counter: Action = client.post(
        "/v1/actions",
        &action(
            ActionKind::Metric,
            Some(MetricKind::Counter),
            "process_order",
            "",
        ),
    )?;
    println!("   → {}, {}, {}", log.id, snap.id, counter.id);

    println!(
        "6. log lines arriving (scry logs --follow), for {} s:",
        args.duration
    );
    let until = Instant::now() + Duration::from_secs_f64(args.duration);
    let mut after = 0u64;
    let mut lines = 0;
    while Instant::now() < until {
        let page: Vec<LogLine> = client.get(&format!(
            "/v1/logs?action={}&after={after}&limit=100&wait=1",
            log.id
        ))?;
        for l in page {
            after = after.max(l.seq);
            lines += 1;
            println!("   {} [tid {}] {}", l.location, l.tid, l.message);
        }
    }
    if lines == 0 {
        bail!("no log line arrived: the agent's log: see the states with `scry actions`");
    }
    let snaps: Vec<SnapshotSummary> = client.get(&format!("/v1/snapshots?action={}", snap.id))?;
    match snaps.first() {
        Some(s) => {
            let full: StoredSnapshot = client.get(&format!("/v1/snapshots/{}", s.id))?;
            println!("7. the snapshot (scry snapshot show {}): {}", s.id, s.top);
            if let Some(f) = full.snapshot["frames"].get(0) {
                for v in f["args"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .chain(f["locals"].as_array().into_iter().flatten())
                {
                    println!("     {} = {}", v["name"].as_str().unwrap_or(""), v["value"]);
                }
            }
            for w in full.snapshot["watches"].as_array().into_iter().flatten() {
                println!(
                    "     watch {} = {}",
                    w["name"].as_str().unwrap_or(""),
                    w["value"]
                );
            }
        }
        None => println!("7. no snapshot yet (it is taken at the next hit)"),
    }
    // Counters are flushed by the agent every second.
    std::thread::sleep(Duration::from_millis(1200));
    let metrics: Vec<MetricSeries> = client.get("/v1/metrics")?;
    for m in metrics.iter().filter(|m| m.action_id == counter.id) {
        println!(
            "8. the counter (scry metrics): process_order ran {} times while probed",
            m.count
        );
    }

    println!("9. removing the actions (scry action rm …); their probes are unplanted");
    for a in [&log, &snap, &counter] {
        client.delete(&format!("/v1/actions/{}", a.id))?;
    }
    // Lines already on their way arrive; then nothing more may come.
    std::thread::sleep(Duration::from_millis(1000));
    loop {
        let page: Vec<LogLine> = client.get(&format!("/v1/logs?after={after}&limit=1000"))?;
        match page.last() {
            Some(l) => after = l.seq,
            None => break,
        }
    }
    std::thread::sleep(Duration::from_millis(1000));
    let page: Vec<LogLine> = client.get(&format!("/v1/logs?after={after}&limit=100"))?;
    println!(
        "   {} new line(s) in the second after the removal; the program made 10 calls meanwhile",
        page.len()
    );

    println!("10. stopping the agent: it detaches, restoring every byte");
    if let Some(mut agent) = cleanup.children.pop() {
        // SAFETY: kill(2) of our own child process.
        unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
        let _ = agent.wait();
    }
    std::thread::sleep(Duration::from_millis(300));
    let status = scry_tracer::procfs::read_status(pid)
        .context("the demo program is gone after the agent detached")?;
    println!(
        "11. the program runs on: pid {pid} state {} ({}), tracer pid {} (0 = nobody)",
        status.state,
        match status.state {
            'S' => "sleeping between orders",
            'R' => "running",
            _ => "?",
        },
        status.tracer_pid
    );
    if status.tracer_pid != 0 || matches!(status.state, 'T' | 't' | 'Z') {
        bail!(
            "the demo program is not running freely after detach (state {})",
            status.state
        );
    }
    println!(
        "12. stopping the program and the server, removing {}",
        dir.display()
    );
    drop(cleanup);
    Ok(ExitCode::SUCCESS)
}
