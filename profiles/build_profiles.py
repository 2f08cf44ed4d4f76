#!/usr/bin/env python3
"""Builds the mapping tables of profiles/ from the official value lists.

Run from the repository root, with the shared reference data beside the repository:

    python3 profiles/build_profiles.py ../shared/reference

Inputs (read only, never copied whole):
- damir/lexicon/dimensions/PRS_NAT.csv — the 2024 PRS_NAT codes and labels (Open DAMIR lexicon);
- snds/nomenclatures/IR_NAT_V.csv — the SNDS value list of PRS_NAT_REF (2020 snapshot), for the
  B2 letter key of each code and the codes absent from the 2024 list.

The category of each code is rac's own expert mapping, written below as rules on code ranges
and keys (first match wins). The DREES "base RAC" table (GPL) was used only to cross-check the
result, see `--check-baserac`; nothing of it is copied.

Outputs: profiles/prs_nat.csv (code;label;category;source). The other tables (exo_mtf.csv,
asu_nat.csv, pds_qcp.csv, rem_typ.csv) are small and maintained by hand.
"""

import csv
import sys
from pathlib import Path

RANGE = "rule"

# (predicate on code, category, why). First match wins. `category` is a rac category, several
# candidates joined by `|` (the first is the default), or a non-act class:
#   pf, franchise_drug, franchise_paramedical, franchise_transport, deduction_unlinked,
#   majoration_out_of_pathway, pal, fpu, excluded:<reason>.
DRUG_BY_RATE = "drug_65|drug_30|drug_15|drug_100"


def codes(*xs):
    s = set()
    for x in xs:
        if isinstance(x, tuple):
            s.update(range(x[0], x[1] + 1))
        else:
            s.add(x)
    return s


