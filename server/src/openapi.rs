//! The OpenAPI 3.0 document of the server (`GET /v1/openapi.json`), written by hand from
//! [`crate::api`]. A test checks that its paths and methods are exactly [`crate::routes::ROUTES`].

use serde_json::{Value, json};

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn arr(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}

fn body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

fn answers(description: &str, schema: Value, errors: &[&str]) -> Value {
    let mut m = serde_json::Map::new();
    m.insert(
        "200".into(),
        json!({ "description": description, "content": { "application/json": { "schema": schema } } }),
    );
    for code in errors {
        let what = match *code {
            "400" => "bad input: the detail says what to fix",
            "404" => "no such agent, action, snapshot, token or rule",
            "409" => "a limit of the server's state: 200 actions per agent",
            "413" => "request body over 8 MiB, or more than 5,000 events in one batch",
            "422" => "refused by the blocklist: the detail names the rule",
            _ => "error",
        };
        m.insert(
            (*code).into(),
            json!({ "description": what, "content": { "application/json": { "schema": r("ApiError") } } }),
        );
    }
    auth_errors(&mut m);
    Value::Object(m)
}

/// The answers every route that needs a token has: 401, 403, 500.
fn auth_errors(m: &mut serde_json::Map<String, Value>) {
    let err = |d: &str| json!({ "description": d, "content": { "application/json": { "schema": r("ApiError") } } });
    m.insert(
        "401".into(),
        err("no token, or a malformed, unknown, revoked or expired one"),
    );
    m.insert(
        "403".into(),
        err("the token's role lacks the right, or the thing is outside its tag scope"),
    );
    m.insert("500".into(), err("a fault of the server (its storage)"));
}

fn path_param(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": { "type": "string" } })
}

fn query_param(name: &str, ty: &str, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": { "type": ty } })
}

fn string_map() -> Value {
    json!({ "type": "object", "additionalProperties": { "type": "string" } })
}

fn buckets(description: &str) -> Value {
    json!({
        "type": "array",
        "description": description,
        "items": { "type": "array", "items": { "type": "number" }, "minItems": 2, "maxItems": 2 }
    })
}

/// The schemas of tokens, the audit trail, redaction and blocklist rules.
fn security_schemas() -> Value {
    let s = json!({ "type": "string" });
    let u64_ = json!({ "type": "integer", "minimum": 0 });
    let time = json!({ "type": "string", "description": "RFC 3339 UTC" });
    json!({
        "Role": { "type": "string", "enum": ["admin", "developer", "viewer", "agent"] },
        "NewToken": {
            "type": "object",
            "required": ["role"],
            "properties": {
                "role": r("Role"),
                "tags": { "type": "object", "additionalProperties": { "type": "string" }, "maxProperties": 32, "description": "scope: agents with all of these tags (empty: every agent)" },
                "expires_secs": { "type": "integer", "nullable": true, "minimum": 1, "maximum": 3_153_600_000u64, "description": "seconds until it expires (absent: never)" },
                "name": { "type": "string", "maxLength": 256 }
            }
        },
        "TokenInfo": {
            "type": "object",
            "required": ["id", "role", "created_at"],
            "properties": {
                "id": { "type": "string", "example": "tok-1" }, "role": r("Role"), "tags": string_map(), "name": s,
                "created_at": time, "expires_at": time, "revoked_at": time
            }
        },
        "CreatedToken": {
            "type": "object",
            "required": ["token", "info"],
            "properties": {
                "token": { "type": "string", "description": "scry_ and 64 hex digits; shown this once" },
                "info": r("TokenInfo")
            }
        },
        "AuditEntry": {
            "type": "object",
            "required": ["seq", "time", "request_id", "principal", "method", "path", "status"],
            "properties": {
                "seq": u64_, "time": time, "request_id": s,
                "principal": { "type": "string", "description": "tok-N role, or anonymous" },
                "method": s, "path": s, "target": s,
                "status": { "type": "integer", "minimum": 100, "maximum": 599 },
                "detail": s
            }
        },
        "RedactionKind": { "type": "string", "enum": ["name", "value", "card_number"] },
        "NewRedactionRule": {
            "type": "object",
            "required": ["kind"],
            "properties": {
                "kind": r("RedactionKind"),
                "pattern": { "type": "string", "maxLength": 1024, "description": "name: part of a name (case-insensitive); value: a regular expression; card_number: unused" }
            }
        },
        "RedactionRule": {
            "type": "object",
            "required": ["id", "kind"],
            "properties": { "id": s, "kind": r("RedactionKind"), "pattern": s, "builtin": { "type": "boolean" } }
        },
        "BlockKind": { "type": "string", "enum": ["path", "function", "module"] },
        "NewBlockRule": {
            "type": "object",
            "required": ["kind", "pattern"],
            "properties": {
                "kind": r("BlockKind"),
                "pattern": { "type": "string", "minLength": 1, "maxLength": 1024, "description": "a glob: * any run, ? one character" },
                "allow": { "type": "boolean", "description": "an exception to the other rules" }
            }
        },
        "BlockRule": {
            "type": "object",
            "required": ["id", "kind", "pattern"],
            "properties": { "id": s, "kind": r("BlockKind"), "pattern": s, "allow": { "type": "boolean" } }
        }
    })
}

