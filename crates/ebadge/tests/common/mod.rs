//! Running programs as a user runs them, for the command-line tests.

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `program` with `args`, `stdin` as its standard input; waits for it.
pub fn run(program: impl AsRef<std::ffi::OsStr>, args: &[&std::ffi::OsStr], stdin: &str) -> Output {
    let mut child = Command::new(program)
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
    child.wait_with_output().unwrap()
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
