//! Contract tests of the VMware stand-ins (tests/fakes/vmware, FAKES of vmrest and vmrun)
//! and of the driver's clients for them: every documented failure — bad credentials, the
//! .vmx path required by registration, power operations as raw strings, a locked VM — and
//! the documented shapes. No guest runs here.

use osimager_drivers::vmware::{
    parse_error, vmrest_config_text, RestError, Vmrest, Vmrun, MEDIA_TYPE,
};
use osimager_drivers::DriverEnv;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FAKES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fakes/vmware");
const USER: &str = "builder";
const PASSWORD: &str = "Corr3ct-H0rse!";

/// The FAKE vmrest on a free port, configured through $HOME/.vmrestCfg.
struct FakeVmrest {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for FakeVmrest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP client for requests the driver's client would never send.
fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl FakeVmrest {
    fn start(extra_env: &[(&str, &str)]) -> FakeVmrest {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let port = free_port();
        std::fs::write(
            home.join(".vmrestCfg"),
            vmrest_config_text(port, USER, PASSWORD, "NaCl-salt").unwrap(),
        )
        .unwrap();
        let mut cmd = Command::new(format!("{FAKES}/vmrest"));
        cmd.env("HOME", &home)
            .env("FAKE_VMWARE_STATE", dir.path().join("state"))
            .args(["-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("python3 runs the fake vmrest");
        let url = format!("http://127.0.0.1:{port}/api");
        let end = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < end, "the fake vmrest did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        FakeVmrest { child, url, dir }
    }

    fn api(&self) -> Vmrest {
        Vmrest::new(&self.url, USER, PASSWORD)
    }

    /// A VM directory with a minimal .vmx and a disk file.
    fn vm(&self, name: &str) -> PathBuf {
        let d = self.dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        let vmx = d.join(format!("{name}.vmx"));
        std::fs::write(
            &vmx,
            format!(
                ".encoding = \"UTF-8\"\ndisplayname = \"{name}\"\nscsi0:0.present = \"TRUE\"\n\
                 scsi0:0.filename = \"disk.vmdk\"\nnvram = \"{name}.nvram\"\n"
            ),
        )
        .unwrap();
        std::fs::write(d.join("disk.vmdk"), "").unwrap();
        std::fs::write(d.join("disk-s001.vmdk"), "").unwrap();
        std::fs::write(d.join(format!("{name}.nvram")), "").unwrap();
        std::fs::write(d.join("notes.txt"), "user file").unwrap();
        vmx
    }
}

#[tokio::test]
async fn bad_credentials_are_refused_with_advice_and_no_secret() {
    let f = FakeVmrest::start(&[]);
    let e = Vmrest::new(&f.url, USER, "wrong-password")
        .list_vms()
        .await
        .unwrap_err();
    assert!(matches!(e, RestError::Unauthorized { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("OSIMAGER_VMREST_USER") && msg.contains("vmrest -C"),
        "{msg}"
    );
    assert!(!msg.contains("wrong-password"), "{msg}");
    let e = Vmrest::new(&f.url, "someone", PASSWORD)
        .list_vms()
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(401));
    // The right credentials: the documented shape, an empty list.
    assert!(f.api().list_vms().await.unwrap().is_empty());
    // Without Basic auth at all: 401 and a WWW-Authenticate challenge.
    let r = http()
        .get(format!("{}/vms", f.url))
        .header("Accept", MEDIA_TYPE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
}

#[tokio::test]
async fn media_type_is_required_both_ways() {
    let f = FakeVmrest::start(&[]);
    let c = http();
    let r = c
        .get(format!("{}/vms", f.url))
        .basic_auth(USER, Some(PASSWORD))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 406);
    assert_eq!(r.headers()["content-type"], MEDIA_TYPE);
    let (code, msg) = parse_error(&r.text().await.unwrap());
    assert_eq!(code, Some(100));
    assert!(msg.contains("Accept"), "{msg}");
    let r = c
        .post(format!("{}/vms/registration", f.url))
        .basic_auth(USER, Some(PASSWORD))
        .header("Accept", MEDIA_TYPE)
        .header("Content-Type", "application/json")
        .body(r#"{"name":"x","path":"/x.vmx"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
}

#[tokio::test]
async fn registration_needs_the_vmx_path() {
    let f = FakeVmrest::start(&[]);
    let api = f.api();
    let vmx = f.vm("reg");
    let dir = vmx.parent().unwrap().display().to_string();
    for bad in [dir.as_str(), "/nonexistent/x.vmx"] {
        let e = api.register("reg", bad).await.unwrap_err();
        assert_eq!((e.status(), e.code()), (Some(400), Some(100)), "{e}");
        assert!(
            e.to_string()
                .contains("One of the parameters was invalid: path"),
            "{e}"
        );
    }
    let reg = api
        .register("reg", &vmx.display().to_string())
        .await
        .unwrap();
    assert_eq!(reg.path, vmx.display().to_string());
    assert_eq!(reg.id.len(), 32);
    assert_eq!(api.list_vms().await.unwrap(), vec![reg.clone()]);
    assert_eq!(api.power_state(&reg.id).await.unwrap(), "poweredOff");
    // The error body is pretty-printed {"Code", "Message"}.
    let r = http()
        .get(format!("{}/vms/NOSUCHVM", f.url))
        .basic_auth(USER, Some(PASSWORD))
        .header("Accept", MEDIA_TYPE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let text = r.text().await.unwrap();
    assert!(text.contains("\n  \"Code\": 102,\n"), "{text}");
}

#[tokio::test]
async fn power_operations_are_raw_strings() {
    let f = FakeVmrest::start(&[]);
    let api = f.api();
    let id = api
        .register("pw", &f.vm("pw").display().to_string())
        .await
        .unwrap()
        .id;
    // A JSON body is refused with Code 100; so is an unknown operation.
    let e = api
        .put_power_json(&id, json!({"power": "off"}))
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(400), Some(100)), "{e}");
    let e = api.set_power(&id, "reboot-now").await.unwrap_err();
    assert_eq!(e.code(), Some(100), "{e}");
    // The raw string is understood (the VM is off already: it stays off).
    assert_eq!(api.set_power(&id, "off").await.unwrap(), "poweredOff");
}

#[tokio::test]
async fn a_locked_vm_is_neither_started_nor_deleted() {
    let f = FakeVmrest::start(&[]);
    let api = f.api();
    let vmx = f.vm("lk");
    let id = api
        .register("lk", &vmx.display().to_string())
        .await
        .unwrap()
        .id;
    let lck = PathBuf::from(format!("{}.lck", vmx.display()));
    std::fs::create_dir(&lck).unwrap();
    std::fs::write(lck.join("M1234.lck"), "").unwrap();
    let e = api.set_power(&id, "on").await.unwrap_err();
    assert_eq!(e.status(), Some(409), "{e}");
    assert!(e.to_string().contains("locked"), "{e}");
    let e = api.delete(&id).await.unwrap_err();
    assert!(e.to_string().contains("locked"), "{e}");
    assert!(vmx.exists(), "a locked VM keeps its files");
    // Once the lock is gone: deleted and unregistered, its files with it, other files kept.
    std::fs::remove_dir_all(&lck).unwrap();
    api.delete(&id).await.unwrap();
    assert!(api.list_vms().await.unwrap().is_empty());
    let d = vmx.parent().unwrap();
    let left: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["notes.txt"]);
}

#[tokio::test]
async fn lowercase_error_bodies_parse_the_same() {
    let f = FakeVmrest::start(&[("FAKE_VMREST_LOWERCASE_ERRORS", "1")]);
    let e = f.api().register("x", "/nope").await.unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(400), Some(100)), "{e}");
    assert!(e.to_string().contains("invalid: path"), "{e}");
}

fn vmrun(state: &Path, error_exit: &str) -> Vmrun {
    let env = DriverEnv {
        vars: vec![
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ("FAKE_VMWARE_STATE".into(), state.display().to_string()),
            ("FAKE_VMRUN_ERROR_EXIT".into(), error_exit.into()),
        ],
        ..Default::default()
    };
    Vmrun::new(format!("{FAKES}/vmrun").into(), env)
}

#[tokio::test]
async fn vmrun_output_and_errors() {
    let d = tempfile::tempdir().unwrap();
    let vmx = d.path().join("a.vmx");
    std::fs::write(&vmx, "displayname = \"a\"\n").unwrap();
    for exit in ["255", "0"] {
        let v = vmrun(d.path(), exit);
        assert!(v.list().await.unwrap().is_empty());
        assert!(!v.is_running(&vmx).await.unwrap());
        // `Error:` on stdout is a failure even with exit status 0.
        let e = v.guest_ip(&vmx).await.unwrap_err();
        assert!(e.to_string().contains("not powered on"), "{e}");
        let e = v
            .start(&d.path().join("missing.vmx"), true)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("cannot be found"), "{e}");
        // Stopping a VM that is off is not an error for the driver.
        v.stop(&vmx, true).await.unwrap();
    }
    // A locked VM does not start.
    let v = vmrun(d.path(), "255");
    std::fs::create_dir(d.path().join("a.vmx.lck")).unwrap();
    let e = v.start(&vmx, true).await.unwrap_err();
    assert!(e.to_string().contains("locked"), "{e}");
}

