//! The fault matrix of native builds (issue 15, deliverable 1; docs/RELIABILITY.md section 1):
//! each fault injected for real at the phase where it strikes, and for each: the exit status,
//! a message that says what failed and what to do, no process left, no temp dir left, no
//! build state file left, and the output directory either complete (SHA256SUMS that verify,
//! a manifest entry) or absent — never half-written.
//!
//! Default CI (no guest): ISO checksum mismatch, ISO download cut off and resumed, a corrupted
//! ISO in the cache, a damaged install-cache entry, HTTP port range exhausted, SSH forwarding
//! port taken, output and temp file systems full, the VM's process killed while waiting for
//! SSH and while provisioning (a stand-in process). Opt-in guest cells (real QEMU, the test
//! OS): `guest_cells` (OSIMAGER_E2E_FAULTS=1).
//!
//! Every build runs in a child process (see `harness`).

#[path = "fault_matrix/cache_cells.rs"]
mod cache_cells;
#[path = "fault_matrix/disk_cells.rs"]
mod disk_cells;
#[path = "fault_matrix/guest_cells.rs"]
mod guest_cells;
#[path = "fault_matrix/harness.rs"]
mod harness;
#[path = "fault_matrix/iso_cells.rs"]
mod iso_cells;
#[path = "fault_matrix/port_cells.rs"]
mod port_cells;
mod ssh_common;
mod support;
#[path = "fault_matrix/vm_cells.rs"]
mod vm_cells;

/// Not a test: the body of a child build process (`harness::child_main`).
#[test]
#[ignore = "helper: child build process of the fault matrix, run by its cells"]
fn child_build() {
    harness::child_main();
}
