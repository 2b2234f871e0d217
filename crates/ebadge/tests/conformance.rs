//! The conformance kit (`ebadge conformance heh`) against four HEHs that should pass it, each on
//! another stack, and one broken on purpose that must fail exactly the checks it breaks:
//! - our agent (`ebadge-heh`) with a device program in Python (`docs/partners/agent.sh`);
//! - plain pika, the seed's stack (`docs/partners/pika_heh.py`, Debian's python3-pika);
//! - the official RabbitMQ Java client (`docs/partners/java/EbadgeHeh.java`, compiled here
//!   with Debian's JDK, librabbitmq-client-java and Jackson);
//! - this project's Python package (`docs/partners/ebadge_heh.py`, in `.venv`);
//! - the pika HEH with `EBADGE_KIT_BREAK`: a wrong routing key, naive times, no answer to
//!   `activate`, no buffer across outages.
//!
//! And in the VPP role (the kit a fleet of HEHs): a pika VPP (`docs/partners/pika_vpp.py`)
//! passes, and fails `acknowledges-answers` alone when it never acknowledges.
//!
//! The kit restarts its broker, so it has one of its own (`ebadge-conformance-broker`, which
//! `make test` stops at the end), and the runs take turns.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// One run at a time: each cuts links and restarts the broker.
static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn broker_dir() -> PathBuf {
    ebadge_testkit::test_dir().join("ebadge-conformance-broker")
}

/// Runs the kit in the HEH role as `name` against `command`; its exit code and JSON report.
fn kit(name: &str, command: &str, more: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["--outage", "5"];
    all.extend(more);
    kit_as("heh", name, command, &all)
}

/// Runs the kit in `role` as `name` against `command` on the kit's broker; its exit code and
/// JSON report.
fn kit_as(role: &str, name: &str, command: &str, more: &[&str]) -> (i32, serde_json::Value) {
    let dir = broker_dir();
    let mut all = vec!["--dir", dir.to_str().unwrap()];
    all.extend(more);
    kit_on(role, name, command, &all)
}

/// Runs the kit with `more` naming the broker.
fn kit_on(role: &str, name: &str, command: &str, more: &[&str]) -> (i32, serde_json::Value) {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let mut args = vec![
        "conformance",
        role,
        "--as",
        name,
        "--json",
        "--command",
        command,
    ];
    args.extend(more);
    let output = common::ebadge(&args, "");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "the kit prints its report as JSON ({e}); it printed {} and {stderr}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    eprintln!("{stderr}");
    (output.status.code().unwrap_or(-1), report)
}

/// The ids of the checks with `outcome`.
fn with_outcome(report: &serde_json::Value, outcome: &str) -> BTreeSet<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["outcome"] == outcome)
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Every check passed (none skipped), and the exit code says so.
fn passes(name: &str, command: &str) {
    all_pass(kit(name, command, &[]), 15, command);
}

fn all_pass((code, report): (i32, serde_json::Value), checks: usize, command: &str) {
    let checks_run = report["checks"].as_array().unwrap();
    assert_eq!(checks_run.len(), checks, "{report:#}");
    let checks = checks_run;
    assert_eq!(
        with_outcome(&report, "pass").len(),
        checks.len(),
        "every check passes for {command}: {report:#}"
    );
    assert_eq!(code, 0);
}

fn cd_workspace(command: &str) -> String {
    format!("cd {} && {command}", workspace().display())
}

#[test]
fn our_agent_with_a_device_program_passes() {
    let agent = workspace().join("target/debug/ebadge-heh");
    assert!(
        agent.exists(),
        "{} is missing: `cargo test --workspace` builds it",
        agent.display()
    );
    passes(
        "heh-00000000c0d1",
        &cd_workspace(&format!(
            "docs/partners/agent.sh {} /usr/bin/python3 docs/partners/agent_device.py",
            agent.display()
        )),
    );
}

#[test]
fn a_plain_pika_heh_passes() {
    passes(
        "heh-00000000c0d2",
        &cd_workspace("/usr/bin/python3 docs/partners/pika_heh.py"),
    );
}

/// The classpath of Debian's RabbitMQ Java client and Jackson.
const JAVA_CLASSPATH: &str = "/usr/share/java/amqp-client.jar:/usr/share/java/slf4j-api.jar:/usr/share/java/jackson-databind.jar:/usr/share/java/jackson-core.jar:/usr/share/java/jackson-annotations.jar";

