//! Tokens and principals: secrets, their hashes, the bearer header, roles, tag scopes.
//!
//! A token is `scry_` and 64 hex digits: 256 random bits from the OS's CSPRNG. The database
//! keeps only its SHA-256 (hex) and finds a token by that hash. A fast cryptographic hash is
//! the right tool here: the secrets are 256-bit random, so nothing can be guessed from the
//! hash, and a slow password KDF (which protects low-entropy secrets) would only slow every
//! request.

use crate::api::{Action, NewAction, Role};
use crate::error::HttpError;
use hyper::StatusCode;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The prefix of every token.
pub const TOKEN_PREFIX: &str = "scry_";

/// Hex digits after the prefix (256 bits).
pub const TOKEN_HEX: usize = 64;

/// `n` random bytes from the OS, as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).expect("the OS's random source works");
    hex(&buf)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new secret: `scry_` and 64 hex digits.
pub fn new_secret() -> String {
    format!("{TOKEN_PREFIX}{}", random_hex(TOKEN_HEX / 2))
}

/// The hash the database keeps of a secret: hex SHA-256.
pub fn hash_token(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Whether a string has the shape of a token.
pub fn well_formed(token: &str) -> bool {
    token.strip_prefix(TOKEN_PREFIX).is_some_and(|h| {
        h.len() == TOKEN_HEX
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A 401 answer.
pub fn unauthorized(error: &str, detail: impl Into<String>) -> HttpError {
    HttpError::new(StatusCode::UNAUTHORIZED, error, detail)
}

/// A 403 answer.
pub fn forbidden(error: &str, detail: impl Into<String>) -> HttpError {
    HttpError::new(StatusCode::FORBIDDEN, error, detail)
}

/// The token of an `Authorization` header value: `Ok(None)` without the header, a 401 when
/// it is not `Bearer scry_…`.
pub fn bearer(header: Option<&hyper::header::HeaderValue>) -> Result<Option<String>, HttpError> {
    let Some(v) = header else { return Ok(None) };
    let malformed = || {
        unauthorized(
            "malformed token",
            "send \"Authorization: Bearer scry_...\" with a token from POST /v1/tokens (or `scry server --init-admin`)",
        )
    };
    let v = v.to_str().map_err(|_| malformed())?.trim();
    let (scheme, token) = v.split_once(' ').ok_or_else(malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || !well_formed(token) {
        return Err(malformed());
    }
    Ok(Some(token.to_string()))
}

/// The text of a role.
pub fn role_str(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Developer => "developer",
        Role::Viewer => "viewer",
        Role::Agent => "agent",
    }
}

/// A role from its text (unknown text: viewer, the least right).
pub fn parse_role(s: &str) -> Role {
    match s {
        "admin" => Role::Admin,
        "developer" => Role::Developer,
        "agent" => Role::Agent,
        _ => Role::Viewer,
    }
}

/// Who makes a request: a valid token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// `tok-N`.
    pub token_id: String,
    /// What it may do.
    pub role: Role,
    /// Its scope: the agents whose tags include all of these (empty: every agent).
    pub tags: BTreeMap<String, String>,
}

impl Principal {
    /// `tok-3 developer`, as the audit trail names it.
    pub fn label(&self) -> String {
        format!("{} {}", self.token_id, role_str(self.role))
    }

    /// The tag scope that restricts it (`None`: none, an admin or an unscoped token).
    pub fn scope(&self) -> Option<&BTreeMap<String, String>> {
        (self.role != Role::Admin && !self.tags.is_empty()).then_some(&self.tags)
    }
}

/// Whether an agent with these tags is inside a scope: it has every tag of the scope.
pub fn agent_in_scope(
    scope: &BTreeMap<String, String>,
    agent_tags: &BTreeMap<String, String>,
) -> bool {
    scope.iter().all(|(k, v)| agent_tags.get(k) == Some(v))
}

/// Whether an action stays inside a scope: whatever agent it can apply to is in scope. It
/// names agents, each known (`agent_tags` gives their tags) and in scope, and its target
/// tags, if any, include all of the scope's. An empty target (every agent) is out of any
/// scope.
pub fn action_in_scope(
    scope: &BTreeMap<String, String>,
    action: &NewAction,
    agent_tags: impl Fn(&str) -> Option<BTreeMap<String, String>>,
) -> bool {
    let t = &action.target;
    if t.agents.is_empty() && t.tags.is_empty() {
        return false;
    }
    let tags_ok = t.tags.is_empty() || agent_in_scope(scope, &t.tags);
    tags_ok
        && t.agents
            .iter()
            .all(|id| agent_tags(id).is_some_and(|tags| agent_in_scope(scope, &tags)))
}

/// Keeps the actions in scope (all of them without a scope).
pub fn filter_actions(
    scope: Option<&BTreeMap<String, String>>,
    actions: Vec<Action>,
    agents: &BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<Action> {
    match scope {
        None => actions,
        Some(scope) => actions
            .into_iter()
            .filter(|a| action_in_scope(scope, &a.spec, |id| agents.get(id).cloned()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ActionKind, ActionQuota, Target};

    #[test]
    fn secrets_and_hashes() {
        let t = new_secret();
        assert!(well_formed(&t), "{t}");
        assert_eq!(t.len(), 5 + 64);
        assert_ne!(t, new_secret());
        assert_eq!(hash_token(&t).len(), 64);
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(!well_formed("scry_xyz"));
        let h = |s: &str| hyper::header::HeaderValue::from_str(s).unwrap();
        assert_eq!(
            bearer(Some(&h(&format!("Bearer {t}")))).unwrap(),
            Some(t.clone())
        );
        assert!(bearer(Some(&h("Basic abc"))).is_err());
        assert!(bearer(Some(&h("Bearer scry_00"))).is_err());
        assert_eq!(bearer(None).unwrap(), None);
    }

    #[test]
    fn scopes() {
        let scope: BTreeMap<String, String> = [("env".to_string(), "prod".to_string())].into();
        let action = |agents: &[&str], tags: &[(&str, &str)]| NewAction {
            kind: ActionKind::Log,
            metric: None,
            location: "x.c:1".into(),
            end_location: None,
            template: String::new(),
            condition: None,
            watches: vec![],
            target: Target {
                agents: agents.iter().map(|s| s.to_string()).collect(),
                tags: tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
            quota: ActionQuota::default(),
        };
        let tags_of = |id: &str| match id {
            "a-prod" => Some(scope.clone()),
            "a-dev" => Some([("env".to_string(), "dev".to_string())].into()),
            _ => None,
        };
        assert!(action_in_scope(
            &scope,
            &action(&[], &[("env", "prod"), ("svc", "x")]),
            tags_of
        ));
        assert!(!action_in_scope(
            &scope,
            &action(&[], &[("svc", "x")]),
            tags_of
        ));
        assert!(!action_in_scope(&scope, &action(&[], &[]), tags_of));
        assert!(action_in_scope(&scope, &action(&["a-prod"], &[]), tags_of));
        assert!(!action_in_scope(
            &scope,
            &action(&["a-prod", "a-dev"], &[]),
            tags_of
        ));
        assert!(!action_in_scope(
            &scope,
            &action(&["a-unknown"], &[]),
            tags_of
        ));
    }
}
