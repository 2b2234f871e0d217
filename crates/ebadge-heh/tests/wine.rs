//! The agent's Windows build (`make cross`: x86_64-pc-windows-gnu) under Wine (Debian's
//! `wine64`) against the local broker: it passes the conformance kit (reports, answers, an
//! activation, buffering across a cut link and a broker restart), and its durable outbox on a
//! Windows path (`C:\…`) keeps what it could not send across a kill of the agent.
//!
//! Debian 12's Wine 8.0 lacks `bcryptprimitives.dll`, where Rust's standard library asks Windows
//! for random bytes (`ProcessPrng`); the test builds the shim in `deploy/wine/` with mingw-w64
//! and puts it beside the copy of the program it runs (docs/heh-guide.md, "Windows").

use ebadge_bus::{Client, ClientConfig, EntityName};
use ebadge_testkit::proxy::Proxy;
use std::path::{Path, PathBuf};
use std::time::Duration;

const WINE: &str = "/usr/lib/wine/wine64";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Windows agent with the shim beside it, in a directory of its own, and the Wine prefix
/// (kept in the test directory: its first start takes seconds).
fn windows_agent() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let built = workspace().join("target/x86_64-pc-windows-gnu/debug/ebadge-heh.exe");
    assert!(
        built.exists(),
        "{} is missing: `make cross` builds it (make test runs it first)",
        built.display()
    );
    assert!(
        Path::new(WINE).exists(),
        "{WINE} is missing: `make deps` installs wine64"
    );
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("ebadge-heh.exe");
    std::fs::copy(&built, &exe).unwrap();
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
    (dir, exe, prefix)
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

/// One Wine test at a time: they share the prefix and its wineserver.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_windows_agent_under_wine_passes_the_conformance_kit() {
    let _turn = TURN.lock().await;
    let (dir, exe, prefix) = windows_agent();
    let wrapper = wine_wrapper(dir.path(), &exe, &prefix);
    let broker = ebadge_admin::broker::LocalBroker::new(
        ebadge_testkit::test_dir().join("ebadge-conformance-broker"),
    );
    let command = format!(
        "cd {} && docs/partners/agent.sh {} docs/partners/agent_device.py",
        workspace().display(),
        wrapper.display()
    );
    let mut options = ebadge_sim::conformance::KitOptions::new(command, dir.path().join("kit"));
    options.name = EntityName::new("heh-00000000c0d7").unwrap();
    options.outage = Duration::from_secs(5);
    let report =
        ebadge_sim::conformance::run_heh(&broker, &options, &|line| eprintln!("kit: {line}"))
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
    let (dir, exe, prefix) = windows_agent();
    let (heh, vpp) = ("heh-00000000e1e1", "wine-vpp");
    let registry = ebadge_admin::registry::Builder::new()
        .entity(vpp, None)
        .heh(heh, vpp)
        .build()
        .unwrap();
    ebadge_testkit::provision_beside(&registry).await;
    let profile = ebadge_testkit::profile().await;
    ebadge_testkit::drain_inbox(&profile, vpp).await;
    let (_, port) = profile.host_and_port().unwrap();
    let proxy = Proxy::start(([127, 0, 0, 1], port).into()).await.unwrap();
    proxy.cut();

    // The outbox on drive C: of the prefix, a fresh one for this run.
    let outbox_dir = prefix.join("drive_c/ebadge-wine-test");
    let _ = std::fs::remove_dir_all(&outbox_dir);
    std::fs::create_dir_all(&outbox_dir).unwrap();
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let marker = dir.path().join("reported");
    let reports = dir.path().join("device.sh");
    std::fs::write(
        &reports,
        format!(
            "#!/bin/sh\nfor n in 1 2 3; do\n  echo '{{\"msg\":\"report\",\"from\":\"2030-01-01T10:00:00Z\",\"to\":\"2030-01-01T10:01:00Z\",\"resolution\":60,\"values\":{{\"total.p\":[1.5]}},\"heh_id\":null,\"ext_test_run\":{run},\"ext_test_seq\":'$n'}}'\ndone\ntouch {}\nexec sleep 600\n",
            marker.display()
        ),
    )
    .unwrap();
    let config = |device: &str| {
        let file = dir.path().join("heh.toml");
        std::fs::write(
            &file,
            format!(
                "name = \"{heh}\"\ncontroller = \"{vpp}\"\n[bus]\namqps_url = \"amqps://127.0.0.1:{}\"\nca = {:?}\ncerts = {:?}\n[outbox]\npath = 'C:\\ebadge-wine-test\\outbox.sqlite'\n[device]\ncommand = [\"/bin/sh\", \"-c\", {device:?}]\n[failsafe]\nafter_seconds = 60\nbehaviour = \"end\"\n",
                proxy.addr.port(),
                profile.ca,
                profile.certs,
            ),
        )
        .unwrap();
        file
    };
    let start = |config: &Path, log: &str| {
        tokio::process::Command::new(WINE)
            .arg(&exe)
            .arg("--config")
            .arg(config)
            .env("WINEPREFIX", &prefix)
            .env("WINEDEBUG", "-all")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join(log)).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };

    // The bus is away: the three reports go into the outbox on C:, and the agent is killed.
    let mut first = start(&config(&format!("sh {}", reports.display())), "first.log");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the device ran under the Windows agent: {}",
            std::fs::read_to_string(dir.path().join("first.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The agent stores a line before it reads the next; a moment for the last one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    first.kill().await.unwrap();
    assert!(
        outbox_dir.join("outbox.sqlite").exists(),
        "the outbox is at C:\\ebadge-wine-test\\outbox.sqlite"
    );

    // Started again with the bus back and a device that says nothing: the three arrive.
    proxy.restore();
    let _second = start(&config("exec sleep 600"), "second.log");
    let controller = Client::connect(ClientConfig::new(
        profile.clone(),
        EntityName::new(vpp).unwrap(),
    ))
    .await
    .unwrap();
    let mut inbox = controller.inbox().unwrap();
    let mut seqs = Vec::new();
    while seqs.len() < 3 {
        let incoming = tokio::time::timeout(Duration::from_secs(60), inbox.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the reports kept in the outbox arrive after the restart (got {seqs:?}); the agent's log: {}",
                    std::fs::read_to_string(dir.path().join("second.log")).unwrap_or_default()
                )
            })
            .unwrap();
        incoming.ack();
        let value: serde_json::Value = serde_json::from_str(&incoming.message.to_json()).unwrap();
        if value["ext_test_run"] == run as u64 {
            seqs.push(value["ext_test_seq"].as_u64().unwrap());
        }
    }
    assert_eq!(seqs, vec![1, 2, 3], "each once, in order");
    controller.close(Duration::from_secs(5)).await;
}
