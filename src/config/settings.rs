//! Settings: OSImager 1.11.1 `init_settings` / `load_settings` / `save_settings`.
//!
//! `$XDG_CONFIG_HOME/osimager/config.json` holds the user's settings. The older INI layout
//! (`osimager.conf`, section `[osimager]`) is read only when no `config.json` exists (1.11.1
//! ignores it; reading it is a documented extension for users coming from older releases).
//! `data_dir` keeps OSImager's meaning: the XDG *data* directory (venvs live below it). The
//! bundled data tree is chosen separately (`--data-dir` / `OSIMAGER_DATA_DIR`).

use super::pyjson::py_str;
use super::ConfigError;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Keys `save_settings` writes (others, like `data_dir`, are accepted by `--set` but not saved).
pub const SAVE_KEYS: &[&str] = &[
    "packer_cmd",
    "packer_cache_dir",
    "iso_path",
    "local_only",
    "cpu_sockets",
    "cpu_cores",
    "memory",
    "boot_disk_size",
    "ansible_playbook",
    "credential_source",
    "vault_addr",
    "vault_token",
];

/// The settings dict, in OSImager's key order, with OSImager's value types (a value set with
/// `--set` is a string, exactly as 1.11.1 stores it).
#[derive(Debug, Clone)]
pub struct Settings {
    pub values: Map<String, Value>,
    /// Warnings produced while loading (unreadable config file, …).
    pub warnings: Vec<String>,
}

/// An XDG base directory variable, or `default`. The XDG Base Directory specification says an
/// empty value is treated as unset; 1.11.1 (`os.environ.get(name, default)`) let an empty value
/// win, so `XDG_CONFIG_HOME=` made it read `osimager/…` relative to the working directory (a
/// deliberate deviation, docs/COMPAT.md).
fn env_or(name: &str, default: impl FnOnce() -> PathBuf) -> PathBuf {
    // XDG: a variable that is set but empty counts as unset (docs/COMPAT.md; 1.11.1 used it).
    match super::env::var_os(name) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => default(),
    }
}

/// `os.path.expanduser("~")`.
pub fn home_dir() -> PathBuf {
    super::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

fn s(p: impl AsRef<Path>) -> Value {
    Value::String(p.as_ref().to_string_lossy().into_owned())
}

impl Settings {
    /// Defaults exactly as 1.11.1 computes them. `base_dir` is the directory OSImager calls its
    /// package dir; for us it is the parent of a bundled tree named `data` (the OSImager layout)
    /// or the tree itself.
    pub fn defaults(base_dir: &Path) -> Settings {
        let home = home_dir();
        let xdg_config = env_or("XDG_CONFIG_HOME", || home.join(".config"));
        let xdg_data = env_or("XDG_DATA_HOME", || home.join(".local/share"));
        let xdg_cache = env_or("XDG_CACHE_HOME", || home.join(".cache"));
        let venv_dir = super::env::var_os("OSIMAGER_VENV_DIR")
            .or_else(|| super::env::var_os("VENV_DIR"))
            .map(PathBuf::from)
            .unwrap_or_else(|| xdg_data.join("osimager").join("venvs"));
        let mut m = Map::new();
        m.insert("base_dir".into(), s(base_dir));
        m.insert("user_dir".into(), s(xdg_config.join("osimager")));
        m.insert("data_dir".into(), s(xdg_data.join("osimager")));
        m.insert("packer_cmd".into(), "packer".into());
        m.insert("venv_dir".into(), s(venv_dir));
        m.insert("ansible_playbook".into(), "config.yml".into());
        m.insert("packer_cache_dir".into(), s(xdg_cache.join("osimager")));
        m.insert("iso_path".into(), "/iso".into());
        m.insert("local_only".into(), false.into());
        m.insert("cpu_sockets".into(), 1.into());
        m.insert("cpu_cores".into(), 2.into());
        m.insert("memory".into(), 2048.into());
        m.insert("boot_disk_size".into(), 16384.into());
        m.insert("credential_source".into(), "vault".into());
        m.insert("vault_addr".into(), "".into());
        m.insert("vault_token".into(), "".into());
        Settings {
            values: m,
            warnings: Vec::new(),
        }
    }

    /// Defaults, then `config.json` (or the older `osimager.conf`) from the user dir.
    pub fn load(base_dir: &Path) -> Settings {
        let mut st = Settings::defaults(base_dir);
        let file = st.config_file();
        if file.exists() {
            match std::fs::read_to_string(&file)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()))
            {
                Ok(Value::Object(data)) => {
                    for (k, v) in data {
                        if let Err(e) = super::setting_types::check_loaded(&k, &v) {
                            st.warnings.push(format!(
                                "{}: {e}; fix it with `osimager config set {k}=…`",
                                file.display()
                            ));
                        }
                        st.apply_loaded(&k, v);
                    }
                }
                Ok(_) => st.warnings.push(format!(
                    "ignoring config file {}: its top level is not a JSON object; using the \
                     defaults (fix or delete it; `osimager config set KEY=VALUE` rewrites it)",
                    file.display()
                )),
                Err(e) => st.warnings.push(format!(
                    "ignoring config file {}: {e}; using the defaults (fix or delete it; \
                     `osimager config set KEY=VALUE` rewrites it)",
                    file.display()
                )),
            }
        } else {
            let ini = st.user_dir().join("osimager.conf");
            if let Ok(text) = std::fs::read_to_string(&ini) {
                for (k, v) in parse_ini_section(&text, "osimager") {
                    st.apply_loaded(&k, Value::String(v));
                }
            }
        }
        st
    }

    fn apply_loaded(&mut self, key: &str, value: Value) {
        if !self.values.contains_key(key) {
            return;
        }
        let v = match key {
            "local_only" => Value::Bool(to_bool(&value)),
            "base_dir" => s(abspath(Path::new(&py_str(&value)))),
            _ => value,
        };
        self.values.insert(key.to_string(), v);
    }

    pub fn get_str(&self, key: &str) -> String {
        self.values.get(key).map(py_str).unwrap_or_default()
    }

    pub fn user_dir(&self) -> PathBuf {
        PathBuf::from(self.get_str("user_dir"))
    }

    pub fn config_file(&self) -> PathBuf {
        self.user_dir().join("config.json")
    }

    pub fn local_only(&self) -> bool {
        self.values.get("local_only").map(to_bool).unwrap_or(false)
    }

    /// `--set KEY=VALUE`: only known keys, and values of the form the key expects
    /// ([`super::setting_types`]); returns whether the value changed (then the caller saves).
    /// The value is stored as a string, as OSImager does.
    pub fn set(&mut self, item: &str) -> Result<bool, ConfigError> {
        let Some((key, value)) = item.split_once('=') else {
            return Err(ConfigError::Setting(format!(
                "invalid setting {item:?}: expected KEY=VALUE, e.g. memory=4096"
            )));
        };
        let (key, value) = (key.trim(), value.trim());
        if !self.values.contains_key(key) {
            let known: Vec<&str> = self.values.keys().map(String::as_str).collect();
            return Err(ConfigError::Setting(format!(
                "invalid setting key: {key} (known keys: {})",
                known.join(", ")
            )));
        }
        super::setting_types::check(key, value)
            .map_err(|e| ConfigError::Setting(format!("invalid value: {e}; nothing was saved")))?;
        let new = Value::String(value.to_string());
        if self.values.get(key) != Some(&new) {
            self.values.insert(key.to_string(), new);
            return Ok(true);
        }
        Ok(false)
    }

    /// `save_settings`: write the saveable keys to `config.json` (indent 4 + newline).
    pub fn save(&self) -> Result<PathBuf, ConfigError> {
        let dir = self.user_dir();
        std::fs::create_dir_all(&dir).map_err(|e| ConfigError::io(&dir, e))?;
        let file = dir.join("config.json");
        let mut data = Map::new();
        for k in SAVE_KEYS {
            if let Some(v) = self.values.get(*k) {
                data.insert((*k).to_string(), v.clone());
            }
        }
        let text = super::pyjson::dumps_indent4(&Value::Object(data)) + "\n";
        std::fs::write(&file, text).map_err(|e| ConfigError::io(&file, e))?;
        Ok(file)
    }

    /// The `--show-config` text (sorted, without base_dir/user_dir), Python formatting.
    pub fn show(&self) -> String {
        let mut out = format!("Config file: {}\n\n", self.config_file().display());
        let mut keys: Vec<&String> = self.values.keys().collect();
        keys.sort();
        for k in keys {
            if k == "base_dir" || k == "user_dir" {
                continue;
            }
            out.push_str(&format!("  {k:<20} = {}\n", py_str(&self.values[k])));
        }
        out
    }
}

