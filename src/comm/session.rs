//! An authenticated SSH connection: run commands, upload files, send the shutdown command.

use super::handler::Client;
use super::{shell_quote, CommError};
use crate::secret::redact;
use russh::client;
use russh::keys::{HashAlg, PublicKey};
use russh::ChannelMsg;
use std::io::Write as _;
use std::path::Path;
use tokio::io::AsyncRead;

/// Which stream an output line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    /// The command exited with this status.
    Code(u32),
    /// The command was killed by this signal.
    Signal(String),
    /// The connection or channel closed without an exit status (reboot, poweroff, sshd killed).
    Disconnected,
}

impl ExitStatus {
    pub fn success(&self) -> bool {
        matches!(self, ExitStatus::Code(0))
    }
    /// Packer's numbering: the exit code, 2300218 for a disconnect (Packer's `CmdDisconnect`),
    /// so that `valid_exit_codes` written for Packer keep their meaning.
    pub fn packer_code(&self) -> i64 {
        match self {
            ExitStatus::Code(c) => i64::from(*c),
            ExitStatus::Signal(_) => -1,
            ExitStatus::Disconnected => 2_300_218,
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit status {c}"),
            ExitStatus::Signal(s) => write!(f, "killed by signal {s}"),
            ExitStatus::Disconnected => f.write_str("connection closed without an exit status"),
        }
    }
}

/// An authenticated SSH session to a guest.
pub struct Session {
    handle: client::Handle<Client>,
    addr: String,
    user: String,
    pty: bool,
    host_key: Option<PublicKey>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("addr", &self.addr)
            .field("user", &self.user)
            .finish()
    }
}

/// Splits a byte stream into lines and hands each (redacted) line to a sink.
struct LineBuf {
    buf: Vec<u8>,
    stream: OutputStream,
}

impl LineBuf {
    fn push(&mut self, data: &[u8], sink: &mut (dyn FnMut(OutputStream, &str) + Send)) {
        self.buf.extend_from_slice(data);
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            emit(&line[..line.len() - 1], self.stream, sink);
        }
    }
    fn finish(&mut self, sink: &mut (dyn FnMut(OutputStream, &str) + Send)) {
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            emit(&line, self.stream, sink);
        }
    }
}

fn emit(line: &[u8], stream: OutputStream, sink: &mut (dyn FnMut(OutputStream, &str) + Send)) {
    let text = String::from_utf8_lossy(line);
    let text = text.strip_suffix('\r').unwrap_or(&text);
    sink(stream, &redact(text));
}

impl Session {
    pub(crate) fn new(
        handle: client::Handle<Client>,
        addr: String,
        user: String,
        pty: bool,
        host_key: Option<PublicKey>,
    ) -> Self {
        Session {
            handle,
            addr,
            user,
            pty,
            host_key,
        }
    }

