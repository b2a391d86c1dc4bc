#!/usr/bin/env bash
# Makes a local image of a real peer from this machine's Debian binaries and
# the libraries they load: no registry needed. Does nothing if the image
# exists. Prints the image name.
#   redis    ambassador-demo/redis:local    redis-server and redis-cli, EXPOSE 6379
#   dnsmasq  ambassador-demo/dnsmasq:local  dnsmasq answering web.ambassador.test
#            (192.0.2.10) from its own hosts file, EXPOSE 53/udp
# Usage: scripts/local-image.sh redis|dnsmasq
set -euo pipefail
case ${1:-} in
    redis) programs=(redis-server redis-cli) ;;
    dnsmasq) programs=(dnsmasq) ;;
    *) echo "Usage: scripts/local-image.sh redis|dnsmasq" >&2; exit 2 ;;
esac
image=ambassador-demo/$1:local
if docker image inspect "$image" >/dev/null 2>&1; then echo "$image"; exit 0; fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/bin" "$root/etc" "$root/data" "$root/tmp"
chmod 1777 "$root/tmp"
bash "$(dirname "$0")/lib/needs.sh" check "${programs[@]}"
for p in "${programs[@]}"; do
    bin=$(command -v "$p" || PATH=$PATH:/usr/sbin command -v "$p")
    cp -L "$bin" "$root/usr/bin/"
    # Every library the binary loads, and the loader, at the same paths.
    for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
done
printf 'root:x:0:0:root:/root:/bin/false\nredis:x:999:999:redis:/data:/bin/false\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nredis:x:999:\nnogroup:x:65534:\n' > "$root/etc/group"
case $1 in
    redis) config=(-c 'EXPOSE 6379' -c 'CMD ["redis-server", "--protected-mode", "no", "--save", "", "--appendonly", "no"]') ;;
    dnsmasq)
        echo "192.0.2.10 web.ambassador.test" > "$root/etc/ambassador-hosts"
        config=(-c 'EXPOSE 53/udp'
                -c 'CMD ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--addn-hosts=/etc/ambassador-hosts", "--pid-file=", "--user=nobody", "--group=nogroup"]') ;;
esac
tar -C "$root" -c . | docker import -c 'ENV PATH=/usr/bin' -c 'WORKDIR /data' "${config[@]}" - "$image" >/dev/null
echo "$image"