fn schemas() -> Value {
    let mut all = base_schemas();
    if let (Some(all), Value::Object(more)) = (all.as_object_mut(), security_schemas()) {
        all.extend(more);
    }
    all
}

fn base_schemas() -> Value {
    let u64_ = json!({ "type": "integer", "minimum": 0 });
    let i32_ = json!({ "type": "integer", "format": "int32" });
    let s = json!({ "type": "string" });
    let time = json!({ "type": "string", "description": "RFC 3339 UTC" });
    let new_action_props = json!({
        "kind": r("ActionKind"),
        "metric": { "nullable": true, "allOf": [r("MetricKind")] },
        "location": { "type": "string", "minLength": 1, "maxLength": 1024, "description": "file.c:42, function, or lib.so:file.c:42" },
        "end_location": { "type": "string", "nullable": true, "description": "tictoc metrics: where the toc is" },
        "template": { "type": "string", "description": "log template, or the expression of a value metric" },
        "condition": { "type": "string", "nullable": true },
        "watches": arr(s.clone()),
        "target": r("Target"),
        "quota": r("ActionQuota"),
    });
    let mut action_props = new_action_props.as_object().cloned().unwrap_or_default();
    action_props.insert("id".into(), json!({ "type": "string", "example": "act-1" }));
    action_props.insert("created_at".into(), time.clone());
    action_props.insert(
        "states".into(),
        json!({ "type": "object", "description": "per agent id: the action's state there", "additionalProperties": r("ActionState") }),
    );
    json!({
        "RegisterRequest": {
            "type": "object",
            "required": ["host", "pid", "executable", "build_id", "tags"],
            "properties": {
                "host": s, "pid": i32_, "executable": s,
                "build_id": { "type": "string", "description": "GNU build-id, hex; empty if none" },
                "tags": string_map(),
                "agent_id": { "type": "string", "nullable": true, "description": "the id from an earlier registration, to keep it" }
            }
        },
        "RegisterResponse": {
            "type": "object", "required": ["agent_id"], "properties": { "agent_id": s }
        },
        "Agent": {
            "type": "object",
            "required": ["id", "host", "pid", "executable", "build_id", "tags", "first_seen", "last_seen", "status", "dropped_events"],
            "properties": {
                "id": s, "host": s, "pid": i32_, "executable": s, "build_id": s, "tags": string_map(),
                "first_seen": time, "last_seen": time,
                "status": { "type": "string", "enum": ["online", "offline"], "description": "online: polled within the last 60 s" },
                "dropped_events": u64_
            }
        },
        "ActionKind": { "type": "string", "enum": ["log", "snapshot", "metric"] },
        "MetricKind": { "type": "string", "enum": ["counter", "tictoc", "duration", "value"] },
        "Target": {
            "type": "object",
            "description": "agents by id, or every agent (now or later) with all of these tags; empty: all agents",
            "properties": { "agents": arr(s.clone()), "tags": string_map() }
        },
        "ActionQuota": {
            "type": "object",
            "properties": {
                "max_hits": { "type": "integer", "minimum": 0, "nullable": true },
                "expiry_secs": { "type": "integer", "minimum": 0, "nullable": true, "description": "seconds after creation; 0 = never" },
                "lines_per_sec": { "type": "number", "nullable": true },
                "bytes_per_sec": { "type": "number", "nullable": true }
            }
        },
        "NewAction": {
            "type": "object",
            "required": ["kind", "location"],
            "description": "metric actions need metric; tictoc needs end_location; value needs template (the expression)",
            "properties": new_action_props
        },
        "ActionState": {
            "type": "object",
            "required": ["action_id", "state"],
            "properties": {
                "action_id": s,
                "state": { "type": "string", "description": "pending, active, error, paused, exhausted, expired" },
                "reason": s,
                "hits": u64_
            }
        },
        "Action": {
            "type": "object",
            "required": ["id", "kind", "location", "created_at"],
            "properties": Value::Object(action_props)
        },
        "DesiredState": {
            "type": "object",
            "required": ["version", "actions"],
            "properties": {
                "version": u64_, "actions": arr(r("Action")),
                "redactions": arr(r("RedactionRule")),
                "blocklist": arr(r("BlockRule")),
                "detach_all": { "type": "boolean", "description": "the kill switch: unplant everything and detach" }
            }
        },
        "AgentReport": {
            "type": "object",
            "required": ["states"],
            "properties": { "states": arr(r("ActionState")), "dropped_events": u64_ }
        },
        "LogLine": {
            "type": "object",
            "required": ["action_id", "time", "tid", "location", "message"],
            "properties": {
                "seq": { "type": "integer", "minimum": 0, "description": "assigned by the server, ascending" },
                "action_id": s, "agent_id": s, "time": time, "tid": i32_, "location": s, "message": s,
                "values": { "description": "the values by hole text" }
            }
        },
        "UploadedSnapshot": {
            "type": "object",
            "required": ["action_id", "time", "tid", "snapshot"],
            "properties": {
                "action_id": s, "time": time, "tid": i32_,
                "snapshot": { "type": "object", "description": "the JSON of scry attach --snapshot --json" }
            }
        },
        "StoredSnapshot": {
            "type": "object",
            "required": ["id", "action_id", "agent_id", "time", "tid", "snapshot"],
            "properties": {
                "id": u64_, "action_id": s, "agent_id": s, "time": time, "tid": i32_,
                "snapshot": { "type": "object" }
            }
        },
        "SnapshotSummary": {
            "type": "object",
            "required": ["id", "action_id", "agent_id", "time", "tid", "top"],
            "properties": {
                "id": u64_, "action_id": s, "agent_id": s, "time": time, "tid": i32_,
                "top": { "type": "string", "description": "the first frame: function file:line" }
            }
        },
        "MetricSample": {
            "type": "object",
            "required": ["action_id", "time", "kind", "count"],
            "properties": {
                "action_id": s, "time": time, "kind": r("MetricKind"), "count": u64_,
                "sum": { "type": "number" },
                "buckets": buckets("[upper bound, count] pairs, not cumulative")
            }
        },
        "EventBatch": {
            "type": "object",
            "properties": {
                "logs": arr(r("LogLine")),
                "snapshots": arr(r("UploadedSnapshot")),
                "metrics": arr(r("MetricSample")),
                "dropped": u64_
            }
        },
        "EventAck": {
            "type": "object", "required": ["stored"], "properties": { "stored": u64_ }
        },
        "MetricSeries": {
            "type": "object",
            "required": ["action_id", "kind", "location", "agent_id", "count", "sum", "buckets"],
            "properties": {
                "action_id": s, "kind": r("MetricKind"), "location": s, "agent_id": s,
                "count": u64_, "sum": { "type": "number" },
                "buckets": buckets("[upper bound, count] pairs, cumulative")
            }
        },
        "Empty": { "type": "object" },
        "ApiError": {
            "type": "object",
            "required": ["error", "detail"],
            "properties": {
                "error": { "type": "string", "description": "what went wrong, short" },
                "detail": { "type": "string", "description": "what to do about it" }
            }
        }
    })
}

