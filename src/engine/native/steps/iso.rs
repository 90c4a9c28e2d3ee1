//! Download (or find in the cache) and verify the installation media.

use crate::engine::native::runner::Runner;
use crate::engine::native::{NativeError, Settings};
use osimager_events::Progress;
use std::path::PathBuf;

pub(crate) async fn run(r: &Runner, s: &Settings) -> Result<Option<PathBuf>, NativeError> {
    let Some(req) = &s.iso else {
        r.skip("no iso_url: nothing to download");
        return Ok(None);
    };
    let events = r.events.clone();
    let meter = crate::iso::Meter::new(move |p: crate::iso::ByteCount| {
        events.progress(
            Progress::Bytes {
                label: p.label.clone(),
                done: p.done,
                total: p.total,
            },
            p.last,
        )
    });
    let path = crate::iso::acquire(req, &meter)
        .await
        .map_err(NativeError::Iso)?;
    r.events.log(format!("ISO: {}", path.display()));
    Ok(Some(path))
}
