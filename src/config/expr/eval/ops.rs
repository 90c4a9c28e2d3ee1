//! Operators, subscription and str methods with Python semantics.

use super::super::parse::{BinOp, CmpOp};
use super::super::value::{str_repr, PyVal};
use super::super::{ExprError, ExprErrorKind};
use super::hashable;
use crate::config::markers::is_py_space;
use std::cmp::Ordering;

#[derive(Clone, Copy)]
enum Num {
    I(i64),
    F(f64),
}

fn num(v: &PyVal) -> Option<Num> {
    match v {
        PyVal::Int(i) => Some(Num::I(*i)),
        PyVal::Bool(b) => Some(Num::I(*b as i64)),
        PyVal::Float(f) => Some(Num::F(*f)),
        _ => None,
    }
}

fn as_f(n: Num) -> f64 {
    match n {
        Num::I(i) => i as f64,
        Num::F(f) => f,
    }
}

fn overflow() -> ExprError {
    ExprError::new(ExprErrorKind::Overflow, "integer result exceeds 64 bits")
}

fn zero_div(msg: &str) -> ExprError {
    ExprError::new(ExprErrorKind::ZeroDivision, msg)
}

fn unsupported_operands(sym: &str, a: &PyVal, b: &PyVal) -> ExprError {
    ExprError::type_err(format!(
        "unsupported operand type(s) for {sym}: '{}' and '{}'",
        a.type_name(),
        b.type_name()
    ))
}

fn seq_times(a: &PyVal, n: i64) -> Option<PyVal> {
    let n = n.max(0) as usize;
    match a {
        PyVal::Str(s) => Some(PyVal::Str(s.repeat(n))),
        PyVal::List(v) => Some(PyVal::List(
            (0..n).flat_map(|_| v.iter().cloned()).collect(),
        )),
        PyVal::Tuple(v) => Some(PyVal::Tuple(
            (0..n).flat_map(|_| v.iter().cloned()).collect(),
        )),
        _ => None,
    }
}

