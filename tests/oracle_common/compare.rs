//! How osimager's answers are compared with the oracle's: random values normalised, warnings
//! classified, refusals classified by what was refused, and every difference either one of
//! the documented deviations (`deviations.rs`, docs/COMPAT.md "DEVIATIONS") or a mismatch.

use super::{load_config, Case, OracleResult, Scratch};
use osimager::config::pyjson::dumps_indent4;
use osimager::config::{resolve, ResolveRequest};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Replace random parts: build ids, crypt salts+hashes, generated MACs.
pub fn normalize(s: &str) -> String {
    static RES: std::sync::OnceLock<[regex::Regex; 3]> = std::sync::OnceLock::new();
    let [re_id, re_crypt, re_mac] = RES.get_or_init(|| {
        [
            regex::Regex::new(r"packer-[0-9a-f]{12}").unwrap(),
            regex::Regex::new(r"\$(1|5|6)\$(rounds=\d+\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]+")
                .unwrap(),
            regex::Regex::new(r"mac=52:54:00:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}").unwrap(),
        ]
    });
    let s = re_id.replace_all(s, "packer-ID");
    let s = re_crypt.replace_all(&s, "$$$1$$SALT$$HASH");
    re_mac.replace_all(&s, "mac=MAC").into_owned()
}

/// What a refusal refused, from either tool's message: `kind:subject`. None = unclassified
/// (a mismatch until this function learns it).
pub fn refusal(text: &str) -> Option<String> {
    static RES: std::sync::OnceLock<Vec<(regex::Regex, &'static str)>> = std::sync::OnceLock::new();
    let res = RES.get_or_init(|| {
        [
            (r"unknown platform '([^']+)'", "platform:$1"),
            (r"unknown location '([^']+)'", "location:$1"),
            (
                r"Error loading file '[^']*/locations/([^/']+)\.(?:toml|json)'",
                "location:$1",
            ),
            (r"unknown target '([^']+)'", "target:$1"),
            (r"(?m)^spec (\S+) not found$", "target:$1"),
            (
                r"(?i)target '[^']*' must be PLATFORM/LOCATION/SPEC",
                "target-format",
            ),
            (
                r"Target must be in format platform/location/spec",
                "target-format",
            ),
            (r"invalid define '[^']*' in -D", "define-without-equals"),
            (
                r"not enough values to unpack \(expected 2, got 1\)",
                "define-without-equals",
            ),
            (r"invalid define key/value pair: (\S*)", "define-empty:$1"),
            (
                r"location (\S+) does not support platform ([^\s;]+)",
                "location-platform:$1:$2",
            ),
            (
                r"spec (\S+) does not support platform ([^\s;]+)",
                "spec-platform:$1:$2",
            ),
            (
                r"spec (\S+) does not support location ([^\s;]+)",
                "spec-location:$1:$2",
            ),
            (r"unknown source file '([^']+)'", "source-file:$1"),
            (r"unable to find source file: (\S+)", "source-file:$1"),
        ]
        .into_iter()
        .map(|(r, k)| (regex::Regex::new(r).unwrap(), k))
        .collect()
    });
    res.iter().find_map(|(re, k)| {
        re.captures(text).map(|c| {
            let mut out = String::new();
            c.expand(k, &mut out);
            out
        })
    })
}

/// A notice or warning, as the original prints it (without `warning: `).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Diag {
    Notice(String),
    Warning(String),
}

/// Messages of the original that osimager prints as warnings prefixed with where they come
/// from (`<file or key>: <message>`).
const PREFIXED: &[&str] = &["secret not found: ", "invalid key "];

