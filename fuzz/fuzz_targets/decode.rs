//! Fuzz target: any bytes into the message decoder. It must never panic, and whatever it accepts
//! must encode, decode again to an equal message, and encode to the same text.

#![no_main]

use ebadge_model::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::decode_slice(data) {
        let text = message.encode().expect("a decoded message is valid");
        let again = Message::decode(&text).expect("the encoding of a decoded message decodes");
        assert_eq!(again, message);
        assert_eq!(again.to_json(), text);
    }
});
