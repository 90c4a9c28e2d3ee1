//! Python values of the evaluator, their `str()`/`repr()` text and JSON conversion.

use super::{ExprError, ExprErrorKind};
use crate::config::pytext::{float_repr, str_repr};
use serde_json::{Map, Number, Value};

/// A Python value.
#[derive(Debug, Clone, PartialEq)]
pub enum PyVal {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<PyVal>),
    Tuple(Vec<PyVal>),
    /// Insertion-ordered.
    Dict(Vec<(PyVal, PyVal)>),
    /// A builtin function (`len`, `os.access`, …).
    Builtin(&'static str),
    /// A bound str method: receiver and method name.
    Method(Box<PyVal>, &'static str),
    /// The `os` module.
    Module(&'static str),
}

impl PyVal {
    /// From JSON (objects become dicts with str keys; numbers int when they fit i64).
    pub fn from_json(v: &Value) -> PyVal {
        match v {
            Value::Null => PyVal::None,
            Value::Bool(b) => PyVal::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => PyVal::Int(i),
                None => PyVal::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => PyVal::Str(s.clone()),
            Value::Array(a) => PyVal::List(a.iter().map(PyVal::from_json).collect()),
            Value::Object(m) => PyVal::Dict(
                m.iter()
                    .map(|(k, v)| (PyVal::Str(k.clone()), PyVal::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// To JSON (tuples become lists; dict keys become their JSON key text as `json.dumps`
    /// writes them). Functions and NaN/infinite floats cannot be represented.
    pub fn to_json(&self) -> Result<Value, ExprError> {
        Ok(match self {
            PyVal::None => Value::Null,
            PyVal::Bool(b) => Value::Bool(*b),
            PyVal::Int(i) => Value::Number((*i).into()),
            PyVal::Float(f) => Value::Number(Number::from_f64(*f).ok_or_else(|| {
                ExprError::new(
                    ExprErrorKind::Value,
                    format!("cannot represent float {} in JSON", float_repr(*f)),
                )
            })?),
            PyVal::Str(s) => Value::String(s.clone()),
            PyVal::List(items) | PyVal::Tuple(items) => {
                Value::Array(items.iter().map(PyVal::to_json).collect::<Result<_, _>>()?)
            }
            PyVal::Dict(pairs) => {
                let mut m = Map::new();
                for (k, v) in pairs {
                    let key = match k {
                        PyVal::Str(s) => s.clone(),
                        PyVal::Int(i) => i.to_string(),
                        PyVal::Float(f) => float_repr(*f),
                        PyVal::Bool(b) => b.to_string(),
                        PyVal::None => "null".to_string(),
                        other => {
                            return Err(ExprError::type_err(format!(
                                "keys must be str, int, float, bool or None, not {}",
                                other.type_name()
                            )))
                        }
                    };
                    m.insert(key, v.to_json()?);
                }
                Value::Object(m)
            }
            other => {
                return Err(ExprError::type_err(format!(
                    "a {} cannot be a configuration value",
                    other.type_name()
                )))
            }
        })
    }

    /// Python truthiness.
    pub fn truthy(&self) -> bool {
        match self {
            PyVal::None => false,
            PyVal::Bool(b) => *b,
            PyVal::Int(i) => *i != 0,
            PyVal::Float(f) => *f != 0.0,
            PyVal::Str(s) => !s.is_empty(),
            PyVal::List(v) | PyVal::Tuple(v) => !v.is_empty(),
            PyVal::Dict(v) => !v.is_empty(),
            _ => true,
        }
    }

    /// Python type name (`str`, `int`, …).
    pub fn type_name(&self) -> &'static str {
        match self {
            PyVal::None => "NoneType",
            PyVal::Bool(_) => "bool",
            PyVal::Int(_) => "int",
            PyVal::Float(_) => "float",
            PyVal::Str(_) => "str",
            PyVal::List(_) => "list",
            PyVal::Tuple(_) => "tuple",
            PyVal::Dict(_) => "dict",
            PyVal::Builtin(_) => "builtin_function_or_method",
            PyVal::Method(..) => "builtin_function_or_method",
            PyVal::Module(_) => "module",
        }
    }

    /// Python `str(x)`.
    pub fn py_str(&self) -> String {
        match self {
            PyVal::Str(s) => s.clone(),
            other => other.py_repr(),
        }
    }

    /// Python `repr(x)`.
    pub fn py_repr(&self) -> String {
        match self {
            PyVal::None => "None".into(),
            PyVal::Bool(true) => "True".into(),
            PyVal::Bool(false) => "False".into(),
            PyVal::Int(i) => i.to_string(),
            PyVal::Float(f) => float_repr(*f),
            PyVal::Str(s) => str_repr(s),
            PyVal::List(items) => format!("[{}]", join_repr(items)),
            PyVal::Tuple(items) if items.len() == 1 => format!("({},)", items[0].py_repr()),
            PyVal::Tuple(items) => format!("({})", join_repr(items)),
            PyVal::Dict(pairs) => {
                let inner: Vec<String> = pairs
                    .iter()
                    .map(|(k, v)| format!("{}: {}", k.py_repr(), v.py_repr()))
                    .collect();
                format!("{{{}}}", inner.join(", "))
            }
            PyVal::Builtin(name) => format!("<built-in function {name}>"),
            PyVal::Method(_, name) => format!("<built-in method {name} of str object>"),
            PyVal::Module(name) => format!("<module '{name}'>"),
        }
    }
}

fn join_repr(items: &[PyVal]) -> String {
    items
        .iter()
        .map(PyVal::py_repr)
        .collect::<Vec<_>>()
        .join(", ")
}
