//! Governance commands: tokens, the audit trail, redaction rules, the blocklist and the kill
//! switch (docs/security.md). Same options, output and exit codes as the other client
//! commands (client.rs).

use crate::client::{ServerOpts, print_json};
use anyhow::{Result, bail};
use clap::{Subcommand, ValueEnum};
use scry_server::api::{
    AuditEntry, BlockKind, BlockRule, CreatedToken, NewBlockRule, NewRedactionRule, NewToken,
    RedactionKind, RedactionRule, Role, TokenInfo,
};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    Admin,
    Developer,
    Viewer,
    Agent,
}

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Create a token (its secret is printed once).
    Create {
        #[arg(long)]
        role: RoleArg,
        /// Scope: agents whose tags include this (repeatable).
        #[arg(long = "tag", value_name = "K=V")]
        tags: Vec<String>,
        /// Expires after this long: 90s, 30m, 12h, 30d.
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
        /// Who it is for.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List the tokens (never their secrets).
    List,
    /// Revoke a token.
    Revoke { id: String },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RedactKindArg {
    /// A variable or field name containing PATTERN (case-insensitive).
    Name,
    /// Text matching PATTERN (a regular expression).
    Value,
}

#[derive(Subcommand, Debug)]
pub enum RedactCmd {
    /// Add a rule; agents apply it within seconds.
    Add {
        kind: RedactKindArg,
        pattern: String,
    },
    /// List the rules (built-in ones included).
    List,
    /// Remove a rule.
    Rm { id: String },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum BlockKindArg {
    Path,
    Function,
    Module,
}

#[derive(Subcommand, Debug)]
pub enum BlocklistCmd {
    /// Block probes on a source path, function or module (glob), or allow an exception.
    Add {
        kind: BlockKindArg,
        pattern: String,
        /// An exception to the other rules.
        #[arg(long)]
        allow: bool,
    },
    List,
    Rm {
        id: String,
    },
}

fn duration_secs(text: &str) -> Result<u64> {
    let (num, unit) = text.split_at(
        text.trim_end_matches(|c: char| c.is_ascii_alphabetic())
            .len(),
    );
    let mult = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => bail!("--expires takes 90s, 30m, 12h or 30d, not {text:?}"),
    };
    match num.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n * mult),
        _ => bail!("--expires takes 90s, 30m, 12h or 30d, not {text:?}"),
    }
}

pub fn token(opts: &ServerOpts, cmd: &TokenCmd) -> Result<()> {
    let client = opts.client();
    match cmd {
        TokenCmd::Create {
            role,
            tags,
            expires,
            name,
        } => {
            let mut scope = BTreeMap::new();
            for kv in tags {
                let Some((k, v)) = kv.split_once('=') else {
                    bail!("--tag takes KEY=VALUE, not {kv:?}");
                };
                scope.insert(k.to_string(), v.to_string());
            }
            let req = NewToken {
                role: match role {
                    RoleArg::Admin => Role::Admin,
                    RoleArg::Developer => Role::Developer,
                    RoleArg::Viewer => Role::Viewer,
                    RoleArg::Agent => Role::Agent,
                },
                tags: scope,
                expires_secs: expires.as_deref().map(duration_secs).transpose()?,
                name: name.clone(),
            };
            let created: CreatedToken = client.post("/v1/tokens", &req)?;
            if opts.json {
                print_json(&created);
            } else {
                println!("{}", created.token);
                eprintln!(
                    "token {} ({:?}) created; the secret above is shown this once",
                    created.info.id, created.info.role
                );
            }
        }
        TokenCmd::List => {
            let list: Vec<TokenInfo> = client.get("/v1/tokens")?;
            if opts.json {
                print_json(&list);
            } else {
                println!(
                    "{:<10} {:<10} {:<20} {:<26} {:<26} STATE",
                    "ID", "ROLE", "NAME", "CREATED", "EXPIRES"
                );
                for t in list {
                    println!(
                        "{:<10} {:<10} {:<20} {:<26} {:<26} {}",
                        t.id,
                        format!("{:?}", t.role).to_lowercase(),
                        t.name,
                        t.created_at,
                        t.expires_at.clone().unwrap_or_else(|| "never".into()),
                        if t.revoked_at.is_some() {
                            "revoked"
                        } else {
                            "valid"
                        }
                    );
                }
            }
        }
        TokenCmd::Revoke { id } => {
            client.delete(&format!("/v1/tokens/{id}"))?;
            println!("revoked {id}");
        }
    }
    Ok(())
}

