//! The simulators on the real broker: campaigns re-dispatch, passive mode, periodic reports, and
//! the market sequences with every msg_id answered.

use ebadge_bus::{Client, ClientConfig, EntityName, Profile};
use ebadge_model::*;
use ebadge_sim::heh::{HehSpec, Policy, SimHeh};
use ebadge_sim::market::Market;
use ebadge_sim::vpp::SimVpp;
use std::time::Duration;

fn name(s: &str) -> EntityName {
    EntityName::new(s).unwrap()
}

async fn client(profile: &Profile, who: &str) -> Client {
    let mut config = ClientConfig::new(profile.clone(), name(who));
    config.reconnect_max = Duration::from_secs(1);
    // The testkit's registry: the market's BSPs are in the group m-bsps.
    if who.starts_with("m-bsp") {
        config.groups = vec![name("m-bsps")];
    }
    let client = Client::connect(config).await.unwrap();
    // Leftovers of earlier runs would confuse the counts: drop them (acknowledged) first.
    client
}

async fn heh(
    profile: &Profile,
    who: &str,
    controller: &str,
    capacity_kw: f64,
    policy: Policy,
) -> Client {
    let c = client(profile, who).await;
    let sim = SimHeh::new(HehSpec {
        name: name(who),
        controller: name(controller),
        capacity_kw,
        policy,
    });
    sim.announce(&c).unwrap();
    let serving = c.clone();
    tokio::spawn(async move { sim.serve(&serving).await });
    c
}

async fn wait_for(mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_re_dispatches_rejected_and_reduced_capacity_until_the_target_is_met() {
    let profile = ebadge_testkit::profile().await;
    let vpp = SimVpp::start(client(&profile, "sim-vpp").await);
    let _hehs = [
        heh(&profile, "sim-heh-1", "sim-vpp", 2.0, Policy::Reject).await,
        heh(&profile, "sim-heh-2", "sim-vpp", 1.0, Policy::Modify).await,
        heh(&profile, "sim-heh-3", "sim-vpp", 3.0, Policy::Reject).await,
        heh(&profile, "sim-heh-4", "sim-vpp", 2.0, Policy::Reject).await,
    ];
    assert!(
        wait_for(|| vpp.online().len() == 4).await,
        "{:?}",
        vpp.online()
    );

    // Capacities unknown: the VPP assumes 3 kW each and learns by the answers.
    let result = vpp.campaign(6.0, Duration::from_secs(5), 3.0).await;
    assert_eq!(result.achieved_kw, 6.0, "{result:?}");
    assert_eq!(result.rounds, 2, "{result:?}");
    assert_eq!(
        (result.rejected, result.modified, result.timed_out),
        (1, 1, 0),
        "{result:?}"
    );
    assert_eq!(result.accepted, 3, "{result:?}");

    // With capacities known (activation_capacity), one round does it.
    vpp.ask_capacities().unwrap();
    assert!(
        wait_for(|| vpp
            .state
            .lock()
            .unwrap()
            .online
            .values()
            .all(|h| h.capacity_kw.is_some()))
        .await
    );
    let result = vpp.campaign(7.0, Duration::from_secs(5), 3.0).await;
    assert_eq!(
        (result.achieved_kw, result.rounds, result.rejected),
        (7.0, 1, 0),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passive_heh_ignores_everything_but_set_smart_mode_and_periodic_reports_keep_their_interval()
 {
    let profile = ebadge_testkit::profile().await;
    let ctl = client(&profile, "sim-ctl").await;
    let mut inbox = ctl.inbox().unwrap();
    let _passive = heh(&profile, "sim-heh-5", "sim-ctl", 2.0, Policy::Reject).await;
    let _periodic = heh(&profile, "sim-heh-6", "sim-ctl", 2.0, Policy::Reject).await;
    let (h5, h6) = (name("sim-heh-5"), name("sim-heh-6"));
    // Drop the announcements and leftovers.
    while let Ok(Some(i)) = tokio::time::timeout(Duration::from_millis(500), inbox.next()).await {
        i.ack();
    }

    let mode = |mode| {
        Message::SetSmartMode(SetSmartMode {
            mode,
            reset: false,
            ext: Extensions::new(),
        })
    };
    ctl.send(&h5, &mode(SmartMode::Passive)).unwrap();
    let (from, to) = ebadge_sim::vpp::activation_window();
    let order = Activate::new(from, to, 1.0);
    assert_eq!(
        ctl.activate(&h5, &order, Duration::from_secs(2))
            .await
            .unwrap(),
        ebadge_bus::ActivationOutcome::TimedOut,
        "a passive HEH does not answer activations"
    );
    let status = GetStatusReport {
        from,
        to,
        severity_threshold: 0,
        ext: Extensions::new(),
    };
    ctl.send(&h5, &Message::GetStatusReport(status)).unwrap();
    assert!(
        tokio::time::timeout(Duration::from_secs(2), inbox.next())
            .await
            .is_err(),
        "nor status requests"
    );
    ctl.send(&h5, &mode(SmartMode::Normal)).unwrap();
    assert!(matches!(
        ctl.activate(&h5, &Activate::new(from, to, 1.0), Duration::from_secs(5))
            .await
            .unwrap(),
        ebadge_bus::ActivationOutcome::Accepted(_)
    ));

    // Periodic reports every second, each covering one interval.
    let signals = vec![SignalName::new("total.p").unwrap()];
    let request = GetPeriodicReport::new(1.0, 0.5, signals);
    ctl.send(&h6, &Message::GetPeriodicReport(request.clone()))
        .unwrap();
    let mut reports = Vec::new();
    while reports.len() < 3 {
        let incoming = tokio::time::timeout(Duration::from_secs(5), inbox.next())
            .await
            .unwrap()
            .unwrap();
        incoming.ack();
        if let Message::Report(r) = &incoming.message {
            reports.push(r.clone());
        }
    }
    for r in &reports {
        assert_eq!(r.to.since(&r.from), time::Duration::seconds(1));
        assert_eq!(r.values.values().next().unwrap().len(), 2);
    }
    // interval -1 stops them.
    let mut stop = request.clone();
    stop.interval = -1.0;
    ctl.send(&h6, &Message::GetPeriodicReport(stop)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_market_day_answers_every_msg_id() {
    let profile = ebadge_testkit::profile().await;
    let market = Market::serve(
        client(&profile, "m-tso").await,
        vec![
            client(&profile, "m-bsp1").await,
            client(&profile, "m-bsp2").await,
        ],
        name("m-bsps"),
        client(&profile, "m-super").await,
        client(&profile, "m-tso2").await,
    );
    let s = market.run_day().await;
    assert_eq!(s.unanswered, 0, "{s:?}");
    assert_eq!(
        (
            s.bids,
            s.bids_acknowledged,
            s.bids_accepted,
            s.bids_activated
        ),
        (2, 2, 2, 2),
        "{s:?}"
    );
    assert_eq!(
        s.cleared_seen, 2,
        "both group members saw market_cleared: {s:?}"
    );
    assert_eq!(
        (
            s.balancing_requests,
            s.balancing_activated,
            s.balancing_unachievable
        ),
        (2, 1, 1),
        "{s:?}"
    );
}
