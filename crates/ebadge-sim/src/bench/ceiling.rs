//! The ceilings: the benchmarks' traffic through raw amqprs, without our layer (no validation, no
//! outbox, no dedupe, no matching of answers to requests). What is left is the broker's work: the
//! figure ours is compared with.
//!
//! - ingest: publishers in confirm mode with nothing but `user_id` and `message_id` as properties
//!   ([`publish`]), and a VPP that only acknowledges ([`consume`]);
//! - activations: the same topology and traffic as [`super::burst::burst`]. Each HEH is its own TLS
//!   connection with its own certificate, consumes its inbox with manual acknowledgements and
//!   answers every activation with a persistent message on its pair exchange ([`fleet`]); the VPP
//!   publishes persistent activations in confirm mode, dealt over as many connections as ours
//!   publishes on, and consumes the answers on another ([`burst`]).

use super::burst::{ActivationReport, Answers, BurstWatch, FleetPlacement};
use super::measure::{Arrivals, CpuWatch, unix_nanos, wait_until_quiet};
use super::{BENCH_VPP, BenchError, bench_heh, bench_vpp, broker, connect_error, stamped_report};
use crate::fleet::FleetError;
use amqprs::BasicProperties;
use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicPublishArguments, BasicQosArguments,
    ConfirmSelectArguments,
};
use amqprs::connection::Connection;
use ebadge_bus::conventions::{inbox_queue, pair_exchange};
use ebadge_bus::{EntityName, Profile};
use ebadge_model::{Activate, Message};
use std::time::{Duration, Instant};

/// The raw VPP of `ingest`: consumes `count` messages from its inbox and acknowledges each,
/// nothing more; calls `ready` once it consumes. The latency comes from the publisher's
/// `message_id`, its send time.
pub async fn consume(
    profile: &Profile,
    count: u64,
    ready: impl FnOnce(),
) -> Result<Arrivals, BenchError> {
    let mut arrivals = Arrivals::with_capacity(count as usize);
    let conn = ebadge_bus::amqp::connect(profile, BENCH_VPP)
        .await
        .map_err(connect_error(BENCH_VPP))?;
    let channel = conn
        .open_channel(None)
        .await
        .map_err(broker("opening a channel"))?;
    channel
        .basic_qos(BasicQosArguments::new(0, 1000, false))
        .await
        .map_err(broker("setting the prefetch"))?;
    let (_, mut rx) = channel
        .basic_consume_rx(BasicConsumeArguments::new(
            &inbox_queue(&bench_vpp()),
            "raw",
        ))
        .await
        .map_err(broker("consuming the inbox"))?;
    ready();
    while arrivals.count() < count {
        let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await else {
            break;
        };
        let now = unix_nanos();
        let Some((deliver, props)) = d.deliver.zip(d.basic_properties) else {
            arrivals.arrived(now, None);
            continue;
        };
        let sent = props.message_id().and_then(|m| m.parse::<u64>().ok());
        arrivals.arrived(now, sent);
        let _ = channel
            .basic_ack(BasicAckArguments::new(deliver.delivery_tag(), false))
            .await;
    }
    Ok(arrivals)
}

/// One raw publisher of `ingest` as HEH `name`: connects, waits at `gate` with the others
/// (connected or not, so that a failure cannot leave them waiting), publishes `per_heh` stamped
/// reports at the pace `pace` makes, then waits up to two minutes for their confirms.
pub async fn publish(
    profile: &Profile,
    name: &EntityName,
    per_heh: u64,
    gate: &tokio::sync::Barrier,
    pace: impl FnOnce() -> tokio::time::Interval,
) -> Result<(), BenchError> {
    let setup = publisher(profile, name).await;
    gate.wait().await;
    let (conn, channel, mut acked) = setup?;
    let exchange = pair_exchange(name, &bench_vpp());
    let mut pace = pace();
    for _ in 0..per_heh {
        pace.tick().await;
        let sent = unix_nanos();
        let body = stamped_report(sent).to_json().into_bytes();
        let mut props = BasicProperties::default();
        props
            .with_persistence(true)
            .with_message_id(&sent.to_string())
            .with_user_id(name.as_str());
        channel
            .basic_publish(props, body, BasicPublishArguments::new(&exchange, "report"))
            .await
            .map_err(broker("publishing"))?;
    }
    let _ = tokio::time::timeout(Duration::from_secs(120), acked.wait_for(|n| *n >= per_heh)).await;
    let _ = conn.close().await;
    Ok(())
}

/// A raw amqprs publisher in confirm mode, and the highest delivery tag confirmed so far.
async fn publisher(
    profile: &Profile,
    name: &EntityName,
) -> Result<
    (
        amqprs::connection::Connection,
        amqprs::channel::Channel,
        tokio::sync::watch::Receiver<u64>,
    ),
    BenchError,
