//! Listening on a unix socket. A path that exists is looked at first: a
//! socket file that nothing answers on (left by a crash) is replaced, one
//! that a live process answers on is "in use", and anything that is not a
//! socket is never touched. The socket is created with --unix-mode when
//! given (through the umask, so it never exists with other permissions),
//! and a `SocketFile` removes it at exit if it is still the one made here.
//! An abstract name (`@name`) has no file: none of this applies to it.

use std::fs;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::PathBuf;
use std::time::Duration;

use super::endpoint::Listener;
use crate::config::rule::UnixPath;
use crate::error::Error;
use crate::sys;

/// How long a probe of an existing socket file waits for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A socket file this process made, removed when dropped if the path still
/// holds that very file (not one that someone put there since).
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino);
        if ours {
            if let Err(e) = fs::remove_file(&self.path) {
                log::warn!("cannot remove {}: {e}", self.path.display());
            }
        }
    }
}

/// Binds a unix listener at `path`, created with `mode` when given; the
/// socket file to remove at exit, for a path.
pub fn bind(
    path: &UnixPath,
    mode: Option<u32>,
    accept_timeout: Duration,
) -> Result<(Listener, Option<SocketFile>), Error> {
    let bind_error = |source| Error::Bind {
        listen: path.to_string(),
        source,
    };
    if let Some(name) = path.abstract_name() {
        let addr = SocketAddr::from_abstract_name(name).map_err(bind_error)?;
        let listener = UnixListener::bind_addr(&addr).map_err(bind_error)?;
        let listener = Listener::Unix(listener).prepare(accept_timeout);
        return listener.map(|l| (l, None)).map_err(bind_error);
    }
    let file = PathBuf::from(path.as_str());
    clear_stale(&file).map_err(bind_error)?;
    let bound = match mode {
        Some(mode) => sys::with_umask(0o777 & !mode, || UnixListener::bind(&file)),
        None => UnixListener::bind(&file),
    };
    let listener = bound.map_err(bind_error)?;
    let meta = fs::symlink_metadata(&file).map_err(bind_error)?;
    let made = SocketFile {
        path: file,
        dev: meta.dev(),
        ino: meta.ino(),
    };
    let listener = Listener::Unix(listener)
        .prepare(accept_timeout)
        .map_err(bind_error)?;
    Ok((listener, Some(made)))
}

/// Makes way for a new socket at `file`: nothing there, or a stale socket
/// (removed); an error for a live socket or anything that is not a socket.
fn clear_stale(file: &std::path::Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(file) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "it exists and is not a socket; left untouched",
        ));
    }
    let text = file.to_string_lossy();
    match sys::connect_unix(&text, PROBE_TIMEOUT) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "in use: a live process answers on it",
        )),
        Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "in use: a live process has it, with its listen queue full",
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            log::info!("unix:{text}: replacing a stale socket that nothing answers on");
            fs::remove_file(file)
        }
        Err(e) => Err(e),
    }
}
