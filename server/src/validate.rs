//! Checks of what clients and agents send, before it is stored: each refusal says what to
//! fix, and a limit's refusal names the limit and the value.
//!
//! | limit | value | refusal |
//! |---|---|---|
//! | request body | 8 MiB | 413 |
//! | template | 4 KiB | 400 |
//! | location, end location, condition, each watch | 1 KiB | 400 |
//! | nesting of parentheses and brackets in an expression or template | 32 | 400 |
//! | watches per action | 32 | 400 |
//! | tags per agent, token or action target | 32 | 400 |
//! | agents named in an action's target | 1,000 | 400 |
//! | actions targeting one agent | 200 | 409 (when the 201st is created) |
//! | events per batch (log lines + snapshots + metric samples) | 5,000 | 413 |
//! | a token's name | 256 bytes | 400 |
//! | a redaction or blocklist pattern | 1 KiB | 400 |

use crate::api::{ActionKind, EventBatch, MetricKind, NewAction, NewBlockRule, NewToken};
use crate::error::HttpError;
use hyper::StatusCode;
use std::collections::BTreeMap;

/// Longest template, in bytes.
pub const MAX_TEMPLATE: usize = 4096;
/// Longest location, condition or watch expression, in bytes.
pub const MAX_EXPRESSION: usize = 1024;
/// Deepest nesting of parentheses and brackets.
pub const MAX_DEPTH: usize = 32;
/// Most watches per action.
pub const MAX_WATCHES: usize = 32;
/// Most tags per agent, token or target.
pub const MAX_TAGS: usize = 32;
/// Most agents named in a target.
pub const MAX_TARGET_AGENTS: usize = 1000;
/// Most events (log lines, snapshots, metric samples together) in one upload.
pub const MAX_BATCH_EVENTS: usize = 5000;
/// Longest token name, in bytes.
pub const MAX_TOKEN_NAME: usize = 256;
/// Longest token lifetime asked for, in seconds (100 years).
pub const MAX_TOKEN_SECS: u64 = 100 * 365 * 24 * 3600;

