//! The documented deviations from OSImager 1.11.1 (docs/COMPAT.md "DEVIATIONS") that the
//! differential accepts, each with exactly what it asserts.

/// A deliberate difference from 1.11.1 that the differential can observe. The ids are the
/// numbers of docs/COMPAT.md "DEVIATIONS"; `asserted` is exactly what the comparison accepts.
pub struct Deviation {
    pub id: &'static str,
    pub title: &'static str,
    pub asserted: &'static str,
}

/// The ONE list of deviations the differential accepts. Anything else that differs fails.
pub const DEVIATIONS: &[Deviation] = &[
    Deviation {
        id: "COMPAT-1",
        title: "diagnostics go to stderr",
        asserted: "CLI: the original's stdout is its notice/warning lines followed by the JSON; \
                   osimager's stdout is that JSON byte for byte and each of those lines is on \
                   its stderr (an error too: `error: …` on stderr, exit status 1 on both sides)",
    },
    Deviation {
        id: "COMPAT-2",
        title: "errors say what to do",
        asserted: "both refuse the case and the refusal is the same (same kind, same platform, \
                   location, target or define); only the message text differs",
    },
    Deviation {
        id: "COMPAT-3",
        title: "undefined defs are reported; warnings say where",
        asserted: "results identical and the original's warnings all present, each possibly \
                   prefixed with the file/key it comes from (the original's non-fatal \
                   `error: invalid key K in expression E` lines are such warnings); the only \
                   extra warnings are `marker names undefined def 'K' (it becomes \"\")`",
    },
    Deviation {
        id: "COMPAT-11",
        title: "a missing secret is one warning that says where to store it",
        asserted: "results identical; the original's `secret not found: P/K` lines are, in \
                   osimager, one warning per missing secret (`secret path 'P' … in <store>: \
                   <what to do>; needed by <key> ({{vault `P` `K`}}), …; \"\" was used`) \
                   naming each place: exactly one `{{vault `P` `K`}}` place per original line",
    },
];
