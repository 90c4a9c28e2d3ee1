//! osimager: build virtual-machine images from OSImager configuration.
pub mod engine;
pub mod plan;
pub mod secret;
pub mod config;
pub mod comm;
pub mod hooks;
pub mod venv;
pub mod provision;
pub mod cli;
pub mod iso;
