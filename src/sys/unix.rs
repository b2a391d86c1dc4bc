//! Unix stream sockets where std stops short: connecting within a timeout
//! (std's UnixStream::connect waits for ever on a full listen queue), the
//! peer's pid and uid (SO_PEERCRED; std's peer_cred is unstable), and the
//! process umask around a bind, so a socket file is created with the mode
//! asked for instead of widened or narrowed after the fact.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::raw::c_int;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::check;
use super::socket::{connect, get_option, SOL_SOCKET};

pub(super) const AF_UNIX: c_int = 1;
pub(super) const SOCK_STREAM: c_int = 1;
const SOCK_CLOEXEC: c_int = 0o2_000_000;
const SO_PEERCRED: c_int = 17;
/// sun_path's size in struct sockaddr_un on Linux.
const SUN_PATH: usize = 108;

#[repr(C)]
struct SockAddrUn {
    sun_family: u16,
    sun_path: [u8; SUN_PATH],
}

#[repr(C)]
#[derive(Default)]
struct Ucred {
    pid: i32,
    uid: u32,
    gid: u32,
}

extern "C" {
    fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int;
    fn umask(mask: u32) -> u32;
}

/// Connects to the unix socket at `path` (`/path`, or `@name` in the
/// abstract namespace), waiting at most `timeout` for room in its listen
/// queue (AF_UNIX bounds that wait by SO_SNDTIMEO).
pub fn connect_unix(path: &str, timeout: Duration) -> io::Result<UnixStream> {
    let (addr, len) = sockaddr_un(path)?;
    // SAFETY: socket(2) takes no pointers; a new descriptor or -1 comes back.
    let fd = unsafe { socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket that nothing else owns; the stream closes it.
    let stream = unsafe { UnixStream::from_raw_fd(fd) };
    stream.set_write_timeout(Some(timeout))?;
    // SAFETY: the fd is open; addr is a sockaddr_un whose first `len` bytes are set.
    let rc = unsafe { connect(stream.as_raw_fd(), (&addr as *const SockAddrUn).cast(), len) };
    match check(rc) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "timed out: the socket's listen queue stayed full",
        )),
        Err(e) => Err(e),
        Ok(()) => stream.set_write_timeout(None).map(|()| stream),
    }
}

/// A sockaddr_un for `path` and the length to pass with it: a path ends
/// with a NUL; an abstract name starts with one (written `@`) and ends
/// where the length says.
fn sockaddr_un(path: &str) -> io::Result<(SockAddrUn, u32)> {
    let mut addr = SockAddrUn {
        sun_family: AF_UNIX as u16,
        sun_path: [0; SUN_PATH],
    };
    let bytes = path.as_bytes();
    let (start, used) = match bytes.strip_prefix(b"@") {
        Some(name) => (1, name),
        None => (0, bytes),
    };
    // A path needs its NUL; an abstract name needs its leading NUL.
    if used.len() + 1 > SUN_PATH || used.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "unix socket path too long or holding a NUL",
        ));
    }
    addr.sun_path[start..start + used.len()].copy_from_slice(used);
    let len = size_of::<u16>() + used.len() + 1;
    Ok((addr, len as u32))
}

/// The pid and uid of the process at the other end of a unix stream, as
/// they were when it connected.
pub fn peer_cred(stream: &UnixStream) -> io::Result<(i32, u32)> {
    let mut cred = Ucred::default();
    get_option(stream.as_raw_fd(), SOL_SOCKET, SO_PEERCRED, &mut cred)?;
    Ok((cred.pid, cred.uid))
}

/// Runs `f` with the process umask set to `mask`, then restores it. Only
/// for start-up, before any other thread can create files.
pub fn with_umask<T>(mask: u32, f: impl FnOnce() -> T) -> T {
    // SAFETY: umask(2) takes no pointers and cannot fail.
    let old = unsafe { umask(mask) };
    let out = f();
    // SAFETY: as above.
    unsafe { umask(old) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_ends_with_a_nul_and_an_abstract_name_starts_with_one() {
        let (addr, len) = sockaddr_un("/run/a.sock").unwrap();
        assert_eq!(addr.sun_family, 1);
        assert_eq!(&addr.sun_path[..12], b"/run/a.sock\0");
        assert_eq!(len as usize, 2 + 11 + 1);
        let (addr, len) = sockaddr_un("@app").unwrap();
        assert_eq!(&addr.sun_path[..4], b"\0app");
        assert_eq!(len as usize, 2 + 1 + 3);
    }

    #[test]
    fn paths_that_do_not_fit_are_refused() {
        assert!(sockaddr_un(&format!("/{}", "a".repeat(106))).is_ok());
        assert!(sockaddr_un(&format!("/{}", "a".repeat(107))).is_err());
        // An abstract name's NUL comes first: 107 bytes after it still fit.
        assert!(sockaddr_un(&format!("@{}", "a".repeat(107))).is_ok());
        assert!(sockaddr_un(&format!("@{}", "a".repeat(108))).is_err());
        assert!(sockaddr_un("/a\0b").is_err());
    }

    #[test]
    fn connecting_to_a_listener_tells_its_credentials() {
        let dir = std::env::temp_dir().join(format!("ambassador-sys-{}", std::process::id()));
        let _ = std::fs::create_dir(&dir);
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let client = connect_unix(path.to_str().unwrap(), Duration::from_secs(5)).unwrap();
        let (server, _) = listener.accept().unwrap();
        let (pid, uid) = peer_cred(&server).unwrap();
        assert_eq!(pid, std::process::id() as i32);
        assert_eq!(uid, peer_cred(&client).unwrap().1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_path_is_not_found() {
        let err = connect_unix("/nonexistent/ambassador.sock", Duration::from_secs(1)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