/// A vmrest that cannot start (not in this edition, no licence): the driver says so and
/// controls VMware with vmrun; without vmrun either, `create` fails with what to install.
#[tokio::test]
async fn a_broken_vmrest_falls_back_to_vmrun() {
    use osimager_drivers::{DriverRegistry, Media};
    let d = tempfile::tempdir().unwrap();
    let bin = d.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let broken = bin.join("vmrest");
    std::fs::write(
        &broken,
        "#!/bin/sh\necho 'vmrest: not licensed' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&broken, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let env = |with_vmrun: bool| {
        if with_vmrun {
            let _ = std::os::unix::fs::symlink(format!("{FAKES}/vmrun"), bin.join("vmrun"));
        }
        DriverEnv {
            build_name: "fb".into(),
            work_dir: d.path().join("work"),
            log_dir: d.path().join("logs"),
            vars: vec![
                (
                    "PATH".into(),
                    format!(
                        "{}:{}",
                        bin.display(),
                        std::env::var("PATH").unwrap_or_default()
                    ),
                ),
                (
                    "FAKE_VMWARE_STATE".into(),
                    d.path().join("state").display().to_string(),
                ),
            ],
        }
    };
    let b = json!({"type": "vmware-iso", "network_adapter_type": "e1000", "disk_size": "8M"});
    let reg = DriverRegistry::builtin();
    let mut drv = reg.make(b.as_object().unwrap(), env(false)).unwrap();
    let e = drv.create(&Media::default()).await.unwrap_err();
    assert!(
        e.to_string().contains("vmrest") && e.to_string().contains("not licensed"),
        "{e}"
    );
    drv.destroy().await.unwrap();
    let mut drv = reg.make(b.as_object().unwrap(), env(true)).unwrap();
    drv.create(&Media::default()).await.unwrap();
    let w = drv.take_warnings();
    assert!(
        w.iter()
            .any(|w| w.contains("controlling VMware with vmrun")),
        "{w:?}"
    );
    assert!(d.path().join("work/packer-fb.vmx").is_file());
    drv.destroy().await.unwrap();
    assert!(!d.path().join("work").exists());
}
