//! `ebadge msg check` and `ebadge msg schema`.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use ebadge_model::{Message, MessageType, schema};
use serde_json::json;

use crate::output::{self, Format, Lines, Status};

/// The `msg` subcommands.
#[derive(Subcommand)]
pub enum MsgCommand {
    /// Check one JSON message per line; print `ok <type>` or `invalid <line>: <reason>` for each.
    ///
    /// Exits 0 when every line is a valid message, 1 when any is not, 2 when the input cannot be
    /// read. A summary goes to standard error.
    ///
    /// Example: ebadge msg check messages.jsonl
    Check {
        /// File with one message per line; "-" or nothing for standard input.
        file: Option<PathBuf>,
        /// One JSON object per input line instead: {"line","ok","type","field","reason"}.
        #[arg(long)]
        json: bool,
        /// No summary on standard error.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Print the JSON Schema (2020-12) of every message type, or of one.
    ///
    /// Example: ebadge msg schema report
    Schema {
        /// A message type such as `report`; all types (as one schema) when left out.
        r#type: Option<String>,
        /// List the message types instead, one per line with its level.
        #[arg(long, conflicts_with = "type")]
        list: bool,
    },
}

/// Runs a `msg` subcommand.
pub fn run(command: MsgCommand) -> Result<Status> {
    match command {
        MsgCommand::Check { file, json, quiet } => check(file, json, quiet),
        MsgCommand::Schema { r#type, list } => print_schema(r#type.as_deref(), list),
    }
}

fn check(file: Option<PathBuf>, as_json: bool, quiet: bool) -> Result<Status> {
    let mut input = super::open_input(file.as_deref())?;
    let mut out = Lines::buffered();
    let format = Format::json_if(as_json);
    let (mut valid, mut invalid) = (0u64, 0u64);
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        if input
            .read_until(b'\n', &mut line)
            .context("cannot read the input")?
            == 0
        {
            break;
        }
        number += 1;
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let result = if text.iter().all(u8::is_ascii_whitespace) {
            Err(None)
        } else {
            Message::decode_slice(text).map_err(Some)
        };
        match &result {
            Ok(_) => valid += 1,
            Err(_) => invalid += 1,
        }
        write_result(&mut out, number, &result, format)?;
    }
    out.finish()?;
    if !quiet {
        eprintln!("{number} lines: {valid} valid, {invalid} invalid");
    }
    Ok(Status::held(invalid == 0))
}

type CheckResult = std::result::Result<Message, Option<ebadge_model::InvalidMessage>>;

fn write_result(out: &mut Lines, number: u64, result: &CheckResult, format: Format) -> Result<()> {
    match (result, format) {
        (Ok(message), Format::Text) => out.line(format_args!("ok {}", message.type_name()))?,
        (Err(Some(error)), Format::Text) => out.line(format_args!("invalid {number}: {error}"))?,
        (Err(None), Format::Text) => out.line(format_args!("invalid {number}: empty line"))?,
        (Ok(message), Format::Json) => {
            out.json(&json!({"line": number, "ok": true, "type": message.type_name()}))?
        }
        (Err(error), Format::Json) => {
            let (msg_type, field, reason) = match error {
                Some(e) => (e.msg_type.clone(), e.field(), e.to_string()),
                None => (None, None, "empty line".to_owned()),
            };
            out.json(&json!({"line": number, "ok": false, "type": msg_type, "field": field, "reason": reason}))?;
        }
    }
    Ok(())
}

fn print_schema(name: Option<&str>, list: bool) -> Result<Status> {
    if list {
        for t in MessageType::ALL {
            output::line(format_args!("{t}\t{:?}", t.level()));
        }
        return Ok(Status::Ok);
    }
    let document = match name {
        None => schema::all_messages_schema(),
        Some(name) => match MessageType::from_name(name) {
            Some(t) => schema::message_schema(t),
            None => bail!(
                "unknown message type {name:?}; the types are: {}",
                MessageType::ALL
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    };
    output::json_pretty(&document)?;
    Ok(Status::Ok)
}
