//! **A fake** [`Backend`] for the server's own tests, its browser tests and the load
//! benchmark: a fixed catalog of targets and platforms, locations kept in memory, and builds
//! that emit the event sequence of a native QEMU build (see [`build`]) without a hypervisor.
//! The real backend is the `osimager` crate's (feature `serve`). Its defs show secrets as
//! `***`, as the real one's redacted defs do.

pub mod build;
mod catalog;
mod png;

use catalog::{closest, key, not_found, version_cmp, Entry, PLATFORMS, TARGETS};

use crate::backend::*;
use async_trait::async_trait;
use osimager_events::EventSink;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// The fake backend.
pub struct FakeBackend {
    out_root: PathBuf,
    locations: Mutex<BTreeMap<String, LocationDoc>>,
}

impl FakeBackend {
    /// Builds write their images under `out_root`. Two locations exist: `hermetic`, `lab`.
    pub fn new(out_root: PathBuf) -> FakeBackend {
        let mut locations = BTreeMap::new();
        locations.insert(
            "hermetic".into(),
            LocationDoc {
                format: "json".into(),
                content: "{\n  \"platforms\": [\"qemu\"],\n  \"arches\": [\"x86_64\"],\n  \"config\": {\"accelerator\": \"tcg\"}\n}\n".into(),
            },
        );
        locations.insert(
            "lab".into(),
            LocationDoc {
                format: "toml".into(),
                content: "platforms = [\"qemu\", \"vsphere\", \"vmware\", \"virtualbox\"]\narches = [\"x86_64\", \"aarch64\"]\n\n[defs]\ndomain = \"lab.example\"\n".into(),
            },
        );
        FakeBackend {
            out_root,
            locations: Mutex::new(locations),
        }
    }

    fn parse(doc: &LocationDoc) -> Result<Value, String> {
        match doc.format.as_str() {
            "json" => serde_json::from_str::<Value>(&doc.content).map_err(|e| e.to_string()),
            "toml" => toml::from_str::<toml::Table>(&doc.content)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::to_value(t).map_err(|e| e.to_string())),
            f => Err(format!("unknown format {f}")),
        }
    }

    fn strings(v: &Value, key: &str) -> Vec<String> {
        v.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn location_value(&self, name: &str) -> Option<Value> {
        let docs = self.locations.lock().ok()?;
        docs.get(name).and_then(|d| Self::parse(d).ok())
    }

    fn split(&self, t: &TargetRef) -> Result<(String, String, &'static Entry), BackendError> {
        let parts: Vec<&str> = t.target.split('/').collect();
        let [platform, location, spec] = parts[..] else {
            return Err(BackendError::new(
                BackendErrorKind::Invalid,
                "target must be PLATFORM/LOCATION/SPEC",
            )
            .field("target"));
        };
        if !PLATFORMS.iter().any(|p| p.0 == platform) {
            return Err(not_found(
                "platform",
                platform,
                closest(platform, PLATFORMS.iter().map(|p| p.0)),
                "target",
            ));
        }
        if self.location_value(location).is_none() {
            let names: Vec<String> = self
                .locations
                .lock()
                .map(|l| l.keys().cloned().collect())
                .unwrap_or_default();
            return Err(not_found(
                "location",
                location,
                closest(location, names.iter().map(String::as_str)),
                "target",
            ));
        }
        let spec = match spec.rsplit_once("-latest-") {
            Some((dist, arch)) => TARGETS
                .iter()
                .filter(|t| t.0 == dist && t.2 == arch)
                .max_by(|a, b| version_cmp(a.1, b.1))
                .map(key)
                .unwrap_or_else(|| spec.to_string()),
            None => spec.to_string(),
        };
        let Some(entry) = TARGETS.iter().find(|t| key(t) == spec) else {
            let keys: Vec<String> = TARGETS.iter().map(key).collect();
            return Err(not_found(
                "target",
                &spec,
                closest(&spec, keys.iter().map(String::as_str)),
                "target",
            ));
        };
        Ok((platform.to_string(), location.to_string(), entry))
    }
}

