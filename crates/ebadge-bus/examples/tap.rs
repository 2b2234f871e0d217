//! A tap: a live copy of an entity's incoming stream, its inbox untouched. The program taps the
//! VPP's reports, sends one as an HEH, and prints the copy the tap saw. Uses the demo's registry:
//!
//! ```sh
//! ebadge demo --seconds 5                        # provisions vpp and heh-020000000000, among others
//! cargo run -p ebadge-bus --example tap
//! ```
//!
//! From the command line the same is `ebadge tap --as vpp 'report.#'`.

use ebadge_bus::model::Message;
use ebadge_bus::tap::Tap;
use ebadge_bus::{Client, ClientConfig, EntityName, Profile};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let profile = Profile::load(&Profile::locate(None))?;
    let vpp = EntityName::new("vpp")?;
    let mut tap = Tap::open(&profile, &vpp, "report.#").await?;
    println!(
        "tapping {} through {}",
        tap.exchanges().join(", "),
        tap.queue()
    );

    let heh = Client::connect(ClientConfig::new(
        profile.clone(),
        EntityName::new("heh-020000000000")?,
    ))
    .await?;
    let report = Message::decode(
        r#"{"msg":"report","from":"2013-07-21T10:00:00Z","to":"2013-07-21T10:01:00Z","resolution":60,"values":{"total.p":[1.73]},"heh_id":null}"#,
    )?;
    heh.send_confirmed(&vpp, &report).await?;

    match tokio::time::timeout(Duration::from_secs(10), tap.next()).await {
        Ok(Some(seen)) => println!(
            "{} sent {} ({})",
            seen.from,
            seen.routing_key,
            match seen.message {
                Ok(m) => m.to_json(),
                Err(e) => format!("invalid: {e}"),
            }
        ),
        _ => println!("the tap saw nothing within 10 s"),
    }
    heh.close(Duration::from_secs(5)).await;
    tap.close().await;
    Ok(())
}
