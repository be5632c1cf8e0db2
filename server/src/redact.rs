//! PII redaction, shared by the server (at ingest) and the agent (before anything leaves
//! the host): one [`Redactor`] built from the [`RedactionRule`]s of the desired state.
//!
//! * [`RedactionKind::Value`]: a regular expression; every match in a text becomes
//!   [`REDACTED`].
//! * [`RedactionKind::CardNumber`]: runs of 13 to 19 digits (spaces and dashes allowed
//!   between them) that pass the Luhn check become [`REDACTED_CARD`].
//! * [`RedactionKind::Name`]: in JSON, a key containing the pattern (case-insensitive), or an
//!   object `{"name": N, "value": V}` (a variable of a snapshot) whose `N` contains it, has its
//!   value replaced whole by the string [`REDACTED`].
//!
//! The built-in rules ([`builtin_rules`]) are always in force; they have ids `builtin-…`.

use crate::api::{RedactionKind, RedactionRule};
use regex::Regex;
use serde_json::Value;
use std::borrow::Cow;

/// What a redacted value or text becomes.
pub const REDACTED: &str = "[redacted]";

/// What a redacted card number becomes.
pub const REDACTED_CARD: &str = "[redacted card]";

/// Longest pattern of a rule, in bytes.
pub const MAX_PATTERN: usize = 1024;

/// The built-in rules: card numbers, e-mail addresses, bearer tokens, JWTs, and values of
/// variables or fields named like passwords, secrets, tokens and API keys.
pub fn builtin_rules() -> Vec<RedactionRule> {
    let rule = |id: &str, kind, pattern: &str| RedactionRule {
        id: format!("builtin-{id}"),
        kind,
        pattern: pattern.to_string(),
        builtin: true,
    };
    vec![
        rule("card-number", RedactionKind::CardNumber, ""),
        rule(
            "email",
            RedactionKind::Value,
            r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
        ),
        rule(
            "bearer",
            RedactionKind::Value,
            r"(?i)bearer\s+[A-Za-z0-9._~+/-]+=*",
        ),
        rule(
            "jwt",
            RedactionKind::Value,
            r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+",
        ),
        rule("password", RedactionKind::Name, "password"),
        rule("passwd", RedactionKind::Name, "passwd"),
        rule("secret", RedactionKind::Name, "secret"),
        rule("token", RedactionKind::Name, "token"),
        rule("api-key", RedactionKind::Name, "api_key"),
    ]
}

/// Checks a rule before it is stored: a value rule's pattern must compile, a name rule's
/// must not be empty. The error says what is wrong.
pub fn check_rule(kind: RedactionKind, pattern: &str) -> Result<(), String> {
    if pattern.len() > MAX_PATTERN {
        return Err(format!(
            "the pattern is {} bytes, over the limit of {MAX_PATTERN}",
            pattern.len()
        ));
    }
    match kind {
        RedactionKind::Value => {
            if pattern.is_empty() {
                return Err("a value rule needs a regular expression in \"pattern\"".into());
            }
            compile(pattern).map(|_| ())
        }
        RedactionKind::Name if pattern.trim().is_empty() => {
            Err("a name rule needs a (part of a) name in \"pattern\", e.g. \"ssn\"".into())
        }
        RedactionKind::Name | RedactionKind::CardNumber => Ok(()),
    }
}

fn compile(pattern: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("the regular expression does not compile: {e}"))
}

/// Applies a set of redaction rules to texts and JSON values.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    values: Vec<Regex>,
    names: Vec<String>,
    cards: bool,
}

/// 13 to 19 digits, single spaces or dashes allowed between them, not inside a longer word.
fn card_regex() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\b\d(?:[ -]?\d){12,18}\b").expect("a valid regex"))
}

