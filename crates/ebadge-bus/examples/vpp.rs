//! The VPP side: ask an HEH for a report of the last five minutes, then activate it and print the
//! answer. Run the `heh` example first.
//!
//! ```sh
//! cargo run -p ebadge-bus --example vpp
//! ```

use ebadge_bus::model::{Activate, GetReport, Message, SignalName, Time};
use ebadge_bus::{ActivationOutcome, Client, ClientConfig, EntityName, Profile};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let heh = EntityName::new(
        &std::env::args()
            .nth(1)
            .unwrap_or_else(|| "heh-b827ebea02c1".into()),
    )?;
    let profile = Profile::load(&Profile::locate(None))?;
    let vpp = Client::connect(ClientConfig::new(profile, EntityName::new("vpp")?)).await?;
    let mut inbox = vpp.inbox().expect("a new client has its inbox");

    let now = Time::now();
    let five_minutes_ago = Time::from_datetime(now.datetime() - time::Duration::minutes(5));
    let signals = vec![SignalName::new("total.p")?, SignalName::new("total.q")?];
    let request = GetReport::new(five_minutes_ago, now, 60.0, signals);
    vpp.send(&heh, &Message::GetReport(request))?;
    match tokio::time::timeout(Duration::from_secs(10), inbox.next()).await {
        Ok(Some(incoming)) => {
            println!("{} sent {}", incoming.from, incoming.message.to_json());
            incoming.ack();
        }
        _ => println!("no report within 10 s: is the heh example running?"),
    }

    let start = Time::from_datetime(now.datetime() + time::Duration::minutes(1));
    let end = Time::from_datetime(now.datetime() + time::Duration::minutes(16));
    let order = Activate::new(start, end, 4.5);
    match vpp.activate(&heh, &order, Duration::from_secs(10)).await? {
        ActivationOutcome::Accepted(_) => println!("activation accepted"),
        ActivationOutcome::Rejected(_) => println!("activation rejected"),
        ActivationOutcome::Modified(m) => {
            println!("the HEH offers {} kW instead; agreeing", m.quantity);
            let agreed = m.agree();
            println!(
                "{:?}",
                vpp.activate(&heh, &agreed, Duration::from_secs(10)).await?
            );
        }
        ActivationOutcome::TimedOut => println!("no answer within 10 s"),
    }
    vpp.close(Duration::from_secs(5)).await;
    Ok(())
}