RULES = [
    # ---- sans objet / unknown
    (codes(0, 9999), "excluded:no_prestation", "SANS OBJET / VALEUR INCONNUE: not a prestation"),
    # ---- recorded deductions (negative lines, compared with rac's pf / franchise)
    (codes(1951, 1952), "pf", "participation forfaitaire recorded as a negative line (CSS L160-13 II)"),
    (codes(1971, 1972), "franchise_drug", "franchise on drug boxes, negative line (CSS L160-13 III)"),
    (codes(1973, 1974), "franchise_transport", "franchise on transport, negative line (CSS L160-13 III)"),
    (codes(1975, 1976), "franchise_paramedical", "franchise on paramedical acts, negative line (CSS L160-13 III)"),
    (codes(1977, 1978), "deduction_unlinked", "PF or franchise recovered without its reference act"),
    (codes(1957), "majoration_out_of_pathway", "out-of-pathway majoration as its own line (RULES §2)"),
    (codes(1954, 1955, 1956, (2282, 2285)), "pal", "participation de l'assuré of 24 EUR on heavy acts (CSS R160-16)"),
    (codes(2281, 2286, 2287, 2297, 2298), "fpu", "forfait patient urgences (CSS L160-13 I bis)"),
    # ---- not care prestations
    (codes(1062, 1063, 1064, 1065, 1066, 1087, 1088, 1052, 1124, 1128, 1130, 1138, 1139, (1142, 1150),
           1155, 1156, 1160, 1161, 1162, 1163, 1167, 1171, 1173, (1176, 1190), 1195, 1196, 1197, 1198,
           1523, (1601, 1654), (1701, 1791), 1907, 1908, 1909, 1910, 1915, 1916, 1917, 1919, 1920,
           1924, 1925, 1927, 1928, 1946, 1947, 1962, (1990, 1999), 3101, 3102, 3110, 3118, 3119,
           3124, 3126, 3139, 3144, 3150, 3210, (3300, 3307), (3361, 3363), 3371, 3372, 3375, 3378,
           (3391, 3401), 3403, 3405, 3406, 3407, 3408, 3410, (3417, 3420), 4206, 4222, 4224, 4227,
           4228, (4230, 4233), (4359, 4380), (4391, 4397), 9144),
     "excluded:professional_payment",
     "payment to a professional or structure (contract, ROSP, on-call, forfait), not a patient's care"),
    (codes(1076, 3308, 3309, 3369), "excluded:tracer", "tracer code, no amount of its own"),
    (codes(1169), "excluded:professional_payment", "death certificate paid to the doctor"),
    (codes(1170, 1175, 1426, 1427, 3592, 3594), "excluded:exceptional_overbilling",
     "exceptional coverage of an overbilling (dépassement), outside rac's rules"),
    (codes(1425, 3575), "excluded:at_complement", "AT/MP complement to 150 % of the base, outside rac's rules"),
    (codes(1960, 1961, 2214, 2215, (3610, 3612)), "excluded:derogatory_supplement",
     "derogatory supplement (SG), outside rac's rules"),
    (codes(2102, 2120, 2130, (2160, 2162), 2169, (2170, 2180), 2192, 2193, 2194, 2197, 2198, 2200, 2201,
           2212, 2254, 2255, (2263, 2265), 2280, (2292, 2295), (2342, 2347), (2501, 2504)),
     "excluded:hospital_funding", "hospital funding (dotation, differential, MIG, FIR, IFAQ), not per care"),
    (codes((2202, 2205), (2371, 2373)), "excluded:medico_social", "medico-social funding (EHPAD, SSAD, CAMSP)"),
    (codes(2141, 4381, 4382), "excluded:not_reimbursable", "not reimbursable by the AMO"),
    ((lambda c: 4111 <= c <= 4159), "excluded:thermal_cure", "thermal cure: forfaits and rates outside rac's categories"),
    (codes(9119, 9132, 9133), "excluded:thermal_cure", "thermal cure supplement"),
    (codes(3576, 3577, 3596, 3598, 3599, 3600, 1160), "excluded:pandemic_measure",
     "covid-period measure (tests, masks, free condoms), outside rac's categories"),
    (codes(3593), "excluded:professional_payment", "remote-monitoring solution provider"),
    ((lambda c: 4310 <= c <= 4358 or 4411 <= c <= 4612), "excluded:other_benefit",
     "AT/MP expenses, death benefits, non-individual expenses: not care"),
    (codes(4331), "excluded:care_abroad", "care abroad, reimbursed on foreign invoices"),
    (codes(4373), "excluded:prevention", "health examination paid by the prevention fund"),
    ((lambda c: 6000 <= c <= 8999), "excluded:cash_benefit", "cash benefit (IJ, pension, rent), not care"),
    ((lambda c: 9111 <= c <= 9170 and c not in (9141, 9142, 9143)), "excluded:extra_benefit",
     "prestation supplémentaire / action sanitaire et sociale, outside the legal AMO"),
    (codes((9201, 9221), (9311, 9319), (9511, 9521), 9430, 9432, 9433), "excluded:prevention",
     "prevention programme paid at 100 % by the prevention fund, outside rac's categories"),
    (codes(9425, 9426, 9427), "excluded:extra_benefit", "MSA ticket modérateur complement"),
    ((lambda c: 9567 <= c <= 9999), "excluded:extra_benefit", "social aid, régime-specific benefits, SNCF codes"),
    # ---- emergency care (2021 reform: forfaits and supplements at 100 %, FPU on its own line)
    (codes(1050, 1051, (1067, 1075), (1077, 1084), 2207, 2208, 2209, 2210, (2216, 2220), 2228, 2233, 2238, 2239,
           2277, 2278, 2309, 9141),
     "emergency_visit", "emergency department forfait or supplement (LFSS 2021 art. 51)"),
    # ---- consultations and visits (NGAP C, CS, G, GS, APC, V…, their majorations)
    (codes((1039, 1049), 1053, 1054, 1055, 1056, 1057, 1058, 1059, 1060, 1061, 1085, 1089, 1090, 1091,
           1092, 1093, 1094, 1095, 1096, 1097, 1098, 1099, 1100, (1101, 1123), (1125, 1127), 1129,
           (1131, 1137), (1140, 1141), (1152, 1154), 1157, 1158, 1159, (1164, 1166), 1168, 1172, 1174,
           (1191, 1194), 1199, 1201, 1202, 1203, (1209, 1232), 1521, 1522, 1821, 1841, 1901, (1903, 1906),
           1912, 1913, 1914, 1918, 1922, (1931, 1938), (1941, 1945), (1963, 1965), 2414, 2426),
     "consultation", "NGAP consultation, visit, teleconsultation or their majoration (RULES §2 70 %)"),
    # ---- medical acts (K, CCAM ADC/ACO/ADA/ATM, anapath, vaccination)
    (codes((1311, 1323), 1341, 1342, 1345, 1352, 1361, 1921, 1926, 1929, 1930, 1959, 1981, 1982, 1983,
           2411, 2417, 2418, 2428, 3337, 3338, 3359, 3360, 3402, 3415, 3416, 3423, (3344, 3350), 3358,
           3310, 3367, 3368, 3370, 3376, 3404, 9142, 9143),
     "medical_act", "NGAP K or CCAM technical act, or a vaccination / pharmacist clinical act (RULES §2 70 %)"),
    # ---- imaging
    (codes(1324, (1331, 1336), 1351, (2351, 2369), 2391, 2392), "imaging",
     "radiology, echography, CCAM imaging or its technical forfait (RULES §2 70 %)"),
    # ---- dental
    (codes(1325, 1353, 1354, (1400, 1424), (1431, 1439), (1451, 1477), (5201, 5206), 9191, 9411,
           (9412, 9415), (9421, 9424), 9429, 9431, 9435, 9436),
     "dental", "dental care, prosthesis or orthodontics, dental surgeon's CCAM (RULES §2 60 % from 2023-10-15)"),
    # ---- midwives
    (codes(1511, 1512, 1911, 1923, 1939, 1940, 1948, 1949, 1086, 3113), "midwife",
     "midwife's act, forfait or majoration (RULES §2 70 %)"),
    # ---- travel indemnities: the executing professional decides the rate
    (codes(1811, 1812, 1813, 1814), "paramedical|consultation|midwife",
     "IK travel indemnity: at the rate of the executing professional's acts (mostly nurses, physiotherapists)"),
    (codes((1842, 1849)), "paramedical", "travel indemnity of an auxiliaire médical (IFA, IFI, IFO…)"),
    # ---- paramedical (AMI, AIS, AMK, AMS, AMO, AMY, AMP, psychologists…)
    (codes((3103, 3109), (3111, 3117), (3120, 3123), 3125, (3127, 3138), (3140, 3143), (3145, 3149),
           (3151, 3173), 2335),
     "paramedical", "auxiliaire médical's act, forfait or majoration (RULES §2 60 %)"),
    # ---- biology
    (codes((3211, 3225), 2413, 9434), "biology", "biology (B, BR, prélèvements) (RULES §2 60 %)"),
    # ---- drugs
    (codes(3311, 3314, 3317, 3320, 3321, 3329, 3330, 3336, (3351, 3357), 3373, 3377, 3411, 3412, 3413,
           3414, 3421, 2415, 2416),
     "drug_100", "drug at 100 % (PH1, retrocession, liste en sus, IVG drugs) (RULES §2)"),
    (codes(3313, 3315, 3316, 3318, (3331, 3335), 3374, 9566), "drug_65", "drug at 65 % (PH7, vaccines) (RULES §2)"),
    (codes(3312, 3319, 3327, 3328, 3343), "drug_30", "drug at 30 % (PH4) (RULES §2)"),
    (codes(3341, 3342), "drug_15", "drug at 15 % (PH2) (RULES §2)"),
    (codes(3383, 3387), "drug_100", "dispensing fee of a 100 % drug (HD1): follows the drug's rate"),
    (codes(3384, 3388), "drug_15", "dispensing fee of a 15 % drug (HD2): follows the drug's rate"),
    (codes(3385, 3389), "drug_30", "dispensing fee of a 30 % drug (HD4): follows the drug's rate"),
    (codes(3386, 3390), "drug_65", "dispensing fee of a 65 % drug (HD7): follows the drug's rate"),
    (codes(3322, 3323, 3324, 3325, 3326, 3364, 3365, 3366, 3379, 3380, 3381, 3382, 3424, 3425),
     DRUG_BY_RATE, "pharmacy fee or preparation: at the rate of the drugs it goes with"),
    # ---- LPP: optical, hearing, other devices
    (codes((3500, 3510), (3519, 3520), (3523, 3539), (3553, 3557), 3559, 3560, (3562, 3570), (3578, 3585),
           3602, (5101, 5130)),
     "optical", "optical LPP (lenses, frames, supplements) (RULES §2 60 %)"),
    (codes(3540, 3541, 3547, 3549, 3550, (3586, 3590), 3595, (5401, 5403)), "hearing",
     "hearing aids and their supplies (RULES §2 60 %)"),
    (codes((3511, 3518), 3521, 3522, (3542, 3546), 3548, 3551, 3552, 3558, 3561, 3571, 3572, 3573, 3574,
           3591, 3597, 3601, 2315, 2339),
     "device", "LPP device (titles I–IV), home treatment, dressings, orthoses (RULES §2 60 %)"),
    # ---- transport
    (codes((2103, 2109), (2302, 2304), 4203, 4204, 4205, (4207, 4221), 4223, 4225, 4226, 4229,
           (4234, 4241)),
     "transport", "health transport (ambulance, VSL, taxi, supplements) (RULES §2 55 %)"),
    # ---- hospital
    (codes(2250, 2251, 2252, 2259, 2290), "daily_fee|daily_fee_psy",
     "forfait journalier (CSS L174-4); psychiatric when at fj.daily_psy"),
    (codes(2100, 2101, (2110, 2119), (2121, 2129), (2131, 2140), (2142, 2159), (2163, 2168), (2181, 2191),
           2195, 2196, 2199, 2206, 2211, 2213, (2221, 2227), (2229, 2232), (2234, 2237), (2240, 2249), 2253,
           (2256, 2258), (2260, 2262), (2266, 2276), 2279, 2288, 2289, 2291, (2299, 2301), (2321, 2334),
           (2336, 2338), 2340, 2341, (2380, 2389), (2412, 2412), (2419, 2425), 3128, 3339, 3340),
     "hospital_stay", "hospital stay, its forfaits and supplements (GHS, PJ, SE, dialysis…) (RULES §2 80 %)"),
]


