//! Environment variables: lines of NAME=VALUE, as the process would see them.
#![no_main]
#![allow(dead_code)]

use libfuzzer_sys::fuzz_target;

include!("parsers.rs");

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let vars: Vec<(String, String)> = text
        .split('\n')
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match config::env::rules_from_env(&vars) {
        Ok(rules) => {
            for r in rules {
                assert!(!r.targets.is_empty());
                let (config::rule::Listen::Tcp(addr) | config::rule::Listen::Udp(addr)) = r.listen
                else {
                    panic!("a variable made a unix rule: {r}");
                };
                assert_eq!(addr.ip().to_string(), "0.0.0.0");
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("variable "), "{msg}");
            assert_eq!(e.exit_code(), 2);
        }
    }
});
