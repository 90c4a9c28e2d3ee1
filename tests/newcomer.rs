//! The first hour of a new user (issue 18): `osimager init` and `osimager doctor`, the messages
//! a newcomer meets (empty XDG variables, `config set` type checks), and — with OSIMAGER_E2E=1
//! and the test OS media built — a scripted newcomer: from an empty HOME, `osimager init`, then
//! `osimager build` of the test OS through the location init wrote (a real QEMU guest under
//! TCG: run it alone, e.g. `flock /tmp/osimager-guest.lock cargo test --test newcomer`).
//!
//! Every run uses the real binary with HOME in a fresh temporary directory and no XDG_*,
//! VAULT_* or OSIMAGER_DATA_DIR variables: the bundled tree is found the way an installed
//! binary finds it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::Builder::new()
                .prefix("newcomer-")
                .tempdir()
                .unwrap(),
        }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn user(&self) -> PathBuf {
        self.path().join(".config/osimager")
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_osimager"));
        c.args(args).env("HOME", self.path()).env("TMPDIR", "/tmp");
        for v in [
            "XDG_CONFIG_HOME",
            "XDG_DATA_HOME",
            "XDG_CACHE_HOME",
            "VAULT_ADDR",
            "VAULT_TOKEN",
            "VAULT_ROLE_ID",
            "VAULT_SECRET_ID",
            "OSIMAGER_DATA_DIR",
        ] {
            c.env_remove(v);
        }
        c.stdin(Stdio::null());
        c
    }
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        out(self.cmd(args).output().unwrap())
    }
    /// Run with `input` on standard input (not a terminal).
    fn run_with_stdin(&self, args: &[&str], input: &str) -> (bool, String, String) {
        let mut c = self.cmd(args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        out(child.wait_with_output().unwrap())
    }
}

