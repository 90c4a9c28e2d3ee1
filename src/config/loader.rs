//! The merge engine: OSImager 1.11.1 `load_data` / `load_specific` / `load_inc` / `load_file` /
//! `load_data_file`, step for step (the input data is mutated exactly where the original
//! mutates it, because with several includes the including file is applied more than once).
//!
//! Known difference: Python shares nested objects between the loaded files and the merged
//! state (a later `"merge"` that extends a list also changes the earlier file's copy); here
//! values are copied. The two only differ when a file with a *list* of includes re-applies
//! content that a `"merge"` extended in between — no bundled data does this.

use super::layers::{read_data, Layers};
use super::pyjson::truthy;
use super::{ConfigError, Regexes};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Sections merged from every file, in processing order.
pub const SECTIONS: [&str; 8] = [
    "files",
    "evars",
    "defs",
    "variables",
    "pre_provisioners",
    "provisioners",
    "post_provisioners",
    "config",
];

/// Selectors of `*_specific` lists, in application order.
pub const SPECIFICS: [&str; 6] = [
    "platform", "location", "dist", "version", "arch", "firmware",
];

/// The merged state (the original's instance attributes).
#[derive(Debug, Clone, Default)]
pub struct State {
    pub defs: Map<String, Value>,
    pub evars: Map<String, Value>,
    pub variables: Map<String, Value>,
    pub config: Map<String, Value>,
    pub files: Vec<Value>,
    pub pre_provisioners: Vec<Value>,
    pub provisioners: Vec<Value>,
    pub post_provisioners: Vec<Value>,
    /// Set after the platform is loaded; its keys are protected from later `defs`.
    pub platform_defs: Map<String, Value>,
    /// Files read, in order (for messages that name a file).
    pub loaded_files: Vec<PathBuf>,
    /// The file that last set each value: `defs.key`, `config.key`, `provisioners[2]`, ….
    pub origins: std::collections::HashMap<String, PathBuf>,
}

enum Slot<'a> {
    Dict(&'a mut Map<String, Value>),
    List(&'a mut Vec<Value>),
}

impl State {
    fn slot(&mut self, section: &str) -> Slot<'_> {
        match section {
            "files" => Slot::List(&mut self.files),
            "evars" => Slot::Dict(&mut self.evars),
            "defs" => Slot::Dict(&mut self.defs),
            "variables" => Slot::Dict(&mut self.variables),
            "pre_provisioners" => Slot::List(&mut self.pre_provisioners),
            "provisioners" => Slot::List(&mut self.provisioners),
            "post_provisioners" => Slot::List(&mut self.post_provisioners),
            _ => Slot::Dict(&mut self.config),
        }
    }
}

/// Context of a load: where files come from and which file is being applied (for errors).
pub struct Loader<'a> {
    pub layers: &'a Layers,
    pub regexes: &'a Regexes,
    pub state: State,
    current: PathBuf,
    /// The files being loaded, outermost first (an include cycle is an error, not a stack
    /// overflow).
    loading: Vec<PathBuf>,
}

impl<'a> Loader<'a> {
    pub fn new(layers: &'a Layers, regexes: &'a Regexes, state: State) -> Self {
        Loader {
            layers,
            regexes,
            state,
            current: PathBuf::new(),
            loading: Vec::new(),
        }
    }

    fn type_error(&self, key: &str, message: String) -> ConfigError {
        ConfigError::Schema {
            file: self.current.clone(),
            key: key.to_string(),
            message,
        }
    }

