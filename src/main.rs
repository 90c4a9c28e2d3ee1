//! `osimager` binary (also answers to the names `mkosimage` and `rfosimage` through argv[0]).
fn main() -> std::process::ExitCode {
    osimager::cli::main_from_args(std::env::args_os().collect())
}
