#!/usr/bin/env bash
# Makes a local redis image, ambassador-demo/redis, from this machine's
# Debian redis-server and redis-cli and the libraries they load: no registry
# needed. Does nothing if the image exists. Prints the image name.
set -euo pipefail
image=ambassador-demo/redis:local
if docker image inspect "$image" >/dev/null 2>&1; then echo "$image"; exit 0; fi
for p in redis-server:redis-server redis-cli:redis-tools; do
    command -v "${p%%:*}" >/dev/null || { echo "redis-image: ${p%%:*} missing: apt-get install ${p#*:}" >&2; exit 1; }
done
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/bin" "$root/etc" "$root/data" "$root/tmp"
chmod 1777 "$root/tmp"
for bin in $(command -v redis-server) $(command -v redis-cli); do
    cp -L "$bin" "$root/usr/bin/"
    # Every library the binary loads, and the loader, at the same paths.
    for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
done
printf 'root:x:0:0:root:/root:/bin/false\nredis:x:999:999:redis:/data:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nredis:x:999:\n' > "$root/etc/group"
tar -C "$root" -c . | docker import \
    -c 'ENV PATH=/usr/bin' -c 'WORKDIR /data' -c 'EXPOSE 6379' \
    -c 'CMD ["redis-server", "--protected-mode", "no", "--save", "", "--appendonly", "no"]' \
    - "$image" >/dev/null
echo "$image"
