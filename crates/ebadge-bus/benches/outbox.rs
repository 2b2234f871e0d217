//! The durable outbox's cost per message (one send stored, then its confirm removing it), with
//! `synchronous = FULL` (survives a power cut) and `NORMAL` (survives a process crash), next to
//! the in-memory outbox (the peer: no disk at all). The file lives in `target/`, on the
//! machine's disk (not /tmp, which may be memory), so fsyncs cost what they cost there. Then
//! confirms out of order, as they come from several publishing connections.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ebadge_bus::outbox::{Outbox, OutboxSync, Outgoing};
use std::path::PathBuf;

fn message() -> Outgoing {
    Outgoing {
        seq: 0,
        exchange: "heh-b827ebea02c1-to-ts".into(),
        routing_key: "report".into(),
        message_id: "0b8c9a52-6f1e-4bb1-9d0e-2f6f8a1c7d3e".into(),
        msg_type: "report".into(),
        body: br#"{"msg":"report","from":"2013-07-21T10:00:00.000Z","to":"2013-07-21T10:05:00.000Z","resolution":60,"values":{"total.p":[1.73,1.68,0.43,0.33,0.45]},"heh_id":null}"#.to_vec(),
        headers: Vec::new(),
    }
}

fn dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/tmp/outbox-bench");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn outbox(c: &mut Criterion) {
    let mut group = c.benchmark_group("outbox send+confirm");
    group.throughput(Throughput::Elements(1));
    let round_trip = |outbox: &mut Outbox| {
        let stored = outbox.push(message()).unwrap();
        outbox.confirm(stored.seq).unwrap();
    };
    for (name, sync) in [
        ("durable FULL", OutboxSync::Full),
        ("durable NORMAL", OutboxSync::Normal),
    ] {
        let path = dir().join(format!("{}.sqlite", name.replace(' ', "-")));
        let _ = std::fs::remove_file(&path);
        let mut outbox = Outbox::durable(&path, 100_000, sync).unwrap();
        group.bench_function(name, |b| b.iter(|| round_trip(&mut outbox)));
    }
    let mut memory = Outbox::in_memory(100_000);
    group.bench_function("peer: in memory", |b| b.iter(|| round_trip(&mut memory)));
    group.finish();

    // A VPP's burst over four publishing connections: 20,000 waiting, confirmed lane by lane,
    // so each confirm takes a message from the middle of the outbox.
    let mut group = c.benchmark_group("outbox 20,000 confirmed over four lanes");
    group.throughput(Throughput::Elements(20_000));
    group.sample_size(20);
    group.bench_function("in memory", |b| {
        b.iter_batched(
            || {
                let mut outbox = Outbox::in_memory(100_000);
                for _ in 0..20_000 {
                    outbox.push(message()).unwrap();
                }
                outbox
            },
            |mut outbox| {
                for lane in 0..4 {
                    for seq in (1 + lane..=20_000).step_by(4) {
                        outbox.confirm(seq).unwrap();
                    }
                }
                assert!(outbox.is_empty());
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, outbox);
criterion_main!(benches);