pub fn binary(op: BinOp, a: &PyVal, b: &PyVal) -> Result<PyVal, ExprError> {
    let (na, nb) = (num(a), num(b));
    match op {
        BinOp::Add => match (a, b, na, nb) {
            (_, _, Some(Num::I(x)), Some(Num::I(y))) => {
                x.checked_add(y).map(PyVal::Int).ok_or_else(overflow)
            }
            (_, _, Some(x), Some(y)) => Ok(PyVal::Float(as_f(x) + as_f(y))),
            (PyVal::Str(x), PyVal::Str(y), ..) => Ok(PyVal::Str(format!("{x}{y}"))),
            (PyVal::List(x), PyVal::List(y), ..) => {
                Ok(PyVal::List([x.clone(), y.clone()].concat()))
            }
            (PyVal::Tuple(x), PyVal::Tuple(y), ..) => {
                Ok(PyVal::Tuple([x.clone(), y.clone()].concat()))
            }
            (PyVal::Str(_) | PyVal::List(_) | PyVal::Tuple(_), ..) => {
                Err(ExprError::type_err(format!(
                    "can only concatenate {} (not \"{}\") to {}",
                    a.type_name(),
                    b.type_name(),
                    a.type_name()
                )))
            }
            _ => Err(unsupported_operands("+", a, b)),
        },
        BinOp::Sub => match (na, nb) {
            (Some(Num::I(x)), Some(Num::I(y))) => {
                x.checked_sub(y).map(PyVal::Int).ok_or_else(overflow)
            }
            (Some(x), Some(y)) => Ok(PyVal::Float(as_f(x) - as_f(y))),
            _ => Err(unsupported_operands("-", a, b)),
        },
        BinOp::Mul => match (na, nb) {
            (Some(Num::I(x)), Some(Num::I(y))) => {
                x.checked_mul(y).map(PyVal::Int).ok_or_else(overflow)
            }
            (Some(x), Some(y)) => Ok(PyVal::Float(as_f(x) * as_f(y))),
            (None, Some(Num::I(n))) => {
                seq_times(a, n).ok_or_else(|| unsupported_operands("*", a, b))
            }
            (Some(Num::I(n)), None) => {
                seq_times(b, n).ok_or_else(|| unsupported_operands("*", a, b))
            }
            (None, Some(Num::F(_))) | (Some(Num::F(_)), None)
                if matches!(a, PyVal::Str(_) | PyVal::List(_) | PyVal::Tuple(_))
                    || matches!(b, PyVal::Str(_) | PyVal::List(_) | PyVal::Tuple(_)) =>
            {
                Err(ExprError::type_err(
                    "can't multiply sequence by non-int of type 'float'",
                ))
            }
            _ => Err(unsupported_operands("*", a, b)),
        },
        BinOp::Div => match (na, nb) {
            (Some(x), Some(y)) => {
                if as_f(y) == 0.0 {
                    return Err(zero_div(match (x, y) {
                        (Num::I(_), Num::I(_)) => "division by zero",
                        _ => "float division by zero",
                    }));
                }
                Ok(PyVal::Float(as_f(x) / as_f(y)))
            }
            _ => Err(unsupported_operands("/", a, b)),
        },
        BinOp::FloorDiv | BinOp::Mod => {
            let sym = if op == BinOp::Mod { "%" } else { "//" };
            if op == BinOp::Mod && matches!(a, PyVal::Str(_)) {
                return Err(ExprError::unsupported("'%' string formatting"));
            }
            match (na, nb) {
                (Some(Num::I(x)), Some(Num::I(y))) => {
                    if y == 0 {
                        return Err(zero_div("integer division or modulo by zero"));
                    }
                    // Python floors toward negative infinity.
                    let (x, y) = (x as i128, y as i128);
                    let (mut q, mut r) = (x / y, x % y);
                    if r != 0 && ((r < 0) != (y < 0)) {
                        q -= 1;
                        r += y;
                    }
                    let v = if op == BinOp::Mod { r } else { q };
                    i64::try_from(v).map(PyVal::Int).map_err(|_| overflow())
                }
                (Some(x), Some(y)) => {
                    let (x, y) = (as_f(x), as_f(y));
                    if y == 0.0 {
                        return Err(zero_div(if op == BinOp::Mod {
                            "float modulo"
                        } else {
                            "float floor division by zero"
                        }));
                    }
                    let q = (x / y).floor();
                    Ok(PyVal::Float(if op == BinOp::Mod { x - y * q } else { q }))
                }
                _ => Err(unsupported_operands(sym, a, b)),
            }
        }
        BinOp::Pow => match (na, nb) {
            (Some(Num::I(x)), Some(Num::I(y))) if y >= 0 => {
                let e = u32::try_from(y).map_err(|_| overflow())?;
                x.checked_pow(e).map(PyVal::Int).ok_or_else(overflow)
            }
            (Some(x), Some(y)) => {
                if as_f(x) == 0.0 && as_f(y) < 0.0 {
                    return Err(zero_div("0.0 cannot be raised to a negative power"));
                }
                Ok(PyVal::Float(as_f(x).powf(as_f(y))))
            }
            _ => Err(unsupported_operands("** or pow()", a, b)),
        },
    }
}

/// Python `==`.
pub fn py_eq(a: &PyVal, b: &PyVal) -> bool {
    if let (Some(x), Some(y)) = (num(a), num(b)) {
        return match (x, y) {
            (Num::I(x), Num::I(y)) => x == y,
            _ => as_f(x) == as_f(y),
        };
    }
    match (a, b) {
        (PyVal::None, PyVal::None) => true,
        (PyVal::Str(x), PyVal::Str(y)) => x == y,
        (PyVal::List(x), PyVal::List(y)) | (PyVal::Tuple(x), PyVal::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q))
        }
        (PyVal::Dict(x), PyVal::Dict(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.iter().any(|(k2, v2)| py_eq(k, k2) && py_eq(v, v2)))
        }
        (PyVal::Builtin(x), PyVal::Builtin(y)) => x == y,
        (PyVal::Module(x), PyVal::Module(y)) => x == y,
        _ => false,
    }
}

