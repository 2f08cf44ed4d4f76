#!/usr/bin/env python3
"""The benchmark's subset of rac's rules, written as a researcher would in DuckDB SQL.

    python duckdb_rac.py --acts ACTS.parquet --out DIR [--check-rounding]

Writes DIR/acts.parquet (one row per act: act_id, patient_id, care_date, category, quantity,
base, rate, amo_gross, pf, franchise, amo_paid) and DIR/patients.parquet (patient × year:
acts, base, amo_gross, pf, franchise, amo_paid), money as DECIMAL(18,2), snappy. The rules are
in `rules_subset.py`; the SQL below is generated from them once, then run as is.

Money stays DECIMAL: DECIMAL(18,2) × DECIMAL(3,2) is an exact DECIMAL(18,4), and DuckDB's
`round(decimal, 2)` rounds half away from zero, so 80.15 × 0.70 = 56.1050 → 56.11. The traps
are elsewhere: `tariff * 70 / 100` is a DOUBLE in DuckDB (`/` on decimals gives a double), and
`round(double, 2)` then misses some .xx5 cases (0.05 × 0.7 → 0.03). `--check-rounding` runs
this script's own SQL on rounding probes, asserts the exact result, and prints what the DOUBLE
paths give.

The PF and franchise annual caps are running sums over windows partitioned by (patient, year)
and ordered by (care_date, act_id): `pf = least(cap, cum) − least(cap, cum − wanted)`, which
charges the partial last amount on the act that reaches the cap and nothing after it.
"""

from __future__ import annotations

import argparse
import sys
import time
from decimal import Decimal
from pathlib import Path

import duckdb

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
sys.path.insert(0, str(Path(__file__).resolve().parent))
from rules_subset import (  # noqa: E402
    FRANCHISE_ANNUAL_CAP_CENTS,
    FRANCHISE_UNIT_CENTS,
    PF_ANNUAL_CAP_CENTS,
    PF_CATEGORIES,
    PF_UNIT_CENTS,
    RATES_PERCENT,
    ROUNDING_PROBE,
    expected_amo,
)


def euros(cents: int) -> str:
    return f"{Decimal(cents) / 100:.2f}"


def rate_case() -> str:
    whens = " ".join(f"WHEN '{c}' THEN {p / 100:.2f}" for c, p in RATES_PERCENT.items())
    return f"CAST(CASE category {whens} END AS DECIMAL(3,2))"


def franchise_case() -> str:
    whens = " ".join(f"WHEN '{c}' THEN {euros(u)}" for c, u in FRANCHISE_UNIT_CENTS.items())
    return f"CAST(CASE category {whens} ELSE 0 END AS DECIMAL(18,2))"


def per_act_sql(source: str) -> str:
    """One row per act, from `source` (a table name or a read_parquet(...) call)."""
    pf_in = ", ".join(f"'{c}'" for c in PF_CATEGORIES)
    pf_cap, fr_cap = euros(PF_ANNUAL_CAP_CENTS), euros(FRANCHISE_ANNUAL_CAP_CENTS)
    return f"""
WITH priced AS (
    SELECT act_id, patient_id, care_date, category, quantity, tariff, billed,
           year(care_date) AS year,
           {rate_case()} AS rate,
           tariff * quantity AS full_base,
           CASE WHEN category IN ({pf_in}) THEN CAST({euros(PF_UNIT_CENTS)} AS DECIMAL(18,2)) * quantity
                ELSE CAST(0 AS DECIMAL(18,2)) END AS pf_wanted,
           {franchise_case()} * quantity AS fr_wanted
    FROM {source}
), based AS (
    SELECT *,
           coalesce(billed < full_base, false) AS limited,
           CASE WHEN billed < full_base THEN billed ELSE full_base END AS base,
           CASE WHEN billed < full_base THEN round(billed * rate, 2)
                ELSE round(tariff * rate, 2) * quantity END AS amo_gross
    FROM priced
), running AS (
    SELECT *,
           sum(pf_wanted) OVER w AS pf_cum,
           sum(fr_wanted) OVER w AS fr_cum
    FROM based
    WINDOW w AS (PARTITION BY patient_id, year ORDER BY care_date, act_id
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
), capped AS (
    SELECT *,
           least({pf_cap}, pf_cum) - least({pf_cap}, pf_cum - pf_wanted) AS pf,
           least({fr_cap}, fr_cum) - least({fr_cap}, fr_cum - fr_wanted) AS franchise
    FROM running
)
SELECT act_id, patient_id, care_date, year, category, quantity,
       CAST(base AS DECIMAL(18,2)) AS base,
       CAST(rate * 100 AS INTEGER) AS rate,
       CAST(amo_gross AS DECIMAL(18,2)) AS amo_gross,
       CAST(pf AS DECIMAL(18,2)) AS pf,
       CAST(franchise AS DECIMAL(18,2)) AS franchise,
       CAST(amo_gross - pf - franchise AS DECIMAL(18,2)) AS amo_paid
FROM capped
"""