    /// `host:port` this session is connected to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn username(&self) -> &str {
        &self.user
    }

    /// True once the connection has dropped (guest rebooted or powered off).
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// SHA256 fingerprint of the host key accepted for this connection (`SHA256:…`).
    pub fn host_key_fingerprint(&self) -> String {
        self.host_key
            .as_ref()
            .map(|k| k.fingerprint(HashAlg::Sha256).to_string())
            .unwrap_or_else(|| "(none)".into())
    }

    /// The accepted host key in OpenSSH public key format (`ssh-ed25519 AAAA…`).
    pub fn host_key_openssh(&self) -> Option<String> {
        self.host_key.as_ref().and_then(|k| k.to_openssh().ok())
    }

    /// Append the accepted host key to `path` in `known_hosts` format (`[host]:port key`).
    pub fn record_host_key(&self, host: &str, port: u16, path: &Path) -> Result<(), CommError> {
        let Some(key) = self.host_key_openssh() else {
            return Ok(());
        };
        let name = if port == 22 {
            host.to_string()
        } else {
            format!("[{host}]:{port}")
        };
        let io = |source| CommError::Io {
            context: format!("recording the guest's host key in {}", path.display()),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        writeln!(f, "{name} {key}").map_err(io)
    }

    /// Run `cmd`, logging each output line (redacted) through `tracing`, and return how it ended.
    pub async fn exec(&self, cmd: &str) -> Result<ExitStatus, CommError> {
        let mut sink = |stream: OutputStream, line: &str| match stream {
            OutputStream::Stdout => tracing::info!(target: "osimager::guest", "{line}"),
            OutputStream::Stderr => tracing::warn!(target: "osimager::guest", "{line}"),
        };
        self.exec_with(cmd, None, &mut sink).await
    }

    /// Run `cmd` and collect its stdout and stderr (redacted).
    pub async fn exec_capture(&self, cmd: &str) -> Result<(ExitStatus, String, String), CommError> {
        let (mut out, mut err) = (String::new(), String::new());
        let mut sink = |stream: OutputStream, line: &str| {
            let buf = if stream == OutputStream::Stdout {
                &mut out
            } else {
                &mut err
            };
            buf.push_str(line);
            buf.push('\n');
        };
        let status = self.exec_with(cmd, None, &mut sink).await?;
        Ok((status, out, err))
    }

    /// Run `cmd`, feeding it `stdin` (then EOF) if given, handing every output line (redacted,
    /// without its newline) to `sink`. A connection that drops before an exit status arrives
    /// yields [`ExitStatus::Disconnected`], not an error.
    pub async fn exec_with(
        &self,
        cmd: &str,
        stdin: Option<&mut (dyn AsyncRead + Unpin + Send)>,
        sink: &mut (dyn FnMut(OutputStream, &str) + Send),
    ) -> Result<ExitStatus, CommError> {
        tracing::debug!("ssh {}: {}", self.addr, redact(cmd));
        let fail = |context: &str, e: russh::Error| CommError::Ssh {
            addr: self.addr.clone(),
            context: context.to_string(),
            message: redact(&e.to_string()),
        };
        let channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| fail("opening a session channel", e))?;
        if self.pty {
            channel
                .request_pty(false, "vt100", 80, 40, 0, 0, &[])
                .await
                .map_err(|e| fail("requesting a pty", e))?;
        }
        channel
            .exec(true, cmd)
            .await
            .map_err(|e| fail("starting a command", e))?;
        let (mut read, write) = channel.split();

        let writer = async {
            if let Some(input) = stdin {
                if let Err(e) = write.data(input).await {
                    return Err(fail("sending input", e));
                }
            }
            // EOF tells `cat > file` (and any command reading stdin) that input is complete.
            let _ = write.eof().await;
            Ok(())
        };
        let reader = async {
            let mut out = LineBuf {
                buf: Vec::new(),
                stream: OutputStream::Stdout,
            };
            let mut err = LineBuf {
                buf: Vec::new(),
                stream: OutputStream::Stderr,
            };
            let mut status = None;
            let mut refused = false;
            while let Some(msg) = read.wait().await {
                match msg {
                    ChannelMsg::Data { data } => out.push(&data, sink),
                    ChannelMsg::ExtendedData { data, .. } => err.push(&data, sink),
                    ChannelMsg::ExitStatus { exit_status } => {
                        status = Some(ExitStatus::Code(exit_status))
                    }
                    ChannelMsg::ExitSignal { signal_name, .. } => {
                        status = Some(ExitStatus::Signal(format!("{signal_name:?}")))
                    }
                    ChannelMsg::Failure => refused = true,
                    ChannelMsg::Close => break,
                    _ => {}
                }
            }
            out.finish(sink);
            err.finish(sink);
            (status, refused)
        };
        // When the command ends without reading all its input (`cat` into a missing directory),
        // the server stops granting window and the writer would wait forever: the reader
        // finishing ends the exchange.
        tokio::pin!(writer);
        tokio::pin!(reader);
        let mut w = Ok(());
        let (status, refused) = tokio::select! {
            r = &mut reader => r,
            done = &mut writer => {
                w = done;
                reader.await
            }
        };
        if refused && status.is_none() {
            return Err(CommError::Ssh {
                addr: self.addr.clone(),
                context: "starting a command".into(),
                message: "the server refused the exec request".into(),
            });
        }
        match status {
            Some(s) => {
                // Input errors after the command finished (it stopped reading) do not matter.
                Ok(s)
            }
            None => {
                w?;
                Ok(ExitStatus::Disconnected)
            }
        }
    }

    /// Upload a local file to `remote` (created or truncated), keeping the local file's
    /// permission bits. Uses `cat > remote` over an exec channel: no SFTP/SCP needed in the guest.
    pub async fn upload(&self, local: &Path, remote: &str) -> Result<(), CommError> {
        let io = |source| CommError::Io {
            context: format!("reading {}", local.display()),
            source,
        };
        let mut file = tokio::fs::File::open(local).await.map_err(io)?;
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            file.metadata().await.map_err(io)?.permissions().mode() & 0o7777
        };
        self.upload_reader(&mut file, remote, Some(mode)).await
    }

    /// Write `data` to `remote`, optionally setting its mode.
    pub async fn upload_bytes(
        &self,
        data: &[u8],
        remote: &str,
        mode: Option<u32>,
    ) -> Result<(), CommError> {
        let mut r: &[u8] = data;
        self.upload_reader(&mut r, remote, mode).await
    }

    /// Stream `reader` into `remote`, optionally setting its mode.
    pub async fn upload_reader(
        &self,
        reader: &mut (dyn AsyncRead + Unpin + Send),
        remote: &str,
        mode: Option<u32>,
    ) -> Result<(), CommError> {
        let q = shell_quote(remote);
        let mut cmd = format!("cat > {q}");
        if let Some(m) = mode {
            cmd.push_str(&format!(" && chmod {m:o} {q}"));
        }
        let mut errors = String::new();
        let mut sink = |_: OutputStream, line: &str| {
            errors.push_str(line);
            errors.push('\n');
        };
        let status = self.exec_with(&cmd, Some(reader), &mut sink).await?;
        if status.success() {
            Ok(())
        } else {
            Err(CommError::Ssh {
                addr: self.addr.clone(),
                context: format!("uploading to {remote}"),
                message: format!("{status}: {}", errors.trim()),
            })
        }
    }

    /// Read a remote file completely.
    pub async fn download(&self, remote: &str) -> Result<Vec<u8>, CommError> {
        // Raw bytes must not go through the line splitter: base64 would need a tool in the
        // guest, so read the channel directly.
        let channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| CommError::Ssh {
                addr: self.addr.clone(),
                context: "opening a session channel".into(),
                message: e.to_string(),
            })?;
        channel
            .exec(true, format!("cat {}", shell_quote(remote)))
            .await
            .map_err(|e| CommError::Ssh {
                addr: self.addr.clone(),
                context: "starting cat".into(),
                message: e.to_string(),
            })?;
        let (mut read, _write) = channel.split();
        let mut data = Vec::new();
        let mut errors = Vec::new();
        let mut status = None;
        while let Some(msg) = read.wait().await {
            match msg {
                ChannelMsg::Data { data: d } => data.extend_from_slice(&d),
                ChannelMsg::ExtendedData { data: d, .. } => errors.extend_from_slice(&d),
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        match status {
            Some(0) => Ok(data),
            other => Err(CommError::Ssh {
                addr: self.addr.clone(),
                context: format!("downloading {remote}"),
                message: format!(
                    "cat ended with {}: {}",
                    other
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "no exit status".into()),
                    redact(String::from_utf8_lossy(&errors).trim())
                ),
            }),
        }
    }

    /// Send the shutdown command. The guest may close the connection before reporting an exit
    /// status; that counts as success. A non-zero exit status is returned for the caller to
    /// report (Packer ignores it and waits for the VM to stop).
    pub async fn shutdown(&self, cmd: &str) -> Result<ExitStatus, CommError> {
        tracing::info!("sending the shutdown command: {}", redact(cmd));
        match self.exec(cmd).await {
            Ok(ExitStatus::Disconnected) => Ok(ExitStatus::Code(0)),
            Ok(s) => {
                if !s.success() {
                    tracing::warn!("shutdown command ended with {s}");
                }
                Ok(s)
            }
            // The connection died under us while the command ran: the guest is going down.
            Err(CommError::Ssh { .. }) if self.is_closed() => Ok(ExitStatus::Code(0)),
            Err(e) => Err(e),
        }
    }

    /// Close the connection politely.
    pub async fn close(&self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}
