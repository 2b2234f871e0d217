//! Constructors that make correct messages easy: fresh UUIDs where the sender assigns an ID,
//! `modification_count` bumps, answers that echo the right IDs, report periods computed from the
//! values.
//!
//! ```
//! use ebadge_model::{Activate, Message, Time};
//! let from: Time = "2013-07-24T11:10:20Z".parse().unwrap();
//! let to: Time = "2013-07-24T11:14:55Z".parse().unwrap();
//! let order = Activate::new(from, to, 3.4);
//! let counter = order.counter_proposal(from, to, 2.0);   // the HEH offers 2 kW
//! let revised = counter.agree();                           // the VPP takes it
//! assert_eq!(revised.id, order.id);
//! assert_eq!(revised.modification_count, 1);
//! assert!(revised.accept().answers(&revised));
//! Message::from(revised).validate().unwrap();
//! ```

use std::collections::BTreeMap;

use crate::field::{Extensions, FieldError, Segment};
use crate::heh::*;
use crate::market::*;
use crate::message::Message;
use crate::names::{Id, SignalName};
use crate::time::Time;

impl Activate {
    /// A new activation order with a fresh UUID, modification count 0, for the HEH's total.
    pub fn new(from: Time, to: Time, quantity: f64) -> Self {
        Self {
            id: Id::new_uuid(),
            modification_count: 0,
            from,
            to,
            quantity,
            device: None,
            heh_id: None,
            ext: Extensions::new(),
        }
    }

    /// The same order, modified: same ID, modification count + 1, new period and quantity.
    ///
    /// # Panics
    /// After `u32::MAX` modifications of one order.
    pub fn modified(&self, from: Time, to: Time, quantity: f64) -> Self {
        let modification_count = self
            .modification_count
            .checked_add(1)
            .expect("fewer than 2^32 modifications");
        Self {
            modification_count,
            from,
            to,
            quantity,
            ..self.clone()
        }
    }

    /// The HEH's acceptance of this order.
    pub fn accept(&self) -> AcceptActivation {
        AcceptActivation {
            id: self.id.clone(),
            modification_count: self.modification_count,
            ext: Extensions::new(),
        }
    }

    /// The HEH's rejection of this order.
    pub fn reject(&self) -> RejectActivation {
        RejectActivation {
            id: self.id.clone(),
            modification_count: self.modification_count,
            ext: Extensions::new(),
        }
    }

    /// The HEH's counter-proposal: all fields present, the device kept.
    pub fn counter_proposal(&self, from: Time, to: Time, quantity: f64) -> ModifyActivation {
        ModifyActivation {
            id: self.id.clone(),
            modification_count: self.modification_count,
            from,
            to,
            quantity,
            device: self.device.clone(),
            ext: Extensions::new(),
        }
    }
}

impl ModifyActivation {
    /// The VPP agrees: a new `activate` with the proposed values and the count bumped (D3.1.3
    /// 5.3.4). Set `heh_id` on the result when talking through an HEH operator.
    pub fn agree(&self) -> Activate {
        Activate {
            id: self.id.clone(),
            modification_count: self.modification_count + 1,
            from: self.from,
            to: self.to,
            quantity: self.quantity,
            device: self.device.clone(),
            heh_id: None,
            ext: Extensions::new(),
        }
    }

    /// True when this answers `order` (same ID and modification count).
    pub fn answers(&self, order: &Activate) -> bool {
        self.id == order.id && self.modification_count == order.modification_count
    }
}

impl AcceptActivation {
    /// True when this answers `order` (same ID and modification count).
    pub fn answers(&self, order: &Activate) -> bool {
        self.id == order.id && self.modification_count == order.modification_count
    }
}

impl RejectActivation {
    /// True when this answers `order` (same ID and modification count).
    pub fn answers(&self, order: &Activate) -> bool {
        self.id == order.id && self.modification_count == order.modification_count
    }
}

impl Report {
    /// A report of equally long value arrays starting at `from`; `to` is computed from the length
    /// and the resolution. Fails when the arrays differ in length or the resolution is not positive.
    ///
    /// ```
    /// use ebadge_model::{Report, SignalName, Time};
    /// let from: Time = "2013-07-21T10:00:00.000Z".parse().unwrap();
    /// let p = SignalName::new("total.p").unwrap();
    /// let report = Report::new(from, 60.0, [(p, vec![1.73, 1.68, 0.43, 0.33, 0.45])].into()).unwrap();
    /// assert_eq!(report.to.to_string(), "2013-07-21T10:05:00.000Z");
    /// ```
    pub fn new(
        from: Time,
        resolution: f64,
        values: BTreeMap<SignalName, Vec<f64>>,
    ) -> Result<Self, FieldError> {
        crate::rules::positive(resolution, "resolution")?;
        let n = values.values().next().map_or(0, Vec::len);
        if let Some((signal, v)) = values.iter().find(|(_, v)| v.len() != n) {
            let reason = format!("{} values where the other signals have {n}", v.len());
            return Err(
                FieldError::at(signal.as_str(), reason).within(Segment::Key("values".into()))
            );
        }
        let span = time::Duration::seconds_f64(resolution * n as f64);
        let to = from
            .checked_add(span)
            .ok_or_else(|| FieldError::at("to", "past year 9999"))?;
        Ok(Self {
            from,
            to,
            resolution,
            values,
            heh_id: None,
            ext: Extensions::new(),
        })
    }
}