    /// `load_data`: merge one file's (or `*_specific` entry's) sections into the state, then
    /// apply its `*_specific` entries.
    pub fn load_data(&mut self, data: &mut Map<String, Value>) -> Result<(), ConfigError> {
        let method = data.shift_remove("method");
        let replace = match &method {
            None => false,
            Some(Value::String(s)) => s != "merge",
            Some(_) => true,
        };
        for section in SECTIONS {
            let Some(slot_val) = data.get_mut(section) else {
                continue;
            };
            if slot_val.is_null() {
                continue;
            }
            // platform_defs keys cannot be overridden (a filtered copy, as the original).
            let mut filtered;
            let new_val: &mut Value = if section == "defs"
                && !self.state.platform_defs.is_empty()
                && slot_val.is_object()
            {
                let pd = &self.state.platform_defs;
                filtered = Value::Object(
                    slot_val
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter(|(k, _)| !pd.contains_key(*k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                );
                &mut filtered
            } else {
                slot_val
            };
            let current = self.current.clone();
            let err = |message: String| ConfigError::Schema {
                file: current.clone(),
                key: section.to_string(),
                message,
            };
            if let Value::Object(nv) = new_val {
                let merge = nv.shift_remove("merge");
                let keys: Vec<String> = match merge {
                    None => Vec::new(),
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|k| match k {
                            Value::String(s) => Ok(s.clone()),
                            other => {
                                Err(err(format!("\"merge\" must list key names, found {other}")))
                            }
                        })
                        .collect::<Result<_, _>>()?,
                    Some(Value::String(s)) => s.chars().map(String::from).collect(),
                    Some(other) => {
                        return Err(err(format!(
                            "\"merge\" must be a list of key names, found {other}"
                        )))
                    }
                };
                for key in keys {
                    let Some(key_val) = nv.shift_remove(&key) else {
                        continue;
                    };
                    if !truthy(&key_val) {
                        continue;
                    }
                    let Slot::Dict(attr) = self.state.slot(section) else {
                        return Err(err(format!(
                            "\"merge\" needs an object section, but {section} is a list"
                        )));
                    };
                    match (attr.get_mut(&key), key_val) {
                        (Some(Value::Object(cur)), Value::Object(add)) => {
                            for (k, v) in add {
                                cur.insert(k, v);
                            }
                        }
                        (Some(Value::Array(cur)), Value::Array(add)) => cur.extend(add),
                        (Some(Value::Object(_)), other) | (Some(Value::Array(_)), other) => {
                            return Err(err(format!(
                                "\"merge\" of {key}: cannot merge {other} into the existing value (types differ)"
                            )))
                        }
                        (_, v) => {
                            attr.insert(key.clone(), v);
                        }
                    }
                    self.state
                        .origins
                        .insert(format!("{section}.{key}"), self.current.clone());
                }
            }
            let new_val = new_val.clone();
            let here = self.current.clone();
            let mut touched: Vec<String> = Vec::new();
            let mut list_range = None;
            match (self.state.slot(section), new_val) {
                (Slot::Dict(attr), Value::Object(nv)) => {
                    for (k, v) in nv {
                        touched.push(format!("{section}.{k}"));
                        attr.insert(k, v);
                    }
                }
                (Slot::Dict(_), other) => {
                    return Err(err(format!("must be an object, found {}", kind(&other))))
                }
                (Slot::List(attr), nv) => {
                    if replace {
                        attr.clear();
                    }
                    let before = attr.len();
                    match nv {
                        Value::Array(a) => attr.extend(a),
                        Value::Object(m) => attr.extend(m.keys().map(|k| Value::String(k.clone()))),
                        Value::String(s) => {
                            attr.extend(s.chars().map(|c| Value::String(c.to_string())))
                        }
                        other => {
                            return Err(err(format!("must be a list, found {}", kind(&other))))
                        }
                    }
                    list_range = Some((before, attr.len()));
                }
            }
            for k in touched {
                self.state.origins.insert(k, here.clone());
            }
            if let Some((a, b)) = list_range {
                for i in a..b {
                    self.state
                        .origins
                        .insert(format!("{section}[{i}]"), here.clone());
                }
            }
        }
        self.load_specific(data)
    }

    /// `load_specific`: apply matching `<selector>_specific` entries, hoisting their other
    /// keys (e.g. `ansible_version`, `platforms`) onto the parent.
    fn load_specific(&mut self, data: &mut Map<String, Value>) -> Result<(), ConfigError> {
        for section in SPECIFICS {
            let name = match self.state.defs.get(section) {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                Some(v) if truthy(v) => super::pyjson::py_str(v),
                _ => continue,
            };
            let data_key = format!("{section}_specific");
            let n = match data.get(&data_key) {
                None | Some(Value::Null) => continue,
                Some(Value::Array(a)) => a.len(),
                Some(other) => {
                    return Err(self.type_error(
                        &data_key,
                        format!("must be a list of objects, found {}", kind(other)),
                    ))
                }
            };
            for i in 0..n {
                let Some(Value::Object(entry)) = data.get_mut(&data_key).and_then(|a| a.get_mut(i))
                else {
                    return Err(
                        self.type_error(&format!("{data_key}[{i}]"), "must be an object".into())
                    );
                };
                let pattern = match entry.shift_remove(section) {
                    None => String::new(),
                    Some(Value::String(s)) => s,
                    Some(other) => {
                        return Err(self.type_error(
                            &format!("{data_key}[{i}].{section}"),
                            format!(
                                "the selector must be a regular expression string, found {other}"
                            ),
                        ))
                    }
                };
                let mut entry = entry.clone();
                let matched = self
                    .regexes
                    .fullmatch(&pattern, &name)
                    .map_err(|e| self.type_error(&format!("{data_key}[{i}].{section}"), e))?;
                if matched {
                    self.load_data(&mut entry)?;
                    for (k, v) in &entry {
                        let is_specific = k
                            .strip_suffix("_specific")
                            .is_some_and(|s| SPECIFICS.contains(&s));
                        if !SECTIONS.contains(&k.as_str())
                            && k != "method"
                            && k != "merge"
                            && !is_specific
                        {
                            data.insert(k.clone(), v.clone());
                        }
                    }
                }
                if let Some(slot) = data.get_mut(&data_key).and_then(|a| a.get_mut(i)) {
                    *slot = Value::Object(entry);
                }
            }
        }
        Ok(())
    }

    /// `load_file`: read a file, apply its includes first (depth-first), then the file.
    pub fn load_file(
        &mut self,
        where_: &str,
        path: &Path,
    ) -> Result<Map<String, Value>, ConfigError> {
        let id = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if let Some(first) = self.loading.iter().position(|p| *p == id) {
            let chain: Vec<String> = self.loading[first..]
                .iter()
                .chain(std::iter::once(&id))
                .map(|p| p.display().to_string())
                .collect();
            return Err(self.type_error(
                "include",
                format!(
                    "include cycle: {}; remove one of these includes",
                    chain.join(" → ")
                ),
            ));
        }
        self.loading.push(id);
        let r = self.load_file_once(where_, path);
        self.loading.pop();
        r
    }

    fn load_file_once(
        &mut self,
        where_: &str,
        path: &Path,
    ) -> Result<Map<String, Value>, ConfigError> {
        let mut data = read_data(path)?;
        self.state.loaded_files.push(path.to_path_buf());
        let incs = data.shift_remove("include");
        let prev = std::mem::replace(&mut self.current, path.to_path_buf());
        match incs {
            Some(Value::Array(list)) if !list.is_empty() => {
                for inc in list {
                    let Value::String(inc) = inc else {
                        return Err(self
                            .type_error("include", format!("entries must be names, found {inc}")));
                    };
                    data = self.load_inc(where_, &inc, data, path)?;
                }
            }
            Some(Value::String(inc)) if !inc.is_empty() => {
                data = self.load_inc(where_, &inc, data, path)?;
            }
            // The original silently applies nothing for e.g. an object; say so instead.
            Some(other) if truthy(&other) => {
                return Err(self.type_error(
                    "include",
                    format!("must be a name or a list of names, found {other}"),
                ))
            }
            _ => {
                self.load_data(&mut data)?;
            }
        }
        self.current = prev;
        Ok(data)
    }

    fn load_inc(
        &mut self,
        where_: &str,
        what: &str,
        mut data: Map<String, Value>,
        path: &Path,
    ) -> Result<Map<String, Value>, ConfigError> {
        let mut inc_data = self.load_data_file(where_, what)?;
        self.current = path.to_path_buf();
        self.load_data(&mut data)?;
        for (k, v) in data {
            inc_data.insert(k, v);
        }
        Ok(inc_data)
    }

    /// `load_data_file`: find `what` in the layers (`specs/<what>/spec.json`,
    /// `locations/<what>.json|.toml` in the user dir only, `<where>/<what>.json`).
    pub fn load_data_file(
        &mut self,
        where_: &str,
        what: &str,
    ) -> Result<Map<String, Value>, ConfigError> {
        let path = self.find_data_file(where_, what)?;
        self.load_file(where_, &path)
    }

    pub fn find_data_file(&self, where_: &str, what: &str) -> Result<PathBuf, ConfigError> {
        // Names are relative paths inside the data tree: `..`, `/…` would read any file.
        if what.is_empty()
            || std::path::Path::new(what)
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            let message = format!(
                "{what:?} is not a name inside {where_}/ (no '..', no absolute paths): \
                 name a file of the data tree"
            );
            return Err(if self.current.as_os_str().is_empty() {
                ConfigError::Target(message)
            } else {
                self.type_error("include", message)
            });
        }
        match where_ {
            "specs" => self
                .layers
                .resolve(&["specs", what, "spec.json"])
                .ok_or_else(|| ConfigError::NotFound {
                    kind: "spec".into(),
                    name: what.into(),
                    hint: format!(
                        "create {}/specs/{what}/spec.json",
                        self.layers.user.display()
                    ),
                }),
            "locations" => {
                let dir = self.layers.user.join("locations");
                if what.ends_with(".json") || what.ends_with(".toml") {
                    return Ok(dir.join(what));
                }
                let json = dir.join(format!("{what}.json"));
                let toml = dir.join(format!("{what}.toml"));
                super::deps::path(&json);
                super::deps::path(&toml);
                if json.exists() {
                    Ok(json)
                } else if toml.exists() {
                    Ok(toml)
                } else {
                    Err(ConfigError::NotFound {
                        kind: "location".into(),
                        name: what.into(),
                        hint: super::suggest::available_locations(self.layers),
                    })
                }
            }
            _ => {
                let file = if what.ends_with(".json") {
                    what.to_string()
                } else {
                    format!("{what}.json")
                };
                self.layers
                    .resolve(&[where_, &file])
                    .ok_or_else(|| ConfigError::NotFound {
                        kind: where_.trim_end_matches('s').into(),
                        name: what.into(),
                        hint: format!("create {}/{where_}/{file}", self.layers.user.display()),
                    })
            }
        }
    }
}

pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
