//! Asking on the terminal: a line, or a password with echo off.

use std::io::{BufRead, Write};
use std::os::fd::AsRawFd;

/// Whether standard input is a terminal.
pub fn stdin_is_tty() -> bool {
    // SAFETY: isatty only reads the descriptor's state.
    unsafe { libc::isatty(std::io::stdin().as_raw_fd()) == 1 }
}

/// Ask `question` on stderr and read a line; an empty answer gives `default`.
pub fn ask(question: &str, default: &str) -> std::io::Result<String> {
    eprint!("{question} [{default}]: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let a = line.trim();
    Ok(if a.is_empty() { default } else { a }.to_string())
}

/// Restores the terminal's echo when dropped (also when reading fails or panics).
struct EchoOff {
    fd: i32,
    saved: libc::termios,
}

impl EchoOff {
    fn new(fd: i32) -> std::io::Result<EchoOff> {
        // SAFETY: tcgetattr/tcsetattr on a descriptor we own for the call, with a zeroed
        // termios that tcgetattr fills.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut t) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            t.c_lflag |= libc::ECHONL;
            if libc::tcsetattr(fd, libc::TCSANOW, &t) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(EchoOff { fd, saved })
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores the attributes saved in `new` on the same descriptor.
        unsafe {
            libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved);
        }
    }
}

/// Ask for a password on the terminal without echo (the trailing newline removed).
pub fn ask_password(question: &str) -> std::io::Result<String> {
    eprint!("{question}: ");
    std::io::stderr().flush()?;
    let stdin = std::io::stdin();
    let _echo = EchoOff::new(stdin.as_raw_fd())?;
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
