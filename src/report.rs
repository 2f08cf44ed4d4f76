//! Per-patient yearly totals and the month × category × situation summary (SPEC §4).
