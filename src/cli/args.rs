//! `osimager` command-line definition.

use crate::engine::{EngineKind, OnError};
use crate::install_cache::{CacheMode, CacheOptions};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  osimager init                               first run: a location for this host + secrets
  osimager doctor                             what this host can build
  osimager list                               every <dist>-<version>-<arch> target
  osimager list --arch x86_64 --latest rhel   newest RHEL per arch
  osimager defs qemu/lab/rhel-9.4-x86_64 web1 10.0.0.5
  osimager dump qemu/lab/debian-latest-x86_64 --redact
  osimager build qemu/lab/alpine-3.20-x86_64 --engine native -k
  osimager config set credential_source=config
  osimager completions bash > /etc/bash_completion.d/osimager

The data tree is chosen with --data-dir / OSIMAGER_DATA_DIR; the *setting* data_dir keeps
OSImager's meaning (the XDG data directory where venvs live).";

/// Build virtual-machine images from OSImager configuration.
#[derive(Debug, Parser)]
#[command(name = "osimager", version, about, after_help = EXAMPLES)]
pub struct Cli {
    /// Bundled data tree (platforms/, specs/, files/, tasks/ …); default: $OSIMAGER_DATA_DIR,
    /// <exe>/../share/osimager, or the source tree
    // Not `env = "OSIMAGER_DATA_DIR"`: clap treats a set-but-empty variable as an empty value and
    // refuses it; `config::default_data_tree` reads the variable and ignores it when empty.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Verbose output
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List targets (same output and order as `mkosimage --list`)
    #[command(
        after_help = "Examples:\n  osimager list --arch aarch64\n  osimager list --latest rhel-9"
    )]
    List {
        /// Only this architecture (x86_64, aarch64, i386 …)
        #[arg(long)]
        arch: Option<String>,
        /// Show <dist>-latest-<arch> aliases; DIST or DIST-VERSION narrows them
        #[arg(long, value_name = "DIST[-VER]", num_args = 0..=1, default_missing_value = "")]
        latest: Option<String>,
        /// Show where each target's ISO comes from (local path or URL)
        #[arg(long)]
        avail: bool,
        /// Only targets whose ISO is already local (implies --avail)
        #[arg(long)]
        local: bool,
    },
    /// List platforms with their builder type and arches
    Platforms,
    /// List the defs platforms define, the settings defaults and the computed defs
    DefsList,
    /// Show or change settings (config.json)
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Print the resolved defs of a target as JSON (= mkosimage -x)
    Defs(TargetArgs),
    /// Print the Packer template of a target (= mkosimage -u)
    Dump {
        #[command(flatten)]
        target: TargetArgs,
        /// Replace secret values (passwords, tokens) with ***
        #[arg(long)]
        redact: bool,
    },
    /// Build an image
    #[command(
        after_help = "Examples:\n  osimager build qemu/lab/debian-12.12-x86_64 web1\n  \
osimager build vsphere/lab/rhel-9.6-x86_64 web2 10.0.0.7 --engine packer\n  \
osimager build qemu/lab/rocky-9.6-x86_64 -k --on-error abort   # keep everything for debugging"
    )]
    Build(BuildArgs),
    /// List or prune the install cache of native builds (`build --cache use`)
    #[command(
        after_help = "Examples:\n  osimager build qemu/lab/debian-12.12-x86_64 web1 --cache use   # reuse the install\n  \
osimager cache list\n  osimager cache prune --older-than 30d\n  osimager cache prune --all\n\n\
An entry is the disk of a freshly installed guest, kept when it first answered on SSH (before\n\
any provisioner), keyed by the ISO checksum, the rendered answer files and the data-tree files\n\
they came from, the boot command, the builder's hardware and disk keys and the osimager\n\
version. The default cache is off: a build with --cache use is not a clean install."
    )]
    Cache {
        #[command(subcommand)]
        action: CacheAction,
        /// Install cache directory (default: <packer_cache_dir>/install)
        #[arg(long, value_name = "DIR", env = "OSIMAGER_CACHE_DIR", global = true)]
        cache_dir: Option<PathBuf>,
        /// Size limit (default 20G)
        #[arg(long, value_name = "SIZE", env = "OSIMAGER_CACHE_MAX_SIZE", value_parser = parse_size, global = true)]
        cache_max_size: Option<u64>,
    },
    /// Re-run a target's provisioning against an existing machine (= rfosimage)
    #[command(
        after_help = "Examples:\n  osimager retrofit qemu/lab/debian-12.12-x86_64 web1 10.0.0.5\n  \
osimager retrofit vsphere/lab/rhel-9.6-x86_64 web2 10.0.0.7 --engine packer\n\n\
Natively (default) osimager connects over SSH with the target's ssh_* keys (ssh_host, else IP,\n\
else NAME) and runs its provisioners; --engine packer uses Packer's null builder as OSImager does."
    )]
    Retrofit(RetrofitArgs),
    /// List or create the Ansible venvs specs ask for (= mkvenv)
    #[command(
        after_help = "Examples:\n  osimager venv              # status of every venv a spec requires\n  \
osimager venv 2.16         # create the venv for ansible 2.16 (ansible.json)\n  \
osimager venv --all        # create every missing one"
    )]
    Venv {
        /// Ansible version to create a venv for (e.g. 2.16)
        version: Option<String>,
        /// Create all missing venvs
        #[arg(long)]
        all: bool,
    },
    /// Check every indexed ISO URL with a HEAD request (= mkosimage --check-urls)
    CheckUrls {
        /// Seconds per request
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
    /// First run: write a location for this host's hypervisors and the image account's secrets
    #[command(after_help = super::init::AFTER_HELP)]
    Init(super::init::InitArgs),
    /// Report what this host can build, and what to do about what is missing
    #[command(after_help = super::doctor::AFTER_HELP)]
    Doctor(super::doctor::DoctorArgs),
    /// Run the build service: REST API, live build streams and the web UI
    #[cfg(feature = "serve")]
    #[command(
        after_help = "Examples:\n  osimager serve                                  # http://127.0.0.1:8000/\n  \
osimager serve --listen 0.0.0.0:8443 --tls-cert cert.pem --tls-key key.pem\n  \
osimager serve token create alice                 # tokens are needed off loopback\n\n\
The API is documented at /api/v1/openapi.json; docs/SERVICE.md has the settings file."
    )]
    Serve(crate::serve::ServeArgs),
    /// Build for a remote `osimager serve`: claim jobs, run them, stream and upload the results
    #[cfg(feature = "serve")]
    #[command(
        after_help = "Examples:\n  OSIMAGER_WORKER_TOKEN=… osimager worker --server https://build.example.org:8443\n  \
osimager worker --server http://127.0.0.1:8000 --labels site=lab,gpu=yes --concurrency 2\n\n\
Make the token on the server: osimager serve token create --worker NAME"
    )]
    Worker(crate::serve::worker::WorkerArgs),
    /// Print a shell completion script
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct RetrofitArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// native: SSH + provisioners, no Packer; packer: Packer's null builder
    #[arg(long, value_enum, default_value_t = EngineKind::Native)]
    pub engine: EngineKind,
    /// Keep the temp dir
    #[arg(short, long)]
    pub keep: bool,
    /// Print what would run and stop
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Write the build's events as NDJSON to FILE (`-` = stdout); see docs/EVENTS.md
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Print the settings and the config file path
    Show,
    /// Set settings (known keys only) and save config.json
    #[command(after_help = "Example:\n  osimager config set credential_source=config memory=4096")]
    Set {
        /// KEY=VALUE pairs
        #[arg(required = true, value_name = "KEY=VALUE")]
        items: Vec<String>,
    },
}

