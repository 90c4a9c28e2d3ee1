//! Parsers for VBoxManage's machine-readable output.
//!
//! `showvminfo NAME --machinereadable` prints `key="string"` or `key=number` lines, with traps
//! a line-by-line `split('=')` gets wrong: quoted keys (`"SATA-0-0"="/…/disk.vdi"`), unquoted
//! keys with spaces (`GuestAdditionsFacility_VirtualBox Base Driver=50,1692620000`), values
//! that span lines (`description="line 1` … `line 2"`, older versions) or carry `\"`, `\\`
//! and `\n` escapes (newer ones), text after the closing quote (`VideoMode="720,400,0"@0,0 1`),
//! empty unquoted values (`videocapopts=`) and CRLF line ends (Windows hosts).
//! `list vms` prints `"name" {uuid}` per line (`"<inaccessible>" {uuid}` for broken VMs).

/// The parsed `showvminfo --machinereadable` output, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmInfo {
    /// (key, value) pairs with quotes removed, in output order.
    pub entries: Vec<(String, String)>,
}

/// Read a quoted string starting just after its opening quote. Returns the unescaped text and
/// the rest after the closing quote, or `None` when the quote never closes.
fn quoted(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, e)) => out.push(e),
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    None
}

impl VmInfo {
    /// Parse `showvminfo --machinereadable` output (tolerating CRLF and empty values).
    pub fn parse(text: &str) -> VmInfo {
        // CRLF (and stray CR) line ends become plain newlines first: a CR inside a quoted
        // multi-line value would otherwise end up in the value.
        let text = text.replace("\r\n", "\n");
        let mut entries = Vec::new();
        let mut rest: &str = &text;
        while !rest.is_empty() {
            let line_end = rest.find('\n').unwrap_or(rest.len());
            let line = &rest[..line_end];
            let next = &rest[(line_end + 1).min(rest.len())..];
            // The key: quoted, or everything before the first '='.
            let (key, after_key) = if let Some(q) = line.strip_prefix('"') {
                match quoted(q) {
                    Some((k, r)) => (k, r),
                    None => {
                        rest = next;
                        continue;
                    }
                }
            } else {
                match line.find('=') {
                    Some(eq) => (line[..eq].trim().to_string(), &line[eq..]),
                    None => {
                        rest = next;
                        continue;
                    }
                }
            };
            let Some(value_part) = after_key.strip_prefix('=') else {
                rest = next;
                continue;
            };
            if let Some(q) = value_part.strip_prefix('"') {
                // A quoted value may run over several lines: read from here in the whole
                // remaining text, not just this line.
                let offset = line.len() - q.len();
                let from = &rest[offset..];
                match quoted(from) {
                    Some((v, tail)) => {
                        entries.push((key, v));
                        // Skip whatever follows the closing quote on its line (`@0,0 1`).
                        rest = match tail.find('\n') {
                            Some(nl) => &tail[nl + 1..],
                            None => "",
                        };
                    }
                    None => {
                        // Unterminated: keep the rest of the line, move on.
                        entries.push((key, q.to_string()));
                        rest = next;
                    }
                }
            } else {
                entries.push((key, value_part.trim_end_matches('\r').to_string()));
                rest = next;
            }
        }
        VmInfo { entries }
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `VMState`: `running`, `poweroff`, `saved`, `aborted`, `paused`, `stopping`, …
    pub fn state(&self) -> Option<&str> {
        self.get("VMState")
    }

    /// Whether the VM counts as up (Packer's rule: running, stopping and paused are up;
    /// VirtualBox's transient starting/restoring states too).
    pub fn is_running(&self) -> bool {
        matches!(
            self.state(),
            Some(
                "running"
                    | "stopping"
                    | "paused"
                    | "starting"
                    | "restoring"
                    | "saving"
                    | "livesnapshotting"
                    | "teleporting"
                    | "onlinesnapshotting"
            )
        )
    }

    /// `SessionState`: `Unlocked` once no process holds the machine (VirtualBox ≥ 4.x; older
    /// releases print `SessionName`/`SessionType` only, treated as unlocked).
    pub fn session_locked(&self) -> bool {
        matches!(
            self.get("SessionState"),
            Some("Locked" | "Spawning" | "Unlocking")
        )
    }

    /// NAT port-forwarding rules of NIC `nic` (1-based), as printed after `nic<N>=`:
    /// `Forwarding(0)="name,tcp,127.0.0.1,2222,,22"`.
    pub fn forwarding_rules(&self, nic: u32) -> Vec<String> {
        let marker = format!("nic{nic}");
        let mut in_nic = false;
        let mut rules = Vec::new();
        for (k, v) in &self.entries {
            if k.starts_with("nic") && k[3..].bytes().all(|b| b.is_ascii_digit()) && k.len() > 3 {
                in_nic = *k == marker;
                continue;
            }
            if in_nic && k.starts_with("Forwarding(") {
                rules.push(v.clone());
            }
        }
        rules
    }
}

/// One line of `list vms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedVm {
    /// The VM name (`<inaccessible>` for a broken VM).
    pub name: String,
    /// The VM's UUID, without braces.
    pub uuid: String,
}

