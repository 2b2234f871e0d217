//! The HEH side of D3.2.3 Figure 5, in Rust: answer `get_report` with a report of the requested
//! signals (hard-coded values, as in the seed) and `activate` by accepting up to 3 kW.
//!
//! ```sh
//! ebadge broker up && ebadge provision docs/examples/registry.toml
//! cargo run -p ebadge-bus --example heh            # serves until Ctrl-C
//! ```

use ebadge_bus::model::rules::report_length;
use ebadge_bus::model::{Activate, GetReport, Message, Report};
use ebadge_bus::{Client, ClientConfig, EntityName, Handled, Handler, Incoming, Profile};

/// The HEH: its answers (the tests drive this very handler: `crates/ebadge-bus/tests/examples.rs`).
pub struct Hub;

impl Handler for Hub {
    async fn on_get_report(
        &mut self,
        client: &Client,
        incoming: &Incoming,
        request: &GetReport,
    ) -> Handled {
        let n = report_length(&request.from, &request.to, request.resolution) as usize;
        let sample = [0.12, 0.17, 0.33, 0.0];
        let values = request
            .signals
            .iter()
            .map(|signal| {
                (
                    signal.clone(),
                    (0..n).map(|i| sample[i % sample.len()]).collect(),
                )
            })
            .collect();
        let report = Report {
            from: request.from,
            to: request.to,
            resolution: request.resolution,
            values,
            heh_id: request.heh_id.clone(),
            ext: Default::default(),
        };
        // Sent through the outbox: kept until the broker confirms it, across reconnects.
        if let Err(e) = client.send(&incoming.from, &Message::Report(report)) {
            eprintln!("could not answer: {e}");
        }
        Handled::Yes
    }

    async fn on_activate(
        &mut self,
        client: &Client,
        incoming: &Incoming,
        order: &Activate,
    ) -> Handled {
        let answer = if order.quantity <= 3.0 {
            Message::AcceptActivation(order.accept())
        } else {
            Message::ModifyActivation(order.counter_proposal(order.from, order.to, 3.0))
        };
        let _ = client.send(&incoming.from, &answer);
        Handled::Yes
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "heh-b827ebea02c1".into());
    let profile = Profile::load(&Profile::locate(None))?;
    let client = Client::connect(ClientConfig::new(profile, EntityName::new(&name)?)).await?;
    println!("{name} is listening; Ctrl-C stops it");
    tokio::select! {
        _ = client.serve(Hub) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    println!("counters: {:?}", client.counters());
    client.close(std::time::Duration::from_secs(5)).await;
    Ok(())
}
