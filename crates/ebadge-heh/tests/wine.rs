//! The Windows builds (`make cross`: x86_64-pc-windows-gnu) under Wine (Debian's `wine64`)
//! against the local broker. The command line's `send` and `listen` carry a message each way.
//! The agent, with the Windows build of the example device program
//! (`examples/answering_device.rs`; under Wine a Windows program's pipes reach only Windows
//! programs): it passes the conformance kit (reports, answers, an activation, buffering across
//! a cut link and a broker restart), and its durable outbox on a Windows path (`C:\…`) keeps
//! what it could not send across a kill of the agent.
//!
//! Debian 12's Wine 8.0 lacks `bcryptprimitives.dll`, where Rust's standard library asks Windows
//! for random bytes (`ProcessPrng`); the test builds the shim in `deploy/wine/` with mingw-w64
//! and puts it beside the copy of the program it runs (docs/heh-guide.md, "Windows").

use ebadge_bus::model::{GetPeriodicReport, Message, SignalName, Time};
use ebadge_bus::{Client, ClientConfig, EntityName};
use ebadge_testkit::proxy::Proxy;
use std::path::{Path, PathBuf};
use std::time::Duration;

const WINE: &str = "/usr/lib/wine/wine64";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Windows build `make cross` left at `path` under target/x86_64-pc-windows-gnu/debug.
fn windows_build(path: &str) -> PathBuf {
    let built = workspace()
        .join("target/x86_64-pc-windows-gnu/debug")
        .join(path);
    assert!(
        built.exists(),
        "{} is missing: `make cross` builds it (make test runs it first)",
        built.display()
    );
    built
}

/// The Windows agent and device with the shim beside them, in a directory of their own, and
/// the Wine prefix (kept in the test directory: its first start takes seconds).
struct Windows {
    dir: tempfile::TempDir,
    agent: PathBuf,
    device: PathBuf,
    prefix: PathBuf,
}

fn windows() -> Windows {
    assert!(
        Path::new(WINE).exists(),
        "{WINE} is missing: `make deps` installs wine64"
    );
    let dir = tempfile::tempdir().unwrap();
    let agent = dir.path().join("ebadge-heh.exe");
    std::fs::copy(windows_build("ebadge-heh.exe"), &agent).unwrap();
    let device = dir.path().join("answering_device.exe");
    std::fs::copy(windows_build("examples/answering_device.exe"), &device).unwrap();
    let shim = workspace().join("deploy/wine/bcryptprimitives");
    let gcc = std::process::Command::new("x86_64-w64-mingw32-gcc")
        .args(["-shared", "-O2", "-o"])
        .arg(dir.path().join("bcryptprimitives.dll"))
        .arg(shim.with_extension("c"))
        .arg(shim.with_extension("def"))
        .arg("-ladvapi32")
        .output()
        .expect("x86_64-w64-mingw32-gcc runs: `make deps` installs gcc-mingw-w64-x86-64");
    assert!(
        gcc.status.success(),
        "the shim builds: {}",
        String::from_utf8_lossy(&gcc.stderr)
    );
    let prefix = ebadge_testkit::test_dir().join("wine-prefix");
    Windows {
        dir,
        agent,
        device,
        prefix,
    }
}

/// A script that runs the Windows agent under Wine with its arguments.
fn wine_wrapper(dir: &Path, exe: &Path, prefix: &Path) -> PathBuf {
    let wrapper = dir.join("ebadge-heh-wine");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec env WINEPREFIX={} WINEDEBUG=-all {WINE} {} \"$@\"\n",
            prefix.display(),
            exe.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    wrapper
}

/// The next `report` in `inbox` (other messages acknowledged and passed over), at most 60 s
/// away; else the test fails with `why` and `log()`.
async fn next_report(
    inbox: &mut ebadge_bus::Inbox,
    why: &str,
    log: impl Fn() -> String,
) -> ebadge_bus::model::Report {
    loop {
        let incoming = tokio::time::timeout(Duration::from_secs(60), inbox.next())
            .await
            .unwrap_or_else(|_| panic!("{why}; the agent's log: {}", log()))
            .unwrap();
        incoming.ack();
        if let Message::Report(report) = &incoming.message {
            return report.clone();
        }
    }
}

