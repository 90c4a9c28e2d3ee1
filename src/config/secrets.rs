//! Secret stores: the secrets file (`credential_source = config`) or Vault/OpenBao KV v2
//! (`credential_source = vault`). References are `path[:key]`, as in `|>images/linux:password<|`.

use crate::config::expr::PyVal;
use crate::config::pytext::{is_py_space, py_strip};
pub use crate::config::secret_error::SecretError;
use crate::config::vault::{VaultConfig, VaultSecrets};
use crate::secret::{register, Secret};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Where secrets come from.
#[allow(clippy::large_enum_variant)] // created once per run
pub enum SecretStore {
    /// The secrets file (`credential_source = config`).
    File(FileSecrets),
    /// Vault / OpenBao KV v2 (`credential_source = vault`).
    Vault(VaultSecrets),
}

impl SecretStore {
    /// Open the store selected by the setting `credential_source` (`config` → the file
    /// `<user_dir>/secrets`; anything else → Vault, as the original).
    pub fn open(
        credential_source: &str,
        user_dir: &Path,
        vault: &VaultConfig,
    ) -> Result<SecretStore, SecretError> {
        if credential_source == "config" {
            FileSecrets::load(&user_dir.join("secrets")).map(SecretStore::File)
        } else {
            VaultSecrets::connect(vault).map(SecretStore::Vault)
        }
    }

    /// Read `path[:key]`. Without a key (or with an empty one) the whole entry is returned,
    /// rendered as a Python dict (`{'username': 'root', …}`), like the original.
    pub fn get(&self, reference: &str) -> Result<Secret, SecretError> {
        let (path, key) = split_reference(reference);
        let entry = match self {
            SecretStore::File(f) => f.entry(path)?,
            SecretStore::Vault(v) => v.read(path)?,
        };
        entry_value(&entry, path, key, self.describe(path))
    }

    /// Where `path` is read from, for messages.
    pub fn describe(&self, path: &str) -> String {
        match self {
            SecretStore::File(f) => format!("secrets file {}", f.path.display()),
            SecretStore::Vault(v) => v.describe(path),
        }
    }
}

/// Split `path:key` at the first `:`; an empty key means "no key".
pub fn split_reference(reference: &str) -> (&str, Option<&str>) {
    match reference.split_once(':') {
        Some((p, k)) if !k.is_empty() => (p, Some(k)),
        Some((p, _)) => (p, None),
        None => (reference, None),
    }
}

fn entry_value(
    entry: &Map<String, Value>,
    path: &str,
    key: Option<&str>,
    store: String,
) -> Result<Secret, SecretError> {
    match key {
        Some(k) => match entry.get(k) {
            Some(Value::String(s)) if crate::secret::is_identifier_key(k) => {
                Ok(Secret::identifier(s.clone()))
            }
            Some(Value::String(s)) => Ok(Secret::new(s.clone())),
            Some(Value::Null) | None => Err(SecretError::KeyNotFound {
                path: path.to_string(),
                key: k.to_string(),
                store,
            }),
            Some(other) => Ok(Secret::new(PyVal::from_json(other).py_str())),
        },
        None => {
            for (k, v) in entry {
                if !crate::secret::is_identifier_key(k) {
                    register(&PyVal::from_json(v).py_str());
                }
            }
            Ok(Secret::new(
                PyVal::from_json(&Value::Object(entry.clone())).py_str(),
            ))
        }
    }
}

/// The secrets file: `path key=value key=value …` per line, `#` comments.
pub struct FileSecrets {
    path: PathBuf,
    entries: Map<String, Value>,
}

impl FileSecrets {
    /// Load and parse a secrets file (a missing file is an error that says how to create it).
    pub fn load(path: &Path) -> Result<FileSecrets, SecretError> {
        if !path.exists() {
            return Err(SecretError::FileMissing {
                path: path.to_path_buf(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| SecretError::FileRead {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(FileSecrets {
            path: path.to_path_buf(),
            entries: parse_secrets(&text),
        })
    }

    /// Parse secrets text (exactly like `load_secrets`: a repeated path replaces the earlier
    /// line; words without `=` are ignored; values may contain `=`).
    pub fn parse(path: &Path, text: &str) -> FileSecrets {
        FileSecrets {
            path: path.to_path_buf(),
            entries: parse_secrets(text),
        }
    }

    /// Paths defined in the file, in order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    fn entry(&self, path: &str) -> Result<Map<String, Value>, SecretError> {
        match self.entries.get(path) {
            Some(Value::Object(m)) => Ok(m.clone()),
            _ => Err(SecretError::PathNotFound {
                path: path.to_string(),
                store: format!("secrets file {}", self.path.display()),
            }),
        }
    }
}

fn parse_secrets(text: &str) -> Map<String, Value> {
    let mut entries = Map::new();
    for line in text.lines() {
        let line = py_strip(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = line.split(is_py_space).filter(|p| !p.is_empty()).collect();
        if parts.len() < 2 {
            continue;
        }
        let mut entry = Map::new();
        for pair in &parts[1..] {
            if let Some((k, v)) = pair.split_once('=') {
                if !crate::secret::is_identifier_key(k) {
                    register(v);
                }
                entry.insert(k.to_string(), Value::String(v.to_string()));
            }
        }
        // A repeated path replaces the earlier entry and keeps its first position (Python dict
        // re-assignment).
        entries.insert(parts[0].to_string(), Value::Object(entry));
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_load_secrets() {
        let f = FileSecrets::parse(
            Path::new("/x/secrets"),
            "# comment\n\n  images/linux username=root password=T3mp=x!  \nlonely\n\
             images/win username=Administrator junk password=pw1\nimages/linux password=new\n",
        );
        let s = SecretStore::File(f);
        assert_eq!(s.get("images/linux:password").unwrap().expose(), "new");
        assert!(matches!(
            s.get("images/linux:username"),
            Err(SecretError::KeyNotFound { .. })
        ));
        assert_eq!(
            s.get("images/win").unwrap().expose(),
            "{'username': 'Administrator', 'password': 'pw1'}"
        );
        assert_eq!(
            s.get("images/win:").unwrap().expose(),
            s.get("images/win").unwrap().expose()
        );
        let e = s.get("nope/x:password").unwrap_err();
        assert!(e.is_not_found());
        assert!(e.to_string().contains("nope/x"), "{e}");
        assert!(s.get("lonely:x").unwrap_err().is_not_found());
    }

    #[test]
    fn value_with_equals_and_missing_file() {
        let s = SecretStore::File(FileSecrets::parse(Path::new("s"), "a/b k=v=w\n"));
        assert_eq!(s.get("a/b:k").unwrap().expose(), "v=w");
        let e = FileSecrets::load(Path::new("/nonexistent/osimager/secrets"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("key=value"), "{e}");
    }
}
