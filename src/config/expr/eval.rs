//! Interpreter: Python semantics for the supported subset.

mod ops;
mod strings;

use super::parse::{Expr, UnOp};
use super::value::PyVal;
use super::{ExprError, ExprErrorKind, MAX_PRODUCED};
use ops::{binary, compare, index, py_eq, slice};

const BUILTINS: [&str; 5] = ["len", "int", "str", "float", "bool"];
const STR_METHODS: [&str; 10] = [
    "startswith",
    "endswith",
    "replace",
    "join",
    "lower",
    "upper",
    "strip",
    "lstrip",
    "rstrip",
    "split",
];

thread_local! {
    /// What the evaluation running on this thread may still produce (see [`MAX_PRODUCED`]).
    static BUDGET: std::cell::Cell<usize> = const { std::cell::Cell::new(MAX_PRODUCED) };
}

/// Evaluate `e` with a fresh production budget.
pub fn eval_budgeted(e: &Expr) -> Result<PyVal, ExprError> {
    BUDGET.with(|b| b.set(MAX_PRODUCED));
    eval(e)
}

/// Account for a string of `n` bytes (or a sequence of `n` items) about to be built; refuse
/// once the evaluation has produced more than [`MAX_PRODUCED`] in total.
pub(super) fn charge(n: usize) -> Result<(), ExprError> {
    BUDGET.with(|b| match b.get().checked_sub(n) {
        Some(left) => {
            b.set(left);
            Ok(())
        }
        None => Err(ExprError::new(
            ExprErrorKind::Limit,
            format!(
                "the result would exceed {} MiB (MemoryError in Python terms)",
                MAX_PRODUCED >> 20
            ),
        )),
    })
}

pub fn eval(e: &Expr) -> Result<PyVal, ExprError> {
    Ok(match e {
        Expr::Const(v) => v.clone(),
        Expr::Name(n) => name(n)?,
        Expr::List(items) => PyVal::List(items.iter().map(eval).collect::<Result<_, _>>()?),
        Expr::Tuple(items) => PyVal::Tuple(items.iter().map(eval).collect::<Result<_, _>>()?),
        Expr::Dict(pairs) => {
            let mut out: Vec<(PyVal, PyVal)> = Vec::new();
            for (k, v) in pairs {
                let k = eval(k)?;
                hashable(&k)?;
                let v = eval(v)?;
                match out.iter_mut().find(|(ek, _)| py_eq(ek, &k)) {
                    Some(slot) => slot.1 = v,
                    None => out.push((k, v)),
                }
            }
            PyVal::Dict(out)
        }
        Expr::Attr(obj, attr) => attribute(eval(obj)?, attr)?,
        Expr::Call(f, args) => {
            let f = eval(f)?;
            let args = args.iter().map(eval).collect::<Result<Vec<_>, _>>()?;
            call(f, args)?
        }
        Expr::Index(obj, i) => {
            let obj = eval(obj)?;
            let i = eval(i)?;
            index(&obj, &i)?
        }
        Expr::Slice(obj, parts) => {
            let obj = eval(obj)?;
            let mut bounds = [None, None, None];
            for (b, p) in bounds.iter_mut().zip(parts.iter()) {
                if let Some(p) = p {
                    *b = Some(eval(p)?);
                }
            }
            slice(&obj, &bounds)?
        }
        Expr::Unary(op, x) => unary(*op, eval(x)?)?,
        Expr::Bin(op, a, b) => {
            let a = eval(a)?;
            let b = eval(b)?;
            binary(*op, &a, &b)?
        }
        Expr::Compare(first, rest) => {
            let mut left = eval(first)?;
            for (op, right) in rest {
                let right = eval(right)?;
                if !compare(*op, &left, &right)? {
                    return Ok(PyVal::Bool(false));
                }
                left = right;
            }
            PyVal::Bool(true)
        }
        Expr::And(a, b) => {
            let a = eval(a)?;
            if !a.truthy() {
                a
            } else {
                eval(b)?
            }
        }
        Expr::Or(a, b) => {
            let a = eval(a)?;
            if a.truthy() {
                a
            } else {
                eval(b)?
            }
        }
        Expr::Not(x) => PyVal::Bool(!eval(x)?.truthy()),
        Expr::IfElse(cond, then, other) => {
            if eval(cond)?.truthy() {
                eval(then)?
            } else {
                eval(other)?
            }
        }
    })
}

