//! The agent cross-built for the boards HEHs run on (`make cross`: Raspberry Pi 2/3 32-bit and
//! 64-bit ARM), run under qemu-user against the local broker: its device's report arrives.

use ebadge_bus::{Client, ClientConfig, EntityName};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The cross-built agent for `target`, as `make cross` leaves it.
fn agent(target: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target")
        .join(target)
        .join("debug/ebadge-heh");
    assert!(
        path.exists(),
        "{} is missing: `make cross` builds it (make test runs it first)",
        path.display()
    );
    path
}

async fn runs_under_qemu_and_its_report_arrives(
    target: &str,
    qemu: &str,
    sysroot: &str,
    who: &str,
) {
    let profile = ebadge_testkit::profile().await;
    let (heh, vpp) = (format!("agent-{who}-heh"), format!("agent-{who}-vpp"));
    let controller = Client::connect(ClientConfig::new(
        profile.clone(),
        EntityName::new(&vpp).unwrap(),
    ))
    .await
    .unwrap();
    let mut inbox = controller.inbox().unwrap();

    // This run's report carries a number of its own, so an earlier run's cannot pass for it.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        % 1_000_000_000;
    let dir = tempfile::tempdir().unwrap();
    let device = dir.path().join("device.sh");
    let report = format!(
        r#"{{"msg":"report","from":"2030-01-01T10:00:00Z","to":"2030-01-01T10:01:00Z","resolution":60,"values":{{"total.p":[1.5]}},"heh_id":null,"ext_run":{run}}}"#
    );
    std::fs::write(
        &device,
        format!("#!/bin/sh\necho '{report}'\nexec cat > /dev/null\n"),
    )
    .unwrap();
    let config = dir.path().join("heh.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"{heh}\"\ncontroller = \"{vpp}\"\n[bus]\namqps_url = \"{}\"\nca = \"{}\"\ncerts = \"{}\"\n[device]\ncommand = [\"sh\", \"{}\"]\n[failsafe]\nafter_seconds = 60\nbehaviour = \"end\"\n",
            profile.amqps_url,
            profile.ca.display(),
            profile.certs.display(),
            device.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(qemu)
        .args(["-L", sysroot])
        .arg(agent(target))
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{qemu}: {e} (make deps installs qemu-user)"));

    let arrived = tokio::time::timeout(Duration::from_secs(90), async {
        loop {
            let incoming = inbox.next().await?;
            incoming.ack();
            let number = incoming
                .message
                .extensions()
                .and_then(|e| e.get("ext_run")?.as_u64());
            if number == Some(run) {
                return Some(incoming);
            }
        }
    })
    .await;
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    let incoming = arrived
        .unwrap_or_else(|_| {
            panic!(
                "no report from the {target} agent within 90 s; its log:\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
        .unwrap();
    assert_eq!(incoming.from.as_str(), heh);
    assert_eq!(incoming.message.type_name(), "report");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aarch64_agent_runs_under_qemu_and_its_report_arrives() {
    runs_under_qemu_and_its_report_arrives(
        "aarch64-unknown-linux-gnu",
        "qemu-aarch64",
        "/usr/aarch64-linux-gnu",
        "arm64",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_armv7_agent_runs_under_qemu_and_its_report_arrives() {
    runs_under_qemu_and_its_report_arrives(
        "armv7-unknown-linux-gnueabihf",
        "qemu-arm",
        "/usr/arm-linux-gnueabihf",
        "armv7",
    )
    .await;
}
