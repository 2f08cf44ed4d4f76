#!/usr/bin/env python3
"""Checks that two peer outputs agree to the cent (per act and per patient × year).

    python compare.py DIR_A DIR_B

Both folders hold acts.parquet and patients.parquet as written by polars_rac.py or
duckdb_rac.py. Exits non-zero, naming the first differences, when they do not agree.
"""

from __future__ import annotations

import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ACT_MONEY = ["base", "amo_gross", "pf", "franchise", "amo_paid"]


def load(path: str, key: list[str], columns: list[str]) -> pa.Table:
    t = pq.read_table(path, columns=key + columns)
    casts = {"year": pa.int32(), "acts": pa.int64(), "patient_id": pa.string(), "act_id": pa.string()}
    t = pa.table({n: (t[n].cast(casts[n]) if n in casts else t[n]) for n in t.column_names})
    return t.sort_by([(k, "ascending") for k in key])


def compare(a_dir: str, b_dir: str, name: str, key: list[str], columns: list[str]) -> list[str]:
    a = load(f"{a_dir}/{name}", key, columns)
    b = load(f"{b_dir}/{name}", key, columns)
    if a.num_rows != b.num_rows:
        return [f"{name}: {a.num_rows} rows in {a_dir}, {b.num_rows} in {b_dir}"]
    problems = []
    for col in key + columns:
        differ = pc.invert(pc.equal(a[col], b[col]))
        n = pc.sum(pc.cast(differ, pa.int64())).as_py() or 0
        if n:
            i = pc.index(differ, True).as_py()
            problems.append(
                f"{name}.{col}: {n} rows differ, first at {[a[k][i].as_py() for k in key]}: "
                f"{a[col][i].as_py()} vs {b[col][i].as_py()}"
            )
    return problems


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    a, b = sys.argv[1:]
    problems = compare(a, b, "acts.parquet", ["act_id"], ["patient_id", "care_date", "quantity", *ACT_MONEY])
    problems += compare(a, b, "patients.parquet", ["patient_id", "year"], ["acts", *ACT_MONEY])
    if problems:
        sys.exit("peer outputs differ:\n  " + "\n  ".join(problems))
    acts = pq.ParquetFile(f"{a}/acts.parquet").metadata.num_rows
    years = pq.ParquetFile(f"{a}/patients.parquet").metadata.num_rows
    print(f"peer outputs agree to the cent: {acts} acts, {years} patient-years")


if __name__ == "__main__":
    main()
