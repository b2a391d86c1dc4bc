//! Multicast DNS responses as anyone on the link may send them: the
//! reader never panics and never loops; an answer it gives has at least
//! one and at most MAX_ADDRESSES addresses, each once, and a TTL above 0.
//! Input: two bytes of query ID, a length byte and that many bytes of the
//! name asked, then the packet. The query for the name, when it can be
//! written, fits the longest name and is no answer to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../src/mdns/message.rs"]
mod message;

fuzz_target!(|data: &[u8]| {
    let [a, b, len, rest @ ..] = data else { return };
    let id = u16::from_be_bytes([*a, *b]);
    let (name, packet) = rest.split_at(usize::from(*len).min(rest.len()));
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    if let Some(answer) = message::answer(packet, id, &name) {
        assert!(!answer.addrs.is_empty() && answer.addrs.len() <= message::MAX_ADDRESSES);
        assert!(answer.ttl > 0);
        for (i, addr) in answer.addrs.iter().enumerate() {
            assert!(!answer.addrs[..i].contains(addr), "{addr} twice");
        }
    }
    if let Ok(query) = message::query(id, &name) {
        assert!(query.len() <= 12 + 255 + 10, "{} bytes", query.len());
        assert_eq!(message::answer(&query, id, &name), None);
    }
});
