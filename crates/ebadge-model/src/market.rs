//! The 9 market-level message types of D3.1.3 section 6, between BSPs, TSOs and the super-TSO.
//!
//! Every message with a `msg_id` needs a [`Response`]; until it arrives the sender must not rely on
//! delivery (D3.1.3 6.1.2).

use crate::field::FieldError;
use crate::names::Id;
use crate::rules::{Rules, non_negative, not_before, not_before_opt};
use crate::time::Time;

nested_object! {
    /// A balancing product: direction and period ("one true product, one merit list").
    Product {
        /// true for generation/injection/upward, false for consumption/withdrawal/downward.
        req positive: bool,
        /// Start of the period covered.
        req start: Time,
        /// End of the period covered; after `start`.
        req end: Time,
    }
}

impl Rules for Product {
    #[cfg(feature = "proptest")]
    fn repair(&mut self) {
        crate::rules::repair::order(&mut self.start, &mut self.end);
        if self.start == self.end {
            self.end = self
                .start
                .checked_add(time::Duration::minutes(15))
                .expect("2100 + 15 min is in range");
        }
    }

    fn check_rules(&self) -> Result<(), FieldError> {
        if self.end <= self.start {
            return Err(FieldError::at(
                "end",
                format!("{} is not after start ({})", self.end, self.start),
            ));
        }
        Ok(())
    }
}

json_object! {
    /// `balancing_reserve_bid` (D3.1.3 6.1.1). BSP → TSO of its balancing zone.
    BalancingReserveBid {
        /// UUID of this message; the TSO answers with a `response`.
        req msg_id: Id,
        /// UUID of the bid; re-bidding the same ID changes it, quantity 0 cancels it.
        req bid_id: Id,
        /// The product bid for.
        req product: Product,
        /// MW; not negative.
        req quantity: f64 = {"minimum": 0},
        /// false for all-or-nothing; optional, true when left out.
        opt divisible: bool,
        /// €/MWh.
        req reserve_price: f64,
        /// €/MWh.
        req energy_price: f64,
    }
}

impl BalancingReserveBid {
    /// Whether the bid may be partly accepted (the default is true).
    pub fn is_divisible(&self) -> bool {
        self.divisible.unwrap_or(true)
    }
}

impl Rules for BalancingReserveBid {
    #[cfg(feature = "proptest")]
    fn repair(&mut self) {
        self.quantity = self.quantity.abs();
    }

    fn check_rules(&self) -> Result<(), FieldError> {
        non_negative(self.quantity, "quantity")
    }
}

json_object! {
    /// `response` (D3.1.3 6.1.2): acknowledgement or rejection of a message with `msg_id`. Receiver
    /// of the original → its sender.
    Response {
        /// The `msg_id` answered.
        req msg_id: Id,
        /// HTTP-like code; 200 is OK.
        req response_code: u32 = {"minimum": 100, "maximum": 599},
        /// Message-specific detail (optional).
        opt response_subcode: i64,
        /// "OK", or what went wrong.
        req response_desc: String,
    }
}

impl Response {
    /// The code of success.
    pub const OK: u32 = 200;

    /// True for a 2xx code.
    pub fn is_ok(&self) -> bool {
        (200..300).contains(&self.response_code)
    }
}

impl Rules for Response {
    #[cfg(feature = "proptest")]
    fn repair(&mut self) {
        self.response_code = 100 + self.response_code % 500;
    }

    fn check_rules(&self) -> Result<(), FieldError> {
        if !(100..=599).contains(&self.response_code) {
            return Err(FieldError::at(
                "response_code",
                format!("{} is not an HTTP-like code (100-599)", self.response_code),
            ));
        }
        Ok(())
    }
}

json_object! {
    /// `bid_accepted` (D3.1.3 6.1.3): the BSP must confirm and reserve the capacity. TSO → BSP.
    BidAccepted {
        /// UUID of this message.
        req msg_id: Id,
        /// The accepted bid.
        req bid_id: Id,
        /// Accepted MW; not negative.
        req quantity: f64 = {"minimum": 0},
    }
}

impl Rules for BidAccepted {
    #[cfg(feature = "proptest")]
    fn repair(&mut self) {
        self.quantity = self.quantity.abs();
    }

    fn check_rules(&self) -> Result<(), FieldError> {
        non_negative(self.quantity, "quantity")
    }
}

