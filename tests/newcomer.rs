//! The first hour of a new user (issue 18): `osimager init` (`doctor`: tests/doctor_host.rs),
//! the messages a newcomer meets (empty XDG variables, `config set` type checks, no location or
//! secret store yet), and — with OSIMAGER_E2E=1 and the test OS media built — a scripted
//! newcomer: from an empty HOME, `osimager init`, then `osimager build` of the test OS through
//! the location init wrote (a real QEMU guest under TCG: run it alone, e.g.
//! `flock /tmp/osimager-guest.lock cargo test --test newcomer`).
//!
//! Every run uses the real binary in a newcomer's environment (tests/newcomer_support).

mod newcomer_support;
mod support;
use newcomer_support::{out, Home};
use std::io::Write;
use std::process::{Command, Stdio};

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
    // OSIMAGER_DATA_DIR= (empty) is unset too: the default data tree is used.
    let mut c = h.cmd(&["list", "--latest", "debian"]);
    c.env("OSIMAGER_DATA_DIR", "");
    let (ok, stdout, stderr) = out(c.output().unwrap());
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with("Latest specs:\n  debian-latest-"),
        "{stdout}"
    );
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
    // The test OS reads no secrets; its media path comes from an environment variable, and an
    // unset one is said once for all the defs that use it.
    let mut c = h.cmd(&["dump", "qemu/local/testos-1-x86_64", "t1", "10.0.0.5"]);
    c.env_remove("OSIMAGER_TESTOS_CACHE");
    let (ok, _, err) = out(c.output().unwrap());
    assert!(ok, "{err}");
    let env_warnings: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("OSIMAGER_TESTOS_CACHE"))
        .collect();
    assert_eq!(
        env_warnings,
        [
            "warning: defs.iso_checksum, defs.testos_media, defs.iso_url: \
          $>OSIMAGER_TESTOS_CACHE<$: environment variable OSIMAGER_TESTOS_CACHE is not set; \
          using \"\" (export it, or set the def that uses it with -D)"
        ],
        "{err}"
    );
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

/// From an empty HOME: `osimager init`, `osimager doctor`, then `osimager build` of the test OS
/// through the location init wrote. The guest network is the isolated one init writes on
/// request (`--isolated-network`): the guest reaches only this host's loopback.
#[test]
fn newcomer_first_run_then_build() {
    if !support::e2e_enabled() {
        return;
    }
    let media = support::media_cache();
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
