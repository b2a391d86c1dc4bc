//! One client's life, on the thread that accepted it, as a pipeline of
//! short steps: accept (accept.rs) -> read a PROXY header, from a trusted
//! peer only (header.rs) -> admit (--allow, then a slot under --max-conns)
//! -> connect to the first target that answers (connect.rs) -> write a
//! PROXY header, under --send-proxy -> relay: the target-to-client copier
//! on a pooled thread, the client-to-target one here (copier.rs), starting
//! with the bytes that came after the client's header.

use std::sync::Arc;

use super::client::Client;
use super::conn::{Conn, Ends};
use super::connect::connect;
use super::copier::copy;
use super::endpoint::{Peer, Stream};
use super::{header, Forwarding};
use crate::flow::activity::tick;
use crate::flow::counters::Connecting;
use crate::flow::limit::Permit;
use crate::flow::pool::Pool;
use crate::flow::Direction;

/// Serves an accepted client on this thread; returns once its client-to-
/// target direction is done (the other may still run on its own thread).
pub fn serve(stream: Stream, peer: Peer, fwd: &Forwarding) {
    let Some((client, prefix)) = identify(&stream, peer, fwd) else {
        return;
    };
    let Some(permit) = admit(&stream, &client, fwd) else {
        return;
    };
    let connecting = fwd.counters().connecting();
    let rule = fwd.rule();
    let Some((target, reached)) = connect(&fwd.targets, fwd.timeouts.connect) else {
        fwd.counters().no_target();
        log::warn!("rule {rule}: no target answered; closing client {client}");
        // A reset, not a FIN: the client must not mistake this for an empty reply.
        stream.reset_on_drop();
        return;
    };
    if let Some(version) = fwd.send_proxy {
        if let Err(e) = header::send(&target, version, &client, stream.local_addr()) {
            log::warn!("rule {rule}: cannot send the PROXY header to {reached}: {e}; closing client {client}");
            stream.reset_on_drop();
            target.reset_on_drop();
            return;
        }
    }
    log::debug!("{client} -> {reached}: open (rule {rule})");
    let ends = Ends {
        client_stream: stream,
        client,
        target_stream: target,
        target: reached,
    };
    relay(ends, fwd, (connecting, permit), &prefix);
}

/// Who the client is: a peer in the --accept-proxy ranges must begin with
/// a PROXY header, within its deadline; anyone else is taken as it is and
/// nothing of theirs is read here. A bad header resets the client and is
/// counted; with the header come the bytes that followed it.
fn identify(stream: &Stream, peer: Peer, fwd: &Forwarding) -> Option<(Client, Vec<u8>)> {
    let trusted = peer.ip().is_some_and(|ip| fwd.accept_proxy.contains(ip));
    if !trusted {
        return Some((Client::direct(peer), Vec::new()));
    }
    match header::read(stream, header::HEADER_DEADLINE) {
        Ok((found, rest)) => {
            let proxied = found.addresses;
            Some((Client { peer, proxied }, rest))
        }
        Err(e) => {
            fwd.counters().bad_header();
            log::warn!("rule {}: {peer}: {e}; reset", fwd.rule());
            stream.reset_on_drop();
            None
        }
    }
}

/// --allow, then a slot under --max-conns (waiting for one at the cap). A
/// client outside every range is reset at once and counted; no target
/// connection is made for it.
fn admit(stream: &Stream, client: &Client, fwd: &Forwarding) -> Option<Permit> {
    if client.ip().is_some_and(|ip| !fwd.allow.permits(ip)) {
        fwd.counters().denied();
        log::debug!("rule {}: {client} is not allowed; reset", fwd.rule());
        stream.reset_on_drop();
        return None;
    }
    Some(fwd.limit.acquire())
}

/// Relays a connected pair until both directions are done: `prefix` (bytes
/// already read from the client) reaches the target first.
fn relay(ends: Ends, fwd: &Forwarding, admitted: (Connecting, Permit), prefix: &[u8]) {
    let idle = fwd.timeouts.idle;
    for stream in [&ends.client_stream, &ends.target_stream] {
        stream.set_nodelay();
        if let Some(idle) = idle {
            let _ = stream.set_timeouts(Some(tick(idle)));
        }
    }
    if idle.is_none() {
        ends.client_stream.clear_inherited_timeout();
    }
    let (connecting, permit) = admitted;
    let conn = Arc::new(Conn::new(ends, idle, connecting, permit));
    let down = Arc::clone(&conn);
    if let Err(e) = Pool::global().run(move || copy(&down, Direction::Down, &[])) {
        let (rule, client) = (fwd.rule(), conn.client());
        log::warn!("rule {rule}: dropping client {client}: cannot start a thread: {e}");
        conn.note_abort(|| format!("no thread: {e}"));
        conn.teardown();
        return;
    }
    copy(&conn, Direction::Up, prefix);
}
