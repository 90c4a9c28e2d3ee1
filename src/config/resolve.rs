//! `make_build`: resolve `platform/location/spec` into defs and a Packer-shaped build, then
//! into a [`BuildPlan`](crate::plan::BuildPlan). [`resolve`] is the table of contents; each
//! stage is a module of its own, in the order OSImager 1.11.1 runs them.

mod builder;
mod defs;
mod iso;
mod load;
mod network;
mod plan;
mod store;
mod substitute;
mod target;
mod types;
mod value;

pub use store::open_store;
pub use types::{ResolveRequest, Resolved};

use super::diags::Diags;
use super::{Config, ConfigError};
use target::Target;

/// `make_build`.
pub fn resolve(cfg: &Config, req: &ResolveRequest) -> Result<Resolved, ConfigError> {
    let mut warnings = Diags::default();
    // The target, and the files it names merged over the state OSImager starts from.
    let target = Target::find(cfg, &req.target)?;
    let presets = load::presets(cfg, &target);
    let (mut state, loaded) = load::load(cfg, &target, presets, req.skip, &mut warnings)?;
    load::check_support(&loaded, &target)?;

    // The defs OSImager derives, the machine on the network, then the user's `-D`.
    defs::computed(cfg, req, &target, &mut state)?;
    let machine = network::machine(req, &target, &loaded.location, &mut state)?;
    defs::apply_defines(&mut state.defs, &req.defines)?;

    // Secrets and ISO names, then every marker substituted.
    let store = store::store_for(cfg, &req.target, &loaded, &mut warnings)?;
    let store = store.as_ref();
    iso::iso_defaults(cfg, &mut state, store, &mut warnings)?;
    let mut subst = substitute::substitute(state, &target, &loaded, store, &mut warnings)?;

    // The Packer build, and the plan read off it.
    builder::tidy(&mut subst.builder, &mut warnings);
    let build = builder::assemble(&subst, store, &mut warnings)?;
    if req.require_secrets {
        if let Some(e) = warnings.missing_secrets_error(&target.name()) {
            return Err(e);
        }
    }
    let plan = plan::plan(cfg, &target, machine, subst, &build, &loaded);
    Ok(Resolved {
        plan,
        build,
        notices: target.notices,
        warnings: warnings.finish(),
        spec: loaded.spec,
        platform: loaded.platform,
        skip: loaded.skip,
    })
}