/// `heh` and its controller `vpp` on the shared test broker, both inboxes empty.
async fn pair(heh: &str, vpp: &str) -> ebadge_bus::Profile {
    let registry = ebadge_admin::registry::Builder::new()
        .entity(vpp, None)
        .heh(heh, vpp)
        .build()
        .unwrap();
    ebadge_testkit::provision_beside(&registry).await;
    let profile = ebadge_testkit::profile().await;
    ebadge_testkit::drain_inbox(&profile, vpp).await;
    ebadge_testkit::drain_inbox(&profile, heh).await;
    profile
}

/// One Wine test at a time: they share the prefix and its wineserver.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_windows_agent_under_wine_passes_the_conformance_kit() {
    let _turn = TURN.lock().await;
    let w = windows();
    let wrapper = wine_wrapper(w.dir.path(), &w.agent, &w.prefix);
    let broker = ebadge_admin::broker::LocalBroker::new(
        ebadge_testkit::test_dir().join("ebadge-conformance-broker"),
    );
    let command = format!(
        "cd {} && docs/partners/agent.sh {} {}",
        workspace().display(),
        wrapper.display(),
        w.device.display()
    );
    let mut options = ebadge_sim::conformance::KitOptions::new(command, w.dir.path().join("kit"));
    options.name = EntityName::new("heh-00000000c0d7").unwrap();
    options.outage = Duration::from_secs(5);
    let target = ebadge_sim::conformance::Target::Local(broker.clone());
    let report =
        ebadge_sim::conformance::run_heh(&target, &options, &|line| eprintln!("kit: {line}"))
            .await
            .expect("the kit runs");
    let text = report.to_text();
    eprintln!("{text}");
    assert!(report.passed(), "{text}");
    assert_eq!(report.tally(), (15, 0, 0), "{text}");
    let log = std::fs::read_to_string(&report.client_log).unwrap_or_default();
    assert!(
        !log.contains("bcryptprimitives"),
        "the shim is found: {log}"
    );
    broker.down().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_windows_agent_keeps_its_outbox_on_a_windows_path_across_a_kill() {
    let _turn = TURN.lock().await;
    let w = windows();
    let (heh, vpp) = ("heh-00000000e1e1", "wine-vpp");
    let profile = pair(heh, vpp).await;
    let (_, port) = profile.host_and_port().unwrap();
    let proxy = Proxy::start(([127, 0, 0, 1], port).into()).await.unwrap();

    // The outbox on drive C: of the prefix, a fresh one for this run.
    let outbox_dir = w.prefix.join("drive_c/ebadge-wine-test");
    let _ = std::fs::remove_dir_all(&outbox_dir);
    std::fs::create_dir_all(&outbox_dir).unwrap();
    let config = w.dir.path().join("heh.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"{heh}\"\ncontroller = \"{vpp}\"\n[bus]\namqps_url = \"amqps://127.0.0.1:{}\"\nca = {:?}\ncerts = {:?}\n[outbox]\npath = 'C:\\ebadge-wine-test\\outbox.sqlite'\n[device]\ncommand = [{:?}]\n[failsafe]\nafter_seconds = 60\nbehaviour = \"end\"\n",
            proxy.addr.port(),
            profile.ca,
            profile.certs,
            w.device,
        ),
    )
    .unwrap();
    let start = |log: &str| {
        tokio::process::Command::new(WINE)
            .arg(&w.agent)
            .arg("--config")
            .arg(&config)
            .env("WINEPREFIX", &w.prefix)
            .env("WINEDEBUG", "-all")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(w.dir.path().join(log)).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let log = |name: &str| std::fs::read_to_string(w.dir.path().join(name)).unwrap_or_default();

    // A report a second, asked for by the controller: the first shows the Windows agent works.
    let mut first = start("first.log");
    let controller = Client::connect(ClientConfig::new(
        profile.clone(),
        EntityName::new(vpp).unwrap(),
    ))
    .await
    .unwrap();
    let mut inbox = controller.inbox().unwrap();
    let heh_name = EntityName::new(heh).unwrap();
    let every_second = GetPeriodicReport::new(1.0, 1.0, vec![SignalName::new("total.p").unwrap()]);
    controller
        .send(&heh_name, &Message::GetPeriodicReport(every_second))
        .unwrap();
    next_report(
        &mut inbox,
        "a report arrives from the Windows agent",
        || log("first.log"),
    )
    .await;

    // The link is cut: reports go into the outbox on C:. Then the agent is killed.
    let cut = Time::now();
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let killed = Time::now();
    first.kill().await.unwrap();
    assert!(
        outbox_dir.join("outbox.sqlite").exists(),
        "the outbox is at C:\\ebadge-wine-test\\outbox.sqlite"
    );

    // Started again with the link back: what the first agent kept arrives. The new device was
    // not asked for reports, so every report made in the outage came from the outbox.
    proxy.restore();
    let _second = start("second.log");
    let margin = time::Duration::seconds(1);
    let (from, until) = (
        cut.checked_add(margin).unwrap(),
        killed.checked_add(-margin).unwrap(),
    );
    let mut kept = Vec::new();
    while kept.len() < 3 {
        let report = next_report(
            &mut inbox,
            "the reports kept in the outbox on C: arrive after the restart",
            || log("second.log"),
        )
        .await;
        if report.to >= from && report.to <= until {
            assert!(!kept.contains(&report.to), "each once: {report:?}");
            kept.push(report.to);
        }
    }
    controller.close(Duration::from_secs(5)).await;
}