impl Settings {
    /// The directory of Ansible venvs: setting `venv_dir`, relative to `base_dir` when relative
    /// (OSImager's `get_path`).
    pub fn venv_dir(&self) -> PathBuf {
        let dir = PathBuf::from(self.get_str("venv_dir"));
        if dir.is_absolute() {
            dir
        } else {
            PathBuf::from(self.get_str("base_dir")).join(dir)
        }
    }
}

/// OSImager `to_bool`.
pub fn to_bool(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => matches!(
            s.trim().to_lowercase().as_str(),
            "true" | "1" | "yes" | "on"
        ),
        _ => false,
    }
}

/// `os.path.abspath`: join with the cwd and normalise `.`/`..` lexically.
pub fn abspath(p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        super::env::current_dir().join(p)
    };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(x) => out.push(x),
            _ => {}
        }
    }
    out
}

fn parse_ini_section(text: &str, want: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut in_section = false;
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if l.starts_with('[') && l.ends_with(']') {
            in_section = l[1..l.len() - 1].trim() == want;
            continue;
        }
        if in_section {
            if let Some((k, v)) = l.split_once('=').or_else(|| l.split_once(':')) {
                out.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_and_bool() {
        let kv = parse_ini_section(
            "[other]\na=1\n[osimager]\n# c\nmemory = 4096\niso_path: /x\n",
            "osimager",
        );
        assert_eq!(
            kv,
            vec![
                ("memory".into(), "4096".into()),
                ("iso_path".into(), "/x".into())
            ]
        );
        assert!(to_bool(&Value::String(" Yes ".into())));
        assert!(!to_bool(&Value::from(1)));
    }

    #[test]
    fn set_known_keys_only() {
        let mut st = Settings::defaults(Path::new("/b"));
        assert!(st.set("memory=4096").unwrap());
        assert_eq!(st.values["memory"], Value::String("4096".into()));
        assert!(!st.set("memory= 4096 ").unwrap());
        assert!(st.set("nope=1").is_err());
        assert!(st.set("memory").is_err());
        let e = st.set("memory=lots").unwrap_err().to_string();
        assert!(
            e.contains("whole number") && e.contains("nothing was saved"),
            "{e}"
        );
        assert_eq!(st.values["memory"], Value::String("4096".into()));
        assert!(st.set(" cpu_cores =4").unwrap());
    }
}
