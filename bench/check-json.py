#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The benchmark's smoke test: runs every case with tiny iterations
(--quick --json) and checks that the output is one well-formed JSON object
in which every case ran (or says why it was skipped) and has figures."""
import json
import subprocess
import sys

EXPECTED = [
    "seg.attach_detach", "seg.first_attach", "seg.create_cycle",
    "seg.get_by_key", "seg.get_by_key_all",
    "ring.spsc_64", "ring.spsc_4k", "ring.spsc_64k", "ring.zerocopy_4k",
    "ring.boost_64", "ring.boost_4k", "ring.pingpong", "ring.mpsc_64",
]


def fail(msg):
    print("bench-smoke: " + msg, file=sys.stderr)
    sys.exit(1)


def main():
    bench = sys.argv[1]
    p = subprocess.run([bench, "--quick", "--json"], stdout=subprocess.PIPE, timeout=110)
    try:
        doc = json.loads(p.stdout)
    except ValueError as e:
        fail("output is not JSON: %s\n%s" % (e, p.stdout.decode(errors="replace")))
    if p.returncode != 0:
        fail("exit status %d" % p.returncode)
    cases = {c["id"]: c for c in doc["cases"]}
    for cid in EXPECTED:
        c = cases.get(cid)
        if c is None:
            fail("case %s is missing" % cid)
        if "error" in c:
            fail("case %s failed: %s" % (cid, c["error"]))
        if "skipped" in c:
            print("# %s skipped: %s" % (cid, c["skipped"]))
            continue
        figs = [c["figure"]] + [a["figure"] for a in c["anchors"]]
        if not c["anchors"] or any(not isinstance(f, (int, float)) or f <= 0 for f in figs):
            fail("case %s: figures %r" % (cid, figs))
        for t in c["targets"]:
            if t["op"] not in ("<=", ">=") or not isinstance(t["met"], bool):
                fail("case %s: target %r" % (cid, t))
    for key in ("machine", "repetitions", "all_met"):
        if key not in doc:
            fail("no %s in the output" % key)
    print("# %d cases ran" % len(cases))


main()
