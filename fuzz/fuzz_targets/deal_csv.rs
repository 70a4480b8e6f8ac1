//! Deal import (`dealdesk deals import FILE.csv --map mapping.toml`): the mapping TOML, then
//! the CSV through it. Input: the mapping and the CSV separated by a line `===`; without one,
//! the whole input is CSV read through the README's example mapping.
#![no_main]
use std::sync::LazyLock;

use dealdesk::quotes::import::{Mapping, parse_reader};
use libfuzzer_sys::fuzz_target;

static EXAMPLE: LazyLock<Mapping> = LazyLock::new(|| {
    Mapping::parse(
        r#"outcome = "deal_stage"
won = ["Won"]
lost = ["Lost"]
open = ["Engaging"]
list_price = "sales_price"
quoted_price = "quoted"
discount = "discount"
discount_percent = true
cost = "cost"
close_date = "close_date"
region = "regional_office"
segment = "sector"
external_id = "opportunity_id"
followed = "followed"
features = ["product", "employees"]
"#,
        "example",
    )
    .expect("example mapping")
});

fuzz_target!(|data: &[u8]| {
    let split = data.windows(5).position(|w| w == b"\n===\n");
    let parsed = match split {
        Some(at) => {
            let Ok(text) = std::str::from_utf8(&data[..at]) else {
                return;
            };
            let Ok(mapping) = Mapping::parse(text, "fuzz.toml") else {
                return;
            };
            parse_reader(&data[at + 5..], "fuzz.csv", &mapping)
        }
        None => parse_reader(data, "fuzz.csv", &EXAMPLE),
    };
    if let Ok(Ok(deals)) = parsed {
        for deal in deals {
            deal.validate().expect("an imported deal is valid");
        }
    }
});
