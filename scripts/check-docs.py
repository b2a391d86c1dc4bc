#!/usr/bin/env python3
"""Docs that cannot rot silently: every relative link and #anchor in
README.md and docs/*.md resolves (a file that exists, a heading that is
there, by GitHub's anchor rules), and the options `ambassador --help`
prints are exactly the options docs/usage.md lists in its Options block.
Exits 1 naming each problem.

Usage: scripts/check-docs.py [PATH-TO-AMBASSADOR]   (default: cargo run -q --)
"""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
OPTION = re.compile(r"^\s+(?:-\w, )?(--[a-z][a-z-]*)")


def anchors(path):
    """GitHub's anchors for a Markdown file's headings."""
    found, seen = set(), {}
    in_code = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        text = line.lstrip("#").strip().lower()
        slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def check_links(pages):
    problems = []
    for page in pages:
        text = page.read_text()
        # Indented code blocks and fenced ones hold no links.
        prose = re.sub(r"```.*?```", "", text, flags=re.S)
        prose = "\n".join(l for l in prose.splitlines() if not l.startswith("    "))
        for match in LINK.finditer(prose):
            target = match.group(1) or match.group(2)
            if re.match(r"[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            dest = (page.parent / file_part).resolve() if file_part else page
            where = f"{page.relative_to(ROOT)}: {target}"
            if not dest.exists():
                problems.append(f"{where}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                problems.append(f"{where}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    return problems


def options_in(lines):
    return {m.group(1) for m in map(OPTION.match, lines) if m}


def check_options(ambassador):
    shown = subprocess.run(ambassador + ["--help"], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    help_options = options_in(shown.split("Options:", 1)[1].splitlines())
    usage = (ROOT / "docs/usage.md").read_text()
    block = usage.split("### Options", 1)[1].split("\n\n", 2)[1]
    doc_options = options_in(block.splitlines())
    problems = [f"docs/usage.md does not list {o}, which --help prints" for o in sorted(help_options - doc_options)]
    problems += [f"docs/usage.md lists {o}, which --help does not print" for o in sorted(doc_options - help_options)]
    return problems, len(help_options)


def main():
    ambassador = sys.argv[1:] or ["cargo", "run", "-q", "--"]
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    problems = check_links(pages)
    option_problems, count = check_options(ambassador)
    problems += option_problems
    for p in problems:
        print(f"FAIL: {p}")
    if problems:
        sys.exit(1)
    print(f"ok: links and anchors in {len(pages)} pages resolve; docs/usage.md lists the {count} options --help prints")


if __name__ == "__main__":
    main()
