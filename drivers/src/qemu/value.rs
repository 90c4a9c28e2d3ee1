//! Reading builder values the way OSImager produces them (numbers and booleans may arrive as
//! strings, and a key whose value is "" counts as unset), and the error of a value that cannot be
//! used.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A builder key with a value the QEMU driver cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("QEMU builder key {key:?}: {message}")]
pub struct ConfigError {
    /// The builder key, e.g. `disk_size` or `qemu_img_args.convert`.
    pub key: String,
    /// What is wrong with its value and what is accepted.
    pub message: String,
}

pub(crate) struct Builder<'a>(pub &'a Map<String, Value>);

/// The error for `key`.
pub(super) fn err(key: &str, msg: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_string(),
        message: msg.into(),
    }
}

impl Builder<'_> {
    fn raw(&self, key: &str) -> Option<&Value> {
        match self.0.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(v) => Some(v),
        }
    }

    pub fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(other) => Err(err(key, format!("expected a string, got {other}"))),
        }
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" | "on" => Ok(Some(true)),
                "false" | "no" | "0" | "off" => Ok(Some(false)),
                _ => Err(err(key, format!("expected true or false, got {s:?}"))),
            },
            Some(other) => Err(err(key, format!("expected true or false, got {other}"))),
        }
    }

    pub fn u64(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| err(key, format!("expected a whole number ≥ 0, got {n}"))),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| err(key, format!("expected a whole number ≥ 0, got {s:?}"))),
            Some(other) => Err(err(key, format!("expected a whole number, got {other}"))),
        }
    }

    pub fn u32(&self, key: &str) -> Result<Option<u32>, ConfigError> {
        match self.u64(key)? {
            None => Ok(None),
            Some(v) => u32::try_from(v)
                .map(Some)
                .map_err(|_| err(key, format!("{v} is too large"))),
        }
    }

    /// A list of strings: a JSON array, or one string with comma-separated items.
    pub fn string_list(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        match self.raw(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .filter(|v| !matches!(v, Value::String(s) if s.trim().is_empty()))
                .map(|v| match v {
                    Value::String(s) => Ok(s.trim().to_string()),
                    other => Err(err(key, format!("expected a list of strings, got {other}"))),
                })
                .collect(),
            Some(Value::String(s)) => Ok(s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()),
            Some(other) => Err(err(key, format!("expected a list of strings, got {other}"))),
        }
    }

    /// One of `accepted` (case-insensitive), returned in lower case.
    pub fn choice(&self, key: &str, accepted: &[&str]) -> Result<Option<String>, ConfigError> {
        let Some(v) = self.string(key)? else {
            return Ok(None);
        };
        let l = v.to_ascii_lowercase();
        if accepted.contains(&l.as_str()) {
            Ok(Some(l))
        } else {
            Err(err(
                key,
                format!("{v:?} is not accepted; use one of: {}", accepted.join(", ")),
            ))
        }
    }

    pub fn value(&self, key: &str) -> Option<&Value> {
        self.raw(key)
    }

    /// A TCP port (1–65535).
    pub fn port(&self, key: &str, default: u16) -> Result<u16, ConfigError> {
        match self.u64(key)? {
            None => Ok(default),
            Some(p) if (1..=65535).contains(&p) => Ok(p as u16),
            Some(p) => Err(err(key, format!("{p} is not a TCP port (1–65535)"))),
        }
    }

    /// A map of file path → text (`cd_content`, `http_content`).
    pub fn text_files(&self, key: &str) -> Result<BTreeMap<String, String>, ConfigError> {
        let mut out = BTreeMap::new();
        if let Some(v) = self.raw(key) {
            let m = v
                .as_object()
                .ok_or_else(|| err(key, "expected a map of path → file content"))?;
            for (k, v) in m {
                let text = v
                    .as_str()
                    .ok_or_else(|| err(key, format!("the content of {k:?} must be a string")))?;
                out.insert(k.clone(), text.to_string());
            }
        }
        Ok(out)
    }
}

/// A size in MiB: a bare number is MiB; suffixes K, M, G, T (optionally followed by `B` or
/// `iB`, any case) are binary units.
pub(crate) fn parse_size_mib(key: &str, v: &Value) -> Result<u64, ConfigError> {
    let s = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        other => {
            return Err(err(
                key,
                format!("expected a size such as 20480, \"20G\", got {other}"),
            ))
        }
    };
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let bad = || {
        err(
            key,
            format!("{s:?} is not a size; write a number of MiB (20480) or a number with a unit K, M, G, T (\"512M\", \"20G\")"),
        )
    };
    let n: u64 = s[..digits].parse().map_err(|_| bad())?;
    let unit = s[digits..].trim().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let mib = match unit {
        "" | "m" => Some(n),
        "k" => Some(n.div_ceil(1024)),
        "g" => n.checked_mul(1024),
        "t" => n.checked_mul(1024 * 1024),
        _ => None,
    };
    let mib = mib.ok_or_else(bad)?;
    if mib == 0 {
        return Err(err(key, "a disk cannot be 0 MiB"));
    }
    Ok(mib)
}
