//! Read and check the builder block, the output directory and the driver's keys. Nothing is
//! created.

use crate::engine::native::error::SettingsError;
use crate::engine::native::{NativeError, Settings};
use crate::engine::Build;

pub(crate) async fn run(b: &Build) -> Result<Settings, NativeError> {
    let s = Settings::from_plan(&b.plan, &b.options, &b.context)?;
    if s.output_dir.exists() && !b.options.force {
        return Err(SettingsError::OutputExists {
            path: s.output_dir.clone(),
        }
        .into());
    }
    // The driver checks its own keys; making it creates nothing.
    let scratch = b.context.driver_env(
        &s.build_name,
        b.context.temp_root.join("osimager-validate"),
        s.diag_dir.clone(),
    );
    b.context
        .drivers
        .make(&b.plan.builder, scratch)
        .map_err(SettingsError::Driver)?;
    Ok(s)
}