fn uint_param(name: &str, minimum: u64, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description,
            "schema": { "type": "integer", "minimum": minimum } })
}

fn limit_param() -> Value {
    json!({ "name": "limit", "in": "query", "required": false,
            "description": "at most this many (default 100; more than 1000 counts as 1000)",
            "schema": { "type": "integer", "minimum": 1 } })
}

fn wait_param(description: &str) -> Value {
    json!({ "name": "wait", "in": "query", "required": false, "description": description,
            "schema": { "type": "number", "minimum": 0, "maximum": 60 } })
}

fn prometheus_answers() -> Value {
    let mut m = serde_json::Map::new();
    m.insert(
        "200".into(),
        json!({ "description": "the metrics", "content": { "text/plain; version=0.0.4": { "schema": { "type": "string" } } } }),
    );
    auth_errors(&mut m);
    Value::Object(m)
}

/// The OpenAPI 3.0 document.
pub fn document() -> Value {
    let agent = path_param("id", "the agent's id");
    let action = path_param("id", "the action's id (act-N)");
    let wait = wait_param("long poll: seconds to wait for a change (at most 60)");
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "scry management server",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Agents poll their desired state and upload events; clients manage actions and read events. Errors are {\"error\", \"detail\"} with a 4xx for bad input. Every route but this document needs \"Authorization: Bearer scry_...\": 401 without a valid token, 403 when its role or tag scope does not allow the request."
        },
        "security": [{ "bearer": [] }],
        "paths": {
            "/v1/agents/register": {
                "post": {
                    "summary": "Register an agent (or re-register it, keeping its id)",
                    "requestBody": body(r("RegisterRequest")),
                    "responses": answers("the agent's id", r("RegisterResponse"), &["400", "413"])
                }
            },
            "/v1/agents/{id}/desired": {
                "get": {
                    "summary": "The actions the agent must have, with their version (long poll)",
                    "parameters": [
                        agent,
                        uint_param("version", 0, "the version the agent has: the answer waits while it is current"),
                        wait
                    ],
                    "responses": answers("the desired state", r("DesiredState"), &["400", "404"])
                }
            },
            "/v1/agents/{id}/report": {
                "post": {
                    "summary": "Report the states of the agent's actions and its dropped-event count",
                    "parameters": [agent],
                    "requestBody": body(r("AgentReport")),
                    "responses": answers("stored", r("Empty"), &["400", "404", "413"])
                }
            },
            "/v1/agents/{id}/events": {
                "post": {
                    "summary": "Upload log lines, snapshots and metric samples (redacted, then stored); answered once committed",
                    "parameters": [agent],
                    "requestBody": body(r("EventBatch")),
                    "responses": answers("how many were stored", r("EventAck"), &["400", "404", "413"])
                }
            },
            "/v1/agents": {
                "get": {
                    "summary": "Every agent",
                    "responses": answers("the agents", arr(r("Agent")), &[])
                }
            },
            "/v1/actions": {
                "post": {
                    "summary": "Create an action",
                    "requestBody": body(r("NewAction")),
                    "responses": answers("the action as stored", r("Action"), &["400", "409", "413", "422"])
                },
                "get": {
                    "summary": "Every action, with its per-agent states",
                    "responses": answers("the actions", arr(r("Action")), &[])
                }
            },
            "/v1/actions/{id}": {
                "get": {
                    "summary": "One action",
                    "parameters": [action],
                    "responses": answers("the action", r("Action"), &["404"])
                },
                "delete": {
                    "summary": "Delete an action (agents drop it at their next poll)",
                    "parameters": [action],
                    "responses": answers("deleted", r("Empty"), &["404"])
                }
            },
            "/v1/logs": {
                "get": {
                    "summary": "Log lines after a seq, ascending (long poll with wait)",
                    "parameters": [
                        query_param("action", "string", "only this action's lines"),
                        uint_param("after", 0, "only lines with a greater seq (default 0)"),
                        limit_param(),
                        wait_param("long poll: seconds to wait for a line (at most 60)")
                    ],
                    "responses": answers("the lines", arr(r("LogLine")), &["400"])
                }
            },
            "/v1/snapshots": {
                "get": {
                    "summary": "The newest snapshots, newest first",
                    "parameters": [
                        query_param("action", "string", "only this action's snapshots"),
                        limit_param()
                    ],
                    "responses": answers("the snapshots, without bodies", arr(r("SnapshotSummary")), &["400"])
                }
            },
            "/v1/snapshots/{id}": {
                "get": {
                    "summary": "One snapshot with its body",
                    "parameters": [{ "name": "id", "in": "path", "required": true, "description": "the snapshot's id", "schema": { "type": "integer", "minimum": 0 } }],
                    "responses": answers("the snapshot", r("StoredSnapshot"), &["400", "404"])
                }
            },
            "/v1/metrics": {
                "get": {
                    "summary": "One series per (action, agent), cumulative buckets",
                    "responses": answers("the series", arr(r("MetricSeries")), &[])
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus text exposition 0.0.4: scry_hits_total, scry_tictoc_seconds, scry_duration_seconds, scry_value (admin, developer or viewer; filtered to the token's scope)",
                    "responses": prometheus_answers()
                }
            },
            "/v1/tokens": {
                "post": {
                    "summary": "Create a token (admin); its secret is in this answer only",
                    "requestBody": body(r("NewToken")),
                    "responses": answers("the token and its secret", r("CreatedToken"), &["400", "413"])
                },
                "get": {
                    "summary": "Every token, revoked ones included, never their secrets (admin)",
                    "responses": answers("the tokens", arr(r("TokenInfo")), &[])
                }
            },
            "/v1/tokens/{id}": {
                "delete": {
                    "summary": "Revoke a token (admin)",
                    "parameters": [path_param("id", "the token's id (tok-N)")],
                    "responses": answers("revoked", r("Empty"), &["404"])
                }
            },
            "/v1/audit": {
                "get": {
                    "summary": "The audit trail, ascending (admin): every mutating and every refused request",
                    "parameters": [
                        { "name": "since", "in": "query", "required": false, "description": "only entries at or after this time (RFC 3339)", "schema": { "type": "string", "format": "date-time" } },
                        uint_param("after", 0, "only entries with a greater seq (default 0)"),
                        limit_param()
                    ],
                    "responses": answers("the entries", arr(r("AuditEntry")), &["400"])
                }
            },
            "/v1/redactions": {
                "post": {
                    "summary": "Add a redaction rule (admin); agents get it with their next desired state",
                    "requestBody": body(r("NewRedactionRule")),
                    "responses": answers("the rule", r("RedactionRule"), &["400", "413"])
                },
                "get": {
                    "summary": "The redaction rules in force, built-in ones first (admin or developer)",
                    "responses": answers("the rules", arr(r("RedactionRule")), &[])
                }
            },
            "/v1/redactions/{id}": {
                "delete": {
                    "summary": "Remove a redaction rule (admin); built-in rules cannot be removed (400)",
                    "parameters": [path_param("id", "the rule's id (red-N)")],
                    "responses": answers("removed", r("Empty"), &["400", "404"])
                }
            },
            "/v1/blocklist": {
                "post": {
                    "summary": "Add a blocklist rule (admin): no action may be created where it matches",
                    "requestBody": body(r("NewBlockRule")),
                    "responses": answers("the rule", r("BlockRule"), &["400", "413"])
                },
                "get": {
                    "summary": "The blocklist (admin or developer)",
                    "responses": answers("the rules", arr(r("BlockRule")), &[])
                }
            },
            "/v1/blocklist/{id}": {
                "delete": {
                    "summary": "Remove a blocklist rule (admin)",
                    "parameters": [path_param("id", "the rule's id (blk-N)")],
                    "responses": answers("removed", r("Empty"), &["404"])
                }
            },
            "/v1/detach-all": {
                "post": {
                    "summary": "The kill switch (admin): every agent unplants everything and detaches, until attach-all",
                    "responses": answers("on", r("Empty"), &["413"])
                }
            },
            "/v1/attach-all": {
                "post": {
                    "summary": "Clear the kill switch (admin)",
                    "responses": answers("off", r("Empty"), &["413"])
                }
            },
            "/v1/openapi.json": {
                "get": {
                    "summary": "This document (no token needed)",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "the OpenAPI 3.0 document",
                            "content": { "application/json": { "schema": { "type": "object" } } }
                        }
                    }
                }
            }
        },
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a token: scry_ and 64 hex digits (POST /v1/tokens, or scry server --init-admin)"
                }
            }
        }
    })
}

/// The (METHOD, path) pairs the document describes, sorted.
pub fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut ops = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for method in item.as_object().into_iter().flat_map(|m| m.keys()) {
                ops.push((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    ops.sort();
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::ROUTES;

    #[test]
    fn document_describes_exactly_the_routes() {
        let mut routes: Vec<(String, String)> = ROUTES
            .iter()
            .map(|r| (r.method.to_string(), r.path.to_string()))
            .collect();
        routes.sort();
        assert_eq!(operations(&document()), routes);
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &part[..part.find('"').unwrap()];
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "unresolved $ref {name}"
            );
        }
    }
}
