//! A FAKE driver for tests (feature `fake`): it runs no VM, records every call, and fails or
//! hangs at a named method on request. It is registered exactly as a real driver is
//! ([`registry_entry`] + [`DriverRegistry::register`](crate::DriverRegistry::register)), which
//! is what adding a hypervisor takes.

use crate::bootcmd::KeyEvent;
use crate::driver::{
    Capabilities, DiskState, Driver, DriverEnv, DriverResult, HostAddress, KeyProgress,
    LeftRunning, Media, SshAddress,
};
use crate::registry::DriverEntry;
use crate::DriverError;
use async_trait::async_trait;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the fake does, shared by every driver the entry makes.
#[derive(Debug, Clone, Default)]
pub struct FakeControl {
    /// Every call, in order (`make`, `create`, `start`, `keys:N`, `send_keys`, …).
    pub calls: Arc<Mutex<Vec<String>>>,
    /// Fail when this method is called.
    pub fail_at: Option<String>,
    /// Never return from this method.
    pub hang_at: Option<String>,
    /// Time each call takes (a build that lasts a while, for concurrency tests).
    pub delay: Duration,
    /// The SSH address to report (default: 127.0.0.1:1, where nothing listens).
    pub ssh: Option<SshAddress>,
    /// Offer [`Driver::save_disk_state`] / [`Driver::use_disk_state`] (the install cache):
    /// the saved state is the work dir's `disk.qcow2`; a VM made from a state records
    /// `use_disk_state:<content of disk0>` and `create` copies it.
    pub disk_state: bool,
    /// `start` runs a real process standing in for the VM (a shell sleeping, in its own process
    /// group, its command line naming the work dir as a hypervisor's does); `destroy` kills it.
    /// For tests of what outlives a killed osimager.
    pub spawn_process: bool,
    /// Size of the image `export` writes (default: a few bytes), for disk-full tests.
    pub image_size: u64,
    /// `wait_stopped` reports a timeout (a guest that ignores the shutdown request).
    pub ignore_shutdown: bool,
}

