#!/usr/bin/env python3
"""Prints the table of `scripts/bench.sh` from its results file. Standard library only.

    python3 scripts/bench_report.py RESULTS.tsv [FLOOR.tsv]

RESULTS.tsv has one line per run: name, rows, wall seconds, peak RSS in KiB, CPU seconds
(user + system; CPU s / wall s well under the cores used means the machine was busy). Names the
report knows: bare (the arrow-rs read + write baseline), rac (all cores), rac-1t and rac-2t
(thread scaling), rac-sorted (the acts sorted by patient), polars and duckdb (the peers). Prints
each run, then the ratios and the issue's targets with ok / MISS.

FLOOR.tsv, if given, is one line: the seconds arrow-rs took to encode rac's acts.parquet alone
on one thread (examples/output_floor), and the cores. The floor of any run that writes that
table is those seconds spread over the cores; the report sets each time target beside it.
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
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    runs: dict[str, tuple[int, float, float]] = {}
    cpu: dict[str, float] = {}
    # CPU seconds the host took back during the run (a sixth column; empty where unknown,
    # absent from results written before it was measured).
    stolen: dict[str, str] = {}
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            if line.strip():
                name, rows, wall, rss_kib, cpu_s, *rest = line.rstrip("\n").split("\t")
                runs[name] = (int(rows), float(wall), int(rss_kib) / 1024)
                cpu[name] = float(cpu_s)
                stolen[name] = f"{float(rest[0]):.2f}" if rest and rest[0] else "-"

    print(
        f"{'run':<28} {'rows':>12} {'wall s':>9} {'rows/s':>13} {'peak RSS MiB':>13}"
        f" {'CPU s':>8} {'stolen s':>9}"
    )
    for name, (rows, wall, rss) in runs.items():
        print(
            f"{LABELS.get(name, name):<28} {rows:>12,} {wall:>9.2f} {rows / wall:>13,.0f}"
            f" {rss:>13,.1f} {cpu[name]:>8.2f} {stolen[name]:>9}"
        )
    print("  (stolen: CPU seconds the host took back from this VM during the run, `steal` in /proc/stat)")
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
    if len(sys.argv) == 3:
        floor(sys.argv[2], runs, peers)


def floor(path: str, runs: dict[str, tuple[int, float, float]], peers: list[str]) -> None:
    """The time targets beside the floor of writing acts.parquet (FLOOR.tsv)."""
    with open(path, encoding="utf-8") as f:
        fields = f.read().split()
    if len(fields) != 2 or not fields[0]:
        print(f"\nfloor: {path} has no measurement")
        return
    one_thread, cores = float(fields[0]), int(fields[1])
    spread = one_thread / cores

    def line(label: str, value: float, note: str = "") -> None:
        print(f"  {label:<44} {value:>8.2f}   {note}".rstrip())

    print()
    print("floor (examples/output_floor: arrow-rs encoding rac's acts.parquet alone, rac's settings)")
    line("one thread, s", one_thread)
    line(f"spread over {cores} cores, s", spread, "(no reading, computing or other table)")
    budgets = []
    if peers:
        fastest = min(peers, key=lambda p: runs[p][1])
        budgets.append((f"rac wall for 5× the faster peer ({fastest}), s", runs[fastest][1] / 5))
    if "bare" in runs:
        budgets.append(("rac wall for 2× the bare read+write, s", 2 * runs["bare"][1]))
    for label, budget in budgets:
        line(label, budget, "below the floor" if budget < spread else "above the floor")


if __name__ == "__main__":
    main()
