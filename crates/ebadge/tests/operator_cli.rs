//! Operator commands that need no broker: registry errors, definitions export, PKI, and the
//! errors that say what to do when the broker or profile is missing.

use std::process::{Command, Output};

fn ebadge(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ebadge"))
        .args(args)
        .current_dir(dir)
        .env_remove("EBADGE_PROFILE")
        .output()
        .expect("ebadge runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const REGISTRY: &str = "[[entity]]\nname = \"ts\"\n[[heh]]\nname = \"heh-a\"\noperator = \"ts\"\n[[group]]\nname = \"all-hehs\"\nsender = \"ts\"\nmembers = [\"heh-a\"]\n";

#[test]
fn a_bad_registry_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("r.toml"),
        "[[entity]]\nname = \"ts\"\n\n[[heh]]\nname = \"HEH_A\"\noperator = \"ts\"\n",
    )
    .unwrap();
    let out = ebadge(dir.path(), &["provision", "r.toml", "--dry-run"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("r.toml: line 5: \"HEH_A\" is not a valid name"),
        "{err}"
    );
    assert!(err.contains("1-63 characters of a-z"), "{err}");
}

#[test]
fn definitions_export_holds_what_the_registry_implies() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("r.toml"), REGISTRY).unwrap();
    let out = ebadge(
        dir.path(),
        &["provision", "r.toml", "--export-definitions", "defs.json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let defs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("defs.json")).unwrap()).unwrap();
    let names = |section: &str, key: &str| -> Vec<String> {
        defs[section]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v[key].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names("users", "name"), ["heh-a", "ts"]);
    assert!(
        defs["users"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["password_hash"] == "")
    );
    let exchanges = names("exchanges", "name");
    for x in [
        "heh-a-to-ts",
        "ts-to-heh-a",
        "ts-to-all-hehs",
        "private-ts-in",
    ] {
        assert!(exchanges.contains(&x.to_owned()), "{x} in {exchanges:?}");
    }
    // An HEH reads in one hop: its operator's exchanges are bound straight to its inbox.
    assert!(!exchanges.contains(&"private-heh-a-in".to_owned()));
    let bindings: Vec<(String, String)> = defs["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let s = |k: &str| b[k].as_str().unwrap().to_owned();
            (s("source"), s("destination"))
        })
        .collect();
    for (source, destination) in [
        ("ts-to-heh-a", "private-heh-a-inbox"),
        ("ts-to-all-hehs", "private-heh-a-inbox"),
        ("heh-a-to-ts", "private-ts-in"),
        ("private-ts-in", "private-ts-inbox"),
    ] {
        assert!(
            bindings.contains(&(source.into(), destination.into())),
            "{source} -> {destination} in {bindings:?}"
        );
    }
    // Quarantines are made by the clients on first use, not provisioned.
    assert_eq!(
        names("queues", "name"),
        ["private-heh-a-inbox", "private-ts-inbox"]
    );
    let queue_types = |defs: &serde_json::Value| -> Vec<(String, String)> {
        defs["queues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| {
                let kind = q["arguments"]["x-queue-type"].as_str().unwrap();
                (q["name"].as_str().unwrap().to_owned(), kind.to_owned())
            })
            .collect()
    };
    assert!(
        queue_types(&defs).iter().all(|(_, t)| t == "classic"),
        "one node"
    );
    let out = ebadge(
        dir.path(),
        &[
            "provision",
            "r.toml",
            "--export-definitions",
            "cluster.json",
            "--cluster-nodes",
            "3",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let cluster: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("cluster.json")).unwrap()).unwrap();
    let pair = |name: &str, kind: &str| (name.to_owned(), kind.to_owned());
    assert_eq!(
        queue_types(&cluster),
        [
            pair("private-heh-a-inbox", "classic"),
            pair("private-ts-inbox", "quorum")
        ],
        "a cluster replicates every inbox but the HEHs'"
    );
    let perms = &defs["permissions"].as_array().unwrap()[0];
    assert_eq!(perms["user"], "heh-a");
    assert_eq!(
        perms["read"],
        "^((?!private-).*-to-heh-a|ts-to-all-hehs|private-heh-a-.*)$"
    );
    let policy = |name: &str| {
        defs["policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(policy("ebadge-queues")["definition"]["message-ttl"], 900000);
    assert_eq!(
        policy("ebadge-quarantine")["definition"]["message-ttl"],
        604_800_000
    );
}

#[test]
fn pki_issues_client_certificates_named_by_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let out = ebadge(dir.path(), &["pki", "issue", "heh-a"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("run `ebadge pki init` first"),
        "{}",
        stderr(&out)
    );
    assert!(ebadge(dir.path(), &["pki", "init"]).status.success());
    assert!(
        ebadge(dir.path(), &["pki", "issue", "heh-a"])
            .status
            .success()
    );
    let out = ebadge(dir.path(), &["pki", "issue", "Bad.Name"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("1-63 characters"), "{}", stderr(&out));
    let out = ebadge(dir.path(), &["pki", "list", "--json"]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = lines
        .iter()
        .map(|l| l["common_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["eBADGE bus CA", "eBADGE broker", "heh-a"]);
    assert!(lines[2]["days_left"].as_i64().unwrap() >= 364);
}

#[test]
fn operator_commands_without_a_profile_say_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = ebadge(dir.path(), &["audit"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("ebadge broker up"),
        "{}",
        stderr(&out)
    );
    let out = ebadge(dir.path(), &["broker", "status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("`ebadge broker up` starts one"),
        "{}",
        stderr(&out)
    );
}

/// A broker directory `b` set up for one node on the host's network (never started).
fn one_node_broker_state(b: &std::path::Path) {
    std::fs::create_dir(b).unwrap();
    std::fs::write(
        b.join("broker.toml"),
        "admin_password = \"x\"\ncookie = \"Y\"\n[[nodes]]\nname = \"ebadge-1@localhost\"\n\
         dir = \"node\"\namqps_port = 1\nmanagement_port = 2\ndist_port = 3\n",
    )
    .unwrap();
}

#[test]
fn a_two_node_cluster_and_a_changed_size_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = ebadge(dir.path(), &["broker", "up", "--dir", "b", "--nodes", "2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("use 1 or 3"), "{}", stderr(&out));
    // A directory set up for one node is not silently turned into a cluster.
    one_node_broker_state(&dir.path().join("b"));
    let out = ebadge(dir.path(), &["broker", "up", "--dir", "b", "--nodes", "3"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("holds a broker of 1 node(s), not 3"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn links_of_a_broker_set_up_without_namespaces_are_not_cut_and_the_error_says_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    one_node_broker_state(&dir.path().join("b"));
    let out = ebadge(dir.path(), &["broker", "net", "--dir", "b", "isolate", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("was not set up with --namespaces")
            && stderr(&out).contains("ebadge broker up --dir NEW --nodes 3 --namespaces"),
        "{}",
        stderr(&out)
    );
    // Asked of the existing directory, namespaces are refused before anything starts.
    let out = ebadge(
        dir.path(),
        &["broker", "up", "--dir", "b", "--nodes", "1", "--namespaces"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("was set up with namespaces none"),
        "{}",
        stderr(&out)
    );
    // An end is a node number from 1, or `host`.
    let out = ebadge(
        dir.path(),
        &["broker", "net", "--dir", "b", "cut", "0", "host"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("a node number"), "{}", stderr(&out));
}

#[test]
fn a_missing_rabbitmq_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ebadge"))
        .args(["broker", "up", "--dir", "b"])
        .current_dir(dir.path())
        .env("EBADGE_RABBITMQ_SERVER", "/nonexistent/rabbitmq-server")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("apt-get install -y rabbitmq-server"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_missing_certificate_says_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("profile.toml"),
        "amqps_url = \"amqps://localhost:1\"\nca = \"ca.pem\"\ncerts = \"clients\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("ca.pem"), "").unwrap();
    let out = ebadge(
        dir.path(),
        &["listen", "--as", "heh-a", "--profile", "profile.toml"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("cannot read client certificate") && err.contains("clients/heh-a.pem"),
        "{err}"
    );
    assert!(err.contains("ebadge pki issue NAME"), "{err}");
}

#[test]
fn an_overlong_tap_pattern_is_refused_before_it_reaches_amqp() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = "a".repeat(300);
    let out = ebadge(dir.path(), &["tap", "--as", "vpp", &pattern]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("a binding key has at most 255"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn output_into_a_closed_pipe_ends_quietly_with_status_0() {
    // More output than a pipe holds (64 KiB), so the writer meets the closed pipe.
    let dir = tempfile::tempdir().unwrap();
    let line = "{\"msg\":\"get_capabilities\",\"device\":\"EV01\"}\n";
    std::fs::write(dir.path().join("many.jsonl"), line.repeat(50_000)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ebadge"))
        .args(["msg", "check", "many.jsonl"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    assert_eq!(first.trim(), "ok get_capabilities");
    // The reader is gone now, as `head` would be.
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "nothing but silence");

    // `println!` (here the schemas), with the pipe closed before the first write.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ebadge"))
        .args(["msg", "schema"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "nothing but silence");
}