/// The original's diagnostic lines (stdout before the JSON), and whether any of them is a
/// non-fatal `error: invalid key …` (a warning in osimager: COMPAT-3). Err(line) for a line
/// that is neither a notice nor a warning.
pub fn oracle_diags(lines: &str) -> Result<(Vec<Diag>, bool), String> {
    let mut v = Vec::new();
    let mut error_level = false;
    for l in lines.lines().filter(|l| !l.trim().is_empty()) {
        let notice = l
            .split_once(" -> ")
            .is_some_and(|(a, b)| !a.contains(' ') && !b.contains(' ') && !b.is_empty());
        if let Some(w) = l.strip_prefix("warning: ") {
            v.push(Diag::Warning(w.to_string()));
        } else if let Some(w) = l
            .strip_prefix("error: ")
            .filter(|w| w.starts_with("invalid key "))
        {
            error_level = true;
            v.push(Diag::Warning(w.to_string()));
        } else if notice {
            v.push(Diag::Notice(l.to_string()));
        } else {
            return Err(l.to_string());
        }
    }
    v.sort();
    Ok((v, error_level))
}

/// osimager's missing-secret warning (COMPAT-11: `…; needed by K ({{vault `P` `K`}}), …; ""
/// was used`) as the original's lines: one `secret not found: P/K` per `{{vault}}` place (the
/// original says nothing for the other secret markers). None for any other warning.
fn missing_secret_places(w: &str) -> Option<Vec<Diag>> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let (_, places) = w
        .strip_suffix("; \"\" was used")?
        .rsplit_once("; needed by ")?;
    let re = RE.get_or_init(|| regex::Regex::new(r"\{\{vault `([^`]*)` `([^`]*)`\}\}").unwrap());
    Some(
        re.captures_iter(places)
            .map(|c| Diag::Warning(format!("secret not found: {}/{}", &c[1], &c[2])))
            .collect(),
    )
}

/// osimager's notices and warnings as the original would print them, plus which deviations
/// applied: COMPAT-3 (a where-prefix, or undefined-def warnings the original does not print)
/// and COMPAT-11 (missing secrets grouped with what to do).
pub fn our_diags(notices: &[String], warnings: &[String]) -> (Vec<Diag>, bool, bool) {
    let mut v: Vec<Diag> = notices.iter().map(|n| Diag::Notice(n.clone())).collect();
    let mut compat3 = false;
    let mut compat11 = false;
    'next: for w in warnings {
        if w.contains("marker names undefined def '") {
            compat3 = true;
            continue;
        }
        if let Some(places) = missing_secret_places(w) {
            compat11 = true;
            v.extend(places);
            continue;
        }
        for m in PREFIXED {
            if let Some(i) = w.find(&format!(": {m}")) {
                compat3 = true;
                v.push(Diag::Warning(w[i + 2..].to_string()));
                continue 'next;
            }
        }
        v.push(Diag::Warning(w.clone()));
    }
    v.sort();
    (v, compat3, compat11)
}

/// How one case compared.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Same result (defs, template, generated files) and the same diagnostics.
    Identical,
    /// Both refused, for the same reason (`kind:subject`).
    RefusedSame(String),
    /// Same result; the differences are exactly these documented deviations.
    Deviates(BTreeSet<&'static str>),
    /// Anything else: the test fails.
    Mismatch(String),
}

/// The first differing line of two texts.
pub fn first_diff(a: &str, b: &str) -> String {
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!("line {}: ours {x:?} oracle {y:?}", i + 1);
        }
    }
    format!(
        "length differs: ours {} lines, oracle {}",
        a.lines().count(),
        b.lines().count()
    )
}

/// Compare two refusals: same reason → RefusedSame, else a mismatch naming both texts.
pub fn compare_refusals(ours: &str, theirs: &str) -> Outcome {
    match (refusal(ours), refusal(theirs)) {
        (Some(a), Some(b)) if a == b => Outcome::RefusedSame(a),
        (a, b) => Outcome::Mismatch(format!(
            "both refused, for different reasons: ours {a:?} ({ours:?}), oracle {b:?} ({theirs:?})"
        )),
    }
}

/// Our side of one library-level case: the resolution and the generated files (written into
/// `files_dir`, emptied first).
struct Ours {
    defs: String,
    build: String,
    notices: Vec<String>,
    warnings: Vec<String>,
    files: Result<BTreeMap<String, String>, String>,
}

