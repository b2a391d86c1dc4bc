#!/usr/bin/env bash
# Builds the static binary and both images, ambassador:scratch and
# ambassador:busybox. Works with or without a registry: where no busybox image
# exists and none can be pulled, it makes one with `docker import` from
# Debian's busybox-static.
# --arch aarch64 or armv7 builds the scratch image of that architecture
# (ambassador:scratch-aarch64, recorded as arm64; ambassador:scratch-armv7,
# recorded as arm/v7), and a busybox one where a busybox image of it exists.
# Usage: scripts/build-images.sh [--arch x86_64|aarch64|armv7]
set -euo pipefail
cd "$(dirname "$0")/.."

arch=x86_64
[ "${1:-}" = "--arch" ] && arch=${2:?--arch takes x86_64, aarch64 or armv7}
case $arch in
    x86_64) platform=linux/amd64 target=x86_64-unknown-linux-musl ;;
    aarch64) platform=linux/arm64 target=aarch64-unknown-linux-musl ;;
    armv7) platform=linux/arm/v7 target=armv7-unknown-linux-musleabihf ;;
    *) echo "build-images: unknown arch $arch (x86_64, aarch64 or armv7)" >&2; exit 2 ;;
esac
binary=target/$target/release/ambassador
suffix=$([ "$arch" = x86_64 ] || echo "-$arch")

if [ "$arch" = armv7 ]; then
    bash scripts/build-armv7.sh
else
    rustup target list --installed | grep -qx "$target" || rustup target add "$target"
    cargo build --release --target "$target"
fi

if ! docker image inspect busybox >/dev/null 2>&1 && ! docker pull -q busybox >/dev/null 2>&1; then
    if [ "$arch" = x86_64 ]; then
        bash scripts/lib/needs.sh check busybox file || exit 1
        bb=$(command -v busybox)
        file -L "$bb" | grep -q 'static' || { echo "build-images: $bb is not static: apt-get install busybox-static" >&2; exit 1; }
        echo "build-images: no busybox image to pull; making one from $bb"
        root=$(mktemp -d)
        trap 'rm -rf "$root"' EXIT
        mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root"
        cp "$bb" "$root/bin/busybox"
        for applet in $("$bb" --list); do
            [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
        done
        printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
        printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
        tar -C "$root" -c . | docker import -c 'CMD ["sh"]' -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - busybox:latest >/dev/null
    fi
fi

# One staged path for every architecture: the Dockerfiles COPY it first.
mkdir -p target/image
cp "$binary" target/image/ambassador
docker build -q --platform "$platform" -f Dockerfile.scratch -t "ambassador:scratch$suffix" . >/dev/null
echo "built ambassador:scratch$suffix ($(docker image inspect -f '{{.Size}}' "ambassador:scratch$suffix") bytes)"
# The busybox image only where a busybox image of this very platform is here.
busybox_platform=$(docker image inspect -f '{{.Os}}/{{.Architecture}}{{if .Variant}}/{{.Variant}}{{end}}' busybox 2>/dev/null || true)
if [ "$busybox_platform" = "$platform" ]; then
    docker build -q --platform "$platform" -f Dockerfile.busybox -t "ambassador:busybox$suffix" . >/dev/null
    echo "built ambassador:busybox$suffix ($(docker image inspect -f '{{.Size}}' "ambassador:busybox$suffix") bytes)"
else
    echo "build-images: no busybox image for $platform here; built ambassador:scratch$suffix only" >&2
fi
