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
    if let Ok(rule) = config::rule::Rule::parse(text, config::rule::Source::Argument(1)) {
        assert!(!rule.targets.is_empty());
        let shown = rule.to_string();
        let again = config::rule::Rule::parse(&shown, config::rule::Source::Argument(1))
            .expect("printed rule parses");
        assert_eq!(again, rule, "{shown}");
    }
});
