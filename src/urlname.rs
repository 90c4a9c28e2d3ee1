//! `get_filename_from_url`: the last path component of a URL as Python's `urlparse` splits it,
//! percent-decoded, spaces replaced by `-`.

/// OSImager `get_filename_from_url`.
pub fn filename_from_url(url: &str) -> String {
    let path = url_path(url);
    let base = path.rsplit('/').next().unwrap_or("");
    unquote(base).replace(' ', "-")
}

fn url_path(url: &str) -> String {
    // urlsplit: strip leading C0 control/space, remove tab/CR/LF.
    let url: String = url
        .trim_start_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
        .collect();
    let mut rest: &str = &url;
    let mut scheme = String::new();
    if let Some(i) = rest.find(':') {
        let first = rest.chars().next().unwrap_or(' ');
        if i > 0
            && first.is_ascii_alphabetic()
            && rest[..i]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            scheme = rest[..i].to_ascii_lowercase();
            rest = &rest[i + 1..];
        }
    }
    if let Some(after) = rest.strip_prefix("//") {
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        rest = &after[end..];
    }
    if let Some(i) = rest.find('#') {
        rest = &rest[..i];
    }
    if let Some(i) = rest.find('?') {
        rest = &rest[..i];
    }
    const USES_PARAMS: &[&str] = &[
        "", "ftp", "hdl", "prospero", "http", "imap", "https", "shttp", "rtsp", "rtsps", "rtspu",
        "sip", "sips", "mms", "sftp", "tel",
    ];
    if USES_PARAMS.contains(&scheme.as_str()) && rest.contains(';') {
        let cut = match rest.rfind('/') {
            Some(slash) => rest[slash..].find(';').map(|j| slash + j),
            None => rest.find(';'),
        };
        if let Some(i) = cut {
            rest = &rest[..i];
        }
    }
    rest.to_string()
}

/// `urllib.parse.unquote` (UTF-8, invalid sequences replaced).
fn unquote(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("00");
            out.push(u8::from_str_radix(hex, 16).unwrap_or(0));
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_python() {
        assert_eq!(
            filename_from_url("https://a.b/x/y%20z.iso?x=1#f"),
            "y-z.iso"
        );
        assert_eq!(filename_from_url("/iso/rhel.iso"), "rhel.iso");
        assert_eq!(filename_from_url("file:///iso/a.iso"), "a.iso");
        assert_eq!(filename_from_url("https://a.b"), "");
        assert_eq!(filename_from_url("http://h/p;params/f.iso;x"), "f.iso");
        assert_eq!(
            filename_from_url("E>'https://a/b.iso' if x else 'https://c/d.iso'<E"),
            "d.iso'<E"
        );
    }
}
