//! Checks of a new action before it is stored: each refusal says what to fix.

use crate::api::{ActionKind, MetricKind, NewAction};
use crate::error::HttpError;

/// Refuses an action whose fields do not fit together, with a 400 saying how to fix it.
pub fn new_action(a: &NewAction) -> Result<(), HttpError> {
    let bad = |error: &str, detail: &str| Err(HttpError::bad_request(error, detail));
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
