//! Sending to a group: one message, one exchange (`<sender>-to-<group>`), every member receives a
//! copy in its own inbox. The TSO announces `market_cleared` to the group `bsps`; each of its
//! three members prints what it got. Uses the demo's registry:
//!
//! ```sh
//! ebadge demo --seconds 5                        # provisions the group bsps (bsp-a, bsp-b, bsp-c)
//! cargo run -p ebadge-bus --example group
//! ```

use ebadge_bus::model::{Extensions, MarketCleared, Message, Product, Time};
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
    let tso = connect("north-tso").await?;
    let members = [
        connect("bsp-a").await?,
        connect("bsp-b").await?,
        connect("bsp-c").await?,
    ];

    let now = Time::now().datetime();
    let cleared = MarketCleared {
        product: Product::new(
            true,
            Time::from_datetime(now + time::Duration::hours(24)),
            Time::from_datetime(now + time::Duration::hours(25)),
        ),
        ext: Extensions::new(),
    };
    // A group is addressed like an entity: by its name.
    tso.send_confirmed(&EntityName::new("bsps")?, &Message::MarketCleared(cleared))
        .await?;

    for member in &members {
        let mut inbox = member.inbox().expect("a new client has its inbox");
        // Skip what earlier runs left: the first market_cleared of this run is ours.
        while let Ok(Some(incoming)) =
            tokio::time::timeout(Duration::from_secs(10), inbox.next()).await
        {
            incoming.ack();
            if matches!(incoming.message, Message::MarketCleared(_)) {
                println!(
                    "{} got market_cleared from {} through {}",
                    member.name(),
                    incoming.from,
                    incoming.exchange
                );
                break;
            }
        }
        member.close(Duration::from_secs(5)).await;
    }
    tso.close(Duration::from_secs(5)).await;
    Ok(())
}