fn out(o: Output) -> (bool, String, String) {
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn empty_xdg_variables_are_unset() {
    let h = Home::new();
    let mut c = h.cmd(&["config", "show"]);
    c.env("XDG_CONFIG_HOME", "").env("XDG_CACHE_HOME", "");
    let (ok, stdout, stderr) = out(c.output().unwrap());
    assert!(ok, "{stderr}");
    let home = h.path().display().to_string();
    assert!(
        stdout.starts_with(&format!(
            "Config file: {home}/.config/osimager/config.json\n"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("packer_cache_dir     = {home}/.cache/osimager\n")),
        "{stdout}"
    );
    // And it writes there, not into ./osimager of the working directory.
    let cwd = tempfile::tempdir().unwrap();
    let mut c = h.cmd(&["config", "set", "memory=4096"]);
    c.env("XDG_CONFIG_HOME", "").current_dir(cwd.path());
    let (ok, _, stderr) = out(c.output().unwrap());
    assert!(ok, "{stderr}");
    assert!(h.user().join("config.json").is_file());
    assert!(!cwd.path().join("osimager").exists());
}

#[test]
fn config_set_checks_the_value_type() {
    let h = Home::new();
    let (ok, _, err) = h.run(&["config", "set", "memory=lots"]);
    assert!(!ok);
    assert_eq!(
        err.trim_end(),
        "error: invalid value: memory must be a whole number ≥ 1 (the VM's memory in MiB), \
         e.g. memory=4096; got \"lots\"; nothing was saved"
    );
    assert!(!h.user().join("config.json").exists(), "nothing saved");
    for (item, expect) in [
        ("cpu_cores=0", "cpu_cores must be a whole number ≥ 1"),
        (
            "boot_disk_size=20G",
            "boot_disk_size must be a whole number ≥ 1",
        ),
        ("local_only=maybe", "local_only must be true or false"),
        (
            "credential_source=file",
            "credential_source must be one of: config, vault",
        ),
        (
            "vault_addr=vault:8200",
            "vault_addr must be the server's URL",
        ),
        ("memory", "expected KEY=VALUE, e.g. memory=4096"),
    ] {
        let (ok, _, err) = h.run(&["config", "set", item]);
        assert!(!ok, "{item}");
        assert!(err.contains(expect), "{item}: {err}");
    }
    // Good values of every type are saved.
    let (ok, _, err) = h.run(&[
        "config",
        "set",
        "memory=4096",
        "local_only=yes",
        "credential_source=config",
        "vault_addr=https://vault.example:8200",
    ]);
    assert!(ok, "{err}");
    // A hand-edited config.json with a bad value is reported when it is read.
    let f = h.user().join("config.json");
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, text.replace("\"4096\"", "\"lots\"")).unwrap();
    let (ok, _, err) = h.run(&["config", "show"]);
    assert!(ok);
    assert!(
        err.contains(&format!(
            "warning: {}: memory must be a whole number",
            f.display()
        )) && err.contains("fix it with `osimager config set memory=…`"),
        "{err}"
    );
    // A config.json that is not JSON says it is ignored, once.
    std::fs::write(&f, "{ memory: 1").unwrap();
    let (_, _, err) = h.run(&["config", "show"]);
    assert!(
        err.contains(&format!("warning: ignoring config file {}:", f.display()))
            && err.contains("using the defaults"),
        "{err}"
    );
    assert_eq!(err.matches("ignoring config file").count(), 1, "{err}");
}

#[test]
fn init_writes_a_location_and_a_0600_secrets_file() {
    use std::os::unix::fs::PermissionsExt;
    let h = Home::new();
    // Not a terminal and no --password-file: it says how to pass the password.
    let (ok, _, err) = h.run(&["init"]);
    assert!(!ok);
    assert!(
        err.contains("no terminal to ask for the image account's password")
            && err.contains("--password-file FILE"),
        "{err}"
    );
    assert!(
        !h.user().join("locations/local.json").exists(),
        "nothing written"
    );
    let (ok, _, err) = h.run(&["init", "--location", "a/b"]);
    assert!(
        !ok && err.contains("location name 'a/b' is not usable"),
        "{err}"
    );
    let (ok, _, err) = h.run(&["init", "--platform", "hyperv"]);
    assert!(!ok && err.contains("unknown platform 'hyperv'"), "{err}");
    let (ok, _, err) = h.run_with_stdin(&["init", "--password-file", "-"], "with space\n");
    assert!(!ok && err.contains("contains whitespace"), "{err}");

    let pw = "Newcomer-pw-42";
    let (ok, stdout, err) = h.run_with_stdin(
        &["init", "--password-file", "-", "--username", "admin"],
        &format!("{pw}\n"),
    );
    assert!(ok, "{err}");
    assert!(!stdout.contains(pw) && !err.contains(pw), "{stdout}{err}");
    let loc = h.user().join("locations/local.json");
    assert!(
        stdout.contains(&format!("wrote {} (platforms: qemu)", loc.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains("images/linux username=admin password=***")
            && stdout.contains("set credential_source=config in")
            && stdout.contains("osimager build qemu/local/debian-latest-"),
        "{stdout}"
    );
    let secrets = h.user().join("secrets");
    let mode = std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(std::fs::read_to_string(&secrets)
        .unwrap()
        .contains(&format!("images/linux username=admin password={pw}\n")));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&loc).unwrap()).unwrap();
    assert_eq!(doc["platforms"], serde_json::json!(["qemu"]));
    let acc = doc["defs"]["qemu_accelerator"].as_str().unwrap();
    assert!(acc == "tcg" || acc == "kvm", "{doc}");

    // What init wrote resolves: the bundled Debian reads images/linux from the secrets file.
    let (ok, dump, err) = h.run(&["dump", "qemu/local/debian-12.12-x86_64", "web1", "10.0.0.5"]);
    assert!(ok, "{err}");
    assert!(
        dump.contains(&format!("\"ssh-password\": \"{pw}\"")),
        "{dump}"
    );
    assert!(
        dump.contains(&format!("\"accelerator\": \"{acc}\"")),
        "{dump}"
    );

    // Again: the location exists; another location keeps the image account without asking.
    let (ok, _, err) = h.run(&["init"]);
    assert!(!ok);
    assert!(
        err.contains(&format!("{} already exists: pass --force", loc.display())),
        "{err}"
    );
    let (ok, stdout, err) = h.run(&["init", "--location", "second"]);
    assert!(ok, "{err}");
    assert!(
        stdout.contains("kept the image account (images/linux)"),
        "{stdout}"
    );
}

/// What a newcomer meets before any setup: each message says what failed and what to do.
#[test]
fn first_messages_point_at_init() {
    let h = Home::new();
    // No location yet.
    let (ok, _, err) = h.run(&["dump", "qemu/local/debian-12.12-x86_64", "web1", "10.0.0.5"]);
    assert!(!ok);
    assert!(
        err.contains("unknown location 'local'; no locations configured: run `osimager init`"),
        "{err}"
    );
    // A location, but no secret store (credential_source is 'vault' by default).
    std::fs::create_dir_all(h.user().join("locations")).unwrap();
    std::fs::write(
        h.user().join("locations/local.json"),
        r#"{"platforms": ["qemu"]}"#,
    )
    .unwrap();
    let (ok, _, err) = h.run(&["dump", "qemu/local/debian-12.12-x86_64", "web1", "10.0.0.5"]);
    assert!(!ok);
    assert!(
        err.contains("qemu/local/debian-12.12-x86_64 reads secrets")
            && err.contains("no secret store is set up")
            && err.contains("export VAULT_ADDR and VAULT_TOKEN")
            && err.contains("`osimager init` writes"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "said once: {err}");
    // The secrets file is selected but does not exist.
    assert!(h.run(&["config", "set", "credential_source=config"]).0);
    let (ok, _, err) = h.run(&["dump", "qemu/local/debian-12.12-x86_64", "web1", "10.0.0.5"]);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "secrets file {} not found: run `osimager init`",
            h.user().join("secrets").display()
        )),
        "{err}"
    );
    // The secrets file lacks the image account: dump says which path, a build refuses.
    std::fs::write(h.user().join("secrets"), "other/thing key=v\n").unwrap();
    let (ok, _, err) = h.run(&["dump", "qemu/local/debian-12.12-x86_64", "web1", "10.0.0.5"]);
    assert!(ok, "{err}");
    assert!(
        err.contains("secret path 'images/linux' not found in secrets file")
            && err.contains("add a line `images/linux KEY=VALUE …`")
            && err.contains("\"\" was used"),
        "{err}"
    );
    assert_eq!(
        err.matches("'images/linux' not found").count(),
        1,
        "once: {err}"
    );
    let (ok, _, err) = h.run(&[
        "build",
        "qemu/local/debian-12.12-x86_64",
        "web1",
        "10.0.0.5",
        "-n",
    ]);
    assert!(!ok);
    assert!(
        err.contains("needs secrets that do not exist") && err.contains("so it stops here"),
        "{err}"
    );
    // `list --arch` with an arch no spec provides is not an "incomplete install".
    let (ok, stdout, _) = h.run(&["list", "--arch", "sparc"]);
    assert!(ok);
    assert!(
        stdout.starts_with("No specs for arch sparc; the specs provide: ")
            && stdout.contains("x86_64")
            && !stdout.contains("incomplete install"),
        "{stdout}"
    );
}