#[test]
fn an_heh_on_the_official_rabbitmq_java_client_passes() {
    let classes = tempfile::tempdir().unwrap();
    let source = workspace().join("docs/partners/java/EbadgeHeh.java");
    let javac = std::process::Command::new("javac")
        .args(["-cp", JAVA_CLASSPATH, "-d"])
        .arg(classes.path())
        .arg(&source)
        .output()
        .expect("javac runs: `make deps` installs default-jdk-headless");
    assert!(
        javac.status.success(),
        "{} compiles: {}",
        source.display(),
        String::from_utf8_lossy(&javac.stderr)
    );
    passes(
        "heh-00000000c0d3",
        &format!(
            "java -cp {JAVA_CLASSPATH}:{} EbadgeHeh",
            classes.path().display()
        ),
    );
}

#[test]
fn an_heh_on_our_python_package_passes() {
    let python = workspace().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: `make python` makes it",
        python.display()
    );
    passes(
        "heh-00000000c0d4",
        &cd_workspace(&format!("{} docs/partners/ebadge_heh.py", python.display())),
    );
}

#[test]
fn a_broken_heh_fails_exactly_the_checks_it_breaks() {
    let junit = tempfile::NamedTempFile::new().unwrap();
    let (code, report) = kit(
        "heh-00000000c0d5",
        &cd_workspace(
            "EBADGE_KIT_BREAK=routing-key,naive-times,no-activate,no-buffer /usr/bin/python3 docs/partners/pika_heh.py",
        ),
        &["--junit", junit.path().to_str().unwrap()],
    );
    let failed = with_outcome(&report, "fail");
    let expected: BTreeSet<String> = [
        "routing-keys",
        "valid-messages",
        "answers-activate",
        "buffers-across-link-cut",
        "buffers-across-broker-restart",
    ]
    .map(String::from)
    .into();
    assert_eq!(failed, expected, "{report:#}");
    assert_eq!(
        with_outcome(&report, "pass").len(),
        10,
        "the rest passes: {report:#}"
    );
    assert_eq!(code, 1, "a failed check is exit status 1");
    let check = |id: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()["detail"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(check("routing-keys").contains("\"data.report\""));
    assert!(check("valid-messages").contains("has no offset"));
    let xml = std::fs::read_to_string(junit.path()).unwrap();
    assert!(
        xml.contains("tests=\"15\" failures=\"5\" skipped=\"0\""),
        "{xml}"
    );
}

#[test]
fn a_client_that_exits_at_once_fails_with_its_output_and_the_rest_is_skipped() {
    let (code, report) = kit(
        "heh-00000000c0d6",
        "echo 'cannot find my certificate' >&2; exit 3",
        &[],
    );
    assert_eq!(code, 1);
    let connects = &report["checks"][0];
    assert_eq!(connects["id"], "connects");
    assert_eq!(connects["outcome"], "fail");
    let detail = connects["detail"].as_str().unwrap();
    assert!(detail.contains("exited (exit status: 3)"), "{detail}");
    assert!(detail.contains("cannot find my certificate"), "{detail}");
    assert_eq!(with_outcome(&report, "skip").len(), 13, "{report:#}");
}

#[test]
fn a_plain_pika_vpp_passes_and_fails_only_acknowledgement_when_it_never_acknowledges() {
    let command = cd_workspace("/usr/bin/python3 docs/partners/pika_vpp.py");
    all_pass(kit_as("vpp", "pika-vpp", &command, &[]), 8, &command);

    let (code, report) = kit_as(
        "vpp",
        "pika-vpp",
        &cd_workspace("EBADGE_KIT_BREAK=no-ack /usr/bin/python3 docs/partners/pika_vpp.py"),
        &["--answer-within", "2"],
    );
    assert_eq!(
        with_outcome(&report, "fail"),
        BTreeSet::from(["acknowledges-answers".to_owned()]),
        "{report:#}"
    );
    assert_eq!(code, 1);
    let detail = report["checks"][2]["detail"].as_str().unwrap();
    assert!(detail.contains("5 unacknowledged"), "{detail}");
}

#[test]
fn on_a_given_broker_every_check_runs_but_the_restart_and_the_log() {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(ebadge_testkit::profile());
    let profile =
        ebadge_admin::broker::LocalBroker::new(ebadge_testkit::broker_dir()).profile_path();
    let work = tempfile::tempdir().unwrap();
    let (code, report) = kit_on(
        "heh",
        "heh-00000000c0d8",
        &cd_workspace("/usr/bin/python3 docs/partners/pika_heh.py"),
        &[
            "--profile",
            profile.to_str().unwrap(),
            "--work-dir",
            work.path().to_str().unwrap(),
            "--outage",
            "5",
        ],
    );
    assert_eq!(
        with_outcome(&report, "skip"),
        BTreeSet::from(
            [
                "survives-broker-restart",
                "buffers-across-broker-restart",
                "no-refusals"
            ]
            .map(String::from)
        ),
        "{report:#}"
    );
    assert_eq!(with_outcome(&report, "pass").len(), 12, "{report:#}");
    assert_eq!(code, 0);
}
