//! The error at the engine boundary: which engine failed, in which step, of what kind.

use super::native::NativeFailure;
use super::packer::PackerError;
use crate::config::ConfigError;
use osimager_events::ErrorKind;

/// Why a build did not produce an image.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The target could not be resolved or prepared.
    #[error("resolving the target")]
    Config(#[source] ConfigError),
    /// A native build failed (in a step, with what `--on-error abort` left).
    #[error(transparent)]
    Native(Box<NativeFailure>),
    /// The Packer engine failed (its messages say so themselves).
    #[error(transparent)]
    Packer(PackerError),
    /// Native retrofit (provisioners over SSH against an existing machine).
    #[error("retrofit failed")]
    Retrofit(#[source] anyhow_compat::Boxed),
}

/// `anyhow::Error` is not a `std::error::Error`; this carries one as a source.
pub mod anyhow_compat {
    /// An error with its cause chain.
    #[derive(Debug)]
    pub struct Boxed(pub anyhow::Error);

    impl std::fmt::Display for Boxed {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            std::fmt::Display::fmt(&self.0, f)
        }
    }

    impl std::error::Error for Boxed {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.0.source()
        }
    }
}

impl From<PackerError> for BuildError {
    fn from(e: PackerError) -> Self {
        BuildError::Packer(e)
    }
}

impl From<ConfigError> for BuildError {
    fn from(e: ConfigError) -> Self {
        BuildError::Config(e)
    }
}

impl BuildError {
    /// What kind of failure this is, for front ends and servers.
    pub fn kind(&self) -> ErrorKind {
        match self {
            BuildError::Config(_) => ErrorKind::Configuration,
            BuildError::Native(f) => f.source.kind(),
            BuildError::Packer(e) => e.kind(),
            BuildError::Retrofit(_) => ErrorKind::Provisioner,
        }
    }

    /// The step that failed (native engine).
    pub fn step(&self) -> Option<&str> {
        match self {
            BuildError::Native(f) => Some(&f.step),
            _ => None,
        }
    }

    /// What `--on-error abort` left in place.
    pub fn left_in_place(&self) -> &[String] {
        match self {
            BuildError::Native(f) => &f.left_in_place,
            _ => &[],
        }
    }

    /// The whole account for people, once: this error and its causes, each cause shown only
    /// when it adds something its parent's text does not already say.
    pub fn message(&self) -> String {
        crate::errors::error_chain(self)
    }

    /// The exit status a CLI reports (Packer's own, or 1).
    pub fn exit_code(&self) -> i32 {
        match self {
            BuildError::Packer(e) => e.exit_code(),
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_does_not_repeat_what_the_parent_already_says() {
        let n = BuildError::Native(Box::new(NativeFailure {
            step: "wait_for_ssh".into(),
            source: crate::engine::native::NativeError::Cancelled {
                reason: "SIGINT".into(),
            },
            left_in_place: vec![],
        }));
        assert_eq!(
            n.message(),
            "build failed in step \"wait for ssh\": interrupted by SIGINT"
        );
        assert_eq!(n.kind(), ErrorKind::Cancelled);
    }
}
