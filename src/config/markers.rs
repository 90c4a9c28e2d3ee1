//! OSImager value markers (`%>k<%`, `>>k<<`, `E>expr<E`, `[>k<]`, …): the equivalent of the
//! original's `do_sub` ([`substitute_value`]) and `do_substr` ([`substitute_str`]).
//!
//! Semantics follow OSImager 1.11.1 exactly:
//! - the twelve markers are applied in a fixed order (see [`MARKERS`]); for each marker the
//!   tokens are collected from the current text line by line, non-greedily, then replaced;
//! - a token whose key is not a variable name (letters, digits, `_/,:`) is left alone, except
//!   for `#>…<#` and `E>…<E`; keys other than `>>k<<`/`E>` have surrounding quotes stripped;
//! - when the whole (whitespace-trimmed) string is one marker, its typed value is returned (a
//!   list, an int, a bool, …) and the remaining markers are not applied; otherwise the value's
//!   Python `str()` text replaces every occurrence of the marker;
//! - missing defs give `""`, `None` results give `""`;
//! - in a list, an element that is exactly `[>k<]` is replaced by the items of list def `k`
//!   (unsubstituted), or dropped when `k` is not a def.
//!
//! Deliberate differences (safer, documented): a secret that cannot be read because the store
//! is unreachable or forbids the path is an error (the original printed and went on with ""); a
//! missing secret in `|>…<|` is a warning and "" (as before), but in `1>`/`5>`/`6>` it is an
//! error (the original would hash the empty password or crash). Where the original raised
//! (an `E>` expression that fails, `+>k<+` of a non-string def, a list-valued object key) we
//! return a [`MarkerError`] carrying the key path.

mod env;
mod vault_refs;

pub use env::DefsEnv;
pub use vault_refs::{resolve_packer_vault_refs, uses_secret_refs};

use crate::config::crypt::{self, CryptMethod};
use crate::config::expr::{self, ExprError, PyVal};
use crate::config::pytext::{is_line_break, is_py_space, py_strip};
use crate::config::secret_error::SecretError;
use crate::secret::{redact, Secret};
use serde_json::{Map, Value};

/// Everything the markers need from their surroundings.
pub trait MarkerEnv {
    /// Value of def `key`; `None` when the def does not exist (a def whose value is JSON null
    /// exists and is returned as `Some(Value::Null)`).
    fn def(&self, key: &str) -> Option<Value>;
    /// Secret reference `path[:key]` (`|>path:key<|`, `1>`, `5>`, `6>`, `{{vault …}}`).
    /// Without `:key` the whole entry, rendered like a Python dict.
    fn secret(&self, reference: &str) -> Result<Secret, SecretError>;
    /// DNS A lookup of `name` (the system resolver, as the original's `*>k<*` uses); `None` on
    /// any failure.
    fn lookup_a(&self, name: &str) -> Option<String>;
    /// Environment variable (`$>VAR<$`); `None` when unset.
    fn env_var(&self, name: &str) -> Option<String> {
        crate::config::env::var(name)
    }
    /// Receives non-fatal problems (missing secret, bad `#>` key …). `warning.key` is the path
    /// of the value inside what was substituted; the implementation adds the origin file.
    fn warn(&self, warning: MarkerWarning);
}

/// A non-fatal problem found while substituting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerWarning {
    /// Path of the value inside the substituted value (`boot_command[2]`, `ssh_password`, …);
    /// empty for a top-level string.
    pub key: String,
    /// What happened (secrets already redacted).
    pub message: String,
    /// Set when a secret that does not exist was replaced by "" (a build refuses to go on
    /// with that: `ResolveRequest::require_secrets`).
    pub missing_secret: Option<MissingSecret>,
}

/// A secret reference that named no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingSecret {
    /// The marker as written (`|>images/linux:password<|`, `{{vault `p` `k`}}`).
    pub marker: String,
    /// Why it was not found: which store, mount and path were read, and what to do.
    pub error: String,
}

