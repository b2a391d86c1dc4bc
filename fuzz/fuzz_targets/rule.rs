//! A RULE argument (TCP or /udp): parse, and anything that parses prints
//! back to itself.
#![no_main]
#![allow(dead_code)]

use libfuzzer_sys::fuzz_target;

include!("parsers.rs");

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((listen, targets, proto)) = rule::parse_rule(text) {
        assert!(!targets.is_empty());
        let shown = rule::Rule {
            listen,
            proto,
            targets: targets.clone(),
            source: rule::Source::Argument(1),
        }
        .to_string();
        let again = rule::parse_rule(&shown).expect("printed rule parses");
        assert_eq!(again, (listen, targets, proto), "{shown}");
    }
});
