//! The HEH agent on the real broker: a device program in a few lines of shell answers an
//! activation and reports; an activation ends at its `to`; the failsafe applies when the link is
//! cut or stalled during an activation, and the controller hears of it when the bus is back.
//! Across a restart of the agent (killed during an activation, started again without the bus)
//! the activation still ends; a device that stops reading its input does not stop the failsafe;
//! a consumer the broker cancels while the connection stays up counts as the bus gone.

use ebadge_bus::model::{Activate, Message, Time};
use ebadge_bus::{ActivationOutcome, Client, ClientConfig, EntityName, Profile};
use ebadge_heh::agent;
use ebadge_heh::command::CommandDevice;
use ebadge_heh::failsafe::{ACTIVATION_END, BUS_BACK, Behaviour, FAILSAFE, FailsafeConfig};
use ebadge_testkit::proxy::Proxy;
use std::time::Duration;
use tokio::sync::mpsc;

fn name(s: &str) -> EntityName {
    EntityName::new(s).unwrap()
}

async fn client(profile: &Profile, who: &str) -> Client {
    let mut config = ClientConfig::new(profile.clone(), name(who));
    config.reconnect_max = Duration::from_secs(1);
    Client::connect(config).await.unwrap()
}

fn via(profile: &Profile, proxy: &Proxy) -> Profile {
    let mut p = profile.clone();
    p.amqps_url = format!("amqps://localhost:{}", proxy.addr.port());
    p
}

fn broker_addr(profile: &Profile) -> std::net::SocketAddr {
    let (_, port) = profile.host_and_port().unwrap();
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}

mod common;
use common::{accepted, next_status_report, order_for, start_agent_with, status_report, told};

