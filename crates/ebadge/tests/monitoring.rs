//! Monitoring as an operator runs it: the Prometheus configuration, alert rules and their unit
//! tests pass promtool; a real Prometheus (Debian's, started here on a free port) scrapes the
//! demo's `--metrics` endpoint and the broker's rabbitmq_prometheus plugin, finds plausible
//! values, evaluates every alert rule without error and every dashboard query as valid PromQL.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(file)
        .canonicalize()
        .unwrap_or_else(|e| panic!("deploy/{file}: {e}"))
}

/// Runs promtool with `args`; panics with its output unless it succeeds.
fn promtool(args: &[&str], file: &Path) {
    let out = Command::new(PROMTOOL)
        .args(args)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("{PROMTOOL}: {e} (make deps installs Debian's prometheus)"));
    assert!(
        out.status.success(),
        "promtool {args:?} {}:\n{}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_prometheus_configuration_is_valid() {
    promtool(&["check", "config"], &deploy("prometheus/prometheus.yml"));
}

#[test]
fn the_alert_rules_are_valid_and_pass_their_unit_tests() {
    promtool(&["check", "rules"], &deploy("prometheus/rules/ebadge.yml"));
    promtool(
        &["test", "rules"],
        &deploy("prometheus/tests/ebadge.test.yml"),
    );
}

/// Every alert has a unit test, so none can be added untested.
#[test]
fn every_alert_rule_has_a_unit_test() {
    let rules = std::fs::read_to_string(deploy("prometheus/rules/ebadge.yml")).unwrap();
    let tests = std::fs::read_to_string(deploy("prometheus/tests/ebadge.test.yml")).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 10, "{alerts:?}");
    for alert in alerts {
        assert!(
            tests.contains(&format!("alertname: {alert}\n")),
            "{alert} has no test in deploy/prometheus/tests/ebadge.test.yml"
        );
    }
}