#[async_trait]
impl Backend for FakeBackend {
    async fn targets(&self, f: &TargetFilter) -> Result<Vec<TargetInfo>, BackendError> {
        let loc_arches = match &f.location {
            Some(l) => match self.location_value(l) {
                Some(v) => Some(Self::strings(&v, "arches")),
                None => return Ok(Vec::new()),
            },
            None => None,
        };
        let newest = |t: &(&str, &str, &str, &[&str])| {
            !TARGETS
                .iter()
                .any(|o| o.0 == t.0 && o.2 == t.2 && version_cmp(o.1, t.1).is_gt())
        };
        Ok(TARGETS
            .iter()
            .filter(|t| f.platform.as_deref().is_none_or(|p| t.3.contains(&p)))
            .filter(|t| {
                loc_arches
                    .as_ref()
                    .is_none_or(|a| a.iter().any(|x| x == t.2))
            })
            .filter(|t| f.dist.as_deref().is_none_or(|d| d == t.0))
            .filter(|t| {
                f.version
                    .as_deref()
                    .is_none_or(|v| t.1 == v || t.1.starts_with(&format!("{v}.")))
            })
            .filter(|t| f.arch.as_deref().is_none_or(|a| a == t.2))
            .filter(|t| !f.latest || newest(t))
            .filter(|t| {
                f.q.as_deref()
                    .is_none_or(|q| key(t).contains(&q.to_lowercase()))
            })
            .map(|t| TargetInfo {
                name: key(t),
                dist: t.0.into(),
                version: t.1.into(),
                arch: t.2.into(),
                spec: format!("specs/{}/spec.json", t.0),
                platforms: t.3.iter().map(|s| s.to_string()).collect(),
                iso: Some(format!(
                    "https://mirror.example/{}/{}-{}.iso",
                    t.0, t.1, t.2
                )),
                local: t.0 == "testos",
                latest_alias: newest(t).then(|| format!("{}-latest-{}", t.0, t.2)),
            })
            .collect())
    }

    async fn platforms(&self) -> Result<Vec<PlatformInfo>, BackendError> {
        Ok(PLATFORMS
            .iter()
            .map(|p| PlatformInfo {
                name: p.0.into(),
                builder_type: p.1.into(),
                arches: p.2.iter().map(|s| s.to_string()).collect(),
                native: p.3,
            })
            .collect())
    }

    async fn locations(&self) -> Result<Vec<LocationInfo>, BackendError> {
        let docs = self.locations.lock().map(|l| l.clone()).unwrap_or_default();
        Ok(docs
            .iter()
            .map(|(name, d)| {
                let v = Self::parse(d).unwrap_or(Value::Null);
                LocationInfo {
                    name: name.clone(),
                    format: d.format.clone(),
                    path: format!("~/.config/osimager/locations/{name}.{}", d.format),
                    platforms: Self::strings(&v, "platforms"),
                    arches: Self::strings(&v, "arches"),
                }
            })
            .collect())
    }

    async fn location(&self, name: &str) -> Result<LocationDoc, BackendError> {
        let docs = self.locations.lock().map(|l| l.clone()).unwrap_or_default();
        docs.get(name).cloned().ok_or_else(|| {
            not_found(
                "location",
                name,
                closest(name, docs.keys().map(String::as_str)),
                "name",
            )
        })
    }

    async fn check_location(
        &self,
        _name: &str,
        doc: &LocationDoc,
    ) -> Result<Validation, BackendError> {
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        match Self::parse(doc) {
            Err(e) => problems.push(Problem {
                key: None,
                message: format!("not valid {}: {e}", doc.format),
            }),
            Ok(v) if !v.is_object() => problems.push(Problem {
                key: None,
                message: "a location is an object (a table)".into(),
            }),
            Ok(v) => {
                for p in Self::strings(&v, "platforms") {
                    if !PLATFORMS.iter().any(|x| x.0 == p) {
                        problems.push(Problem {
                            key: Some("platforms".into()),
                            message: format!("unknown platform '{p}'"),
                        });
                    }
                }
                if v.get("platforms").is_none() {
                    warnings.push("no `platforms`: every platform may use this location".into());
                }
            }
        }
        Ok(Validation {
            ok: problems.is_empty(),
            problems,
            warnings,
            target: None,
            engine: None,
        })
    }

    async fn save_location(
        &self,
        name: &str,
        doc: &LocationDoc,
        create: bool,
    ) -> Result<LocationInfo, BackendError> {
        let v = self.check_location(name, doc).await?;
        if !v.ok {
            let msg = v
                .problems
                .iter()
                .map(|p| p.message.clone())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(BackendError::new(BackendErrorKind::Invalid, msg).field("content"));
        }
        {
            let mut docs = self
                .locations
                .lock()
                .map_err(|_| BackendError::new(BackendErrorKind::Internal, "lock"))?;
            if create && docs.contains_key(name) {
                return Err(BackendError::new(
                    BackendErrorKind::Conflict,
                    format!("location '{name}' exists; edit it instead"),
                )
                .field("name"));
            }
            docs.insert(name.to_string(), doc.clone());
        }
        let all = self.locations().await?;
        all.into_iter()
            .find(|l| l.name == name)
            .ok_or_else(|| BackendError::new(BackendErrorKind::Internal, "saved location vanished"))
    }

