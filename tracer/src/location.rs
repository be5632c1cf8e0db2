//! Probe locations as users write them: `file.c:42`, `function`, `libname.so:file.c:42`,
//! `libname.so:function`.

use std::fmt;

/// A parsed location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocationSpec {
    /// A source line: every address that starts it.
    Line {
        module: Option<String>,
        file: String,
        line: u32,
    },
    /// A function: its entry after the prologue (and its inlined copies).
    Function {
        module: Option<String>,
        name: String,
    },
    /// `function@entry`: the function's very first instruction, before the prologue (the
    /// stack pointer there points at the return address).
    FunctionEntry {
        module: Option<String>,
        name: String,
    },
    /// `function@return`: every way out of the function — each `ret`, and each jump to
    /// another function (a tail call); the stack pointer there is the one at entry.
    FunctionReturns {
        module: Option<String>,
        name: String,
    },
}

/// A location that could not be parsed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("bad location '{text}': {why}. Write file.c:LINE, FUNCTION, or libname.so:file.c:LINE")]
pub struct LocationError {
    /// The location as given.
    pub text: String,
    /// What is wrong.
    pub why: String,
}

fn looks_like_module(s: &str) -> bool {
    s.ends_with(".so") || s.contains(".so.")
}

impl LocationSpec {
    /// Parses a location.
    pub fn parse(text: &str) -> Result<LocationSpec, LocationError> {
        let bad = |why: &str| LocationError {
            text: text.to_string(),
            why: why.to_string(),
        };
        let t = text.trim();
        if t.is_empty() {
            return Err(bad("it is empty"));
        }
        if let Some((head, last)) = t.rsplit_once(':')
            && !last.is_empty()
            && last.chars().all(|c| c.is_ascii_digit())
        {
            let line: u32 = last
                .parse()
                .map_err(|_| bad("the line number is too large"))?;
            if line == 0 {
                return Err(bad("lines count from 1"));
            }
            let (module, file) = match head.split_once(':') {
                Some((m, f)) => (Some(m.to_string()), f.to_string()),
                None => (None, head.to_string()),
            };
            if file.is_empty() {
                return Err(bad("the file name is missing before the line number"));
            }
            return Ok(LocationSpec::Line { module, file, line });
        }
        // A function, maybe C++ (`ns::f`), maybe behind a module prefix.
        if let Some((m, rest)) = t.split_once(':')
            && looks_like_module(m)
            && !rest.starts_with(':')
        {
            if rest.is_empty() {
                return Err(bad("nothing after the module name"));
            }
            return LocationSpec::Function {
                module: Some(m.to_string()),
                name: rest.to_string(),
            }
            .with_suffix()
            .map_err(bad);
        }
        if t.contains(char::is_whitespace) {
            return Err(bad("it contains spaces"));
        }
        LocationSpec::Function {
            module: None,
            name: t.to_string(),
        }
        .with_suffix()
        .map_err(bad)
    }

    /// `f@entry` and `f@return` from a function location named so.
    fn with_suffix(self) -> Result<LocationSpec, &'static str> {
        let LocationSpec::Function { module, name } = self else {
            return Ok(self);
        };
        match name.rsplit_once('@') {
            Some((f, "entry")) if !f.is_empty() => Ok(LocationSpec::FunctionEntry {
                module,
                name: f.to_string(),
            }),
            Some((f, "return")) if !f.is_empty() => Ok(LocationSpec::FunctionReturns {
                module,
                name: f.to_string(),
            }),
            Some(_) => {
                Err("after '@' say `entry` (the first instruction) or `return` (every way out)")
            }
            None => Ok(LocationSpec::Function { module, name }),
        }
    }

    /// The module prefix, if any.
    pub fn module(&self) -> Option<&str> {
        match self {
            LocationSpec::Line { module, .. }
            | LocationSpec::Function { module, .. }
            | LocationSpec::FunctionEntry { module, .. }
            | LocationSpec::FunctionReturns { module, .. } => module.as_deref(),
        }
    }
}

impl fmt::Display for LocationSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(m) = self.module() {
            write!(f, "{m}:")?;
        }
        match self {
            LocationSpec::Line { file, line, .. } => write!(f, "{file}:{line}"),
            LocationSpec::Function { name, .. } => write!(f, "{name}"),
            LocationSpec::FunctionEntry { name, .. } => write!(f, "{name}@entry"),
            LocationSpec::FunctionReturns { name, .. } => write!(f, "{name}@return"),
        }
    }
}

/// True if a module at `path` is the one a location's prefix `name` means: same file name,
/// or the name without its version suffix (`libfoo.so` matches `libfoo.so.1`).
pub fn module_matches(path: &str, name: &str) -> bool {
    let base = path.rsplit('/').next().unwrap_or(path);
    base == name
        || base.starts_with(&format!("{name}."))
        || (name.contains('/') && path.ends_with(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_entry_and_returns() {
        assert_eq!(
            LocationSpec::parse("process_order@return").unwrap(),
            LocationSpec::FunctionReturns {
                module: None,
                name: "process_order".into()
            }
        );
        assert_eq!(
            LocationSpec::parse("libshared.so:shared_fn@entry").unwrap(),
            LocationSpec::FunctionEntry {
                module: Some("libshared.so".into()),
                name: "shared_fn".into()
            }
        );
        assert!(
            LocationSpec::parse("f@exit")
                .unwrap_err()
                .to_string()
                .contains("`entry`")
        );
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(
            LocationSpec::parse("orders.c:42").unwrap(),
            LocationSpec::Line {
                module: None,
                file: "orders.c".into(),
                line: 42
            }
        );
        assert_eq!(
            LocationSpec::parse("libplugin.so:src/plugin.c:7").unwrap(),
            LocationSpec::Line {
                module: Some("libplugin.so".into()),
                file: "src/plugin.c".into(),
                line: 7
            }
        );
        assert_eq!(
            LocationSpec::parse("main").unwrap(),
            LocationSpec::Function {
                module: None,
                name: "main".into()
            }
        );
        assert_eq!(
            LocationSpec::parse("ns::Class::method").unwrap(),
            LocationSpec::Function {
                module: None,
                name: "ns::Class::method".into()
            }
        );
        assert_eq!(
            LocationSpec::parse("libc.so.6:malloc").unwrap(),
            LocationSpec::Function {
                module: Some("libc.so.6".into()),
                name: "malloc".into()
            }
        );
        assert!(LocationSpec::parse("x.c:0").is_err());
        assert!(LocationSpec::parse(":12").is_err());
        assert!(LocationSpec::parse("").is_err());
    }

    #[test]
    fn module_names_match_versions_and_paths() {
        assert!(module_matches(
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            "libc.so"
        ));
        assert!(module_matches(
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            "libc.so.6"
        ));
        assert!(!module_matches("/usr/lib/libcrypt.so.1", "libc.so"));
        assert!(module_matches("/opt/app/bin/server", "server"));
    }
}
