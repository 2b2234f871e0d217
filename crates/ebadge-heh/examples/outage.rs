//! The agent's memory through a long outage: a 3-hour outage at 10 reports a second, in
//! simulated time (the reports come as fast as the agent takes them; what it holds depends on
//! how many, not how fast). The release agent runs as deployed: its own process, the HEH
//! defaults of its configuration (`[outbox]` with a file and no `cap`), its device a program
//! that prints the reports. The broker is unreachable from the start (through a cut proxy), then
//! comes back, and the outbox drains. Its resident memory is read from /proc all along.
//!
//! ```sh
//! cargo build --release -p ebadge-heh --bin ebadge-heh --example outage
//! EBADGE_TEST_DIR=target/tmp-agent target/release/examples/outage [REPORTS [CAP]]
//! ```
//!
//! REPORTS defaults to 108,000 (3 h × 3,600 s × 10); CAP, if given, is written as `[outbox]
//! cap` (else the agent's HEH default). The broker is the test broker of
//! `EBADGE_TEST_DIR` (booted if needed; stop it with `ebadge broker down --dir`). Prints the peak
//! resident memory (`VmHWM`) at the end of the outage and after the drain, what the outbox kept
//! and what it dropped.

use ebadge_bus::EntityName;
use ebadge_heh::config::AgentConfig;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

const VPP: &str = "agent-outage-vpp";
const HEH: &str = "agent-outage-heh";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("device") {
        device(args[1].parse().expect("device COUNT"));
    }
    let reports: u64 = args
        .first()
        .map_or(108_000, |n| n.parse().expect("REPORTS"));
    let cap: Option<u64> = args.get(1).map(|n| n.parse().expect("CAP"));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(measure(reports, cap));
}

/// The device: `count` reports on standard output as fast as they are taken, then nothing until
/// its input closes (the agent is gone).
fn device(count: u64) -> ! {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for n in 0..count {
        let report = ebadge_sim::bench::stamped_report(n);
        if writeln!(out, "{}", report.to_json()).is_err() {
            std::process::exit(0);
        }
    }
    let _ = out.flush();
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    std::process::exit(0)
}

/// What the outbox's file says: (taken, waiting). Every report takes the next sequence number
/// (from 1, never reused), so the highest one is how many the agent took; the table `failed` is
/// pruned, so what was dropped is the difference. (0, 0) while the file is being created.
fn outbox(db: &Path) -> (u64, u64) {
    let query = || -> rusqlite::Result<(u64, u64)> {
        let db =
            rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        db.query_row(
            "SELECT MAX(COALESCE((SELECT MAX(seq) FROM outbox), 0), COALESCE((SELECT MAX(seq) FROM failed), 0)), (SELECT COUNT(*) FROM outbox)",
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )
    };
    query().unwrap_or((0, 0))
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

async fn measure(reports: u64, cap: Option<u64>) {
    let here = std::env::current_exe().unwrap();
    let agent = here.parent().unwrap().parent().unwrap().join("ebadge-heh");
    assert!(
        agent.exists(),
        "{} is missing: cargo build --release -p ebadge-heh --bin ebadge-heh",
        agent.display()
    );
    let profile = ebadge_testkit::profile().await;
    let registry = ebadge_admin::registry::Builder::new()
        .entity(VPP, None)
        .heh(HEH, VPP)
        .build()
        .unwrap();
    ebadge_testkit::provision_beside(&registry).await;
    let admin = ebadge_testkit::admin().await;
    let vpp_inbox = ebadge_bus::conventions::inbox_queue(&EntityName::new(VPP).unwrap());
    admin.purge_queue("/", &vpp_inbox).await.unwrap();

    let (_, port) = profile.host_and_port().unwrap();
    let proxy = ebadge_testkit::proxy::Proxy::start(([127, 0, 0, 1], port).into())
        .await
        .unwrap();
    proxy.cut();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("heh.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"{HEH}\"\ncontroller = \"{VPP}\"\n[bus]\namqps_url = \"amqps://localhost:{}\"\nca = {:?}\ncerts = {:?}\n[outbox]\npath = \"outbox.sqlite\"\n{}[device]\ncommand = [{:?}, \"device\", \"{reports}\"]\n[failsafe]\nafter_seconds = 60\nbehaviour = \"end\"\n",
            proxy.addr.port(),
            profile.ca,
            profile.certs,
            cap.map_or(String::new(), |c| format!("cap = {c}\n")),
            here,
        ),
    )
    .unwrap();
    let cap = AgentConfig::load(&config).unwrap().client().outbox_cap as u64;
    let db = dir.path().join("outbox.sqlite");
    let log = dir.path().join("agent.log");
    let mut child = tokio::process::Command::new(&agent)
        .arg("--config")
        .arg(&config)
        // As the unit runs it (EBADGE_LOG=info), its log to a file.
        .env("EBADGE_LOG", "info")
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    println!(
        "agent {} (pid {pid}), outbox cap {cap}, {reports} reports with the broker unreachable",
        agent.display()
    );

    let started = Instant::now();
    let mut last_print = Instant::now();
    loop {
        let (taken, waiting) = outbox(&db);
        let dropped = taken - waiting;
        if last_print.elapsed() >= Duration::from_secs(15) {
            println!(
                "  {:>5.0} s: {taken} taken ({waiting} waiting, {dropped} dropped), RSS {} KiB, peak {} KiB",
                started.elapsed().as_secs_f64(),
                status_kib(pid, "VmRSS:"),
                status_kib(pid, "VmHWM:")
            );
            last_print = Instant::now();
        }
        if taken >= reports {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the agent ended: {status}; its log: {}", log.display());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let outage_seconds = started.elapsed().as_secs_f64();
    // A few ticks more: the agent reports what it gave up once a second.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (outage_peak, outage_rss) = (status_kib(pid, "VmHWM:"), status_kib(pid, "VmRSS:"));
    let (taken, waiting) = outbox(&db);
    let dropped = taken - waiting;
    println!(
        "outage over after {outage_seconds:.0} s: {waiting} waiting, {dropped} dropped (the oldest), RSS {outage_rss} KiB, peak {outage_peak} KiB"
    );

    proxy.restore();
    let drain = Instant::now();
    while outbox(&db).1 > 0 {
        assert!(
            drain.elapsed() < Duration::from_secs(600),
            "the outbox did not drain in 10 minutes; the agent's log: {}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let drain_peak = status_kib(pid, "VmHWM:");
    println!(
        "drained in {:.0} s: RSS {} KiB, peak {drain_peak} KiB",
        drain.elapsed().as_secs_f64(),
        status_kib(pid, "VmRSS:")
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let lines = |what: &str| text.lines().filter(|l| l.contains(what)).count();
    println!(
        "{{\"reports\":{reports},\"outbox_cap\":{cap},\"waiting_at_end_of_outage\":{waiting},\"dropped\":{dropped},\"peak_rss_kib_outage\":{outage_peak},\"peak_rss_kib_with_drain\":{drain_peak},\"agent_log_lines_given_up\":{},\"client_log_lines_dropped\":{}}}",
        lines("were given up"),
        lines("outbox full: dropped")
    );
    let _ = child.kill().await;
    admin.purge_queue("/", &vpp_inbox).await.unwrap();
}
