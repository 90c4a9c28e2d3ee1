// The web UI (web/dist, built by `npm run build` in web/) is embedded at compile time; this
// makes cargo rebuild the crate when it changes. Without it the server serves a page that says
// the UI was not built (see src/ui.rs).
fn main() {
    println!("cargo:rerun-if-changed=../web/dist");
    println!("cargo:rerun-if-changed=build.rs");
}
