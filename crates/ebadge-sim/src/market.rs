//! Market actors (D3.1.3 section 6): BSPs bid, the TSO acknowledges with `response`, accepts bids,
//! announces `market_cleared` to the BSP group and activates bids; a TSO asks the super-TSO for
//! balancing and gets `balancing_activated` or `balancing_unachievable`. Every `msg_id` is answered.

use ebadge_bus::{Client, EntityName, Handled, Handler, Incoming};
use ebadge_model::*;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a market request waits for its `response`.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// What happened in a market run.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct MarketSummary {
    /// Bids sent by BSPs.
    pub bids: u64,
    /// Bids acknowledged by the TSO with `response` 200.
    pub bids_acknowledged: u64,
    /// `bid_accepted` sent and acknowledged.
    pub bids_accepted: u64,
    /// BSPs that saw `market_cleared`.
    pub cleared_seen: u64,
    /// `activate_bid` sent and acknowledged.
    pub bids_activated: u64,
    /// `request_balancing` acknowledged by the super-TSO.
    pub balancing_requests: u64,
    /// `balancing_activated` received by the requesting TSO.
    pub balancing_activated: u64,
    /// `balancing_unachievable` received (and acknowledged) by the requesting TSO.
    pub balancing_unachievable: u64,
    /// Requests whose response did not come.
    pub unanswered: u64,
}

/// Shared log of what market actors received.
#[derive(Debug, Default)]
pub struct MarketLog {
    /// Bids the TSO received: (BSP, bid).
    pub bids: Vec<(EntityName, BalancingReserveBid)>,
    /// `market_cleared` messages seen by BSPs.
    pub cleared_seen: u64,
    /// `balancing_activated` seen by a TSO.
    pub balancing_activated: u64,
    /// `balancing_unachievable` seen by a TSO.
    pub balancing_unachievable: u64,
    /// Balancing requests the super-TSO received: (TSO, request).
    pub balancing_requests: Vec<(EntityName, RequestBalancing)>,
}

/// The handler of every market actor: it acknowledges what needs it and logs what arrives.
#[derive(Clone)]
pub struct MarketActor {
    /// Shared log.
    pub log: Arc<Mutex<MarketLog>>,
}

impl Handler for MarketActor {
    async fn on_balancing_reserve_bid(
        &mut self,
        client: &Client,
        incoming: &Incoming,
        bid: &BalancingReserveBid,
    ) -> Handled {
        self.log
            .lock()
            .unwrap()
            .bids
            .push((incoming.from.clone(), bid.clone()));
        let _ = client.respond_ok(incoming);
        Handled::Yes
    }
    async fn on_bid_accepted(
        &mut self,
        client: &Client,
        incoming: &Incoming,
        _: &BidAccepted,
    ) -> Handled {
        let _ = client.respond_ok(incoming);
        Handled::Yes
    }
    async fn on_activate_bid(
        &mut self,
        client: &Client,
        incoming: &Incoming,
        _: &ActivateBid,
    ) -> Handled {
        let _ = client.respond_ok(incoming);
        Handled::Yes
    }
    async fn on_market_cleared(&mut self, _: &Client, _: &Incoming, _: &MarketCleared) -> Handled {
        self.log.lock().unwrap().cleared_seen += 1;
        Handled::Yes
    }
    async fn on_request_balancing(
        &mut self,
        client: &Client,
        incoming: &Incoming,
        request: &RequestBalancing,
    ) -> Handled {
        self.log
            .lock()
            .unwrap()
            .balancing_requests
            .push((incoming.from.clone(), request.clone()));
        let _ = client.respond_ok(incoming);
        Handled::Yes
    }
    async fn on_balancing_activated(
        &mut self,
        _: &Client,
        _: &Incoming,
        _: &BalancingActivated,
    ) -> Handled {
        self.log.lock().unwrap().balancing_activated += 1;
        Handled::Yes
    }
    async fn on_balancing_unachievable(
        &mut self,
        client: &Client,
        incoming: &Incoming,
        _: &BalancingUnachievable,
    ) -> Handled {
        self.log.lock().unwrap().balancing_unachievable += 1;
        let _ = client.respond_ok(incoming);
        Handled::Yes
    }
}

/// The participants of a market run, each a connected client serving [`MarketActor`].
pub struct Market {
    /// The TSO running the balancing market.
    pub tso: Client,
    /// The BSPs, members of `group`.
    pub bsps: Vec<Client>,
    /// The BSP group (exchange `<tso>-to-<group>`).
    pub group: EntityName,
    /// The super-TSO of the international flow.
    pub super_tso: Client,
    /// A second TSO whose imbalance nets with the first's.
    pub other_tso: Client,
    /// What the actors received.
    pub log: Arc<Mutex<MarketLog>>,
}

