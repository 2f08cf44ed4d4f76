#!/usr/bin/env python3
"""Where a `rac compute` run spent its time, from its `--log-format json` log.

    python3 scripts/rac_phases.py LOG...

One row per log (scripts/bench.sh passes the last run of each rac configuration): the
reading (wall and CPU, the routing thread's CPU), the search for repeated act ids, the
computing and writing (wall and CPU; the partition loaders', the sums' and the dispatching
thread's CPU). On a shared machine whose speed varies between runs, these CPU figures of one
phase compare two binaries better than the runs' wall times. A phase the run did not have
(sorted acts are streamed: no partitioning, no id search) shows `-`.
"""

import json
import sys


def phases(path):
    lines = {}
    with open(path, encoding="utf-8") as log:
        for line in log:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            lines[entry.get("message", "")] = entry
    read = lines.get("acts partitioned", {})
    compute = lines.get("partitions computed", {})
    start = lines.get("computing and writing", {}).get("elapsed_s")
    ids = None
    if start is not None and "elapsed_s" in read:
        ids = start - read["elapsed_s"]

    def seconds(entry, key):
        value = entry.get(key)
        return None if value is None else value / 1000

    return [
        seconds(read, "read_ms"),
        seconds(read, "cpu_ms"),
        seconds(read, "routing_cpu_ms"),
        ids,
        seconds(compute, "compute_ms"),
        seconds(compute, "cpu_ms"),
        seconds(compute, "loading_cpu_ms"),
        seconds(compute, "totals_cpu_ms"),
        seconds(compute, "dispatch_cpu_ms"),
    ]


HEADER = [
    "read s",
    "read CPU",
    "routing",
    "ids s",
    "compute s",
    "compute CPU",
    "loading",
    "sums",
    "dispatch",
]


def main(paths):
    if not paths:
        sys.exit(__doc__)
    print("rac phases, seconds (the last run of each; `read CPU` and `compute CPU` on every")
    print("thread; routing, loading, sums and dispatch the CPU of the thread doing it)")
    print(f"  {'run':<12}" + "".join(f"{h:>12}" for h in HEADER))
    # `rac` first, then its other configurations (`rac-1t`, `rac-2t`, `rac-sorted`).
    for path in sorted(paths, key=lambda p: (not p.endswith("/rac.log"), p)):
        name = path.rsplit("/", 1)[-1].removesuffix(".log")
        cells = "".join("{:>12}".format("-" if v is None else f"{v:.2f}") for v in phases(path))
        print(f"  {name:<12}{cells}")


if __name__ == "__main__":
    main(sys.argv[1:])
