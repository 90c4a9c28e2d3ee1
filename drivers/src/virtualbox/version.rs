//! `VBoxManage --version`: `6.1.30r148432`, `6.1.26_Ubuntur145957`, `7.0.20r163906`,
//! `7.0.16_Ubuntur162802`, `7.1.16r172425`, `7.0.0_BETA1r151234`, possibly after warning lines
//! (`WARNING: The vboxdrv kernel module is not loaded. …`).

use std::fmt;

/// A VirtualBox version: the numbers, the distribution suffix and the build revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VBoxVersion {
    /// Major version (6 in 6.1.30).
    pub major: u32,
    /// Minor version (1 in 6.1.30).
    pub minor: u32,
    /// Patch level (30 in 6.1.30).
    pub patch: u32,
    /// Distribution or pre-release tag between the numbers and the revision (`Ubuntu`,
    /// `BETA1`, `RC1`, `OSE`), without the underscore.
    pub suffix: Option<String>,
    /// Build revision (`r148432` → 148432).
    pub revision: Option<u64>,
}

impl VBoxVersion {
    /// Parse one version line.
    pub fn parse_line(line: &str) -> Option<VBoxVersion> {
        let line = line.trim();
        let numeric_len = line
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(line.len());
        let numbers: Vec<u32> = line[..numeric_len]
            .split('.')
            .map(|p| p.parse().ok())
            .collect::<Option<Vec<u32>>>()?;
        if numbers.len() < 2 || numbers.len() > 3 {
            return None;
        }
        let mut rest = &line[numeric_len..];
        // The revision is a trailing `r<digits>` (`_Ubuntur145957`: suffix `Ubuntu`).
        let mut revision = None;
        if let Some(pos) = rest.rfind('r') {
            let digits = &rest[pos + 1..];
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                revision = digits.parse().ok();
                rest = &rest[..pos];
            }
        }
        let suffix = match rest.strip_prefix('_') {
            Some(s) if !s.is_empty() => Some(s.to_string()),
            _ if rest.is_empty() => None,
            _ => return None,
        };
        Some(VBoxVersion {
            major: numbers[0],
            minor: numbers[1],
            patch: numbers.get(2).copied().unwrap_or(0),
            suffix,
            revision,
        })
    }

    /// Parse the whole `--version` output: the first line that is a version (warning lines
    /// before it are skipped).
    pub fn parse_output(stdout: &str) -> Option<VBoxVersion> {
        stdout.lines().find_map(VBoxVersion::parse_line)
    }

    /// `(major, minor)` ≥ `(maj, min)`.
    pub fn at_least(&self, maj: u32, min: u32) -> bool {
        (self.major, self.minor) >= (maj, min)
    }

    /// VirtualBox 7.0 and later: new option spellings; NAT no longer reaches the host's
    /// loopback unless `--nat-localhostreachable<N> on`.
    pub fn is_7x(&self) -> bool {
        self.major >= 7
    }
}

impl fmt::Display for VBoxVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(s) = &self.suffix {
            write!(f, "_{s}")?;
        }
        if let Some(r) = self.revision {
            write!(f, "r{r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> VBoxVersion {
        VBoxVersion::parse_output(s).unwrap_or_else(|| panic!("{s:?} did not parse"))
    }

    #[test]
    fn release_and_distribution_versions() {
        let a = v("6.1.30r148432\n");
        assert_eq!((a.major, a.minor, a.patch), (6, 1, 30));
        assert_eq!((a.suffix, a.revision), (None, Some(148432)));
        let b = v("6.1.26_Ubuntur145957");
        assert_eq!((b.major, b.minor, b.patch), (6, 1, 26));
        assert_eq!(b.suffix.as_deref(), Some("Ubuntu"));
        assert_eq!(b.revision, Some(145957));
        let c = v("7.0.16_Ubuntur162802\r\n");
        assert!(c.is_7x() && c.at_least(7, 0) && !c.at_least(7, 1));
        assert_eq!(c.to_string(), "7.0.16_Ubuntur162802");
        let d = v("7.1.16r172425");
        assert!(d.at_least(7, 1));
        let e = v("7.0.0_BETA1r151234");
        assert_eq!(e.suffix.as_deref(), Some("BETA1"));
        assert!(!v("6.1.50r161033").is_7x());
        let f = v("7.2.0");
        assert_eq!((f.major, f.minor, f.revision), (7, 2, None));
    }

    #[test]
    fn warning_lines_before_the_version_are_skipped() {
        let out = "WARNING: The vboxdrv kernel module is not loaded. Either there is no module\n\
                   \x20        available for the current kernel (6.1.0-57-amd64) or it failed to\n\
                   \x20        load. Please recompile the kernel module and install it by\n\n\
                   \x20          sudo /sbin/vboxconfig\n\n\
                   \x20        You will not be able to start VMs until this problem is fixed.\n\
                   7.0.20r163906\n";
        assert_eq!(v(out).to_string(), "7.0.20r163906");
    }

    #[test]
    fn garbage_is_not_a_version() {
        for s in [
            "",
            "VBoxManage: error: x",
            "7",
            "seven.0",
            "7.0.1.2.3r1",
            "7.0.1-foo",
        ] {
            assert_eq!(VBoxVersion::parse_output(s), None, "{s:?}");
        }
    }
}
