//! `osimager init`: first run on a host. Writes a location for the hypervisors found
//! ([`crate::host::init`]), puts the image account into a 0600 secrets file (asked on the
//! terminal, or read from a file/stdin for scripts: never from argv), sets
//! credential_source=config, and prints the next commands.

use super::prompt;
use crate::config::{Config, ConfigOptions};
use crate::host::init::{self as first, AccountWrite, LocationOptions, IMAGE_ACCOUNT};
use crate::host::{self, InspectOptions, Status};
use crate::secret::Secret;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Name of the location to write (the middle part of PLATFORM/LOCATION/SPEC)
    #[arg(long, value_name = "NAME", default_value = "local")]
    pub location: String,
    /// Platforms the location allows (default: the hypervisors found: qemu, virtualbox, vmware)
    #[arg(long = "platform", value_name = "PLATFORM", value_delimiter = ',')]
    pub platforms: Vec<String>,
    /// User name of the image account (images/linux) [default: asked, else osimager]
    #[arg(long, value_name = "USER")]
    pub username: Option<String>,
    /// Read the image account's password from FILE (`-`: standard input) instead of asking
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// QEMU guests may reach only this host (user networking with restrict=on; needs socat)
    #[arg(long)]
    pub isolated_network: bool,
    /// Keep secrets in Vault (credential_source=vault): no secrets file is written
    #[arg(long)]
    pub vault: bool,
    /// Replace an existing location of that name and the image account in the secrets file
    #[arg(short, long)]
    pub force: bool,
}

pub const AFTER_HELP: &str = "\
Examples:
  osimager init                                     # asks for the image account's password
  osimager init --username admin --password-file ~/.image-pw
  printf '%s\\n' \"$PW\" | osimager init --password-file - --isolated-network

Writes <config dir>/osimager/locations/NAME.json for the hypervisors found (for QEMU: the
accelerator this host can use, KVM or TCG), puts `images/linux username=… password=…` into
<config dir>/osimager/secrets (mode 0600; other lines are kept) and sets
credential_source=config. Run `osimager doctor` for the full picture.";

fn read_password(a: &InitArgs) -> Result<Secret> {
    if let Some(f) = &a.password_file {
        let mut text = String::new();
        if f.as_os_str() == "-" {
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the image account's password from standard input")?;
        } else {
            text = std::fs::read_to_string(f).with_context(|| {
                format!(
                    "reading the image account's password from {} (--password-file)",
                    f.display()
                )
            })?;
        }
        let pw = text.lines().next().unwrap_or("").to_string();
        return Ok(Secret::new(pw));
    }
    if !prompt::stdin_is_tty() {
        bail!(
            "no terminal to ask for the image account's password: pass --password-file FILE \
             (or --password-file - to read it from standard input)"
        );
    }
    loop {
        let pw = Secret::new(prompt::ask_password(&format!(
            "Password for the image account ({IMAGE_ACCOUNT})"
        ))?);
        let again = Secret::new(prompt::ask_password("The same password again")?);
        if pw == again {
            return Ok(pw);
        }
        eprintln!("The two passwords differ; once more.");
    }
}

pub fn run(data_dir: &Option<PathBuf>, a: &InitArgs) -> Result<ExitCode> {
    let opts = ConfigOptions {
        data_dir: data_dir.clone(),
        ..ConfigOptions::default()
    };
    let cfg = super::common::load(data_dir, Vec::new(), false)?;
    let user_dir = cfg.layers.user.clone();
    let report = host::inspect(
        &cfg,
        &InspectOptions {
            check_secrets: false,
            ..InspectOptions::default()
        },
    );
    let doc = first::location_for(
        &report,
        &LocationOptions {
            name: a.location.clone(),
            platforms: a.platforms.clone(),
            isolated_network: a.isolated_network,
        },
    )?;
    let location_file = user_dir
        .join("locations")
        .join(format!("{}.json", a.location));
    if location_file.exists() && !a.force {
        return Err(first::InitError::LocationExists(location_file).into());
    }
    let secrets = user_dir.join("secrets");
    let mut lines = Vec::new();
    if a.vault {
        lines.push(format!(
            "secrets: kept in Vault (credential_source=vault); the image account is read from \
             KV v2 mount '{}', path '{}' (`osimager doctor` checks that Vault accepts the token \
             and has it)",
            IMAGE_ACCOUNT.split('/').next().unwrap_or(""),
            IMAGE_ACCOUNT.split_once('/').map(|x| x.1).unwrap_or("")
        ));
    } else if first::has_image_account(&secrets)
        && !a.force
        && a.username.is_none()
        && a.password_file.is_none()
    {
        lines.push(format!(
            "kept the image account ({IMAGE_ACCOUNT}) in {} (--force asks for it again)",
            secrets.display()
        ));
    } else {
        let username = match &a.username {
            Some(u) => u.clone(),
            None if prompt::stdin_is_tty() && a.password_file.is_none() => prompt::ask(
                &format!("User name of the image account ({IMAGE_ACCOUNT})"),
                "osimager",
            )?,
            None => "osimager".to_string(),
        };
        let password = read_password(a)?;
        first::check_account(&username, &password)?;
        let how = first::write_image_account(&secrets, &username, &password)?;
        lines.push(format!(
            "{} {} (mode 0600): {IMAGE_ACCOUNT} username={username} password=***",
            match how {
                AccountWrite::Created => "wrote",
                AccountWrite::Updated => "updated",
            },
            secrets.display()
        ));
    }
    let path = first::write_location(&user_dir, &a.location, &doc, a.force)?;
    let source = if a.vault { "vault" } else { "config" };
    let saved = Config::load(&ConfigOptions {
        set: vec![format!("credential_source={source}")],
        ..opts
    })?;
    let platforms: Vec<String> = doc["platforms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_string))
        .collect();
    let mut out = format!(
        "wrote {} (platforms: {})\n",
        path.display(),
        platforms.join(", ")
    );
    if let Some(acc) = doc["defs"]["qemu_accelerator"].as_str() {
        out.push_str(&format!(
            "  qemu accelerator: {acc} ({})\n",
            report.accelerator.reason
        ));
    }
    for l in lines {
        out.push_str(&format!("{l}\n"));
    }
    if let Some(f) = &saved.saved {
        out.push_str(&format!(
            "set credential_source={source} in {}\n",
            f.display()
        ));
    }
    let mut notes = Vec::new();
    for id in ["qemu-img", "ansible-playbook"] {
        if let Some(c) = report.check(id).filter(|c| c.status != Status::Ok) {
            notes.push(format!("{}{}", c.detail, fix_suffix(&c.fix)));
        }
    }
    if a.isolated_network {
        if let Some(c) = report.check("socat").filter(|c| c.status != Status::Ok) {
            notes.push(format!("{}{}", c.detail, fix_suffix(&c.fix)));
        }
    }
    for n in &notes {
        out.push_str(&format!("note: {n}\n"));
    }
    let first_platform = platforms.first().map(String::as_str).unwrap_or("qemu");
    let arch = &report.arch;
    out.push_str(&format!(
        "\nNext:\n  osimager doctor                 # what else this host has (Ansible, Packer, \
         ISO cache)\n  osimager list --latest          # the targets\n  osimager build \
         {first_platform}/{}/debian-latest-{arch}\n",
        a.location
    ));
    super::common::print(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn fix_suffix(fix: &Option<String>) -> String {
    fix.as_ref().map(|f| format!(": {f}")).unwrap_or_default()
}
