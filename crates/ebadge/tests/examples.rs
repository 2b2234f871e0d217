//! Every example a user can copy must work: the messages in `--help` texts and in the docs are
//! valid (a `send` example that our own validator refuses is a broken promise), and the
//! `msg check` sessions shown in the README print what they show.

mod common;

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ebadge(args: &[&str], stdin: &str) -> (Option<i32>, String) {
    let output = common::ebadge(args, stdin);
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
    )
}

/// The help of `ebadge` and of every subcommand, recursively.
fn all_help(path: &mut Vec<String>, out: &mut Vec<(String, String)>) {
    let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
    args.push("--help");
    let (code, text) = ebadge(&args, "");
    assert_eq!(code, Some(0), "ebadge {} --help", path.join(" "));
    let subcommands: Vec<String> = text
        .split("Commands:")
        .nth(1)
        .map(|section| {
            section
                .lines()
                .skip(1)
                .take_while(|l| l.starts_with("  "))
                .filter(|l| !l.starts_with("   "))
                .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
                .filter(|c| c != "help")
                .collect()
        })
        .unwrap_or_default();
    out.push((path.join(" "), text));
    for sub in subcommands {
        path.push(sub);
        all_help(path, out);
        path.pop();
    }
}

/// The single-quoted JSON messages piped into a command in `text` (`echo '{...}' | …`), each
/// with the command it goes to (the rest of its line and the next).
fn piped_messages(text: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .iter()
        .enumerate()
        .filter_map(|(i, line)| {
            let start = line.find("echo '{")? + "echo '".len();
            let len = line[start..].find('\'')?;
            let command = format!(
                "{} {}",
                &line[start + len..],
                lines.get(i + 1).unwrap_or(&"")
            );
            Some((line[start..start + len].to_owned(), command))
        })
        .collect()
}

#[test]
fn every_message_sent_in_a_help_text_or_a_doc_is_valid() {
    let mut helps = Vec::new();
    all_help(&mut Vec::new(), &mut helps);
    assert!(helps.len() > 20, "only {} help texts found", helps.len());
    let mut sources = helps;
    for doc in [
        "README.md",
        "docs/heh-guide.md",
        "docs/vpp-guide.md",
        "docs/operator-guide.md",
    ] {
        let text = std::fs::read_to_string(workspace().join(doc)).unwrap();
        sources.push((doc.to_owned(), text));
    }
    let mut checked = 0;
    for (source, text) in &sources {
        for (message, command) in piped_messages(text) {
            // `msg check` examples may show an invalid message on purpose; the next test runs them.
            if command.contains("msg check") {
                continue;
            }
            if let Err(e) = ebadge_model::Message::decode(&message) {
                panic!("{source}: the example message {message} is invalid: {e}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} examples found");
}

#[test]
fn the_msg_check_sessions_in_the_readme_print_what_they_show() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let mut sessions = 0;
    let lines: Vec<&str> = readme.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let Some(start) = line.find("$ echo '") else {
            continue;
        };
        let message = &line[start + "$ echo '".len()..];
        let message = &message[..message.find('\'').unwrap()];
        let command = lines[i + 1];
        assert!(command.contains("msg check -"), "{command}");
        let shown = lines[i + 2];
        let (_, printed) = ebadge(&["msg", "check", "-"], &format!("{message}\n"));
        assert_eq!(printed.trim_end(), shown, "README line {}", i + 1);
        sessions += 1;
    }
    assert!(sessions >= 1);
}