impl GetReport {
    /// A request for `signals` over `from..to` at `resolution` seconds, sent directly to an HEH.
    pub fn new(from: Time, to: Time, resolution: f64, signals: Vec<SignalName>) -> Self {
        Self {
            from,
            to,
            resolution,
            signals,
            heh_id: None,
            ext: Extensions::new(),
        }
    }
}

impl GetPeriodicReport {
    /// A request for a report of `signals` every `interval` seconds, with a fresh request ID.
    pub fn new(interval: f64, resolution: f64, signals: Vec<SignalName>) -> Self {
        Self {
            interval,
            first_from: None,
            resolution,
            signals,
            heh_id: None,
            request_id: Some(Id::new_uuid()),
            ext: Extensions::new(),
        }
    }
}

impl Product {
    /// A product: direction and period.
    pub fn new(positive: bool, start: Time, end: Time) -> Self {
        Self {
            positive,
            start,
            end,
            ext: Extensions::new(),
        }
    }
}

impl BalancingReserveBid {
    /// A new divisible bid with fresh message and bid UUIDs.
    pub fn new(product: Product, quantity: f64, reserve_price: f64, energy_price: f64) -> Self {
        Self {
            msg_id: Id::new_uuid(),
            bid_id: Id::new_uuid(),
            product,
            quantity,
            divisible: None,
            reserve_price,
            energy_price,
            ext: Extensions::new(),
        }
    }
}

impl BalancingEnergyBid {
    /// A new divisible bid with fresh message and bid UUIDs.
    pub fn new(product: Product, quantity: f64, energy_price: f64) -> Self {
        Self {
            msg_id: Id::new_uuid(),
            bid_id: Id::new_uuid(),
            product,
            quantity,
            divisible: None,
            energy_price,
            ext: Extensions::new(),
        }
    }
}

impl BidAccepted {
    /// Acceptance of `quantity` of a bid, with a fresh message ID.
    pub fn new(bid_id: Id, quantity: f64) -> Self {
        Self {
            msg_id: Id::new_uuid(),
            bid_id,
            quantity,
            ext: Extensions::new(),
        }
    }
}

impl ActivateBid {
    /// Activation of `quantity` of a bid, as soon as possible until the end of the product.
    pub fn new(bid_id: Id, quantity: f64) -> Self {
        Self {
            msg_id: Id::new_uuid(),
            bid_id,
            quantity,
            from: None,
            to: None,
            ext: Extensions::new(),
        }
    }
}

impl RequestBalancing {
    /// A request for `quantity` (positive: shortage) from now until further notice.
    pub fn new(quantity: f64) -> Self {
        Self {
            msg_id: Id::new_uuid(),
            quantity,
            from: None,
            to: None,
            ext: Extensions::new(),
        }
    }
}

impl BalancingUnachievable {
    /// The super-TSO cannot (fully) meet the `request_balancing` with this `msg_id`.
    pub fn new(request_id: Id) -> Self {
        Self {
            msg_id: Id::new_uuid(),
            request_id,
            ext: Extensions::new(),
        }
    }
}

impl Response {
    /// `200 OK` for the message with `msg_id`.
    pub fn ok(msg_id: Id) -> Self {
        Self {
            msg_id,
            response_code: Self::OK,
            response_subcode: None,
            response_desc: "OK".into(),
            ext: Extensions::new(),
        }
    }

    /// An error answer: an HTTP-like code (e.g. 400) and what went wrong.
    pub fn error(msg_id: Id, response_code: u32, response_desc: impl Into<String>) -> Self {
        Self {
            msg_id,
            response_code,
            response_subcode: None,
            response_desc: response_desc.into(),
            ext: Extensions::new(),
        }
    }
}

impl Message {
    /// `200 OK` for this message, when it needs a response (D3.1.3 6.1.2).
    ///
    /// ```
    /// use ebadge_model::{Message, RequestBalancing};
    /// let request = Message::from(RequestBalancing::new(-4.5));
    /// let answer = request.ok_response().unwrap();
    /// assert_eq!(Some(&answer.msg_id), request.msg_id());
    /// ```
    pub fn ok_response(&self) -> Option<Response> {
        self.msg_id().cloned().map(Response::ok)
    }

    /// The activation an answer refers to: `(id, modification_count)` of an `accept_activation`,
    /// `reject_activation` or `modify_activation`, or of the `activate` itself.
    pub fn activation_key(&self) -> Option<(&Id, u32)> {
        match self {
            Message::Activate(m) => Some((&m.id, m.modification_count)),
            Message::AcceptActivation(m) => Some((&m.id, m.modification_count)),
            Message::RejectActivation(m) => Some((&m.id, m.modification_count)),
            Message::ModifyActivation(m) => Some((&m.id, m.modification_count)),
            _ => None,
        }
    }
}