> {
    let conn = ebadge_bus::amqp::connect(profile, name.as_str())
        .await
        .map_err(connect_error(name.as_str()))?;
    let channel = conn
        .open_channel(None)
        .await
        .map_err(broker("opening a channel"))?;
    // Same guarantee as our layer: publisher confirms, waited for before closing.
    let (acked_tx, acked) = tokio::sync::watch::channel(0u64);
    channel
        .register_callback(ConfirmCounter(acked_tx))
        .await
        .map_err(broker("registering the confirm callback"))?;
    channel
        .confirm_select(amqprs::channel::ConfirmSelectArguments::default())
        .await
        .map_err(broker("selecting confirm mode"))?;
    Ok((conn, channel, acked))
}

/// Counts the highest confirmed delivery tag of a raw publisher.
struct ConfirmCounter(tokio::sync::watch::Sender<u64>);

#[async_trait::async_trait]
impl amqprs::callbacks::ChannelCallback for ConfirmCounter {
    async fn close(
        &mut self,
        _: &amqprs::channel::Channel,
        _: amqprs::CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        Ok(())
    }
    async fn cancel(
        &mut self,
        _: &amqprs::channel::Channel,
        _: amqprs::Cancel,
    ) -> Result<(), amqprs::error::Error> {
        Ok(())
    }
    async fn flow(
        &mut self,
        _: &amqprs::channel::Channel,
        active: bool,
    ) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _: &amqprs::channel::Channel, ack: amqprs::Ack) {
        self.0.send_modify(|n| *n = (*n).max(ack.delivery_tag()));
    }
    async fn publish_nack(&mut self, _: &amqprs::channel::Channel, _: amqprs::Nack) {}
    async fn publish_return(
        &mut self,
        _: &amqprs::channel::Channel,
        _: amqprs::Return,
        _: amqprs::BasicProperties,
        _: Vec<u8>,
    ) {
    }
}

/// Connects `name` over TLS with its certificate, with the fleet's patience (a node busy with a
/// connection storm answers late).
async fn connect(profile: &Profile, name: &str) -> Result<Connection, FleetError> {
    ebadge_bus::amqp::connect_patiently(
        profile,
        name,
        crate::fleet::CONNECT_PATIENCE,
        (Duration::from_millis(200), Duration::from_secs(5)),
    )
    .await
    .map_err(|source| FleetError::Connect {
        name: name.into(),
        source,
    })
}

/// One raw HEH: answers each activation, then acknowledges it.
async fn raw_heh(profile: Profile, index: usize) -> Result<Connection, FleetError> {
    let heh = bench_heh(index);
    let connection = connect(&profile, heh.as_str()).await?;
    let fail = |e: amqprs::error::Error| FleetError::Process(format!("raw HEH {heh}: {e}"));
    let channel = connection.open_channel(None).await.map_err(fail)?;
    channel
        .confirm_select(ConfirmSelectArguments::default())
        .await
        .map_err(fail)?;
    channel
        .basic_qos(BasicQosArguments::new(0, 50, false))
        .await
        .map_err(fail)?;
    let queue = inbox_queue(&heh);
    let mut args = BasicConsumeArguments::new(&queue, "");
    args.manual_ack(true);
    let (_, mut deliveries) = channel.basic_consume_rx(args).await.map_err(fail)?;
    let answer = br#"{"msg":"reject_activation","id":"raw","modification_count":0}"#.to_vec();
    let exchange = pair_exchange(&heh, &bench_vpp());
    tokio::spawn(async move {
        while let Some(delivery) = deliveries.recv().await {
            let (Some(deliver), Some(props)) = (delivery.deliver, delivery.basic_properties) else {
                continue;
            };
            let mut reply = BasicProperties::default();
            reply
                .with_persistence(true)
                .with_user_id(heh.as_str())
                .with_correlation_id(props.message_id().map_or("", String::as_str));
            let published = channel
                .basic_publish(
                    reply,
                    answer.clone(),
                    BasicPublishArguments::new(&exchange, "reject_activation"),
                )
                .await;
            let acked = channel
                .basic_ack(BasicAckArguments::new(deliver.delivery_tag(), false))
                .await;
            if published.is_err() || acked.is_err() {
                break;
            }
        }
    });
    Ok(connection)
}

