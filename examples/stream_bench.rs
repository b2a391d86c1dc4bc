//! The benchmark's bulk peers over stream sockets, TCP or unix (iperf3 has
//! no unix sockets), run by scripts/bench-unix. ADDR is HOST:PORT or
//! unix:PATH.
//!
//!     stream_bench sink ADDR
//!         listens; reads and discards everything each client sends, until killed
//!     stream_bench source ADDR
//!         listens; writes zeros to each client until it goes away, until killed
//!     stream_bench push ADDR SECONDS
//!     stream_bench pull ADDR SECONDS
//!         one connection that writes (push) or reads (pull) for SECONDS in
//!         128 KiB calls; prints one JSON line: {"gbps":..,"bytes":..}

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

const CHUNK: usize = 128 * 1024;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["sink", addr] => serve(addr, sink),
        ["source", addr] => serve(addr, source),
        ["push", addr, seconds] => timed(addr, seconds, true),
        ["pull", addr, seconds] => timed(addr, seconds, false),
        _ => {
            Err("usage: stream_bench sink|source ADDR | stream_bench push|pull ADDR SECONDS".into())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stream_bench: {e}");
            ExitCode::from(2)
        }
    }
}

/// A stream of either family, boxed: the cost is per 128 KiB call.
type Conn = Box<dyn ReadWrite + Send>;
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// Accepts clients on `addr` for ever, each served by `handle` on a thread.
fn serve(addr: &str, handle: fn(Conn)) -> Result<(), String> {
    let accept: Box<dyn Fn() -> std::io::Result<Conn>> = match addr.strip_prefix("unix:") {
        Some(path) => {
            let _ = std::fs::remove_file(path);
            let l = UnixListener::bind(path).map_err(|e| format!("bind {addr}: {e}"))?;
            Box::new(move || l.accept().map(|(s, _)| Box::new(s) as Conn))
        }
        None => {
            let l = TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
            Box::new(move || l.accept().map(|(s, _)| Box::new(s) as Conn))
        }
    };
    loop {
        if let Ok(conn) = accept() {
            thread::spawn(move || handle(conn));
        }
    }
}

fn sink(mut conn: Conn) {
    let mut buf = vec![0u8; CHUNK];
    while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
}

fn source(mut conn: Conn) {
    let buf = vec![0u8; CHUNK];
    while conn.write_all(&buf).is_ok() {}
}

fn connect(addr: &str) -> Result<Conn, String> {
    let conn: Conn = match addr.strip_prefix("unix:") {
        Some(path) => Box::new(UnixStream::connect(path).map_err(|e| format!("{addr}: {e}"))?),
        None => Box::new(TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?),
    };
    Ok(conn)
}

/// Writes (push) or reads (pull) for `seconds`; prints the rate.
fn timed(addr: &str, seconds: &str, push: bool) -> Result<(), String> {
    let seconds: f64 = seconds
        .parse()
        .map_err(|_| format!("seconds {seconds:?}"))?;
    let mut conn = connect(addr)?;
    let mut buf = vec![0u8; CHUNK];
    let (start, mut moved) = (Instant::now(), 0u64);
    let until = start + Duration::from_secs_f64(seconds);
    while Instant::now() < until {
        let n = match push {
            true => conn.write(&buf),
            false => conn.read(&mut buf),
        }
        .map_err(|e| format!("{addr}: {e}"))?;
        if n == 0 {
            return Err(format!("{addr}: closed after {moved} bytes"));
        }
        moved += n as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"gbps\":{:.4},\"bytes\":{moved}}}",
        moved as f64 * 8.0 / secs / 1e9
    );
    Ok(())
}
