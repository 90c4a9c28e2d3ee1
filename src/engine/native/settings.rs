//! What the native engine reads from the builder block (Packer vocabulary), checked up front
//! so that a typo fails the build before anything is created.

use super::error::SettingsError;
use crate::comm::{parse_duration, SshConfig};
use crate::engine::{BuildContext, BuildOptions};
use crate::iso::{ChecksumSpec, IsoRequest};
use crate::plan::BuildPlan;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

type Result<T> = std::result::Result<T, SettingsError>;

fn bad(key: &str, message: impl Into<String>) -> SettingsError {
    SettingsError::Key {
        key: key.to_string(),
        message: message.into(),
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub build_name: String,
    pub builder_type: String,
    pub vm_name: String,
    pub output_dir: PathBuf,
    /// `<output_dir>.build/`: log, serial console, screenshots.
    pub diag_dir: PathBuf,
    pub boot_command: Vec<String>,
    pub boot_wait: Duration,
    pub ssh: Option<SshConfig>,
    pub shutdown_command: Option<String>,
    pub shutdown_timeout: Duration,
    pub iso: Option<IsoRequest>,
    pub http_directory: Option<PathBuf>,
    pub http_content: BTreeMap<String, String>,
    /// `http_bind_address` when the builder sets it; else the driver decides.
    pub http_bind: Option<std::net::IpAddr>,
    pub http_ports: (u16, u16),
}

/// A text key: a string (blank = unset) or a number; anything else is a mistake in the data
/// that must not silently fall back to the default.
fn str_key(b: &Map<String, Value>, k: &str) -> Result<Option<String>> {
    match b.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(bad(
            k,
            format!(
                "expected a string, found {}",
                crate::config::loader::kind(other)
            ),
        )),
    }
}

fn duration_key(b: &Map<String, Value>, k: &str, default: Duration) -> Result<Duration> {
    match str_key(b, k)? {
        None => Ok(default),
        Some(s) => parse_duration(&s).map_err(|e| bad(k, format!("{s:?}: {e}"))),
    }
}

fn port_key(b: &Map<String, Value>, k: &str, default: u16) -> Result<u16> {
    match str_key(b, k)? {
        None => Ok(default),
        Some(s) => s
            .parse::<u16>()
            .map_err(|_| bad(k, format!("{s:?} is not a TCP port"))),
    }
}

/// `boot_command` (array or string) or `boot_steps` (`[[keys, description], …]`).
fn boot_command(b: &Map<String, Value>) -> Result<Vec<String>> {
    let strings = |v: &Value, key: &str| -> Result<Vec<String>> {
        match v {
            Value::String(s) => Ok(vec![s.clone()]),
            Value::Array(a) => a
                .iter()
                .map(|x| match x {
                    Value::String(s) => Ok(s.clone()),
                    Value::Array(step) => step
                        .first()
                        .and_then(Value::as_str)
                        .map(String::from)
                        .ok_or_else(|| bad(key, "each step must be [keys, description]")),
                    _ => Err(bad(key, "expected strings")),
                })
                .collect(),
            Value::Null => Ok(Vec::new()),
            _ => Err(bad(key, "expected a list of strings")),
        }
    };
    match (b.get("boot_command"), b.get("boot_steps")) {
        (Some(c), Some(s)) if !c.is_null() && !s.is_null() => Err(bad(
            "boot_steps",
            "the builder sets both boot_command and boot_steps: keep one",
        )),
        (Some(c), _) if !c.is_null() => strings(c, "boot_command"),
        (_, Some(s)) => strings(s, "boot_steps"),
        _ => Ok(Vec::new()),
    }
}

fn absolute(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

impl Settings {
    /// Read and check everything; nothing is created.
    pub fn from_plan(
        plan: &BuildPlan,
        opts: &BuildOptions,
        ctx: &BuildContext,
    ) -> Result<Settings> {
        let b = &plan.builder;
        let builder_type = plan.builder_type().to_string();
        let build_name = str_key(b, "name")?.unwrap_or_else(|| builder_type.clone());
        let vm_name = str_key(b, "vm_name")?.unwrap_or_else(|| format!("packer-{build_name}"));
        let cwd = ctx.cwd.clone();
        // Relative builder paths resolve where OSImager runs Packer: the data directory.
        let base = if plan.data_dir.as_os_str().is_empty() {
            cwd.clone()
        } else {
            absolute(&cwd, &plan.data_dir)
        };
        let output_dir = match &opts.output_dir {
            Some(o) => absolute(&cwd, o),
            None => absolute(
                &base,
                Path::new(
                    &str_key(b, "output_directory")?
                        .unwrap_or_else(|| format!("output-{build_name}")),
                ),
            ),
        };
        let diag_dir = {
            let mut s = output_dir.as_os_str().to_owned();
            s.push(".build");
            PathBuf::from(s)
        };
        let boot_command = boot_command(b)?;
        osimager_drivers::bootcmd::validate(&boot_command).map_err(SettingsError::BootCommand)?;
        let communicator = str_key(b, "communicator")?.unwrap_or_else(|| "ssh".into());
        let ssh = match communicator.as_str() {
            "ssh" => {
                let c = SshConfig::from_builder(b)?;
                c.validate()?;
                if let Some(pw) = &c.password {
                    ctx.secrets.register(pw.expose());
                }
                Some(c)
            }
            "none" => None,
            other => {
                return Err(bad(
                    "communicator",
                    format!(
                        "{other:?} is not supported by the native engine (use ssh or none, or \
                         --engine packer)"
                    ),
                ))
            }
        };
        let iso = IsoRequest::from_builder(b, plan.inputs.iso_cache_dir.clone())
            .map_err(|(key, message)| bad(key, message))?;
        if let Some(r) = &iso {
            ChecksumSpec::parse(&r.checksum)?;
        }
        let http_content = match b.get("http_content") {
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| {
                    v.as_str()
                        .map(|s| (k.clone(), s.to_string()))
                        .ok_or_else(|| bad(&format!("http_content.{k}"), "expected a string"))
                })
                .collect::<Result<_>>()?,
            None | Some(Value::Null) => BTreeMap::new(),
            Some(_) => return Err(bad("http_content", "expected a map of path → text")),
        };
        let http_bind = match str_key(b, "http_bind_address")? {
            None => None,
            Some(a) => Some(
                a.parse()
                    .map_err(|_| bad("http_bind_address", format!("{a:?} is not an IP address")))?,
            ),
        };
        let http_ports = (
            port_key(b, "http_port_min", 8000)?,
            port_key(b, "http_port_max", 9000)?,
        );
        if http_ports.0 > http_ports.1 {
            return Err(bad("http_port_min", "is greater than http_port_max"));
        }
        Ok(Settings {
            build_name,
            builder_type,
            vm_name,
            diag_dir,
            output_dir,
            boot_command,
            boot_wait: duration_key(b, "boot_wait", Duration::from_secs(10))?,
            ssh,
            shutdown_command: str_key(b, "shutdown_command")?,
            shutdown_timeout: duration_key(b, "shutdown_timeout", Duration::from_secs(300))?,
            iso,
            http_directory: str_key(b, "http_directory")?.map(|d| absolute(&base, Path::new(&d))),
            http_content,
            http_bind,
            http_ports,
        })
    }
}
