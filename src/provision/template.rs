//! The small part of Packer's template language that appears inside provisioner entries:
//! `{{user `x`}}`, `{{env `X`}}`, `{{build_name}}`, `{{build_type}}`, `{{pwd}}`,
//! `{{template_dir}}`, `{{timestamp}}` and fields such as `{{ .Vars }}`, `{{ .Path }}`,
//! `{{ .HTTPIP }}`. Anything else is an error naming the expression, rather than being passed
//! through to a shell or to Ansible half-rendered.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// What a template may refer to.
#[derive(Debug, Default, Clone)]
pub struct TemplateEnv<'a> {
    pub user_vars: Option<&'a Map<String, Value>>,
    pub env: Option<&'a BTreeMap<String, String>>,
    pub fields: BTreeMap<String, String>,
    pub build_name: &'a str,
    pub build_type: &'a str,
    pub pwd: &'a str,
    pub timestamp: u64,
}

/// Render every `{{ … }}` in `text`.
pub fn render(text: &str, env: &TemplateEnv<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unterminated template expression in {text:?}"))?;
        let inner = after[..end]
            .trim()
            .trim_start_matches('-')
            .trim_end_matches('-')
            .trim();
        out.push_str(&eval(inner, env)?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn eval(expr: &str, env: &TemplateEnv<'_>) -> Result<String, String> {
    if let Some(field) = expr.strip_prefix('.') {
        return env
            .fields
            .get(field)
            .cloned()
            .ok_or_else(|| format!("template field {{{{ .{field} }}}} is not available here"));
    }
    let (func, arg) = match expr.split_once(char::is_whitespace) {
        Some((f, a)) => (f, Some(unquote(a.trim())?)),
        None => (expr, None),
    };
    match (func, arg) {
        ("user", Some(name)) => Ok(env
            .user_vars
            .and_then(|m| m.get(&name))
            .map(value_text)
            .unwrap_or_default()),
        ("env", Some(name)) => Ok(env
            .env
            .and_then(|m| m.get(&name).cloned())
            .or_else(|| std::env::var(&name).ok())
            .unwrap_or_default()),
        ("build_name", None) => Ok(env.build_name.to_string()),
        ("build_type", None) => Ok(env.build_type.to_string()),
        ("pwd", None) | ("template_dir", None) => Ok(env.pwd.to_string()),
        ("timestamp", None) => Ok(env.timestamp.to_string()),
        _ => Err(format!(
            "unsupported template expression {{{{ {expr} }}}} (supported here: user, env, build_name, build_type, pwd, template_dir, timestamp and .Fields)"
        )),
    }
}

fn unquote(a: &str) -> Result<String, String> {
    let q = a.chars().next().unwrap_or(' ');
    if (q == '`' || q == '"') && a.len() >= 2 && a.ends_with(q) {
        Ok(a[1..a.len() - 1].to_string())
    } else {
        Err(format!("expected a quoted argument, got {a:?}"))
    }
}

/// A JSON value as text the way Packer user variables appear (strings bare).
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Render every string inside `v` (object keys untouched), except the keys named in `skip` at
/// the top level (Packer renders `execute_command` later, with run-time fields).
pub fn render_value(v: &Value, env: &TemplateEnv<'_>, skip: &[&str]) -> Result<Value, String> {
    match v {
        Value::String(s) => render(s, env).map(Value::String),
        Value::Array(a) => a
            .iter()
            .map(|x| render_value(x, env, &[]))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, x) in m {
                let r = if skip.contains(&k.as_str()) {
                    x.clone()
                } else {
                    render_value(x, env, &[]).map_err(|e| format!("key {k}: {e}"))?
                };
                out.insert(k.clone(), r);
            }
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_packer_functions() {
        let vars = json!({"platform-name": "qemu", "n": 3})
            .as_object()
            .unwrap()
            .clone();
        let mut env = TemplateEnv {
            user_vars: Some(&vars),
            build_name: "b",
            build_type: "qemu",
            ..Default::default()
        };
        env.fields.insert("Path".into(), "/tmp/s.sh".into());
        assert_eq!(
            render(
                "platform={{user `platform-name`}} x={{user `missing`}} n={{ user \"n\" }}",
                &env
            )
            .unwrap(),
            "platform=qemu x= n=3"
        );
        assert_eq!(
            render("{{ .Path }}:{{build_name}}/{{build_type}}", &env).unwrap(),
            "/tmp/s.sh:b/qemu"
        );
        assert!(render("{{ .Vars }}", &env).unwrap_err().contains(".Vars"));
        assert!(render("{{vault `a` `b`}}", &env)
            .unwrap_err()
            .contains("vault"));
        assert!(render("{{ user `x`", &env).is_err());
    }

    #[test]
    fn skips_execute_command() {
        let env = TemplateEnv::default();
        let v = json!({"execute_command": "{{ .Vars }} {{ .Path }}", "inline": ["echo {{build_type}}"]});
        let r = render_value(&v, &env, &["execute_command"]).unwrap();
        assert_eq!(r["execute_command"], "{{ .Vars }} {{ .Path }}");
        assert_eq!(r["inline"][0], "echo ");
    }
}
