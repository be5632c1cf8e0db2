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
            return Ok(LocationSpec::Function {
                module: Some(m.to_string()),
                name: rest.to_string(),
            });
        }
        if t.contains(char::is_whitespace) {
            return Err(bad("it contains spaces"));
        }
        Ok(LocationSpec::Function {
            module: None,
            name: t.to_string(),
        })
    }

    /// The module prefix, if any.
    pub fn module(&self) -> Option<&str> {
        match self {
            LocationSpec::Line { module, .. } | LocationSpec::Function { module, .. } => {
                module.as_deref()
            }
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
