//! Messages users can act on: closest target names, available platforms and locations,
//! markers that name undefined defs.

use super::index::Index;
use super::layers::{rglob, Layers};
use super::loader::State;
use super::Config;
use serde_json::Value;

/// Levenshtein distance (small strings).
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// "closest targets: a, b, c; list them all with `osimager list`".
pub fn closest_targets(index: &Index, name: &str) -> String {
    let mut scored: Vec<(usize, &str)> = index
        .keys()
        .map(|k| {
            let d = distance(&k.to_lowercase(), &name.to_lowercase());
            // Prefer keys sharing the dist prefix.
            let bonus = usize::from(!k.starts_with(name.split('-').next().unwrap_or("")));
            (d * 2 + bonus, k)
        })
        .collect();
    scored.sort();
    let best: Vec<&str> = scored.iter().take(5).map(|(_, k)| *k).collect();
    if best.is_empty() {
        "the index is empty: no spec provides any version for the arches your platforms and locations list".into()
    } else {
        format!(
            "closest targets: {}; list them all with `osimager list`",
            best.join(", ")
        )
    }
}

/// "available platforms: …".
pub fn available_platforms(cfg: &Config) -> String {
    let mut names: Vec<String> = cfg
        .layers
        .files("platforms", ".json")
        .iter()
        .filter_map(|f| {
            f.file_name()
                .map(|n| n.to_string_lossy().trim_end_matches(".json").to_string())
        })
        .filter(|n| n != "none")
        .collect();
    names.sort();
    if names.is_empty() {
        format!(
            "no platforms found in {}/platforms or {}/platforms",
            cfg.layers.user.display(),
            cfg.layers.system.display()
        )
    } else {
        format!("valid platforms: {}", names.join(", "))
    }
}

/// "available locations: …" (user dir only).
pub fn available_locations(layers: &Layers) -> String {
    let dir = layers.user.join("locations");
    let mut names: Vec<String> = rglob(&dir, ".json")
        .into_iter()
        .chain(rglob(&dir, ".toml"))
        .filter_map(|f| {
            let n = f.file_name()?.to_string_lossy().into_owned();
            Some(
                n.trim_end_matches(".json")
                    .trim_end_matches(".toml")
                    .to_string(),
            )
        })
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        format!(
            "no locations configured: run `osimager init` (writes one for this host's \
             hypervisors), or create {}/<name>.json or .toml (docs/DATA.md, \"What a location \
             provides\")",
            dir.display()
        )
    } else {
        format!(
            "available locations: {} (in {})",
            names.join(", "),
            dir.display()
        )
    }
}

/// Warn about `>>k<<`, `%>k<%`, `+>k<+` markers naming a def that does not exist (they become
/// ""), with the file that set the value and its key.
pub fn undefined_def_warnings(st: &State, warnings: &mut Vec<String>) {
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
                for tok in super::markers::extract_all(&plain, start, end) {
                    if super::markers::is_var_name(&tok) {
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
