//! str methods and the `int()`/`float()` conversions, with Python semantics.

use super::super::value::PyVal;
use super::super::{ExprError, ExprErrorKind};
use super::charge;
use crate::config::pytext::{is_py_space, str_repr};

fn overflow() -> ExprError {
    ExprError::new(ExprErrorKind::Overflow, "integer result exceeds 64 bits")
}

fn arg_str<'a>(method: &str, v: &'a PyVal) -> Result<&'a str, ExprError> {
    match v {
        PyVal::Str(s) => Ok(s),
        other => Err(ExprError::type_err(format!(
            "{method}() argument must be str, not {}",
            other.type_name()
        ))),
    }
}

fn strip_chars(args: &[PyVal], method: &str) -> Result<Option<Vec<char>>, ExprError> {
    match args {
        [] | [PyVal::None] => Ok(None),
        [PyVal::Str(c)] => Ok(Some(c.chars().collect())),
        [other] => Err(ExprError::type_err(format!(
            "{method} arg must be None or str, not {}",
            other.type_name()
        ))),
        _ => Err(ExprError::type_err(format!(
            "{method}() takes at most 1 argument ({} given)",
            args.len()
        ))),
    }
}

pub fn str_method(s: &str, name: &str, args: Vec<PyVal>) -> Result<PyVal, ExprError> {
    let nargs = |min: usize, max: usize| {
        if args.len() < min || args.len() > max {
            Err(ExprError::type_err(format!(
                "{name}() takes from {min} to {max} arguments ({} given)",
                args.len()
            )))
        } else {
            Ok(())
        }
    };
    match name {
        "startswith" | "endswith" => {
            if args.len() > 1 {
                return Err(ExprError::unsupported(format!("{name}() with start/end")));
            }
            nargs(1, 1)?;
            let test = |p: &str| {
                if name == "startswith" {
                    s.starts_with(p)
                } else {
                    s.ends_with(p)
                }
            };
            match &args[0] {
                PyVal::Str(p) => Ok(PyVal::Bool(test(p))),
                PyVal::Tuple(items) => {
                    for it in items {
                        match it {
                            PyVal::Str(p) if test(p) => return Ok(PyVal::Bool(true)),
                            PyVal::Str(_) => {}
                            other => {
                                return Err(ExprError::type_err(format!(
                                    "tuple for {name} must only contain str, not {}",
                                    other.type_name()
                                )))
                            }
                        }
                    }
                    Ok(PyVal::Bool(false))
                }
                other => Err(ExprError::type_err(format!(
                    "{name} first arg must be str or a tuple of str, not {}",
                    other.type_name()
                ))),
            }
        }
        "replace" => {
            nargs(2, 3)?;
            let old = arg_str(name, &args[0])?;
            let new = arg_str(name, &args[1])?;
            // Worst case (every occurrence replaced), charged before anything is built.
            let hits = if old.is_empty() {
                s.chars().count() + 1
            } else {
                s.matches(old).count()
            };
            charge(s.len().saturating_add(hits.saturating_mul(new.len())))?;
            match args.get(2) {
                None => Ok(PyVal::Str(s.replace(old, new))),
                Some(PyVal::Int(n)) if *n < 0 => Ok(PyVal::Str(s.replace(old, new))),
                Some(PyVal::Int(n)) => Ok(PyVal::Str(s.replacen(old, new, *n as usize))),
                Some(other) => Err(ExprError::type_err(format!(
                    "'{}' object cannot be interpreted as an integer",
                    other.type_name()
                ))),
            }
        }
        "join" => {
            nargs(1, 1)?;
            let items: Vec<PyVal> = match &args[0] {
                PyVal::List(v) | PyVal::Tuple(v) => v.clone(),
                PyVal::Dict(p) => p.iter().map(|(k, _)| k.clone()).collect(),
                PyVal::Str(t) => t.chars().map(|c| PyVal::Str(c.to_string())).collect(),
                other => {
                    return Err(ExprError::type_err(format!(
                        "can only join an iterable, not {}",
                        other.type_name()
                    )))
                }
            };
            let mut parts = Vec::with_capacity(items.len());
            for (i, it) in items.iter().enumerate() {
                match it {
                    PyVal::Str(p) => parts.push(p.as_str()),
                    other => {
                        return Err(ExprError::type_err(format!(
                            "sequence item {i}: expected str instance, {} found",
                            other.type_name()
                        )))
                    }
                }
            }
            let size = parts.iter().map(|p| p.len()).sum::<usize>()
                + s.len().saturating_mul(parts.len().saturating_sub(1));
            charge(size)?;
            Ok(PyVal::Str(parts.join(s)))
        }
        "lower" => nargs(0, 0).map(|_| PyVal::Str(s.to_lowercase())),
        "upper" => nargs(0, 0).map(|_| PyVal::Str(s.to_uppercase())),
        "strip" | "lstrip" | "rstrip" => {
            let set = strip_chars(&args, name)?;
            let pred = |c: char| match &set {
                Some(cs) => cs.contains(&c),
                None => is_py_space(c),
            };
            Ok(PyVal::Str(
                match name {
                    "strip" => s.trim_matches(pred),
                    "lstrip" => s.trim_start_matches(pred),
                    _ => s.trim_end_matches(pred),
                }
                .to_string(),
            ))
        }
        "split" => {
            nargs(0, 2)?;
            let maxsplit = match args.get(1) {
                None => -1,
                Some(PyVal::Int(n)) => *n,
                Some(other) => {
                    return Err(ExprError::type_err(format!(
                        "'{}' object cannot be interpreted as an integer",
                        other.type_name()
                    )))
                }
            };
            let parts: Vec<String> = match args.first() {
                None | Some(PyVal::None) => {
                    if maxsplit >= 0 {
                        return Err(ExprError::unsupported("split(None, maxsplit)"));
                    }
                    s.split(is_py_space)
                        .filter(|p| !p.is_empty())
                        .map(str::to_string)
                        .collect()
                }
                Some(PyVal::Str(sep)) if sep.is_empty() => {
                    return Err(ExprError::new(ExprErrorKind::Value, "empty separator"))
                }
                Some(PyVal::Str(sep)) if maxsplit >= 0 => s
                    .splitn(maxsplit as usize + 1, sep.as_str())
                    .map(str::to_string)
                    .collect(),
                Some(PyVal::Str(sep)) => s.split(sep.as_str()).map(str::to_string).collect(),
                Some(other) => {
                    return Err(ExprError::type_err(format!(
                        "must be str or None, not {}",
                        other.type_name()
                    )))
                }
            };
            Ok(PyVal::List(parts.into_iter().map(PyVal::Str).collect()))
        }
        other => Err(ExprError::unsupported(format!("the str method '{other}'"))),
    }
}

