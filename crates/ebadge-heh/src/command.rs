//! The device as an external program: the agent writes each message for the device as one
//! JSON line on the program's standard input, and reads the program's messages for the
//! controller as JSON lines from its standard output. Both ways the lines are eBADGE messages
//! (D3.1.3); the agent's own notices are `ext_ebadge_…` extensions. A line that is not a valid
//! message is logged with the reason and skipped; the program's standard error goes to the
//! agent's log.
//!
//! A device in a few lines of shell, accepting every activation:
//!
//! ```sh
//! #!/bin/sh
//! while read -r line; do
//!   case "$line" in
//!     *'"msg":"activate"'*)
//!       id=$(printf '%s' "$line" | sed 's/.*"id":"\([^"]*\)".*/\1/')
//!       n=$(printf '%s' "$line" | sed 's/.*"modification_count":\([0-9]*\).*/\1/')
//!       printf '{"msg":"accept_activation","id":"%s","modification_count":%s}\n' "$id" "$n" ;;
//!   esac
//! done
//! ```

use ebadge_bus::device::{Device, DeviceError};
use ebadge_bus::model::Message;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// A device program and its pipes.
#[derive(Debug)]
pub struct CommandDevice {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<Message>,
}

impl CommandDevice {
    /// Starts `command` (program and arguments).
    pub fn start(command: &[String]) -> std::io::Result<Self> {
        let (program, args) = command
            .split_first()
            .ok_or_else(|| std::io::Error::other("no device program named"))?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                std::io::Error::other(format!("starting the device program {program}: {e}"))
            })?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let (tx, lines) = mpsc::channel(64);
        // A reader task keeps `next` cancel-safe: a half-read line is never lost.
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if line.trim().is_empty() {
                    continue;
                }
                match Message::decode(&line) {
                    Ok(message) => {
                        if tx.send(message).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(%line, error = %e, "the device wrote an invalid message; skipped")
                    }
                }
            }
        });
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                tracing::info!(target: "device", "{line}");
            }
        });
        Ok(Self {
            child,
            stdin,
            lines,
        })
    }

    /// Stops the program.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

impl Device for CommandDevice {
    async fn next(&mut self) -> Option<Message> {
        self.lines.recv().await
    }

    async fn deliver(&mut self, message: &Message) -> Result<(), DeviceError> {
        let mut line = message.to_json();
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .map_err(|e| DeviceError(format!("writing to the device program: {e}")))
    }
}
