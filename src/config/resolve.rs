//! `make_build`: resolve `platform/location/spec` into defs and a Packer-shaped build, then
//! into a [`BuildPlan`].

use super::build_parts::{apply_defines, check_allowed, iso_defaults};
use super::build_parts::{
    err, generated_files, hooks, into_map, path_str, random_build_id, random_hex, required_files,
    s, split_build,
};
pub use super::build_parts::{open_store, retrofit};
use super::loader::{Loader, State};
use super::markers::{self, DefsEnv, MarkerWarning};
use super::pyjson::{py_str, truthy};
use super::secrets::SecretStore;
use super::{network, suggest, Config, ConfigError};
use crate::plan::BuildPlan;
use serde_json::{json, Map, Value};
use std::path::PathBuf;

/// What to resolve (the CLI's positional arguments and `-D`/`-F`).
#[derive(Debug, Clone, Default)]
pub struct ResolveRequest {
    /// `platform/location/spec` (the spec may be a `-latest-` alias).
    pub target: String,
    /// Machine name (default: the spec name); a dotted name is the FQDN.
    pub name: Option<String>,
    /// IP address; `None`/"" = DNS lookup of the FQDN, "" (DHCP) when that fails.
    pub ip: Option<String>,
    /// `-D "k=v,k2=v2"` items (applied in order, after the derived defs).
    pub defines: Vec<String>,
    /// `-F FQDN`.
    pub fqdn: Option<String>,
    /// The build's temp directory (`temp_dir`/`tmpdir` defs; generated files go there). It is
    /// created if missing.
    pub temp_dir: PathBuf,
    /// `--skip`: no provisioners.
    pub skip: bool,
    /// `build_id` override (default: `packer-` + 12 random hex digits).
    pub build_id: Option<String>,
}

/// Everything `make_build` produced.
pub struct Resolved {
    pub plan: BuildPlan,
    /// The Packer template (`-u`), identical to `plan.packer_template()`.
    pub build: Value,
    /// Messages the original prints before the result (`X -> Y` for a `-latest-` alias).
    pub notices: Vec<String>,
    /// Non-fatal problems (empty builder keys removed, missing secrets, undefined defs).
    pub warnings: Vec<String>,
    /// The spec file's merged top-level data (`required_files`, `ansible_version`, …).
    pub spec: Map<String, Value>,
    /// The platform's merged top-level data (`pre_build`, `post_build`, `plugin`, …).
    pub platform: Map<String, Value>,
    /// True when the spec or `--skip` asked to skip post-install configuration.
    pub skip: bool,
}

/// Substitute with `defs` as the marker environment, attributing warnings to `what`.
pub(super) fn sub(
    v: &Value,
    defs: &Map<String, Value>,
    store: Option<&SecretStore>,
    what: &str,
    warnings: &mut Vec<String>,
) -> Result<Value, ConfigError> {
    let mut env = DefsEnv::new(defs);
    if let Some(st) = store {
        env = env.with_secrets(st);
    }
    let out = markers::substitute_value(v, &env)
        .map_err(|source| ConfigError::Marker { file: None, source });
    for w in env.take_warnings() {
        warnings.push(format_warning(what, &w));
    }
    out.map_err(|e| match e {
        ConfigError::Marker { source, .. } => ConfigError::Other(format!("{what}: {source}")),
        other => other,
    })
}

fn format_warning(what: &str, w: &MarkerWarning) -> String {
    if w.key.is_empty() {
        format!("{what}: {}", w.message)
    } else {
        format!("{what}.{}: {}", w.key, w.message)
    }
}

