//! The ordered steps of a native build, generic over the hypervisor [`Driver`].
//!
//! validate → temp dir → generated files → ISO → HTTP server → create disk → launch →
//! boot_wait → type boot_command → wait for SSH → provisioners → shutdown → export →
//! manifest + checksums → cleanup.
//!
//! Each step pushes an [`Undo`] the moment it creates something; on failure, timeout, SIGINT or
//! SIGTERM the stack is unwound in reverse (or left in place with `--on-error abort`).

use super::artifacts;
use super::cleanup::{Undo, UndoStack};
use super::diag::BuildLog;
use super::settings::{Settings, USER_NET_HOST_IP};
use super::{BuildReport, DriverEnv, DriverFactory};
use crate::comm::Session;
use crate::engine::BuildOptions;
use crate::iso::Meter;
use crate::plan::BuildPlan;
use anyhow::{anyhow, bail, Context, Result};
use osimager_drivers::bootcmd::{self, Fields};
use osimager_drivers::Driver;
use osimager_http::{HttpConfig, HttpServer};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod report;
mod unwind;

/// Generates the spec's files into a directory (the real one is `config::files::generate`).
/// Not `Send`: `Config` is not `Sync`; the build runs on one thread (see `build_blocking`).
pub type GenerateFn<'a> = Box<dyn FnOnce(&Path) -> Result<Vec<PathBuf>> + 'a>;

/// Upper bound for one cleanup action, so a wedged hypervisor cannot hang the unwinding.
const UNDO_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Pipeline<'a, D: Driver, F: DriverFactory<D>> {
    plan: &'a BuildPlan,
    opts: &'a BuildOptions,
    factory: F,
    generate: Option<GenerateFn<'a>>,
    cache_dir: PathBuf,
    meter: Meter,
    pub(crate) log: BuildLog,
    undo: UndoStack,
    settings: Option<Settings>,
    temp_dir: Option<PathBuf>,
    generated: Vec<PathBuf>,
    iso_path: Option<PathBuf>,
    http: Option<HttpServer>,
    driver: Option<D>,
    session: Option<Session>,
    staging: Option<PathBuf>,
    step: &'static str,
    started: Instant,
    echo: bool,
}

impl<'a, D: Driver, F: DriverFactory<D>> Pipeline<'a, D, F> {
    pub fn new(
        plan: &'a BuildPlan,
        opts: &'a BuildOptions,
        factory: F,
        generate: GenerateFn<'a>,
        cache_dir: PathBuf,
        meter: Meter,
        echo: bool,
    ) -> Self {
        Pipeline {
            plan,
            opts,
            factory,
            generate: Some(generate),
            cache_dir,
            meter,
            log: BuildLog::stderr_only(echo),
            undo: UndoStack::default(),
            settings: None,
            temp_dir: None,
            generated: Vec::new(),
            iso_path: None,
            http: None,
            driver: None,
            session: None,
            staging: None,
            step: "start",
            started: Instant::now(),
            echo,
        }
    }

    /// What is still registered for cleanup (for tests and the abort report).
    pub fn pending(&self) -> &[Undo] {
        self.undo.items()
    }

    fn s(&self) -> &Settings {
        self.settings.as_ref().expect("validate ran first")
    }

    fn enter(&mut self, step: &'static str) {
        self.step = step;
        self.log.line(&format!("==> {step}"));
    }

