//! Property tests: for every message type, any valid message encodes to JSON that its schema
//! accepts, and decodes back to an equal message whose encoding is the same text.

mod common;

use common::{ALL, schema_errors, schema_of};
use ebadge_model::arbitrary::{any_message, message_of};
use ebadge_model::{Message, MessageType};
use proptest::prelude::*;

fn roundtrip(message: &Message) -> Result<(), TestCaseError> {
    message
        .validate()
        .map_err(|e| TestCaseError::fail(format!("the strategy made an invalid message: {e}")))?;
    let text = message.encode().unwrap();
    let decoded =
        Message::decode(&text).map_err(|e| TestCaseError::fail(format!("{text}\n{e}")))?;
    prop_assert_eq!(&decoded, message);
    prop_assert_eq!(decoded.encode().unwrap(), text.clone());
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let errors = schema_errors(&ALL, &value);
    prop_assert!(errors.is_empty(), "{}\n{:?}", text, errors);
    if let Some(t) = message.message_type() {
        let errors = schema_errors(schema_of(t), &value);
        prop_assert!(errors.is_empty(), "{}\n{:?}", text, errors);
    }
    Ok(())
}

macro_rules! roundtrip_each_type {
    ($($test:ident: $variant:ident),+ $(,)?) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            $(
                #[test]
                fn $test(message in message_of(MessageType::$variant)) {
                    roundtrip(&message)?;
                }
            )+
        }

        #[test]
        fn every_type_has_a_roundtrip_test() {
            let tested = [$(MessageType::$variant),+];
            assert_eq!(tested.as_slice(), MessageType::ALL);
        }
    };
}

roundtrip_each_type! {
    get_report: GetReport,
    get_periodic_report: GetPeriodicReport,
    report: Report,
    get_energy_events: GetEnergyEvents,
    get_energy_events_realtime: GetEnergyEventsRealtime,
    energy_events: EnergyEvents,
    activate: Activate,
    accept_activation: AcceptActivation,
    reject_activation: RejectActivation,
    modify_activation: ModifyActivation,
    get_activation_capacity: GetActivationCapacity,
    activation_capacity: ActivationCapacity,
    contingency_activate: ContingencyActivate,
    contingency_end: ContingencyEnd,
    load_price: LoadPrice,
    generation_price: GenerationPrice,
    get_all_prices: GetAllPrices,
    get_status_report: GetStatusReport,
    status_report: StatusReport,
    set_clock: SetClock,
    set_smart_mode: SetSmartMode,
    get_capabilities: GetCapabilities,
    capabilities: Capabilities,
    device_capabilities: DeviceCapabilities,
    balancing_reserve_bid: BalancingReserveBid,
    response: Response,
    bid_accepted: BidAccepted,
    market_cleared: MarketCleared,
    balancing_energy_bid: BalancingEnergyBid,
    activate_bid: ActivateBid,
    request_balancing: RequestBalancing,
    balancing_activated: BalancingActivated,
    balancing_unachievable: BalancingUnachievable,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Extension messages included.
    #[test]
    fn any_message_roundtrips(message in any_message()) {
        roundtrip(&message)?;
    }

    /// Whatever bytes come in, the decoder answers without panicking, and what it accepts it can
    /// write back and read again.
    #[test]
    fn the_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(message) = Message::decode_slice(&bytes) {
            prop_assert_eq!(Message::decode(&message.to_json()).unwrap(), message);
        }
    }
}

/// Found by the fuzzer: a long integer literal that serde_json's fast float parser read one ulp
/// off, so the re-encoded number decoded to a different value. Numbers must be parsed exactly
/// (serde_json's `float_roundtrip`), or an `ext_` value would not survive untouched.
#[test]
fn long_number_literals_decode_exactly_and_survive_reencoding() {
    let text = r#"{"msg": "ext_x_probe", "n": 2008888888888888000000000000000000000000000000000000000000000000000000010248191152060862009}"#;
    let message = Message::decode(text).unwrap();
    let again = Message::decode(&message.encode().unwrap()).unwrap();
    assert_eq!(again, message);
    let price = r#"{"msg": "load_price", "from": "2013-07-27T23:10:00Z", "to": "2013-07-28T00:30:00Z", "price": 0.1380000000000000000000000000000000000000001}"#;
    let message = Message::decode(price).unwrap();
    assert_eq!(
        Message::decode(&message.encode().unwrap()).unwrap(),
        message
    );
}
