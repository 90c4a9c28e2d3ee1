//! One provisioner entry with typed accessors, and the provisioning error type.

use crate::comm::{truthy, CommError};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Errors of provisioning. Every variant names the entry (`provisioners[i]`) and its type.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("unknown provisioner type {kind:?} at provisioners[{index}]; the native engine runs ansible, shell, shell-local and file provisioners (use --engine packer for others)")]
    UnknownType { index: usize, kind: String },

    #[error("provisioners[{index}] ({kind}) is invalid: {message}")]
    Invalid {
        index: usize,
        kind: String,
        message: String,
    },

    #[error("provisioners[{index}] ({kind}) failed: {message}")]
    Failed {
        index: usize,
        kind: String,
        message: String,
    },

    #[error("provisioners[{index}] ({kind}): {source}")]
    Comm {
        index: usize,
        kind: String,
        #[source]
        source: Box<CommError>,
    },
}

impl ProvisionError {
    /// The communicator settings are unusable before any entry ran.
    pub fn from_comm(e: CommError) -> ProvisionError {
        ProvisionError::Comm {
            index: 0,
            kind: "communicator".into(),
            source: Box::new(e),
        }
    }
}

/// A provisioner entry after `override` merging and template rendering.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub index: usize,
    pub kind: String,
    pub map: Map<String, Value>,
}

impl Entry {
    pub fn new(index: usize, kind: String, map: Map<String, Value>) -> Self {
        Entry { index, kind, map }
    }

    pub fn invalid(&self, message: impl Into<String>) -> ProvisionError {
        ProvisionError::Invalid {
            index: self.index,
            kind: self.kind.clone(),
            message: message.into(),
        }
    }

    pub fn failed(&self, message: impl Into<String>) -> ProvisionError {
        ProvisionError::Failed {
            index: self.index,
            kind: self.kind.clone(),
            message: message.into(),
        }
    }

    pub fn comm(&self, source: CommError) -> ProvisionError {
        ProvisionError::Comm {
            index: self.index,
            kind: self.kind.clone(),
            source: Box::new(source),
        }
    }

    pub fn has(&self, key: &str) -> bool {
        !matches!(self.map.get(key), None | Some(Value::Null))
    }

    /// A string key (numbers and booleans are accepted as text, as Packer's weak decoding does).
    pub fn str(&self, key: &str) -> Result<Option<String>, ProvisionError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(v.to_string())),
            Some(v) => Err(self.invalid(format!("{key} must be a string, got {v}"))),
        }
    }

    /// A list of strings; a single string counts as a one-element list.
    pub fn strings(&self, key: &str) -> Result<Vec<String>, ProvisionError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(_) | Value::Bool(_) => Ok(v.to_string()),
                    other => {
                        Err(self.invalid(format!("{key} must be a list of strings, found {other}")))
                    }
                })
                .collect(),
            Some(v) => Err(self.invalid(format!("{key} must be a list of strings, got {v}"))),
        }
    }

    pub fn bool(&self, key: &str) -> Result<bool, ProvisionError> {
        match self.map.get(key) {
            None => Ok(false),
            Some(v) => truthy(v)
                .ok_or_else(|| self.invalid(format!("{key} must be true or false, got {v}"))),
        }
    }

    pub fn uint(&self, key: &str) -> Result<Option<u64>, ProvisionError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
            Some(Value::String(s)) if s.trim().parse::<u64>().is_ok() => Ok(s.trim().parse().ok()),
            Some(v) => Err(self.invalid(format!("{key} must be a non-negative integer, got {v}"))),
        }
    }

    pub fn duration(&self, key: &str) -> Result<Option<Duration>, ProvisionError> {
        match self.str(key)? {
            None => Ok(None),
            Some(s) if s.trim().is_empty() => Ok(None),
            Some(s) => super::parse_dur(self, key, &s).map(Some),
        }
    }

    /// Integer list (`valid_exit_codes`), default `[0]`.
    pub fn exit_codes(&self) -> Result<Vec<i64>, ProvisionError> {
        match self.map.get("valid_exit_codes") {
            None | Some(Value::Null) => Ok(vec![0]),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_i64()
                        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                        .ok_or_else(|| {
                            self.invalid(format!("valid_exit_codes must be integers, found {v}"))
                        })
                })
                .collect(),
            Some(v) => Err(self.invalid(format!(
                "valid_exit_codes must be a list of integers, got {v}"
            ))),
        }
    }

    /// `environment_vars` (`["K=V", …]`) plus `env` (`{"K": "V"}`), in that order.
    pub fn env_vars(&self) -> Result<Vec<(String, String)>, ProvisionError> {
        let mut out = Vec::new();
        for kv in self.strings("environment_vars")? {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                self.invalid(format!("environment_vars entry {kv:?} is not KEY=VALUE"))
            })?;
            out.push((k.to_string(), v.to_string()));
        }
        match self.map.get("env") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                let sorted: BTreeMap<_, _> = m.iter().collect();
                for (k, v) in sorted {
                    out.push((k.clone(), super::template::value_text(v)));
                }
            }
            Some(v) => return Err(self.invalid(format!("env must be an object, got {v}"))),
        }
        for (k, _) in &out {
            if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(self.invalid(format!("environment variable name {k:?} is not valid")));
            }
        }
        Ok(out)
    }
}
