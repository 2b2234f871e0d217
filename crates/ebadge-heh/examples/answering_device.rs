//! A device program for the agent, in Rust and for any platform (Windows too: `make cross`
//! builds it beside the agent): JSON lines on standard input and output, as
//! `docs/partners/agent_device.py` does in Python. It answers `get_status_report`,
//! `get_report`, `activate` (it accepts) and `get_periodic_report`, and ignores the rest.
//!
//! ```sh
//! cargo build -p ebadge-heh --example answering_device
//! # heh.toml: [device] command = ["target/debug/examples/answering_device"]
//! ```
//!
//! The Wine test runs its Windows build under the agent's (`tests/wine.rs`): a Windows program's
//! pipes reach only Windows programs under Wine.

use ebadge_bus::model::{Extensions, Message, Report, SignalName, StatusReport, Time};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What periodic reports were asked for: every `interval`, `resolution`, these signals.
struct Periodic {
    interval: Duration,
    resolution: f64,
    signals: Vec<SignalName>,
    due: Instant,
}

fn main() {
    let (lines, incoming) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut periodic: Option<Periodic> = None;
    loop {
        let wait = periodic.as_ref().map_or(Duration::from_secs(3600), |p| {
            p.due.saturating_duration_since(Instant::now())
        });
        match incoming.recv_timeout(wait) {
            Ok(line) => match Message::decode(&line) {
                Ok(message) => answer(message, &mut periodic),
                Err(e) => eprintln!("answering_device: skipping a line: {e}"),
            },
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        if let Some(p) = periodic.as_mut()
            && Instant::now() >= p.due
        {
            let to = now();
            let from = to
                .checked_add(-time::Duration::try_from(p.interval).expect("a short interval"))
                .expect("a time");
            emit(report(from, to, p.resolution, &p.signals));
            p.due += p.interval;
        }
    }
}

fn answer(message: Message, periodic: &mut Option<Periodic>) {
    match message {
        Message::GetStatusReport(_) => emit(Message::StatusReport(StatusReport {
            status: "OK".into(),
            clock: now(),
            events: Vec::new(),
            ext: Extensions::new(),
        })),
        Message::GetReport(r) => emit(report(r.from, r.to, r.resolution, &r.signals)),
        Message::Activate(order) => emit(Message::AcceptActivation(order.accept())),
        Message::GetPeriodicReport(p) => {
            *periodic = (!p.disables()).then(|| {
                let interval = Duration::from_secs_f64(p.interval);
                Periodic {
                    interval,
                    resolution: p.resolution,
                    signals: p.signals,
                    due: Instant::now() + interval,
                }
            });
        }
        _ => {}
    }
}

/// A report of made-up values, as many per signal as the period needs (D3.1.3 5.2.3).
fn report(from: Time, to: Time, resolution: f64, signals: &[SignalName]) -> Message {
    let count = (to.since(&from).as_seconds_f64() / resolution)
        .ceil()
        .max(0.0) as usize;
    let values: BTreeMap<SignalName, Vec<f64>> = signals
        .iter()
        .map(|s| (s.clone(), vec![0.5; count]))
        .collect();
    Message::Report(Report {
        from,
        to,
        resolution,
        values,
        heh_id: None,
        ext: Extensions::new(),
    })
}

/// Now, in whole seconds.
fn now() -> Time {
    let instant = time::OffsetDateTime::now_utc();
    Time::from_datetime(instant.replace_nanosecond(0).unwrap_or(instant))
}

fn emit(message: Message) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", message.to_json());
    let _ = out.flush();
}
