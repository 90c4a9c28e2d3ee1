//! Native engine (issue: native QEMU engine). Placeholder module until the pipeline lands.
