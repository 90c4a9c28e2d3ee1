//! Pipeline tests with a FAKE driver (it records calls; it does not run a VM). They prove the
//! order of steps and cleanup and the `--on-error` semantics. The real-QEMU runs are in
//! tests/native_*.rs.

use super::pipeline::{GenerateFn, Pipeline};
use super::{DriverEnv, DriverFactory, Settings};
use crate::engine::{BuildOptions, OnError};
use crate::iso::Meter;
use crate::plan::BuildPlan;
use anyhow::Result;
use osimager_drivers::bootcmd::KeyEvent;
use osimager_drivers::{Driver, DriverError, DriverResult};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Calls = Arc<Mutex<Vec<String>>>;

/// A fake hypervisor: records every call; fails (or hangs) at the named method.
struct FakeDriver {
    calls: Calls,
    fail_at: Option<&'static str>,
    hang_at: Option<&'static str>,
    work_dir: PathBuf,
    running: bool,
}

impl FakeDriver {
    async fn call(&mut self, name: &str) -> DriverResult<()> {
        self.calls.lock().unwrap().push(name.to_string());
        if self.hang_at == Some(name) {
            std::future::pending::<()>().await;
        }
        if self.fail_at == Some(name) {
            return Err(DriverError::Msg(format!("fake failure in {name}")));
        }
        Ok(())
    }
}

impl Driver for FakeDriver {
    async fn create(&mut self) -> DriverResult<()> {
        std::fs::create_dir_all(&self.work_dir).unwrap();
        std::fs::write(self.work_dir.join("disk.qcow2"), "disk").unwrap();
        self.call("create").await
    }
    async fn start(&mut self) -> DriverResult<()> {
        self.running = true;
        self.call("start").await
    }
    async fn send_keys(&mut self, events: &[KeyEvent]) -> DriverResult<()> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("keys:{}", events.len()));
        self.call("send_keys").await
    }
    async fn screenshot(&mut self, path: &Path) -> DriverResult<()> {
        std::fs::write(path, "PNG").unwrap();
        self.call("screenshot").await
    }
    fn ssh_endpoint(&self) -> (String, u16) {
        // Nothing listens on port 1: connection refused at once.
        ("127.0.0.1".into(), 1)
    }
    async fn request_shutdown(&mut self) -> DriverResult<()> {
        self.call("request_shutdown").await
    }
    async fn wait_stopped(&mut self, _t: Duration) -> DriverResult<bool> {
        self.call("wait_stopped").await?;
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
        std::fs::write(&f, "image").unwrap();
        Ok(vec![f])
    }
    async fn destroy(&mut self) -> DriverResult<()> {
        let _ = std::fs::remove_dir_all(&self.work_dir);
        self.call("destroy").await
    }
}

struct FakeFactory {
    calls: Calls,
    fail_at: Option<&'static str>,
    hang_at: Option<&'static str>,
}

impl DriverFactory<FakeDriver> for FakeFactory {
    fn check(&self, _plan: &BuildPlan, _s: &Settings) -> Result<()> {
        Ok(())
    }
    fn make(&mut self, _p: &BuildPlan, _s: &Settings, env: DriverEnv) -> Result<FakeDriver> {
        self.calls.lock().unwrap().push(format!(
            "make http={}",
            env.http.map(|h| h.0).unwrap_or_default()
        ));
        Ok(FakeDriver {
            calls: self.calls.clone(),
            fail_at: self.fail_at,
            hang_at: self.hang_at,
            work_dir: env.work_dir,
            running: false,
        })
    }
}

fn plan(out: &Path, communicator: &str) -> BuildPlan {
    let b = json!({
        "type": "qemu",
        "vm_name": "fake-vm",
        "output_directory": out.display().to_string(),
        "boot_wait": "0s",
        "boot_command": ["<esc>linux ks=http://{{ .HTTPIP }}:{{ .HTTPPort }}/ks.cfg<enter>"],
        "http_content": {"/ks.cfg": "rootpw s3cr3t-pw\n"},
        "communicator": communicator,
        "ssh_username": "root",
        "ssh_password": "s3cr3t-pw",
        "ssh_timeout": "1s",
        "shutdown_timeout": "5s",
    });
    BuildPlan {
        target: "qemu/test/fake".into(),
        name: "fake".into(),
        builder: b.as_object().unwrap().clone(),
        ..BuildPlan::default()
    }
}

