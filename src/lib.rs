//! osimager: build virtual-machine images from OSImager configuration.
pub mod build;
pub mod cli;
pub mod comm;
pub mod config;
pub mod engine;
pub mod errors;
pub mod hooks;
pub mod host;
pub mod iso;
pub mod plan;
pub mod provision;
pub mod secret;
#[cfg(feature = "serve")]
pub mod serve;
pub mod tools;
pub mod urlname;
pub mod venv;
