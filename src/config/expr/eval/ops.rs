//! Operators, subscription and str methods with Python semantics.

use super::super::parse::{BinOp, CmpOp};
use super::super::value::PyVal;
use super::super::{ExprError, ExprErrorKind};
use super::{charge, hashable};
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

/// What building a copy of `v` costs against the budget: string bytes plus one per value,
/// nested values included (a repeated or concatenated list clones its items deeply; Python
/// shares them, here they are copied — `((1,)*9999,)*9999` must not be cheap).
fn weight(v: &PyVal) -> usize {
    match v {
        PyVal::Str(s) => s.len().max(1),
        PyVal::List(items) | PyVal::Tuple(items) => items
            .iter()
            .fold(1usize, |acc, x| acc.saturating_add(weight(x))),
        PyVal::Dict(pairs) => pairs.iter().fold(1usize, |acc, (k, x)| {
            acc.saturating_add(weight(k)).saturating_add(weight(x))
        }),
        _ => 1,
    }
}

/// [`weight`] of a sequence's items (a string: its bytes).
fn items_weight(a: &PyVal) -> usize {
    match a {
        PyVal::Str(s) => s.len(),
        PyVal::List(v) | PyVal::Tuple(v) => v
            .iter()
            .fold(0usize, |acc, x| acc.saturating_add(weight(x))),
        _ => 0,
    }
}

fn seq_times(a: &PyVal, n: i64) -> Option<Result<PyVal, ExprError>> {
    let n = n.max(0) as usize;
    let len = match a {
        PyVal::Str(_) | PyVal::List(_) | PyVal::Tuple(_) => items_weight(a),
        _ => return None,
    };
    if let Err(e) = charge(len.saturating_mul(n)) {
        return Some(Err(e));
    }
    Some(Ok(match a {
        PyVal::Str(s) => PyVal::Str(s.repeat(n)),
        PyVal::List(v) => PyVal::List((0..n).flat_map(|_| v.iter().cloned()).collect()),
        PyVal::Tuple(v) => PyVal::Tuple((0..n).flat_map(|_| v.iter().cloned()).collect()),
        _ => return None,
    }))
}

pub fn binary(op: BinOp, a: &PyVal, b: &PyVal) -> Result<PyVal, ExprError> {
    let (na, nb) = (num(a), num(b));
    match op {
        BinOp::Add => match (a, b, na, nb) {
            (_, _, Some(Num::I(x)), Some(Num::I(y))) => {
                x.checked_add(y).map(PyVal::Int).ok_or_else(overflow)
            }
            (_, _, Some(x), Some(y)) => Ok(PyVal::Float(as_f(x) + as_f(y))),
            (PyVal::Str(x), PyVal::Str(y), ..) => {
                charge(x.len() + y.len())?;
                Ok(PyVal::Str(format!("{x}{y}")))
            }
            (PyVal::List(x), PyVal::List(y), ..) => {
                charge(items_weight(a).saturating_add(items_weight(b)))?;
                Ok(PyVal::List([x.clone(), y.clone()].concat()))
            }
            (PyVal::Tuple(x), PyVal::Tuple(y), ..) => {
                charge(items_weight(a).saturating_add(items_weight(b)))?;
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
                seq_times(a, n).unwrap_or_else(|| Err(unsupported_operands("*", a, b)))
            }
            (Some(Num::I(n)), None) => {
                seq_times(b, n).unwrap_or_else(|| Err(unsupported_operands("*", a, b)))
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
