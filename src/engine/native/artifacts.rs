//! Output directory handling (staging + atomic commit), Packer-format manifest and checksums.
//!
//! The build exports into a staging directory `<output>.partial-<pid>` next to the output
//! directory and renames it into place only after the manifest and checksums are written, so
//! a failed or interrupted build never leaves a half-written output. With `--force` an existing
//! output directory is removed at commit time (a failed forced build keeps the old output).

use super::NativeError;
use serde_json::{json, Value};
use sha2::Digest as _;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Name of the checksum file written into the output directory (`sha256sum -c` format).
pub const CHECKSUM_FILE: &str = "SHA256SUMS";
/// Name of the Packer-format manifest, next to the output directory.
pub const MANIFEST_FILE: &str = "packer-manifest.json";

type Result<T> = std::result::Result<T, NativeError>;

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> NativeError {
    let path = path.to_path_buf();
    move |source| NativeError::Output { what, path, source }
}

pub fn staging_dir(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    out.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

/// sha256 of a file, hex.
pub fn sha256_file(p: &Path) -> Result<String> {
    let mut f = std::fs::File::open(p).map_err(io("cannot read", p))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io("cannot read", p))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Write `SHA256SUMS` for `files` (all inside `dir`) into `dir`; returns its path and the
/// digests, in the order of `files`.
pub fn write_checksums(dir: &Path, files: &[PathBuf]) -> Result<(PathBuf, Vec<String>)> {
    let mut text = String::new();
    let mut digests = Vec::new();
    for f in files {
        let name = f.strip_prefix(dir).unwrap_or(f);
        let d = sha256_file(f)?;
        text.push_str(&format!("{d}  {}\n", name.display()));
        digests.push(d);
    }
    let p = dir.join(CHECKSUM_FILE);
    std::fs::write(&p, text).map_err(io("cannot write", &p))?;
    Ok((p, digests))
}

/// One build's manifest entry, Packer's shape.
pub struct ManifestEntry<'a> {
    pub name: &'a str,
    pub builder_type: &'a str,
    pub build_time: u64,
    /// (path as recorded, size in bytes)
    pub files: Vec<(String, u64)>,
    pub artifact_id: &'a str,
    pub run_uuid: &'a str,
    pub custom_data: Value,
}

/// Append `entry` to the manifest at `path` (created if missing), setting `last_run_uuid`.
/// Written atomically (temp file + rename), under an exclusive `flock` on the manifest's
/// directory: builds that share an output parent (separate processes, or one server) and
/// finish together each add their entry; none is lost to another's read-modify-write.
pub fn append_manifest(path: &Path, entry: &ManifestEntry<'_>) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let _held = crate::install_cache::lock::lock_dir(dir).map_err(io("cannot lock", dir))?;
    let mut doc: Value = match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| NativeError::Manifest {
            path: path.to_path_buf(),
            problem: format!("invalid JSON: {e}"),
        })?,
        Err(_) => json!({"builds": [], "last_run_uuid": ""}),
    };
    let files: Vec<Value> = entry
        .files
        .iter()
        .map(|(n, s)| json!({"name": n, "size": s}))
        .collect();
    let build = json!({
        "name": entry.name,
        "builder_type": entry.builder_type,
        "build_time": entry.build_time,
        "files": files,
        "artifact_id": entry.artifact_id,
        "packer_run_uuid": entry.run_uuid,
        "custom_data": entry.custom_data,
    });
    match doc.get_mut("builds").and_then(Value::as_array_mut) {
        Some(b) => b.push(build),
        None => {
            return Err(NativeError::Manifest {
                path: path.to_path_buf(),
                problem: "no \"builds\" array".into(),
            })
        }
    }
    doc["last_run_uuid"] = Value::String(entry.run_uuid.to_string());
    let tmp = path.with_extension(format!(
        "json.tmp-{}-{}",
        std::process::id(),
        entry.run_uuid
    ));
    let bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    std::fs::write(&tmp, bytes).map_err(io("cannot write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("cannot write", path))?;
    Ok(())
}

/// Move the staging dir into place (replacing an existing output when forced).
pub fn commit(staging: &Path, out: &Path, force: bool) -> Result<()> {
    if out.exists() {
        if !force {
            return Err(NativeError::OutputAppeared {
                out: out.to_path_buf(),
                staging: staging.to_path_buf(),
            });
        }
        std::fs::remove_dir_all(out).map_err(io("cannot remove the old output directory", out))?;
    }
    std::fs::rename(staging, out).map_err(io("cannot move the staged output into place at", out))
}

/// A random UUID v4 string (Packer's run UUID).
pub fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_appends_and_checksums() {
        let t = tempfile::tempdir().unwrap();
        let m = t.path().join(MANIFEST_FILE);
        for uuid in ["u1", "u2"] {
            append_manifest(
                &m,
                &ManifestEntry {
                    name: "qemu",
                    builder_type: "qemu",
                    build_time: 1,
                    files: vec![("out/disk.qcow2".into(), 5)],
                    artifact_id: "VM",
                    run_uuid: uuid,
                    custom_data: json!({}),
                },
            )
            .unwrap();
        }
        let doc: Value = serde_json::from_slice(&std::fs::read(&m).unwrap()).unwrap();
        assert_eq!(doc["builds"].as_array().unwrap().len(), 2);
        // Nothing but the manifest next to the outputs (the lock is on the directory).
        let names: Vec<_> = std::fs::read_dir(t.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert_eq!(doc["last_run_uuid"], "u2");
        assert_eq!(doc["builds"][0]["files"][0]["size"], 5);
        let f = t.path().join("a.img");
        std::fs::write(&f, "").unwrap();
        let (c, _) = write_checksums(t.path(), &[f]).unwrap();
        assert_eq!(
            std::fs::read_to_string(c).unwrap(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  a.img\n"
        );
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }

    /// Regression (issue 15): builds finishing together lost each other's manifest entries
    /// (read-modify-write without a lock) and, in one process, shared the temp file name.
    #[test]
    fn concurrent_appends_keep_every_entry() {
        let t = tempfile::tempdir().unwrap();
        let m = t.path().join(MANIFEST_FILE);
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for j in 0..10 {
                        let uuid = format!("u{i}-{j}");
                        append_manifest(
                            &m,
                            &ManifestEntry {
                                name: "qemu",
                                builder_type: "qemu",
                                build_time: 1,
                                files: vec![(format!("out{i}/disk"), j)],
                                artifact_id: "VM",
                                run_uuid: &uuid,
                                custom_data: json!({}),
                            },
                        )
                        .unwrap();
                    }
                })
            })
            .collect();
        for h in threads {
            h.join().unwrap();
        }
        let doc: Value = serde_json::from_slice(&std::fs::read(&m).unwrap()).unwrap();
        assert_eq!(doc["builds"].as_array().unwrap().len(), 80);
    }
}
