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
    out
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