fn name(n: &str) -> Result<PyVal, ExprError> {
    if n == "os" {
        return Ok(PyVal::Module("os"));
    }
    if let Some(b) = BUILTINS.iter().find(|b| **b == n) {
        return Ok(PyVal::Builtin(b));
    }
    Err(ExprError::new(
        ExprErrorKind::Name,
        format!("name '{n}' is not defined"),
    ))
}

pub(super) fn hashable(k: &PyVal) -> Result<(), ExprError> {
    match k {
        PyVal::List(_) | PyVal::Dict(_) => Err(ExprError::type_err(format!(
            "unhashable type: '{}'",
            k.type_name()
        ))),
        PyVal::Tuple(items) => items.iter().try_for_each(hashable),
        _ => Ok(()),
    }
}

fn attribute(obj: PyVal, attr: &str) -> Result<PyVal, ExprError> {
    match &obj {
        PyVal::Module(_) => match attr {
            "access" => Ok(PyVal::Builtin("os.access")),
            "F_OK" => Ok(PyVal::Int(0)),
            "X_OK" => Ok(PyVal::Int(1)),
            "W_OK" => Ok(PyVal::Int(2)),
            "R_OK" => Ok(PyVal::Int(4)),
            _ => Err(ExprError::unsupported(format!("'os.{attr}'"))),
        },
        PyVal::Str(_) => match STR_METHODS.iter().find(|m| **m == attr) {
            Some(m) => Ok(PyVal::Method(Box::new(obj), m)),
            None if attr.starts_with("__") || has_str_attr(attr) => {
                Err(ExprError::unsupported(format!("the str method '{attr}'")))
            }
            None => Err(no_attr(&obj, attr)),
        },
        _ => Err(no_attr(&obj, attr)),
    }
}

fn has_str_attr(attr: &str) -> bool {
    const OTHER: [&str; 30] = [
        "format",
        "capitalize",
        "casefold",
        "center",
        "count",
        "encode",
        "expandtabs",
        "find",
        "format_map",
        "index",
        "isalnum",
        "isalpha",
        "isascii",
        "isdecimal",
        "isdigit",
        "isidentifier",
        "islower",
        "isnumeric",
        "isprintable",
        "isspace",
        "istitle",
        "isupper",
        "ljust",
        "partition",
        "removeprefix",
        "removesuffix",
        "rfind",
        "rsplit",
        "splitlines",
        "title",
    ];
    OTHER.contains(&attr) || ["zfill", "swapcase", "translate", "rjust", "rindex"].contains(&attr)
}

fn no_attr(obj: &PyVal, attr: &str) -> ExprError {
    ExprError::new(
        ExprErrorKind::Attribute,
        format!("'{}' object has no attribute '{attr}'", obj.type_name()),
    )
}

fn unary(op: UnOp, x: PyVal) -> Result<PyVal, ExprError> {
    let bad = |sym: &str, x: &PyVal| {
        ExprError::type_err(format!(
            "bad operand type for unary {sym}: '{}'",
            x.type_name()
        ))
    };
    let overflow = || ExprError::new(ExprErrorKind::Overflow, "integer result exceeds 64 bits");
    Ok(match (op, &x) {
        (UnOp::Neg, PyVal::Int(i)) => PyVal::Int(i.checked_neg().ok_or_else(overflow)?),
        (UnOp::Neg, PyVal::Bool(b)) => PyVal::Int(-(*b as i64)),
        (UnOp::Neg, PyVal::Float(f)) => PyVal::Float(-f),
        (UnOp::Pos, PyVal::Int(_) | PyVal::Float(_)) => x,
        (UnOp::Pos, PyVal::Bool(b)) => PyVal::Int(*b as i64),
        (UnOp::Invert, PyVal::Int(i)) => PyVal::Int(!i),
        (UnOp::Invert, PyVal::Bool(b)) => PyVal::Int(!(*b as i64)),
        (UnOp::Neg, _) => return Err(bad("-", &x)),
        (UnOp::Pos, _) => return Err(bad("+", &x)),
        (UnOp::Invert, _) => return Err(bad("~", &x)),
    })
}