pub fn audit(opts: &ServerOpts, since: Option<&str>, limit: u64) -> Result<()> {
    let mut path = format!("/v1/audit?limit={limit}");
    if let Some(s) = since {
        path.push_str(&format!("&since={s}"));
    }
    let list: Vec<AuditEntry> = opts.client().get(&path)?;
    for e in list {
        if opts.json {
            // JSON lines: the export format.
            print_json(&e);
        } else {
            println!(
                "{} {:<18} {:<6} {:<28} {:<10} {} {}",
                e.time, e.principal, e.method, e.path, e.target, e.status, e.detail
            );
        }
    }
    Ok(())
}

pub fn redact(opts: &ServerOpts, cmd: &RedactCmd) -> Result<()> {
    let client = opts.client();
    match cmd {
        RedactCmd::Add { kind, pattern } => {
            let rule: RedactionRule = client.post(
                "/v1/redactions",
                &NewRedactionRule {
                    kind: match kind {
                        RedactKindArg::Name => RedactionKind::Name,
                        RedactKindArg::Value => RedactionKind::Value,
                    },
                    pattern: pattern.clone(),
                },
            )?;
            if opts.json {
                print_json(&rule);
            } else {
                println!("{} {:?} {}", rule.id, rule.kind, rule.pattern);
            }
        }
        RedactCmd::List => {
            let list: Vec<RedactionRule> = client.get("/v1/redactions")?;
            if opts.json {
                print_json(&list);
            } else {
                for r in list {
                    println!(
                        "{:<22} {:<11} {}{}",
                        r.id,
                        format!("{:?}", r.kind).to_lowercase(),
                        r.pattern,
                        if r.builtin { "  (built-in)" } else { "" }
                    );
                }
            }
        }
        RedactCmd::Rm { id } => {
            client.delete(&format!("/v1/redactions/{id}"))?;
            println!("removed {id}");
        }
    }
    Ok(())
}

pub fn blocklist(opts: &ServerOpts, cmd: &BlocklistCmd) -> Result<()> {
    let client = opts.client();
    match cmd {
        BlocklistCmd::Add {
            kind,
            pattern,
            allow,
        } => {
            let rule: BlockRule = client.post(
                "/v1/blocklist",
                &NewBlockRule {
                    kind: match kind {
                        BlockKindArg::Path => BlockKind::Path,
                        BlockKindArg::Function => BlockKind::Function,
                        BlockKindArg::Module => BlockKind::Module,
                    },
                    pattern: pattern.clone(),
                    allow: *allow,
                },
            )?;
            if opts.json {
                print_json(&rule);
            } else {
                println!(
                    "{} {:?} {}{}",
                    rule.id,
                    rule.kind,
                    rule.pattern,
                    if rule.allow { " (allow)" } else { "" }
                );
            }
        }
        BlocklistCmd::List => {
            let list: Vec<BlockRule> = client.get("/v1/blocklist")?;
            if opts.json {
                print_json(&list);
            } else {
                for r in list {
                    println!(
                        "{:<10} {:<9} {}{}",
                        r.id,
                        format!("{:?}", r.kind).to_lowercase(),
                        r.pattern,
                        if r.allow { "  (allow)" } else { "" }
                    );
                }
            }
        }
        BlocklistCmd::Rm { id } => {
            client.delete(&format!("/v1/blocklist/{id}"))?;
            println!("removed {id}");
        }
    }
    Ok(())
}

/// The kill switch: `on` detaches every agent, `off` lets them attach again.
pub fn kill_switch(opts: &ServerOpts, on: bool) -> Result<()> {
    let path = if on {
        "/v1/detach-all"
    } else {
        "/v1/attach-all"
    };
    let _: serde_json::Value = opts.client().post(path, &serde_json::json!({}))?;
    println!(
        "{}",
        if on {
            "every agent unplants every probe and detaches (within a second); `scry attach-all` undoes it"
        } else {
            "agents attach again and restore their actions"
        }
    );
    Ok(())
}
