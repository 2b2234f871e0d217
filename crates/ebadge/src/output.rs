//! What the commands print as their results and the exit status they end with, in one place: a
//! script reads every command's `--json` and status the same way, so the rules live here and the
//! commands only say what to print. Progress and diagnostics go to standard error from the
//! commands themselves; standard output carries results only.

use std::fmt::Display;
use std::io::{self, BufWriter, Stdout, Write};
use std::process::ExitCode;

use serde::Serialize;

/// How `ebadge` ends. Scripts and the tests read these numbers; a new kind of failure gets a new
/// number here, never a reused one. `ebadge --help` lists them ([`exit_help`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 0: done, and every check held.
    Ok,
    /// 1: the command ran and found something wrong ([`Status::meaning`] says what, by command).
    Failed,
    /// 2: the command could not do its job (the error is printed as `ebadge: …`; for
    /// `conformance`, the kit could not run), or its arguments are wrong (clap ends with 2
    /// itself, before any command runs).
    Error,
    /// 3: `send`: the broker did not confirm every message in time (they stay in `--outbox`).
    Unconfirmed,
    /// 4: `send`: the broker refused messages for good (each printed with its reason).
    Refused,
    /// 130: `conformance`: interrupted by Ctrl-C (128 + SIGINT, as a shell reports it).
    Interrupted,
}

impl Status {
    /// Every status, in the order of their codes.
    pub const ALL: [Status; 6] = [
        Status::Ok,
        Status::Failed,
        Status::Error,
        Status::Unconfirmed,
        Status::Refused,
        Status::Interrupted,
    ];

    /// The process's exit code.
    pub const fn code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Failed => 1,
            Status::Error => 2,
            Status::Unconfirmed => 3,
            Status::Refused => 4,
            Status::Interrupted => 130,
        }
    }

    /// What the code tells a script, as `ebadge --help` says it.
    pub const fn meaning(self) -> &'static str {
        match self {
            Status::Ok => "done; every check held",
            Status::Failed => {
                "the command found something wrong: a violation (audit), an invalid message (msg \
                 check, a line of send), a failed check (conformance, demo), a broker not running \
                 (broker status), a node still presenting the old certificate (broker \
                 reload-tls), no certificate to revoke (pki revoke)"
            }
            Status::Error => {
                "the command could not do its job (the error follows `ebadge:`; conformance: the \
                 kit could not run), or its arguments are wrong"
            }
            Status::Unconfirmed => "send: the broker did not confirm every message in time",
            Status::Refused => "send: the broker refused messages for good",
            Status::Interrupted => "conformance: interrupted by Ctrl-C",
        }
    }

    /// [`Status::Ok`] when `held`, else [`Status::Failed`].
    pub const fn held(held: bool) -> Status {
        if held { Status::Ok } else { Status::Failed }
    }
}

/// The exit statuses, for the end of `ebadge --help`: a code and its meaning a line, wrapped
/// under the meaning (clap leaves this text as it is).
pub fn exit_help() -> String {
    const WIDTH: usize = 100;
    let mut text = String::from("Exit status:");
    for status in Status::ALL {
        let mut line = format!("{:>5}  ", status.code());
        let indent = line.len();
        for word in status.meaning().split(' ') {
            if line.len() + word.len() > WIDTH && line.len() > indent {
                text.push('\n');
                text.push_str(line.trim_end());
                line = " ".repeat(indent);
            }
            line.push_str(word);
            line.push(' ');
        }
        text.push('\n');
        text.push_str(line.trim_end());
    }
    text
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> ExitCode {
        ExitCode::from(status.code())
    }
}

/// How a command prints its results: lines for people, or with `--json` one JSON object per
/// result (per line) for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Text.
    Text,
    /// One JSON object per line.
    Json,
}

impl Format {
    /// The format `--json` asks for.
    pub const fn json_if(json: bool) -> Format {
        if json { Format::Json } else { Format::Text }
    }

