//! A minimal RFB (VNC) client for typing and screenshots: handshake (protocol 3.3/3.7/3.8,
//! security types None and VNC Authentication), then KeyEvent messages with X11 keysyms, or
//! one full framebuffer read. Used for hypervisors whose only keyboard interface is VNC
//! (VMware Workstation); tested against QEMU's VNC server with and without a password.
//!
//! Sessions are opened with the shared flag set, so a second connection (a screenshot, a user
//! watching the console) does not disconnect the one typing.

mod auth;
mod framebuffer;
mod png;

pub use auth::vnc_auth_response;
pub use framebuffer::Frame;

use crate::bootcmd::{Key, KeyEvent};
use crate::keys::{keysym, KEYSYM_SHIFT_L};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;

/// Errors from the RFB (VNC) client.
#[derive(Debug, thiserror::Error)]
pub enum VncError {
    /// An I/O error on the connection while doing `context`.
    #[error("VNC {context}: {source}")]
    Io {
        /// What was being done (connecting, reading ServerInit, …).
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The server sent something that is not valid RFB.
    #[error("VNC: {0}")]
    Protocol(String),
    /// The server refused the connection (its reason).
    #[error("VNC: the server refused the connection: {0}")]
    Refused(String),
    /// The server asks for VNC Authentication but no password was configured.
    #[error("VNC: the server wants a password (VNC Authentication) and none was given")]
    PasswordRequired,
    /// VNC Authentication failed (the server's reason).
    #[error("VNC: authentication failed (wrong password?): {0}")]
    AuthFailed(String),
    /// Connecting did not succeed in time (how long, which address).
    #[error("VNC: timed out after {0:?} connecting to {1}")]
    Timeout(Duration, String),
    /// A boot-command key that has no X11 keysym, so it cannot be typed over VNC.
    #[error("VNC: key {0:?} has no X11 keysym (only printable US-ASCII and special keys)")]
    Untypable(Key),
}

fn io(context: &str) -> impl FnOnce(std::io::Error) -> VncError + '_ {
    move |source| VncError::Io {
        context: context.to_string(),
        source,
    }
}

/// What ServerInit told us.
struct ServerInit {
    width: u16,
    height: u16,
    name: String,
}

/// Connect, authenticate and exchange ClientInit/ServerInit.
async fn open(addr: &str, password: Option<&str>) -> Result<(TcpStream, ServerInit), VncError> {
    let mut s = TcpStream::connect(addr).await.map_err(io("connecting"))?;
    s.set_nodelay(true).map_err(io("setting TCP_NODELAY"))?;
    auth::negotiate(&mut s, password).await?;
    // ClientInit: shared.
    s.write_all(&[1]).await.map_err(io("sending ClientInit"))?;
    let mut init = [0u8; 24];
    s.read_exact(&mut init)
        .await
        .map_err(io("reading ServerInit"))?;
    let width = u16::from_be_bytes([init[0], init[1]]);
    let height = u16::from_be_bytes([init[2], init[3]]);
    let name_len = u32::from_be_bytes([init[20], init[21], init[22], init[23]]).min(65536) as usize;
    let mut name = vec![0u8; name_len];
    s.read_exact(&mut name)
        .await
        .map_err(io("reading the desktop name"))?;
    Ok((
        s,
        ServerInit {
            width,
            height,
            name: String::from_utf8_lossy(&name).into_owned(),
        },
    ))
}

/// Read the whole screen of the VNC server at `addr` (a separate, shared session).
pub async fn capture_screen(
    addr: &str,
    password: Option<&str>,
    timeout: Duration,
) -> Result<Frame, VncError> {
    tokio::time::timeout(timeout, async {
        let (mut s, init) = open(addr, password).await?;
        framebuffer::capture(&mut s, init.width, init.height).await
    })
    .await
    .map_err(|_| VncError::Timeout(timeout, addr.to_string()))?
}

