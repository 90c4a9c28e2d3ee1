//! Configuration engine: OSImager-compatible settings, data layers, loader, index and
//! resolution of a target into a [`BuildPlan`](crate::plan::BuildPlan).
//!
//! ```text
//! Config::load(&ConfigOptions)        settings (config.json) + layers (user dir > bundled tree)
//!   .index()                          <dist>-<version>-<arch> → spec file (make_index)
//!   .resolve(&ResolveRequest)         platform + location + spec merged, markers applied
//! files::generate(&Config, &plan, dir)  the spec's `files`, written like gen_files
//! ```
pub mod crypt;
pub mod dns;
pub mod env;
pub mod expr;
pub mod markers;
mod secret_error;
pub mod secrets;
pub mod vault;

mod diags;
pub mod files;
pub mod index;
pub mod layers;
pub mod loader;
pub mod minire;
pub mod natural;
pub mod pyjson;
mod pytext;
pub mod resolve;
pub mod setting_types;
pub mod settings;
pub mod suggest;

#[cfg(test)]
mod tests;

pub use index::{Index, IndexEntry};
pub use resolve::{ResolveRequest, Resolved};
pub use settings::Settings;

use layers::Layers;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// Errors of the configuration engine. Each names the file/key/setting involved and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}:{line}:{column}: {message}", file.display())]
    Parse {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: key `{key}`: {message}", file.display())]
    Schema {
        file: PathBuf,
        key: String,
        message: String,
    },
    #[error("unknown {kind} '{name}'; {hint}")]
    NotFound {
        kind: String,
        name: String,
        hint: String,
    },
    #[error("{0}")]
    Setting(String),
    #[error("{0}")]
    Target(String),
    #[error("{0}")]
    NotSupported(String),
    #[error("{}", crate::secret::redact(.0))]
    Other(String),
    #[error("{}{source}", origin(file))]
    Marker {
        file: Option<PathBuf>,
        #[source]
        source: markers::MarkerError,
    },
}

fn origin(file: &Option<PathBuf>) -> String {
    match file {
        Some(f) => format!("{}: ", f.display()),
        None => String::new(),
    }
}

impl ConfigError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        ConfigError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Compiled `*_specific` selectors: Python `re.fullmatch(p, v, re.I)` = `^(?:p)$`,
/// case-insensitive. Compiled once per pattern; shareable between threads (`Config: Sync`).
/// ASCII patterns matched against ASCII values use a byte regex without Unicode tables (same
/// result for ASCII, several times cheaper to compile — the index compiles hundreds).
#[derive(Default)]
pub struct Regexes {
    mini: Mutex<HashMap<String, Option<minire::MiniRe>>>,
    ascii: Mutex<HashMap<String, regex::bytes::Regex>>,
    unicode: Mutex<HashMap<String, regex::Regex>>,
}

impl Regexes {
    pub fn fullmatch(&self, pattern: &str, value: &str) -> Result<bool, String> {
        let full = format!("^(?:{pattern})$");
        let bad = |e: regex::Error| format!("invalid regular expression {pattern:?}: {e}");
        if pattern.is_ascii() && value.is_ascii() {
            let mut mini = self.mini.lock().unwrap_or_else(|e| e.into_inner());
            if !mini.contains_key(pattern) {
                mini.insert(pattern.to_string(), minire::MiniRe::parse(pattern));
            }
            if let Some(Some(re)) = mini.get(pattern) {
                return Ok(re.fullmatch(value));
            }
            drop(mini);
            let mut cache = self.ascii.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(re) = cache.get(pattern) {
                return Ok(re.is_match(value.as_bytes()));
            }
            let re = regex::bytes::RegexBuilder::new(&full)
                .case_insensitive(true)
                .unicode(false)
                .build()
                .map_err(bad)?;
            let m = re.is_match(value.as_bytes());
            cache.insert(pattern.to_string(), re);
            return Ok(m);
        }
        let mut cache = self.unicode.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(re) = cache.get(pattern) {
            return Ok(re.is_match(value));
        }
        let re = regex::RegexBuilder::new(&full)
            .case_insensitive(true)
            .build()
            .map_err(bad)?;
        let m = re.is_match(value);
        cache.insert(pattern.to_string(), re);
        Ok(m)
    }
}

/// How to load the configuration.
#[derive(Debug, Clone, Default)]
pub struct ConfigOptions {
    /// The bundled data tree (OSImager's `data/`). `None`: [`default_data_tree`].
    pub data_dir: Option<PathBuf>,
    /// `--set KEY=VALUE` items, applied to the settings and saved (known keys only).
    pub set: Vec<String>,
    /// `--local`: runtime-only `local_only = true`.
    pub local_only: bool,
}

