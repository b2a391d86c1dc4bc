//! Descriptors a parent hands over: the status pipe dockerd gives its
//! userland proxy (descriptor 3), and sockets bound by someone else (a
//! supervisor's LISTEN_FDS from 3 on, dockerd's descriptor 4), taken as
//! the std type their family and type (SO_DOMAIN, SO_TYPE) say.

use std::fs::File;
use std::io;
use std::net::{TcpListener, UdpSocket};
use std::os::fd::{FromRawFd, RawFd};
use std::os::raw::c_int;
use std::os::unix::net::UnixListener;

use super::socket::{get_option, SOL_SOCKET};
use super::unix::{AF_UNIX, SOCK_STREAM};

const F_GETFD: c_int = 1;
const F_SETFD: c_int = 2;
const FD_CLOEXEC: c_int = 1;
const SO_TYPE: c_int = 3;
const SO_ACCEPTCONN: c_int = 30;
const SO_DOMAIN: c_int = 39;
const AF_INET: c_int = 2;
const AF_INET6: c_int = 10;
const SOCK_DGRAM: c_int = 2;

extern "C" {
    fn fcntl(fd: c_int, cmd: c_int, ...) -> c_int;
}

/// A socket handed over, as std's type for it.
#[derive(Debug)]
pub enum Handed {
    Tcp(TcpListener),
    Udp(UdpSocket),
    Unix(UnixListener),
}

/// Whether descriptor `fd` is open.
fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD takes no pointer; it fails with EBADF on a closed fd.
    unsafe { fcntl(fd, F_GETFD) >= 0 }
}

/// Descriptor 3 as a file to write to, if this process was given one
/// (dockerd's pipe for its userland proxy's status).
pub fn status_pipe() -> Option<File> {
    // SAFETY: fd 3 is open and nothing else in this process owns it: the
    // caller takes it once, at start, before any file is opened.
    is_open(3).then(|| unsafe { File::from_raw_fd(3) })
}

fn option(fd: RawFd, name: c_int) -> io::Result<c_int> {
    let mut value: c_int = 0;
    get_option(fd, SOL_SOCKET, name, &mut value).map(|_| value)
}

/// Takes descriptor `fd`, a socket bound by the parent: a listening TCP
/// or unix stream socket, or a bound UDP socket. It is closed on exec from
/// now on (nothing here execs, but a socket should not leak if it did).
pub fn take_socket(fd: RawFd) -> io::Result<Handed> {
    let kind = (option(fd, SO_DOMAIN)?, option(fd, SO_TYPE)?);
    let listening = kind.1 != SOCK_STREAM || option(fd, SO_ACCEPTCONN)? == 1;
    if !listening {
        return Err(io::Error::other("a stream socket that is not listening"));
    }
    // SAFETY: F_SETFD with an int flag takes no pointer.
    unsafe { fcntl(fd, F_SETFD, FD_CLOEXEC) };
    // SAFETY (each arm): `fd` is an open socket of the family and type just
    // read, handed to this process for it to own; it is taken once.
    match kind {
        (AF_INET | AF_INET6, SOCK_STREAM) => {
            Ok(Handed::Tcp(unsafe { TcpListener::from_raw_fd(fd) }))
        }
        (AF_INET | AF_INET6, SOCK_DGRAM) => Ok(Handed::Udp(unsafe { UdpSocket::from_raw_fd(fd) })),
        (AF_UNIX, SOCK_STREAM) => Ok(Handed::Unix(unsafe { UnixListener::from_raw_fd(fd) })),
        (domain, ty) => Err(io::Error::other(format!(
            "a socket of family {domain} and type {ty}: expected TCP, UDP or a unix stream"
        ))),
    }
}