/// `make_build`.
pub fn resolve(cfg: &Config, req: &ResolveRequest) -> Result<Resolved, ConfigError> {
    let mut notices = Vec::new();
    let mut warnings = Vec::new();
    let parts: Vec<&str> = req.target.split('/').collect();
    if parts.len() < 3 {
        return Err(err(format!(
            "target '{}' must be PLATFORM/LOCATION/SPEC (see `osimager list` and `osimager platforms`)",
            req.target
        )));
    }
    let (platform_name, location_name, spec_arg) = (parts[0], parts[1], parts[2]);
    if cfg
        .layers
        .resolve(&["platforms", &format!("{platform_name}.json")])
        .is_none()
    {
        return Err(ConfigError::NotFound {
            kind: "platform".into(),
            name: platform_name.into(),
            hint: suggest::available_platforms(cfg),
        });
    }
    let mut st = State {
        defs: cfg.base_defs(),
        ..State::default()
    };
    st.defs.insert("platform".into(), s(platform_name));
    st.defs.insert("location".into(), s(location_name));
    let index = cfg.index()?;
    let local_only = cfg.settings.local_only();
    let spec_name = index.resolve_latest(spec_arg, local_only);
    if spec_name != spec_arg {
        notices.push(format!("{spec_arg} -> {spec_name}"));
    } else if spec_name.contains("-latest-") && local_only {
        return Err(err(format!(
            "no local ISO found for any version of {spec_name}"
        )));
    }
    let Some(entry) = index.get(&spec_name) else {
        return Err(ConfigError::NotFound {
            kind: "target".into(),
            name: spec_name.clone(),
            hint: suggest::closest_targets(index, &spec_name),
        });
    };
    let (dist, version, arch) = (
        entry.dist.clone(),
        entry.version.clone(),
        entry.arch.clone(),
    );
    st.defs.insert("dist".into(), s(&dist));
    st.defs.insert("version".into(), s(&version));
    st.defs.insert("arch".into(), s(&arch));
    let instance_name = req
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| spec_name.clone());
    for (k, v) in [
        ("ANSIBLE_RETRY_FILES_ENABLED", "False"),
        ("ANSIBLE_WARNINGS", "False"),
        ("ANSIBLE_NOCOWS", "1"),
        ("ANSIBLE_DISPLAY_SKIPPED_HOSTS", "False"),
        ("ANSIBLE_STDOUT_CALLBACK", "minimal"),
    ] {
        st.evars.insert(k.into(), s(v));
    }
    let user_dir = cfg.layers.user.clone();
    st.defs.insert(
        "install_path".into(),
        s(path_str(&user_dir.join("install"))),
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

    let mut loader = Loader::new(&cfg.layers, cfg.regexes(), st);
    let platform = loader.load_data_file("platforms", platform_name)?;
    loader
        .state
        .defs
        .insert("platform_name".into(), s(platform_name));
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
        .unwrap_or(s(platform_name));
    loader.state.defs.insert("platform_type".into(), ptype);

    let location_file = loader.find_data_file("locations", location_name)?;
    let location = loader.load_file("locations", &location_file)?;
    loader
        .state
        .defs
        .insert("location_name".into(), s(location_name));
    if Value::Object(location.clone())
        .to_string()
        .contains("\"iso_path\"")
    {
        warnings.push(format!(
            "location {location_name} sets iso_path, which is ignored; iso_path is a global setting (osimager config set iso_path=...)"
        ));
    }
    let spec_path = entry.path.clone();
    let spec = loader.load_file("specs", &spec_path)?;
    loader.state.defs.insert("spec_name".into(), s(&spec_name));
    let skip = req.skip || spec.get("skip_config").is_some_and(truthy);
    let mut st = loader.state;

    // The spec's Ansible venv (`ansible_version`) is put in front of PATH by the engines, from
    // `plan.venv`: OSImager wrote `<venv>/bin:$PATH` into evars here, which baked this process's
    // PATH into the plan.
    check_allowed(&location, "platforms", platform_name, || {
        format!("location {location_name} does not support platform {platform_name}")
    })?;
    check_allowed(&spec, "platforms", platform_name, || {
        format!("spec {spec_name} does not support platform {platform_name}")
    })?;
    check_allowed(&spec, "locations", location_name, || {
        format!("spec {spec_name} does not support location {location_name}")
    })?;
    st.config.insert("name".into(), s(&spec_name));
    let mut vparts = version.split('.');
    let major = vparts.next().unwrap_or("").to_string();
    let minor = vparts.next().unwrap_or("").to_string();
    if !st.defs.get("boot").map(truthy).unwrap_or(true) {
        st.config.shift_remove("boot_command");
        st.config.shift_remove("boot_wait");
    }
    if !st.defs.get("shutcmd").map(truthy).unwrap_or(true) {
        st.config.shift_remove("shutdown_command");
    }
    std::fs::create_dir_all(&req.temp_dir).map_err(|e| ConfigError::io(&req.temp_dir, e))?;
    let temp = path_str(&req.temp_dir);
    let spec_dir = spec_path.parent().map(path_str).unwrap_or_default();
    let build_id = req.build_id.clone().unwrap_or_else(random_build_id);
    let base_dir = cfg
        .settings
        .values
        .get("base_dir")
        .cloned()
        .unwrap_or(Value::Null);
    for (k, v) in [
        ("base_path", base_dir),
        ("data_path", s(path_str(&cfg.layers.system))),
        ("user_dir", s(path_str(&user_dir))),
        ("temp_dir", s(&temp)),
        ("tmpdir", s(&temp)),
        ("spec_dir", s(spec_dir)),
        ("build_id", s(build_id)),
        ("dist", s(&dist)),
        ("version", s(&version)),
        ("major", s(major)),
        ("minor", s(minor)),
        ("arch", s(&arch)),
    ] {
        st.defs.insert(k.into(), v);
    }
    let iso_path = cfg
        .settings
        .values
        .get("iso_path")
        .cloned()
        .unwrap_or(s("/iso"));
    st.defs.insert("iso_path".into(), iso_path);
    for key in ["iso_path", "vms_path"] {
        if let Some(Value::String(v)) = st.defs.get(key) {
            if !v.is_empty() {
                let mut v = v.clone();
                if !v.starts_with('/') {
                    v = path_str(&super::settings::home_dir().join(&v));
                }
                let v = v.trim_end_matches('/').to_string();
                st.defs.insert(key.into(), s(v));
            }
        }
    }
    let spec_config = st
        .defs
        .get("spec_config")
        .cloned()
        .unwrap_or(s("tasks/spec.yml"));
    for (k, v) in [
        ("platform-name", s(platform_name)),
        ("location-name", s(location_name)),
        ("spec-name", s(&spec_name)),
        ("spec-config", spec_config),
    ] {
        st.variables.insert(k.into(), v);
    }
    let fqdn = network::derive(&mut st.defs, req, &instance_name)?;
    st.variables.insert("name".into(), s(&instance_name));
    st.variables.insert("fqdn".into(), s(&fqdn));
    let ip = match req.ip.as_deref().filter(|i| !i.is_empty()) {
        Some(ip) => ip.to_string(),
        None => {
            let dns = location
                .get("defs")
                .and_then(|d| d.get("dns"))
                .cloned()
                .unwrap_or(Value::Null);
            let cfgdns = super::dns::DnsConfig::from_json(&dns);
            super::dns::lookup_a(&fqdn, &cfgdns)
                .map(|a| a.to_string())
                .unwrap_or_default()
        }
    };
    st.defs.insert("ip".into(), s(&ip));
    for item in &req.defines {
        apply_defines(&mut st.defs, item)?;
    }
    let store = open_store(cfg, &mut warnings);
    iso_defaults(cfg, &mut st, store.as_ref(), &mut warnings)?;
    if store.is_none() {
        let all = Value::Array(vec![
            Value::Object(platform.clone()),
            Value::Object(location.clone()),
            Value::Object(spec.clone()),
        ]);
        if markers::uses_secret_refs(&all) {
            let source = cfg.settings.get_str("credential_source");
            let how = if source == "vault" {
                "run: osimager config set vault_addr=http://your-vault:8200 vault_token=... (or set VAULT_ADDR/VAULT_TOKEN)".to_string()
            } else {
                format!("create {}", path_str(&user_dir.join("secrets")))
            };
            return Err(err(format!(
                "your configuration uses secret references but credential_source '{source}' is not configured; {how}"
            )));
        }
    }
    let ptype = st.config.get("type").cloned().unwrap_or(s(platform_name));
    st.defs.insert("platform_type".into(), ptype);
    super::suggest::undefined_def_warnings(&st, &mut warnings);

    let store = store.as_ref();
    let defs_v = sub(
        &Value::Object(st.defs.clone()),
        &st.defs,
        store,
        "defs",
        &mut warnings,
    )?;
    st.defs = into_map(defs_v);
    let iso_url = st.defs.get("iso_url").map(py_str).unwrap_or_default();
    if !st.defs.get("local_only").is_some_and(truthy) {
        let iso_path = st.defs.get("iso_path").map(py_str).unwrap_or_default();
        if super::index::check_iso_local(&iso_url, &iso_path) {
            st.defs.insert("local_only".into(), Value::Bool(true));
        }
    }
    st.evars
        .insert("RES_OPTIONS".into(), s("nameserver >>dns1<<"));
    let d = st.defs.clone();
    let evars = into_map(sub(
        &Value::Object(st.evars.clone()),
        &d,
        store,
        "evars",
        &mut warnings,
    )?);
    let variables = into_map(sub(
        &Value::Object(st.variables.clone()),
        &d,
        store,
        "variables",
        &mut warnings,
    )?);
    let mut provisioners = Vec::new();
    if !skip {
        for (what, list) in [
            ("pre_provisioners", &st.pre_provisioners),
            ("provisioners", &st.provisioners),
            ("post_provisioners", &st.post_provisioners),
        ] {
            if let Value::Array(a) =
                sub(&Value::Array(list.clone()), &d, store, what, &mut warnings)?
            {
                provisioners.extend(a);
            }
        }
    }
    // The original substitutes the spec's `files` here too (results unused; errors still fatal).
    let spec_files = spec
        .get("files")
        .cloned()
        .unwrap_or(Value::Array(Vec::new()));
    sub(&spec_files, &d, store, "files", &mut Vec::new())?;
    let mut config = into_map(sub(
        &Value::Object(st.config.clone()),
        &d,
        store,
        "config",
        &mut warnings,
    )?);
    let empty: Vec<String> = config
        .iter()
        .filter(|(_, v)| matches!(v, Value::String(x) if x.is_empty()))
        .map(|(k, _)| k.clone())
        .collect();
    for k in empty {
        warnings.push(format!("removing empty value for: {k}"));
        config.shift_remove(&k);
    }
    if config.get("type").and_then(Value::as_str) == Some("qemu")
        && config.get("net_bridge").is_some_and(truthy)
        && !config.contains_key("qemuargs")
    {
        let h = random_hex(6);
        let nic_mac = format!("52:54:00:{}:{}:{}", &h[0..2], &h[2..4], &h[4..6]);
        let dev = config
            .get("net_device")
            .map(py_str)
            .unwrap_or("virtio-net".into());
        let br = config.get("net_bridge").map(py_str).unwrap_or_default();
        config.insert(
            "qemuargs".into(),
            json!([
                ["-netdev", format!("bridge,id=user.0,br={br}")],
                ["-device", format!("{dev},netdev=user.0,mac={nic_mac}")]
            ]),
        );
    }
    let build = json!({
        "variables": Value::Object(variables),
        "provisioners": Value::Array(provisioners),
        "builders": [Value::Object(config)],
    });
    let build = match store {
        Some(stv) => {
            let env = DefsEnv::new(&st.defs).with_secrets(stv);
            let out = markers::resolve_packer_vault_refs(&build, &env)
                .map_err(|e| ConfigError::Other(format!("build: {e}")))?;
            for w in env.take_warnings() {
                warnings.push(format_warning("build", &w));
            }
            out
        }
        None => build,
    };
    let files = generated_files(&st.files);
    let required_files = required_files(&spec);
    let (variables, provisioners, builder) = split_build(&build);
    let plan = BuildPlan {
        target: format!("{platform_name}/{location_name}/{spec_name}"),
        platform: platform_name.into(),
        location: location_name.into(),
        spec: spec_name.clone(),
        name: instance_name,
        fqdn,
        ip,
        defs: st.defs.clone(),
        variables,
        builder,
        provisioners,
        evars,
        files,
        required_files,
        venv: spec
            .get("ansible_version")
            .filter(|v| truthy(v) && !skip)
            .map(py_str),
        pre_build: hooks(&spec, &platform, "pre_build"),
        post_build: hooks(&spec, &platform, "post_build"),
        data_dir: cfg.layers.system.clone(),
        inputs: Default::default(),
    };
    Ok(Resolved {
        plan,
        build,
        notices,
        warnings,
        spec,
        platform,
        skip,
    })
}