fn order(a: &PyVal, b: &PyVal, sym: &str) -> Result<Option<Ordering>, ExprError> {
    if let (Some(x), Some(y)) = (num(a), num(b)) {
        return Ok(match (x, y) {
            (Num::I(x), Num::I(y)) => Some(x.cmp(&y)),
            _ => as_f(x).partial_cmp(&as_f(y)),
        });
    }
    match (a, b) {
        (PyVal::Str(x), PyVal::Str(y)) => Ok(Some(x.cmp(y))),
        (PyVal::List(x), PyVal::List(y)) | (PyVal::Tuple(x), PyVal::Tuple(y)) => {
            for (p, q) in x.iter().zip(y) {
                if !py_eq(p, q) {
                    return order(p, q, sym);
                }
            }
            Ok(Some(x.len().cmp(&y.len())))
        }
        _ => Err(ExprError::type_err(format!(
            "'{sym}' not supported between instances of '{}' and '{}'",
            a.type_name(),
            b.type_name()
        ))),
    }
}

fn contains(container: &PyVal, item: &PyVal) -> Result<bool, ExprError> {
    match container {
        PyVal::Str(s) => match item {
            PyVal::Str(needle) => Ok(s.contains(needle.as_str())),
            other => Err(ExprError::type_err(format!(
                "'in <string>' requires string as left operand, not {}",
                other.type_name()
            ))),
        },
        PyVal::List(v) | PyVal::Tuple(v) => Ok(v.iter().any(|x| py_eq(x, item))),
        PyVal::Dict(pairs) => {
            hashable(item)?;
            Ok(pairs.iter().any(|(k, _)| py_eq(k, item)))
        }
        other => Err(ExprError::type_err(format!(
            "argument of type '{}' is not iterable",
            other.type_name()
        ))),
    }
}

fn identical(a: &PyVal, b: &PyVal) -> Result<bool, ExprError> {
    match (a, b) {
        (PyVal::None, PyVal::None) => Ok(true),
        (PyVal::Bool(x), PyVal::Bool(y)) => Ok(x == y),
        (PyVal::None | PyVal::Bool(_), _) | (_, PyVal::None | PyVal::Bool(_)) => Ok(false),
        _ => Err(ExprError::unsupported(format!(
            "'is' between a {} and a {} (use '==')",
            a.type_name(),
            b.type_name()
        ))),
    }
}

pub fn compare(op: CmpOp, a: &PyVal, b: &PyVal) -> Result<bool, ExprError> {
    Ok(match op {
        CmpOp::Eq => py_eq(a, b),
        CmpOp::Ne => !py_eq(a, b),
        CmpOp::Lt => order(a, b, "<")? == Some(Ordering::Less),
        CmpOp::Gt => order(a, b, ">")? == Some(Ordering::Greater),
        CmpOp::Le => matches!(order(a, b, "<=")?, Some(Ordering::Less | Ordering::Equal)),
        CmpOp::Ge => matches!(
            order(a, b, ">=")?,
            Some(Ordering::Greater | Ordering::Equal)
        ),
        CmpOp::In => contains(b, a)?,
        CmpOp::NotIn => !contains(b, a)?,
        CmpOp::Is => identical(a, b)?,
        CmpOp::IsNot => !identical(a, b)?,
    })
}

fn int_index(i: &PyVal, what: &str) -> Result<i64, ExprError> {
    match i {
        PyVal::Int(n) => Ok(*n),
        PyVal::Bool(b) => Ok(*b as i64),
        other => Err(ExprError::type_err(format!(
            "{what} indices must be integers or slices, not {}",
            other.type_name()
        ))),
    }
}

fn wrap(i: i64, len: usize, what: &str) -> Result<usize, ExprError> {
    let len = len as i64;
    let j = if i < 0 { i + len } else { i };
    if j < 0 || j >= len {
        return Err(ExprError::new(
            ExprErrorKind::Index,
            format!("{what} index out of range"),
        ));
    }
    Ok(j as usize)
}