/// The PromQL expressions of the dashboard's panels.
fn dashboard_queries() -> Vec<String> {
    let text = std::fs::read_to_string(deploy("grafana/dashboards/ebadge-bus.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let queries: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    assert!(queries.len() >= 10, "{queries:?}");
    queries
}

/// The alert rules' expressions.
fn rule_expressions(prometheus: &Prometheus) -> Vec<(String, String, String)> {
    let rules = prometheus.get("/api/v1/rules", &[]);
    rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .map(|r| {
            (
                r["name"].as_str().unwrap_or("").to_owned(),
                r["health"].as_str().unwrap_or("").to_owned(),
                r["lastError"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// A Prometheus server in a temporary directory; killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Prometheus {
    /// Starts Prometheus scraping every second with `scrape_configs` (YAML) and the bus's alert
    /// rules; waits until it is ready.
    fn start(scrape_configs: &str) -> Prometheus {
        assert!(
            Path::new(PROMETHEUS).exists(),
            "{PROMETHEUS} is missing: make deps installs Debian's prometheus"
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n{scrape_configs}",
                deploy("prometheus/rules/ebadge.yml").display()
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let prometheus = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        for _ in 0..300 {
            let ready = format!("{}/-/ready", prometheus.url);
            if block_on(ebadge_testkit::http_get(&ready)).is_some_and(|(status, _)| status == 200) {
                return prometheus;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(prometheus._dir.path().join("prometheus.log"));
        panic!("Prometheus did not become ready in 30 s: {log:?}");
    }

    /// `GET path?params` of its HTTP API, as JSON.
    fn get(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let url = reqwest::Url::parse_with_params(&format!("{}{path}", self.url), params).unwrap();
        block_on(async { reqwest::get(url).await?.json::<Value>().await }).unwrap()
    }

    /// An instant query's result vector; panics unless the query is valid.
    fn query(&self, expr: &str) -> Vec<Value> {
        let answer = self.get("/api/v1/query", &[("query", expr)]);
        assert_eq!(answer["status"], "success", "{expr}: {answer}");
        answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits (at most 15 s) until the job `job` has been scraped after `since`.
    fn wait_for_scrape(&self, job: &str, since: std::time::SystemTime) {
        let since = since
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            let result = self.query(&format!("timestamp(up{{job=\"{job}\"}})"));
            let last = result
                .first()
                .and_then(|r| r["value"][1].as_str()?.parse::<f64>().ok());
            if last.is_some_and(|t| t > since) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("Prometheus did not scrape {job} within 15 s");
    }

    /// The value of a query that yields one series.
    fn value(&self, expr: &str) -> f64 {
        let result = self.query(expr);
        assert_eq!(result.len(), 1, "{expr} gives one series: {result:?}");
        result[0]["value"][1].as_str().unwrap().parse().unwrap()
    }
}

/// Runs one future to completion: the test is synchronous, its HTTP client async.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn write_file(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_owned()
}

/// Serves what `text` holds at each `GET` on a free port, for the rest of the test; returns the
/// address.
fn serve_text(text: Arc<Mutex<String>>) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let text = text.lock().unwrap().clone();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    address
}

/// A running demo (its standard error read as it comes, so it never blocks on a full pipe),
/// killed when dropped.
struct Demo(Child, Option<std::thread::JoinHandle<String>>);

impl Demo {
    fn new(mut child: Child) -> Demo {
        use std::io::Read;
        let mut pipe = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        });
        Demo(child, Some(reader))
    }

    /// Kills it; returns what it wrote on standard error.
    fn stop(mut self) -> String {
        let _ = self.0.kill();
        let _ = self.0.wait();
        self.1.take().unwrap().join().unwrap()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ebadge(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ebadge"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_real_prometheus_scrapes_the_demo_and_the_broker_and_evaluates_every_rule_and_panel() {
    let dir = ebadge_testkit::test_dir().join("ebadge-monitoring-broker");
    let dir_arg = dir.to_str().unwrap();
    let out = ebadge(&["broker", "up", "--json", "--dir", dir_arg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let plugin = status["nodes"][0]["prometheus_url"].as_str().unwrap();
    let plugin_target = plugin
        .trim_start_matches("http://")
        .trim_end_matches("/metrics");
    let demo_port = free_port();

    // The audit's metrics, served as node_exporter's textfile collector would (written after
    // the demo, which issues the clients' certificates).
    let audit = Arc::new(Mutex::new(String::new()));
    let audit_target = serve_text(audit.clone());

    let prometheus = Prometheus::start(&format!(
        "  - job_name: rabbitmq\n    static_configs:\n      - targets: ['{plugin_target}']\n\
         \x20 - job_name: rabbitmq-queues\n    metrics_path: /metrics/detailed\n    params:\n      family: [queue_coarse_metrics, queue_consumer_count]\n    static_configs:\n      - targets: ['{plugin_target}']\n\
         \x20 - job_name: ebadge\n    static_configs:\n      - targets: ['127.0.0.1:{demo_port}']\n\
         \x20 - job_name: node\n    static_configs:\n      - targets: ['{audit_target}']\n"
    ));

    let hehs = 10u64;
    let metrics_address = format!("127.0.0.1:{demo_port}");
    // The demo holds its endpoint after the summary while the checks below run; killed at the
    // end (a demo that ended would leave its series stale).
    let mut demo = Command::new(env!("CARGO_BIN_EXE_ebadge"))
        .args([
            "demo",
            "--hehs",
            &hehs.to_string(),
            "--seconds",
            "6",
            "--json",
        ])
        .args([
            "--dir",
            dir_arg,
            "--metrics",
            &metrics_address,
            "--hold",
            "300",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = demo.stdout.take().unwrap();
    let demo = Demo::new(demo);
    let mut summary_line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut summary_line).unwrap();
    let Ok(summary) = serde_json::from_str::<Value>(&summary_line) else {
        panic!("the demo failed: {}", demo.stop());
    };
    // The demo closed its clients before printing: a scrape from now on has the final figures.
    // Two scrapes: a rate needs two samples of a series the campaign's last second created.
    for _ in 0..2 {
        prometheus.wait_for_scrape("ebadge", std::time::SystemTime::now());
    }

    // The client's series, as the demo counted them. Reports that arrived between the summary
    // and the close count in the metric, not in the summary: one round at most.
    let reports = summary["reports_received"].as_u64().unwrap() as f64;
    let received =
        prometheus.value(r#"ebadge_messages_received_total{entity="vpp",type="report"}"#);
    assert!(
        (reports..=reports + hehs as f64).contains(&received),
        "Prometheus has {received} reports received, the demo counted {reports}"
    );
    assert_eq!(
        prometheus.value(r#"max_over_time(ebadge_connected{entity="fleet"}[10m])"#),
        hehs as f64,
        "every HEH of the fleet was online"
    );
    assert!(
        prometheus.value(r#"ebadge_messages_confirmed_total{entity="fleet"}"#)
            >= summary["heh_messages_confirmed"].as_f64().unwrap()
    );
    assert!(
        prometheus
            .value(r#"ebadge_request_round_trip_seconds_count{entity="vpp",type="activate"}"#)
            >= 1.0,
        "the campaign's activations were answered and timed"
    );
    assert!(prometheus.value(r#"ebadge_publish_confirm_seconds_count{entity="fleet"}"#) >= 1.0);

    // The broker's series: the node up, the fleet's connections seen, per-inbox figures.
    assert_eq!(prometheus.value(r#"up{job="rabbitmq"}"#), 1.0);
    assert!(prometheus.value("max_over_time(rabbitmq_connections[10m])") >= hehs as f64);
    assert_eq!(
        prometheus
            .query(r#"rabbitmq_detailed_queue_consumers{queue="private-vpp-inbox"}"#)
            .len(),
        1,
        "the VPP's inbox has its per-queue series"
    );
    assert_eq!(
        prometheus.value(r#"rabbitmq_alarms_memory_used_watermark"#),
        0.0
    );

    // The audit's: no violation, and every certificate (the CA, the server, the clients) with
    // its expiry, all far off.
    let profile = dir.join("profile.toml");
    let out = ebadge(&["audit", "--metrics", "--profile", profile.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lint = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(write_file(&dir.join("audit.prom"), &text)).unwrap())
        .output()
        .unwrap();
    assert!(lint.status.success(), "promtool check metrics: {lint:?}");
    *audit.lock().unwrap() = text;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let certificates = loop {
        let found = prometheus.query("ebadge_certificate_expiry_timestamp_seconds");
        if found.len() as u64 >= hehs + 2 || std::time::Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(certificates.len() as u64 >= hehs + 2, "{certificates:?}");
    assert_eq!(prometheus.value("sum(ebadge_audit_violations)"), 0.0);
    assert!(
        prometheus.value("min(ebadge_certificate_expiry_timestamp_seconds - time()) / 86400")
            > 300.0
    );

    // Every dashboard query is valid PromQL against this data, and most find series.
    let queries = dashboard_queries();
    let empty: Vec<&String> = queries
        .iter()
        .filter(|q| prometheus.query(q).is_empty())
        .collect();
    // Without haproxy (one node) or a quarantine, those panels are empty here.
    let may_be_empty = ["haproxy_", "-quarantine"];
    for q in &empty {
        assert!(
            may_be_empty.iter().any(|m| q.contains(m)),
            "the dashboard query {q} finds nothing on a running demo"
        );
    }

    // Every alert rule was evaluated on real data without error.
    let rules = rule_expressions(&prometheus);
    assert!(rules.len() >= 10, "{rules:?}");
    for (name, health, error) in rules {
        assert_eq!(health, "ok", "the rule {name} fails on real data: {error}");
    }

    let stderr = demo.stop();
    assert!(
        stderr.contains(&format!("metrics: http://{metrics_address}/metrics"))
            && stderr.contains(&format!("metrics: {plugin} (RabbitMQ")),
        "the demo says where the metrics are: {stderr}"
    );
}
