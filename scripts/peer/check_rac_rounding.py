#!/usr/bin/env python3
"""Checks rac's rounding on the same probes as the peer scripts. Standard library only.

    python3 check_rac_rounding.py RAC_BINARY

Writes one act per probe (an adult, 2024-05-14, quantity 1) to CSV in a temporary folder,
runs `rac compute --format csv`, and asserts that every amo_gross is the exact product rounded
to the cent half away from zero (80.15 × 70 % = 56.11).
"""

from __future__ import annotations

import csv
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
sys.path.insert(0, str(Path(__file__).resolve().parent))
from rules_subset import RATES_PERCENT, ROUNDING_PROBE, expected_amo  # noqa: E402


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    rac = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="rac-rounding-") as tmp:
        d = Path(tmp)
        with open(d / "acts.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["act_id", "patient_id", "care_date", "category", "tariff", "quantity"])
            for i, (tariff, category) in enumerate(ROUNDING_PROBE):
                w.writerow([f"R{i}", f"P{i}", "2024-05-14", category, tariff, 1])
        with open(d / "beneficiaries.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["patient_id", "birth_date"])
            for i in range(len(ROUNDING_PROBE)):
                w.writerow([f"P{i}", "1980-01-01"])
        subprocess.run(
            [rac, "compute", "--acts", d / "acts.csv", "--beneficiaries", d / "beneficiaries.csv",
             "--out", d / "out", "--format", "csv", "--quiet"],
            check=True,
        )
        with open(d / "out" / "acts.csv", newline="", encoding="utf-8") as f:
            got = {r["act_id"]: Decimal(r["amo_gross"]) for r in csv.DictReader(f)}
    failures = []
    print(f"{'tariff':>8} {'category':<13} {'exact':>7} {'rac':>7}")
    for i, (tariff, category) in enumerate(ROUNDING_PROBE):
        exact, mine = expected_amo(tariff, category), got.get(f"R{i}")
        print(f"{tariff:>8} {category:<13} {exact!s:>7} {mine!s:>7}")
        if mine != exact:
            failures.append(f"{tariff} × {RATES_PERCENT[category]} %: got {mine}, expected {exact}")
    if failures:
        sys.exit("rac rounding check FAILED: " + "; ".join(failures))
    print("rac rounding check passed: 80.15 × 70 % = 56.11 (rust_decimal, half away from zero).")


if __name__ == "__main__":
    main()
