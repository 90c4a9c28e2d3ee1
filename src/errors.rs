//! Errors as people read them: one text, each cause said once.

/// An error and its causes as one text: `outer: cause: cause`, skipping a cause whose text is
/// already part of the text before it (many errors repeat their source in their own message).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !t.is_empty() && !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = c.source();
    }
    if let Some(hint) = advice(&out) {
        out.push_str(hint);
    }
    out
}

/// What to do about a failure the operating system reported, when its text alone does not
/// say (the path is already in the text).
fn advice(text: &str) -> Option<&'static str> {
    const FULL: &[&str] = &[
        "No space left on device",
        "Disk quota exceeded",
        "File too large",
    ];
    FULL.iter().any(|m| text.contains(m)).then_some(
        " (the file system is full: free space on it, or build elsewhere: --output-dir for \
         the image, TMPDIR or -m for temporary files, --cache-dir for the install cache)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("reading the disk")]
    struct Adds(#[source] std::io::Error);

    #[test]
    fn a_full_file_system_says_what_to_do() {
        let e = Adds(std::io::Error::from_raw_os_error(libc::ENOSPC));
        let t = error_chain(&e);
        assert!(
            t.starts_with("reading the disk: No space left on device"),
            "{t}"
        );
        assert!(t.contains("free space on it, or build elsewhere"), "{t}");
        assert!(!error_chain(&Adds(std::io::Error::other("x"))).contains("free space"));
    }

    #[test]
    fn each_cause_once() {
        assert_eq!(
            error_chain(&Repeats(std::io::Error::other("disk full"))),
            "outer: disk full"
        );
        assert_eq!(
            error_chain(&Adds(std::io::Error::other("disk full"))),
            "reading the disk: disk full"
        );
    }
}
