//! Ansible over the engine's SSH session: a local SSH server on 127.0.0.1 (Packer's
//! `use_proxy`, done natively) that carries every channel Ansible opens over the session the
//! engine already holds to the guest.
//!
//! Without it, `ansible-playbook` logs in to the guest by itself: a new TCP connection, the
//! guest's sshd re-executing itself, a key exchange and a password check computed by a guest
//! that runs under TCG, and `sshpass` plus a password file on this host. Through the relay,
//! Ansible's OpenSSH client talks to this process (key exchange on the host, authentication
//! with a key made for this run only, accepted for nothing else), and each channel it opens —
//! `exec` (modules, piped), `subsystem sftp` (file transfers), `env`, `pty-req` — is opened
//! on the engine's session as is, its data, EOF, exit status and close passed through both
//! ways, one independent pump per direction. The guest's EOF reaches the client only with
//! (after) the exit status, as from sshd itself: see [`relay_channel`].
//!
//! The relay listens only on the loopback interface and accepts only its own client key
//! (written 0600 into the provisioning temp dir, removed when the relay stops); it lives only
//! as long as the provisioner run ([`Relay::serve`]'s future).

use super::{CommError, Session};
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{PrivateKey, PublicKey};
use russh::server::{Auth, ChannelOpenHandle, Msg, Session as ServerSession, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelMsg};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// A request of a relay connection for a channel on the guest session.
type OpenRequest = oneshot::Sender<Result<Channel<russh::client::Msg>, String>>;

/// The relay's address and the key its client logs in with.
pub struct Relay {
    pub port: u16,
    /// The client's private key (OpenSSH format, 0600).
    pub key_file: PathBuf,
    listener: TcpListener,
    config: Arc<russh::server::Config>,
    client_key: PublicKey,
}

fn ed25519() -> PrivateKey {
    let seed: [u8; 32] = rand::random();
    PrivateKey::from(Ed25519Keypair::from_seed(&seed))
}

impl Relay {
    /// Listen on 127.0.0.1 (a free port) and write the client key into `dir`.
    pub async fn bind(dir: &Path) -> Result<Relay, CommError> {
        let io = |context: String| move |source| CommError::Io { context, source };
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(io("binding the Ansible relay on 127.0.0.1".into()))?;
        let port = listener
            .local_addr()
            .map_err(io("the Ansible relay's address".into()))?
            .port();
        let client = ed25519();
        let text = client
            .to_openssh(russh::keys::ssh_key::LineEnding::LF)
            .map_err(|e| CommError::Ssh {
                addr: format!("127.0.0.1:{port}"),
                context: "writing the relay's client key".into(),
                message: e.to_string(),
            })?;
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let key_file = dir.join(format!("relay-key-{port}"));
        write_private(&key_file, text.as_bytes())
            .map_err(io(format!("writing {}", key_file.display())))?;
        let config = russh::server::Config {
            keys: vec![ed25519()],
            auth_rejection_time: std::time::Duration::from_millis(0),
            auth_rejection_time_initial: Some(std::time::Duration::from_millis(0)),
            inactivity_timeout: None,
            nodelay: true,
            ..Default::default()
        };
        Ok(Relay {
            port,
            key_file,
            listener,
            config: Arc::new(config),
            client_key: client.public_key().clone(),
        })
    }

    /// Serve connections, carrying their channels over `guest`, until the returned future is
    /// dropped (run it next to ansible-playbook with `select!`).
    pub async fn serve(&self, guest: &Session) {
        let (tx, mut rx) = mpsc::channel::<OpenRequest>(16);
        // Connections end with the relay (an OpenSSH ControlPersist master would otherwise
        // stay connected to this process after Ansible is done).
        let conns = Connections::default();
        let accept = async {
            loop {
                let Ok((stream, _)) = self.listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let handler = Conn {
                    open: tx.clone(),
                    client_key: self.client_key.clone(),
                };
                let config = self.config.clone();
                let conns = conns.0.clone();
                tokio::spawn(async move {
                    if let Ok(running) = russh::server::run_stream(config, stream, handler).await {
                        if let Ok(mut c) = conns.lock() {
                            c.push(running.handle());
                        }
                        // Kept in the log: a relay connection that ends in an error makes
                        // the running ssh exit 255, which Ansible retries (ansible.cfg
                        // `retries`), re-running a module that may already have run.
                        if let Err(e) = running.await {
                            tracing::warn!("Ansible relay: client connection ended: {e}");
                        }
                    }
                });
            }
        };
        let bridge = async {
            while let Some(reply) = rx.recv().await {
                let _ = reply.send(guest.open_channel().await.map_err(|e| e.to_string()));
            }
        };
        tokio::join!(accept, bridge);
    }
}

/// The relay's client connections, disconnected when the relay stops.
#[derive(Default)]
struct Connections(Arc<std::sync::Mutex<Vec<russh::server::Handle>>>);

impl Drop for Connections {
    fn drop(&mut self) {
        let handles = self
            .0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        for h in handles {
            tokio::spawn(async move {
                let _ = h
                    .disconnect(
                        russh::Disconnect::ByApplication,
                        "relay stopped".into(),
                        String::new(),
                    )
                    .await;
            });
        }
    }
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?
        .write_all(data)
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.key_file);
    }
}

/// One client connection.
struct Conn {
    open: mpsc::Sender<OpenRequest>,
    client_key: PublicKey,
}