    /// Prints one result: `value` as one JSON line, or the text `text` makes (its lines as they
    /// are, a newline after the last).
    pub fn print<T: Serialize + ?Sized>(
        self,
        value: &T,
        text: impl FnOnce() -> String,
    ) -> anyhow::Result<()> {
        match self {
            Format::Json => json(value),
            Format::Text => {
                line(text());
                Ok(())
            }
        }
    }
}

/// Prints `value` as one JSON line.
pub fn json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    line(serde_json::to_string(value)?);
    Ok(())
}

/// Prints `value` as indented JSON (a document to read, such as a schema).
pub fn json_pretty<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    line(serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints one line of text.
pub fn line(text: impl Display) {
    println!("{text}");
}

/// Prints text that ends its own lines (a report or a status several lines long).
pub fn text(text: impl Display) {
    print!("{text}");
}

/// Result lines written as they come, for a command that prints one per input line or per
/// message. Write errors come back (a reader that closed the pipe ends the command quietly,
/// see [`exit`]) instead of the panic `println!` makes of them.
pub struct Lines {
    out: BufWriter<Stdout>,
    each: bool,
}

impl Lines {
    /// Each line reaches the reader at once (a live stream: `listen`, `tap`).
    pub fn live() -> Lines {
        Lines {
            out: BufWriter::new(io::stdout()),
            each: true,
        }
    }

    /// Lines leave in blocks, for speed over a large input (`msg check`); [`Lines::finish`]
    /// writes the rest.
    pub fn buffered() -> Lines {
        Lines {
            out: BufWriter::new(io::stdout()),
            each: false,
        }
    }

    /// Writes one line of text.
    pub fn line(&mut self, text: impl Display) -> io::Result<()> {
        writeln!(self.out, "{text}")?;
        if self.each {
            self.out.flush()?;
        }
        Ok(())
    }

    /// Writes `value` as one JSON line.
    pub fn json<T: Serialize + ?Sized>(&mut self, value: &T) -> anyhow::Result<()> {
        Ok(self.line(serde_json::to_string(value)?)?)
    }

    /// Writes what is left.
    pub fn finish(mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The body of a message `listen` or `tap` prints.
pub enum Body<'a> {
    /// A valid eBADGE message, as JSON text.
    Message(String),
    /// A body that is not one (only a tap sees these: the client quarantines them), with why.
    Invalid {
        /// Why it is not a valid message.
        reason: String,
        /// The body as it came.
        raw: &'a [u8],
    },
}

/// One message as `listen` and `tap` print it. Text: `FROM ROUTING_KEY BODY`, FROM followed by
/// ` (to TO)` for a group's or a relayed message, `INVALID (REASON) RAW` for an invalid body.
/// JSON, keys in this documented order: `{"from":..,"routing_key":..,"message":{..}}`,
/// `"invalid":REASON` instead of `"message"`, and `"to"` last when there is one.
pub fn message_line(
    format: Format,
    from: &str,
    to: Option<&str>,
    routing_key: &str,
    body: &Body<'_>,
) -> String {
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    match format {
        Format::Json => {
            // By hand: a serde_json map would sort the keys, and scripts read them in this order.
            let (key, value) = match body {
                Body::Message(json) => ("message", json.clone()),
                Body::Invalid { reason, .. } => ("invalid", quote(reason)),
            };
            let to = to.map_or(String::new(), |to| format!(",\"to\":{}", quote(to)));
            format!(
                "{{\"from\":{},\"routing_key\":{},\"{key}\":{value}{to}}}",
                quote(from),
                quote(routing_key)
            )
        }
        Format::Text => {
            let from = match to {
                Some(to) => format!("{from} (to {to})"),
                None => from.to_owned(),
            };
            match body {
                Body::Message(json) => format!("{from} {routing_key} {json}"),
                Body::Invalid { reason, raw } => format!(
                    "{from} {routing_key} INVALID ({reason}) {}",
                    String::from_utf8_lossy(raw)
                ),
            }
        }
    }
}

/// The messages `listen` or `tap` prints as they come ([`message_line`], each reaching the
/// reader at once), up to a count if one was asked for.
pub struct Messages {
    format: Format,
    lines: Lines,
    left: Option<u64>,
}

impl Messages {
    /// Prints in `format`; stops wanting more after `count` messages, if given.
    pub fn new(format: Format, count: Option<u64>) -> Messages {
        Messages {
            format,
            lines: Lines::live(),
            left: count,
        }
    }

    /// Whether the count still wants another message.
    pub fn wants_more(&self) -> bool {
        self.left != Some(0)
    }

    /// Prints one message (see [`message_line`]).
    pub fn print(
        &mut self,
        from: &str,
        to: Option<&str>,
        routing_key: &str,
        body: &Body<'_>,
    ) -> io::Result<()> {
        self.lines
            .line(message_line(self.format, from, to, routing_key, body))?;
        if let Some(left) = &mut self.left {
            *left -= 1;
        }
        Ok(())
    }
}

/// Prints an error on standard error as `ebadge: …`, with its causes.
pub fn error(error: &anyhow::Error) {
    eprintln!("ebadge: {error:#}");
}

/// Prints why `ebadge COMMAND` stopped, on standard error, where no result is printed.
pub fn stopped(command: &str, why: impl Display) {
    eprintln!("ebadge {command}: {why}");
}

/// Ends the process quietly with status 0 when standard output is a closed pipe (`ebadge … |
/// head`): Rust ignores SIGPIPE, so `println!` panics on EPIPE instead, and `head` expects the
/// writer to stop without a word.
pub fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.starts_with("failed printing to stdout") && text.contains("Broken pipe") {
            std::process::exit(Status::Ok.code().into());
        }
        default(info);
    }));
}