struct Run {
    result: Result<super::BuildReport>,
    calls: Vec<String>,
    temp: PathBuf,
    out: PathBuf,
    _root: tempfile::TempDir,
}

async fn run_fake(
    communicator: &str,
    fail_at: Option<&'static str>,
    hang_at: Option<&'static str>,
    on_error: OnError,
    stop_after: Option<Duration>,
) -> Run {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("out/fake");
    let temp = root.path().join("tmp");
    let plan = plan(&out, communicator);
    let opts = BuildOptions {
        on_error,
        temp_dir: Some(temp.clone()),
        ..BuildOptions::default()
    };
    let calls: Calls = Arc::new(Mutex::new(Vec::new()));
    let factory = FakeFactory {
        calls: calls.clone(),
        fail_at,
        hang_at,
    };
    let generate: GenerateFn<'_> = Box::new(|dir: &Path| {
        let f = dir.join("answers.cfg");
        std::fs::write(&f, "generated")?;
        Ok(vec![f])
    });
    let mut p = Pipeline::new(
        &plan,
        &opts,
        factory,
        generate,
        root.path().join("cache"),
        Meter::quiet(),
        false,
    );
    let stop = async move {
        match stop_after {
            Some(d) => {
                tokio::time::sleep(d).await;
                "test stop".to_string()
            }
            None => std::future::pending().await,
        }
    };
    let result = p.run(stop).await;
    let calls = calls.lock().unwrap().clone();
    Run {
        result,
        calls,
        temp,
        out,
        _root: root,
    }
}

fn without_screens(c: &[String]) -> Vec<String> {
    c.iter().filter(|x| *x != "screenshot").cloned().collect()
}

#[tokio::test]
async fn successful_build_runs_steps_in_order_and_cleans_up() {
    let r = run_fake("none", None, None, OnError::Cleanup, None).await;
    let report = r.result.expect("build succeeds");
    assert_eq!(
        without_screens(&r.calls),
        [
            "make http=10.0.2.2",
            "create",
            "start",
            "keys:38",
            "send_keys",
            "request_shutdown",
            "wait_stopped",
            "export",
            "destroy"
        ]
    );
    assert!(report.output_dir.join("fake.qcow2").is_file());
    let sums = std::fs::read_to_string(&report.checksums).unwrap();
    assert!(sums.ends_with("  fake.qcow2\n"), "{sums}");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report.manifest).unwrap()).unwrap();
    assert_eq!(m["builds"][0]["builder_type"], "qemu");
    assert_eq!(m["builds"][0]["files"][0]["size"], 5);
    assert_eq!(m["last_run_uuid"], report.run_uuid);
    assert!(!r.temp.exists(), "temp dir removed");
    // The typed password is in the log only as ***.
    let log = std::fs::read_to_string(report.log.unwrap()).unwrap();
    assert!(
        log.contains("typing: <esc>linux ks=http://10.0.2.2:"),
        "{log}"
    );
    assert!(!log.contains("s3cr3t-pw"));
    // No staging leftovers next to the output.
    let siblings: Vec<_> = std::fs::read_dir(r.out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !siblings.iter().any(|n| n.contains("partial")),
        "{siblings:?}"
    );
}

#[tokio::test]
async fn failure_unwinds_in_reverse_order() {
    let r = run_fake("none", Some("send_keys"), None, OnError::Cleanup, None).await;
    let err = format!("{:#}", r.result.unwrap_err());
    assert!(
        err.contains("boot command") && err.contains("fake failure"),
        "{err}"
    );
    let c = without_screens(&r.calls);
    // After the failed typing: VM stopped, then destroyed (reverse of start, create).
    assert_eq!(&c[c.len() - 3..], ["send_keys", "force_stop", "destroy"]);
    assert!(!r.temp.exists());
    assert!(!r.out.exists());
    // The failure screenshot was taken before cleanup.
    assert!(r.calls.iter().filter(|c| *c == "screenshot").count() >= 2);
}