/// Runs the Windows `ebadge.exe` with `args` under Wine, `stdin` as its input; its output.
async fn windows_ebadge(
    w: &Windows,
    exe: &Path,
    args: &[&str],
    stdin: &str,
) -> std::process::Output {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(WINE)
        .arg(exe)
        .args(args)
        .env("WINEPREFIX", &w.prefix)
        .env("WINEDEBUG", "-all")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("ebadge.exe {args:?} ends within 120 s"))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_windows_command_line_sends_and_listens() {
    let _turn = TURN.lock().await;
    let w = windows();
    let exe = w.dir.path().join("ebadge.exe");
    std::fs::copy(windows_build("ebadge.exe"), &exe).unwrap();
    let (heh, vpp) = ("heh-00000000e1e2", "wine-cli-vpp");
    let profile = pair(heh, vpp).await;
    let profile_path =
        ebadge_admin::broker::LocalBroker::new(ebadge_testkit::broker_dir()).profile_path();
    let profile_arg = profile_path.to_str().unwrap();
    let controller = Client::connect(ClientConfig::new(
        profile.clone(),
        EntityName::new(vpp).unwrap(),
    ))
    .await
    .unwrap();

    // Linux → Windows: the controller asks; `ebadge.exe listen` prints it.
    controller
        .send(
            &EntityName::new(heh).unwrap(),
            &Message::GetCapabilities(ebadge_bus::model::GetCapabilities {
                device: None,
                ext: Default::default(),
            }),
        )
        .unwrap();
    controller.flush().await.unwrap();
    let heard = windows_ebadge(
        &w,
        &exe,
        &[
            "listen",
            "--as",
            heh,
            "--count",
            "1",
            "--json",
            "--profile",
            profile_arg,
        ],
        "",
    )
    .await;
    let line = String::from_utf8_lossy(&heard.stdout);
    assert!(
        heard.status.success(),
        "listen under Wine: {line} {}",
        String::from_utf8_lossy(&heard.stderr)
    );
    let value: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(value["from"], vpp, "{line}");
    assert_eq!(value["message"]["msg"], "get_capabilities", "{line}");

    // Windows → Linux: `ebadge.exe send` a report; the controller gets it.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let report = format!(
        "{{\"msg\":\"report\",\"from\":\"2030-01-01T10:00:00Z\",\"to\":\"2030-01-01T10:01:00Z\",\"resolution\":60,\"values\":{{\"total.p\":[1.5]}},\"heh_id\":null,\"ext_test_run\":{run}}}\n"
    );
    let sent = windows_ebadge(
        &w,
        &exe,
        &["send", "--as", heh, "--to", vpp, "--profile", profile_arg],
        &report,
    )
    .await;
    assert!(
        sent.status.success(),
        "send under Wine: {} {}",
        String::from_utf8_lossy(&sent.stdout),
        String::from_utf8_lossy(&sent.stderr)
    );
    let mut inbox = controller.inbox().unwrap();
    loop {
        let incoming = tokio::time::timeout(Duration::from_secs(30), inbox.next())
            .await
            .expect("the report sent by ebadge.exe arrives")
            .unwrap();
        incoming.ack();
        let value: serde_json::Value = serde_json::from_str(&incoming.message.to_json()).unwrap();
        if value["ext_test_run"] == run {
            assert_eq!(incoming.from.as_str(), heh);
            break;
        }
    }
    controller.close(Duration::from_secs(5)).await;
}
