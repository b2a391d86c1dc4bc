//! Unix-socket helpers: a temporary folder that goes away on drop, servers
//! on a socket path (echo, scripted), clients with timeouts, and a round
//! trip that writes and reads at once.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::thread;

use super::{temp_path, IO_TIMEOUT};

/// A folder for socket files, removed with what is in it when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let dir = temp_path("dir");
        std::fs::create_dir_all(&dir).expect("make a temporary folder");
        TempDir(dir)
    }

    /// A path in the folder, as a string for rules.
    pub fn path(&self, name: &str) -> String {
        self.0
            .join(name)
            .to_str()
            .expect("a UTF-8 path")
            .to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Serves each connection on `path` on its own thread with `handle`.
pub fn unix_server<F>(path: &str, handle: F)
where
    F: Fn(UnixStream) + Send + Sync + Clone + 'static,
{
    let listener = UnixListener::bind(path).expect("bind a unix test server");
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            unix_timeouts(&stream);
            let handle = handle.clone();
            thread::spawn(move || handle(stream));
        }
    });
}

/// Echoes every byte back on `path`; half-closes after the client's end.
pub fn unix_echo_server(path: &str) {
    unix_server(path, |mut stream: UnixStream| {
        let mut reader = stream.try_clone().expect("clone");
        if io::copy(&mut reader, &mut stream).is_ok() {
            let _ = stream.shutdown(Shutdown::Write);
        }
    });
}

pub fn unix_timeouts(stream: &UnixStream) {
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .expect("read timeout");
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .expect("write timeout");
}

/// Connects to `path` with timeouts, failing the test if it cannot.
pub fn unix_connect(path: impl AsRef<Path>) -> UnixStream {
    let path = path.as_ref();
    let stream =
        UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
    unix_timeouts(&stream);
    stream
}

/// Writes `data` from one thread while reading everything back on this one
/// (any stream that clones: TCP or unix).
pub fn round_trip_any<S>(
    mut stream: S,
    data: Vec<u8>,
    clone: impl FnOnce(&S) -> S,
) -> io::Result<Vec<u8>>
where
    S: Read + Write + Send + 'static + HalfClose,
{
    let mut writer = clone(&stream);
    let sender = thread::spawn(move || -> io::Result<()> {
        writer.write_all(&data)?;
        writer.half_close()
    });
    let mut got = Vec::new();
    stream.read_to_end(&mut got)?;
    sender.join().expect("sender thread")?;
    Ok(got)
}

/// A stream that can end its writing side.
pub trait HalfClose {
    fn half_close(&self) -> io::Result<()>;
}

impl HalfClose for UnixStream {
    fn half_close(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

impl HalfClose for std::net::TcpStream {
    fn half_close(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}
