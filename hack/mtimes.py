#!/usr/bin/env python3
"""Lets a fresh clone reuse a cached cargo build of the same sources.

Cargo decides whether a workspace crate is fresh by comparing its source
files' modification times with the build's. A fresh clone gives every file a
new mtime, so a cached build of identical sources would be recompiled. This
script records, next to the build, the content hash and mtime of every file
git tracks (`save`), and on the next run gives each file whose content is
unchanged the mtime it had when cargo last saw it (`restore`). Files whose
content changed keep their new mtime, so cargo rebuilds exactly what changed.

    hack/mtimes.py restore TARGET_DIR
    hack/mtimes.py save TARGET_DIR
"""

import hashlib
import json
import os
import subprocess
import sys

MANIFEST = "signet-source-mtimes.json"


def tracked_files():
    out = subprocess.run(
        ["git", "ls-files", "-z"], check=True, capture_output=True
    ).stdout
    return [p for p in out.decode().split("\0") if p and os.path.isfile(p)]


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def save(target):
    entries = {}
    for p in tracked_files():
        entries[p] = [digest(p), os.stat(p).st_mtime_ns]
    os.makedirs(target, exist_ok=True)
    tmp = os.path.join(target, MANIFEST + ".tmp")
    with open(tmp, "w") as f:
        json.dump(entries, f)
    os.replace(tmp, os.path.join(target, MANIFEST))


def restore(target):
    try:
        with open(os.path.join(target, MANIFEST)) as f:
            entries = json.load(f)
    except (OSError, ValueError):
        return
    same = 0
    for p in tracked_files():
        known = entries.get(p)
        if known and known[0] == digest(p):
            os.utime(p, ns=(known[1], known[1]))
            same += 1
    print(f"build cache: {same} unchanged source files keep their cached mtimes")


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("save", "restore"):
        sys.exit(__doc__)
    {"save": save, "restore": restore}[sys.argv[1]](sys.argv[2])


if __name__ == "__main__":
    main()