/// Python `float(x)`.
pub fn py_float(v: PyVal) -> Result<PyVal, ExprError> {
    match v {
        PyVal::Float(f) => Ok(PyVal::Float(f)),
        PyVal::Int(i) => Ok(PyVal::Float(i as f64)),
        PyVal::Bool(b) => Ok(PyVal::Float(b as i64 as f64)),
        PyVal::Str(s) => {
            let t = s.trim_matches(is_py_space);
            let parsed = underscores(t).and_then(|clean| {
                let lower = clean.to_ascii_lowercase();
                let body = lower.trim_start_matches(['+', '-']);
                let word_ok = matches!(body, "inf" | "infinity" | "nan");
                let num_ok = !body.is_empty()
                    && body
                        .chars()
                        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | '+' | '-'));
                (word_ok || num_ok)
                    .then(|| clean.parse::<f64>().ok())
                    .flatten()
            });
            match parsed {
                Some(f) => Ok(PyVal::Float(f)),
                None => Err(ExprError::new(
                    ExprErrorKind::Value,
                    format!("could not convert string to float: {}", str_repr(&s)),
                )),
            }
        }
        other => Err(ExprError::type_err(format!(
            "float() argument must be a string or a real number, not '{}'",
            other.type_name()
        ))),
    }
}

/// Remove single underscores between digits (Python numeric-literal rules); `None` when an
/// underscore is misplaced.
fn underscores(t: &str) -> Option<String> {
    let chars: Vec<char> = t.chars().collect();
    let mut out = String::with_capacity(t.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' {
            let ok = i > 0
                && chars[i - 1].is_ascii_digit()
                && chars.get(i + 1).is_some_and(char::is_ascii_digit);
            if !ok {
                return None;
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Python `int(str)` in base 10.
pub fn parse_int(s: &str) -> Result<i64, ExprError> {
    let bad = || {
        ExprError::new(
            ExprErrorKind::Value,
            format!("invalid literal for int() with base 10: {}", str_repr(s)),
        )
    };
    let t = s.trim_matches(is_py_space);
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if body.is_empty() || !body.chars().all(|c| c.is_ascii_digit() || c == '_') {
        return Err(bad());
    }
    let digits = underscores(body).ok_or_else(bad)?;
    let v: i128 = digits.parse().map_err(|_| overflow())?;
    let v = if neg { -v } else { v };
    i64::try_from(v).map_err(|_| overflow())
}
