//! A minimal RFB (VNC) client for typing: handshake (protocol 3.3/3.7/3.8, security type
//! None), then KeyEvent messages with X11 keysyms. Used for hypervisors whose only keyboard
//! interface is VNC (VMware Workstation); tested against QEMU's VNC server.

use crate::bootcmd::{Key, KeyEvent};
use crate::keys::{keysym, KEYSYM_SHIFT_L};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum VncError {
    #[error("VNC {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("VNC: {0}")]
    Protocol(String),
    #[error("VNC: the server refused the connection: {0}")]
    Refused(String),
    #[error("VNC: timed out after {0:?} connecting to {1}")]
    Timeout(Duration, String),
    #[error("VNC: key {0:?} has no X11 keysym (only printable US-ASCII and special keys)")]
    Untypable(Key),
}

fn io(context: &str) -> impl FnOnce(std::io::Error) -> VncError + '_ {
    move |source| VncError::Io {
        context: context.to_string(),
        source,
    }
}

/// A connected VNC session (after ServerInit).
pub struct VncClient {
    writer: OwnedWriteHalf,
    drain: tokio::task::JoinHandle<()>,
    pub width: u16,
    pub height: u16,
    pub name: String,
}

impl Drop for VncClient {
    fn drop(&mut self) {
        self.drain.abort();
    }
}

async fn read_reason(s: &mut TcpStream) -> String {
    let mut len = [0u8; 4];
    if s.read_exact(&mut len).await.is_err() {
        return "no reason given".into();
    }
    let n = u32::from_be_bytes(len).min(4096) as usize;
    let mut buf = vec![0u8; n];
    let _ = s.read_exact(&mut buf).await;
    String::from_utf8_lossy(&buf).into_owned()
}

impl VncClient {
    /// Connect to `addr` (`host:port`) and complete the handshake within `timeout`. Only the
    /// None security type is supported (password-protected servers are refused clearly).
    pub async fn connect(addr: &str, timeout: Duration) -> Result<VncClient, VncError> {
        tokio::time::timeout(timeout, Self::handshake(addr))
            .await
            .map_err(|_| VncError::Timeout(timeout, addr.to_string()))?
    }

    async fn handshake(addr: &str) -> Result<VncClient, VncError> {
        let mut s = TcpStream::connect(addr).await.map_err(io("connecting"))?;
        s.set_nodelay(true).map_err(io("setting TCP_NODELAY"))?;
        let mut ver = [0u8; 12];
        s.read_exact(&mut ver)
            .await
            .map_err(io("reading the protocol version"))?;
        let text = String::from_utf8_lossy(&ver).to_string();
        let minor: u32 = text
            .strip_prefix("RFB 003.")
            .and_then(|r| r.trim_end().parse().ok())
            .ok_or_else(|| VncError::Protocol(format!("unexpected greeting {text:?}")))?;
        let minor = if minor >= 8 {
            8
        } else if minor == 7 {
            7
        } else {
            3
        };
        s.write_all(format!("RFB 003.00{minor}\n").as_bytes())
            .await
            .map_err(io("sending the protocol version"))?;
        if minor == 3 {
            let mut t = [0u8; 4];
            s.read_exact(&mut t)
                .await
                .map_err(io("reading the security type"))?;
            match u32::from_be_bytes(t) {
                1 => {}
                0 => return Err(VncError::Refused(read_reason(&mut s).await)),
                2 => return Err(VncError::Protocol("the server wants a VNC password, which this client does not support; disable the VNC password".into())),
                other => return Err(VncError::Protocol(format!("unsupported security type {other}"))),
            }
        } else {
            let mut n = [0u8; 1];
            s.read_exact(&mut n)
                .await
                .map_err(io("reading the security types"))?;
            if n[0] == 0 {
                return Err(VncError::Refused(read_reason(&mut s).await));
            }
            let mut types = vec![0u8; n[0] as usize];
            s.read_exact(&mut types)
                .await
                .map_err(io("reading the security types"))?;
            if !types.contains(&1) {
                return Err(VncError::Protocol(format!(
                    "the server offers security types {types:?} but not None (1); VNC passwords are not supported"
                )));
            }
            s.write_all(&[1])
                .await
                .map_err(io("choosing security type None"))?;
            if minor == 8 {
                let mut r = [0u8; 4];
                s.read_exact(&mut r)
                    .await
                    .map_err(io("reading the security result"))?;
                if u32::from_be_bytes(r) != 0 {
                    return Err(VncError::Refused(read_reason(&mut s).await));
                }
            }
        }
        s.write_all(&[1]).await.map_err(io("sending ClientInit"))?;
        let mut init = [0u8; 24];
        s.read_exact(&mut init)
            .await
            .map_err(io("reading ServerInit"))?;
        let width = u16::from_be_bytes([init[0], init[1]]);
        let height = u16::from_be_bytes([init[2], init[3]]);
        let name_len =
            u32::from_be_bytes([init[20], init[21], init[22], init[23]]).min(65536) as usize;
        let mut name = vec![0u8; name_len];
        s.read_exact(&mut name)
            .await
            .map_err(io("reading the desktop name"))?;
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
            width,
            height,
            name: String::from_utf8_lossy(&name).into_owned(),
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

    async fn press(&mut self, key: Key, down: bool) -> Result<(), VncError> {
        let k = keysym(key).ok_or(VncError::Untypable(key))?;
        if down && k.shift {
            self.key(KEYSYM_SHIFT_L, true).await?;
        }
        self.key(k.sym, down).await?;
        if !down && k.shift {
            self.key(KEYSYM_SHIFT_L, false).await?;
        }
        Ok(())
    }

    /// Type key events; each key press/release is followed by pauses adding up to `interval`
    /// (Shift is held around uppercase letters and shifted symbols, as Packer does).
    pub async fn type_events(
        &mut self,
        events: &[KeyEvent],
        interval: Duration,
    ) -> Result<(), VncError> {
        let hold = interval / 2;
        for ev in events {
            match ev {
                KeyEvent::Wait(d) => tokio::time::sleep(*d).await,
                KeyEvent::Tap(k) => {
                    self.press(*k, true).await?;
                    tokio::time::sleep(hold).await;
                    self.press(*k, false).await?;
                    tokio::time::sleep(interval - hold).await;
                }
                KeyEvent::Down(k) => {
                    self.press(*k, true).await?;
                    tokio::time::sleep(interval).await;
                }
                KeyEvent::Up(k) => {
                    self.press(*k, false).await?;
                    tokio::time::sleep(interval).await;
                }
            }
        }
        Ok(())
    }
}
