//! The benchmark's UDP peers (scripts/bench runs them), in Rust so that the
//! load and the echo cost little next to the forwarder being measured:
//!
//!     udp_bench echo ADDR
//!         answers every datagram with itself, until killed
//!     udp_bench load ADDR CLIENTS SECONDS SIZE
//!         CLIENTS threads, each a socket of its own, send a SIZE-byte
//!         datagram and wait for its echo (200 ms at most, then it counts as
//!         lost), over and over for SECONDS; prints one JSON line:
//!         {"rps":..,"p50_ms":..,"p99_ms":..,"loss":..,"sent":..}

use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["echo", addr] => echo(addr),
        ["load", addr, clients, seconds, size] => load(addr, clients, seconds, size),
        _ => Err("usage: udp_bench echo ADDR | udp_bench load ADDR CLIENTS SECONDS SIZE".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("udp_bench: {e}");
            ExitCode::from(2)
        }
    }
}

fn echo(addr: &str) -> Result<(), String> {
    let socket = UdpSocket::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    let mut buf = vec![0u8; 65536];
    loop {
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], from);
        }
    }
}

/// One client's results: latencies in microseconds, and datagrams lost.
fn client(to: SocketAddr, until: Instant, size: usize) -> std::io::Result<(Vec<u32>, u64)> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.connect(to)?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut request = vec![0u8; size.max(8)];
    let mut reply = vec![0u8; 65536];
    let (mut latencies, mut lost) = (Vec::new(), 0);
    let mut seq: u64 = 0;
    while Instant::now() < until {
        seq += 1;
        request[..8].copy_from_slice(&seq.to_le_bytes());
        let sent = Instant::now();
        socket.send(&request)?;
        loop {
            match socket.recv(&mut reply) {
                // A late echo of an earlier datagram: not this one's answer.
                Ok(n) if n >= 8 && reply[..8] != request[..8] => continue,
                Ok(_) => {
                    latencies.push(sent.elapsed().as_micros() as u32);
                    break;
                }
                Err(_) => {
                    lost += 1;
                    break;
                }
            }
        }
    }
    Ok((latencies, lost))
}

fn load(addr: &str, clients: &str, seconds: &str, size: &str) -> Result<(), String> {
    let to: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let clients: usize = clients.parse().map_err(|e| format!("{clients}: {e}"))?;
    let seconds: f64 = seconds.parse().map_err(|e| format!("{seconds}: {e}"))?;
    let size: usize = size.parse().map_err(|e| format!("{size}: {e}"))?;
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| thread::spawn(move || client(to, until, size)))
        .collect();
    let (mut latencies, mut lost) = (Vec::new(), 0);
    for t in threads {
        let (l, n) = t
            .join()
            .map_err(|_| "a client thread panicked".to_string())?
            .map_err(|e| e.to_string())?;
        latencies.extend(l);
        lost += n;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| match latencies.len() {
        0 => 0.0,
        n => latencies[((n - 1) as f64 * p) as usize] as f64 / 1000.0,
    };
    let answered = latencies.len() as u64;
    let sent = answered + lost;
    println!(
        "{{\"rps\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"loss\":{:.6},\"sent\":{sent}}}",
        answered as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        if sent == 0 {
            0.0
        } else {
            lost as f64 / sent as f64
        },
    );
    Ok(())
}