    async fn delete_location(&self, name: &str) -> Result<(), BackendError> {
        let mut docs = self
            .locations
            .lock()
            .map_err(|_| BackendError::new(BackendErrorKind::Internal, "lock"))?;
        match docs.remove(name) {
            Some(_) => Ok(()),
            None => Err(not_found(
                "location",
                name,
                closest(name, docs.keys().map(String::as_str)),
                "name",
            )),
        }
    }

    async fn resolve(&self, t: &TargetRef) -> Result<ResolvedTarget, BackendError> {
        let (platform, location, e) = self.split(t)?;
        let name = t.name.clone().unwrap_or_else(|| key(e));
        let mut defs = json!({
            "platform": platform, "location": location, "dist": e.0, "version": e.1, "arch": e.2,
            "name": name, "memory": 1024, "cpus": 1, "disk_size": 8192,
            "root_password": "***", "ssh_password": "***",
            "iso_url": format!("https://mirror.example/{}/{}-{}.iso", e.0, e.1, e.2),
        });
        for item in t.defines.iter().flat_map(|d| d.split(',')) {
            if let Some((k, v)) = item.split_once('=') {
                defs[k.trim()] = Value::String(v.to_string());
            }
        }
        let template = json!({
            "builders": [{
                "type": if platform == "qemu" { "qemu" } else { "vsphere-iso" },
                "vm_name": name, "memory": defs["memory"], "ssh_password": "***",
                "boot_command": ["<wait>install url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/testos.cfg<enter>"],
            }],
            "provisioners": [{"type": "ansible", "playbook_file": "config.yml"}],
        });
        Ok(ResolvedTarget {
            target: format!("{platform}/{location}/{}", key(e)),
            defs,
            template,
            warnings: Vec::new(),
        })
    }

    async fn validate(&self, t: &TargetRef) -> Result<Validation, BackendError> {
        let (platform, location, e) = self.split(t)?;
        let mut problems = Vec::new();
        if !e.3.contains(&platform.as_str()) {
            problems.push(Problem {
                key: Some("platform".into()),
                message: format!(
                    "{} does not support platform {platform}; it supports {}",
                    key(e),
                    e.3.join(", ")
                ),
            });
        }
        let arches = self
            .location_value(&location)
            .map(|v| Self::strings(&v, "arches"))
            .unwrap_or_default();
        if !arches.is_empty() && !arches.iter().any(|a| a == e.2) {
            problems.push(Problem {
                key: Some("arches".into()),
                message: format!(
                    "location {location} offers {}, not {}",
                    arches.join(", "),
                    e.2
                ),
            });
        }
        let engine = if platform == "qemu" {
            "native"
        } else {
            "packer"
        };
        Ok(Validation {
            ok: problems.is_empty(),
            problems,
            warnings: Vec::new(),
            target: Some(format!("{platform}/{location}/{}", key(e))),
            engine: Some(engine.into()),
        })
    }

    fn start(&self, spec: BuildSpec, sink: Arc<dyn EventSink>) -> BuildHandle {
        let cancel = CancellationToken::new();
        let out_root = self.out_root.clone();
        let c = cancel.clone();
        let task = tokio::spawn(build::run(spec, sink, c, out_root));
        BuildHandle {
            cancel,
            done: Box::pin(async move {
                task.await.map_err(|e| {
                    BackendError::new(
                        BackendErrorKind::Internal,
                        format!("the fake build panicked: {e}"),
                    )
                })
            }),
        }
    }

    async fn host(&self) -> HostFacts {
        let tools = [
            "qemu-system-x86_64",
            "qemu-img",
            "packer",
            "ansible-playbook",
            "VBoxManage",
            "vmrun",
        ]
        .iter()
        .map(|n| Tool {
            name: n.to_string(),
            path: crate::host::which(n),
            version: None,
        })
        .collect();
        HostFacts {
            accelerator: Accelerator {
                name: "tcg".into(),
                hardware: false,
                detail: "fake backend: no probe was run".into(),
            },
            hypervisors: vec!["qemu".into()],
            tools,
        }
    }
}