/// The exit code of a command that returned `result`: its status, or for an error, the error
/// printed as `ebadge: …` and [`Status::Error`]; a reader that closed the pipe (a [`Lines`]
/// write failed) is no error.
pub fn exit(result: anyhow::Result<Status>) -> ExitCode {
    match result {
        Ok(status) => status.into(),
        Err(error) if is_broken_pipe(&error) => Status::Ok.into(),
        Err(error) => {
            self::error(&error);
            Status::Error.into()
        }
    }
}

/// Whether a command stopped because its reader closed the pipe.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_prints_as_listen_and_tap_always_printed_it() {
        let body = Body::Message(r#"{"msg":"get_capabilities"}"#.to_owned());
        let line = |format, to| message_line(format, "vpp", to, "get_capabilities", &body);
        assert_eq!(
            line(Format::Json, None),
            r#"{"from":"vpp","routing_key":"get_capabilities","message":{"msg":"get_capabilities"}}"#
        );
        assert_eq!(
            line(Format::Json, Some("bsps")),
            r#"{"from":"vpp","routing_key":"get_capabilities","message":{"msg":"get_capabilities"},"to":"bsps"}"#
        );
        assert_eq!(
            line(Format::Text, None),
            r#"vpp get_capabilities {"msg":"get_capabilities"}"#
        );
        assert_eq!(
            line(Format::Text, Some("bsps")),
            r#"vpp (to bsps) get_capabilities {"msg":"get_capabilities"}"#
        );
    }

    #[test]
    fn an_invalid_body_prints_with_its_reason() {
        let body = Body::Invalid {
            reason: "not \"JSON\"".to_owned(),
            raw: b"oops",
        };
        assert_eq!(
            message_line(Format::Json, "heh-a", None, "report", &body),
            r#"{"from":"heh-a","routing_key":"report","invalid":"not \"JSON\""}"#
        );
        assert_eq!(
            message_line(Format::Text, "heh-a", None, "report", &body),
            r#"heh-a report INVALID (not "JSON") oops"#
        );
    }

    #[test]
    fn the_help_names_every_exit_code_once() {
        let help = exit_help();
        for status in Status::ALL {
            let code = format!("{:>5}  ", status.code());
            assert_eq!(help.matches(&code).count(), 1, "{help}");
        }
        assert!(help.lines().all(|l| l.len() <= 100), "{help}");
        let codes: Vec<u8> = Status::ALL.iter().map(|s| s.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 130]);
    }
}
