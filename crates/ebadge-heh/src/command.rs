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

use crate::device::{Device, DeviceError};
use ebadge_bus::model::Message;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// Lines waiting for the program's standard input, at most (beyond what the pipe holds).
pub const WRITE_QUEUE: usize = 64;

/// Longest wait for room in the write queue: past it, [`Device::deliver`] fails with the
/// reason (the program does not read its input) instead of waiting on it.
pub const WRITE_WAIT: Duration = Duration::from_secs(2);

/// A device program and its pipes.
#[derive(Debug)]
pub struct CommandDevice {
    child: Child,
    /// Lines for the writer task, which alone writes to the program's standard input.
    writer: mpsc::Sender<String>,
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
        let mut stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let (tx, lines) = mpsc::channel(64);
        // A writer task: whole lines only (a write given up half-way would garble the next
        // line), and `deliver` never waits on the pipe itself. A program that writes reports
        // while the agent writes to it, and reads only once its writes are taken, cannot hold
        // the agent then: its output goes on being read meanwhile.
        let (writer, mut queued) = mpsc::channel::<String>(WRITE_QUEUE);
        tokio::spawn(async move {
            while let Some(line) = queued.recv().await {
                if let Err(e) = stdin.write_all(line.as_bytes()).await {
                    tracing::error!(error = %e, "the device program's input is closed");
                    return;
                }
            }
        });
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
            writer,
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

    /// Queues the message's line for the program's standard input: done once queued (as it
    /// was once in the pipe before: a line the program has not read yet is lost with it either
    /// way). Cancel-safe: a line is queued whole or not at all.
    async fn deliver(&mut self, message: &Message) -> Result<(), DeviceError> {
        let mut line = message.to_json();
        line.push('\n');
        self.writer
            .send_timeout(line, WRITE_WAIT)
            .await
            .map_err(|e| match e {
                mpsc::error::SendTimeoutError::Timeout(_) => DeviceError(format!(
                    "the device program has not read its input for {} s ({WRITE_QUEUE} lines wait)",
                    WRITE_WAIT.as_secs()
                )),
                mpsc::error::SendTimeoutError::Closed(_) => {
                    DeviceError("the device program's input is closed".into())
                }
            })
    }
}
