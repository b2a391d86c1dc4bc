//! Several datagrams in one system call (recvmmsg) for a UDP rule's receive
//! thread: under load, one wake-up takes every datagram that waits, up to
//! `BATCH`, instead of one. std has no API for it.

use std::io;
use std::mem::size_of;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::raw::{c_int, c_uint, c_void};

use super::datagram::{IoVec, MsgHdr};
use super::wire::{decode_addr, decode_arrival, Arrival, ControlBuf, SockAddrBuf};

/// A buffer that never truncates a datagram: the largest UDP payload is
/// 65,535 less the 8-byte UDP header (65,527; over IPv4 also less the
/// 20-byte IP header, 65,507), so 64 KiB holds any with room to spare.
pub const MAX_DATAGRAM: usize = 65_536;

/// Datagrams taken per call at most. Each has a buffer of MAX_DATAGRAM,
/// which costs memory only where a datagram was written (a 100-byte query
/// touches one page of its slot).
pub const BATCH: usize = 8;

/// recvmmsg: block for the first datagram only, then take what waits.
const MSG_WAITFORONE: c_int = 0x10000;

extern "C" {
    fn recvmmsg(
        fd: c_int,
        msgs: *mut MMsgHdr,
        vlen: c_uint,
        flags: c_int,
        timeout: *mut c_void,
    ) -> c_int;
}

/// `struct mmsghdr`: a msghdr and the length received into it.
#[repr(C)]
struct MMsgHdr {
    hdr: MsgHdr,
    len: c_uint,
}

/// The buffers of up to BATCH datagrams, their senders and arrival
/// addresses, and how many the last `receive` filled.
pub struct Batch {
    data: Vec<u8>,
    names: [SockAddrBuf; BATCH],
    controls: [ControlBuf; BATCH],
    lens: [usize; BATCH],
    control_lens: [usize; BATCH],
}

impl Default for Batch {
    fn default() -> Batch {
        Batch {
            // Zeroed by the allocator's fresh pages: nothing is touched yet.
            data: vec![0; BATCH * MAX_DATAGRAM],
            names: [[0; 16]; BATCH],
            controls: [[0; 8]; BATCH],
            lens: [0; BATCH],
            control_lens: [0; BATCH],
        }
    }
}

impl Batch {
    /// Waits for a datagram, then takes it and those that wait behind it,
    /// up to BATCH: how many (`get` reads each).
    pub fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let data = self.data.as_mut_ptr();
        let names = self.names.as_mut_ptr();
        let controls = self.controls.as_mut_ptr();
        let mut msgs: [MMsgHdr; BATCH] = std::array::from_fn(|i| MMsgHdr {
            hdr: MsgHdr {
                name: names.wrapping_add(i).cast(),
                namelen: size_of::<SockAddrBuf>() as u32,
                iov: std::ptr::null_mut(),
                iovlen: 1,
                control: controls.wrapping_add(i).cast(),
                controllen: size_of::<ControlBuf>(),
                flags: 0,
            },
            len: 0,
        });
        let mut iovs: [IoVec; BATCH] = std::array::from_fn(|i| IoVec {
            base: data.wrapping_add(i * MAX_DATAGRAM).cast(),
            len: MAX_DATAGRAM,
        });
        for (msg, iov) in msgs.iter_mut().zip(iovs.iter_mut()) {
            msg.hdr.iov = iov;
        }
        // SAFETY: each header points at its own slot of `data`, its own name
        // and control buffer, and its own iovec, all live and of the lengths
        // given, for the duration of the call; the kernel fills at most BATCH.
        let rc = unsafe {
            recvmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                BATCH as c_uint,
                MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        let n = usize::try_from(rc).map_err(|_| io::Error::last_os_error())?;
        for (i, msg) in msgs.iter().take(n).enumerate() {
            self.lens[i] = msg.len as usize;
            self.control_lens[i] = msg.hdr.controllen.min(size_of::<ControlBuf>());
        }
        Ok(n)
    }

    /// The i-th datagram of the last `receive`: its bytes, its sender, and
    /// where it arrived (when `want_arrival` was asked for the socket);
    /// None for a sender of an unknown address family.
    pub fn get(&self, i: usize) -> Option<(&[u8], SocketAddr, Option<Arrival>)> {
        let from = decode_addr(&self.names[i])?;
        let start = i * MAX_DATAGRAM;
        let datagram = &self.data[start..start + self.lens[i].min(MAX_DATAGRAM)];
        let arrival = decode_arrival(&self.controls[i], self.control_lens[i]);
        Some((datagram, from, arrival))
    }
}
