//! A ready-made [`MarkerEnv`] over a defs map, an optional secret store and DNS settings.

use super::{MarkerEnv, MarkerWarning};
use crate::config::dns::{self, DnsConfig};
use crate::config::secret_error::SecretError;
use crate::config::secrets::SecretStore;
use crate::secret::Secret;
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::HashMap;

/// Marker environment over borrowed defs. Warnings are collected; read them with
/// [`DefsEnv::take_warnings`].
pub struct DefsEnv<'a> {
    defs: &'a Map<String, Value>,
    secrets: Option<&'a SecretStore>,
    dns: DnsConfig,
    env_vars: Option<HashMap<String, String>>,
    warnings: RefCell<Vec<MarkerWarning>>,
}

impl<'a> DefsEnv<'a> {
    /// Defs only: no secret store (secret markers fail with `NotConfigured`), the system
    /// resolver for `*>k<*`, the process environment for `$>VAR<$`.
    pub fn new(defs: &'a Map<String, Value>) -> Self {
        DefsEnv {
            defs,
            secrets: None,
            dns: DnsConfig::default(),
            env_vars: None,
            warnings: RefCell::new(Vec::new()),
        }
    }

    /// Use this secret store for `|>`, `1>`, `5>`, `6>` and `{{vault …}}`.
    pub fn with_secrets(mut self, store: &'a SecretStore) -> Self {
        self.secrets = Some(store);
        self
    }

    /// Use these DNS settings for `*>k<*` (default: the system resolver, like the original).
    pub fn with_dns(mut self, dns: DnsConfig) -> Self {
        self.dns = dns;
        self
    }

    /// Read `$>VAR<$` from this map instead of the process environment.
    pub fn with_env_vars(mut self, vars: HashMap<String, String>) -> Self {
        self.env_vars = Some(vars);
        self
    }

    /// The warnings collected so far (drained).
    pub fn take_warnings(&self) -> Vec<MarkerWarning> {
        std::mem::take(&mut *self.warnings.borrow_mut())
    }
}

impl MarkerEnv for DefsEnv<'_> {
    fn def(&self, key: &str) -> Option<Value> {
        self.defs.get(key).cloned()
    }

    fn secret(&self, reference: &str) -> Result<Secret, SecretError> {
        match self.secrets {
            Some(store) => store.get(reference),
            None => Err(SecretError::NotConfigured {
                reference: reference.to_string(),
            }),
        }
    }

    fn lookup_a(&self, name: &str) -> Option<String> {
        dns::lookup_a(name, &self.dns).map(|ip| ip.to_string())
    }

    fn env_var(&self, name: &str) -> Option<String> {
        match &self.env_vars {
            Some(vars) => vars.get(name).cloned(),
            None => crate::config::env::var(name),
        }
    }

    fn warn(&self, warning: MarkerWarning) {
        self.warnings.borrow_mut().push(warning);
    }
}
