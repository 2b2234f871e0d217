//! What metrics add to a client's work, measured without a broker: the per-message count a
//! watched client makes (the same `Observed` call a received or sent message goes through,
//! reached here through `Tally`) and the confirm timing each confirm adds, next to the decode every received message costs anyway (the
//! peer); and one scrape (`Metrics::encode`), which costs per scrape, not per message.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ebadge_bus::metrics::Metrics;
use ebadge_bus::model::Message;

const REPORT: &[u8] = br#"{"msg":"report","from":"2013-07-21T10:00:00.000Z","to":"2013-07-21T10:05:00.000Z","resolution":60,"values":{"total.p":[1.73,1.68,0.43,0.33,0.45]},"heh_id":null}"#;

fn metrics(c: &mut Criterion) {
    let message = Message::decode_slice(REPORT).unwrap();
    let metrics = Metrics::new();
    let tally = metrics.tally("vpp");
    let mut group = c.benchmark_group("metrics");
    group.throughput(Throughput::Elements(1));
    group.bench_function("count one message (watched client)", |b| {
        b.iter(|| tally.received(std::hint::black_box(&message)))
    });
    // Each confirm of a watched client also goes into the publish→confirm histogram.
    let latency =
        prometheus_client::metrics::histogram::Histogram::new([0.001, 0.01, 0.1, 1.0, 5.0]);
    group.bench_function("time one confirm (histogram)", |b| {
        b.iter(|| latency.observe(std::hint::black_box(0.004)))
    });
    group.bench_function("peer: decode the same report", |b| {
        b.iter(|| Message::decode_slice(std::hint::black_box(REPORT)).unwrap())
    });
    group.bench_function("one scrape: encode the exposition", |b| {
        b.iter(|| metrics.encode())
    });
    group.finish();
}

criterion_group!(benches, metrics);
criterion_main!(benches);
