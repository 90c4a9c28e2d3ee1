//! Packer `{{vault `path` `key`}}` references, resolved from the secret store.

use super::{child, secret_err, MarkerEnv, MarkerError, MarkerWarning, MissingSecret};
use crate::config::secret_error::SecretError;
use serde_json::{Map, Value};

/// Replace Packer `{{vault `path` `key`}}` references in every string value (not keys) with
/// secrets (the original's `resolve_packer_vault_refs`). A missing secret becomes "" with a
/// warning; when no secret store is configured the references are left as they are.
pub fn resolve_packer_vault_refs(value: &Value, env: &dyn MarkerEnv) -> Result<Value, MarkerError> {
    vault_refs_at(value, env, "")
}

/// The reference pattern, compiled on first use: most builds have no reference, and compiling
/// it (Unicode classes) costs a fair share of a `dump`.
fn vault_ref_re() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(r"\{\{vault\s+`([^`]+)`\s+`([^`]+)`\}\}").expect("valid regex")
    })
}

fn vault_refs_at(value: &Value, env: &dyn MarkerEnv, path: &str) -> Result<Value, MarkerError> {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(k.clone(), vault_refs_at(v, env, &child(path, k))?);
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| vault_refs_at(v, env, &format!("{path}[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        // Every match contains `{{vault`: a string without it needs no regex.
        Value::String(s) if s.contains("{{vault") && vault_ref_re().is_match(s) => {
            let re = vault_ref_re();
            let mut out = String::new();
            let mut last = 0;
            for caps in re.captures_iter(s) {
                let m = caps.get(0).expect("group 0");
                out.push_str(&s[last..m.start()]);
                last = m.end();
                let (p, k) = (&caps[1], &caps[2]);
                match env.secret(&format!("{p}:{k}")) {
                    Ok(v) => {
                        if v.expose().is_empty() {
                            warn_missing(env, path, p, k, "the secret is empty");
                        }
                        out.push_str(v.expose())
                    }
                    Err(SecretError::NotConfigured { .. }) => out.push_str(m.as_str()),
                    Err(e) if e.is_not_found() => warn_missing(env, path, p, k, &e.to_string()),
                    Err(e) => return Err(secret_err(path, m.as_str(), e)),
                }
            }
            out.push_str(&s[last..]);
            Ok(Value::String(out))
        }
        other => Ok(other.clone()),
    }
}

fn warn_missing(env: &dyn MarkerEnv, path: &str, p: &str, k: &str, why: &str) {
    let redact = crate::secret::redact;
    env.warn(MarkerWarning {
        key: path.to_string(),
        message: redact(&format!("secret not found: {p}/{k} ({why}); using \"\"")),
        missing_secret: Some(MissingSecret {
            marker: redact(&format!("{{{{vault `{p}` `{k}`}}}}")),
            error: redact(why),
        }),
    });
}

/// The original refuses to build without a credential source when the configuration uses
/// secrets: true when the JSON text of `value` contains `vault \``, `|>`, `6>` or `5>`.
pub fn uses_secret_refs(value: &Value) -> bool {
    let text = value.to_string();
    ["vault `", "|>", "6>", "5>"]
        .iter()
        .any(|m| text.contains(m))
}
