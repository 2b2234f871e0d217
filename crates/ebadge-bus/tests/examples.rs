//! The examples' code under test, not a copy of it: the HEH of `examples/heh.rs` (its very
//! `Hub`, included from the example's file) answers a VPP on the real broker, as the `vpp`
//! example asks it. (`crates/ebadge/tests/client_cli.rs` also runs every example program
//! against the demo's broker.)

mod common;

#[path = "../examples/heh.rs"]
#[allow(dead_code)]
mod heh_example;

use common::*;
use ebadge_bus::ActivationOutcome;
use ebadge_bus::model::rules::report_length;
use ebadge_model::{Activate, GetReport, Message, SignalName, Time};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heh_example_reports_the_signals_asked_for_and_counter_proposes_above_3_kw() {
    let profile = profile().await;
    let heh = client(&profile, "example-heh").await;
    let serving = heh.clone();
    tokio::spawn(async move { serving.serve(heh_example::Hub).await });
    let vpp = client(&profile, "example-vpp").await;
    let mut inbox = vpp.inbox().unwrap();
    drain(&mut inbox).await;
    let to = name("example-heh");

    let from = Time::parse("2030-01-01T10:00:00Z").unwrap();
    let until = Time::parse("2030-01-01T10:05:00Z").unwrap();
    let signals = vec![
        SignalName::new("total.p").unwrap(),
        SignalName::new("total.q").unwrap(),
    ];
    vpp.send(
        &to,
        &Message::GetReport(GetReport::new(from, until, 60.0, signals.clone())),
    )
    .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), inbox.next())
        .await
        .expect("the example answers within 10 s")
        .unwrap();
    answer.ack();
    let Message::Report(report) = &answer.message else {
        panic!("not a report: {:?}", answer.message);
    };
    assert_eq!(
        (report.from, report.to, report.resolution),
        (from, until, 60.0)
    );
    let n = report_length(&from, &until, 60.0) as usize;
    assert_eq!(n, 5);
    assert_eq!(report.values.keys().cloned().collect::<Vec<_>>(), signals);
    for values in report.values.values() {
        assert_eq!(values, &[0.12, 0.17, 0.33, 0.0, 0.12]);
    }

    let order = |quantity| Activate::new(from, until, quantity);
    let wait = Duration::from_secs(10);
    let small = order(2.0);
    assert!(matches!(
        vpp.activate(&to, &small, wait).await.unwrap(),
        ActivationOutcome::Accepted(a) if a.id == small.id
    ));
    match vpp.activate(&to, &order(4.5), wait).await.unwrap() {
        ActivationOutcome::Modified(m) => {
            assert_eq!(m.quantity, 3.0);
            // Agreeing to the counter-proposal: 3 kW is accepted.
            let agreed = m.agree();
            assert!(matches!(
                vpp.activate(&to, &agreed, wait).await.unwrap(),
                ActivationOutcome::Accepted(_)
            ));
        }
        other => panic!("{other:?}"),
    }
}