impl russh::server::Handler for Conn {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        _user: &str,
        offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(
            if offer.public_key.key_data() == self.client_key.key_data() {
                Auth::Accept
            } else {
                Auth::reject()
            },
        )
    }

    async fn auth_publickey(
        &mut self,
        _user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(if key.public_key.key_data() == self.client_key.key_data() {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut ServerSession,
    ) -> Result<(), Self::Error> {
        let (tx, rx) = oneshot::channel();
        let guest = match self.open.send(tx).await {
            Ok(()) => rx.await.unwrap_or_else(|_| Err("relay stopped".into())),
            Err(_) => Err("relay stopped".into()),
        };
        match guest {
            Ok(g) => {
                reply.accept().await;
                tokio::spawn(relay_channel(channel, g));
            }
            Err(e) => {
                tracing::warn!("Ansible relay: cannot open a channel on the guest session: {e}");
                reply.reject(russh::ChannelOpenFailure::ConnectFailed).await;
            }
        }
        Ok(())
    }

    // The requests reach the channel (and the guest) through `relay_channel`; here they are
    // only acknowledged. A guest that refuses one ends the channel with exit status 127.
    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut ServerSession,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        session: &mut ServerSession,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut ServerSession,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut ServerSession,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }
}

/// Pass one channel through, both directions at once.
async fn relay_channel(client: Channel<Msg>, guest: Channel<russh::client::Msg>) {
    let (mut c_read, c_write) = client.split();
    let (mut g_read, g_write) = guest.split();
    let to_guest = async {
        while let Some(msg) = c_read.wait().await {
            let r = match msg {
                ChannelMsg::Exec { command, .. } => g_write.exec(true, command).await,
                ChannelMsg::RequestSubsystem { name, .. } => {
                    g_write.request_subsystem(true, name).await
                }
                ChannelMsg::SetEnv {
                    variable_name,
                    variable_value,
                    ..
                } => g_write.set_env(false, variable_name, variable_value).await,
                ChannelMsg::RequestPty {
                    term,
                    col_width,
                    row_height,
                    pix_width,
                    pix_height,
                    terminal_modes,
                    ..
                } => {
                    g_write
                        .request_pty(
                            false,
                            &term,
                            col_width,
                            row_height,
                            pix_width,
                            pix_height,
                            &terminal_modes,
                        )
                        .await
                }
                ChannelMsg::WindowChange {
                    col_width,
                    row_height,
                    pix_width,
                    pix_height,
                } => {
                    g_write
                        .window_change(col_width, row_height, pix_width, pix_height)
                        .await
                }
                ChannelMsg::Signal { signal } => g_write.signal(signal).await,
                ChannelMsg::Data { data } => g_write.data_bytes(data).await,
                ChannelMsg::Eof => g_write.eof().await,
                ChannelMsg::Close => break,
                _ => Ok(()),
            };
            if r.is_err() {
                break;
            }
        }
        let _ = g_write.close().await;
    };
    let from_guest = async {
        let mut status = false;
        // The guest's EOF waits for its exit status. An OpenSSH ControlMaster (Ansible's
        // ControlPersist) closes a session channel as soon as EOF went both ways, without
        // waiting for the exit status, which sshd sends once it has reaped the process: on a
        // slow guest, well after the EOF. russh's server answers a client's close at once and
        // forgets the channel, so an exit status relayed after that was dropped: ssh exited
        // 255 and Ansible ran the module again (`copy`: "Source …/.source not found"; tests/
        // ansible_relay.rs). sshd keeps its side open until the exit status is out; holding
        // the EOF back until then gives the client the same order.
        let mut held_eof = false;
        while let Some(msg) = g_read.wait().await {
            let r = match msg {
                ChannelMsg::Data { data } => c_write.data_bytes(data).await,
                ChannelMsg::ExtendedData { data, ext } => {
                    c_write.extended_data_bytes(ext, data).await
                }
                ChannelMsg::ExitStatus { exit_status } => {
                    status = true;
                    then_eof(
                        c_write.exit_status(exit_status).await,
                        &mut held_eof,
                        &c_write,
                    )
                    .await
                }
                ChannelMsg::ExitSignal { .. } => {
                    // OpenSSH's client exits 255 on a signal too.
                    status = true;
                    then_eof(c_write.exit_status(255).await, &mut held_eof, &c_write).await
                }
                ChannelMsg::Failure if !status => {
                    // The guest refused a request (exec, subsystem): say so as a shell would.
                    let _ = c_write
                        .extended_data_bytes(1, &b"the guest refused the request\n"[..])
                        .await;
                    let _ = c_write.exit_status(127).await;
                    held_eof = false;
                    let _ = c_write.eof().await;
                    break;
                }
                ChannelMsg::Eof if !status => {
                    held_eof = true;
                    Ok(())
                }
                ChannelMsg::Eof => c_write.eof().await,
                ChannelMsg::Close => break,
                _ => Ok(()),
            };
            if r.is_err() {
                break;
            }
        }
        if held_eof {
            let _ = c_write.eof().await;
        }
        if !status {
            // The client's ssh exits 255 without an exit status; Ansible retries on 255.
            tracing::debug!("Ansible relay: a guest channel ended without an exit status");
        }
        let _ = c_write.close().await;
    };
    tokio::join!(to_guest, from_guest);
}

/// After the exit status went out, the EOF held back for it.
async fn then_eof(
    sent: Result<(), russh::Error>,
    held_eof: &mut bool,
    client: &russh::ChannelWriteHalf<Msg>,
) -> Result<(), russh::Error> {
    sent?;
    if std::mem::take(held_eof) {
        client.eof().await?;
    }
    Ok(())
}