fn ours(cfg: &osimager::config::Config, case: &Case, files_dir: &Path) -> Result<Ours, String> {
    let req = ResolveRequest {
        target: case.target.clone(),
        name: case.name.clone(),
        ip: case.ip.clone(),
        defines: case.defines.clone().into_iter().collect(),
        fqdn: None,
        temp_dir: PathBuf::from(&case.temp),
        temp_dir_named_only: false,
        skip: false,
        build_id: None,
        require_secrets: false,
    };
    let r = resolve::resolve(cfg, &req).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(files_dir);
    std::fs::create_dir_all(files_dir).unwrap();
    let files = osimager::config::files::generate(cfg, &r.plan, files_dir)
        .map(|written| {
            written
                .iter()
                .map(|p| {
                    let name = p.file_name().unwrap().to_string_lossy().into_owned();
                    (name, String::from_utf8(std::fs::read(p).unwrap()).unwrap())
                })
                .collect()
        })
        .map_err(|e| e.to_string());
    let _ = std::fs::remove_dir_all(&case.temp);
    Ok(Ours {
        defs: dumps_indent4(&serde_json::Value::Object(r.plan.defs.clone())),
        build: dumps_indent4(&r.build),
        notices: r.notices,
        warnings: r.warnings,
        files,
    })
}

/// Ok(None): the same files; Ok(Some(reason)): generation refused on both sides for the same
/// reason (a source file the data names is missing); Err: a difference.
fn compare_files(
    ours: &Result<BTreeMap<String, String>, String>,
    o: &OracleResult,
) -> Result<Option<String>, String> {
    match (ours, &o.files, &o.files_error) {
        (Ok(mine), Some(theirs), None) => {
            let (a, b): (Vec<_>, Vec<_>) = (mine.keys().collect(), theirs.keys().collect());
            if a != b {
                return Err(format!("generated files: ours {a:?}, oracle {b:?}"));
            }
            for (name, text) in mine {
                let (x, y) = (normalize(text), normalize(&theirs[name]));
                if x != y {
                    return Err(format!("generated file {name}: {}", first_diff(&x, &y)));
                }
            }
            Ok(None)
        }
        (Err(e), None, Some(oe)) => {
            let theirs = format!("{oe} {}", o.files_stdout.trim());
            match compare_refusals(e, &theirs) {
                Outcome::RefusedSame(r) => Ok(Some(r)),
                _ => Err(format!(
                    "file generation failed on both sides, differently (ours: {e}; oracle: {theirs})"
                )),
            }
        }
        (mine, theirs, oe) => Err(format!(
            "file generation: ours {:?}, oracle {:?} {oe:?}",
            mine.as_ref().map(|m| m.len()),
            theirs.as_ref().map(|m| m.len())
        )),
    }
}

fn compare_one(
    cfg: &osimager::config::Config,
    case: &Case,
    o: &OracleResult,
    dir: &Path,
) -> Outcome {
    let mine = ours(cfg, case, dir);
    match (mine, o.ok) {
        (Err(e), false) => compare_refusals(&e, &format!("{}\n{}", o.stdout, o.error)),
        (Err(e), true) => Outcome::Mismatch(format!("we refused ({e}), the oracle resolved")),
        (Ok(_), false) => Outcome::Mismatch(format!(
            "the oracle refused ({}; stdout {:?}) but we resolved",
            o.error, o.stdout
        )),
        (Ok(m), true) => {
            let (d, b) = (normalize(&m.defs), normalize(&m.build));
            let (od, ob) = (normalize(&o.defs), normalize(&o.build));
            if d != od || b != ob {
                return Outcome::Mismatch(first_diff(&format!("{d}\n{b}"), &format!("{od}\n{ob}")));
            }
            let files_refused = match compare_files(&m.files, o) {
                Ok(r) => r,
                Err(e) => return Outcome::Mismatch(e),
            };
            let (theirs, error_level) = match oracle_diags(&o.stdout) {
                Ok(v) => v,
                Err(l) => return Outcome::Mismatch(format!("unexpected oracle output line {l:?}")),
            };
            let (mine, compat3, compat11) = our_diags(&m.notices, &m.warnings);
            let compat3 = compat3 || error_level;
            if mine != theirs {
                return Outcome::Mismatch(format!(
                    "diagnostics differ: ours {mine:?}, oracle {theirs:?}"
                ));
            }
            if let Some(r) = files_refused {
                Outcome::RefusedSame(r)
            } else if compat3 || compat11 {
                let mut ids = BTreeSet::new();
                if compat3 {
                    ids.insert("COMPAT-3");
                }
                if compat11 {
                    ids.insert("COMPAT-11");
                }
                Outcome::Deviates(ids)
            } else {
                Outcome::Identical
            }
        }
    }
}