/// What to resolve.
#[derive(Debug, Args, Clone)]
pub struct TargetArgs {
    /// PLATFORM/LOCATION/SPEC, e.g. qemu/lab/rhel-9.4-x86_64 or qemu/lab/rhel-latest-x86_64
    pub target: String,
    /// Machine name (default: the spec name); a dotted name is the FQDN
    pub name: Option<String>,
    /// IP address (default: DNS lookup of the FQDN, else DHCP)
    pub ip: Option<String>,
    /// Override defs: -D key=value,key2=value2 (repeatable)
    #[arg(short = 'D', long = "define", value_name = "K=V,…")]
    pub defines: Vec<String>,
    /// FQDN of the machine
    #[arg(short = 'F', long)]
    pub fqdn: Option<String>,
    /// Use this temp directory (kept) instead of a fresh one
    #[arg(short = 'm', long = "temp", value_name = "DIR")]
    pub temp_dir: Option<PathBuf>,
    /// Skip post-install configuration (no provisioners)
    #[arg(long)]
    pub skip: bool,
    /// Runtime-only local_only=true: build from ISOs already in iso_path
    #[arg(long)]
    pub local: bool,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Engine: native where a native driver exists (qemu, virtualbox-iso), else packer
    #[arg(long, value_enum, default_value_t = EngineKind::Auto)]
    pub engine: EngineKind,
    /// Replace an existing output directory
    #[arg(short, long)]
    pub force: bool,
    /// What to do when a step fails
    #[arg(short = 'e', long, value_enum, default_value_t = OnError::Cleanup)]
    pub on_error: OnError,
    /// Keep the temp dir and leave things in place on error
    #[arg(short, long)]
    pub keep: bool,
    /// Print what would run and stop
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Print PROGRESS=/ERROR=/RESULT= lines on stdout (for a build farm's dispatcher)
    #[arg(long)]
    pub dispatcher: bool,
    /// Write the build's events as NDJSON to FILE (`-` = stdout); see docs/EVENTS.md
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// Show detail on the terminal too (typed text redacted, HTTP requests, screenshots)
    #[arg(short, long)]
    pub verbose: bool,
    /// Show the guest's serial console on the terminal
    #[arg(long)]
    pub console: bool,
    /// Pause between steps (Packer -debug)
    #[arg(short, long)]
    pub debug: bool,
    /// Timestamp the engine output (Packer -timestamp-ui)
    #[arg(short, long)]
    pub timestamp: bool,
    /// Verbose engine log (PACKER_LOG=1)
    #[arg(short = 'L', long)]
    pub log: bool,
    /// Engine log file (PACKER_LOG_PATH)
    #[arg(short = 'N', long, value_name = "FILE")]
    pub logfile: Option<PathBuf>,
    /// Output directory (native engine; default: the builder's output_directory)
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    #[command(flatten)]
    pub cache: CacheArgs,
}

/// The install cache of native builds (see `osimager cache --help`).
#[derive(Debug, Args, Clone)]
pub struct CacheArgs {
    /// Install cache: off = always install from the media (default); use = boot the cached
    /// install when ISO, answer files, boot command and hardware/disk keys are unchanged,
    /// else install and cache it; refresh = install and replace the cached install
    #[arg(long = "cache", value_enum, env = "OSIMAGER_CACHE", default_value_t = CacheMode::Off)]
    pub mode: CacheMode,
    /// Install cache directory (default: <packer_cache_dir>/install, ~/.cache/osimager/install)
    #[arg(long, value_name = "DIR", env = "OSIMAGER_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Size limit of the install cache; least recently used installs are evicted beyond it
    #[arg(long, value_name = "SIZE", env = "OSIMAGER_CACHE_MAX_SIZE", value_parser = parse_size)]
    pub cache_max_size: Option<u64>,
}

fn parse_size(s: &str) -> Result<u64, String> {
    crate::install_cache::parse_size(s)
}

impl CacheArgs {
    pub fn options(&self) -> CacheOptions {
        CacheOptions {
            mode: self.mode,
            dir: self.cache_dir.clone(),
            max_size: self.cache_max_size,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// List the cached installs, most recently used first
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Remove cached installs (never one a build is using)
    Prune {
        /// Remove every entry
        #[arg(long, conflicts_with_all = ["key", "max_size"])]
        all: bool,
        /// Remove the entry whose key starts with KEY
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
        /// Evict least recently used entries down to SIZE (default: --cache-max-size)
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        max_size: Option<u64>,
        /// Also remove entries not used for this long (e.g. 30d, 12h)
        #[arg(long, value_name = "DURATION")]
        older_than: Option<String>,
    },
}
