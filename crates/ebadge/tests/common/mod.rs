//! Running programs as a user runs them, for the command-line tests.

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

/// How long one command may run before the test kills it and fails: a command that waits
/// forever (a listener whose message another test took) must fail its test, not hold the
/// whole run until CI's limit.
const COMMAND_LIMIT: Duration = Duration::from_secs(300);

/// Runs `program` with `args`, `stdin` as its standard input; waits for it, at most
/// [`COMMAND_LIMIT`].
pub fn run(program: impl AsRef<std::ffi::OsStr>, args: &[&std::ffi::OsStr], stdin: &str) -> Output {
    let mut child = Command::new(&program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the program runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let pid = child.id().to_string();
    let (done, finished) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let expired = finished.recv_timeout(COMMAND_LIMIT) == Err(RecvTimeoutError::Timeout);
        if expired {
            let _ = Command::new("kill").args(["-9", &pid]).status();
        }
        expired
    });
    let output = child.wait_with_output().unwrap();
    let _ = done.send(());
    let expired = watchdog.join().unwrap();
    assert!(
        !expired,
        "{} {args:?} ran for more than {COMMAND_LIMIT:?} and was killed; it printed: {}{}",
        program.as_ref().to_string_lossy(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    output
}

/// Runs `ebadge` with `args`.
pub fn ebadge(args: &[&str], stdin: &str) -> Output {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    run(env!("CARGO_BIN_EXE_ebadge"), &args, stdin)
}

/// Runs `ebadge` with `args` and `--profile profile`.
pub fn ebadge_with(profile: &Path, args: &[&str], stdin: &str) -> Output {
    let mut all: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    all.push("--profile".as_ref());
    all.push(profile.as_os_str());
    run(env!("CARGO_BIN_EXE_ebadge"), &all, stdin)
}