pub fn index(obj: &PyVal, i: &PyVal) -> Result<PyVal, ExprError> {
    match obj {
        PyVal::List(v) => Ok(v[wrap(int_index(i, "list")?, v.len(), "list")?].clone()),
        PyVal::Tuple(v) => Ok(v[wrap(int_index(i, "tuple")?, v.len(), "tuple")?].clone()),
        PyVal::Str(s) => {
            let n = match i {
                PyVal::Int(n) => *n,
                PyVal::Bool(b) => *b as i64,
                other => {
                    return Err(ExprError::type_err(format!(
                        "string indices must be integers, not '{}'",
                        other.type_name()
                    )))
                }
            };
            let chars: Vec<char> = s.chars().collect();
            Ok(PyVal::Str(
                chars[wrap(n, chars.len(), "string")?].to_string(),
            ))
        }
        PyVal::Dict(pairs) => {
            hashable(i)?;
            pairs
                .iter()
                .find(|(k, _)| py_eq(k, i))
                .map(|(_, v)| v.clone())
                .ok_or_else(|| ExprError::new(ExprErrorKind::Key, i.py_repr()))
        }
        other => Err(ExprError::type_err(format!(
            "'{}' object is not subscriptable",
            other.type_name()
        ))),
    }
}

fn slice_indices(len: usize, bounds: &[Option<PyVal>; 3]) -> Result<Vec<usize>, ExprError> {
    let get = |b: &Option<PyVal>| -> Result<Option<i64>, ExprError> {
        match b {
            None | Some(PyVal::None) => Ok(None),
            Some(PyVal::Int(i)) => Ok(Some(*i)),
            Some(PyVal::Bool(x)) => Ok(Some(*x as i64)),
            Some(_) => Err(ExprError::type_err(
                "slice indices must be integers or None or have an __index__ method",
            )),
        }
    };
    let step = get(&bounds[2])?.unwrap_or(1);
    if step == 0 {
        return Err(ExprError::new(
            ExprErrorKind::Value,
            "slice step cannot be zero",
        ));
    }
    let len = len as i64;
    let clamp = |v: i64, lo: i64, hi: i64| v.max(lo).min(hi);
    let adj = |v: Option<i64>, default: i64, lo: i64, hi: i64| match v {
        None => default,
        Some(x) if x < 0 => clamp(x + len, lo, hi),
        Some(x) => clamp(x, lo, hi),
    };
    let mut out = Vec::new();
    if step > 0 {
        let start = adj(get(&bounds[0])?, 0, 0, len);
        let stop = adj(get(&bounds[1])?, len, 0, len);
        let mut i = start;
        while i < stop {
            out.push(i as usize);
            i += step;
        }
    } else {
        let start = adj(get(&bounds[0])?, len - 1, -1, len - 1);
        let stop = adj(get(&bounds[1])?, -1, -1, len - 1);
        let mut i = start;
        while i > stop {
            out.push(i as usize);
            i += step;
        }
    }
    Ok(out)
}

pub fn slice(obj: &PyVal, bounds: &[Option<PyVal>; 3]) -> Result<PyVal, ExprError> {
    match obj {
        PyVal::Str(s) => {
            let chars: Vec<char> = s.chars().collect();
            let idx = slice_indices(chars.len(), bounds)?;
            Ok(PyVal::Str(idx.into_iter().map(|i| chars[i]).collect()))
        }
        PyVal::List(v) => Ok(PyVal::List(
            slice_indices(v.len(), bounds)?
                .into_iter()
                .map(|i| v[i].clone())
                .collect(),
        )),
        PyVal::Tuple(v) => Ok(PyVal::Tuple(
            slice_indices(v.len(), bounds)?
                .into_iter()
                .map(|i| v[i].clone())
                .collect(),
        )),
        other => Err(ExprError::type_err(format!(
            "'{}' object is not subscriptable",
            other.type_name()
        ))),
    }
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