fn arity(name: &str, args: &[PyVal], min: usize, max: usize) -> Result<(), ExprError> {
    if args.len() < min || args.len() > max {
        return Err(ExprError::type_err(format!(
            "{name}() takes {} argument{} ({} given)",
            if min == max {
                min.to_string()
            } else {
                format!("{min} to {max}")
            },
            if max == 1 { "" } else { "s" },
            args.len()
        )));
    }
    Ok(())
}

fn call(f: PyVal, args: Vec<PyVal>) -> Result<PyVal, ExprError> {
    match f {
        PyVal::Builtin(name) => builtin(name, args),
        PyVal::Method(recv, name) => match *recv {
            PyVal::Str(s) => strings::str_method(&s, name, args),
            other => Err(no_attr(&other, name)),
        },
        other => Err(ExprError::type_err(format!(
            "'{}' object is not callable",
            other.type_name()
        ))),
    }
}

fn builtin(name: &str, mut args: Vec<PyVal>) -> Result<PyVal, ExprError> {
    match name {
        "len" => {
            arity("len", &args, 1, 1)?;
            let n = match &args[0] {
                PyVal::Str(s) => s.chars().count(),
                PyVal::List(v) | PyVal::Tuple(v) => v.len(),
                PyVal::Dict(v) => v.len(),
                other => {
                    return Err(ExprError::type_err(format!(
                        "object of type '{}' has no len()",
                        other.type_name()
                    )))
                }
            };
            Ok(PyVal::Int(n as i64))
        }
        "int" => {
            arity("int", &args, 0, 1)?;
            match args.pop() {
                None => Ok(PyVal::Int(0)),
                Some(v) => py_int(&v),
            }
        }
        "str" => {
            arity("str", &args, 0, 1)?;
            Ok(PyVal::Str(
                args.pop().map(|v| v.py_str()).unwrap_or_default(),
            ))
        }
        "bool" => {
            arity("bool", &args, 0, 1)?;
            Ok(PyVal::Bool(args.pop().is_some_and(|v| v.truthy())))
        }
        "float" => {
            arity("float", &args, 0, 1)?;
            strings::py_float(args.pop().unwrap_or(PyVal::Float(0.0)))
        }
        "os.access" => {
            arity("access", &args, 2, 2)?;
            match (&args[0], &args[1]) {
                (PyVal::Str(path), PyVal::Int(mode)) => {
                    let Ok(c) = std::ffi::CString::new(path.as_bytes()) else {
                        return Err(ExprError::new(
                            ExprErrorKind::Value,
                            "access: embedded null character in path",
                        ));
                    };
                    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
                    let rc = unsafe { libc::access(c.as_ptr(), *mode as libc::c_int) };
                    Ok(PyVal::Bool(rc == 0))
                }
                _ => Err(ExprError::type_err(
                    "access() needs a path string and an int mode (os.R_OK/W_OK/X_OK/F_OK)",
                )),
            }
        }
        other => Err(ExprError::unsupported(format!("the builtin '{other}'"))),
    }
}

/// Python `int(x)` (base 10 for strings).
pub fn py_int(v: &PyVal) -> Result<PyVal, ExprError> {
    match v {
        PyVal::Int(i) => Ok(PyVal::Int(*i)),
        PyVal::Bool(b) => Ok(PyVal::Int(*b as i64)),
        PyVal::Float(f) => {
            if f.is_nan() {
                Err(ExprError::new(
                    ExprErrorKind::Value,
                    "cannot convert float NaN to integer",
                ))
            } else if f.is_infinite() {
                Err(ExprError::new(
                    ExprErrorKind::Overflow,
                    "cannot convert float infinity to integer",
                ))
            } else if f.trunc().abs() >= 9.223_372_036_854_776e18 {
                Err(ExprError::new(
                    ExprErrorKind::Overflow,
                    "integer result exceeds 64 bits",
                ))
            } else {
                Ok(PyVal::Int(f.trunc() as i64))
            }
        }
        PyVal::Str(s) => strings::parse_int(s).map(PyVal::Int),
        other => Err(ExprError::type_err(format!(
            "int() argument must be a string, a bytes-like object or a real number, not '{}'",
            other.type_name()
        ))),
    }
}
