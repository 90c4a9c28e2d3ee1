//! Shared by the VirtualBox driver tests: a scratch VirtualBox home for the FAKE VBoxManage
//! (`tests/fakes/vboxmanage/`, a test stand-in — VirtualBox cannot be installed here), its
//! configuration and call log, and the driver's environment pointing at it.
#![allow(dead_code)]

use osimager_drivers::virtualbox::{LockRetry, VBoxConfig, VirtualBoxDriver};
use osimager_drivers::{DriverEnv, HttpEndpoint, Media};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The directory holding the fake `VBoxManage`.
pub fn fake_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fakes/vboxmanage"
    ))
}

/// A scratch dir with a VirtualBox home for the fake.
pub struct Scratch {
    _dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl Scratch {
    pub fn new(config: Value) -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix("vbox-fake-")
            .tempdir()
            .unwrap();
        let path = dir.path().to_path_buf();
        // OSIMAGER_KEEP_SCRATCH=1 keeps the fake's home (call log, VBox.log) for a look.
        let keep = std::env::var_os("OSIMAGER_KEEP_SCRATCH").is_some();
        let s = Scratch {
            _dir: if keep {
                let _ = dir.keep();
                None
            } else {
                Some(dir)
            },
            path,
        };
        std::fs::create_dir_all(s.home()).unwrap();
        s.set_config(config);
        s
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `VBOX_USER_HOME` of the fake.
    pub fn home(&self) -> PathBuf {
        self.path().join("vbox-home")
    }

    pub fn set_config(&self, config: Value) {
        std::fs::write(self.home().join("fake.json"), config.to_string()).unwrap();
    }

    /// The build's environment: the fake first on PATH, its home, no DISPLAY.
    pub fn env(&self) -> DriverEnv {
        let path = format!(
            "{}:{}",
            fake_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        DriverEnv {
            build_name: "vbtest".into(),
            work_dir: self.path().join("work"),
            log_dir: self.path().join("logs"),
            vars: vec![
                ("PATH".into(), path),
                ("VBOX_USER_HOME".into(), self.home().display().to_string()),
                ("HOME".into(), self.path().display().to_string()),
            ],
        }
    }

    /// Run the fake directly (as a user would).
    pub fn vboxmanage(&self, args: &[&str]) -> std::process::Output {
        let mut c = Command::new(fake_dir().join("VBoxManage"));
        c.args(args).env_clear();
        for (k, v) in self.env().vars {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    /// Every VBoxManage invocation so far: (argv, exit status).
    pub fn calls(&self) -> Vec<(Vec<String>, i64)> {
        let text = std::fs::read_to_string(self.home().join("fake-calls.log")).unwrap_or_default();
        text.lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                let argv = v["argv"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_string())
                    .collect();
                (argv, v["status"].as_i64().unwrap())
            })
            .collect()
    }

    /// The scancode calls the VMs' keyboards received, decoded from hex.
    pub fn key_calls(&self) -> Vec<Vec<u8>> {
        let text = std::fs::read_to_string(self.home().join("fake-keys.log")).unwrap_or_default();
        text.lines()
            .map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .map(|h| u8::from_str_radix(h, 16).unwrap())
                    .collect()
            })
            .collect()
    }

    /// Names of the registered VMs.
    pub fn registered(&self) -> Vec<String> {
        let out = self.vboxmanage(&["list", "vms"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split('"').nth(1).map(String::from))
            .collect()
    }

    /// A small file standing for the installer ISO.
    pub fn iso(&self) -> PathBuf {
        let p = self.path().join("installer.iso");
        if !p.exists() {
            std::fs::write(&p, vec![0u8; 4096]).unwrap();
        }
        p
    }
}

impl Drop for Scratch {
    /// A failed test must not leave stand-in VM processes or QEMU guests behind: kill every
    /// process the fake recorded for a VM still marked running.
    fn drop(&mut self) {
        let Ok(text) = std::fs::read_to_string(self.home().join("fake-state.json")) else {
            return;
        };
        let Ok(state) = serde_json::from_str::<Value>(&text) else {
            return;
        };
        for vm in state["vms"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
        {
            let uuid = vm["uuid"].as_str().unwrap_or("-");
            let pids = vm["squatters"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(std::iter::once(&vm["pid"]))
                .filter_map(Value::as_i64);
            for pid in pids {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmd).contains(uuid) {
                    // SAFETY: a plain kill(2) of a process this test's fake started.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                }
            }
        }
    }
}

/// A builder like the bundled virtualbox platform produces, small and quick.
pub fn builder(extra: Value) -> serde_json::Map<String, Value> {
    let mut b = json!({
        "type": "virtualbox-iso", "vm_name": "vbtest", "guest_os_type": "Debian_64",
        "cpus": 1, "memory": 256, "disk_size": 64, "hard_drive_interface": "sata",
        "hard_drive_nonrotational": true, "hard_drive_discard": true,
        "guest_additions_mode": "disable", "headless": true, "http_bind_address": "127.0.0.1",
        "vrdp_bind_address": "127.0.0.1", "format": "ova", "keep_registered": false,
        "host_port_min": 20000, "host_port_max": 29999,
        "vrdp_port_min": 30000, "vrdp_port_max": 30999,
        "vboxmanage": [["modifyvm", "{{ .Name }}", "--firmware", "bios", "--graphicscontroller",
                        "vmsvga", "--vram", "33", "--rtcuseutc", "on", "--ioapic", "on"]],
        "communicator": "ssh", "ssh_username": "u", "ssh_password": "p",
        "shutdown_command": "sudo poweroff"
    });
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b.as_object().unwrap().clone()
}

/// The driver, with lock retries short enough for tests.
pub fn driver(s: &Scratch, extra: Value) -> VirtualBoxDriver {
    let mut cfg = VBoxConfig::from_builder(&builder(extra), s.env()).unwrap();
    cfg.lock_retry = LockRetry {
        attempts: 6,
        first_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
    };
    cfg.unlock_timeout = Duration::from_secs(5);
    VirtualBoxDriver::new(cfg)
}

/// Whether `argv` is a call of `cmd` carrying the option `opt`.
pub fn has_opt(argv: &[String], cmd: &str, opt: &str) -> bool {
    argv.first().is_some_and(|c| c == cmd)
        && argv
            .iter()
            .any(|a| a == opt || a.starts_with(&format!("{opt}=")))
}

/// The installer ISO stand-in and an HTTP endpoint, as the engine passes them.
pub fn media(s: &Scratch) -> Media {
    Media {
        iso_path: Some(s.iso()),
        http: Some(HttpEndpoint {
            ip: "10.0.2.2".into(),
            port: 8123,
        }),
    }
}

pub fn no_progress(_: usize, _: usize) {}
