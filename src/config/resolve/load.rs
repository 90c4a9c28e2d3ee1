//! Stage 2 of `make_build`: the state OSImager starts from, then the platform, location and
//! spec files merged into it (each with its `*_specific` entries and includes), and the
//! `platforms`/`locations` allow-lists of the location and spec checked.

use super::target::Target;
use super::value::{err, path_str, s};
use crate::config::diags::Diags;
use crate::config::loader::{Loader, State};
use crate::config::pyjson::{py_str, truthy};
use crate::config::{Config, ConfigError};
use serde_json::{json, Map, Value};

/// The top-level data of the three files merged into the state.
pub(super) struct Loaded {
    pub platform: Map<String, Value>,
    pub location: Map<String, Value>,
    pub spec: Map<String, Value>,
    /// `--skip`, or the spec's `skip_config`: no post-install configuration.
    pub skip: bool,
}

/// The state before any file is read: the settings as defs, the target's names, Ansible's
/// environment and the default provisioner (defined before loading, so that
/// `dist/version/arch_specific` entries and the files can use or replace them).
pub(super) fn presets(cfg: &Config, t: &Target) -> State {
    let mut st = State {
        defs: cfg.base_defs(),
        ..State::default()
    };
    st.defs.insert("platform".into(), s(&t.platform));
    st.defs.insert("location".into(), s(&t.location));
    st.defs.insert("dist".into(), s(&t.entry.dist));
    st.defs.insert("version".into(), s(&t.entry.version));
    st.defs.insert("arch".into(), s(&t.entry.arch));
    for (k, v) in [
        ("ANSIBLE_RETRY_FILES_ENABLED", "False"),
        ("ANSIBLE_WARNINGS", "False"),
        ("ANSIBLE_NOCOWS", "1"),
        ("ANSIBLE_DISPLAY_SKIPPED_HOSTS", "False"),
        ("ANSIBLE_STDOUT_CALLBACK", "minimal"),
    ] {
        st.evars.insert(k.into(), s(v));
    }
    st.defs.insert(
        "install_path".into(),
        s(path_str(&cfg.layers.user.join("install"))),
    );
    st.provisioners = vec![json!({
        "type": "ansible",
        "playbook_file": ">>ansible_playbook<<",
        "extra_arguments": [
            "[>ansible_extra_args<]",
            "--extra-vars",
            "platform={{user `platform-name`}} location_name={{user `location-name`}} spec_name={{user `spec-name`}} spec_config={{user `spec-config`}} install_dir=\">>install_path<<\" {{user `ansible-opts`}} >>ansible_extra_vars<<"
        ]
    })];
    let playbook = cfg
        .settings
        .values
        .get("ansible_playbook")
        .cloned()
        .unwrap_or(Value::Null);
    st.defs.insert("ansible_playbook".into(), playbook);
    st
}

/// Merge the platform (its `platform_defs` protected from later files), the location and the
/// spec into `state`, in that order: the merged state, and the files' own data.
pub(super) fn load(
    cfg: &Config,
    t: &Target,
    state: State,
    skip: bool,
    warnings: &mut Diags,
) -> Result<(State, Loaded), ConfigError> {
    let mut loader = Loader::new(&cfg.layers, cfg.regexes(), state);
    let platform = loader.load_data_file("platforms", &t.platform)?;
    loader
        .state
        .defs
        .insert("platform_name".into(), s(&t.platform));
    if let Some(Value::Object(pd)) = platform.get("platform_defs") {
        if !pd.is_empty() {
            loader.state.platform_defs = pd.clone();
            for (k, v) in pd {
                loader.state.defs.insert(k.clone(), v.clone());
            }
        }
    }
    let ptype = loader
        .state
        .config
        .get("type")
        .cloned()
        .unwrap_or(s(&t.platform));
    loader.state.defs.insert("platform_type".into(), ptype);

    let location_file = loader.find_data_file("locations", &t.location)?;
    let location = loader.load_file("locations", &location_file)?;
    loader
        .state
        .defs
        .insert("location_name".into(), s(&t.location));
    if Value::Object(location.clone())
        .to_string()
        .contains("\"iso_path\"")
    {
        warnings.push(format!(
            "location {} sets iso_path, which is ignored; iso_path is a global setting (osimager config set iso_path=...)",
            t.location
        ));
    }
    let spec = loader.load_file("specs", &t.entry.path)?;
    loader.state.defs.insert("spec_name".into(), s(&t.spec));
    let skip = skip || spec.get("skip_config").is_some_and(truthy);
    let loaded = Loaded {
        platform,
        location,
        spec,
        skip,
    };
    Ok((loader.state, loaded))
}

/// The location's and the spec's allow-lists (`platforms`, `locations`) admit the target.
pub(super) fn check_support(l: &Loaded, t: &Target) -> Result<(), ConfigError> {
    let (platform, location, spec) = (&t.platform, &t.location, &t.spec);
    check_allowed(&l.location, "platforms", platform, || {
        format!("location {location} does not support platform {platform}")
    })?;
    check_allowed(&l.spec, "platforms", platform, || {
        format!("spec {spec} does not support platform {platform}")
    })?;
    check_allowed(&l.spec, "locations", location, || {
        format!("spec {spec} does not support location {location}")
    })
}

fn check_allowed(
    data: &Map<String, Value>,
    key: &str,
    name: &str,
    msg: impl Fn() -> String,
) -> Result<(), ConfigError> {
    let Some(list) = data.get(key) else {
        return Ok(());
    };
    let allowed: Vec<String> = match list {
        Value::Array(a) => a.iter().map(py_str).collect(),
        Value::String(s) => {
            return if s.contains(name) {
                Ok(())
            } else {
                Err(err(msg()))
            }
        }
        _ => Vec::new(),
    };
    if allowed.iter().any(|a| a == name) {
        Ok(())
    } else {
        Err(ConfigError::NotSupported(format!(
            "{}; allowed {key}: {}",
            msg(),
            if allowed.is_empty() {
                "(none)".into()
            } else {
                allowed.join(", ")
            }
        )))
    }
}
