//! Stops a build for a target that src/sys/ was not written and checked
//! for, with one message saying so, before any of the crate is compiled
//! (a compile_error! inside the crate would come among dozens of errors
//! about Linux-only std APIs). Nothing is generated.

use std::env;
use std::process::ExitCode;

/// The (architecture, C library) pairs whose layouts src/sys/ declares by
/// hand were checked against their headers, and whose datagram path runs
/// in tests (scripts/cross-test.sh under qemu for the ARM ones).
const CHECKED: &[(&str, &str)] = &[
    ("x86_64", "gnu"),
    ("x86_64", "musl"),
    ("aarch64", "gnu"),
    ("aarch64", "musl"),
    ("arm", "musl"),
];

fn main() -> ExitCode {
    println!("cargo:rerun-if-changed=build.rs");
    let cfg = |name: &str| env::var(format!("CARGO_CFG_TARGET_{name}")).unwrap_or_default();
    let (os, arch, libc, target) = (
        cfg("OS"),
        cfg("ARCH"),
        cfg("ENV"),
        env::var("TARGET").unwrap_or_default(),
    );
    let problem = if os != "linux" {
        format!(
            "ambassador builds for Linux only (target {target}): src/sys uses Linux's socket \
             and signal constants and the AF_UNSPEC abort"
        )
    } else if !CHECKED.contains(&(arch.as_str(), libc.as_str())) {
        format!(
            "src/sys declares C layouts and constants by hand (msghdr, mmsghdr, cmsghdr, \
             in_pktinfo, in6_pktinfo, sockaddr_un, ucred, timespec, ifaddrs, ip_mreqn, \
             pollfd, SOCK_CLOEXEC, SO_PEERCRED, signal numbers) and has been checked on \
             x86_64 and aarch64 (glibc, musl) and 32-bit ARM (musl) only, not on {target}: \
             check them against its headers, then add it to CHECKED in build.rs"
        )
    } else {
        return ExitCode::SUCCESS;
    };
    eprintln!("error: {problem}");
    ExitCode::FAILURE
}