/// Typing progress: (key events sent, key events in all).
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Send + Sync);

/// A connected VNC session (after ServerInit).
pub struct VncClient {
    writer: OwnedWriteHalf,
    drain: tokio::task::JoinHandle<()>,
    /// Framebuffer width the server announced in ServerInit.
    pub width: u16,
    /// Framebuffer height the server announced in ServerInit.
    pub height: u16,
    /// Desktop name from ServerInit (QEMU: the VM name).
    pub name: String,
}

impl Drop for VncClient {
    fn drop(&mut self) {
        self.drain.abort();
    }
}

impl VncClient {
    /// Connect to `addr` (`host:port`) without a password and complete the handshake within
    /// `timeout`.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<VncClient, VncError> {
        Self::connect_with_password(addr, None, timeout).await
    }

    /// Connect to `addr`, answering VNC Authentication with `password` when the server asks
    /// for it (None is preferred when the server offers both).
    pub async fn connect_with_password(
        addr: &str,
        password: Option<&str>,
        timeout: Duration,
    ) -> Result<VncClient, VncError> {
        let (s, init) = tokio::time::timeout(timeout, open(addr, password))
            .await
            .map_err(|_| VncError::Timeout(timeout, addr.to_string()))??;
        let (mut read, writer) = s.into_split();
        // We request no framebuffer updates; discard anything the server sends anyway (bell,
        // cut text) so its socket buffer never fills.
        let drain = tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while matches!(read.read(&mut buf).await, Ok(n) if n > 0) {}
        });
        Ok(VncClient {
            writer,
            drain,
            width: init.width,
            height: init.height,
            name: init.name,
        })
    }

    /// Send one KeyEvent message.
    pub async fn key(&mut self, sym: u32, down: bool) -> Result<(), VncError> {
        let mut msg = [0u8; 8];
        msg[0] = 4;
        msg[1] = u8::from(down);
        msg[4..].copy_from_slice(&sym.to_be_bytes());
        self.writer
            .write_all(&msg)
            .await
            .map_err(io("sending a key event"))
    }

    /// Press or release `key`, each RFB message followed by `pause`. Shifted characters are
    /// Shift_L down, the key, Shift_L up (as Packer's VNC driver sends them).
    async fn press(&mut self, key: Key, down: bool, pause: Duration) -> Result<(), VncError> {
        let k = keysym(key).ok_or(VncError::Untypable(key))?;
        if down && k.shift {
            self.key(KEYSYM_SHIFT_L, true).await?;
            tokio::time::sleep(pause).await;
        }
        self.key(k.sym, down).await?;
        tokio::time::sleep(pause).await;
        if !down && k.shift {
            self.key(KEYSYM_SHIFT_L, false).await?;
            tokio::time::sleep(pause).await;
        }
        Ok(())
    }

    /// Type key events; every RFB KeyEvent message is followed by a pause of `interval`
    /// (Packer waits 100 ms after each: VMware drops keys that come faster).
    pub async fn type_events(
        &mut self,
        events: &[KeyEvent],
        interval: Duration,
    ) -> Result<(), VncError> {
        self.type_events_with_progress(events, interval, &|_, _| {})
            .await
    }

    /// [`type_events`](Self::type_events), calling `progress` after each event.
    pub async fn type_events_with_progress(
        &mut self,
        events: &[KeyEvent],
        interval: Duration,
        progress: Progress<'_>,
    ) -> Result<(), VncError> {
        for (i, ev) in events.iter().enumerate() {
            match ev {
                KeyEvent::Wait(d) => tokio::time::sleep(*d).await,
                KeyEvent::Tap(k) => {
                    self.press(*k, true, interval).await?;
                    self.press(*k, false, interval).await?;
                }
                KeyEvent::Down(k) => self.press(*k, true, interval).await?,
                KeyEvent::Up(k) => self.press(*k, false, interval).await?,
            }
            progress(i + 1, events.len());
        }
        Ok(())
    }
}
