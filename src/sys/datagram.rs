//! UDP datagrams with the address they were sent to (IP_PKTINFO,
//! IPV6_PKTINFO), so that a reply on a wildcard listener leaves from the
//! address its client wrote to. std has no API for ancillary data.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::raw::{c_int, c_void};

use super::socket::{set_option, SOL_SOCKET};
use super::wire::{
    encode_addr, encode_arrival, Arrival, ControlBuf, SockAddrBuf, IPV6_RECVPKTINFO, IP_PKTINFO,
    SOL_IP, SOL_IPV6,
};

const SO_RCVBUF: c_int = 8;

extern "C" {
    fn sendmsg(fd: c_int, msg: *const MsgHdr, flags: c_int) -> isize;
}

#[repr(C)]
pub(super) struct IoVec {
    pub(super) base: *mut c_void,
    pub(super) len: usize,
}

/// `struct msghdr`. glibc and the kernel use size_t for msg_iovlen and
/// msg_controllen; musl uses an int and padding there, which a zeroed
/// usize matches on little-endian targets.
#[repr(C)]
pub(super) struct MsgHdr {
    pub(super) name: *mut c_void,
    pub(super) namelen: u32,
    pub(super) iov: *mut IoVec,
    pub(super) iovlen: usize,
    pub(super) control: *mut c_void,
    pub(super) controllen: usize,
    pub(super) flags: c_int,
}

/// Asks for a receive buffer of `bytes` (SO_RCVBUF; the kernel caps it at
/// net.core.rmem_max and counts only what datagrams really queue).
pub fn set_receive_buffer(socket: &UdpSocket, bytes: c_int) -> io::Result<()> {
    set_option(socket, SOL_SOCKET, SO_RCVBUF, &bytes)
}

/// Asks the kernel to tell, with each datagram this socket receives, the
/// address it was sent to (for `recv_with_arrival`).
pub fn want_arrival(socket: &UdpSocket, ipv6: bool) -> io::Result<()> {
    let (level, name) = match ipv6 {
        true => (SOL_IPV6, IPV6_RECVPKTINFO),
        false => (SOL_IP, IP_PKTINFO),
    };
    set_option(socket, level, name, &(1 as c_int))
}

/// Sends one datagram to `to`, from the address in `from` when given (a
/// socket bound to a wildcard address would otherwise pick its own).
pub fn send_from(
    socket: &UdpSocket,
    buf: &[u8],
    to: SocketAddr,
    from: Option<Arrival>,
) -> io::Result<usize> {
    let Some(from) = from else {
        return socket.send_to(buf, to);
    };
    let mut name: SockAddrBuf = [0; 16];
    let namelen = encode_addr(to, &mut name);
    let mut control: ControlBuf = [0; 8];
    let controllen = encode_arrival(from, &mut control);
    let mut iov = IoVec {
        base: buf.as_ptr() as *mut c_void,
        len: buf.len(),
    };
    let msg = header(&mut name, namelen, &mut iov, &mut control, controllen);
    // SAFETY: every pointer in `msg` points at a live buffer of the length
    // given with it, for the duration of the call; sendmsg only reads them.
    count(unsafe { sendmsg(socket.as_raw_fd(), &msg, 0) })
}

/// A message header over one datagram's buffers.
fn header(
    name: &mut SockAddrBuf,
    namelen: u32,
    iov: &mut IoVec,
    control: &mut ControlBuf,
    controllen: usize,
) -> MsgHdr {
    MsgHdr {
        name: name.as_mut_ptr().cast(),
        namelen,
        iov,
        iovlen: 1,
        control: control.as_mut_ptr().cast(),
        controllen,
        flags: 0,
    }
}

/// A byte count from recvmsg/sendmsg, or the error it signalled with -1.
fn count(n: isize) -> io::Result<usize> {
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}