/// Compare every case at library level (`make_build` + `gen_files` against `resolve` +
/// `files::generate`), in two threads, each with its own Config.
pub fn compare_library(
    data: &Path,
    sc: &Scratch,
    cases: &[Case],
    oracle: &[OracleResult],
) -> Vec<Outcome> {
    assert_eq!(cases.len(), oracle.len());
    let half = cases.len().div_ceil(2).max(1);
    std::thread::scope(|s| {
        let hs: Vec<_> = cases
            .chunks(half)
            .zip(oracle.chunks(half))
            .enumerate()
            .map(|(t, (c, o))| {
                s.spawn(move || {
                    let cfg = load_config(data);
                    let dir = sc.root.join(format!("ours-files-{t}"));
                    c.iter()
                        .zip(o)
                        .map(|(case, o)| compare_one(&cfg, case, o, &dir))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

/// Per platform: compared, identical, refused for the same reason, deviations by id,
/// mismatches.
#[derive(Default, Debug, Clone)]
pub struct Tally {
    pub compared: usize,
    pub identical: usize,
    pub refused_same: usize,
    pub deviations: BTreeMap<&'static str, usize>,
    pub deviating: usize,
    pub mismatches: usize,
}

#[derive(Default)]
pub struct Summary {
    pub by_platform: BTreeMap<String, Tally>,
    pub mismatches: Vec<String>,
}

impl Summary {
    pub fn add(&mut self, case: &Case, how: &str, outcome: &Outcome) {
        let t = self
            .by_platform
            .entry(case.platform().to_string())
            .or_default();
        t.compared += 1;
        match outcome {
            Outcome::Identical => t.identical += 1,
            Outcome::RefusedSame(_) => t.refused_same += 1,
            Outcome::Deviates(ids) => {
                t.deviating += 1;
                for id in ids {
                    *t.deviations.entry(id).or_default() += 1;
                }
            }
            Outcome::Mismatch(m) => {
                t.mismatches += 1;
                self.mismatches.push(format!(
                    "{how} {} {:?} {:?}: {m}",
                    case.target, case.name, case.defines
                ));
            }
        }
    }

    pub fn total(&self) -> Tally {
        let mut all = Tally::default();
        for t in self.by_platform.values() {
            all.compared += t.compared;
            all.identical += t.identical;
            all.refused_same += t.refused_same;
            all.deviating += t.deviating;
            all.mismatches += t.mismatches;
            for (k, v) in &t.deviations {
                *all.deviations.entry(k).or_default() += v;
            }
        }
        all
    }

    /// A fixed-width table, one row per platform and a total.
    pub fn render(&self, title: &str) -> String {
        let mut out = format!(
            "{title}\n  {:<11} {:>8} {:>9} {:>13} {:>10}  {:<28} {:>10}\n",
            "platform",
            "compared",
            "identical",
            "refused-same",
            "deviating",
            "deviations",
            "mismatches"
        );
        let row = |name: &str, t: &Tally| {
            let devs = t
                .deviations
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect::<Vec<_>>()
                .join(" ");
            format!(
                "  {:<11} {:>8} {:>9} {:>13} {:>10}  {:<28} {:>10}\n",
                name, t.compared, t.identical, t.refused_same, t.deviating, devs, t.mismatches
            )
        };
        for (p, t) in &self.by_platform {
            out.push_str(&row(p, t));
        }
        out.push_str(&row("ALL", &self.total()));
        out
    }
}