/// Connects raw HEHs `first..first + count` (as [`crate::fleet::Fleet::start`] connects ours:
/// the `i`th with `profiles[i % profiles.len()]`, at most
/// [`crate::fleet::HANDSHAKES_PER_NODE`] handshakes at once with each), reporting
/// each one connected to `progress`: a raw fleet, here or in a fleet process of its own.
pub async fn fleet(
    profiles: &[Profile],
    first: usize,
    count: usize,
    progress: impl Fn(usize),
) -> Result<Vec<Connection>, FleetError> {
    let gates = crate::fleet::NodeGates::new(profiles.len(), crate::fleet::HANDSHAKES_PER_NODE);
    let mut joins = tokio::task::JoinSet::new();
    for (n, i) in (first..first + count).enumerate() {
        let (profile, gate) = (profiles[n % profiles.len()].clone(), gates.of(n));
        joins.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("never closed");
            raw_heh(profile, i).await
        });
    }
    let mut fleet = Vec::with_capacity(count);
    while let Some(joined) = joins.join_next().await {
        fleet.push(joined.map_err(|e| FleetError::Process(e.to_string()))??);
        progress(fleet.len());
    }
    Ok(fleet)
}

/// Sends each of `hehs` raw HEHs (connected here or in fleet processes: `placement`) an
/// activation at once from a raw VPP, dealt round robin over `publish_connections` connections
/// (at least one), and waits (up to `watch.wait`) for every answer. The caller empties the VPP's
/// inbox first.
pub async fn burst<F>(
    profile: &Profile,
    hehs: usize,
    publish_connections: usize,
    placement: FleetPlacement<F>,
    watch: &BurstWatch,
    note: &dyn Fn(&str),
) -> Result<ActivationReport, FleetError>
where
    F: std::future::Future<Output = Result<f64, FleetError>>,
{
    let started = Instant::now();
    let fleet = match placement {
        FleetPlacement::InProcess(progress) => {
            fleet(std::slice::from_ref(profile), 0, hehs, progress).await?
        }
        FleetPlacement::External(ready) => {
            ready.await?;
            Vec::new()
        }
    };
    let connect_seconds = started.elapsed().as_secs_f64();

    let fail = |e: amqprs::error::Error| FleetError::Process(format!("raw VPP: {e}"));
    let consuming = connect(profile, BENCH_VPP).await?;
    let mut publishing = Vec::new();
    let mut channels = Vec::new();
    for _ in 0..publish_connections.max(1) {
        let connection = connect(profile, BENCH_VPP).await?;
        let channel = connection.open_channel(None).await.map_err(fail)?;
        channel
            .confirm_select(ConfirmSelectArguments::default())
            .await
            .map_err(fail)?;
        publishing.push(connection);
        channels.push(channel);
    }
    let consume = consuming.open_channel(None).await.map_err(fail)?;
    consume
        .basic_qos(BasicQosArguments::new(0, 1000, false))
        .await
        .map_err(fail)?;
    let mut args = BasicConsumeArguments::new(&inbox_queue(&bench_vpp()), "");
    args.manual_ack(true);
    let (_, mut answers) = consume.basic_consume_rx(args).await.map_err(fail)?;

    let (from, to) = crate::vpp::activation_window();
    let body = Message::Activate(Activate::new(from, to, 1.0))
        .to_json()
        .into_bytes();
    let vpp = bench_vpp();
    let quiet = wait_until_quiet(&watch.roles.broker, watch.quiet_wait, note).await;
    note("the burst starts");
    let cpu = CpuWatch::start(watch.roles.clone());
    let burst = Instant::now();
    let mut sent_at = Vec::with_capacity(hehs);
    for i in 0..hehs {
        let mut props = BasicProperties::default();
        props
            .with_persistence(true)
            .with_user_id(BENCH_VPP)
            .with_message_id(&i.to_string());
        sent_at.push(burst.elapsed());
        channels[i % channels.len()]
            .basic_publish(
                props,
                body.clone(),
                BasicPublishArguments::new(&pair_exchange(&vpp, &bench_heh(i)), "activate"),
            )
            .await
            .map_err(fail)?;
    }
    let mut got = Answers::with_capacity(hehs);
    let deadline = tokio::time::Instant::from_std(burst) + watch.wait;
    while got.trips.len() < hehs {
        let Ok(Some(delivery)) = tokio::time::timeout_at(deadline, answers.recv()).await else {
            break;
        };
        let (Some(deliver), Some(props)) = (delivery.deliver, delivery.basic_properties) else {
            continue;
        };
        if let Some(i) = props
            .correlation_id()
            .and_then(|c| c.parse::<usize>().ok())
            .filter(|i| *i < hehs)
        {
            let at = burst.elapsed();
            got.answered(at - sent_at[i], at);
        }
        consume
            .basic_ack(BasicAckArguments::new(deliver.delivery_tag(), false))
            .await
            .map_err(fail)?;
    }
    let seconds = burst.elapsed().as_secs_f64();
    let cpu = cpu.split();
    for connection in fleet.into_iter().chain([consuming]).chain(publishing) {
        let _ = connection.close().await;
    }
    Ok(ActivationReport {
        cpu: Some(cpu),
        quiet,
        ..ActivationReport::of_burst(hehs, connect_seconds, seconds, got, watch.wait)
    })
}