#[tokio::test]
async fn ssh_timeout_fails_cleanly() {
    let r = run_fake("ssh", None, None, OnError::Cleanup, None).await;
    let err = format!("{:#}", r.result.unwrap_err());
    assert!(err.contains("wait for ssh"), "{err}");
    assert!(!err.contains("s3cr3t-pw"));
    let c = without_screens(&r.calls);
    assert_eq!(&c[c.len() - 2..], ["force_stop", "destroy"]);
    assert!(!r.temp.exists() && !r.out.exists());
}

#[tokio::test]
async fn export_failure_leaves_no_output() {
    let r = run_fake("none", Some("export"), None, OnError::Cleanup, None).await;
    assert!(r.result.is_err());
    assert!(!r.out.exists());
    let parent = r.out.parent().unwrap();
    let names: Vec<_> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains("partial")), "{names:?}");
    // The VM was already stopped cleanly: only destroy remains.
    let c = without_screens(&r.calls);
    assert_eq!(&c[c.len() - 2..], ["export", "destroy"]);
}

#[tokio::test]
async fn on_error_abort_leaves_everything() {
    let r = run_fake("none", Some("send_keys"), None, OnError::Abort, None).await;
    assert!(r.result.is_err());
    assert!(!r.calls.contains(&"destroy".to_string()));
    assert!(!r.calls.contains(&"force_stop".to_string()));
    assert!(r.temp.exists(), "temp dir left for inspection");
}

#[tokio::test]
async fn stop_request_during_a_hung_step_unwinds() {
    for hang in ["start", "send_keys", "wait_stopped", "export"] {
        let r = run_fake(
            "none",
            None,
            Some(hang),
            OnError::Cleanup,
            Some(Duration::from_millis(300)),
        )
        .await;
        let err = format!("{:#}", r.result.unwrap_err());
        assert!(err.contains("interrupted by test stop"), "{hang}: {err}");
        assert_eq!(
            r.calls.last().map(String::as_str),
            Some("destroy"),
            "{hang}"
        );
        assert!(!r.temp.exists() && !r.out.exists(), "{hang}");
    }
}

#[tokio::test]
async fn existing_output_needs_force() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("exists");
    std::fs::create_dir(&out).unwrap();
    let plan = plan(&out, "none");
    let opts = BuildOptions::default();
    let calls: Calls = Arc::default();
    let f = FakeFactory {
        calls: calls.clone(),
        fail_at: None,
        hang_at: None,
    };
    let mut p = Pipeline::new(
        &plan,
        &opts,
        f,
        Box::new(|_: &Path| Ok(vec![])),
        root.path().join("c"),
        Meter::quiet(),
        false,
    );
    let err = format!("{:#}", p.run(std::future::pending()).await.unwrap_err());
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    assert!(
        calls.lock().unwrap().is_empty(),
        "nothing created before validation"
    );
}

#[tokio::test]
async fn bad_boot_command_fails_in_validate() {
    let root = tempfile::tempdir().unwrap();
    let mut plan = plan(&root.path().join("o"), "none");
    plan.builder
        .insert("boot_command".into(), json!(["<bogus>{{ .Nope }}"]));
    let opts = BuildOptions::default();
    let calls: Calls = Arc::default();
    let f = FakeFactory {
        calls: calls.clone(),
        fail_at: None,
        hang_at: None,
    };
    let mut p = Pipeline::new(
        &plan,
        &opts,
        f,
        Box::new(|_: &Path| Ok(vec![])),
        root.path().join("c"),
        Meter::quiet(),
        false,
    );
    let err = format!("{:#}", p.run(std::future::pending()).await.unwrap_err());
    assert!(
        err.contains("validate") && err.contains("boot_command"),
        "{err}"
    );
    assert!(calls.lock().unwrap().is_empty());
}
