//! Messages users can act on: closest target names, available platforms and locations.

use super::index::Index;
use super::layers::{rglob, Layers};
use super::Config;

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
