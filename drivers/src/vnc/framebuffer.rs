//! Reading the remote framebuffer: a full, non-incremental FramebufferUpdateRequest in a
//! 32-bit true-colour pixel format with only the Raw encoding, so every server can answer it.

use super::{io, VncError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A captured screen: `rgb` is `width * height * 3` bytes, rows top to bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Framebuffer width in pixels.
    pub width: u16,
    /// Framebuffer height in pixels.
    pub height: u16,
    /// Pixels as packed 8-bit R, G, B triples, row by row.
    pub rgb: Vec<u8>,
}

impl Frame {
    /// The frame as a PNG file.
    pub fn to_png(&self) -> Vec<u8> {
        super::png::encode_rgb(u32::from(self.width), u32::from(self.height), &self.rgb)
    }
}

/// SetPixelFormat: 32 bits per pixel, depth 24, little-endian, true colour, 8 bits a channel
/// at shifts 16 (red), 8 (green), 0 (blue).
fn set_pixel_format() -> [u8; 20] {
    let mut m = [0u8; 20];
    m[0] = 0;
    let pf = &mut m[4..];
    pf[0] = 32; // bits per pixel
    pf[1] = 24; // depth
    pf[2] = 0; // big-endian flag
    pf[3] = 1; // true colour
    pf[4..6].copy_from_slice(&255u16.to_be_bytes());
    pf[6..8].copy_from_slice(&255u16.to_be_bytes());
    pf[8..10].copy_from_slice(&255u16.to_be_bytes());
    pf[10] = 16;
    pf[11] = 8;
    pf[12] = 0;
    m
}

async fn skip(s: &mut TcpStream, n: usize, what: &str) -> Result<(), VncError> {
    let mut left = n;
    let mut buf = [0u8; 4096];
    while left > 0 {
        let k = left.min(buf.len());
        s.read_exact(&mut buf[..k]).await.map_err(io(what))?;
        left -= k;
    }
    Ok(())
}

/// Request the whole screen and read rectangles until every pixel has arrived (servers may
/// split the answer over several FramebufferUpdate messages).
pub(super) async fn capture(s: &mut TcpStream, width: u16, height: u16) -> Result<Frame, VncError> {
    s.write_all(&set_pixel_format())
        .await
        .map_err(io("sending SetPixelFormat"))?;
    // SetEncodings: Raw (0) only.
    s.write_all(&[2, 0, 0, 1, 0, 0, 0, 0])
        .await
        .map_err(io("sending SetEncodings"))?;
    let mut req = [3u8, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    req[6..8].copy_from_slice(&width.to_be_bytes());
    req[8..10].copy_from_slice(&height.to_be_bytes());
    s.write_all(&req)
        .await
        .map_err(io("sending FramebufferUpdateRequest"))?;
    let (w, h) = (usize::from(width), usize::from(height));
    let mut rgb = vec![0u8; w * h * 3];
    let mut covered = 0usize;
    while covered < w * h {
        let mut t = [0u8; 1];
        s.read_exact(&mut t)
            .await
            .map_err(io("reading a server message"))?;
        match t[0] {
            0 => {
                let mut hdr = [0u8; 3];
                s.read_exact(&mut hdr)
                    .await
                    .map_err(io("reading FramebufferUpdate"))?;
                let n = u16::from_be_bytes([hdr[1], hdr[2]]);
                for _ in 0..n {
                    let mut r = [0u8; 12];
                    s.read_exact(&mut r)
                        .await
                        .map_err(io("reading a rectangle header"))?;
                    let x = usize::from(u16::from_be_bytes([r[0], r[1]]));
                    let y = usize::from(u16::from_be_bytes([r[2], r[3]]));
                    let rw = usize::from(u16::from_be_bytes([r[4], r[5]]));
                    let rh = usize::from(u16::from_be_bytes([r[6], r[7]]));
                    let enc = i32::from_be_bytes([r[8], r[9], r[10], r[11]]);
                    if enc != 0 {
                        return Err(VncError::Protocol(format!(
                            "the server sent encoding {enc} although only Raw (0) was requested"
                        )));
                    }
                    let mut px = vec![0u8; rw * rh * 4];
                    s.read_exact(&mut px).await.map_err(io("reading pixels"))?;
                    for row in 0..rh {
                        for col in 0..rw {
                            let (dx, dy) = (x + col, y + row);
                            if dx >= w || dy >= h {
                                continue;
                            }
                            let p = &px[(row * rw + col) * 4..][..4];
                            let o = (dy * w + dx) * 3;
                            // Little-endian 0x00RRGGBB: bytes B, G, R, pad.
                            rgb[o] = p[2];
                            rgb[o + 1] = p[1];
                            rgb[o + 2] = p[0];
                        }
                    }
                    covered += rw.min(w.saturating_sub(x)) * rh.min(h.saturating_sub(y));
                }
            }
            1 => {
                let mut hdr = [0u8; 5];
                s.read_exact(&mut hdr)
                    .await
                    .map_err(io("reading SetColourMapEntries"))?;
                let n = usize::from(u16::from_be_bytes([hdr[3], hdr[4]]));
                skip(s, n * 6, "reading colour map entries").await?;
            }
            2 => {}
            3 => {
                let mut hdr = [0u8; 7];
                s.read_exact(&mut hdr)
                    .await
                    .map_err(io("reading ServerCutText"))?;
                let n = u32::from_be_bytes([hdr[3], hdr[4], hdr[5], hdr[6]]) as usize;
                skip(s, n, "reading cut text").await?;
            }
            other => {
                return Err(VncError::Protocol(format!(
                    "unexpected server message type {other} while reading the screen"
                )))
            }
        }
    }
    Ok(Frame { width, height, rgb })
}
