//! UDP rules. A datagram's walk, one file a step, each using only the
//! files after it: receive.rs (the rule's receive thread and its session
//! table: --allow, a slot under --max-conns, a new session or an open one)
//! -> session.rs (a client's session: its own thread reaches a target,
//! forwards the client's datagrams, relays the replies, expires) ->
//! gate.rs (the queue a session's datagrams wait in while a target is
//! being reached) and upstream.rs (the session's socket to its target and
//! the walk over the rule's targets), tally.rs (what went each way) ->
//! rule.rs (the listening socket and what every session of the rule
//! shares).

mod gate;
mod receive;
mod rule;
mod session;
mod tally;
mod upstream;

pub use receive::Receiver;
pub use rule::{adopt, bind, UdpRule};
