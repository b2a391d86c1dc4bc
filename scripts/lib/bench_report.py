"""From the benchmark's raw readings to what it prints: medians over
rounds, ratios to direct in the same run, idle memory per connection and
in total, where ambassador's total idle memory crosses each peer's, the
footprint (binary and image sizes), and the markdown table.
"""

import os
import shutil
import statistics
import subprocess


def footprint(binary):
    sizes = {"ambassador": os.path.getsize(binary)}
    for name, prog in (("socat", "socat"), ("socat-b1024", "socat"), ("haproxy", "haproxy"), ("nginx", "nginx"),
                       ("rinetd", "rinetd")):
        path = shutil.which(prog)
        sizes[name] = os.path.getsize(path) if path else None
    image = None
    if shutil.which("docker"):
        out = subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", "ambassador:scratch"],
                             capture_output=True, text=True)
        if out.returncode == 0:
            image = int(out.stdout.strip())
    return sizes, image


def summarize(raw, names, steps, sessions):
    """Medians, ratios to direct, idle memory per connection and in total."""
    med = {n: {k: statistics.median(v) for k, v in raw[n].items()} for n in names}
    most = steps[-1]
    direct = med["direct"]
    for n in names:
        m = med[n]
        if n == "direct":
            continue
        for step in steps:
            if f"idle/pss total kb @{step}" in m:
                extra = m[f"idle/kernel kb @{step}"] - direct.get(f"idle/kernel kb @{step}", 0)
                m[f"idle/total kb @{step}"] = m[f"idle/pss total kb @{step}"] + extra
        if f"idle/pss kb @{most}" in m:
            m["idle/process kb per conn"] = m[f"idle/pss kb @{most}"] / most
            m["idle/kernel kb per conn"] = (m[f"idle/kernel kb @{most}"]
                                            - direct.get(f"idle/kernel kb @{most}", 0)) / most
            m["idle/kb per conn"] = m["idle/process kb per conn"] + m["idle/kernel kb per conn"]
        if "udp/idle pss kb" in m:
            extra = m["udp/idle kernel kb"] - direct.get("udp/idle kernel kb", 0)
            m["udp/kb per idle session"] = (m["udp/idle pss kb"] + extra) / sessions
    ratios = {}
    for n in names:
        ratios[n] = {}
        for k, v in med[n].items():
            d = direct.get(k)
            if d and (k.split("/")[0] in ("bulk", "redis", "connect") or k in ("udp/c50 dps", "dns/c50 qps")):
                ratios[n][k] = v / d
    return med, ratios


def crossovers(med, names, steps):
    """Where ambassador's total idle memory meets each peer's, in words."""
    amb = med.get("ambassador", {})
    lines = []
    for peer in names:
        if peer in ("direct", "ambassador") or f"idle/total kb @{steps[0]}" not in med[peer]:
            continue
        diff = [(s, amb[f"idle/total kb @{s}"] - med[peer][f"idle/total kb @{s}"]) for s in steps]
        if diff[0][1] > 0:
            lines.append(f"- {peer}: ambassador uses more memory from {steps[0]} idle connections on")
            continue
        for (s0, d0), (s1, d1) in zip(diff, diff[1:]):
            if d1 > 0:
                at = s0 + (s1 - s0) * (-d0) / (d1 - d0)
                lines.append(f"- {peer}: ambassador uses less memory below about {at:,.0f} idle connections, "
                             f"more above")
                break
        else:
            lines.append(f"- {peer}: ambassador uses less memory at every count measured (up to {steps[-1]:,})")
    return "\n".join(lines)


def table(med, ratios, names, sizes, image):
    keys = []
    for n in names:
        for k in med[n]:
            raw_reading = "kernel kb" in k or "pss kb" in k or "pss total kb" in k
            if k not in keys and not k.startswith("footprint") and not raw_reading:
                keys.append(k)
    order = ["bulk", "redis", "connect", "dns", "udp", "idle", "cpu"]
    keys.sort(key=lambda k: order.index(k.split("/")[0]))
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for k in keys:
        cells = []
        for n in names:
            v = med[n].get(k)
            if v is None:
                cells.append("-")
                continue
            text = f"{v:,.3f}" if v < 1 and (k.startswith("udp/c50 loss") or k.startswith("dns/c50 lost")) else f"{v:,.2f}" if v < 100 else f"{v:,.0f}"
            r = ratios[n].get(k)
            cells.append(f"{text} ({r:.2f})" if r is not None and n != "direct" else text)
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    rss = [f"{med[n].get('footprint/rss_start_kb', 0):,.0f} KB" if n != "direct" else "-" for n in names]
    lines.append("| footprint/RSS at start | " + " | ".join(rss) + " |")
    binsz = [f"{sizes[n] / 1024:,.0f} KB" if sizes.get(n) else "-" for n in names]
    lines.append("| footprint/binary | " + " | ".join(binsz) + " |")
    img = [f"{image / 1024:,.0f} KB" if (n == "ambassador" and image) else "-" for n in names]
    lines.append("| footprint/image | " + " | ".join(img) + " |")
    return "\n".join(lines)