PATIENTS_SQL = """
SELECT patient_id, year, count(*) AS acts,
       CAST(sum(base) AS DECIMAL(18,2)) AS base,
       CAST(sum(amo_gross) AS DECIMAL(18,2)) AS amo_gross,
       CAST(sum(pf) AS DECIMAL(18,2)) AS pf,
       CAST(sum(franchise) AS DECIMAL(18,2)) AS franchise,
       CAST(sum(amo_paid) AS DECIMAL(18,2)) AS amo_paid
FROM results
GROUP BY patient_id, year
"""


def sql_string(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def check_rounding(con: duckdb.DuckDBPyConnection) -> None:
    """Runs this script's SQL on the probes and asserts; prints the DOUBLE paths beside it."""
    rows = ", ".join(
        f"('R{i}', 'P{i}', DATE '2024-05-14', '{c}', CAST({t} AS DECIMAL(18,2)), 1::BIGINT, NULL::DECIMAL(18,2))"
        for i, (t, c) in enumerate(ROUNDING_PROBE)
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE probe AS SELECT * FROM (VALUES "
        + rows
        + ") AS v(act_id, patient_id, care_date, category, tariff, quantity, billed)"
    )
    got = con.execute(
        f"""
        SELECT r.amo_gross,
               round(CAST(p.tariff AS DOUBLE) * (r.rate / 100), 2) AS double_fraction,
               round(p.tariff * r.rate / 100, 2) AS decimal_div
        FROM ({per_act_sql('probe')}) r JOIN probe p USING (act_id)
        ORDER BY CAST(substr(act_id, 2) AS INTEGER)
        """
    ).fetchall()
    print(f"duckdb {duckdb.__version__}: rounding of tariff × rate to the cent (expected: half away from zero)")
    print(f"{'tariff':>8} {'category':<13} {'exact':>7} {'this script':>11} {'double×(rate/100)':>17} {'tariff*rate/100':>15}")
    failures = []
    for (tariff, category), (mine, dbl, div) in zip(ROUNDING_PROBE, got):
        exact = expected_amo(tariff, category)
        if mine != exact:
            failures.append(f"{tariff} × {RATES_PERCENT[category]} %: got {mine}, expected {exact}")
        print(f"{tariff:>8} {category:<13} {exact!s:>7} {mine!s:>11} {dbl!s:>17} {div!s:>15}")
    if failures:
        sys.exit("rounding check FAILED: " + "; ".join(failures))
    assert got[0][0] == Decimal("56.11"), got[0][0]
    print("rounding check passed: 80.15 × 70 % = 56.11 in this script's computation path (DECIMAL).")
    print("DuckDB itself: DECIMAL × DECIMAL is exact and round(decimal) is half away from zero;")
    print("`/` turns decimals into DOUBLE, whose round() misses some .xx5 cases.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--acts", type=Path, help="acts Parquet file")
    parser.add_argument("--out", type=Path, help="output folder")
    parser.add_argument("--check-rounding", action="store_true", help="assert the .xx5 rounding and exit if alone")
    args = parser.parse_args()
    con = duckdb.connect()  # in memory, default settings (all cores, 80 % of RAM)
    if args.check_rounding:
        check_rounding(con)
        if args.acts is None:
            return
    if args.acts is None or args.out is None:
        parser.error("--acts and --out are required")
    args.out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    # The per-act results once in a table, then both outputs from it.
    con.execute(
        f"CREATE TEMP TABLE results AS {per_act_sql('read_parquet(' + sql_string(args.acts) + ')')}"
    )
    con.execute(
        "COPY (SELECT * EXCLUDE (year) FROM results) TO "
        + sql_string(args.out / "acts.parquet")
        + " (FORMAT parquet, COMPRESSION snappy)"
    )
    con.execute(
        f"COPY ({PATIENTS_SQL}) TO "
        + sql_string(args.out / "patients.parquet")
        + " (FORMAT parquet, COMPRESSION snappy)"
    )
    secs = time.perf_counter() - started
    (rows,) = con.execute("SELECT count(*) FROM results").fetchone()
    print(f"duckdb {duckdb.__version__}: {rows} acts in {secs:.2f} s ({rows / secs:,.0f} rows/s) → {args.out}")


if __name__ == "__main__":
    main()
