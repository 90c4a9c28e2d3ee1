//! RFB security: the version handshake and security-type negotiation, including VNC
//! Authentication (security type 2, RFB 6.2.2): the server sends a 16-byte challenge, the
//! client returns it encrypted with DES (ECB, two blocks) under a key made of the first eight
//! bytes of the password (zero-padded), each byte with its bits reversed — the historical
//! quirk every VNC implementation shares (the original code loaded key bits LSB first).

use super::{io, VncError};
use des::cipher::{BlockCipherEncrypt, KeyInit};
use des::Des;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Security type None.
const SEC_NONE: u8 = 1;
/// Security type VNC Authentication.
const SEC_VNC_AUTH: u8 = 2;

/// The response to a VNC Authentication challenge.
pub fn vnc_auth_response(password: &str, challenge: &[u8; 16]) -> [u8; 16] {
    let mut key = [0u8; 8];
    for (k, b) in key.iter_mut().zip(password.bytes()) {
        *k = b.reverse_bits();
    }
    let cipher = Des::new_from_slice(&key).expect("a DES key is 8 bytes");
    let mut out = *challenge;
    for half in out.chunks_exact_mut(8) {
        let mut block: [u8; 8] = half.try_into().expect("8-byte chunk");
        let b = (&mut block).into();
        cipher.encrypt_block(b);
        half.copy_from_slice(&block);
    }
    out
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

/// Agree on a protocol version and pass the server's security check, leaving `s` ready for
/// ClientInit. Returns the minor protocol version used (3, 7 or 8).
pub(super) async fn negotiate(s: &mut TcpStream, password: Option<&str>) -> Result<u32, VncError> {
    let mut ver = [0u8; 12];
    s.read_exact(&mut ver)
        .await
        .map_err(io("reading the protocol version"))?;
    let text = String::from_utf8_lossy(&ver).to_string();
    let minor: u32 = text
        .strip_prefix("RFB 003.")
        .and_then(|r| r.trim_end().parse().ok())
        .ok_or_else(|| VncError::Protocol(format!("unexpected greeting {text:?}")))?;
    let minor = match minor {
        8.. => 8,
        7 => 7,
        _ => 3,
    };
    s.write_all(format!("RFB 003.00{minor}\n").as_bytes())
        .await
        .map_err(io("sending the protocol version"))?;
    let chosen = if minor == 3 {
        // 3.3: the server decides.
        let mut t = [0u8; 4];
        s.read_exact(&mut t)
            .await
            .map_err(io("reading the security type"))?;
        match u32::from_be_bytes(t) {
            0 => return Err(VncError::Refused(read_reason(s).await)),
            1 => SEC_NONE,
            2 => SEC_VNC_AUTH,
            other => {
                return Err(VncError::Protocol(format!(
                    "unsupported security type {other}"
                )))
            }
        }
    } else {
        let mut n = [0u8; 1];
        s.read_exact(&mut n)
            .await
            .map_err(io("reading the security types"))?;
        if n[0] == 0 {
            return Err(VncError::Refused(read_reason(s).await));
        }
        let mut types = vec![0u8; n[0] as usize];
        s.read_exact(&mut types)
            .await
            .map_err(io("reading the security types"))?;
        let pick = if types.contains(&SEC_NONE) {
            SEC_NONE
        } else if types.contains(&SEC_VNC_AUTH) {
            SEC_VNC_AUTH
        } else {
            return Err(VncError::Protocol(format!(
                "the server offers security types {types:?}; this client speaks None (1) and VNC Authentication (2)"
            )));
        };
        s.write_all(&[pick])
            .await
            .map_err(io("choosing the security type"))?;
        pick
    };
    if chosen == SEC_VNC_AUTH {
        let Some(password) = password else {
            return Err(VncError::PasswordRequired);
        };
        let mut challenge = [0u8; 16];
        s.read_exact(&mut challenge)
            .await
            .map_err(io("reading the authentication challenge"))?;
        s.write_all(&vnc_auth_response(password, &challenge))
            .await
            .map_err(io("answering the authentication challenge"))?;
    }
    // SecurityResult: always after VNC Authentication; after None only in 3.8.
    if chosen == SEC_VNC_AUTH || minor == 8 {
        let mut r = [0u8; 4];
        s.read_exact(&mut r)
            .await
            .map_err(io("reading the security result"))?;
        if u32::from_be_bytes(r) != 0 {
            let reason = if minor == 8 {
                read_reason(s).await
            } else {
                "no reason given".into()
            };
            return Err(if chosen == SEC_VNC_AUTH {
                VncError::AuthFailed(reason)
            } else {
                VncError::Refused(reason)
            });
        }
    }
    Ok(minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A known answer computed independently: challenge 0x00..0x0f, password "password".
    /// DES-ECB under the bit-reversed key 0e 86 ce ce ee f6 4e 26 (openssl des-ecb).
    #[test]
    fn auth_response_matches_reference() {
        let challenge: [u8; 16] = core::array::from_fn(|i| i as u8);
        let r = vnc_auth_response("password", &challenge);
        assert_eq!(hex(&r), KNOWN_PASSWORD);
        // Only eight bytes count; shorter passwords are zero-padded.
        assert_eq!(vnc_auth_response("password-longer", &challenge), r);
        assert_ne!(vnc_auth_response("passwor", &challenge), r);
    }

    const KNOWN_PASSWORD: &str = "b866924125c8eebb9debc1db61c538e2";

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
