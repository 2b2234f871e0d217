//! A simulated VPP: knows which HEHs are online, requests their periodic reports, stores what
//! arrives, and runs activation campaigns that re-dispatch rejected or reduced capacity to other
//! HEHs until the target is met or the deadline passes (the reason for D3.2.3 2.1's 5-s figure).

use ebadge_bus::{ActivationOutcome, Client, ClientConfig, EntityName, Profile};
use ebadge_model::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the VPP knows of one HEH.
#[derive(Debug, Clone, Default)]
pub struct HehView {
    /// Flexible capacity from `activation_capacity` (kW), if reported.
    pub capacity_kw: Option<f64>,
    /// Reports received from it.
    pub reports: u64,
}

/// The VPP's state, shared with its receive loop.
#[derive(Debug, Default)]
pub struct VppState {
    /// HEHs that announced themselves (`capabilities`), by name.
    pub online: BTreeMap<EntityName, HehView>,
    /// All reports received.
    pub reports: u64,
    /// The periodic report requests sent, by HEH (to stop them with the same request_id).
    pub periodic: BTreeMap<EntityName, GetPeriodicReport>,
}

/// The result of a campaign.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Campaign {
    /// kW asked for.
    pub target_kw: f64,
    /// kW accepted by HEHs.
    pub achieved_kw: f64,
    /// Orders sent (including agreements to counter-proposals).
    pub orders: u64,
    /// Accepted orders.
    pub accepted: u64,
    /// Rejected orders.
    pub rejected: u64,
    /// Counter-proposals received.
    pub modified: u64,
    /// Orders without an answer by the deadline.
    pub timed_out: u64,
    /// Dispatch rounds (1 when no capacity had to be re-dispatched).
    pub rounds: u32,
    /// From the first order to the last answer, in seconds.
    pub seconds: f64,
}

/// A simulated VPP.
#[derive(Clone)]
pub struct SimVpp {
    /// Its client.
    pub client: Client,
    /// What it knows.
    pub state: Arc<Mutex<VppState>>,
}

impl SimVpp {
    /// Starts the receive loop.
    pub fn start(client: Client) -> SimVpp {
        let state = Arc::new(Mutex::new(VppState::default()));
        let mut inbox = client.inbox().expect("a new client has its inbox");
        let shared = state.clone();
        tokio::spawn(async move {
            while let Some(incoming) = inbox.next().await {
                {
                    let mut s = shared.lock().unwrap();
                    match &incoming.message {
                        Message::Capabilities(_) => {
                            s.online.entry(incoming.from.clone()).or_default();
                        }
                        Message::ActivationCapacity(c) => {
                            s.online
                                .entry(incoming.from.clone())
                                .or_default()
                                .capacity_kw = Some(c.pos_capacity);
                        }
                        Message::Report(_) => {
                            s.reports += 1;
                            s.online.entry(incoming.from.clone()).or_default().reports += 1;
                        }
                        _ => {}
                    }
                }
                incoming.ack();
            }
        });
        SimVpp { client, state }
    }

    /// HEHs online now.
    pub fn online(&self) -> Vec<EntityName> {
        self.state.lock().unwrap().online.keys().cloned().collect()
    }

    /// Reports received so far.
    pub fn reports(&self) -> u64 {
        self.state.lock().unwrap().reports
    }

    /// Asks every online HEH for a report of `total.p` every `interval` seconds.
    pub fn request_periodic_reports(
        &self,
        interval: f64,
        resolution: f64,
    ) -> Result<(), ebadge_bus::SendError> {
        let signals = vec![SignalName::new("total.p").expect("a valid signal name")];
        for heh in self.online() {
            let request = GetPeriodicReport::new(interval, resolution, signals.clone());
            self.client
                .send(&heh, &Message::GetPeriodicReport(request.clone()))?;
            self.state.lock().unwrap().periodic.insert(heh, request);
        }
        Ok(())
    }

    /// Stops the periodic reports it asked for (interval -1, same request_id).
    pub fn stop_periodic_reports(&self) -> Result<(), ebadge_bus::SendError> {
        let requests = std::mem::take(&mut self.state.lock().unwrap().periodic);
        for (heh, mut request) in requests {
            request.interval = GetPeriodicReport::DISABLE;
            self.client
                .send(&heh, &Message::GetPeriodicReport(request))?;
        }
        Ok(())
    }

    /// Asks every online HEH for its activation capacity.
    pub fn ask_capacities(&self) -> Result<(), ebadge_bus::SendError> {
        for heh in self.online() {
            let request = GetActivationCapacity {
                device: None,
                heh_id: None,
                ext: Extensions::new(),
            };
            self.client
                .send(&heh, &Message::GetActivationCapacity(request))?;
        }
        Ok(())
    }

