//! One client's life, on the thread that accepted it, as a pipeline of
//! short steps: accept (accept.rs) -> admit (--allow, then a slot under
//! --max-conns) -> connect to the first target that answers (connect.rs)
//! -> relay: the target-to-client copier on a pooled thread, the
//! client-to-target one here (copier.rs). A PROXY header, read from a
//! trusted client or written to the target, has its place between these
//! steps; bytes read past such a header start the copier as a prefix.

use std::sync::Arc;

use super::conn::{Conn, Ends};
use super::connect::connect;
use super::copier::copy;
use super::endpoint::{Peer, Stream};
use super::Forwarding;
use crate::flow::activity::tick;
use crate::flow::limit::Permit;
use crate::flow::pool::Pool;
use crate::flow::Direction;

/// Serves an accepted client on this thread; returns once its client-to-
/// target direction is done (the other may still run on its own thread).
pub fn serve(client: Stream, peer: Peer, fwd: &Forwarding) {
    let Some(permit) = admit(&client, &peer, fwd) else {
        return;
    };
    let rule = &fwd.rule;
    let Some((target, reached)) = connect(rule, fwd.timeouts.connect) else {
        fwd.stats.no_target();
        log::warn!("rule {rule}: no target answered; closing client {peer}");
        // A reset, not a FIN: the client must not mistake this for an empty reply.
        client.reset_on_drop();
        return;
    };
    log::debug!("{peer} -> {reached}: open (rule {rule})");
    let ends = Ends {
        client,
        peer,
        target,
        reached,
    };
    relay(ends, fwd, permit, &[]);
}

/// --allow, then a slot under --max-conns (waiting for one at the cap). A
/// client outside every range is reset at once and counted; no target
/// connection is made for it.
fn admit(client: &Stream, peer: &Peer, fwd: &Forwarding) -> Option<Permit> {
    if peer.ip().is_some_and(|ip| !fwd.allow.permits(ip)) {
        fwd.stats.denied();
        log::debug!("rule {}: {peer} is not allowed; reset", fwd.rule);
        client.reset_on_drop();
        return None;
    }
    Some(fwd.limit.acquire())
}

/// Relays a connected pair until both directions are done: `prefix` (bytes
/// already read from the client) reaches the target first.
fn relay(ends: Ends, fwd: &Forwarding, permit: Permit, prefix: &[u8]) {
    let idle = fwd.timeouts.idle;
    for stream in [&ends.client, &ends.target] {
        stream.set_nodelay();
        if let Some(idle) = idle {
            let _ = stream.set_timeouts(Some(tick(idle)));
        }
    }
    if idle.is_none() {
        ends.client.clear_inherited_timeout();
    }
    let conn = Arc::new(Conn::new(ends, idle, Arc::clone(&fwd.stats), permit));
    let down = Arc::clone(&conn);
    if let Err(e) = Pool::global().run(move || copy(&down, Direction::Down, &[])) {
        let (rule, peer) = (&fwd.rule, conn.peer());
        log::warn!("rule {rule}: dropping client {peer}: cannot start a thread: {e}");
        conn.note_abort(|| format!("no thread: {e}"));
        conn.teardown();
        return;
    }
    copy(&conn, Direction::Up, prefix);
}
