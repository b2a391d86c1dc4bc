#!/usr/bin/env bash
# Builds the static 32-bit ARM binary (armv7-unknown-linux-musleabihf), for
# Raspberry Pi 2/3/Zero 2 on 32-bit OS images, routers and NAS boxes.
# rustup serves no prebuilt std for this target here, so std is built from
# source (-Z build-std, on the stable toolchain with RUSTC_BOOTSTRAP=1, as
# the fuzz targets are). The C pieces come from Debian: musl-dev:armhf (crt
# objects, libc.a) and gcc-arm-linux-gnueabihf (libgcc_eh, the unwinder);
# rust-lld links them (settings in .cargo/config.toml). Installs what is
# missing (as root, or with sudo), then prints the binary's path and size.
# Usage: scripts/build-armv7.sh
set -euo pipefail
cd "$(dirname "$0")/.."
target=armv7-unknown-linux-musleabihf
source scripts/lib/needs.sh
needs_install /usr/lib/arm-linux-musleabihf/libc.a arm-linux-gnueabihf-gcc
rustup component list --installed 2>/dev/null | grep -q '^rust-src' || rustup component add rust-src >&2

# std's unwind crate asks for -lunwind; gcc's libgcc_eh is that unwinder.
# .cargo/config.toml points the linker at this folder.
mkdir -p target/armv7-link
ln -sf "$(arm-linux-gnueabihf-gcc -print-file-name=libgcc_eh.a)" target/armv7-link/libunwind.a
[ -f target/armv7-link/libunwind.a ] || { echo "build-armv7: libgcc_eh.a not found" >&2; exit 1; }

RUSTC_BOOTSTRAP=1 cargo build --release --target "$target" -Z build-std=std,panic_unwind -q
bin=target/$target/release/ambassador
echo "$bin $(stat -c %s "$bin") bytes"
