//! The PROXY protocol on the wire (the bytes are proxy.rs's): reading a
//! trusted client's header within its deadline, keeping what the same
//! reads brought after it for the target, and the header that begins a
//! connection to a target under --send-proxy.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::client::Client;
use super::endpoint::Stream;
use super::proxy::{self, BadHeader, Header, Parsed};
use crate::config::SendProxy;

/// How long a trusted client has to send its whole header.
pub const HEADER_DEADLINE: Duration = Duration::from_secs(5);
/// Room for the longest header and what may come with it in the same read.
const READ_BUFFER: usize = proxy::V2_MAX + 4096;

/// Why a trusted client's header was not taken.
#[derive(Debug)]
pub enum HeaderError {
    Bad(BadHeader),
    /// No whole header within the deadline; `got` bytes had come.
    Slow {
        got: usize,
    },
    /// The client closed before its header was whole.
    Closed {
        got: usize,
    },
    Io(io::Error),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = HEADER_DEADLINE.as_secs();
        match self {
            HeaderError::Bad(bad) => write!(f, "{bad}"),
            HeaderError::Slow { got } => {
                write!(
                    f,
                    "no whole PROXY header within {secs} s ({got} bytes came)"
                )
            }
            HeaderError::Closed { got } => {
                write!(
                    f,
                    "closed before its PROXY header was whole ({got} bytes came)"
                )
            }
            HeaderError::Io(e) => write!(f, "reading its PROXY header: {e}"),
        }
    }
}

/// Reads a header from `client` within `deadline`: the header, and the
/// bytes that followed it in the same reads (the client's first data).
pub fn read(client: &Stream, deadline: Duration) -> Result<(Header, Vec<u8>), HeaderError> {
    let until = Instant::now() + deadline;
    let mut buf = vec![0u8; READ_BUFFER];
    let mut got = 0;
    loop {
        match proxy::parse(&buf[..got]).map_err(HeaderError::Bad)? {
            Parsed::Done(header, len) => {
                // The relay sets its own timeouts, if any, from none.
                client.set_timeouts(None).map_err(HeaderError::Io)?;
                return Ok((header, buf[len..got].to_vec()));
            }
            Parsed::More => {}
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HeaderError::Slow { got });
        }
        client.set_timeouts(Some(left)).map_err(HeaderError::Io)?;
        match read_some(client, &mut buf[got..]) {
            Ok(0) => return Err(HeaderError::Closed { got }),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if crate::flow::activity::is_tick(&e) => return Err(HeaderError::Slow { got }),
            Err(e) => return Err(HeaderError::Io(e)),
        }
    }
}

fn read_some(stream: &Stream, buf: &mut [u8]) -> io::Result<usize> {
    match stream {
        Stream::Tcp(s) => (&*s).read(buf),
        Stream::Unix(s) => (&*s).read(buf),
    }
}

/// Begins the connection to `target` with a header for `client`, which
/// reached us at `local` (None for a unix client), in one write.
pub fn send(
    target: &Stream,
    version: SendProxy,
    client: &Client,
    local: Option<SocketAddr>,
) -> io::Result<()> {
    let addresses = client.origin(local);
    let header = match version {
        SendProxy::V1 => proxy::encode_v1(addresses),
        SendProxy::V2 => proxy::encode_v2(addresses),
    };
    (&*target).write_all(&header)
}

/// The header a load balancer's health check sends (v1 `PROXY UNKNOWN`,
/// v2 `LOCAL`), which begins the prober's connection to a PROXY-speaking
/// target so that it does not log garbage.
pub fn send_health_check(target: &Stream, version: SendProxy) -> io::Result<()> {
    let header = match version {
        SendProxy::V1 => proxy::encode_v1(None),
        SendProxy::V2 => proxy::encode_v2(None),
    };
    (&*target).write_all(&header)
}
