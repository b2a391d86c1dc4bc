//! dockerd's command line for its userland proxy (arguments split on NUL):
//! never a panic; what parses is one rule that prints back to itself and
//! builds a configuration, as main does it.
#![no_main]
#![allow(dead_code)]

use libfuzzer_sys::fuzz_target;

include!("parsers.rs");

fuzz_target!(|data: &[u8]| {
    let args: Vec<String> = data
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if let Ok(proxy) = config::docker_proxy::parse(&args) {
        let shown = proxy.rule.to_string();
        let again = config::rule::Rule::parse(&shown, config::rule::Source::Argument(1))
            .expect("the rule prints as a RULE");
        assert_eq!(again, proxy.rule, "{shown}");
        assert!(config::for_rule(&proxy.rule).is_ok(), "{shown}");
    }
});