def load_labels(ref: Path):
    labels = {}
    keys = {}
    with open(ref / "damir/lexicon/dimensions/PRS_NAT.csv", newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            labels[int(r["PRS_NAT"])] = (r["libelle"].strip(), "Open DAMIR lexicon 2024")
            if r["detail"].strip():
                keys[int(r["PRS_NAT"])] = r["detail"].strip()
    with open(ref / "snds/nomenclatures/IR_NAT_V.csv", newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f, delimiter=";"):
            code = int(r["PRS_NAT"])
            if code not in labels:
                labels[code] = (r["PRS_NAT_LIB"].strip(), "IR_NAT_V 2020")
            if r["PRS_NAT_CB2"].strip() and code not in keys:
                keys[code] = r["PRS_NAT_CB2"].strip()
    return labels, keys


def classify(code: int):
    for pred, category, why in RULES:
        hit = pred(code) if callable(pred) else code in pred
        if hit:
            return category, why
    return None, None


def main():
    ref = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/reference")
    labels, keys = load_labels(ref)
    out = Path(__file__).resolve().parent / "prs_nat.csv"
    unmapped = []
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=";", lineterminator="\n")
        w.writerow(["code", "label", "category", "source"])
        for code in sorted(labels):
            label, origin = labels[code]
            category, why = classify(code)
            if category is None:
                unmapped.append((code, label))
                continue
            key = keys.get(code)
            source = f"{origin}" + (f", B2 key {key}" if key else "") + f"; rac: {why}"
            w.writerow([code, label, category, source])
    for code, label in unmapped:
        print(f"unmapped (left out of the table, reported by the audit): {code} {label}")
    print(f"wrote {out}")
    if "--check-baserac" in sys.argv:
        check(ref)


def check(ref: Path):
    """Prints where rac's category disagrees with the DREES presta_R grouping (reference only)."""
    coarse = {
        "cliniq": {"consultation", "midwife", "paramedical", "emergency_visit"},
        "techniq": {"medical_act", "imaging", "dental", "midwife", "paramedical"},
        "Labo": {"biology"},
        "transport": {"transport"},
    }
    with open(ref / "baserac/prs_nat_ref_x_presta_r.csv", newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            code = int(r["PRS_NAT_REF"])
            cat, _ = classify(code)
            expected = coarse.get(r["presta_R"])
            if expected and cat and not (set(cat.split("|")) & expected):
                print(f"baserac {r['presta_R']:>10} vs rac {cat:<30} {code} {r['PRS_NAT_LIB']}")


if __name__ == "__main__":
    main()
