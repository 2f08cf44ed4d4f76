#!/usr/bin/env python3
"""Prints the table of `scripts/bench.sh` from its results file. Standard library only.

    python3 scripts/bench_report.py RESULTS.tsv

RESULTS.tsv has one line per run: name, rows, wall seconds, peak RSS in KiB, CPU seconds
(user + system; CPU s / wall s well under the cores used means the machine was busy). Names the
report knows: bare (the arrow-rs read + write baseline), rac (all cores), rac-1t and rac-2t
(thread scaling), rac-sorted (the acts sorted by patient), polars and duckdb (the peers). Prints
each run, then the ratios and the issue's targets with ok / MISS.
"""

from __future__ import annotations

import sys

LABELS = {
    "bare": "bare read+write (arrow-rs)",
    "rac": "rac compute",
    "rac-1t": "rac compute --threads 1",
    "rac-2t": "rac compute --threads 2",
    "rac-sorted": "rac, acts sorted by patient",
    "polars": "peer: polars (lazy)",
    "duckdb": "peer: duckdb (SQL)",
}


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    runs: dict[str, tuple[int, float, float]] = {}
    cpu: dict[str, float] = {}
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            if line.strip():
                name, rows, wall, rss_kib, cpu_s = line.rstrip("\n").split("\t")
                runs[name] = (int(rows), float(wall), int(rss_kib) / 1024)
                cpu[name] = float(cpu_s)

    print(f"{'run':<28} {'rows':>12} {'wall s':>9} {'rows/s':>13} {'peak RSS MiB':>13} {'CPU s':>8}")
    for name, (rows, wall, rss) in runs.items():
        print(
            f"{LABELS.get(name, name):<28} {rows:>12,} {wall:>9.2f} {rows / wall:>13,.0f}"
            f" {rss:>13,.1f} {cpu[name]:>8.2f}"
        )
    print()

    def check(label: str, value: float, target: str, ok: bool) -> None:
        print(f"  {label:<44} {value:>8.2f}   target {target:<8} {'ok' if ok else 'MISS'}")

    if "rac" not in runs:
        return
    _, rac_wall, rac_rss = runs["rac"]
    rows = runs["rac"][0]
    print("ratios")
    peers = [p for p in ("polars", "duckdb") if p in runs]
    for p in peers:
        _, wall, rss = runs[p]
        print(f"  {p + ' time / rac time':<44} {wall / rac_wall:>8.2f}")
        print(f"  {'rac RSS / ' + p + ' RSS':<44} {rac_rss / rss:>8.2f}")
    if "bare" in runs:
        print(f"  {'rac time / bare time':<44} {rac_wall / runs['bare'][1]:>8.2f}")
    if "rac-1t" in runs and "rac-2t" in runs:
        print(f"  {'rac 1 thread time / 2 threads time':<44} {runs['rac-1t'][1] / runs['rac-2t'][1]:>8.2f}")
    print()
    print("targets (issue)")
    if peers:
        fastest = min(peers, key=lambda p: runs[p][1])
        speedup = runs[fastest][1] / rac_wall
        check(f"rac faster than the faster peer ({fastest}), ×", speedup, ">= 5", speedup >= 5)
        smallest = min(runs[p][2] for p in peers)
        share = rac_rss / smallest
        check("rac peak RSS / the smaller peer's", share, "<= 0.25", share <= 0.25)
    if "bare" in runs:
        slowdown = rac_wall / runs["bare"][1]
        check("rac time / bare read+write time", slowdown, "<= 2", slowdown <= 2)
    if rows >= 100_000_000:
        if "duckdb" in runs:
            speedup = runs["duckdb"][1] / rac_wall
            check("at 100 M: rac faster than duckdb, ×", speedup, ">= 5", speedup >= 5)
        check("at 100 M: rac peak RSS, GiB", rac_rss / 1024, "< 1", rac_rss < 1024)
    if "rac-1t" in runs and "rac-2t" in runs:
        scaling = runs["rac-1t"][1] / runs["rac-2t"][1]
        check("2 threads faster than 1, ×", scaling, ">= 1.8", scaling >= 1.8)


if __name__ == "__main__":
    main()
