//! Codec benchmark: decode+validate and encode of the spec's `report` example, next to a plain
//! `serde_json::Value` parse and print of the same text (the floor any JSON codec pays).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ebadge_model::Message;
use std::hint::black_box;

const REPORT: &str = r#"{"msg": "report", "from": "2013-07-21T10:00:00.000Z", "to": "2013-07-21T10:05:00.000Z", "resolution": 60, "values": {"total.p": [1.73, 1.68, 0.43, 0.33, 0.45], "HeatPump01.p": [1.33, 1.21, 0.02, 0.03, 0.02], "HeatPump01.q": [0.13, 0.11, 0.01, 0.01, 0.01], "total.temperature_outside": [3.2, 3.2, 3.3, 3.5, 3.4]}, "heh_id": null}"#;

fn codec(c: &mut Criterion) {
    let message = Message::decode(REPORT).expect("the spec's report example is valid");
    let value: serde_json::Value = serde_json::from_str(REPORT).unwrap();
    let mut group = c.benchmark_group("report");
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode+validate", |b| {
        b.iter(|| Message::decode(black_box(REPORT)).unwrap())
    });
    group.bench_function("encode (validate+write)", |b| {
        b.iter(|| black_box(&message).encode().unwrap())
    });
    group.bench_function("encode (write only)", |b| {
        b.iter(|| black_box(&message).to_json())
    });
    group.bench_function("peer: serde_json Value parse", |b| {
        b.iter(|| serde_json::from_str::<serde_json::Value>(black_box(REPORT)).unwrap())
    });
    group.bench_function("peer: serde_json Value print", |b| {
        b.iter(|| serde_json::to_string(black_box(&value)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
