//! Two-layer data lookup (user dir over the bundled tree) and file reading.
//!
//! Directory walks follow Python's `Path.rglob` order (pre-order, directory entries in
//! `readdir` order, symlinked directories not followed) because OSImager's index depends on it
//! when two spec files provide the same target.

use super::ConfigError;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// The two data layers.
#[derive(Debug, Clone)]
pub struct Layers {
    /// `~/.config/osimager` (settings `user_dir`).
    pub user: PathBuf,
    /// The bundled tree (OSImager's `data/`).
    pub system: PathBuf,
}

impl Layers {
    /// `resolve_data_path`: the user file if it exists, else the bundled one.
    pub fn resolve(&self, parts: &[&str]) -> Option<PathBuf> {
        for base in [&self.user, &self.system] {
            let mut p = base.clone();
            for x in parts {
                p.push(x);
            }
            super::deps::path(&p);
            if p.exists() {
                return Some(p);
            }
        }
        None
    }

    /// `resolve_data_files(subdir, "*<suffix>")`: user files first, then bundled files whose
    /// relative path the user layer does not have.
    pub fn files(&self, subdir: &str, suffix: &str) -> Vec<PathBuf> {
        let mut seen: Vec<(PathBuf, PathBuf)> = Vec::new();
        let udir = self.user.join(subdir);
        super::deps::path(&udir);
        if udir.is_dir() {
            for f in rglob(&udir, suffix) {
                let rel = f.strip_prefix(&udir).unwrap_or(&f).to_path_buf();
                if let Some(e) = seen.iter_mut().find(|(r, _)| *r == rel) {
                    e.1 = f;
                } else {
                    seen.push((rel, f));
                }
            }
        }
        let sdir = self.system.join(subdir);
        super::deps::path(&sdir);
        if sdir.is_dir() {
            for f in rglob(&sdir, suffix) {
                let rel = f.strip_prefix(&sdir).unwrap_or(&f).to_path_buf();
                if !seen.iter().any(|(r, _)| *r == rel) {
                    seen.push((rel, f));
                }
            }
        }
        seen.into_iter().map(|(_, f)| f).collect()
    }
}

/// `Path(root).rglob("*" + suffix)`.
pub fn rglob(root: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk(root, suffix, &mut out);
    out
}

fn walk(dir: &Path, suffix: &str, out: &mut Vec<PathBuf>) {
    super::deps::path(dir);
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let entries: Vec<_> = rd.flatten().collect();
    for e in &entries {
        if e.file_name().to_string_lossy().ends_with(suffix) {
            out.push(e.path());
        }
    }
    for e in &entries {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            walk(&e.path(), suffix, out);
        }
    }
}

/// The largest data file read (the biggest bundled one is a few KiB): a larger file is refused
/// before it is read, so a hostile or mistaken file cannot exhaust memory.
pub const MAX_DATA_FILE: u64 = 16 << 20;

/// Read a data file as UTF-8 text: a regular file (not a FIFO or a device, which could block or
/// never end) of at most [`MAX_DATA_FILE`] bytes.
pub fn read_text(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let invalid = |message: String| {
        ConfigError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, message),
        )
    };
    let meta = std::fs::metadata(path).map_err(|e| ConfigError::io(path, e))?;
    if !meta.is_file() {
        return Err(invalid(
            "not a regular file: data files must be plain JSON or TOML files".into(),
        ));
    }
    let file = std::fs::File::open(path).map_err(|e| ConfigError::io(path, e))?;
    // Sized from the metadata: one read instead of a dozen growing ones.
    let mut bytes = Vec::with_capacity(meta.len().min(MAX_DATA_FILE) as usize + 1);
    file.take(MAX_DATA_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ConfigError::io(path, e))?;
    if bytes.len() as u64 > MAX_DATA_FILE {
        return Err(invalid(format!(
            "larger than {} MiB: not a data file osimager reads (check the path)",
            MAX_DATA_FILE >> 20
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        invalid(format!(
            "not UTF-8 text (invalid byte at offset {}): save it as UTF-8",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Read a JSON or TOML (by extension) file whose top level must be a table.
pub fn read_data(path: &Path) -> Result<Map<String, Value>, ConfigError> {
    super::deps::path(path);
    let text = read_text(path)?;
    let v = parse_text(path, &text)?;
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(ConfigError::Parse {
            file: path.to_path_buf(),
            line: 1,
            column: 1,
            message: "the top level must be an object".into(),
        }),
    }
}

/// Parse JSON or TOML text; errors carry file:line:column.
pub fn parse_text(path: &Path, text: &str) -> Result<Value, ConfigError> {
    if path.extension().is_some_and(|e| e == "toml") {
        // Deserialising straight into serde_json keeps the document's key order (Python's
        // tomllib does; toml::Value would sort keys).
        let v: Value = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            ConfigError::Parse {
                file: path.to_path_buf(),
                line,
                column,
                message: e.message().to_string(),
            }
        })?;
        Ok(v)
    } else {
        serde_json::from_str(text).map_err(|e| ConfigError::Parse {
            file: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: strip_position(&e.to_string()),
        })
    }
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// Read a file as JSON whatever its extension (the original's `json.load` call sites: platform
/// listing and the spec index).
pub fn read_data_json(path: &Path) -> Result<Map<String, Value>, ConfigError> {
    super::deps::path(path);
    let text = read_text(path)?;
    let v: Value = serde_json::from_str(&text).map_err(|e| ConfigError::Parse {
        file: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: strip_position(&e.to_string()),
    })?;
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(ConfigError::Parse {
            file: path.to_path_buf(),
            line: 1,
            column: 1,
            message: "the top level must be an object".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_have_positions() {
        let e = parse_text(Path::new("x.json"), "{\n  \"a\": 1,\n  \"b\" 2\n}").unwrap_err();
        let s = e.to_string();
        assert!(s.contains("x.json:3:7"), "{s}");
        let e = parse_text(Path::new("y.toml"), "a = 1\nb = = 2\n").unwrap_err();
        assert!(e.to_string().contains("y.toml:2:"), "{e}");
    }

    #[test]
    fn toml_tables_become_objects() {
        let v = parse_text(
            Path::new("l.toml"),
            "platforms = [\"qemu\"]\n[defs.dns]\nservers = [\"1.2.3.4\"]\n",
        )
        .unwrap();
        assert_eq!(v["defs"]["dns"]["servers"][0], "1.2.3.4");
    }
}