impl Market {
    /// Watches every actor under its own name.
    pub fn watch(&self, metrics: &ebadge_bus::metrics::Metrics) {
        for client in self
            .bsps
            .iter()
            .chain([&self.tso, &self.super_tso, &self.other_tso])
        {
            metrics.watch(client.name().as_str(), std::slice::from_ref(client));
        }
    }

    /// Starts the handlers of all participants.
    pub fn serve(
        tso: Client,
        bsps: Vec<Client>,
        group: EntityName,
        super_tso: Client,
        other_tso: Client,
    ) -> Market {
        let log = Arc::new(Mutex::new(MarketLog::default()));
        for c in bsps.iter().chain([&tso, &super_tso, &other_tso]) {
            let (c, actor) = (c.clone(), MarketActor { log: log.clone() });
            tokio::spawn(async move { c.serve(actor).await });
        }
        Market {
            tso,
            bsps,
            group,
            super_tso,
            other_tso,
            log,
        }
    }

    /// One market day: every BSP bids, the TSO accepts every bid, announces `market_cleared` to
    /// the group, activates half of each bid; then the TSO asks the super-TSO for balancing, which
    /// is netted with the other TSO (`balancing_activated`), and a second request that cannot be
    /// met (`balancing_unachievable`).
    pub async fn run_day(&self) -> MarketSummary {
        let mut s = MarketSummary::default();
        let mut answered = |r: Result<Option<Response>, ebadge_bus::RequestError>| match r {
            Ok(Some(response)) if response.response_code == 200 => true,
            _ => {
                s.unanswered += 1;
                false
            }
        };
        let tso = self.tso.name().clone();
        let now = Time::now().datetime();
        let product = Product::new(
            true,
            Time::from_datetime(now + time::Duration::hours(1)),
            Time::from_datetime(now + time::Duration::hours(2)),
        );
        let mut bids = Vec::new();
        for (i, bsp) in self.bsps.iter().enumerate() {
            let bid = BalancingReserveBid::new(product.clone(), 5.0 + i as f64, 10.0, 80.0);
            s.bids += 1;
            if answered(
                bsp.request(
                    &tso,
                    &Message::BalancingReserveBid(bid.clone()),
                    RESPONSE_TIMEOUT,
                )
                .await,
            ) {
                s.bids_acknowledged += 1;
            }
            bids.push((bsp.name().clone(), bid));
        }
        for (bsp, bid) in &bids {
            let accepted = BidAccepted::new(bid.bid_id.clone(), bid.quantity);
            if answered(
                self.tso
                    .request(bsp, &Message::BidAccepted(accepted), RESPONSE_TIMEOUT)
                    .await,
            ) {
                s.bids_accepted += 1;
            }
        }
        let cleared = MarketCleared {
            product: product.clone(),
            ext: Extensions::new(),
        };
        let _ = self
            .tso
            .send_confirmed(&self.group, &Message::MarketCleared(cleared))
            .await;
        for (bsp, bid) in &bids {
            let activation = ActivateBid::new(bid.bid_id.clone(), bid.quantity / 2.0);
            if answered(
                self.tso
                    .request(bsp, &Message::ActivateBid(activation), RESPONSE_TIMEOUT)
                    .await,
            ) {
                s.bids_activated += 1;
            }
        }
        // International flow through the super-TSO.
        let super_tso = self.super_tso.name().clone();
        let netted = RequestBalancing::new(4.5);
        if answered(
            self.tso
                .request(
                    &super_tso,
                    &Message::RequestBalancing(netted.clone()),
                    RESPONSE_TIMEOUT,
                )
                .await,
        ) {
            s.balancing_requests += 1;
        }
        let activated = BalancingActivated {
            quantity: netted.quantity,
            from: Time::from_datetime(now),
            to: Time::from_datetime(now + time::Duration::minutes(15)),
            originating_tso: Id::new(self.other_tso.name().as_str())
                .expect("an entity name is an id"),
            bid_id: None,
            ext: Extensions::new(),
        };
        let _ = self
            .super_tso
            .send_confirmed(&tso, &Message::BalancingActivated(activated))
            .await;
        let too_big = RequestBalancing::new(500.0);
        if answered(
            self.tso
                .request(
                    &super_tso,
                    &Message::RequestBalancing(too_big.clone()),
                    RESPONSE_TIMEOUT,
                )
                .await,
        ) {
            s.balancing_requests += 1;
        }
        let unachievable = BalancingUnachievable::new(too_big.msg_id.clone());
        answered(
            self.super_tso
                .request(
                    &tso,
                    &Message::BalancingUnachievable(unachievable),
                    RESPONSE_TIMEOUT,
                )
                .await,
        );
        // Let the one-way messages land before reading the log.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let log = self.log.lock().unwrap();
        s.cleared_seen = log.cleared_seen;
        s.balancing_activated = log.balancing_activated;
        s.balancing_unachievable = log.balancing_unachievable;
        s
    }
}
