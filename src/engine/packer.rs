//! Packer engine (issue: Packer fallback engine). Placeholder module until it lands.
