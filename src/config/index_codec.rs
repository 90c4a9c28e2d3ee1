//! The on-disk form of the cached index (`index_cache.rs`): a flat binary record — a string
//! table, then the dependencies and the entries as indices into it. Reading it is a few
//! slices and no parsing of text: JSON of the same index took longer to parse than computing
//! half of `dump`.
//!
//! ```text
//! "OSIX" u32:format
//! u32:n  n × (u32:len bytes)                      strings
//! u32:n  n × (u32:path u64:size i128:mtime u8:kind) paths
//! u32:n  n × (u32:name u8:set u32:value)          environment variables
//! u32:n  n × (u32:key u32:dist u32:version u32:arch u32:path u32:iso_url u8:flags u32:disk_url)
//! ```
//! All integers little-endian; `flags`: 1 = iso_local, 2 = disk_image_local, 4 = has disk URL.

use super::deps::{Deps, Stamp};
use super::IndexEntry;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

const MAGIC: &[u8; 4] = b"OSIX";

#[derive(Default)]
struct Writer {
    strings: Vec<Vec<u8>>,
    ids: HashMap<Vec<u8>, u32>,
    body: Vec<u8>,
}

impl Writer {
    fn id(&mut self, s: &[u8]) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.strings.len() as u32;
        self.strings.push(s.to_vec());
        self.ids.insert(s.to_vec(), i);
        i
    }
    fn u32(&mut self, v: u32) {
        self.body.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &[u8]) {
        let i = self.id(s);
        self.u32(i);
    }
}

/// Encode an index and what it depends on.
pub fn encode(format: u32, deps: &Deps, entries: &[(String, IndexEntry)]) -> Vec<u8> {
    let mut w = Writer::default();
    w.u32(deps.paths.len() as u32);
    for (p, s) in &deps.paths {
        w.str(p.as_os_str().as_bytes());
        w.body.extend_from_slice(&s.size.to_le_bytes());
        w.body.extend_from_slice(&s.mtime_ns.to_le_bytes());
        w.body.push(s.kind);
    }
    w.u32(deps.env.len() as u32);
    for (k, v) in &deps.env {
        w.str(k.as_bytes());
        w.body.push(u8::from(v.is_some()));
        w.str(v.as_deref().unwrap_or("").as_bytes());
    }
    w.u32(entries.len() as u32);
    for (k, e) in entries {
        for s in [k, &e.dist, &e.version, &e.arch] {
            w.str(s.as_bytes());
        }
        w.str(e.path.as_os_str().as_bytes());
        w.str(e.iso_url.as_bytes());
        let flags = u8::from(e.iso_local)
            | (u8::from(e.disk_image_local) << 1)
            | (u8::from(e.disk_image_url.is_some()) << 2);
        w.body.push(flags);
        w.str(e.disk_image_url.as_deref().unwrap_or("").as_bytes());
    }
    let mut out = Vec::with_capacity(w.body.len() + 64 * w.strings.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&format.to_le_bytes());
    out.extend_from_slice(&(w.strings.len() as u32).to_le_bytes());
    for s in &w.strings {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s);
    }
    out.extend_from_slice(&w.body);
    out
}

struct Reader<'a> {
    b: &'a [u8],
    strings: Vec<&'a [u8]>,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.b.len() < n {
            return None;
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Some(h)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
    }
    fn i128(&mut self) -> Option<i128> {
        self.take(16)
            .map(|b| i128::from_le_bytes(b.try_into().unwrap_or_default()))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let i = self.u32()? as usize;
        self.strings.get(i).copied()
    }
    fn string(&mut self) -> Option<String> {
        std::str::from_utf8(self.bytes()?).ok().map(str::to_string)
    }
    fn path(&mut self) -> Option<PathBuf> {
        Some(PathBuf::from(OsStr::from_bytes(self.bytes()?)))
    }
}

/// Decode what [`encode`] wrote with `format`; `None` for anything else.
pub fn decode(format: u32, b: &[u8]) -> Option<(Deps, Vec<(String, IndexEntry)>)> {
    let mut r = Reader {
        b,
        strings: Vec::new(),
    };
    if r.take(4)? != MAGIC || r.u32()? != format {
        return None;
    }
    let n = r.u32()? as usize;
    let mut strings = Vec::with_capacity(n);
    for _ in 0..n {
        let len = r.u32()? as usize;
        strings.push(r.take(len)?);
    }
    r.strings = strings;
    let mut deps = Deps::default();
    for _ in 0..r.u32()? {
        let p = r.path()?;
        let s = Stamp {
            size: r.u64()?,
            mtime_ns: r.i128()?,
            kind: r.u8()?,
        };
        deps.paths.insert(p, s);
    }
    for _ in 0..r.u32()? {
        let k = r.string()?;
        let set = r.u8()? == 1;
        let v = r.string()?;
        deps.env.insert(k, set.then_some(v));
    }
    let n = r.u32()? as usize;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let key = r.string()?;
        let dist = r.string()?;
        let version = r.string()?;
        let arch = r.string()?;
        let path = r.path()?;
        let iso_url = r.string()?;
        let flags = r.u8()?;
        let disk = r.string()?;
        entries.push((
            key,
            IndexEntry {
                dist,
                version,
                arch,
                path,
                iso_url,
                iso_local: flags & 1 != 0,
                disk_image_local: flags & 2 != 0,
                disk_image_url: (flags & 4 != 0).then_some(disk),
            },
        ));
    }
    r.b.is_empty().then_some((deps, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let mut deps = Deps::default();
        deps.paths.insert(
            "/data/specs/a/spec.json".into(),
            Stamp {
                size: 42,
                mtime_ns: -5,
                kind: 1,
            },
        );
        deps.env.insert("HOME".into(), Some("/root".into()));
        deps.env.insert("UNSET".into(), None);
        let e = IndexEntry {
            dist: "rhel".into(),
            version: "9.6".into(),
            arch: "x86_64".into(),
            path: "/data/specs/a/spec.json".into(),
            iso_url: "http://h/x.iso".into(),
            iso_local: true,
            disk_image_url: Some(String::new()),
            disk_image_local: false,
        };
        let mut f = e.clone();
        f.disk_image_url = None;
        f.iso_local = false;
        let entries = vec![("rhel-9.6-x86_64".to_string(), e), ("b".to_string(), f)];
        let bytes = encode(7, &deps, &entries);
        let (d2, e2) = decode(7, &bytes).unwrap();
        assert_eq!(d2, deps);
        assert_eq!(e2, entries);
        assert!(decode(8, &bytes).is_none(), "another format");
        assert!(decode(7, &bytes[..bytes.len() - 1]).is_none(), "truncated");
        assert!(decode(7, b"{\"format\":1}").is_none());
    }
}
