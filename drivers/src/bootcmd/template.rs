//! `{{ .Field }}` templates in boot commands and `qemuargs` (the subset Packer uses there).

use super::error::{ErrorKind, TemplateError};
use std::collections::BTreeMap;

/// The fields a boot command may use (Packer's boot-command template data).
pub const BOOT_COMMAND_FIELDS: &[&str] = &["HTTPIP", "HTTPPort", "Name", "SSHPublicKey"];

/// Values for template fields, by name without the dot (`HTTPIP`, `HTTPPort`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(BTreeMap<String, String>);

impl Fields {
    /// No fields.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builder-style insert.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.insert(name, value);
        self
    }

    /// Set field `name` (without the dot) to `value`.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    /// The value of field `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The names of the set fields, sorted.
    pub fn names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }

    /// Typable stand-ins for every boot-command field, for validation before a VM exists.
    pub fn placeholders() -> Self {
        Fields::new()
            .with("HTTPIP", "10.0.2.2")
            .with("HTTPPort", "8000")
            .with("Name", "placeholder-name")
            .with("SSHPublicKey", "ssh-ed25519 AAAAplaceholder osimager")
    }
}

/// Evaluate the template expression starting at byte `start` of `s` (which starts with `{{`).
/// Returns the field name, its value and the byte index just past `}}`.
pub(crate) fn eval_at<'f>(
    s: &str,
    start: usize,
    fields: &'f Fields,
) -> Result<(String, &'f str, usize), ErrorKind> {
    let body_start = start + 2;
    let close = s[body_start..]
        .find("}}")
        .ok_or(ErrorKind::UnterminatedTemplate)?;
    let body = &s[body_start..body_start + close];
    let end = body_start + close + 2;
    let expr = body.trim();
    let name = expr
        .strip_prefix('.')
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .ok_or_else(|| ErrorKind::UnsupportedTemplate(body.to_string()))?;
    match fields.get(name) {
        Some(v) => Ok((name.to_string(), v, end)),
        None => Err(ErrorKind::UnknownField {
            field: name.to_string(),
            known: fields.names(),
        }),
    }
}

/// Render `{{ .Field }}` references (blanks inside the braces are optional) in `template`.
/// Anything else inside `{{ }}` and unknown fields are errors with their position.
pub fn render(template: &str, fields: &Fields) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let mut i = 0;
    while let Some(rel) = template[i..].find("{{") {
        let start = i + rel;
        out.push_str(&template[i..start]);
        match eval_at(template, start, fields) {
            Ok((_, value, end)) => {
                out.push_str(value);
                i = end;
            }
            Err(kind) => {
                return Err(TemplateError {
                    kind,
                    byte_offset: start,
                    char_offset: template[..start].chars().count(),
                })
            }
        }
    }
    out.push_str(&template[i..]);
    Ok(out)
}
