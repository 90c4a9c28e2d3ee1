//! `mkosimage`: OSImager 1.11.1 compatible entry point.
fn main() -> std::process::ExitCode {
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.is_empty() {
        argv.push("mkosimage".into());
    }
    osimager::cli::mkosimage::main_mkosimage(argv)
}
