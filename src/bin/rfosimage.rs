//! `rfosimage`: OSImager 1.11.1 compatible entry point (re-run provisioning on an existing
//! machine).
fn main() -> std::process::ExitCode {
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.is_empty() {
        argv.push("rfosimage".into());
    }
    osimager::cli::mkosimage::main_rfosimage(argv)
}
