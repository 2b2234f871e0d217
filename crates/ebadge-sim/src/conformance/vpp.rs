//! The VPP role: the kit is a fleet of HEHs (`EBADGE_HEHS`). The VPP must send each an
//! activation; each HEH of the kit accepts at once; the VPP must consume and acknowledge the
//! answers. Then everything it sent is read back for the rules every message keeps.

use super::client::ClientProcess;
use super::counterpart::Counterpart;
use super::report::{Check, Outcome, Report};
use super::rules::{connects, every_message, refusals};
use super::stage::Stage;
use super::{KitError, KitOptions, Target, seconds};
use ebadge_admin::registry::Builder;
use ebadge_bus::EntityName;
use ebadge_bus::conventions::inbox_queue;
use ebadge_model::{AcceptActivation, Extensions, Id, Message};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The kit's HEHs in the VPP role: `heh-0000c0de0000`, `…0001`, …
pub fn fleet(count: usize) -> Vec<EntityName> {
    (0..count)
        .map(|i| EntityName::new(&format!("heh-0000c0de{i:04x}")).expect("a valid name"))
        .collect()
}

/// Runs the VPP role against `target` with `options.hehs` HEHs.
pub async fn run_vpp(
    broker: &Target,
    options: &KitOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Report, KitError> {
    let started = Instant::now();
    let name = &options.name;
    let hehs = fleet(options.hehs);
    progress(&format!(
        "provisioning {name} and its {} HEHs on {}",
        hehs.len(),
        broker.describe()
    ));
    let registry = hehs
        .iter()
        .fold(
            Builder::new().entity(name.as_str(), Some("vpp")),
            |r, heh| r.heh(heh.as_str(), name.as_str()),
        )
        .build()
        .map_err(|e| KitError::Broker(e.to_string()))?;
    let stage = Stage::prepare(broker, &registry, &options.work_dir, name, None, &hehs).await?;
    let mut kits = Vec::new();
    for heh in &hehs {
        kits.push(Counterpart::start(&stage.profile, heh, name).await?);
    }
    progress(&format!("starting {:?}", options.command));
    let mut process = ClientProcess::start(&options.command, &stage.files, &stage.log)?;
    let mut checks = Vec::new();
    let mut push = |id, section, title, outcome| {
        checks.push(Check {
            id,
            section,
            title,
            outcome,
        })
    };

    progress("waiting for the VPP to consume its inbox");
    let connects = connects(broker, &kits[0], &mut process, &stage.log, options).await;
    let consumed = matches!(connects, Outcome::Pass(_));
    push(
        "connects",
        "D3.2.3 6.1",
        "logs in with its certificate only (EXTERNAL over TLS) and consumes its inbox",
        connects,
    );
    let (activates, acknowledges) = if consumed {
        progress("waiting for an activation to each HEH, and answering each");
        let activated = answer_activations(&kits, Instant::now() + options.start_within).await;
        let activates = if activated.len() == kits.len() {
            Outcome::Pass(format!("all {} HEHs were sent an activation", kits.len()))
        } else {
            Outcome::Fail(format!(
                "{} of {} HEHs were sent an activation within {} (EBADGE_HEHS names them)",
                activated.len(),
                kits.len(),
                seconds(options.start_within)
            ))
        };
        progress("waiting for the VPP to acknowledge the answers");
        let acknowledges = if activated.is_empty() {
            Outcome::Skip("no HEH was sent an activation, so none answered".into())
        } else {
            acknowledged(
                broker,
                name,
                options.answer_within + Duration::from_secs(10),
            )
            .await
        };
        (activates, acknowledges)
    } else {
        let skip = || Outcome::Skip("the VPP never consumed its inbox (see `connects`)".into());
        (skip(), skip())
    };
    push(
        "activates-every-heh",
        "D3.1.3 5.3.1",
        "sends an activate to each of its HEHs",
        activates,
    );
    push(
        "acknowledges-answers",
        "D3.2.3 6.2.3",
        "consumes and acknowledges its HEHs' answers (its inbox ends empty, nothing unacknowledged)",
        acknowledges,
    );
    process.stop(Duration::from_secs(5)).await;
    let seen: Vec<_> = kits.iter().flat_map(|k| k.seen()).collect();
    checks.extend(every_message(&seen, name, consumed));
    checks.push(refusals(broker, stage.log_offset, name.as_str()));
    for kit in kits {
        kit.stop().await;
    }
    Ok(Report {
        role: "vpp",
        client: name.to_string(),
        counterpart: hehs
            .iter()
            .map(EntityName::as_str)
            .collect::<Vec<_>>()
            .join(","),
        command: options.command.clone(),
        client_log: stage.log.display().to_string(),
        seconds: started.elapsed().as_secs_f64(),
        checks,
    })
}

/// Accepts every activation any HEH of the kit gets, until each got one or `deadline`; the
/// indexes of the HEHs that got one.
async fn answer_activations(kits: &[Counterpart], deadline: Instant) -> BTreeSet<usize> {
    let mut answered: BTreeSet<(usize, String, u64)> = BTreeSet::new();
    let mut activated = BTreeSet::new();
    while activated.len() < kits.len() && Instant::now() < deadline {
        for (index, kit) in kits.iter().enumerate() {
            for seen in kit.seen() {
                if seen.kind().as_deref() != Some("activate") {
                    continue;
                }
                activated.insert(index);
                let json = seen.json().unwrap_or_default();
                let (Some(id), Some(count)) =
                    (json["id"].as_str(), json["modification_count"].as_u64())
                else {
                    continue;
                };
                if answered.insert((index, id.to_owned(), count)) {
                    // An id the model refuses gets no answer; `valid-messages` says why.
                    if let (Ok(id), Ok(count)) = (Id::new(id), u32::try_from(count)) {
                        let accept = AcceptActivation {
                            id,
                            modification_count: count,
                            ext: Extensions::new(),
                        };
                        let _ = kit.send(&Message::AcceptActivation(accept)).await;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    activated
}

/// Waits until the VPP's inbox holds nothing ready and nothing unacknowledged: as a local
/// broker says (`rabbitmqctl list_queues`: live for a classic inbox, a quorum inbox's a tick
/// behind), or as a given broker's management API says (its figures are refreshed every few
/// seconds, so the first are not believed).
async fn acknowledged(broker: &Target, vpp: &EntityName, within: Duration) -> Outcome {
    let queue = inbox_queue(vpp);
    let started = Instant::now();
    let mut last = String::from("no answer from the broker");
    while started.elapsed() < within {
        if let Some(counts) = inbox_counts(broker, &queue, started.elapsed()).await {
            if counts == ["0", "0"] {
                return Outcome::Pass(format!(
                    "its inbox empty and nothing unacknowledged {} after the answers",
                    seconds(started.elapsed())
                ));
            }
            last = format!(
                "{} ready and {} unacknowledged",
                counts.first().map_or("?", String::as_str),
                counts.get(1).map_or("?", String::as_str)
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Outcome::Fail(format!(
        "{} after the answers its inbox still holds {last}: consume it and acknowledge each message once handled",
        seconds(within)
    ))
}

/// (ready, unacknowledged) of `queue`, as text; `None` while they cannot be told (a given
/// broker's statistics younger than `STATISTICS_LAG`).
async fn inbox_counts(broker: &Target, queue: &str, waited: Duration) -> Option<Vec<String>> {
    match broker {
        Target::Local(local) => {
            let local = local.clone();
            // rabbitmqctl blocks for a second or two: not on the runtime's workers.
            let text = tokio::task::spawn_blocking(move || {
                let state = local.state().ok().flatten()?;
                local
                    .ctl(
                        &state,
                        &[
                            "list_queues",
                            "-q",
                            "--no-table-headers",
                            "name",
                            "messages_ready",
                            "messages_unacknowledged",
                        ],
                    )
                    .ok()
            })
            .await
            .ok()??;
            let line = text
                .lines()
                .find(|l| l.split_whitespace().next() == Some(queue))?;
            Some(line.split_whitespace().skip(1).map(str::to_owned).collect())
        }
        Target::Given(operator) => {
            if waited < STATISTICS_LAG {
                return None;
            }
            let api = ebadge_admin::mgmt::RawApi::new(&operator.management);
            let queue = api.get(&format!("queues/%2F/{queue}")).await.ok()?;
            let count = |field: &str| queue[field].as_u64().map(|n| n.to_string());
            Some(vec![
                count("messages_ready")?,
                count("messages_unacknowledged")?,
            ])
        }
    }
}

/// How long a given broker's management figures may be behind (RabbitMQ's default
/// `collect_statistics_interval` is 5 s).
const STATISTICS_LAG: Duration = Duration::from_secs(6);