impl FakeControl {
    /// A copy of the calls so far.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

/// The registry entry of a fake driver for `builder_type`.
pub fn registry_entry(builder_type: &str, control: FakeControl) -> DriverEntry {
    DriverEntry::new(builder_type, "FAKE (tests only)", move |_builder, env| {
        if let Ok(mut c) = control.calls.lock() {
            c.push("make".into());
        }
        Ok(Box::new(FakeDriver {
            control: control.clone(),
            env,
            running: false,
            state: None,
            process: None,
        }) as Box<dyn Driver>)
    })
}

/// See the module docs.
pub struct FakeDriver {
    control: FakeControl,
    env: DriverEnv,
    running: bool,
    /// The saved state to start from (`use_disk_state`).
    state: Option<DiskState>,
    process: Option<std::process::Child>,
}

impl FakeDriver {
    async fn call(&mut self, name: &str) -> DriverResult<()> {
        if let Ok(mut c) = self.control.calls.lock() {
            c.push(name.to_string());
        }
        if !self.control.delay.is_zero() {
            tokio::time::sleep(self.control.delay).await;
        }
        if self.control.hang_at.as_deref() == Some(name) {
            std::future::pending::<()>().await;
        }
        if self.control.fail_at.as_deref() == Some(name) {
            return Err(DriverError::Msg(format!("fake failure in {name}")));
        }
        Ok(())
    }
}

#[async_trait]
impl Driver for FakeDriver {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            screenshots: true,
            serial_log: None,
            disk_state: self.control.disk_state,
        }
    }
    async fn host_address(&mut self) -> DriverResult<HostAddress> {
        self.call("host_address").await?;
        Ok(HostAddress {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            guest_ip: "10.0.2.2".into(),
        })
    }
    async fn create(&mut self, media: &Media) -> DriverResult<()> {
        std::fs::create_dir_all(&self.env.work_dir).map_err(|source| DriverError::Io {
            context: "creating the fake work dir".into(),
            source,
        })?;
        let disk = self.env.work_dir.join("disk.qcow2");
        match self.state.as_ref().and_then(|s| s.file("disk0")) {
            Some(saved) => {
                std::fs::copy(saved, &disk).map_err(|source| DriverError::Io {
                    context: format!("copying the saved state {}", saved.display()),
                    source,
                })?;
            }
            None => {
                let _ = std::fs::write(&disk, "disk");
            }
        }
        if let Some(h) = &media.http {
            if let Ok(mut c) = self.control.calls.lock() {
                c.push(format!("http={}:{}", h.ip, h.port));
            }
        }
        self.call("create").await
    }
    async fn start(&mut self) -> DriverResult<()> {
        self.running = true;
        if self.control.spawn_process {
            use std::os::unix::process::CommandExt;
            // Not `exec`: the shell stays, and its argv ($0) names the work dir; `destroy`
            // kills the whole process group.
            let child = std::process::Command::new("sh")
                .arg("-c")
                .arg("sleep 3600; exit 0")
                .arg(self.env.work_dir.join("fake-vm"))
                .process_group(0)
                .spawn()
                .map_err(|source| DriverError::Io {
                    context: "starting the fake VM process".into(),
                    source,
                })?;
            self.process = Some(child);
        }
        self.call("start").await
    }
    async fn send_keys(
        &mut self,
        events: &[KeyEvent],
        progress: KeyProgress<'_>,
    ) -> DriverResult<()> {
        if let Ok(mut c) = self.control.calls.lock() {
            c.push(format!("keys:{}", events.len()));
        }
        for i in 0..=events.len() {
            progress(i, events.len());
        }
        self.call("send_keys").await
    }
    async fn screenshot(&mut self, path: &Path) -> DriverResult<()> {
        let _ = std::fs::write(path, "PNG");
        self.call("screenshot").await
    }
    async fn ssh_address(&mut self, _timeout: Duration) -> DriverResult<SshAddress> {
        self.call("ssh_address").await?;
        Ok(self.control.ssh.clone().unwrap_or(SshAddress {
            host: "127.0.0.1".into(),
            port: 1,
        }))
    }
    async fn request_shutdown(&mut self) -> DriverResult<()> {
        self.call("request_shutdown").await
    }
    async fn wait_stopped(&mut self, _timeout: Duration) -> DriverResult<bool> {
        self.call("wait_stopped").await?;
        if self.control.ignore_shutdown {
            return Ok(false);
        }
        self.running = false;
        Ok(true)
    }
    async fn force_stop(&mut self) -> DriverResult<()> {
        self.running = false;
        self.call("force_stop").await
    }
    async fn export(&mut self, out_dir: &Path) -> DriverResult<Vec<PathBuf>> {
        self.call("export").await?;
        let f = out_dir.join("fake.qcow2");
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut file = std::fs::File::create(&f)?;
            if self.control.image_size == 0 {
                return file.write_all(b"image");
            }
            let block = vec![0x5au8; 1 << 16];
            let mut left = self.control.image_size;
            while left > 0 {
                let n = left.min(block.len() as u64) as usize;
                file.write_all(&block[..n])?;
                left -= n as u64;
            }
            file.sync_all()
        };
        write().map_err(|source| DriverError::Io {
            context: format!("writing the fake image {}", f.display()),
            source,
        })?;
        Ok(vec![f])
    }
    async fn destroy(&mut self) -> DriverResult<()> {
        if let Some(mut p) = self.process.take() {
            // SAFETY: kill(2) on the process group our own child leads.
            unsafe { libc::kill(-(p.id() as libc::pid_t), libc::SIGKILL) };
            let _ = p.wait();
        }
        let _ = std::fs::remove_dir_all(&self.env.work_dir);
        self.call("destroy").await
    }
    async fn save_disk_state(&mut self) -> DriverResult<DiskState> {
        if !self.control.disk_state {
            return Err(DriverError::Msg("fake: disk state not offered".into()));
        }
        self.call("save_disk_state").await?;
        let frozen = self.env.work_dir.join("installed.qcow2");
        std::fs::copy(self.env.work_dir.join("disk.qcow2"), &frozen).map_err(|source| {
            DriverError::Io {
                context: "freezing the fake disk".into(),
                source,
            }
        })?;
        Ok(DiskState {
            files: vec![("disk0".into(), frozen)],
        })
    }
    fn use_disk_state(&mut self, state: &DiskState) -> DriverResult<()> {
        if !self.control.disk_state {
            return Err(DriverError::Msg("fake: disk state not offered".into()));
        }
        let content = state
            .file("disk0")
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        if let Ok(mut c) = self.control.calls.lock() {
            c.push(format!("use_disk_state:{content}"));
        }
        self.state = Some(state.clone());
        Ok(())
    }
    fn footprint(&self) -> crate::Footprint {
        crate::Footprint {
            processes: self.process.as_ref().map(|p| p.id()).into_iter().collect(),
            dirs: Vec::new(),
        }
    }
    fn exited(&mut self) -> Option<String> {
        let st = self.process.as_mut()?.try_wait().ok()??;
        Some(format!("the fake VM process exited ({st})"))
    }
    fn leave_running(&mut self) -> LeftRunning {
        if let Ok(mut c) = self.control.calls.lock() {
            c.push("leave_running".into());
        }
        let pid = self.process.take().map(|p| p.id());
        LeftRunning {
            items: vec![format!(
                "fake VM (work dir {}{})",
                self.env.work_dir.display(),
                pid.map(|p| format!(", process {p}")).unwrap_or_default()
            )],
            stop_commands: vec![format!("rm -rf {}", self.env.work_dir.display())],
        }
    }
}