/// Parse `list vms` / `list runningvms`. The name is everything between the first quote and
/// the last `" {` (names may contain quotes).
pub fn parse_list_vms(text: &str) -> Vec<ListedVm> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim_end_matches('\r');
            let body = l.strip_prefix('"')?;
            let split = body.rfind("\" {")?;
            let uuid = body[split + 3..].strip_suffix('}')?;
            Some(ListedVm {
                name: body[..split].to_string(),
                uuid: uuid.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"name="osi-test"
Encryption:     disabled
groups="/"
ostype="Other Linux (64-bit)"
UUID="4b2f6a1e-9d7c-4c1f-8a52-0a9c3e1d2f11"
CfgFile="/home/u/VirtualBox VMs/osi-test/osi-test.vbox"
LogFldr="/home/u/VirtualBox VMs/osi-test/Logs"
description="first line
second \"quoted\" line
third line"
memory=512
vrdeport=-1
firmware="BIOS"
VMState="poweroff"
VMStateChangeTime="2024-05-01T10:00:00.000000000"
storagecontrollername0="IDE"
storagecontrollertype0="PIIX4"
"IDE-0-0"="/home/u/VirtualBox VMs/osi-test/osi-test.vdi"
"IDE-ImageUUID-0-0"="6a9f0c1e-1111-2222-3333-444455556666"
"IDE-0-1"="emptydrive"
"IDE-1-0"="none"
nic1="nat"
nictype1="82540EM"
macaddress1="080027465C5B"
Forwarding(0)="packercomm,tcp,127.0.0.1,2222,,22"
Forwarding(1)="web,tcp,,8080,,80"
nic2="none"
VideoMode="720,400,0"@0,0 1
videocapopts=
GuestAdditionsFacility_VirtualBox Base Driver=50,1692620000000
SessionState="Unlocked"
"#;

    #[test]
    fn parses_the_documented_traps() {
        let i = VmInfo::parse(SAMPLE);
        assert_eq!(i.get("name"), Some("osi-test"));
        assert_eq!(
            i.get("description"),
            Some("first line\nsecond \"quoted\" line\nthird line")
        );
        assert_eq!(i.get("memory"), Some("512"));
        assert_eq!(i.get("vrdeport"), Some("-1"));
        assert_eq!(i.state(), Some("poweroff"));
        assert!(!i.is_running());
        assert!(!i.session_locked());
        assert_eq!(
            i.get("IDE-0-0"),
            Some("/home/u/VirtualBox VMs/osi-test/osi-test.vdi")
        );
        assert_eq!(i.get("IDE-0-1"), Some("emptydrive"));
        assert_eq!(i.get("VideoMode"), Some("720,400,0"));
        assert_eq!(i.get("videocapopts"), Some(""));
        assert_eq!(
            i.get("GuestAdditionsFacility_VirtualBox Base Driver"),
            Some("50,1692620000000")
        );
        assert_eq!(
            i.get("LogFldr"),
            Some("/home/u/VirtualBox VMs/osi-test/Logs")
        );
        assert_eq!(
            i.forwarding_rules(1),
            vec!["packercomm,tcp,127.0.0.1,2222,,22", "web,tcp,,8080,,80"]
        );
        assert!(i.forwarding_rules(2).is_empty());
        // The line after the multi-line value is read as its own entry.
        assert_eq!(i.get("ostype"), Some("Other Linux (64-bit)"));
    }

    #[test]
    fn crlf_output_parses_the_same() {
        let crlf = SAMPLE.replace('\n', "\r\n");
        let a = VmInfo::parse(SAMPLE);
        let b = VmInfo::parse(&crlf);
        assert_eq!(a, b);
    }

    #[test]
    fn escaped_newlines_and_backslashes() {
        let i = VmInfo::parse(
            "description=\"a\\nb \\\\ c\"\nVMState=\"running\"\nSessionState=\"Locked\"\n",
        );
        assert_eq!(i.get("description"), Some("a\nb \\ c"));
        assert!(i.is_running());
        assert!(i.session_locked());
    }

    #[test]
    fn unterminated_quote_does_not_swallow_everything() {
        let i = VmInfo::parse("description=\"never closed\nVMState=\"poweroff\"\n");
        // The broken value takes the rest, but parsing does not panic and yields entries.
        assert!(!i.entries.is_empty());
    }

    #[test]
    fn list_vms_lines() {
        let out = "\"osi-test\" {4b2f6a1e-9d7c-4c1f-8a52-0a9c3e1d2f11}\r\n\
                   \"<inaccessible>\" {11111111-2222-3333-4444-555555555555}\n\
                   \"a \"quoted\" name\" {aaaaaaaa-2222-3333-4444-555555555555}\n\
                   garbage\n";
        let v = parse_list_vms(out);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].name, "osi-test");
        assert_eq!(v[0].uuid, "4b2f6a1e-9d7c-4c1f-8a52-0a9c3e1d2f11");
        assert_eq!(v[1].name, "<inaccessible>");
        assert_eq!(v[2].name, "a \"quoted\" name");
    }
}