/// The Luhn check of a digit string (other characters are skipped).
pub fn luhn(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 { d2 - 9 } else { d2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

impl Redactor {
    /// A redactor applying these rules. A value rule whose pattern does not compile is
    /// skipped (the server refuses such rules; the agent gets only the server's).
    pub fn new(rules: &[RedactionRule]) -> Self {
        let mut r = Redactor::default();
        for rule in rules {
            match rule.kind {
                RedactionKind::Value => {
                    if let Ok(re) = compile(&rule.pattern) {
                        r.values.push(re);
                    }
                }
                RedactionKind::Name => {
                    let p = rule.pattern.trim().to_lowercase();
                    if !p.is_empty() {
                        r.names.push(p);
                    }
                }
                RedactionKind::CardNumber => r.cards = true,
            }
        }
        r
    }

    /// Whether a variable or field name is one whose value goes.
    pub fn name_matches(&self, name: &str) -> bool {
        if self.names.is_empty() {
            return false;
        }
        let name = name.to_lowercase();
        self.names.iter().any(|p| name.contains(p.as_str()))
    }

    /// The text with card numbers and value-rule matches replaced (borrowed when nothing
    /// matched).
    pub fn redact_text<'a>(&self, s: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(s);
        if self.cards {
            let re = card_regex();
            if re.find_iter(&out).any(|m| luhn(m.as_str())) {
                let replaced = re
                    .replace_all(&out, |c: &regex::Captures| {
                        if luhn(&c[0]) {
                            REDACTED_CARD.to_string()
                        } else {
                            c[0].to_string()
                        }
                    })
                    .into_owned();
                out = Cow::Owned(replaced);
            }
        }
        for re in &self.values {
            if re.is_match(&out) {
                let replaced = re.replace_all(&out, REDACTED).into_owned();
                out = Cow::Owned(replaced);
            }
        }
        out
    }

    /// Redacts a JSON value in place: values under matching names go whole, every string
    /// (object keys included) goes through [`Redactor::redact_text`].
    pub fn redact_json(&self, v: &mut Value) {
        match v {
            Value::String(s) => {
                if let Cow::Owned(r) = self.redact_text(s) {
                    *s = r;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.redact_json(i)),
            Value::Object(map) => {
                // A snapshot's variable: {"name": "password", "type": ..., "value": ...}.
                let named_secret =
                    matches!(map.get("name"), Some(Value::String(n)) if self.name_matches(n));
                let keys: Vec<String> = map.keys().cloned().collect();
                for k in keys {
                    let Some(mut item) = map.remove(&k) else {
                        continue;
                    };
                    if self.name_matches(&k) || (named_secret && k == "value") {
                        item = Value::String(REDACTED.to_string());
                    } else {
                        self.redact_json(&mut item);
                    }
                    let key = self.redact_text(&k).into_owned();
                    map.insert(key, item);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builtin_rules_redact_the_usual_secrets() {
        let r = Redactor::new(&builtin_rules());
        assert_eq!(
            r.redact_text("card 4111 1111 1111 1111 ok"),
            "card [redacted card] ok"
        );
        assert_eq!(
            r.redact_text("card 4111-1111-1111-1111"),
            "card [redacted card]"
        );
        assert_eq!(r.redact_text("4111111111111111"), "[redacted card]");
        // Not a Luhn number, and a long digit run: kept.
        assert_eq!(r.redact_text("id 4111111111111112"), "id 4111111111111112");
        assert_eq!(
            r.redact_text("n 12345678901234567890123"),
            "n 12345678901234567890123"
        );
        assert_eq!(
            r.redact_text("mail bob.smith@example.co.uk now"),
            "mail [redacted] now"
        );
        assert_eq!(
            r.redact_text("Authorization: Bearer abc.DEF-123=="),
            "Authorization: [redacted]"
        );
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        assert_eq!(r.redact_text(&format!("t={jwt};")), "t=[redacted];");
        assert!(matches!(r.redact_text("nothing here 42"), Cow::Borrowed(_)));
    }

    #[test]
    fn json_by_name_and_value() {
        let r = Redactor::new(&builtin_rules());
        let mut v = json!({
            "user->Password": "hunter2",
            "o->id": 7,
            "note": "mail a@b.io",
            "frames": [{"locals": [
                {"name": "db_passwd", "type": "char *", "value": "s3cret"},
                {"name": "n", "type": "int", "value": 3},
                {"name": "cfg", "type": "struct cfg", "value": {"api_key": "k", "port": 80}}
            ]}]
        });
        r.redact_json(&mut v);
        assert_eq!(v["user->Password"], "[redacted]");
        assert_eq!(v["o->id"], 7);
        assert_eq!(v["note"], "mail [redacted]");
        let locals = &v["frames"][0]["locals"];
        assert_eq!(locals[0]["value"], "[redacted]");
        assert_eq!(locals[0]["type"], "char *");
        assert_eq!(locals[1]["value"], 3);
        assert_eq!(locals[2]["value"]["api_key"], "[redacted]");
        assert_eq!(locals[2]["value"]["port"], 80);
    }

    #[test]
    fn rules_are_checked() {
        assert!(
            check_rule(RedactionKind::Value, "(")
                .unwrap_err()
                .contains("does not compile")
        );
        assert!(check_rule(RedactionKind::Value, "").is_err());
        assert!(check_rule(RedactionKind::Name, " ").is_err());
        assert!(check_rule(RedactionKind::Value, r"\d{3}-\d{2}-\d{4}").is_ok());
        let r = Redactor::new(&[RedactionRule {
            id: "red-1".into(),
            kind: RedactionKind::Value,
            pattern: r"\d{3}-\d{2}-\d{4}".into(),
            builtin: false,
        }]);
        assert_eq!(r.redact_text("ssn 123-45-6789"), "ssn [redacted]");
        // No card rule: card numbers stay.
        assert_eq!(r.redact_text("4111111111111111"), "4111111111111111");
        assert!(luhn("4111 1111 1111 1111") && !luhn("1234"));
    }
}
