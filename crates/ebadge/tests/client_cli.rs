//! `ebadge send`, `listen` and `tap` against the real broker, and the durable outbox across a
//! killed sender process.

mod common;

use common::{ebadge, ebadge_with};
use ebadge_bus::{Client, ClientConfig, EntityName, Profile};
use ebadge_testkit::proxy::Proxy;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn report(n: u64) -> String {
    format!(
        r#"{{"msg":"report","from":"2013-07-21T10:00:00Z","to":"2013-07-21T10:01:00Z","resolution":60,"values":{{"total.p":[1.5]}},"heh_id":null,"ext_test_seq":{n}}}"#
    )
}

/// Starts `ebadge tap ARGS`; returns it and the line it prints once its queue is bound.
fn spawn_tap(profile: &std::path::Path, args: &[&str]) -> (std::process::Child, String) {
    let mut tap = Command::new(env!("CARGO_BIN_EXE_ebadge"))
        .arg("tap")
        .args(args)
        .arg("--profile")
        .arg(profile)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(tap.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    // The rest is read too: a closed pipe would fail the tap's next line.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    (tap, line)
}

async fn shared_profile() -> (Profile, std::path::PathBuf) {
    let profile = ebadge_testkit::profile().await;
    let path = ebadge_admin::broker::LocalBroker::new(ebadge_testkit::broker_dir()).profile_path();
    (profile, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_then_listen_prints_the_documented_json_line_and_tap_sees_a_copy() {
    let (_, path) = shared_profile().await;
    // Empty the receiver's inbox of earlier runs.
    ebadge_testkit::drain_inbox(&Profile::load(&path).unwrap(), "cli-receiver").await;

    let (tap, line) = spawn_tap(
        &path,
        &[
            "--as",
            "cli-receiver",
            "--json",
            "--count",
            "1",
            "get_capabilities",
        ],
    );
    assert!(line.starts_with("tap: private-cli-receiver-tap-"), "{line}");

    let input = "{\"msg\":\"get_capabilities\",\"device\":\"EV01\"}\n{\"msg\":\"get_capabilities\",\"device\":1}\n";
    let sent = ebadge_with(
        &path,
        &["send", "--as", "cli-sender", "--to", "cli-receiver"],
        input,
    );
    let stdout = String::from_utf8_lossy(&sent.stdout);
    assert_eq!(
        sent.status.code(),
        Some(1),
        "one line was invalid: {stdout}"
    );
    assert!(
        stdout
            .lines()
            .next()
            .unwrap()
            .starts_with("sent get_capabilities "),
        "{stdout}"
    );
    assert!(
        stdout.contains("invalid 2: get_capabilities: field device"),
        "{stdout}"
    );

    let expected = r#"{"from":"cli-sender","routing_key":"get_capabilities","message":{"msg":"get_capabilities","device":"EV01"}}"#;
    let heard = ebadge_with(
        &path,
        &["listen", "--as", "cli-receiver", "--json", "--count", "1"],
        "",
    );
    assert_eq!(String::from_utf8_lossy(&heard.stdout).trim(), expected);
    let tapped = tap.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&tapped.stdout).trim(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hehs_tap_names_its_senders_and_sees_their_pair_and_group_exchanges() {
    let (_, path) = shared_profile().await;
    ebadge_testkit::drain_inbox(&Profile::load(&path).unwrap(), "tap-heh").await;
    // An HEH reads in one hop: there is no incoming exchange to tap, and the error says why.
    let refused = ebadge_with(&path, &["tap", "--as", "tap-heh"], "");
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("tap-heh has no incoming exchange") && err.contains("--from SENDER"),
        "{err}"
    );

    let wrong = ebadge_with(&path, &["tap", "--as", "tap-heh", "--from", "nobody"], "");
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        !wrong.status.success() && err.contains("there is no exchange nobody-to-tap-heh"),
        "{err}"
    );
    // A group exchange it is not a member of exists, and the broker refuses the read.
    let foreign = ebadge_with(
        &path,
        &["tap", "--as", "tap-heh", "--from", "tso-to-bsps"],
        "",
    );
    let err = String::from_utf8_lossy(&foreign.stderr);
    assert!(
        !foreign.status.success()
            && err.contains("the broker refused tap-heh a binding to tso-to-bsps"),
        "{err}"
    );

    let (tap, line) = spawn_tap(
        &path,
        &[
            "--as",
            "tap-heh",
            "--from",
            "tap-op",
            "--from",
            "tap-op-to-tap-hehs",
            "--json",
            "--count",
            "2",
        ],
    );
    assert!(
        line.contains("bound to tap-op-to-tap-heh, tap-op-to-tap-hehs"),
        "{line}"
    );
    for to in ["tap-heh", "tap-hehs"] {
        let sent = ebadge_with(
            &path,
            &["send", "--as", "tap-op", "--to", to],
            &format!("{}\n", report(7)),
        );
        assert!(
            sent.status.success(),
            "{}",
            String::from_utf8_lossy(&sent.stderr)
        );
    }
    let tapped = tap.wait_with_output().unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&tapped.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|l| l["from"] == "tap-op" && l["routing_key"] == "report")
    );
    // The group's message says whom it was addressed to; the HEH's own does not.
    let tos: Vec<Option<&str>> = lines.iter().map(|l| l["to"].as_str()).collect();
    assert!(
        tos.contains(&None) && tos.contains(&Some("tap-hehs")),
        "{lines:?}"
    );
    // The inbox, untouched by the tap, holds both (the group's heard as a member's).
    let heard = ebadge_with(
        &path,
        &[
            "listen", "--as", "tap-heh", "--group", "tap-hehs", "--json", "--count", "2",
        ],
        "",
    );
    assert_eq!(String::from_utf8_lossy(&heard.stdout).lines().count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_durable_outbox_survives_a_killed_sender_and_delivers_after_the_outage() {
    let (profile, _) = shared_profile().await;
    let receiver = Client::connect(ClientConfig::new(
        profile.clone(),
        EntityName::new("op-outbox").unwrap(),
    ))
    .await
    .unwrap();
    let mut inbox = receiver.inbox().unwrap();
    while let Ok(Some(i)) = tokio::time::timeout(Duration::from_millis(300), inbox.next()).await {
        i.ack();
    }

    let (_, port) = profile.host_and_port().unwrap();
    let proxy = Proxy::start(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cut_profile = profile.clone();
    cut_profile.amqps_url = format!("amqps://localhost:{}", proxy.addr.port());
    let profile_path = dir.path().join("profile.toml");
    cut_profile.save(&profile_path).unwrap();
    let outbox = dir.path().join("outbox.sqlite");
    let outbox_arg = outbox.to_str().unwrap();

    // The broker is unreachable: the sender queues 50 reports on disk, and is killed.
    proxy.cut();
    let mut sender = Command::new(env!("CARGO_BIN_EXE_ebadge"))
        .args([
            "send",
            "--as",
            "heh-outbox",
            "--to",
            "op-outbox",
            "--outbox",
            outbox_arg,
            "--timeout",
            "600",
        ])
        .arg("--profile")
        .arg(&profile_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let input: String = (0..50).map(|n| report(n) + "\n").collect();
    sender
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let stdout = BufReader::new(sender.stdout.take().unwrap());
    let accepted = stdout
        .lines()
        .take(50)
        .filter(|l| l.as_ref().unwrap().starts_with("sent report"))
        .count();
    assert_eq!(accepted, 50);
    sender.kill().unwrap();
    sender.wait().unwrap();

    // Both come back: a new process with the same outbox delivers them, with no new input.
    proxy.restore();
    let resumed = ebadge_with(
        &profile_path,
        &[
            "send",
            "--as",
            "heh-outbox",
            "--to",
            "op-outbox",
            "--outbox",
            outbox_arg,
        ],
        "",
    );
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{stderr}");
    assert!(
        stderr.contains("50 messages left in the outbox by an earlier run go first"),
        "{stderr}"
    );

    let mut numbers = Vec::new();
    while numbers.len() < 50 {
        let Ok(Some(incoming)) = tokio::time::timeout(Duration::from_secs(10), inbox.next()).await
        else {
            break;
        };
        incoming.ack();
        if let Some(n) = incoming
            .message
            .extensions()
            .and_then(|e| e.get("ext_test_seq"))
            .and_then(|v| v.as_u64())
        {
            numbers.push(n);
        }
    }
    assert_eq!(numbers, (0..50).collect::<Vec<u64>>());
}

/// An example program of `ebadge-bus` (built by `make test` before the tests, as
/// `cargo build -p ebadge-bus --examples`), with the demo's profile.
fn example(dir: &Path, name: &str) -> Command {
    let program = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/debug/examples")
        .join(name);
    assert!(
        program.exists(),
        "{} is missing: run `cargo build -p ebadge-bus --examples` (make test does)",
        program.display()
    );
    let mut command = Command::new(program);
    command
        .env("EBADGE_PROFILE", dir.join("profile.toml"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs `command` to its end, within a minute: its standard output, when it succeeded.
fn output_of(mut command: Command) -> String {
    let mut child = command.spawn().unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("{command:?} ran for more than a minute");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{command:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The six examples of `crates/ebadge-bus/examples`, each checked by what it prints on success
/// (each prints another line when what it waits for does not come).
fn run_the_examples(dir: &Path) {
    let heh_name = "heh-020000000000";
    let mut heh = example(dir, "heh").arg(heh_name).spawn().unwrap();
    let mut lines = BufReader::new(heh.stdout.take().unwrap()).lines();
    let listening = lines.next().unwrap().unwrap();
    assert_eq!(
        listening,
        format!("{heh_name} is listening; Ctrl-C stops it")
    );
    let mut vpp = example(dir, "vpp");
    vpp.arg(heh_name);
    let said = output_of(vpp);
    let _ = heh.kill();
    let _ = heh.wait();
    assert!(
        said.contains(&format!("{heh_name} sent {{\"msg\":\"report\"")),
        "{said}"
    );
    assert!(
        said.contains("the HEH offers 3 kW instead; agreeing"),
        "{said}"
    );
    assert!(said.contains("Accepted("), "{said}");

    let said = output_of(example(dir, "market"));
    assert!(
        said.contains("north-tso got balancing_reserve_bid from bsp-a"),
        "{said}"
    );
    assert!(said.contains("bsp-a: the TSO answered 200"), "{said}");
    let said = output_of(example(dir, "group"));
    for member in ["bsp-a", "bsp-b", "bsp-c"] {
        assert!(
            said.contains(&format!(
                "{member} got market_cleared from north-tso through north-tso-to-bsps"
            )),
            "{said}"
        );
    }
    let said = output_of(example(dir, "tap"));
    assert!(said.contains("heh-020000000000 sent report"), "{said}");
    let said = output_of(example(dir, "durable_outbox"));
    // Three sent, and whatever an earlier run on this machine left in its outbox file.
    assert!(said.contains(" confirmed, 0 still in the outbox"), "{said}");
}

/// The JSON output and the standard error of a run that must succeed.
fn json_of(out: std::process::Output) -> (serde_json::Value, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (serde_json::from_slice(&out.stdout).unwrap(), stderr)
}

#[test]
fn the_demo_runs_and_its_summary_adds_up_and_a_fleet_spreads_over_processes() {
    let dir = ebadge_testkit::test_dir().join("ebadge-demo-broker");
    let dir = dir.to_str().unwrap();
    let (summary, stderr) = json_of(ebadge(
        &[
            "demo",
            "--hehs",
            "20",
            "--seconds",
            "6",
            "--json",
            "--dir",
            dir,
        ],
        "",
    ));
    assert_eq!(summary["hehs_online"], 20, "{summary}");
    assert!(
        summary["reports_received"].as_u64().unwrap() >= 20,
        "one report per HEH at least: {summary}"
    );
    assert_eq!(
        summary["campaign"]["achieved_kw"], summary["campaign"]["target_kw"],
        "{summary}"
    );
    assert!(
        summary["campaign"]["rounds"].as_u64().unwrap() >= 2,
        "rejections force re-dispatch: {summary}"
    );
    assert_eq!(summary["market"]["unanswered"], 0, "{summary}");
    assert_eq!(summary["market"]["cleared_seen"], 3, "{summary}");
    assert!(stderr.contains("20 HEHs connected"), "{stderr}");

    // Every example program of the client library, against the broker the demo provisioned,
    // as its doc comment tells a reader to run it.
    run_the_examples(Path::new(dir));

    // The activation benchmark with its fleet in three processes, and the raw ceiling's fleet
    // in three more, on the same broker (one test: two `broker up` on one directory at once
    // would race).
    let (result, stderr) = json_of(ebadge(
        &[
            "bench",
            "activations",
            "--hehs",
            "30",
            "--processes",
            "3",
            "--ceiling",
            "--quiet-wait",
            "20",
            "--json",
            "--dir",
            dir,
        ],
        "",
    ));
    assert_eq!(result["report"]["answered"], 30, "{result}");
    assert_eq!(result["raw_amqprs"]["answered"], 30, "{result}");
    // Both bursts waited for a quiet broker (the test broker may stay busy with other tests:
    // then they began when the 20 s were up), and said so.
    for arm in ["report", "raw_amqprs"] {
        let waited = result[arm]["quiet"]["seconds"]
            .as_f64()
            .expect("a quiet wait");
        assert!((2.0..=30.0).contains(&waited), "{arm}: {result}");
        assert!(result[arm]["quiet"]["settled"].is_boolean(), "{result}");
    }
    assert!(stderr.contains("in 3 process(es)"), "{stderr}");

    // The same burst with an external VPP (`--vpp-command`, how the Python VPPs are measured):
    // here our Rust VPP in a process of its own, told what to do by its environment.
    let vpp = format!("{} bench vpp-child", env!("CARGO_BIN_EXE_ebadge"));
    let (result, stderr) = json_of(ebadge(
        &[
            "bench",
            "activations",
            "--hehs",
            "30",
            "--vpp-command",
            &vpp,
            "--quiet-wait",
            "0",
            "--json",
            "--dir",
            dir,
        ],
        "",
    ));
    assert_eq!(result["report"]["answered"], 30, "{result}");
    assert_eq!(
        result["report"]["vpp_command"]["printed"]["sent"], 30,
        "{result}"
    );
    assert!(stderr.contains("the VPP is `"), "{stderr}");
    assert!(
        result["report"].get("quiet").is_none(),
        "no wait asked: {result}"
    );

    // The HEH footprint with the agent as the HEH and pika as the peer, same broker.
    let agent =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/ebadge-heh");
    assert!(
        agent.exists(),
        "{} is built with the workspace's tests",
        agent.display()
    );
    let pika = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/heh-pika.py");
    let (result, _) = json_of(ebadge(
        &[
            "bench",
            "heh",
            "--seconds",
            "2",
            "--rate",
            "5",
            "--json",
            "--agent",
            agent.to_str().unwrap(),
            "--pika",
            pika.to_str().unwrap(),
            "--dir",
            dir,
        ],
        "",
    ));
    for who in ["report", "pika"] {
        let r = &result[who];
        assert_eq!(r["messages"], 10, "{result}");
        assert!(
            r["rss_kib"].as_u64().unwrap() > 1000,
            "{who} was measured: {result}"
        );
        assert!(
            r["wire_up_bytes_per_msg"].as_f64().unwrap() > 172.0,
            "{who}'s reports crossed the proxy: {result}"
        );
    }

    // An external HEH (`--heh-command`, how the Python HEH is measured), told its name, the
    // count and the profile; one that exits early (here: if it was told otherwise) fails the run.
    let (result, _) = json_of(ebadge(
        &[
            "bench",
            "heh",
            "--seconds",
            "2",
            "--rate",
            "5",
            "--json",
            "--heh-command",
            r#"sh -c 'test "$EBADGE_BENCH_COUNT" = 10 && test "$EBADGE_BENCH_HEH" = heh-0b0000000000 && test -s "$EBADGE_PROFILE" && exec sleep 60'"#,
            "--dir",
            dir,
        ],
        "",
    ));
    assert_eq!(result["report"]["messages"], 10, "{result}");
    assert!(
        result["subject"].as_str().unwrap().contains("sleep 60"),
        "{result}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_into_a_pipe_carry_no_colour_codes() {
    let (_, path) = shared_profile().await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_ebadge"));
    command
        .args([
            "send",
            "--as",
            "cli-sender",
            "--to",
            "cli-log-receiver",
            "--profile",
        ])
        .arg(&path)
        .env("EBADGE_LOG", "debug")
        .env_remove("NO_COLOR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"msg\":\"get_capabilities\",\"device\":\"EV02\"}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(logs.contains("DEBUG"), "debug logs were asked for: {logs}");
    assert!(!logs.contains('\x1b'), "no ANSI escape in a pipe: {logs:?}");
    ebadge_testkit::drain_inbox(&Profile::load(&path).unwrap(), "cli-log-receiver").await;
}

/// Scrapes `address` until it shows `sample`, for at most 20 s.
async fn wait_for_sample(address: &str, sample: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut last = None;
    while std::time::Instant::now() < deadline {
        last = ebadge_testkit::http_get(&format!("http://{address}/metrics")).await;
        if last
            .as_ref()
            .is_some_and(|(_, text)| text.lines().any(|l| l == sample))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{address} never showed `{sample}`; last scrape: {last:?}");
}

fn free_address() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_and_tap_serve_metrics_of_what_they_received() {
    let (_, path) = shared_profile().await;
    ebadge_testkit::drain_inbox(&Profile::load(&path).unwrap(), "cli-metrics-receiver").await;
    let (listen_at, tap_at) = (free_address(), free_address());
    let spawn = |args: &[&str], metrics: &str| {
        Command::new(env!("CARGO_BIN_EXE_ebadge"))
            .args(args)
            .args([
                "--as",
                "cli-metrics-receiver",
                "--metrics",
                metrics,
                "--profile",
            ])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut tap = spawn(&["tap"], &tap_at);
    let mut listen = spawn(&["listen"], &listen_at);
    // Each says where its metrics are once it is connected (the tap: and bound).
    for (child, address) in [(&mut tap, &tap_at), (&mut listen, &listen_at)] {
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while !line.contains("metrics: http://") {
            line.clear();
            assert!(stderr.read_line(&mut line).unwrap() > 0, "no metrics line");
        }
        assert_eq!(line.trim(), format!("metrics: http://{address}/metrics"));
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    }
    wait_for_sample(
        &tap_at,
        r#"ebadge_clients{entity="tap-cli-metrics-receiver"} 0.0"#,
    )
    .await;

    let sent = ebadge_with(
        &path,
        &[
            "send",
            "--as",
            "cli-metrics-sender",
            "--to",
            "cli-metrics-receiver",
        ],
        "{\"msg\":\"get_capabilities\",\"device\":\"EV01\"}\n",
    );
    assert!(sent.status.success(), "{sent:?}");
    wait_for_sample(
        &listen_at,
        r#"ebadge_messages_received_total{entity="cli-metrics-receiver",type="get_capabilities"} 1"#,
    ).await;
    wait_for_sample(
        &listen_at,
        r#"ebadge_connected{entity="cli-metrics-receiver"} 1.0"#,
    )
    .await;
    wait_for_sample(
        &tap_at,
        r#"ebadge_messages_received_total{entity="tap-cli-metrics-receiver",type="get_capabilities"} 1"#,
    ).await;
    for mut child in [tap, listen] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
