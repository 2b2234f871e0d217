//! The conformance kit: runs a partner's client (any language: a command line) against a local
//! broker, plays its counterpart, and checks, rule by rule, what the client does on the bus.
//!
//! For the VPP role ([`run_vpp`]) the kit plays a fleet of HEHs that accept every activation,
//! and checks that the VPP activates each and acknowledges their answers.
//!
//! For the HEH role ([`run_heh`]) the kit provisions the client's entity and its own (the
//! client's controller), writes the client's files (certificate and key as PEM and PKCS#12,
//! the bus CA, a connection profile) and starts the command with `EBADGE_*` variables naming
//! them ([`client::ClientFiles::environment`]). The client reaches the broker through a link of
//! the kit's ([`crate::proxy`]), which the kit cuts; it also restarts the broker. Each check
//! names the section of D3.2.3 or D3.1.3 it comes from ([`report::Check`]).
//!
//! `ebadge conformance heh --command 'python3 my_heh.py'` is the command line;
//! docs/partners.md is the partner's guide.

pub mod client;
pub mod counterpart;
mod heh;
pub mod report;
mod rules;
mod stage;
mod vpp;

pub use heh::run_heh;
pub use vpp::{fleet, run_vpp};

use ebadge_bus::EntityName;
use std::path::PathBuf;
use std::time::Duration;

/// Why a kit run could not be carried out at all (as opposed to a check that failed).
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    /// The broker could not be started or provisioned.
    #[error("the local broker: {0}")]
    Broker(String),
    /// The client's files could not be written.
    #[error("the client's files: {0}")]
    Files(String),
    /// The client's command could not be started.
    #[error("starting the client: {0}")]
    Start(String),
    /// The kit's own connection to the bus failed.
    #[error("the kit's own connection: {0}")]
    Bus(String),
}

impl From<ebadge_bus::ConnectError> for KitError {
    fn from(e: ebadge_bus::ConnectError) -> Self {
        KitError::Bus(e.to_string())
    }
}

/// What the kit runs and how long it waits.
#[derive(Debug, Clone)]
pub struct KitOptions {
    /// The client's command line, run by `sh -c`.
    pub command: String,
    /// The client's entity name.
    pub name: EntityName,
    /// The kit's entity (the HEH's controller).
    pub counterpart: EntityName,
    /// How long the client has to answer a request ([`ANSWER_WITHIN`]).
    pub answer_within: Duration,
    /// How long it has to connect and consume after it starts, and to come back after an
    /// outage ([`START_WITHIN`]): a JVM, or a program under Wine, takes a while.
    pub start_within: Duration,
    /// How long the link is cut ([`OUTAGE`]).
    pub outage: Duration,
    /// Where the client's files and its output go.
    pub work_dir: PathBuf,
    /// How many HEHs the kit plays in the VPP role ([`HEHS`]).
    pub hehs: usize,
}

/// The kit's HEHs in the VPP role unless told otherwise.
pub const HEHS: usize = 5;

/// The VPP's entity in the VPP role unless told otherwise.
pub const VPP_CLIENT: &str = "vpp-under-test";

/// The default time to answer a request: the seed's VPP must have 5,000 answers within 5 s.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// The default time to connect, and to come back after an outage.
pub const START_WITHIN: Duration = Duration::from_secs(60);

/// The default length of the cut: long enough for reports to pile up, short enough for a
/// client's reconnect backoff.
pub const OUTAGE: Duration = Duration::from_secs(8);

/// The kit's entity unless told otherwise.
pub const COUNTERPART: &str = "kit-vpp";

/// The client's entity unless told otherwise: an HEH name (`heh-` and a MAC's 12 digits).
pub const CLIENT: &str = "heh-00000000c0de";

impl KitOptions {
    /// The defaults for `command`, its files and output in `work_dir`.
    pub fn new(command: impl Into<String>, work_dir: impl Into<PathBuf>) -> Self {
        KitOptions {
            command: command.into(),
            name: EntityName::new(CLIENT).expect("a valid name"),
            counterpart: EntityName::new(COUNTERPART).expect("a valid name"),
            answer_within: ANSWER_WITHIN,
            start_within: START_WITHIN,
            outage: OUTAGE,
            work_dir: work_dir.into(),
            hehs: HEHS,
        }
    }
}

/// Now, in whole seconds: a partner's code computes report lengths from the times it is sent,
/// and a fraction of a second invites rounding it would be unfair to fail on.
fn now() -> ebadge_model::Time {
    let instant = time::OffsetDateTime::now_utc();
    ebadge_model::Time::from_datetime(instant.replace_nanosecond(0).unwrap_or(instant))
}

/// A duration as a check's detail shows it.
fn seconds(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// The broker a kit run uses.
#[derive(Debug, Clone)]
pub enum Target {
    /// A local broker (`ebadge broker up`), started if need be: the kit restarts it and reads
    /// its log.
    Local(ebadge_admin::broker::LocalBroker),
    /// A broker given by an operator profile (`[management]` with an administrator): the kit
    /// provisions its entities there and cuts the client's link, but does not restart the broker
    /// or read its log; those checks are skipped.
    Given(ebadge_admin::profile::OperatorProfile),
}

impl Target {
    /// The local broker, if it is one.
    fn local(&self) -> Option<&ebadge_admin::broker::LocalBroker> {
        match self {
            Target::Local(broker) => Some(broker),
            Target::Given(_) => None,
        }
    }

    /// The management API's account.
    fn management(&self) -> Result<ebadge_admin::profile::Management, KitError> {
        match self {
            Target::Local(broker) => broker
                .management()
                .map_err(|e| KitError::Broker(e.to_string())),
            Target::Given(profile) => Ok(profile.management.clone()),
        }
    }

    /// Where it is, for a person.
    fn describe(&self) -> String {
        match self {
            Target::Local(broker) => format!("the local broker in {}", broker.dir().display()),
            Target::Given(profile) => format!("the broker at {}", profile.client.amqps_url),
        }
    }
}
