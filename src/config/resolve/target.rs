//! Stage 1 of `make_build`: the target `platform/location/spec`, its platform checked to
//! exist and its spec found in the index (a `-latest-` alias resolved).

use super::value::err;
use crate::config::index::IndexEntry;
use crate::config::{suggest, Config, ConfigError};

/// The target a request names.
pub(super) struct Target {
    pub platform: String,
    pub location: String,
    /// The spec, with a `-latest-` alias resolved to the version it stands for.
    pub spec: String,
    /// The spec's index entry: dist, version, arch and the spec file.
    pub entry: IndexEntry,
    /// `alias -> spec` when an alias was resolved (the original prints it).
    pub notices: Vec<String>,
}

impl Target {
    /// Split `target`, check the platform exists, and find the spec in the index.
    pub fn find(cfg: &Config, target: &str) -> Result<Target, ConfigError> {
        let parts: Vec<&str> = target.split('/').collect();
        if parts.len() < 3 {
            return Err(err(format!(
                "target '{target}' must be PLATFORM/LOCATION/SPEC (see `osimager list` and `osimager platforms`)"
            )));
        }
        let (platform, location, spec_arg) = (parts[0], parts[1], parts[2]);
        if cfg
            .layers
            .resolve(&["platforms", &format!("{platform}.json")])
            .is_none()
        {
            return Err(ConfigError::NotFound {
                kind: "platform".into(),
                name: platform.into(),
                hint: suggest::available_platforms(cfg),
            });
        }
        let index = cfg.index()?;
        let local_only = cfg.settings.local_only();
        let spec = index.resolve_latest(spec_arg, local_only);
        let mut notices = Vec::new();
        if spec != spec_arg {
            notices.push(format!("{spec_arg} -> {spec}"));
        } else if spec.contains("-latest-") && local_only {
            return Err(err(format!("no local ISO found for any version of {spec}")));
        }
        let Some(entry) = index.get(&spec) else {
            return Err(ConfigError::NotFound {
                kind: "target".into(),
                name: spec.clone(),
                hint: suggest::closest_targets(index, &spec),
            });
        };
        Ok(Target {
            platform: platform.into(),
            location: location.into(),
            entry: entry.clone(),
            spec,
            notices,
        })
    }

    /// `platform/location/spec` with the spec as resolved.
    pub fn name(&self) -> String {
        format!("{}/{}/{}", self.platform, self.location, self.spec)
    }
}
