//! What a resolution is asked for and what it gives back: the types every stage of `make_build`
//! shares (types only, so the stages need not import each other to name them).

use crate::plan::BuildPlan;
use serde_json::{Map, Value};
use std::path::PathBuf;

/// What to resolve (the CLI's positional arguments and `-D`/`-F`).
#[derive(Debug, Clone, Default)]
pub struct ResolveRequest {
    /// `platform/location/spec` (the spec may be a `-latest-` alias).
    pub target: String,
    /// Machine name (default: the spec name); a dotted name is the FQDN.
    pub name: Option<String>,
    /// IP address; `None`/"" = DNS lookup of the FQDN, "" (DHCP) when that fails.
    pub ip: Option<String>,
    /// `-D "k=v,k2=v2"` items (applied in order, after the derived defs).
    pub defines: Vec<String>,
    /// `-F FQDN`.
    pub fqdn: Option<String>,
    /// The build's temp directory (`temp_dir`/`tmpdir` defs; generated files go there). It is
    /// created if missing, unless `temp_dir_named_only`.
    pub temp_dir: PathBuf,
    /// Only name `temp_dir`, do not create it: for `dump`/`defs`, which write nothing there
    /// (the path still appears in their output, as it would in a build's).
    pub temp_dir_named_only: bool,
    /// `--skip`: no provisioners.
    pub skip: bool,
    /// `build_id` override (default: `packer-` + 12 random hex digits).
    pub build_id: Option<String>,
    /// A secret that does not exist is an error instead of "" plus a warning (set for builds:
    /// an image with an empty password is never what was meant; 1.11.1 built it).
    pub require_secrets: bool,
}

/// Everything `make_build` produced.
pub struct Resolved {
    pub plan: BuildPlan,
    /// The Packer template (`-u`), identical to `plan.packer_template()`.
    pub build: Value,
    /// Messages the original prints before the result (`X -> Y` for a `-latest-` alias).
    pub notices: Vec<String>,
    /// Non-fatal problems (empty builder keys removed, missing secrets, undefined defs).
    pub warnings: Vec<String>,
    /// The spec file's merged top-level data (`required_files`, `ansible_version`, …).
    pub spec: Map<String, Value>,
    /// The platform's merged top-level data (`pre_build`, `post_build`, `plugin`, …).
    pub platform: Map<String, Value>,
    /// True when the spec or `--skip` asked to skip post-install configuration.
    pub skip: bool,
}
