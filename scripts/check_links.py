#!/usr/bin/env python3
"""Checks the relative links of every tracked *.md file: ](path), ](path#anchor) and
](#anchor). The file must exist inside the repository and the anchor must be a heading of
the target (GitHub's slugs). Prints each broken link; exit 1 if any, else 0."""
import os
import re
import subprocess
import sys

ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), ".."))
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading):
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(path):
    seen, out, fence = {}, set(), False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("```"):
                fence = not fence
            m = None if fence else re.match(r"^#{1,6} (.*?)#*\s*$", line)
            if m:
                base = slug(m.group(1))
                n = seen.get(base, 0)
                seen[base] = n + 1
                out.add(base if n == 0 else "%s-%d" % (base, n))
    return out


def links(path):
    fence = False
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            if line.startswith("```"):
                fence = not fence
                continue
            if fence:
                continue
            for m in LINK.finditer(line):
                yield no, m.group(1)


def main():
    files = subprocess.run(["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    bad = 0
    for rel in files:
        src = os.path.join(ROOT, rel)
        for no, target in links(src):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue  # http:, https:, mailto:
            path, _, anchor = target.partition("#")
            dest = os.path.realpath(os.path.join(os.path.dirname(src), path)) if path else src
            why = None
            if not (dest == ROOT or dest.startswith(ROOT + os.sep)):
                why = "outside the repository"
            elif not os.path.exists(dest):
                why = "no such file"
            elif anchor and (os.path.isdir(dest) or anchor not in anchors(dest)):
                why = "no heading #" + anchor
            if why:
                print("%s:%d: %s: %s" % (rel, no, target, why))
                bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
