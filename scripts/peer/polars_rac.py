#!/usr/bin/env python3
"""The benchmark's subset of rac's rules, written as a researcher would in lazy Polars.

    python polars_rac.py --acts ACTS.parquet --out DIR [--check-rounding]

Writes DIR/acts.parquet (one row per act: act_id, patient_id, care_date, category, quantity,
base, rate, amo_gross, pf, franchise, amo_paid) and DIR/patients.parquet (patient × year:
acts, base, amo_gross, pf, franchise, amo_paid), money as Decimal(18,2), snappy. The rules
are in `rules_subset.py`.

Money is computed in integer cents (Int64): tariff × rate-in-percent is exact in 1/10,000 €,
and is rounded to the cent half away from zero with integer arithmetic. Why not Polars'
Decimal: multiplying two Decimal(·,2) columns gives a Decimal(38,2), i.e. the product is
rounded *half to even* to two decimals before any `round()` can see it (80.15 × 0.70 →
56.10, not 56.11); and Float64 cannot hold 0.105. `--check-rounding` runs this script's own
pipeline on rounding probes, asserts the exact result, and prints what the naive Decimal and
float paths give.

The PF and franchise annual caps are cumulative sums over (patient, year) windows ordered by
(care_date, act_id): `pf = min(cap, cum) − min(cap, cum − wanted)`, which charges the partial
last amount on the act that reaches the cap and nothing after it.
"""

from __future__ import annotations

import argparse
import sys
import time
from decimal import Decimal
from pathlib import Path

import polars as pl

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
sys.path.insert(0, str(Path(__file__).resolve().parent))
from rules_subset import (  # noqa: E402
    ACT_COLUMNS,
    FRANCHISE_ANNUAL_CAP_CENTS,
    FRANCHISE_UNIT_CENTS,
    PF_ANNUAL_CAP_CENTS,
    PF_CATEGORIES,
    PF_UNIT_CENTS,
    RATES_PERCENT,
    ROUNDING_PROBE,
    expected_amo,
)

MONEY = pl.Decimal(18, 2)


def to_cents(col: str) -> pl.Expr:
    """Decimal(18,2) euros → Int64 cents (exact: ×100 keeps scale 2, then no fraction left)."""
    return (pl.col(col) * 100).cast(pl.Int64)


