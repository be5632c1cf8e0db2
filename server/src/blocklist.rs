//! The blocklist: where no probe may be set. Shared by the server (checked when an action is
//! created) and the agent (checked again against the desired state).
//!
//! A rule's pattern is a glob (`*`: any run of characters, `/` included; `?`: one
//! character), matched against one part of an action's location:
//!
//! | location | module | file | function |
//! |---|---|---|---|
//! | `x.c:42` | | `x.c` | |
//! | `lib.so:dir/x.c:42` | `lib.so` | `dir/x.c` | |
//! | `f`, `f@entry` | | | `f` |
//! | `lib.so:f` | `lib.so` | | `f` |
//!
//! [`BlockKind::Path`] matches the file part (a pattern without `/` also matches its last
//! component: `secret.c` blocks `src/secret.c:10`), [`BlockKind::Function`] the function,
//! [`BlockKind::Module`] the module prefix (or its last path component). Rules with
//! `allow: true` are exceptions: a location one of them matches is never blocked.

use crate::api::{BlockKind, BlockRule};

/// The parts of a location a rule can match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocationParts<'a> {
    /// The module prefix (`lib.so` of `lib.so:f`), if any.
    pub module: Option<&'a str>,
    /// The source file of a `file:line` location.
    pub file: Option<&'a str>,
    /// The function of a function location.
    pub function: Option<&'a str>,
}

/// Splits a location (`x.c:42`, `lib.so:dir/x.c:42`, `f`, `lib.so:f`, `f@entry`) into its
/// parts.
pub fn parts(location: &str) -> LocationParts<'_> {
    let loc = location.trim();
    let loc = loc.split_once('@').map_or(loc, |(l, _)| l);
    let pieces: Vec<&str> = loc.split(':').collect();
    let is_line = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match pieces.as_slice() {
        [] | [""] => LocationParts::default(),
        [f] => LocationParts {
            function: Some(f),
            ..Default::default()
        },
        [.., file, line] if is_line(line) => {
            let module_len = loc.len() - line.len() - file.len() - 1;
            LocationParts {
                module: (pieces.len() > 2).then(|| &loc[..module_len - 1]),
                file: Some(file),
                function: None,
            }
        }
        [.., function] => LocationParts {
            module: Some(&loc[..loc.len() - function.len() - 1]),
            file: None,
            function: Some(function),
        },
    }
}

/// Whether `text` matches the glob `pattern` (`*`: any run, `?`: one character).
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Whether `pattern` matches a path or its last component (the latter only for a pattern
/// without `/`).
fn glob_path(pattern: &str, path: &str) -> bool {
    glob(pattern, path)
        || (!pattern.contains('/')
            && path
                .rsplit('/')
                .next()
                .is_some_and(|base| base != path && glob(pattern, base)))
}

/// Whether one rule matches a location.
pub fn matches(rule: &BlockRule, location: &str) -> bool {
    let p = parts(location);
    match rule.kind {
        BlockKind::Path => p.file.is_some_and(|f| glob_path(&rule.pattern, f)),
        BlockKind::Function => p.function.is_some_and(|f| glob(&rule.pattern, f)),
        BlockKind::Module => p.module.is_some_and(|m| glob_path(&rule.pattern, m)),
    }
}

/// The rule that blocks `location`, if any: the first blocking rule that matches, unless an
/// `allow` rule matches it too.
pub fn blocked<'a>(rules: &'a [BlockRule], location: &str) -> Option<&'a BlockRule> {
    if rules.iter().any(|r| r.allow && matches(r, location)) {
        return None;
    }
    rules.iter().find(|r| !r.allow && matches(r, location))
}

/// A rule as the refusal names it: `blk-2 (function *password*)`.
pub fn describe(rule: &BlockRule) -> String {
    let kind = match rule.kind {
        BlockKind::Path => "path",
        BlockKind::Function => "function",
        BlockKind::Module => "module",
    };
    format!("{} ({kind} {})", rule.id, rule.pattern)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, kind: BlockKind, pattern: &str, allow: bool) -> BlockRule {
        BlockRule {
            id: id.into(),
            kind,
            pattern: pattern.into(),
            allow,
        }
    }

    #[test]
    fn locations_split() {
        let p = parts("x.c:42");
        assert_eq!((p.module, p.file, p.function), (None, Some("x.c"), None));
        let p = parts("lib.so:dir/x.c:42");
        assert_eq!(
            (p.module, p.file, p.function),
            (Some("lib.so"), Some("dir/x.c"), None)
        );
        let p = parts("f@entry");
        assert_eq!((p.module, p.file, p.function), (None, None, Some("f")));
        let p = parts("lib.so:f");
        assert_eq!(
            (p.module, p.file, p.function),
            (Some("lib.so"), None, Some("f"))
        );
        assert_eq!(parts(""), LocationParts::default());
    }

    #[test]
    fn globs() {
        assert!(glob("*password*", "check_password_hash"));
        assert!(glob("a?c", "abc") && !glob("a?c", "abbc"));
        assert!(glob("*/crypto/*", "src/crypto/aes.c"));
        assert!(!glob("*/crypto/*", "src/cryptox/aes.c"));
        assert!(glob("*", "") && !glob("?", ""));
        assert!(glob("libssl.so*", "libssl.so.3"));
    }

    #[test]
    fn rules_and_exceptions() {
        let rules = vec![
            rule("blk-1", BlockKind::Function, "*password*", false),
            rule("blk-2", BlockKind::Path, "*/crypto/*", false),
            rule("blk-3", BlockKind::Module, "libssl.so*", false),
            rule("blk-4", BlockKind::Path, "secret.c", false),
            rule("blk-5", BlockKind::Function, "password_policy_len", true),
        ];
        assert_eq!(blocked(&rules, "check_password").unwrap().id, "blk-1");
        assert_eq!(
            blocked(&rules, "lib.so:check_password@entry").unwrap().id,
            "blk-1"
        );
        assert_eq!(blocked(&rules, "src/crypto/aes.c:10").unwrap().id, "blk-2");
        assert_eq!(blocked(&rules, "libssl.so.3:SSL_read").unwrap().id, "blk-3");
        assert_eq!(
            blocked(&rules, "/usr/lib/libssl.so.3:x.c:3").unwrap().id,
            "blk-3"
        );
        assert_eq!(blocked(&rules, "src/secret.c:10").unwrap().id, "blk-4");
        assert!(blocked(&rules, "password_policy_len").is_none());
        assert!(blocked(&rules, "loop.c:62").is_none());
        assert!(blocked(&rules, "main").is_none());
        assert_eq!(describe(&rules[0]), "blk-1 (function *password*)");
    }
}
