//! The durable outbox: sends survive a broker outage and a restart of the program. The HEH starts
//! without waiting for the broker (`FirstConnection::Background`), sends three reports, and waits up to 5 s for
//! the broker's confirms. With the broker down they stay in the SQLite file; the next run, with
//! the broker up, sends them first.
//!
//! ```sh
//! ebadge demo --seconds 5                        # provisions vpp and heh-020000000000
//! ebadge broker down                             # an outage
//! cargo run -p ebadge-bus --example durable_outbox   # "3 still in the outbox"
//! ebadge broker up
//! cargo run -p ebadge-bus --example durable_outbox   # "6 confirmed": the last run's three too
//! ```

use ebadge_bus::model::Message;
use ebadge_bus::{Client, ClientConfig, EntityName, FirstConnection, Profile};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let profile = Profile::load(&Profile::locate(None))?;
    let mut config = ClientConfig::new(profile, EntityName::new("heh-020000000000")?);
    config.durable_outbox = Some(std::env::temp_dir().join("ebadge-example-outbox.sqlite"));
    config.first_connection = FirstConnection::Background;
    let heh = Client::connect(config).await?;
    let report = Message::decode(
        r#"{"msg":"report","from":"2013-07-21T10:00:00Z","to":"2013-07-21T10:01:00Z","resolution":60,"values":{"total.p":[1.73]},"heh_id":null}"#,
    )?;
    let vpp = EntityName::new("vpp")?;
    for _ in 0..3 {
        heh.send(&vpp, &report)?;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), heh.flush()).await;
    let counters = heh.counters();
    println!(
        "{} confirmed, {} still in the outbox",
        counters.confirmed, counters.buffered
    );
    heh.close(Duration::ZERO).await;
    Ok(())
}
