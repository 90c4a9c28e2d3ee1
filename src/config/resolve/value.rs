//! Small helpers the stages share: JSON strings and objects, paths as def values, and the
//! error of a target that cannot be resolved.

use crate::config::ConfigError;
use serde_json::{Map, Value};
use std::path::Path;

/// A target that cannot be resolved as asked (the message says why and what to do).
pub(super) fn err(msg: String) -> ConfigError {
    ConfigError::Target(msg)
}

/// A JSON string.
pub(super) fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

/// A path as a def value (OSImager's defs hold paths as text).
pub(super) fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The object inside `v`; anything else is an empty object.
pub(super) fn into_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// `n` random hex digits (build ids, MAC addresses).
pub(super) fn random_hex(n: usize) -> String {
    use rand::Rng;
    let mut r = rand::thread_rng();
    (0..n)
        .map(|_| format!("{:x}", r.gen_range(0..16u8)))
        .collect()
}