    /// Runs a campaign: `target_kw` spread over the online HEHs by capacity (largest first,
    /// `default_kw` where unknown), re-dispatching what is rejected, reduced or unanswered, until
    /// the target is met, no HEH is left, or `deadline` passes.
    pub async fn campaign(&self, target_kw: f64, deadline: Duration, default_kw: f64) -> Campaign {
        let started = Instant::now();
        let mut candidates: Vec<(EntityName, f64)> = {
            let s = self.state.lock().unwrap();
            s.online
                .iter()
                .map(|(n, v)| (n.clone(), v.capacity_kw.unwrap_or(default_kw)))
                .collect()
        };
        candidates.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut candidates = candidates.into_iter();
        let mut result = Campaign {
            target_kw,
            ..Campaign::default()
        };
        let (from, to) = activation_window();
        while result.achieved_kw + 1e-9 < target_kw && started.elapsed() < deadline {
            let mut remaining = target_kw - result.achieved_kw;
            let mut round = tokio::task::JoinSet::new();
            // Check before taking the next HEH: one taken and not used would be lost to later rounds.
            while remaining > 1e-9 {
                let Some((heh, capacity)) = candidates.next() else {
                    break;
                };
                let quantity = capacity.min(remaining);
                remaining -= quantity;
                let (client, left) = (
                    self.client.clone(),
                    deadline.saturating_sub(started.elapsed()),
                );
                round.spawn(async move {
                    let order = Activate::new(from, to, quantity);
                    let first = client.activate(&heh, &order, left).await;
                    (heh, quantity, first, client, left)
                });
            }
            if round.is_empty() {
                break;
            }
            result.rounds += 1;
            while let Some(joined) = round.join_next().await {
                let Ok((heh, quantity, outcome, client, left)) = joined else {
                    continue;
                };
                result.orders += 1;
                match outcome {
                    Ok(ActivationOutcome::Accepted(_)) => {
                        result.accepted += 1;
                        result.achieved_kw += quantity;
                    }
                    Ok(ActivationOutcome::Rejected(_)) => result.rejected += 1,
                    Ok(ActivationOutcome::Modified(proposal)) => {
                        result.modified += 1;
                        // Take what the HEH offers; the rest goes to the next round.
                        result.orders += 1;
                        if let Ok(ActivationOutcome::Accepted(_)) =
                            client.activate(&heh, &proposal.agree(), left).await
                        {
                            result.accepted += 1;
                            result.achieved_kw += proposal.quantity;
                        }
                    }
                    Ok(ActivationOutcome::TimedOut) | Err(_) => result.timed_out += 1,
                }
            }
        }
        result.seconds = started.elapsed().as_secs_f64();
        result
    }
}

/// What [`standalone`] saw: `ebadge sim vpp` prints it as one JSON object.
#[derive(Debug, Clone, Serialize)]
pub struct StandaloneSummary {
    /// The campaign, if one was asked for.
    pub campaign: Option<Campaign>,
    /// HEHs online at the end.
    pub online: usize,
    /// Reports received.
    pub reports: u64,
}

/// Why [`standalone`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum StandaloneError {
    /// The VPP could not connect.
    #[error(transparent)]
    Connect(#[from] ebadge_bus::ConnectError),
    /// The client refused a request for periodic reports.
    #[error(transparent)]
    Send(#[from] ebadge_bus::SendError),
}

/// A VPP on its own (`ebadge sim vpp`), against HEHs run elsewhere: connects as `name` (watched
/// by `metrics` if given), asks every HEH online for periodic reports, listens `seconds`, then
/// runs a campaign for `campaign_kw` (none if 0), stops the reports and leaves.
pub async fn standalone(
    profile: Profile,
    name: EntityName,
    seconds: u64,
    campaign_kw: f64,
    metrics: Option<&ebadge_bus::metrics::Metrics>,
) -> Result<StandaloneSummary, StandaloneError> {
    let client = Client::connect(ClientConfig::new(profile, name.clone())).await?;
    if let Some(metrics) = metrics {
        metrics.watch(name.as_str(), std::slice::from_ref(&client));
    }
    let vpp = SimVpp::start(client);
    // HEHs announce themselves when they start; announcements made earlier wait in our inbox.
    tokio::time::sleep(Duration::from_secs(1)).await;
    vpp.request_periodic_reports(5.0, 1.0)?;
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let campaign = if campaign_kw > 0.0 {
        Some(vpp.campaign(campaign_kw, Duration::from_secs(5), 3.0).await)
    } else {
        None
    };
    let _ = vpp.stop_periodic_reports();
    let summary = StandaloneSummary {
        campaign,
        online: vpp.online().len(),
        reports: vpp.reports(),
    };
    vpp.client.close(Duration::from_secs(5)).await;
    Ok(summary)
}

/// An activation window starting in a minute, 15 minutes long.
pub fn activation_window() -> (Time, Time) {
    let now = Time::now().datetime();
    (
        Time::from_datetime(now + time::Duration::minutes(1)),
        Time::from_datetime(now + time::Duration::minutes(16)),
    )
}