json_object! {
    /// `market_cleared` (D3.1.3 6.1.4): bids not yet accepted never will be. TSO → BSPs.
    MarketCleared {
        /// The product whose market is cleared.
        req product: Product,
    }
}

impl Rules for MarketCleared {}

json_object! {
    /// `balancing_energy_bid` (D3.1.3 6.2.1). BSP → TSO, and TSO → super-TSO when forwarded.
    BalancingEnergyBid {
        /// UUID of this message.
        req msg_id: Id,
        /// UUID of the bid.
        req bid_id: Id,
        /// The product bid for.
        req product: Product,
        /// MWh; not negative.
        req quantity: f64 = {"minimum": 0},
        /// false for all-or-nothing; true when left out.
        opt divisible: bool,
        /// €/MWh.
        req energy_price: f64,
    }
}

impl BalancingEnergyBid {
    /// Whether the bid may be partly activated (the default is true).
    pub fn is_divisible(&self) -> bool {
        self.divisible.unwrap_or(true)
    }
}

impl Rules for BalancingEnergyBid {
    #[cfg(feature = "proptest")]
    fn repair(&mut self) {
        self.quantity = self.quantity.abs();
    }

    fn check_rules(&self) -> Result<(), FieldError> {
        non_negative(self.quantity, "quantity")
    }
}

json_object! {
    /// `activate_bid` (D3.1.3 6.2.2): the BSP must confirm and activate. TSO → BSP (or super-TSO →
    /// originating TSO).
    ActivateBid {
        /// UUID of this message.
        req msg_id: Id,
        /// The bid to activate.
        req bid_id: Id,
        /// Quantity to activate; not negative.
        req quantity: f64 = {"minimum": 0},
        /// Start; null for as soon as possible.
        null from: Time,
        /// End; null for the end of the product.
        null to: Time,
    }
}

impl Rules for ActivateBid {
    #[cfg(feature = "proptest")]
    fn repair(&mut self) {
        self.quantity = self.quantity.abs();
        crate::rules::repair::order_opt(&mut self.from, &mut self.to);
    }

    fn check_rules(&self) -> Result<(), FieldError> {
        non_negative(self.quantity, "quantity")?;
        not_before_opt(self.from.as_ref(), "from", self.to.as_ref(), "to")
    }
}

json_object! {
    /// `request_balancing` (D3.1.3 6.3.1): report an imbalance and ask for balancing energy.
    /// TSO → super-TSO.
    RequestBalancing {
        /// UUID of this message.
        req msg_id: Id,
        /// Positive for a shortage, negative for a surplus.
        req quantity: f64,
        /// When balancing is needed; null for now.
        null from: Time,
        /// Until when; null until further notice.
        null to: Time,
    }
}

impl Rules for RequestBalancing {
    #[cfg(feature = "proptest")]
    fn repair(&mut self) {
        crate::rules::repair::order_opt(&mut self.from, &mut self.to);
    }

    fn check_rules(&self) -> Result<(), FieldError> {
        not_before_opt(self.from.as_ref(), "from", self.to.as_ref(), "to")
    }
}

json_object! {
    /// `balancing_activated` (D3.1.3 6.3.2): the TSO's balance is (partly) restored; not
    /// acknowledged. Super-TSO → requesting TSO. (The spec's table is shifted by a row, erratum 3:
    /// this follows the field names.)
    BalancingActivated {
        /// Added to the TSO's position.
        req quantity: f64,
        /// Start of activation.
        req from: Time,
        /// End of activation.
        req to: Time,
        /// The TSO the energy comes from.
        req originating_tso: Id,
        /// The bid activated; null when two TSOs' imbalances were netted.
        null bid_id: Id,
    }
}

impl Rules for BalancingActivated {
    #[cfg(feature = "proptest")]
    fn repair(&mut self) {
        crate::rules::repair::order(&mut self.from, &mut self.to);
    }

    fn check_rules(&self) -> Result<(), FieldError> {
        not_before(&self.from, "from", &self.to, "to")
    }
}

json_object! {
    /// `balancing_unachievable` (D3.1.3 6.3.3): a balancing request cannot be (fully) met.
    /// Super-TSO → requesting TSO.
    BalancingUnachievable {
        /// UUID of this message.
        req msg_id: Id,
        /// The `msg_id` of the `request_balancing` it refers to.
        req request_id: Id,
    }
}

impl Rules for BalancingUnachievable {}
