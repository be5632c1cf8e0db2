//! Log templates: literal text with `{value}` holes, `{{` and `}}` as escapes.
//!
//! A hole holds a value path in this first cut: a variable (`{id}`), a register (`{$rdi}`),
//! members through `.` and `->` (`{o->qty}`, `{s.name}`), array elements (`{a[2]}`) and a
//! leading `*` (`{*p}`). The full expression language arrives with the values issue; the
//! parser below is written so that a richer hole grammar replaces `parse_path` only.

use crate::regs::Reg;
use std::fmt;

/// A parsed template.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    /// Literal text and holes, in order.
    pub parts: Vec<Part>,
}

/// One piece of a template.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    /// Text copied as is.
    Literal(String),
    /// A value to fetch and render.
    Hole(ValuePath),
    /// A computed value (`{o->qty * 2}`), compiled per site with the expression language.
    Expr(ExprHole),
}

/// A format spec after `:` in a hole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spec {
    /// `:x` — hexadecimal.
    Hex,
    /// `:d` — decimal (characters and enums as numbers).
    Dec,
    /// `:s` — as a string (a char pointer's text only, without its address).
    Str,
    /// `:p` — as a pointer (the address only, no string or target).
    Ptr,
}

/// A hole holding an expression rather than a value path.
#[derive(Clone, Debug, PartialEq)]
pub struct ExprHole {
    /// The expression's text.
    pub text: String,
    /// Its format spec.
    pub spec: Option<Spec>,
}

/// Splits `expr:spec` (the spec is one letter; `::` is a C++ scope, not a spec).
fn split_spec(inner: &str) -> (&str, Option<Spec>) {
    let t = inner.trim_end();
    if let Some((body, spec)) = t.rsplit_once(':') {
        // `a ? b : x` is a conditional, not the spec x: a spec follows its expression directly.
        if !body.ends_with(':') && !body.ends_with(char::is_whitespace) {
            let spec = match spec {
                "x" => Some(Spec::Hex),
                "d" => Some(Spec::Dec),
                "s" => Some(Spec::Str),
                "p" => Some(Spec::Ptr),
                _ => None,
            };
            if spec.is_some() {
                return (body, spec);
            }
        }
    }
    (inner, None)
}

/// What a value path starts from.
#[derive(Clone, Debug, PartialEq)]
pub enum PathRoot {
    /// A variable (local, parameter or global) by source name.
    Var(String),
    /// A register, written `$rax`.
    Reg(Reg),
}

/// One step along a value path.
#[derive(Clone, Debug, PartialEq)]
pub enum PathStep {
    /// `.name`: a member of a struct value.
    Field(String),
    /// `->name`: a member of the struct a pointer points to.
    Arrow(String),
    /// `[n]`: an element of an array, or of what a pointer points to.
    Index(u64),
}

/// A value path: `*`? root (`.f` | `->f` | `[n]`)*.
#[derive(Clone, Debug, PartialEq)]
pub struct ValuePath {
    /// The variable or register the path starts from.
    pub root: PathRoot,
    /// Member and element steps, in order.
    pub steps: Vec<PathStep>,
    /// True when the path is prefixed with `*` (dereference the final pointer).
    pub deref: bool,
    /// The hole's text as the user wrote it (used as the value's name in JSON output).
    pub text: String,
    /// Its format spec.
    pub spec: Option<Spec>,
}

/// A template that could not be parsed: the position (in chars) and what was expected.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("template error at column {column}: {message}\n  {template}\n  {marker}")]
pub struct TemplateError {
    /// 1-based column of the problem.
    pub column: usize,
    /// What is wrong and how to fix it.
    pub message: String,
    /// The template as given.
    pub template: String,
    /// A caret under the column.
    pub marker: String,
}

impl TemplateError {
    fn new(template: &str, column0: usize, message: impl Into<String>) -> Self {
        TemplateError {
            column: column0 + 1,
            message: message.into(),
            template: template.to_string(),
            marker: format!("{}^", " ".repeat(column0)),
        }
    }
}