def round_hundredths(x: pl.Expr) -> pl.Expr:
    """Integer in 1/10,000 € → cents, half away from zero."""
    return pl.when(x >= 0).then((x + 50) // 100).otherwise(-((-x + 50) // 100))


def to_money(cents: pl.Expr) -> pl.Expr:
    """Int64 cents → Decimal(18,2) euros, exactly."""
    return (cents.cast(pl.Decimal(18, 0)) * pl.lit(Decimal("0.01"), dtype=MONEY)).cast(MONEY)


def capped(wanted: str, cap_cents: int) -> pl.Expr:
    """What is charged of `wanted` under the annual cap, in (care_date, act_id) order."""
    cum = (
        pl.col(wanted)
        .cum_sum()
        .over(["patient_id", "year"], order_by=["care_date", "act_id"])
    )
    return cum.clip(upper_bound=cap_cents) - (cum - pl.col(wanted)).clip(upper_bound=cap_cents)


def per_act(acts: pl.LazyFrame) -> pl.LazyFrame:
    """Per-act amounts, in cents (columns *_c) and rate in percent."""
    return (
        acts.select(ACT_COLUMNS)
        .with_columns(
            tariff_c=to_cents("tariff"),
            billed_c=to_cents("billed"),
            year=pl.col("care_date").dt.year(),
            rate=pl.col("category").replace_strict(RATES_PERCENT, return_dtype=pl.Int64),
            pf_wanted=pl.when(pl.col("category").is_in(PF_CATEGORIES))
            .then(PF_UNIT_CENTS * pl.col("quantity"))
            .otherwise(0),
            fr_wanted=pl.col("category").replace_strict(
                FRANCHISE_UNIT_CENTS, default=0, return_dtype=pl.Int64
            )
            * pl.col("quantity"),
        )
        .with_columns(full_c=pl.col("tariff_c") * pl.col("quantity"))
        .with_columns(
            limited=pl.col("billed_c").is_not_null() & (pl.col("billed_c") < pl.col("full_c"))
        )
        .with_columns(
            base_c=pl.when("limited").then("billed_c").otherwise("full_c"),
            amo_c=pl.when("limited")
            .then(round_hundredths(pl.col("billed_c") * pl.col("rate")))
            .otherwise(round_hundredths(pl.col("tariff_c") * pl.col("rate")) * pl.col("quantity")),
            pf_c=capped("pf_wanted", PF_ANNUAL_CAP_CENTS),
            fr_c=capped("fr_wanted", FRANCHISE_ANNUAL_CAP_CENTS),
        )
        .with_columns(paid_c=pl.col("amo_c") - pl.col("pf_c") - pl.col("fr_c"))
    )


def acts_table(computed: pl.LazyFrame) -> pl.LazyFrame:
    return computed.select(
        "act_id",
        "patient_id",
        "care_date",
        "category",
        "quantity",
        to_money(pl.col("base_c")).alias("base"),
        pl.col("rate").cast(pl.Int32),
        to_money(pl.col("amo_c")).alias("amo_gross"),
        to_money(pl.col("pf_c")).alias("pf"),
        to_money(pl.col("fr_c")).alias("franchise"),
        to_money(pl.col("paid_c")).alias("amo_paid"),
    )


def patients_table(computed: pl.LazyFrame) -> pl.LazyFrame:
    return (
        computed.group_by("patient_id", "year")
        .agg(
            pl.len().alias("acts"),
            pl.col("base_c").sum(),
            pl.col("amo_c").sum(),
            pl.col("pf_c").sum(),
            pl.col("fr_c").sum(),
            pl.col("paid_c").sum(),
        )
        .select(
            "patient_id",
            "year",
            "acts",
            to_money(pl.col("base_c")).alias("base"),
            to_money(pl.col("amo_c")).alias("amo_gross"),
            to_money(pl.col("pf_c")).alias("pf"),
            to_money(pl.col("fr_c")).alias("franchise"),
            to_money(pl.col("paid_c")).alias("amo_paid"),
        )
    )


def check_rounding() -> None:
    """Runs this pipeline on the probes and asserts; prints the naive paths beside it."""
    import datetime

    n = len(ROUNDING_PROBE)
    probe = pl.LazyFrame(
        {
            "act_id": [f"R{i}" for i in range(n)],
            "patient_id": [f"P{i}" for i in range(n)],
            "care_date": [datetime.date(2024, 5, 14)] * n,
            "category": [c for _, c in ROUNDING_PROBE],
            "tariff": [Decimal(t) for t, _ in ROUNDING_PROBE],
            "quantity": [1] * n,
            "billed": [None] * n,
        },
        schema={
            "act_id": pl.String,
            "patient_id": pl.String,
            "care_date": pl.Date,
            "category": pl.String,
            "tariff": MONEY,
            "quantity": pl.Int64,
            "billed": MONEY,
        },
    )
    got = acts_table(per_act(probe)).collect()
    fraction = {k: v / 100 for k, v in RATES_PERCENT.items()}
    rate_dec = pl.col("category").replace_strict(
        {k: Decimal(v) / 100 for k, v in RATES_PERCENT.items()}, return_dtype=pl.Decimal(3, 2)
    )
    rate_f64 = pl.col("category").replace_strict(fraction, return_dtype=pl.Float64)
    naive = probe.select(
        # Decimal rate: the product keeps scale max(2, 2) = 2, rounded half to even, before round().
        (pl.col("tariff") * rate_dec).round(2, mode="half_away_from_zero").alias("decimal_naive"),
        # Float: round() is half to even by default, and 0.105 is 0.10499999… anyway.
        (pl.col("tariff").cast(pl.Float64) * rate_f64).round(2).alias("float_round"),
        (pl.col("tariff").cast(pl.Float64) * rate_f64)
        .round(2, mode="half_away_from_zero")
        .alias("float_half_away"),
    ).collect()
    print(f"polars {pl.__version__}: rounding of tariff × rate to the cent (expected: half away from zero)")
    print(f"{'tariff':>8} {'category':<13} {'exact':>7} {'this script':>11} {'Decimal×Decimal':>15} {'f64 round()':>11} {'f64 half-away':>13}")
    failures = []
    for (tariff, category), mine, row in zip(ROUNDING_PROBE, got["amo_gross"], naive.iter_rows(named=True)):
        exact = expected_amo(tariff, category)
        if mine != exact:
            failures.append(f"{tariff} × {RATES_PERCENT[category]} %: got {mine}, expected {exact}")
        print(
            f"{tariff:>8} {category:<13} {exact!s:>7} {mine!s:>11} {row['decimal_naive']!s:>15}"
            f" {row['float_round']!s:>11} {row['float_half_away']!s:>13}"
        )
    if failures:
        sys.exit("rounding check FAILED: " + "; ".join(failures))
    first = got["amo_gross"][0]
    assert first == Decimal("56.11"), first
    print("rounding check passed: 80.15 × 70 % = 56.11 in this script's computation path (integer cents).")
    print("Polars itself: Decimal × Decimal rounds the product half to even to scale 2 before round();")
    print("Float64 round() is half to even and works on binary approximations: neither is exact.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--acts", type=Path, help="acts Parquet file")
    parser.add_argument("--out", type=Path, help="output folder")
    parser.add_argument("--check-rounding", action="store_true", help="assert the .xx5 rounding and exit if alone")
    args = parser.parse_args()
    if args.check_rounding:
        check_rounding()
        if args.acts is None:
            return
    if args.acts is None or args.out is None:
        parser.error("--acts and --out are required")
    args.out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    computed = per_act(pl.scan_parquet(args.acts))
    # Both outputs in one query: the common plan (scan, windows) is computed once.
    pl.collect_all(
        [
            acts_table(computed).sink_parquet(args.out / "acts.parquet", compression="snappy", lazy=True),
            patients_table(computed).sink_parquet(args.out / "patients.parquet", compression="snappy", lazy=True),
        ]
    )
    secs = time.perf_counter() - started
    rows = pl.scan_parquet(args.out / "acts.parquet").select(pl.len()).collect().item()
    print(f"polars {pl.__version__}: {rows} acts in {secs:.2f} s ({rows / secs:,.0f} rows/s) → {args.out}")


if __name__ == "__main__":
    main()
