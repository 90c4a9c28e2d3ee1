//! `mkvenv`: OSImager 1.11.1 compatible entry point (Ansible venvs named in ansible.json).
fn main() -> std::process::ExitCode {
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.is_empty() {
        argv.push("mkvenv".into());
    }
    osimager::cli::mkosimage::main_mkvenv(argv)
}
