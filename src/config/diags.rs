//! Diagnostics collected while resolving: substitution with the markers' warnings attributed
//! to where they happened, missing secrets kept apart (reported once per secret; a build
//! refuses them), and markers that name undefined defs.

use super::loader::State;
use super::markers::{self, DefsEnv, MarkerWarning, MissingSecret};
use super::secrets::SecretStore;
use super::ConfigError;
use serde_json::{Map, Value};

/// Warnings collected while resolving, each said once: a marker warning repeated at several
/// places (the same unset environment variable in three defs) is one warning listing them.
/// Secrets that do not exist (replaced by "") are kept apart: they are reported once per secret
/// with every place that used it, and a build refuses to go on with them.
#[derive(Debug, Default)]
pub(super) struct Diags {
    /// (message, places where it happened); no places for a warning that is not a marker's.
    list: Vec<(String, Vec<String>)>,
    /// (where, marker) and why, per missing secret reference.
    pub missing_secrets: Vec<(String, MissingSecret)>,
}

impl Diags {
    pub fn push(&mut self, w: String) {
        self.list.push((w, Vec::new()));
    }

    /// A warning about `place`; the same message seen before gets this place added.
    pub fn push_at(&mut self, place: String, message: String) {
        match self
            .list
            .iter_mut()
            .find(|(m, places)| !places.is_empty() && *m == message)
        {
            Some((_, places)) if places.contains(&place) => {}
            Some((_, places)) => places.push(place),
            None => self.list.push((message, vec![place])),
        }
    }

    /// One line per missing secret: why it is missing, then the places that used it.
    fn grouped_missing(&self) -> Vec<String> {
        let mut groups: Vec<(&str, Vec<String>)> = Vec::new();
        for (place, m) in &self.missing_secrets {
            let at = format!("{place} ({})", m.marker);
            match groups.iter_mut().find(|(e, _)| *e == m.error) {
                Some((_, places)) if places.contains(&at) => {}
                Some((_, places)) => places.push(at),
                None => groups.push((&m.error, vec![at])),
            }
        }
        groups
            .into_iter()
            .map(|(e, places)| format!("{e}; needed by {}", places.join(", ")))
            .collect()
    }

    /// The warnings, the missing secrets last (`"" was used`).
    pub fn finish(self) -> Vec<String> {
        let grouped = self.grouped_missing();
        let mut list: Vec<String> = self
            .list
            .into_iter()
            .map(|(m, places)| {
                if places.is_empty() {
                    m
                } else {
                    format!("{}: {m}", places.join(", "))
                }
            })
            .collect();
        list.extend(grouped.into_iter().map(|g| format!("{g}; \"\" was used")));
        list
    }

    /// A build with missing secrets: one error listing each (1.11.1 built with "" instead).
    pub fn missing_secrets_error(&self, target: &str) -> Option<ConfigError> {
        if self.missing_secrets.is_empty() {
            return None;
        }
        Some(ConfigError::Other(format!(
            "{target} needs secrets that do not exist; a build would go on with empty values \
             (an empty user name or password in the image), so it stops here:\n  - {}\n\
             Store them, then build again (docs/DATA.md, Secrets, lists the paths and keys); \
             `osimager dump` shows the template with the empty values",
            self.grouped_missing().join("\n  - ")
        )))
    }
}

/// Substitute with `defs` as the marker environment, attributing warnings to `what`.
pub(super) fn sub(
    v: &Value,
    defs: &Map<String, Value>,
    store: Option<&SecretStore>,
    what: &str,
    warnings: &mut Diags,
) -> Result<Value, ConfigError> {
    let mut env = DefsEnv::new(defs);
    if let Some(st) = store {
        env = env.with_secrets(st);
    }
    let out = markers::substitute_value(v, &env)
        .map_err(|source| ConfigError::Marker { file: None, source });
    take_warnings(&env, what, warnings);
    out.map_err(|e| match e {
        ConfigError::Marker { source, .. } => ConfigError::Other(format!("{what}: {source}")),
        other => other,
    })
}

pub(super) fn take_warnings(env: &DefsEnv, what: &str, warnings: &mut Diags) {
    for w in env.take_warnings() {
        let place = place(what, &w);
        match w.missing_secret {
            Some(m) => warnings.missing_secrets.push((place, m)),
            None => warnings.push_at(place, w.message),
        }
    }
}

fn place(what: &str, w: &MarkerWarning) -> String {
    if w.key.is_empty() {
        what.to_string()
    } else {
        format!("{what}.{}", w.key)
    }
}

/// Warn about `>>k<<`, `%>k<%`, `+>k<+` markers naming a def that does not exist (they become
/// ""), with the file that set the value and its key.
pub(super) fn undefined_def_warnings(st: &State, warnings: &mut Diags) {
    let mut seen = std::collections::HashSet::new();
    let sections: [(&str, Value); 7] = [
        ("defs", Value::Object(st.defs.clone())),
        ("config", Value::Object(st.config.clone())),
        ("variables", Value::Object(st.variables.clone())),
        ("evars", Value::Object(st.evars.clone())),
        (
            "pre_provisioners",
            Value::Array(st.pre_provisioners.clone()),
        ),
        ("provisioners", Value::Array(st.provisioners.clone())),
        (
            "post_provisioners",
            Value::Array(st.post_provisioners.clone()),
        ),
    ];
    for (section, v) in sections {
        let items: Vec<(String, &Value)> = match &v {
            Value::Object(m) => m
                .iter()
                .map(|(k, v)| (format!("{section}.{k}"), v))
                .collect(),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("{section}[{i}]"), v))
                .collect(),
            _ => Vec::new(),
        };
        for (key, val) in items {
            let Some(file) = st.origins.get(&key) else {
                continue;
            };
            let mut names = Vec::new();
            collect_names(val, &mut names);
            for n in names {
                if !st.defs.contains_key(&n) && seen.insert((key.clone(), n.clone())) {
                    warnings.push(format!(
                        "{}: {key}: marker names undefined def '{n}' (it becomes \"\"); define it or pass -D {n}=…",
                        file.display()
                    ));
                }
            }
        }
    }
}

fn collect_names(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            // Markers inside E>…<E are usually tested for emptiness on purpose; skip them.
            let mut plain = String::new();
            for line in s.split('\n') {
                let mut rest = line;
                while let Some(i) = rest.find("E>") {
                    plain.push_str(&rest[..i]);
                    match rest[i..].find("<E") {
                        Some(j) => rest = &rest[i + j + 2..],
                        None => {
                            rest = "";
                        }
                    }
                }
                plain.push_str(rest);
                plain.push('\n');
            }
            for (start, end) in [(">>", "<<"), ("%>", "<%"), ("+>", "<+")] {
                for tok in markers::extract_all(&plain, start, end) {
                    if markers::is_var_name(&tok) {
                        out.push(tok);
                    }
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_names(x, out)),
        Value::Object(m) => m.iter().for_each(|(k, x)| {
            collect_names(&Value::String(k.clone()), out);
            collect_names(x, out)
        }),
        _ => {}
    }
}