impl std::fmt::Display for MarkerWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// A fatal substitution error. `key` is the path of the value inside the substituted value;
/// callers add the origin file.
#[derive(Debug, thiserror::Error)]
pub enum MarkerError {
    #[error("{}expression E>{expr}<E: {source}", at(key))]
    Expr {
        key: String,
        /// The expression as evaluated (secrets redacted).
        expr: String,
        #[source]
        source: ExprError,
    },
    #[error("{}{marker} marker: {source}", at(key))]
    Secret {
        key: String,
        /// The marker as written, e.g. `6>images/linux:password<6`.
        marker: String,
        #[source]
        source: Box<SecretError>,
    },
    #[error("{}{marker} marker: {message}", at(key))]
    Invalid {
        key: String,
        marker: String,
        message: String,
    },
}

fn at(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!("{key}: ")
    }
}

impl MarkerError {
    /// Path of the value inside the substituted value.
    pub fn key(&self) -> &str {
        match self {
            MarkerError::Expr { key, .. }
            | MarkerError::Secret { key, .. }
            | MarkerError::Invalid { key, .. } => key,
        }
    }
}

/// The markers, in the order they are applied: (start, end).
pub const MARKERS: [(&str, &str); 12] = [
    ("%>", "<%"),
    (">>", "<<"),
    ("+>", "<+"),
    ("*>", "<*"),
    ("|>", "<|"),
    ("#>", "<#"),
    ("$>", "<$"),
    ("1>", "<1"),
    ("5>", "<5"),
    ("6>", "<6"),
    ("E>", "<E"),
    ("[>", "<]"),
];

/// `do_sub`: substitute markers in every string of `value` (object keys and values, list items,
/// list splices `[>k<]`).
pub fn substitute_value(value: &Value, env: &dyn MarkerEnv) -> Result<Value, MarkerError> {
    sub_value(value, env, "")
}

/// `do_substr`: substitute markers in one string. Returns the typed value when the whole string
/// is one marker, otherwise a string.
pub fn substitute_str(text: &str, env: &dyn MarkerEnv) -> Result<Value, MarkerError> {
    substr_at(text, env, "")
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn sub_value(value: &Value, env: &dyn MarkerEnv, path: &str) -> Result<Value, MarkerError> {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let kpath = child(path, k);
                let newk = key_to_string(substr_at(k, env, &kpath)?, &kpath, k)?;
                let newv = sub_value(v, env, &kpath)?;
                out.insert(newk, newv);
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, elem) in items.iter().enumerate() {
                if let Value::String(s) = elem {
                    if s.contains("[>") && s.contains("<]") {
                        let t = py_strip(s);
                        if t.starts_with("[>") && t.ends_with("<]") && t.len() >= 4 {
                            let token = &t[2..t.len() - 2];
                            match env.def(token) {
                                Some(Value::Array(list)) => {
                                    out.extend(list);
                                    continue;
                                }
                                None => continue,
                                Some(_) => {}
                            }
                        }
                    }
                }
                out.push(sub_value(elem, env, &format!("{path}[{i}]"))?);
            }
            Ok(Value::Array(out))
        }
        Value::String(s) => substr_at(s, env, path),
        other => Ok(other.clone()),
    }
}

/// An object key that substituted to a non-string becomes its JSON text (as Python's
/// `json.dump` writes int/bool keys); lists and dicts cannot be keys.
fn key_to_string(v: Value, path: &str, orig: &str) -> Result<String, MarkerError> {
    match v {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Ok("null".to_string()),
        _ => Err(MarkerError::Invalid {
            key: path.to_string(),
            marker: orig.to_string(),
            message: "an object key cannot become a list or an object".to_string(),
        }),
    }
}

/// `extract_all`: the text between `start` and the nearest following `end`, for every
/// non-overlapping occurrence, line by line.
pub fn extract_all(text: &str, start: &str, end: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.split(is_line_break) {
        let mut pos = 0;
        while let Some(i) = line[pos..].find(start) {
            let from = pos + i + start.len();
            match line[from..].find(end) {
                Some(j) => {
                    out.push(line[from..from + j].to_string());
                    pos = from + j + end.len();
                }
                None => break,
            }
        }
    }
    out
}

