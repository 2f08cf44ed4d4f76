"""The subset of rac's rules that the peer scripts compute, as plain data, and the rounding probe.

Shared by `polars_rac.py` and `duckdb_rac.py` (no third-party import here) so that both
compute exactly the same thing:

- base = tariff × quantity, or the billed amount when it is given and lower;
- rate by category (percent);
- amo_gross = round(tariff × rate) × quantity, rounded to the cent half away from zero per
  unit; on the billed amount when it limits the base;
- participation forfaitaire (PF): 2 € per unit on consultation, medical_act, imaging and
  biology, at most 50 € per patient and calendar year, in (care_date, act_id) order, the act
  that reaches the cap paying the partial last amount;
- franchises: 1 € per drug box, 1 € per paramedical act, 4 € per transport trip, 50 € per
  patient and year likewise;
- amo_paid = amo_gross − pf − franchise;
- per patient and year: acts, base, amo_gross, pf, franchise, amo_paid.

This is deliberately less than rac computes (no situations, exonerations, minors, daily
limits, PAL, forfait journalier…): it is the part a researcher would write by hand.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

# Rate in percent by category (RULES §5 for the 2024 dates of the generated data).
RATES_PERCENT: dict[str, int] = {
    "consultation": 70,
    "medical_act": 70,
    "imaging": 70,
    "dental": 70,
    "midwife": 70,
    "biology": 60,
    "paramedical": 60,
    "device": 60,
    "optical": 60,
    "hearing": 60,
    "drug_100": 100,
    "drug_65": 65,
    "drug_30": 30,
    "drug_15": 15,
    "transport": 55,
    "hospital_stay": 80,
    "emergency_visit": 100,
    "daily_fee": 0,
    "daily_fee_psy": 0,
}

PF_CATEGORIES: tuple[str, ...] = ("consultation", "medical_act", "imaging", "biology")
PF_UNIT_CENTS = 200
PF_ANNUAL_CAP_CENTS = 5000

FRANCHISE_UNIT_CENTS: dict[str, int] = {
    "drug_100": 100,
    "drug_65": 100,
    "drug_30": 100,
    "drug_15": 100,
    "paramedical": 100,
    "transport": 400,
}
FRANCHISE_ANNUAL_CAP_CENTS = 5000

ACT_COLUMNS = ["act_id", "patient_id", "care_date", "category", "tariff", "quantity", "billed"]

# Rounding probe: (tariff, category) whose tariff × rate ends exactly in 5 at the third
# decimal. A correct computation rounds each of them up (half away from zero); half-to-even
# rounds the ones whose second decimal is even down, binary floats miss some of the others.
ROUNDING_PROBE: list[tuple[str, str]] = [
    ("80.15", "consultation"),  # 56.105 → 56.11 (the example)
    ("0.05", "consultation"),  # 0.035 → 0.04
    ("4.55", "consultation"),  # 3.185 → 3.19
    ("6.45", "consultation"),  # 4.515 → 4.52
    ("47.85", "consultation"),  # 33.495 → 33.50
    ("2.15", "drug_30"),  # 0.645 → 0.65
    ("0.35", "drug_30"),  # 0.105 → 0.11
    ("16.50", "drug_65"),  # 10.725 → 10.73
    ("26.50", "consultation"),  # 18.55, exact: no rounding
]


def expected_amo(tariff: str, category: str) -> Decimal:
    """The exact amount: decimal product, rounded to the cent half away from zero."""
    product = Decimal(tariff) * RATES_PERCENT[category] / 100
    return product.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