fn kvm_probe() -> osimager_drivers::qemu::KvmCheck {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(osimager_drivers::qemu::kvm_usable("qemu-system-x86_64"))
}

/// `doctor` on this host, with PATH limited to the system directories (no Ansible venv): the
/// CI machines have QEMU, qemu-img, socat and Packer 1.6.6, /dev/kvm present but unusable, no
/// VirtualBox and no VMware. Where the host differs, the test expects what the host has.
#[test]
fn doctor_reports_this_host() {
    let h = Home::new();
    let mut c = h.cmd(&["doctor"]);
    c.env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    let (ok, stdout, err) = out(c.output().unwrap());
    assert!(ok, "nothing is broken here: {stdout}{err}");
    eprintln!("{stdout}");
    let line = |id: &str| -> String {
        stdout
            .lines()
            .find(|l| {
                l.get(11..)
                    .is_some_and(|r| r.starts_with(&format!("{id} ")))
            })
            .unwrap_or_else(|| panic!("no {id} line in:\n{stdout}"))
            .to_string()
    };
    assert!(line("qemu").starts_with("  ok       qemu              QEMU found: /usr/bin/qemu-system-x86_64 (QEMU emulator version"));
    let kvm = kvm_probe();
    if !Path::new("/dev/kvm").exists() {
        assert!(line("kvm").contains("KVM not available (/dev/kvm does not exist)"));
    } else if kvm.usable {
        assert!(line("kvm").starts_with("  ok       kvm               KVM usable"));
    } else {
        // This host: present but unusable, said exactly so, with what it means.
        assert_eq!(
            line("kvm"),
            format!(
                "  warn     kvm               KVM present but unusable: {}; QEMU builds run \
                 under TCG (software emulation, several times slower)",
                kvm.reason
            )
        );
        assert!(
            stdout.contains("Can build: qemu (native engine, TCG)"),
            "{stdout}"
        );
    }
    let no_vbox = !Path::new("/usr/bin/VBoxManage").exists();
    if no_vbox {
        assert_eq!(
            line("virtualbox"),
            "  missing  virtualbox        VirtualBox not found (no VBoxManage on PATH): \
             virtualbox/… targets cannot be built here"
        );
    }
    if !Path::new("/usr/bin/vmrun").exists() && !Path::new("/usr/bin/vmrest").exists() {
        assert_eq!(
            line("vmware"),
            "  missing  vmware            VMware not found (no vmrun or vmrest on PATH): \
             vmware/… targets cannot be built here"
        );
    }
    assert!(line("ansible-playbook")
        .starts_with("  missing  ansible-playbook  ansible-playbook not found on PATH"));
    assert!(
        stdout.contains("fix: install Ansible into a venv"),
        "{stdout}"
    );
    assert!(
        line("packer").contains("Packer 1.6.6 found: /usr/bin/packer"),
        "{stdout}"
    );
    assert!(line("secrets").starts_with("  missing  secrets           no secret store"));
    assert!(line("locations").starts_with("  missing  locations         no locations in"));
    assert!(stdout.ends_with("Next: osimager init\n"), "{stdout}");

    // With (fake) VirtualBox and VMware command-line tools on PATH they are found, and the
    // platforms they serve are listed as buildable through Packer. The fakes answer
    // `VBoxManage --version` as VirtualBox 7.0 does; nothing else is asked of them.
    let fakes = tempfile::tempdir().unwrap();
    for (name, body) in [
        ("VBoxManage", "#!/bin/sh\necho 7.0.14r161095\n"),
        ("vmrun", "#!/bin/sh\nexit 0\n"),
    ] {
        let p = fakes.path().join(name);
        std::fs::write(&p, body).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut c = h.cmd(&["doctor", "--json", "--no-kvm-probe"]);
    c.env("PATH", format!("{}:/usr/bin:/bin", fakes.path().display()));
    let (ok, stdout, err) = out(c.output().unwrap());
    assert!(ok, "{err}");
    let r: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let check = |id: &str| {
        r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(check("virtualbox")["status"], "ok");
    assert_eq!(check("virtualbox")["version"], "7.0.14r161095");
    assert_eq!(check("vmware")["status"], "ok");
    if no_vbox {
        assert_eq!(r["accelerator"]["name"], "tcg");
        let platforms: Vec<String> = r["can_build"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                format!(
                    "{}/{}",
                    b["platform"].as_str().unwrap(),
                    b["engine"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            platforms,
            [
                "qemu/native",
                "qemu/packer",
                "virtualbox/packer",
                "vmware/packer"
            ]
        );
    }
}

fn media_cache() -> PathBuf {
    std::env::var_os("OSIMAGER_TESTOS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/osimager-testos")
        })
}

/// From an empty HOME: `osimager init`, `osimager doctor`, then `osimager build` of the test OS
/// through the location init wrote. The guest network is the isolated one init writes on
/// request (`--isolated-network`): the guest reaches only this host's loopback.
#[test]
fn newcomer_first_run_then_build() {
    if std::env::var("OSIMAGER_E2E").as_deref() != Ok("1") {
        eprintln!("skipped: set OSIMAGER_E2E=1 (and build tests/testos media) to run");
        return;
    }
    let media = media_cache();
    assert!(
        media.join("current/testos.iso").is_file(),
        "no test OS media in {}: run tests/testos/build-media.sh first",
        media.display()
    );
    let h = Home::new();
    // A newcomer has Ansible on PATH (here: the tools venv).
    let venv = std::env::var("OSIMAGER_TOOLS_VENV").unwrap_or("/opt/osimager-venv".into());
    let path = format!("{venv}/bin:{}", std::env::var("PATH").unwrap_or_default());
    let (ok, stdout, err) = {
        let mut c = h.cmd(&["init", "--password-file", "-", "--isolated-network"]);
        c.env("PATH", &path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"First-run-pw-7\n")
            .unwrap();
        out(child.wait_with_output().unwrap())
    };
    assert!(ok, "init: {err}");
    eprintln!("{stdout}");
    let mut c = h.cmd(&["doctor"]);
    c.env("PATH", &path);
    let (ok, doctor, err) = out(c.output().unwrap());
    assert!(ok, "doctor: {doctor}{err}");
    assert!(doctor.contains("  ok       secrets "), "{doctor}");
    assert!(
        doctor.contains("  ok       locations         locations in"),
        "{doctor}"
    );
    assert!(doctor.contains("  ok       ansible-playbook "), "{doctor}");

    let started = std::time::Instant::now();
    let mut c = h.cmd(&[
        "build",
        "qemu/local/testos-1-x86_64",
        "newcomer",
        "--engine",
        "native",
    ]);
    c.env("PATH", &path)
        .env("OSIMAGER_TESTOS_CACHE", &media)
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    let status = c.status().unwrap();
    eprintln!("build took {:.1}s", started.elapsed().as_secs_f64());
    assert!(status.success(), "the newcomer's build failed");
    // The platform's output_directory: <vms_path>/qemu/<name>, vms_path = ~/osimager/vms.
    let outdir = h.path().join("osimager/vms/qemu/newcomer");
    let sums = std::fs::read_to_string(outdir.join("SHA256SUMS")).unwrap();
    assert!(sums.contains("  newcomer"), "{sums}");
    let ok = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&outdir)
        .status()
        .unwrap();
    assert!(ok.success(), "checksums do not verify: {sums}");
}
