//! `iso_checksum` in every form Packer accepts: bare hex (type by length), `md5:`, `sha1:`,
//! `sha256:`, `sha512:`, `file:URL-or-path` of a SUMS file (GNU `HASH  name` and BSD
//! `SHA256 (name) = HASH` lines, matched by basename), and `none`.

use super::IsoError;
use sha2::digest::DynDigest;

/// A digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algo {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl Algo {
    pub fn name(self) -> &'static str {
        match self {
            Algo::Md5 => "md5",
            Algo::Sha1 => "sha1",
            Algo::Sha256 => "sha256",
            Algo::Sha512 => "sha512",
        }
    }

    pub fn from_name(n: &str) -> Option<Algo> {
        match n.to_ascii_lowercase().as_str() {
            "md5" => Some(Algo::Md5),
            "sha1" => Some(Algo::Sha1),
            "sha256" => Some(Algo::Sha256),
            "sha512" => Some(Algo::Sha512),
            _ => None,
        }
    }

    fn from_hex_len(len: usize) -> Option<Algo> {
        match len {
            32 => Some(Algo::Md5),
            40 => Some(Algo::Sha1),
            64 => Some(Algo::Sha256),
            128 => Some(Algo::Sha512),
            _ => None,
        }
    }

    /// A fresh hasher for this algorithm.
    pub fn hasher(self) -> Box<dyn DynDigest + Send> {
        match self {
            Algo::Md5 => Box::new(md5::Md5::default()),
            Algo::Sha1 => Box::new(sha1::Sha1::default()),
            Algo::Sha256 => Box::new(sha2::Sha256::default()),
            Algo::Sha512 => Box::new(sha2::Sha512::default()),
        }
    }
}

/// An expected digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub algo: Algo,
    /// Lower-case hex.
    pub hex: String,
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.algo.name(), self.hex)
    }
}

/// The parsed `iso_checksum` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChecksumSpec {
    None,
    Digest(Digest),
    /// `file:…`: a SUMS file (URL or local path) to look the ISO's basename up in.
    File(String),
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn digest_from(algo: Option<Algo>, hex: &str, spec: &str) -> Result<Digest, IsoError> {
    let hex = hex.trim().to_ascii_lowercase();
    let by_len = Algo::from_hex_len(hex.len());
    let algo = algo.or(by_len);
    match algo {
        Some(a) if is_hex(&hex) && Algo::from_hex_len(hex.len()) == Some(a) => {
            Ok(Digest { algo: a, hex })
        }
        _ => Err(IsoError::BadChecksum {
            spec: spec.to_string(),
        }),
    }
}

impl ChecksumSpec {
    /// Parse an `iso_checksum` value. Empty means `none` (OSImager turns an empty checksum into
    /// `none` before Packer sees it).
    pub fn parse(spec: &str) -> Result<ChecksumSpec, IsoError> {
        let s = spec.trim();
        if s.is_empty() || s.eq_ignore_ascii_case("none") {
            return Ok(ChecksumSpec::None);
        }
        if let Some(rest) = s.strip_prefix("file:") {
            if rest.is_empty() {
                return Err(IsoError::BadChecksum { spec: s.into() });
            }
            return Ok(ChecksumSpec::File(rest.to_string()));
        }
        if let Some((kind, hex)) = s.split_once(':') {
            let algo = Algo::from_name(kind).ok_or_else(|| IsoError::BadChecksum {
                spec: s.to_string(),
            })?;
            return digest_from(Some(algo), hex, s).map(ChecksumSpec::Digest);
        }
        digest_from(None, s, s).map(ChecksumSpec::Digest)
    }
}

/// Find `name`'s digest in the text of a SUMS file (GNU or BSD lines; `*name` binary marker and
/// leading `./` or directories are ignored when comparing basenames).
pub fn find_in_sums(text: &str, name: &str, sums: &str) -> Result<Digest, IsoError> {
    let base = |p: &str| -> String {
        let p = p.trim().trim_start_matches('*');
        p.rsplit('/').next().unwrap_or(p).to_string()
    };
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // BSD: `SHA256 (name) = hex`
        if let Some((head, hex)) = line.rsplit_once(") = ") {
            if let Some((algo, file)) = head.split_once(" (") {
                if let Some(a) = Algo::from_name(algo.trim()) {
                    if base(file) == name {
                        return digest_from(Some(a), hex, line);
                    }
                }
                continue;
            }
        }
        // GNU: `hex  name` or `hex *name`
        if let Some((hex, file)) = line.split_once(char::is_whitespace) {
            if is_hex(hex) && base(file) == name {
                return digest_from(None, hex, line);
            }
        }
    }
    Err(IsoError::NoSumsEntry {
        sums: sums.to_string(),
        name: name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_every_form() {
        assert_eq!(ChecksumSpec::parse("none").unwrap(), ChecksumSpec::None);
        assert_eq!(ChecksumSpec::parse("").unwrap(), ChecksumSpec::None);
        let d = |a, h: &str| {
            ChecksumSpec::Digest(Digest {
                algo: a,
                hex: h.into(),
            })
        };
        assert_eq!(
            ChecksumSpec::parse(SHA256).unwrap(),
            d(Algo::Sha256, SHA256)
        );
        assert_eq!(
            ChecksumSpec::parse(&format!("SHA256:{}", SHA256.to_uppercase())).unwrap(),
            d(Algo::Sha256, SHA256)
        );
        let md5 = "d41d8cd98f00b204e9800998ecf8427e";
        assert_eq!(ChecksumSpec::parse(md5).unwrap(), d(Algo::Md5, md5));
        assert_eq!(
            ChecksumSpec::parse(&format!("md5:{md5}")).unwrap(),
            d(Algo::Md5, md5)
        );
        let sha1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709";
        assert_eq!(ChecksumSpec::parse(sha1).unwrap(), d(Algo::Sha1, sha1));
        let sha512 = "a".repeat(128);
        assert_eq!(
            ChecksumSpec::parse(&format!("sha512:{sha512}")).unwrap(),
            d(Algo::Sha512, &sha512)
        );
        assert_eq!(
            ChecksumSpec::parse("file:http://h/SHA256SUMS").unwrap(),
            ChecksumSpec::File("http://h/SHA256SUMS".into())
        );
        assert!(ChecksumSpec::parse("sha256:abcd").is_err());
        assert!(ChecksumSpec::parse("crc32:abcd").is_err());
        assert!(ChecksumSpec::parse("xyz").is_err());
        assert!(ChecksumSpec::parse(&format!("md5:{SHA256}")).is_err());
    }

    #[test]
    fn finds_gnu_and_bsd_lines() {
        let gnu = format!("{}  other.iso\n{SHA256} *./dir/my.iso\n", "1".repeat(64));
        assert_eq!(
            find_in_sums(&gnu, "my.iso", "S").unwrap().hex,
            SHA256.to_string()
        );
        let bsd = format!(
            "SHA256 (other.iso) = {}\nSHA256 (my.iso) = {SHA256}\n",
            "1".repeat(64)
        );
        assert_eq!(find_in_sums(&bsd, "my.iso", "S").unwrap().hex, SHA256);
        let err = find_in_sums(&bsd, "missing.iso", "SUMS").unwrap_err();
        assert!(err.to_string().contains("missing.iso"));
    }
}