/// `isvarname`: non-empty, only alphanumerics and `_/,:`.
pub(crate) fn is_var_name(word: &str) -> bool {
    !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '/' | ',' | ':'))
}

fn substr_at(text: &str, env: &dyn MarkerEnv, path: &str) -> Result<Value, MarkerError> {
    if !text.contains('>') && !text.contains('+') {
        return Ok(Value::String(text.to_string()));
    }
    let mut result = text.to_string();
    for (idx, (start, end)) in MARKERS.iter().enumerate() {
        let action = idx + 1;
        for tok in extract_all(&result, start, end) {
            let key: &str = if action == 2 || action == 11 {
                &tok
            } else {
                tok.trim_matches(|c| c == '"' || c == '\'')
            };
            if action != 6 && action != 11 && !is_var_name(key) {
                continue;
            }
            let full = format!("{start}{tok}{end}");
            let repl = match handle(action, key, &full, env, path)? {
                PyVal::None => PyVal::Str(String::new()),
                v => v,
            };
            if py_strip(&result) == full {
                return repl.to_json().map_err(|e| MarkerError::Invalid {
                    key: path.to_string(),
                    marker: redact(&full),
                    message: e.to_string(),
                });
            }
            let repl = repl.py_str();
            let hits = result.matches(full.as_str()).count();
            let size =
                (result.len() - hits * full.len()).saturating_add(hits.saturating_mul(repl.len()));
            if size > MAX_SUBSTITUTED {
                return Err(MarkerError::Invalid {
                    key: path.to_string(),
                    marker: redact(&full),
                    message: format!(
                        "substituting it {hits} times would make the value {} MiB; values are \
                         limited to {} MiB (markers whose values hold more markers multiply)",
                        size >> 20,
                        MAX_SUBSTITUTED >> 20
                    ),
                });
            }
            result = result.replace(&full, &repl);
        }
    }
    Ok(Value::String(result))
}

/// The largest string one substitution may produce. Real values are a few KiB at most; markers
/// inserted by an earlier marker are substituted by the later ones, so a small input could
/// otherwise multiply into gigabytes.
pub const MAX_SUBSTITUTED: usize = 16 << 20;

fn def_or_empty(env: &dyn MarkerEnv, key: &str) -> PyVal {
    match env.def(key) {
        Some(v) => PyVal::from_json(&v),
        None => PyVal::Str(String::new()),
    }
}

fn handle(
    action: usize,
    key: &str,
    full: &str,
    env: &dyn MarkerEnv,
    path: &str,
) -> Result<PyVal, MarkerError> {
    let warn = |message: String| {
        env.warn(MarkerWarning {
            key: path.to_string(),
            message: redact(&message),
            missing_secret: None,
        })
    };
    let repl = match action {
        1 | 2 => def_or_empty(env, key),
        3 => match def_or_empty(env, key) {
            PyVal::Str(s) => PyVal::Str(s.rsplit('/').next().unwrap_or("").to_string()),
            other => {
                return Err(MarkerError::Invalid {
                    key: path.to_string(),
                    marker: full.to_string(),
                    message: format!(
                        "basename of def '{key}' needs a string, not {}",
                        other.type_name()
                    ),
                })
            }
        },
        4 => match def_or_empty(env, key) {
            PyVal::Str(s) if !s.is_empty() => env.lookup_a(&s).map_or(PyVal::None, PyVal::Str),
            _ => PyVal::None,
        },
        5 => match env.secret(key) {
            Ok(s) => PyVal::Str(s.expose().to_string()),
            Err(e) if e.is_not_found() => {
                env.warn(MarkerWarning {
                    key: path.to_string(),
                    message: redact(&format!("{full}: {e}; using \"\"")),
                    missing_secret: Some(MissingSecret {
                        marker: redact(full),
                        error: redact(&e.to_string()),
                    }),
                });
                PyVal::Str(String::new())
            }
            Err(e) => return Err(secret_err(path, full, e)),
        },
        6 => arith(key, env, &warn),
        7 => match env.env_var(key) {
            Some(v) => PyVal::Str(v),
            None => {
                warn(format!(
                    "{full}: environment variable {key} is not set; using \"\" (export it, or \
                     set the def that uses it with -D)"
                ));
                PyVal::Str(String::new())
            }
        },
        8..=10 => {
            let method = match action {
                8 => CryptMethod::Md5,
                9 => CryptMethod::Sha256,
                _ => CryptMethod::Sha512,
            };
            let pw = env.secret(key).map_err(|e| secret_err(path, full, e))?;
            PyVal::Str(crypt::hash_password(pw.expose(), method))
        }
        11 => eval_safe(key, env).map_err(|(expr, source)| MarkerError::Expr {
            key: path.to_string(),
            expr: redact(&expr),
            source,
        })?,
        _ => insert_list_items(key, env),
    };
    Ok(repl)
}