impl Template {
    /// Parses a template such as `order {id} qty={o->qty}`.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let chars: Vec<char> = text.chars().collect();
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '{' if chars.get(i + 1) == Some(&'{') => {
                    literal.push('{');
                    i += 2;
                }
                '}' if chars.get(i + 1) == Some(&'}') => {
                    literal.push('}');
                    i += 2;
                }
                '}' => {
                    return Err(TemplateError::new(
                        text,
                        i,
                        "unmatched '}': write '}}' for a literal brace",
                    ));
                }
                '{' => {
                    let close = chars[i + 1..]
                        .iter()
                        .position(|c| *c == '}')
                        .map(|p| p + i + 1)
                        .ok_or_else(|| {
                            TemplateError::new(text, i, "unclosed '{': close the value with '}', or write '{{' for a literal brace")
                        })?;
                    let inner: String = chars[i + 1..close].iter().collect();
                    let (body, spec) = split_spec(&inner);
                    if body.trim().is_empty() {
                        return Err(TemplateError::new(
                            text,
                            i + 1,
                            "empty '{}': name a variable, e.g. {count}, or write '{{' for a literal brace",
                        ));
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    // A plain value path is fetched by a plan; anything else is an
                    // expression, parsed and type-checked per site when the probe is set.
                    match parse_path(body) {
                        // `grid[1][2]`: rows of a multi-dimensional array are the
                        // expression compiler's (plans index one dimension).
                        Ok(path)
                            if path
                                .steps
                                .windows(2)
                                .any(|w| matches!(w, [PathStep::Index(_), PathStep::Index(_)])) =>
                        {
                            parts.push(Part::Expr(ExprHole {
                                text: body.trim().to_string(),
                                spec,
                            }))
                        }
                        Ok(mut path) => {
                            path.spec = spec;
                            parts.push(Part::Hole(path));
                        }
                        Err(_) => parts.push(Part::Expr(ExprHole {
                            text: body.trim().to_string(),
                            spec,
                        })),
                    }
                    i = close + 1;
                }
                c => {
                    literal.push(c);
                    i += 1;
                }
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template { parts })
    }

    /// The value-path holes of this template, in order.
    pub fn holes(&self) -> impl Iterator<Item = &ValuePath> {
        self.parts.iter().filter_map(|p| match p {
            Part::Hole(h) => Some(h),
            _ => None,
        })
    }

    /// The expression holes of this template, in order.
    pub fn expr_holes(&self) -> impl Iterator<Item = &ExprHole> {
        self.parts.iter().filter_map(|p| match p {
            Part::Expr(h) => Some(h),
            _ => None,
        })
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Parses the inside of a hole. Errors carry a 0-based column within `inner`.
pub fn parse_path(inner: &str) -> Result<ValuePath, (usize, String)> {
    let chars: Vec<char> = inner.chars().collect();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    skip_ws(&mut i);
    let mut deref = false;
    if chars.get(i) == Some(&'*') {
        deref = true;
        i += 1;
        skip_ws(&mut i);
    }
    let ident = |i: &mut usize| -> Option<String> {
        let start = *i;
        if *i < chars.len() && is_ident_start(chars[*i]) {
            while *i < chars.len() && is_ident(chars[*i]) {
                *i += 1;
            }
            Some(chars[start..*i].iter().collect())
        } else {
            None
        }
    };
    let root = if chars.get(i) == Some(&'$') {
        let at = i;
        i += 1;
        let name = ident(&mut i).ok_or((
            at,
            "expected a register name after '$', e.g. $rdi".to_string(),
        ))?;
        let reg = Reg::from_name(&name).ok_or((
            at,
            format!("unknown register ${name}: use one of $rax $rbx $rcx $rdx $rsi $rdi $rbp $rsp $r8..$r15 $rip $fs_base"),
        ))?;
        PathRoot::Reg(reg)
    } else {
        let at = i;
        let name = ident(&mut i).ok_or((
            at,
            if inner.trim().is_empty() {
                "empty '{}': name a variable, e.g. {count}, or write '{{' for a literal brace"
                    .to_string()
            } else {
                "expected a variable name or a register ($rdi)".to_string()
            },
        ))?;
        PathRoot::Var(name)
    };
    let mut steps = Vec::new();
    loop {
        skip_ws(&mut i);
        if i >= chars.len() {
            break;
        }
        let at = i;
        if chars[i] == '.' {
            i += 1;
            skip_ws(&mut i);
            let f = ident(&mut i).ok_or((i, "expected a member name after '.'".to_string()))?;
            steps.push(PathStep::Field(f));
        } else if chars[i] == '-' && chars.get(i + 1) == Some(&'>') {
            i += 2;
            skip_ws(&mut i);
            let f = ident(&mut i).ok_or((i, "expected a member name after '->'".to_string()))?;
            steps.push(PathStep::Arrow(f));
        } else if chars[i] == '[' {
            i += 1;
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let n: u64 = chars[start..i]
                .iter()
                .collect::<String>()
                .parse()
                .map_err(|_| (start, "expected a non-negative integer index".to_string()))?;
            if chars.get(i) != Some(&']') {
                return Err((i, "expected ']'".to_string()));
            }
            i += 1;
            steps.push(PathStep::Index(n));
        } else {
            return Err((
                at,
                format!(
                    "unexpected '{}': this version takes a variable with .member, ->member, [index] and a leading *",
                    chars[at]
                ),
            ));
        }
    }
    Ok(ValuePath {
        root,
        steps,
        deref,
        text: inner.trim().to_string(),
        spec: None,
    })
}

impl fmt::Display for ValuePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_literals_holes_and_escapes() {
        let t = Template::parse("order {id} qty={o->qty} {{x}} {$rdi} {a[3].b}").unwrap();
        let holes: Vec<String> = t.holes().map(|h| h.text.clone()).collect();
        assert_eq!(holes, vec!["id", "o->qty", "$rdi", "a[3].b"]);
        assert_eq!(t.parts[0], Part::Literal("order ".into()));
        assert_eq!(t.parts[4], Part::Literal(" {x} ".into()));
        let Part::Hole(h) = &t.parts[3] else { panic!() };
        assert_eq!(h.steps, vec![PathStep::Arrow("qty".into())]);
        let Part::Hole(r) = &t.parts[5] else { panic!() };
        assert_eq!(r.root, PathRoot::Reg(Reg::Rdi));
    }

    #[test]
    fn errors_name_the_column_and_the_fix() {
        let e = Template::parse("a {b").unwrap_err();
        assert_eq!(e.column, 3);
        assert!(e.message.contains("'{{'"));
        let e = Template::parse("x }").unwrap_err();
        assert_eq!(e.column, 3);
        let e = Template::parse("a {} b").unwrap_err();
        assert!(e.message.contains("empty"));
    }

    #[test]
    fn expressions_and_format_specs() {
        let t = Template::parse("{o->qty * 2} {x:x} {ns::v} {a ? b : x} {p:p} {name:s} {c?1:x}")
            .unwrap();
        assert_eq!(
            t.parts[0],
            Part::Expr(ExprHole {
                text: "o->qty * 2".into(),
                spec: None
            })
        );
        let Part::Hole(x) = &t.parts[2] else {
            panic!("{:?}", t.parts[2])
        };
        assert_eq!((x.text.as_str(), x.spec), ("x", Some(Spec::Hex)));
        let Part::Hole(v) = &t.parts[4] else { panic!() };
        assert_eq!((v.text.as_str(), v.spec), ("ns::v", None));
        assert_eq!(
            t.parts[6],
            Part::Expr(ExprHole {
                text: "a ? b : x".into(),
                spec: None
            })
        );
        let Part::Hole(p) = &t.parts[8] else { panic!() };
        assert_eq!(p.spec, Some(Spec::Ptr));
        let Part::Hole(n) = &t.parts[10] else {
            panic!()
        };
        assert_eq!(n.spec, Some(Spec::Str));
        // Without spaces, a trailing `:x` is a spec (documented: space your ?: in holes).
        assert_eq!(
            t.parts[12],
            Part::Expr(ExprHole {
                text: "c?1".into(),
                spec: Some(Spec::Hex)
            })
        );
        // Paths that do not parse as paths become expressions, checked when the probe is set.
        assert!(matches!(
            Template::parse("{o->}").unwrap().parts[0],
            Part::Expr(_)
        ));
    }
}
