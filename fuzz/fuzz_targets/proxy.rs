//! PROXY protocol headers (v1 and v2) as a trusted peer might send them:
//! the parser never panics, a whole header is never longer than the input
//! or the protocol's limits, and what it read encodes back to the same
//! addresses.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../src/stream/proxy.rs"]
#[allow(dead_code)]
mod proxy;

fuzz_target!(|data: &[u8]| {
    match proxy::parse(data) {
        Ok(proxy::Parsed::Done(header, len)) => {
            assert!(len <= data.len());
            let again = match header.version {
                1 => {
                    assert!(len <= proxy::V1_MAX);
                    proxy::encode_v1(header.addresses)
                }
                _ => {
                    assert!(len <= proxy::V2_MAX);
                    proxy::encode_v2(header.addresses)
                }
            };
            match proxy::parse(&again) {
                Ok(proxy::Parsed::Done(back, n)) => {
                    assert_eq!(n, again.len());
                    assert_eq!(back.addresses, header.addresses);
                }
                other => panic!("{again:?} did not parse back: {other:?}"),
            }
        }
        Ok(proxy::Parsed::More) => assert!(data.len() < proxy::V2_MAX),
        Err(_) => {}
    }
});
