//! osimager: build virtual-machine images from OSImager configuration.
pub mod engine;
pub mod plan;
pub mod secret;
pub mod hooks;
pub mod venv;
pub mod comm;
pub mod provision;