/// Runs the agent for `heh` with a [`Recorder`] as its device and a 2-s failsafe; returns its
/// task and what the device is told.
fn start_agent(
    heh: Client,
    controller: &str,
    behaviour: Behaviour,
) -> (
    tokio::task::JoinHandle<Result<(), agent::AgentError>>,
    mpsc::UnboundedReceiver<Message>,
) {
    let failsafe = FailsafeConfig {
        after: time::Duration::seconds(2),
        behaviour,
    };
    start_agent_with(heh, controller, failsafe)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_program_in_shell_answers_an_activation_and_reports() {
    let profile = ebadge_testkit::profile().await;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("device.sh");
    // The HEH guide's device: a report at start, then an answer to every activation.
    std::fs::write(
        &script,
        r#"#!/bin/sh
echo '{"msg":"report","from":"2030-01-01T10:00:00Z","to":"2030-01-01T10:01:00Z","resolution":60,"values":{"total.p":[1.5]},"heh_id":null}'
echo 'this line is not a message: skipped with a warning'
while read -r line; do
  case "$line" in
    *'"msg":"activate"'*)
      id=$(printf '%s' "$line" | sed 's/.*"id":"\([^"]*\)".*/\1/')
      n=$(printf '%s' "$line" | sed 's/.*"modification_count":\([0-9]*\).*/\1/')
      printf '{"msg":"accept_activation","id":"%s","modification_count":%s}\n' "$id" "$n" ;;
  esac
done
"#,
    )
    .unwrap();
    ebadge_testkit::drain_inbox(&profile, "agent-cmd-vpp").await;
    let vpp = client(&profile, "agent-cmd-vpp").await;
    let mut inbox = vpp.inbox().unwrap();
    let heh = client(&profile, "agent-cmd-heh").await;
    let mut device = CommandDevice::start(&["sh".into(), script.display().to_string()]).unwrap();
    let running = tokio::spawn(async move {
        let failsafe = FailsafeConfig {
            after: time::Duration::seconds(60),
            behaviour: Behaviour::End,
        };
        agent::run(&heh, &name("agent-cmd-vpp"), &mut device, failsafe).await
    });

    let report = tokio::time::timeout(Duration::from_secs(20), inbox.next())
        .await
        .expect("the device's report arrives")
        .unwrap();
    report.ack();
    assert_eq!(report.message.type_name(), "report");
    assert_eq!(report.from.as_str(), "agent-cmd-heh");

    let order = order_for(60);
    accepted(&vpp, &name("agent-cmd-heh"), &order).await;
    running.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activation_ends_at_its_to_and_a_cut_link_applies_the_failsafe_then_reports_it() {
    let profile = ebadge_testkit::profile().await;
    let proxy = Proxy::start(broker_addr(&profile)).await.unwrap();
    let vpp = client(&profile, "agent-vpp").await;
    let heh = client(&via(&profile, &proxy), "agent-heh").await;
    let (running, mut seen) = start_agent(heh, "agent-vpp", Behaviour::End);
    let heh_name = name("agent-heh");

    // A short activation ends at its `to`, the bus up all along.
    let short = order_for(3);
    accepted(&vpp, &heh_name, &short).await;
    let end = told(&mut seen, ACTIVATION_END, Duration::from_secs(10)).await;
    assert!(
        end.to_json().contains(short.id.as_str()),
        "{}",
        end.to_json()
    );

    // A long one, then the link is cut: after 2 s the device ends it.
    let long = order_for(600);
    accepted(&vpp, &heh_name, &long).await;
    proxy.cut();
    let failsafe = told(&mut seen, FAILSAFE, Duration::from_secs(15)).await;
    let text = failsafe.to_json();
    assert!(
        text.contains(r#""action":"end""#) && text.contains(long.id.as_str()),
        "{text}"
    );

    // Back: the device hears it, the controller gets the outage in a status report.
    proxy.restore();
    told(&mut seen, BUS_BACK, Duration::from_secs(30)).await;
    let report = status_report(&vpp).await;
    assert_eq!(report.status, "failsafe");
    let kinds: Vec<&str> = report.events.iter().map(|e| e.r#type.as_str()).collect();
    assert_eq!(kinds, ["network_down", "failsafe_end", "network_up"]);
    running.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_link_during_an_activation_holds_the_failsafe_limit() {
    let profile = ebadge_testkit::profile().await;
    let proxy = Proxy::start(broker_addr(&profile)).await.unwrap();
    let vpp = client(&profile, "agent-stall-vpp").await;
    // Heartbeats every 2 s: a silent link is noticed within a few seconds.
    let mut stalled = via(&profile, &proxy);
    stalled.heartbeat_seconds = Some(2);
    let heh = client(&stalled, "agent-stall-heh").await;
    let (running, mut seen) =
        start_agent(heh, "agent-stall-vpp", Behaviour::Limit { limit_kw: 0.5 });
    let order = order_for(600);
    accepted(&vpp, &name("agent-stall-heh"), &order).await;
    proxy.stall();
    let failsafe = told(&mut seen, FAILSAFE, Duration::from_secs(30)).await;
    let text = failsafe.to_json();
    assert!(
        text.contains(r#""action":"limit""#) && text.contains(r#""limit_kw":0.5"#),
        "{text}"
    );
    proxy.restore();
    told(&mut seen, BUS_BACK, Duration::from_secs(60)).await;
    let report = status_report(&vpp).await;
    let kinds: Vec<&str> = report.events.iter().map(|e| e.r#type.as_str()).collect();
    assert_eq!(kinds, ["network_down", "failsafe_limit", "network_up"]);
    running.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_during_an_activation_applies_the_failsafe_and_the_controller_hears_of_it()
{
    let broker = ebadge_testkit::private_broker("ebadge-restart-broker").await;
    let profile = Profile::load(&broker.profile_path()).unwrap();
    let vpp = client(&profile, "agent-restart-vpp").await;
    let heh = client(&profile, "agent-restart-heh").await;
    let (running, mut seen) = start_agent(heh, "agent-restart-vpp", Behaviour::End);
    let order = order_for(600);
    accepted(&vpp, &name("agent-restart-heh"), &order).await;

    let stopping = broker.clone();
    tokio::task::spawn_blocking(move || stopping.down().unwrap())
        .await
        .unwrap();
    let failsafe = told(&mut seen, FAILSAFE, Duration::from_secs(30)).await;
    assert!(
        failsafe.to_json().contains(order.id.as_str()),
        "{}",
        failsafe.to_json()
    );
    broker.up(&Default::default()).await.unwrap();
    told(&mut seen, BUS_BACK, Duration::from_secs(60)).await;
    let report = status_report(&vpp).await;
    let kinds: Vec<&str> = report.events.iter().map(|e| e.r#type.as_str()).collect();
    assert_eq!(kinds, ["network_down", "failsafe_end", "network_up"]);
    running.abort();
    broker.down().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_heh_as_device_announces_itself_answers_its_controller_and_hears_the_agent() {
    use ebadge_bus::model::GetStatusReport;
    use ebadge_sim::heh::{HehSpec, Policy, SimDevice};

    let profile = ebadge_testkit::profile().await;
    ebadge_testkit::drain_inbox(&profile, "agent-sim-vpp").await;
    let vpp = client(&profile, "agent-sim-vpp").await;
    let heh = client(&profile, "agent-sim-heh").await;
    let mut device = SimDevice::new(HehSpec {
        name: name("agent-sim-heh"),
        controller: name("agent-sim-vpp"),
        capacity_kw: 2.0,
        policy: Policy::Modify,
    });
    let failsafe = FailsafeConfig {
        after: time::Duration::seconds(60),
        behaviour: Behaviour::End,
    };
    let controller = name("agent-sim-vpp");
    let heh_name = name("agent-sim-heh");
    let mut inbox = vpp.inbox().unwrap();

    let steps = async {
        // The announcements: capabilities and one device_capabilities per device.
        let mut announced = Vec::new();
        while announced.len() < 4 {
            let incoming = tokio::time::timeout(Duration::from_secs(20), inbox.next())
                .await
                .expect("the announcements arrive")
                .unwrap();
            incoming.ack();
            assert_eq!(incoming.from, heh_name);
            announced.push(incoming.message.type_name().to_owned());
        }
        assert_eq!(
            announced,
            [
                "capabilities",
                "device_capabilities",
                "device_capabilities",
                "device_capabilities"
            ]
        );

        // 1 kW of a 2-kW HEH is accepted; 5 kW gets a counter-proposal of 2 kW.
        let within = order_for(2);
        accepted(&vpp, &heh_name, &within).await;
        let mut beyond = order_for(2);
        beyond.quantity = 5.0;
        let outcome = vpp
            .activate(&heh_name, &beyond, Duration::from_secs(20))
            .await
            .unwrap();
        let ActivationOutcome::Modified(proposal) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!((&proposal.id, proposal.quantity), (&beyond.id, 2.0));

        // A request without a helper: sent, and the answer read from the inbox.
        let now = Time::now();
        let ask = GetStatusReport {
            from: now.checked_add(time::Duration::minutes(-5)).unwrap(),
            to: now,
            severity_threshold: 0,
            ext: Default::default(),
        };
        vpp.send(&heh_name, &Message::GetStatusReport(ask)).unwrap();
        assert_eq!(next_status_report(&mut inbox).await.status, "ok");

        // The agent ends the accepted activation at its `to` and tells the device; the
        // counter-proposal never ran.
        tokio::time::sleep(Duration::from_secs(4)).await;
        (within.id, beyond.id)
    };
    let (accepted, proposed) = tokio::select! {
        stopped = agent::run(&heh, &controller, &mut device, failsafe) => panic!("the agent stopped: {stopped:?}"),
        id = steps => id,
    };
    let ended: Vec<String> = device
        .notices()
        .iter()
        .map(Message::to_json)
        .filter(|n| n.contains(ACTIVATION_END))
        .collect();
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert!(
        ended[0].contains(accepted.as_str()) && !ended[0].contains(proposed.as_str()),
        "{ended:?}"
    );
}

/// The controller and HEH pairs of the tests below, added beside the shared registry (as the
/// migration tests do) and kept out of the testkit's: an agent test owns its entities.
const PAIRS: [(&str, &str); 3] = [
    ("agent-keep-vpp", "agent-keep-heh"),
    ("agent-mute-vpp", "agent-mute-heh"),
    ("agent-cancel-vpp", "agent-cancel-heh"),
];

static PAIRS_READY: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Provisions `pairs` on the shared test broker, leaving everything else as it is.
async fn provision_pairs(pairs: &[(&str, &str)]) {
    let registry = pairs
        .iter()
        .fold(ebadge_admin::registry::Builder::new(), |r, (vpp, heh)| {
            r.entity(*vpp, None).heh(*heh, *vpp)
        })
        .build()
        .unwrap();
    ebadge_testkit::provision_beside(&registry).await;
}

/// The shared broker's profile, with [`PAIRS`] provisioned.
async fn pairs_profile() -> Profile {
    let profile = ebadge_testkit::profile().await;
    PAIRS_READY.get_or_init(|| provision_pairs(&PAIRS)).await;
    profile
}

/// The agent binary run with `config`, its log in `log`; killed when dropped.
fn agent_process(config: &std::path::Path, log: &std::path::Path) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_ebadge-heh"))
        .arg("--config")
        .arg(config)
        .env("EBADGE_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Waits (at most `patience`) for a line of `file` that contains every one of `parts`.
async fn line_with(
    file: &std::path::Path,
    parts: &[&str],
    patience: Duration,
    log: &std::path::Path,
) -> String {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
            return line.to_owned();
        }
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "no line with {parts:?} within {patience:?}; the device was told:\n{text}\nthe agent's log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_during_activations_and_started_without_the_bus_ends_them_and_tells_the_controller()
 {
    let profile = pairs_profile().await;
    ebadge_testkit::drain_inbox(&profile, "agent-keep-vpp").await;
    let proxy = Proxy::start(broker_addr(&profile)).await.unwrap();
    let vpp = client(&profile, "agent-keep-vpp").await;
    let mut inbox = vpp.inbox().unwrap();
    let heh = name("agent-keep-heh");

    // The device writes down every line it is told and accepts every activation; the agent
    // reaches the broker through the proxy, keeps its outbox in a file, and holds a limit when
    // the bus is gone (so that only `to` ends an activation here).
    let dir = tempfile::tempdir().unwrap();
    let (told, log) = (dir.path().join("told.jsonl"), dir.path().join("agent.log"));
    let script = dir.path().join("device.sh");
    std::fs::write(
        &script,
        r#"#!/bin/sh
while read -r line; do
  printf '%s\n' "$line" >> "$1"
  case "$line" in
    *'"msg":"activate"'*)
      id=$(printf '%s' "$line" | sed 's/.*"id":"\([^"]*\)".*/\1/')
      n=$(printf '%s' "$line" | sed 's/.*"modification_count":\([0-9]*\).*/\1/')
      printf '{"msg":"accept_activation","id":"%s","modification_count":%s}\n' "$id" "$n" ;;
  esac
done
"#,
    )
    .unwrap();
    let config = dir.path().join("heh.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"agent-keep-heh\"\ncontroller = \"agent-keep-vpp\"\n[bus]\namqps_url = \"amqps://localhost:{}\"\nca = {:?}\ncerts = {:?}\nheartbeat_seconds = 2\n[outbox]\npath = \"outbox.sqlite\"\n[device]\ncommand = [\"sh\", {:?}, {:?}]\n[failsafe]\nafter_seconds = 2\nbehaviour = \"limit\"\nlimit_kw = 0.5\n",
            proxy.addr.port(),
            profile.ca,
            profile.certs,
            script,
            told,
        ),
    )
    .unwrap();
    let mut first = agent_process(&config, &log);
    let short = order_for(6);
    accepted(&vpp, &heh, &short).await;
    let long = order_for(16);
    accepted(&vpp, &heh, &long).await;

    // Killed (an out-of-memory kill, a crash), and the bus goes away before it is back.
    first.kill().await.unwrap();
    proxy.cut();
    let to = |order: &Activate| {
        let left = order.to.since(&Time::now()).whole_milliseconds().max(0) as u64;
        Duration::from_millis(left)
    };
    tokio::time::sleep(to(&short) + Duration::from_secs(1)).await;
    let _second = agent_process(&config, &log);

    // `short` ended while no agent ran: the new one tells the device at once, bus or no bus.
    let end = line_with(
        &told,
        &[ACTIVATION_END, short.id.as_str(), r#""reason":"restart""#],
        Duration::from_secs(10),
        &log,
    )
    .await;
    assert!(end.contains(&short.to.to_string()), "{end}");
    // `long` was remembered: it ends at its `to`, the bus still away.
    assert!(Time::now() < long.to, "the test is too slow to tell");
    line_with(
        &told,
        &[ACTIVATION_END, long.id.as_str(), r#""reason":"to""#],
        to(&long) + Duration::from_secs(10),
        &log,
    )
    .await;

    // The bus is back: the controller hears that `short` ended late, from the HEH.
    proxy.restore();
    let heard = loop {
        let incoming = tokio::time::timeout(Duration::from_secs(30), inbox.next())
            .await
            .expect("the end of the activation reaches the controller")
            .unwrap();
        incoming.ack();
        if incoming.message.type_name() == ACTIVATION_END {
            break incoming;
        }
    };
    assert_eq!(heard.from, heh);
    let text = heard.message.to_json();
    assert!(
        text.contains(short.id.as_str()) && text.contains(r#""reason":"restart""#),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_stops_reading_its_input_does_not_stop_the_failsafe() {
    let profile = pairs_profile().await;
    ebadge_testkit::drain_inbox(&profile, "agent-mute-vpp").await;
    let proxy = Proxy::start(broker_addr(&profile)).await.unwrap();
    let vpp = client(&profile, "agent-mute-vpp").await;
    let heh_name = name("agent-mute-heh");
    let heh = client(&via(&profile, &proxy), "agent-mute-heh").await;

    // It accepts the first order, then writes reports and never reads its input again.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("device.sh");
    std::fs::write(
        &script,
        r#"#!/bin/sh
read -r line
id=$(printf '%s' "$line" | sed 's/.*"id":"\([^"]*\)".*/\1/')
n=$(printf '%s' "$line" | sed 's/.*"modification_count":\([0-9]*\).*/\1/')
printf '{"msg":"accept_activation","id":"%s","modification_count":%s}\n' "$id" "$n"
while :; do
  echo '{"msg":"report","from":"2030-01-01T10:00:00Z","to":"2030-01-01T10:01:00Z","resolution":60,"values":{"total.p":[1.5]},"heh_id":null}'
  sleep 0.2
done
"#,
    )
    .unwrap();
    let mut device = CommandDevice::start(&["sh".into(), script.display().to_string()]).unwrap();
    let controller = name("agent-mute-vpp");
    let running = tokio::spawn(async move {
        let failsafe = FailsafeConfig {
            after: time::Duration::seconds(2),
            behaviour: Behaviour::End,
        };
        agent::run(&heh, &controller, &mut device, failsafe).await
    });
    let order = order_for(600);
    accepted(&vpp, &heh_name, &order).await;

    // The controller goes on sending, more than the pipe to the device holds (64 KiB).
    for _ in 0..600 {
        vpp.send(&heh_name, &Message::Activate(order_for(600)))
            .unwrap();
    }
    vpp.flush().await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The link goes: the failsafe applies on time all the same, and the controller hears it.
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(5)).await;
    proxy.restore();
    let report = status_report(&vpp).await;
    let kinds: Vec<&str> = report.events.iter().map(|e| e.r#type.as_str()).collect();
    assert_eq!(kinds, ["network_down", "failsafe_end", "network_up"]);
    assert!(!running.is_finished(), "the agent runs on: {running:?}");
    running.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_cancelled_by_the_broker_with_the_connection_up_applies_the_failsafe() {
    let profile = pairs_profile().await;
    ebadge_testkit::drain_inbox(&profile, "agent-cancel-vpp").await;
    let vpp = client(&profile, "agent-cancel-vpp").await;
    let heh = client(&profile, "agent-cancel-heh").await;
    let watch = heh.clone();
    let (running, mut seen) = start_agent(heh, "agent-cancel-vpp", Behaviour::End);
    let order = order_for(600);
    accepted(&vpp, &name("agent-cancel-heh"), &order).await;

    // The HEH's inbox is deleted: the broker cancels the agent's consumer, the connection stays.
    let admin = ebadge_testkit::admin().await;
    admin
        .delete_queue("/", "private-agent-cancel-heh-inbox", false)
        .await
        .unwrap();
    let failsafe = told(&mut seen, FAILSAFE, Duration::from_secs(15)).await;
    assert!(
        failsafe.to_json().contains(order.id.as_str()),
        "{}",
        failsafe.to_json()
    );
    assert!(watch.is_connected(), "the connection stayed up all along");

    // Provisioned again: the agent consumes again, and the controller hears of the outage.
    provision_pairs(&[("agent-cancel-vpp", "agent-cancel-heh")]).await;
    told(&mut seen, BUS_BACK, Duration::from_secs(60)).await;
    let report = status_report(&vpp).await;
    let kinds: Vec<&str> = report.events.iter().map(|e| e.r#type.as_str()).collect();
    assert_eq!(kinds, ["network_down", "failsafe_end", "network_up"]);
    running.abort();
}