fn secret_err(path: &str, full: &str, source: SecretError) -> MarkerError {
    MarkerError::Secret {
        key: path.to_string(),
        marker: full.to_string(),
        source: Box::new(source),
    }
}

/// `eval_expression`: `a*b` style integer arithmetic over defs.
fn arith(expr: &str, env: &dyn MarkerEnv, warn: &dyn Fn(String)) -> PyVal {
    let mut text = String::new();
    let mut rest = expr;
    loop {
        let cut = rest.find(['+', '-', '*', '/']);
        let key = match cut {
            Some(i) => &rest[..i],
            None => rest,
        };
        let value = env.def(key).map(|v| PyVal::from_json(&v));
        match value {
            Some(v) if v.truthy() => text.push_str(&v.py_str()),
            _ => {
                warn(format!("invalid key {key} in expression {expr}"));
                return PyVal::Str(String::new());
            }
        }
        match cut {
            Some(i) => {
                text.push_str(&rest[i..i + 1]);
                rest = &rest[i + 1..];
            }
            None => break,
        }
    }
    match expr::eval(&text).and_then(|v| expr::py_int(&v)) {
        Ok(v) => v,
        Err(e) => {
            warn(format!("#>{expr}<#: {e}"));
            PyVal::Str(format!("<eval-error:{}>", e.python_message()))
        }
    }
}

/// `eval_expression_safe`: replace leftover `>>k<<` then evaluate.
fn eval_safe(token: &str, env: &dyn MarkerEnv) -> Result<PyVal, (String, ExprError)> {
    let mut processed = token.to_string();
    let mut names = Vec::new();
    for line in token.split('\n') {
        let mut pos = 0;
        while let Some(i) = line[pos..].find(">>") {
            let from = pos + i + 2;
            match line[from..].find("<<") {
                Some(j) => {
                    names.push(line[from..from + j].to_string());
                    pos = from + j + 2;
                }
                None => break,
            }
        }
    }
    for name in names {
        let value = match env.def(&name) {
            Some(v) => PyVal::from_json(&v).py_str(),
            None => format!("<MISSING:{name}>"),
        };
        processed = processed.replace(&format!(">>{name}<<"), &value);
    }
    expr::eval(&processed).map_err(|e| (processed, e))
}

/// `insert_list_items`: the list def `k` (a string def is split at commas and whitespace).
fn insert_list_items(token: &str, env: &dyn MarkerEnv) -> PyVal {
    match env.def(token) {
        None => PyVal::List(Vec::new()),
        Some(Value::Array(items)) => PyVal::List(items.iter().map(PyVal::from_json).collect()),
        Some(Value::String(s)) => PyVal::List(
            s.replace(',', " ")
                .split(is_py_space)
                .filter(|p| !p.is_empty())
                .map(|p| PyVal::Str(p.to_string()))
                .collect(),
        ),
        Some(other) => PyVal::List(vec![PyVal::Str(PyVal::from_json(&other).py_str())]),
    }
}

#[cfg(test)]
mod tests;