/// The deepest nesting of `(`/`)` and `[`/`]` in a text.
pub fn depth(s: &str) -> usize {
    let (mut d, mut max) = (0usize, 0usize);
    for c in s.chars() {
        match c {
            '(' | '[' => {
                d += 1;
                max = max.max(d);
            }
            ')' | ']' => d = d.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fn text_limit(field: &str, s: &str, max: usize) -> Result<(), HttpError> {
    if s.len() > max {
        return Err(HttpError::bad_request(
            format!("{field} too long"),
            format!(
                "{field} is {} bytes, the limit is {max}; shorten it",
                s.len()
            ),
        ));
    }
    let d = depth(s);
    if d > MAX_DEPTH {
        return Err(HttpError::bad_request(
            format!("{field} nested too deeply"),
            format!(
                "{field} nests parentheses or brackets {d} deep, the limit is {MAX_DEPTH}; simplify it"
            ),
        ));
    }
    Ok(())
}

/// Refuses more than [`MAX_TAGS`] tags, or an empty tag name.
pub fn tags(tags: &BTreeMap<String, String>, field: &str) -> Result<(), HttpError> {
    if tags.len() > MAX_TAGS {
        return Err(HttpError::bad_request(
            format!("too many tags in {field}"),
            format!("{field} has {} tags, the limit is {MAX_TAGS}", tags.len()),
        ));
    }
    if tags.keys().any(|k| k.trim().is_empty()) {
        return Err(HttpError::bad_request(
            format!("empty tag name in {field}"),
            format!(
                "\"{field}\" maps tag names to values, e.g. {{\"service\": \"orders\"}}; remove the empty name"
            ),
        ));
    }
    Ok(())
}

/// Refuses an upload of more than [`MAX_BATCH_EVENTS`] events (413).
pub fn batch(b: &EventBatch) -> Result<(), HttpError> {
    let n = b.logs.len() + b.snapshots.len() + b.metrics.len();
    if n > MAX_BATCH_EVENTS {
        return Err(HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too many events in one batch",
            format!(
                "the batch has {n} events, the limit is {MAX_BATCH_EVENTS} per upload; send them in smaller batches"
            ),
        ));
    }
    Ok(())
}

/// Refuses a token request with too many tags, too long a name, or a lifetime of 0 or
/// past [`MAX_TOKEN_SECS`].
pub fn new_token(t: &NewToken) -> Result<(), HttpError> {
    tags(&t.tags, "tags")?;
    if t.name.len() > MAX_TOKEN_NAME {
        return Err(HttpError::bad_request(
            "token name too long",
            format!(
                "name is {} bytes, the limit is {MAX_TOKEN_NAME}",
                t.name.len()
            ),
        ));
    }
    match t.expires_secs {
        Some(0) => Err(HttpError::bad_request(
            "expires_secs is 0",
            "a token that expires at once is of no use; give the seconds it lasts, or leave \"expires_secs\" out for a token that does not expire",
        )),
        Some(s) if s > MAX_TOKEN_SECS => Err(HttpError::bad_request(
            "expires_secs too large",
            format!(
                "expires_secs is {s}, the limit is {MAX_TOKEN_SECS} (100 years); leave it out for a token that does not expire"
            ),
        )),
        _ => Ok(()),
    }
}

/// Refuses a blocklist rule with an empty or too long pattern.
pub fn block_rule(r: &NewBlockRule) -> Result<(), HttpError> {
    if r.pattern.trim().is_empty() {
        return Err(HttpError::bad_request(
            "empty pattern",
            "give a glob in \"pattern\" (`*` any run, `?` one character), e.g. \"*password*\"",
        ));
    }
    if r.pattern.len() > crate::redact::MAX_PATTERN {
        return Err(HttpError::bad_request(
            "pattern too long",
            format!(
                "the pattern is {} bytes, the limit is {}",
                r.pattern.len(),
                crate::redact::MAX_PATTERN
            ),
        ));
    }
    Ok(())
}

/// Refuses an action whose fields do not fit together or pass a limit, with a 400 saying
/// how to fix it.
pub fn new_action(a: &NewAction) -> Result<(), HttpError> {
    let bad = |error: &str, detail: &str| Err(HttpError::bad_request(error, detail));
    text_limit("template", &a.template, MAX_TEMPLATE)?;
    text_limit("location", &a.location, MAX_EXPRESSION)?;
    if let Some(e) = &a.end_location {
        text_limit("end_location", e, MAX_EXPRESSION)?;
    }
    if let Some(c) = &a.condition {
        text_limit("condition", c, MAX_EXPRESSION)?;
    }
    if a.watches.len() > MAX_WATCHES {
        return Err(HttpError::bad_request(
            "too many watches",
            format!(
                "the action has {} watches, the limit is {MAX_WATCHES}",
                a.watches.len()
            ),
        ));
    }
    for w in &a.watches {
        text_limit("watch", w, MAX_EXPRESSION)?;
    }
    tags(&a.target.tags, "target.tags")?;
    if a.target.agents.len() > MAX_TARGET_AGENTS {
        return Err(HttpError::bad_request(
            "too many agents in target",
            format!(
                "target.agents names {} agents, the limit is {MAX_TARGET_AGENTS}; target them by tags instead",
                a.target.agents.len()
            ),
        ));
    }
    if a.location.trim().is_empty() {
        return bad(
            "location is empty",
            "set \"location\" to where the action applies: \"file.c:42\", \"function\" or \"lib.so:file.c:42\"",
        );
    }
    match (a.kind, a.metric) {
        (ActionKind::Metric, None) => {
            return bad(
                "metric action without a metric kind",
                "a \"kind\": \"metric\" action needs \"metric\": one of \"counter\", \"tictoc\", \"duration\", \"value\"",
            );
        }
        (ActionKind::Log | ActionKind::Snapshot, Some(_)) => {
            return bad(
                "metric kind on a non-metric action",
                "\"metric\" is only for \"kind\": \"metric\"; remove it, or set \"kind\": \"metric\"",
            );
        }
        _ => {}
    }
    let end = a.end_location.as_deref().map(str::trim).unwrap_or("");
    if a.metric == Some(MetricKind::Tictoc) {
        if end.is_empty() {
            return bad(
                "tictoc metric without an end location",
                "a \"tictoc\" metric measures from \"location\" (tic) to \"end_location\" (toc) on the same thread; set \"end_location\", e.g. \"file.c:80\"",
            );
        }
    } else if a.end_location.is_some() {
        return bad(
            "end_location on an action that is not a tictoc metric",
            "\"end_location\" is only for \"metric\": \"tictoc\"; remove it (a \"duration\" metric finds the function's returns by itself)",
        );
    }
    if a.metric == Some(MetricKind::Value) && a.template.trim().is_empty() {
        return bad(
            "value metric without an expression",
            "a \"value\" metric records an expression's numeric value: put the expression in \"template\", e.g. \"req->len\"",
        );
    }
    if a.condition.as_deref().is_some_and(|c| c.trim().is_empty()) {
        return bad(
            "empty condition",
            "remove \"condition\", or give an expression such as \"n > 3\"",
        );
    }
    if a.watches.iter().any(|w| w.trim().is_empty()) {
        return bad(
            "empty watch expression",
            "every entry of \"watches\" must be an expression; remove the empty ones",
        );
    }
    if a.target.agents.iter().any(|id| id.trim().is_empty()) {
        return bad(
            "empty agent id in target",
            "\"target.agents\" lists agent ids as GET /v1/agents shows them; remove the empty ones",
        );
    }
    if a.target.tags.keys().any(|k| k.trim().is_empty()) {
        return bad(
            "empty tag name in target",
            "\"target.tags\" maps tag names to values, e.g. {\"service\": \"orders\"}; remove the empty name",
        );
    }
    for (name, v) in [
        ("lines_per_sec", a.quota.lines_per_sec),
        ("bytes_per_sec", a.quota.bytes_per_sec),
    ] {
        if let Some(v) = v.filter(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(HttpError::bad_request(
                format!("quota.{name} must be a positive number"),
                format!("got {v}; give a rate above 0, or leave \"{name}\" out for the default"),
            ));
        }
    }
    if a.quota.max_hits == Some(0) {
        return bad(
            "quota.max_hits is 0",
            "an action that may never hit does nothing; give at least 1, or leave \"max_hits\" out for the default",
        );
    }
    Ok(())
}
