//! Bid import (`dealdesk bids import`, `POST /bids/import`): one JSON object, a JSON array, or
//! JSON Lines, every record validated. Input: one selector byte (JSON Lines or not), then the
//! text.
#![no_main]
use dealdesk::bids::record::{Lang, parse_text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let Ok(bids) = parse_text(text, "fuzz", selector & 1 == 1) else {
        return;
    };
    for bid in bids {
        bid.validate().expect("a parsed bid is valid");
        let _ = bid.date_number();
        for (_, value) in bid.sections.iter() {
            let _ = Lang::detect(value);
        }
    }
});