/// The bundled tree: `$OSIMAGER_DATA_DIR`, else `<exe>/../share/osimager`, else the source
/// tree this binary was built from.
pub fn default_data_tree() -> PathBuf {
    if let Some(d) = env::var_os("OSIMAGER_DATA_DIR") {
        if !d.is_empty() {
            return PathBuf::from(d);
        }
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(share) = exe
            .parent()
            .and_then(Path::parent)
            .map(|p| p.join("share/osimager"))
        {
            if share.is_dir() {
                return share;
            }
        }
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Named data files (`name`, top-level object), sorted by name.
pub type Named = Vec<(String, Map<String, Value>)>;

/// Loaded configuration: settings, layers, and (lazily) the index.
pub struct Config {
    pub settings: Settings,
    pub layers: Layers,
    /// Whether `--set` changed and saved the settings file.
    pub saved: Option<PathBuf>,
    regexes: Regexes,
    index: OnceLock<Result<Index, String>>,
}

impl Config {
    /// Settings (defaults, `config.json`, `--set` saved), layers. Cheap: nothing else is read.
    pub fn load(opts: &ConfigOptions) -> Result<Config, ConfigError> {
        let tree = settings::abspath(&opts.data_dir.clone().unwrap_or_else(default_data_tree));
        // OSImager's base_dir is the package dir whose data/ is the bundled tree.
        let base = if tree.file_name().is_some_and(|n| n == "data") {
            tree.parent().map(Path::to_path_buf).unwrap_or(tree.clone())
        } else {
            tree.clone()
        };
        let mut st = Settings::load(&base);
        let mut changed = false;
        for item in &opts.set {
            changed |= st.set(item)?;
        }
        let saved = if changed { Some(st.save()?) } else { None };
        if opts.local_only {
            st.values.insert("local_only".into(), Value::Bool(true));
        }
        let local = st.local_only();
        st.values.insert("local_only".into(), Value::Bool(local));
        let user = st.user_dir();
        // The original creates the locations directory on every start.
        let _ = std::fs::create_dir_all(user.join("locations"));
        Ok(Config {
            settings: st,
            layers: Layers { user, system: tree },
            saved,
            regexes: Regexes::default(),
            index: OnceLock::new(),
        })
    }

    /// The defs every resolution starts from: the settings, relative `iso_path`/`vms_path`
    /// made absolute under $HOME, and `base_path`.
    pub fn base_defs(&self) -> Map<String, Value> {
        let mut defs = self.settings.values.clone();
        for key in ["iso_path", "vms_path"] {
            if let Some(Value::String(v)) = defs.get(key) {
                if !v.is_empty() && !v.starts_with('/') {
                    let abs = settings::home_dir().join(v);
                    defs.insert(key.into(), Value::String(abs.to_string_lossy().into()));
                }
            }
        }
        let base = defs.get("base_dir").cloned().unwrap_or(Value::Null);
        defs.insert("base_path".into(), base);
        defs
    }

    pub fn regexes(&self) -> &Regexes {
        &self.regexes
    }

    /// The index of targets (`make_index`), computed once.
    pub fn index(&self) -> Result<&Index, ConfigError> {
        match self
            .index
            .get_or_init(|| index::make_index(self).map_err(|e| e.to_string()))
        {
            Ok(i) => Ok(i),
            Err(e) => Err(ConfigError::Other(e.clone())),
        }
    }

    /// Platforms (`get_platforms`): name → data, sorted by name.
    pub fn platforms(&self) -> Result<Named, ConfigError> {
        let mut out = Vec::new();
        for f in self.layers.files("platforms", ".json") {
            let data = layers::read_data_json(&f)?;
            let name = file_stem(&f, ".json");
            out.push((name, data));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Locations (`get_locations`): user dir only, JSON wins over TOML, sorted by name.
    pub fn locations(&self) -> Result<Named, ConfigError> {
        let dir = self.layers.user.join("locations");
        let mut seen: Vec<(String, PathBuf)> = Vec::new();
        for (suffix, files) in [
            (".json", layers::rglob(&dir, ".json")),
            (".toml", layers::rglob(&dir, ".toml")),
        ] {
            for f in files {
                let name = file_stem(&f, suffix);
                if suffix == ".json" {
                    if let Some(e) = seen.iter_mut().find(|(n, _)| *n == name) {
                        e.1 = f;
                        continue;
                    }
                    seen.push((name, f));
                } else if !seen.iter().any(|(n, _)| *n == name) {
                    seen.push((name, f));
                }
            }
        }
        let mut out = Vec::new();
        for (name, f) in seen {
            out.push((name, layers::read_data(&f)?));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Resolve a target into a build plan (`make_build`).
    pub fn resolve(&self, req: &ResolveRequest) -> Result<crate::plan::BuildPlan, ConfigError> {
        Ok(resolve::resolve(self, req)?.plan)
    }

    /// The ISO cache: `<packer_cache_dir>/iso`, default `~/.cache/osimager/iso`.
    pub fn iso_cache_dir(&self) -> PathBuf {
        let s = self.settings.get_str("packer_cache_dir");
        let base = if s.is_empty() {
            settings::home_dir().join(".cache/osimager")
        } else {
            PathBuf::from(s)
        };
        base.join("iso")
    }

    /// Make a resolved plan ready to build: render the spec's files and record what the engines
    /// need from the settings and data layers ([`crate::plan::BuildInputs`]), so that the plan
    /// alone can be handed to an engine (on another thread, in a server, …).
    pub fn prepare(&self, plan: &mut crate::plan::BuildPlan) -> Result<(), ConfigError> {
        let (files, warnings) = files::render(self, plan)?;
        plan.inputs = crate::plan::BuildInputs {
            files,
            warnings,
            notices: Vec::new(),
            iso_cache_dir: self.iso_cache_dir(),
            user_dir: self.layers.user.clone(),
            data_dirs: vec![self.layers.system.clone()],
            settings: self.settings.values.clone(),
            venv_dir: self.settings.venv_dir(),
        };
        Ok(())
    }
}

fn file_stem(f: &Path, suffix: &str) -> String {
    let n = f
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    n.strip_suffix(suffix).map(str::to_string).unwrap_or(n)
}
