//! Market request and response (D3.1.3 6.1.2): a BSP sends a balancing reserve bid to its TSO and
//! waits for the TSO's `response`; the TSO, in the same program, answers every message that
//! carries a `msg_id` with 200 OK. Uses the demo's market actors:
//!
//! ```sh
//! ebadge demo --seconds 5                        # provisions bsp-a and north-tso, among others
//! cargo run -p ebadge-bus --example market
//! ```

use ebadge_bus::model::{BalancingReserveBid, Message, Product, Time};
use ebadge_bus::{Client, ClientConfig, EntityName, Profile};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let profile = Profile::load(&Profile::locate(None))?;
    let connect = |name: &str| {
        let mut config = ClientConfig::new(profile.clone(), EntityName::new(name).expect("a name"));
        // The BSPs are members of the group bsps: its messages are addressed to them too.
        if name.starts_with("bsp-") {
            config.groups = vec![EntityName::new("bsps").expect("a name")];
        }
        Client::connect(config)
    };
    let (tso, bsp) = (connect("north-tso").await?, connect("bsp-a").await?);

    // The TSO: acknowledge what it receives.
    let mut tso_inbox = tso.inbox().expect("a new client has its inbox");
    let answering = tso.clone();
    tokio::spawn(async move {
        while let Some(incoming) = tso_inbox.next().await {
            println!(
                "north-tso got {} from {}",
                incoming.message.type_name(),
                incoming.from
            );
            let _ = answering.respond_ok(&incoming);
            incoming.ack();
        }
    });

    // The BSP: a bid for tomorrow's first hour, and the wait for its response.
    let now = Time::now().datetime();
    let product = Product::new(
        true,
        Time::from_datetime(now + time::Duration::hours(24)),
        Time::from_datetime(now + time::Duration::hours(25)),
    );
    let bid = BalancingReserveBid::new(product, 5.0, 10.0, 80.0);
    match bsp
        .request(
            tso.name(),
            &Message::BalancingReserveBid(bid),
            Duration::from_secs(10),
        )
        .await?
    {
        Some(response) => println!(
            "bsp-a: the TSO answered {} {}",
            response.response_code, response.response_desc
        ),
        None => println!("bsp-a: no response within 10 s"),
    }
    bsp.close(Duration::from_secs(5)).await;
    tso.close(Duration::from_secs(5)).await;
    Ok(())
}
