//! The russh client handler shared by a connection attempt and the session it becomes: the
//! host key is accepted and recorded.

use russh::client;
use russh::keys::{PublicKey, PublicKeyOrCertificate};
use std::sync::{Arc, Mutex};

/// russh handler: accept-and-record host key policy (see the module documentation of `comm`).
pub(crate) struct Client {
    /// The server's key, recorded when the server presents it.
    pub(super) host_key: Arc<Mutex<Option<PublicKey>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        *self.host_key.lock().unwrap_or_else(|e| e.into_inner()) = Some(key.public_key());
        Ok(true)
    }
}