    async fn pause_if_debug(&self) {
        if self.opts.debug && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            eprintln!("[debug] step {} done; press Enter to continue", self.step);
            let _ = tokio::task::spawn_blocking(|| {
                let mut s = String::new();
                std::io::stdin().read_line(&mut s)
            })
            .await;
        }
    }

    /// Run the build; `stop` resolves (with a reason) on SIGINT/SIGTERM or any other request to
    /// stop. Everything created is undone before this returns, unless `--on-error abort`.
    pub async fn run(&mut self, stop: impl Future<Output = String>) -> Result<BuildReport> {
        let result = tokio::select! {
            r = self.steps() => r,
            why = stop => Err(anyhow!("interrupted by {why}")),
        };
        match result {
            Ok(report) if report.dry_run => Ok(report),
            Ok(report) => {
                self.enter("cleanup");
                self.unwind().await;
                self.log.line(&format!(
                    "Build finished in {:.1}s: {}",
                    self.started.elapsed().as_secs_f64(),
                    report.output_dir.display()
                ));
                Ok(report)
            }
            Err(e) => Err(self.fail(e).await),
        }
    }

    async fn steps(&mut self) -> Result<BuildReport> {
        self.enter("validate");
        let s = Settings::from_plan(self.plan, self.opts, &self.cache_dir)?;
        artifacts::check_output(&s.output_dir, self.opts.force)?;
        self.factory.check(self.plan, &s)?;
        self.settings = Some(s);
        if self.opts.dry_run {
            return Ok(self.dry_run_report());
        }
        self.pause_if_debug().await;

        self.enter("temp dir");
        self.step_temp_dir()?;
        self.enter("generated files");
        self.step_files()?;
        self.enter("iso");
        self.step_iso().await?;
        self.enter("http server");
        self.step_http().await?;
        self.pause_if_debug().await;

        self.enter("create disk");
        self.step_create().await?;
        self.enter("launch");
        self.driver()?.start().await.context("starting the VM")?;
        self.undo.push(Undo::StopVm);
        self.pause_if_debug().await;

        self.enter("boot wait");
        tokio::time::sleep(self.s().boot_wait).await;
        self.screenshot("boot-wait.png").await;
        self.enter("boot command");
        self.step_type().await?;
        self.screenshot("typed.png").await;
        self.pause_if_debug().await;

        if self.s().ssh.is_some() {
            self.enter("wait for ssh");
            self.step_ssh().await?;
            self.enter("provision");
            self.step_provision().await?;
            self.pause_if_debug().await;
        }
        self.enter("shutdown");
        self.step_shutdown().await?;
        self.enter("export");
        let files = self.step_export().await?;
        self.enter("manifest");
        self.step_manifest(files)
    }

    fn driver(&mut self) -> Result<&mut D> {
        self.driver.as_mut().ok_or_else(|| anyhow!("no VM yet"))
    }

    fn step_temp_dir(&mut self) -> Result<()> {
        let dir = match &self.opts.temp_dir {
            Some(d) => {
                std::fs::create_dir_all(d)
                    .with_context(|| format!("creating temp dir {}", d.display()))?;
                d.clone()
            }
            None => tempfile::Builder::new()
                .prefix("osimager-")
                .tempdir()
                .context("creating a temp dir")?
                .keep(),
        };
        if !self.opts.keep {
            self.undo.push(Undo::RemoveDir(dir.clone()));
        }
        self.log.line(&format!("temp dir: {}", dir.display()));
        // Diagnostics dir: replaced per build, kept afterwards (see diag.rs).
        let diag_dir = self.s().diag_dir.clone();
        let _ = std::fs::remove_dir_all(&diag_dir);
        std::fs::create_dir_all(&diag_dir)
            .with_context(|| format!("creating {}", diag_dir.display()))?;
        let log_path = self
            .opts
            .logfile
            .clone()
            .unwrap_or_else(|| diag_dir.join("build.log"));
        let echo = self.echo;
        self.log = BuildLog::open(&log_path, echo)
            .with_context(|| format!("opening the build log {}", log_path.display()))?;
        self.log.line(&format!("build log: {}", log_path.display()));
        self.temp_dir = Some(dir);
        Ok(())
    }

    fn step_files(&mut self) -> Result<()> {
        let dir = self.temp_dir.clone().expect("temp dir step ran");
        if let Some(g) = self.generate.take() {
            self.generated = g(&dir).context("generating the spec's files")?;
        }
        for f in &self.generated {
            self.log.line(&format!("generated {}", f.display()));
        }
        Ok(())
    }

    async fn step_iso(&mut self) -> Result<()> {
        let Some(req) = self.s().iso.clone() else {
            self.log.line("no iso_url: skipping");
            return Ok(());
        };
        let p = crate::iso::acquire(&req, &self.meter).await?;
        self.log.line(&format!("ISO: {}", p.display()));
        self.iso_path = Some(p);
        Ok(())
    }

    async fn step_http(&mut self) -> Result<()> {
        let s = self.s().clone();
        let temp = self.temp_dir.clone().expect("temp dir step ran");
        let files: std::collections::BTreeMap<String, PathBuf> = self
            .generated
            .iter()
            .filter_map(|f| {
                f.strip_prefix(&temp)
                    .ok()
                    .map(|r| (r.to_string_lossy().into_owned(), f.clone()))
            })
            .collect();
        if s.http_directory.is_none() && s.http_content.is_empty() && files.is_empty() {
            self.log.line("nothing to serve: no HTTP server");
            return Ok(());
        }
        let log = self.log.clone();
        let on_request = osimager_http::RequestLog(std::sync::Arc::new(move |l: &str| {
            log.file_only(&format!("http: {l}"))
        }));
        let srv = HttpServer::start(HttpConfig {
            on_request: Some(on_request),
            bind_address: s.http_bind,
            port_min: s.http_ports.0,
            port_max: s.http_ports.1,
            directory: s.http_directory.clone(),
            content: s.http_content.clone(),
            files,
        })
        .await
        .context("starting the HTTP server")?;
        self.undo.push(Undo::StopHttp);
        self.log
            .line(&format!("HTTP server: http://{}/", srv.local_addr()));
        self.http = Some(srv);
        Ok(())
    }

    async fn step_create(&mut self) -> Result<()> {
        let s = self.s().clone();
        let temp = self.temp_dir.clone().expect("temp dir step ran");
        let env = DriverEnv {
            build_name: s.build_name.clone(),
            work_dir: temp.join("vm"),
            log_dir: s.diag_dir.clone(),
            iso_path: self.iso_path.clone(),
            http: self
                .http
                .as_ref()
                .map(|h| (USER_NET_HOST_IP.to_string(), h.port())),
        };
        let d = self.factory.make(self.plan, &s, env)?;
        self.driver = Some(d);
        // Registered before `create` so a half-created VM is also destroyed.
        self.undo.push(Undo::DestroyVm);
        self.driver()?.create().await.context("creating the VM")?;
        Ok(())
    }

    fn fields(&self) -> Fields {
        let s = self.s();
        let mut f = Fields::new().with("Name", s.vm_name.clone());
        if let Some(h) = &self.http {
            f.insert("HTTPIP", USER_NET_HOST_IP);
            f.insert("HTTPPort", h.port().to_string());
        }
        f
    }

    async fn step_type(&mut self) -> Result<()> {
        let cmd = self.s().boot_command.clone();
        if cmd.is_empty() {
            self.log.line("no boot_command");
            return Ok(());
        }
        let fields = self.fields();
        let events = bootcmd::parse(&cmd, &fields).map_err(|e| anyhow!("boot_command: {e}"))?;
        if let Ok(text) = bootcmd::render(&cmd.concat(), &fields) {
            // Typed keys may contain passwords: the log line is redacted like every other.
            self.log.file_only(&format!("typing: {text}"));
        }
        self.log
            .line(&format!("typing {} key events", events.len()));
        self.driver()?
            .send_keys(&events)
            .await
            .context("typing the boot command")?;
        Ok(())
    }

    async fn step_ssh(&mut self) -> Result<()> {
        let cfg = self.s().ssh.clone().expect("ssh configured");
        let (h, port) = self.driver()?.ssh_endpoint();
        let host = cfg.host.clone().unwrap_or(h);
        self.log.line(&format!(
            "waiting for SSH on {host}:{port} (ssh_timeout {})",
            crate::comm::fmt_duration(cfg.timeout)
        ));
        let mut prog = self
            .meter
            .wait(&format!("waiting for SSH on {host}:{port}"));
        let log = self.log.clone();
        let note = move |m: &str| log.line(m);
        let fut = crate::comm::wait_ready_observed(&host, port, &cfg, &note);
        tokio::pin!(fut);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let session = loop {
            tokio::select! {
                r = &mut fut => break r,
                _ = tick.tick() => prog.tick(""),
            }
        };
        prog.finish();
        let session = session?;
        self.undo.push(Undo::CloseSsh);
        self.log.line(&format!("connected to {host}:{port}"));
        self.session = Some(session);
        Ok(())
    }

    async fn step_provision(&mut self) -> Result<()> {
        if self.plan.provisioners.is_empty() {
            self.log.line("no provisioners");
            return Ok(());
        }
        let (h, port) = self.driver()?.ssh_endpoint();
        let s = self.s().clone();
        let host = s.ssh.as_ref().and_then(|c| c.host.clone()).unwrap_or(h);
        let temp = self.temp_dir.clone().expect("temp dir step ran");
        let ptemp = temp.join("provision");
        std::fs::create_dir_all(&ptemp).with_context(|| format!("creating {}", ptemp.display()))?;
        let mut ctx = crate::provision::ProvisionContext::from_plan(self.plan, host, port, ptemp)?;
        if let Some(sess) = self.session.take() {
            ctx = ctx.with_session(sess);
        }
        ctx.template_fields.insert("Name".into(), s.vm_name.clone());
        if let Some(h) = &self.http {
            ctx.template_fields
                .insert("HTTPIP".into(), USER_NET_HOST_IP.into());
            ctx.template_fields
                .insert("HTTPPort".into(), h.port().to_string());
            ctx.http_addr = Some(format!("{USER_NET_HOST_IP}:{}", h.port()));
        }
        let log = self.log.clone();
        ctx.on_output = Some(std::sync::Arc::new(move |line: &str| log.line(line)));
        let r = crate::provision::run_all(&self.plan.provisioners, &ctx).await;
        self.session = ctx.into_session();
        r?;
        Ok(())
    }

    async fn step_shutdown(&mut self) -> Result<()> {
        let s = self.s().clone();
        match (&s.shutdown_command, &self.session) {
            (Some(cmd), Some(sess)) => {
                self.log.line("sending shutdown_command");
                sess.shutdown(cmd).await?;
            }
            _ => {
                self.log
                    .line("no shutdown_command: asking the guest to power off (ACPI)");
                self.driver()?.request_shutdown().await?;
            }
        }
        let mut prog = self.meter.wait("waiting for the VM to power off");
        let timeout = s.shutdown_timeout;
        let stopped = {
            let d = self.driver.as_mut().ok_or_else(|| anyhow!("no VM"))?;
            let fut = d.wait_stopped(timeout);
            tokio::pin!(fut);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    r = &mut fut => break r,
                    _ = tick.tick() => prog.tick(""),
                }
            }
        };
        prog.finish();
        if !stopped? {
            self.driver()?.force_stop().await?;
            bail!(
                "the VM did not power off within shutdown_timeout ({}); it was stopped by force \
                 and the image was not exported. Check shutdown_command or raise shutdown_timeout",
                crate::comm::fmt_duration(timeout)
            );
        }
        self.undo.forget(&Undo::StopVm);
        if let Some(sess) = self.session.take() {
            sess.close().await;
        }
        self.undo.forget(&Undo::CloseSsh);
        Ok(())
    }

    async fn step_export(&mut self) -> Result<Vec<PathBuf>> {
        let out = self.s().output_dir.clone();
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let staging = artifacts::staging_dir(&out);
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir(&staging).with_context(|| format!("creating {}", staging.display()))?;
        self.undo.push(Undo::RemoveDir(staging.clone()));
        self.staging = Some(staging.clone());
        let files = self
            .driver()?
            .export(&staging)
            .await
            .context("exporting the disk image")?;
        Ok(files)
    }
}
