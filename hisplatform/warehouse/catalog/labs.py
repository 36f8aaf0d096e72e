"""Laboratory items (MIMIC-IV itemids and labels, LOINC codes), their panels and value distributions."""

from __future__ import annotations

from dataclasses import dataclass

# Probabilities at which LabItem.knots are given: minimum (about the 1st percentile), 5th, 25th,
# median, 75th, 95th and maximum (about the 99th). A value is drawn by inverse-CDF interpolation.
KNOT_PROBABILITIES: tuple[float, ...] = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


@dataclass(frozen=True)
class LabItem:
    itemid: int
    label: str  # lower case, as EHRSQL's preprocessed MIMIC-IV spells it
    fluid: str
    category: str
    loinc: str | None  # None where no single LOINC code fits the item as MIMIC-IV measures it
    uom: str | None
    decimals: int
    knots: tuple[float, float, float, float, float, float, float]
    ref_male: tuple[float, float] | None
    ref_female: tuple[float, float] | None
    # Latent clinical factors (0 = absent, 1 = severe) that push the value's quantile up or down.
    factors: tuple[tuple[str, float], ...] = ()


# itemid, label, fluid and category are MIMIC-IV's (hosp/d_labitems); units, reference ranges and the
# distributions are calibrated on the MIMIC-IV Clinical Database Demo 2.2 labevents (107,727 rows),
# with blood counts moved toward the reference range because the demo's 100 patients all had an ICU
# stay while most of our admissions are ward admissions.
# fmt: off
_ITEMS: tuple[LabItem, ...] = (
    # Chemistry (basic metabolic panel and its usual additions)
    LabItem(50983, "sodium", "blood", "chemistry", "2951-2", "meq/l", 0,
            (124, 130, 136, 139, 141, 145, 152), (133, 145), (133, 145)),
    LabItem(50971, "potassium", "blood", "chemistry", "2823-3", "meq/l", 1,
            (3.0, 3.4, 3.8, 4.1, 4.4, 5.1, 6.0), (3.3, 5.1), (3.3, 5.1), (("renal", 0.3),)),
    LabItem(50902, "chloride", "blood", "chemistry", "2075-0", "meq/l", 0,
            (88, 94, 99, 102, 105, 110, 116), (96, 108), (96, 108)),
    LabItem(50882, "bicarbonate", "blood", "chemistry", "1963-8", "meq/l", 0,
            (13, 18, 22, 25, 27, 31, 36), (22, 32), (22, 32), (("acidosis", -0.45), ("renal", -0.15))),
    LabItem(51006, "urea nitrogen", "blood", "chemistry", "3094-0", "mg/dl", 0,
            (5, 7, 12, 17, 27, 60, 105), (6, 20), (6, 20), (("renal", 0.45),)),
    LabItem(50912, "creatinine", "blood", "chemistry", "2160-0", "mg/dl", 1,
            (0.4, 0.5, 0.7, 0.9, 1.3, 3.2, 7.5), (0.5, 1.2), (0.4, 1.1), (("renal", 0.5),)),
    LabItem(50931, "glucose", "blood", "chemistry", "2345-7", "mg/dl", 0,
            (62, 76, 92, 106, 138, 240, 400), (70, 100), (70, 100), (("glycemic", 0.45),)),
    LabItem(50868, "anion gap", "blood", "chemistry", "33037-3", "meq/l", 0,
            (7, 9, 12, 14, 16, 21, 27), (8, 20), (8, 20), (("acidosis", 0.4),)),
    LabItem(50893, "calcium, total", "blood", "chemistry", "17861-6", "mg/dl", 1,
            (7.0, 7.6, 8.3, 8.8, 9.3, 9.9, 10.7), (8.4, 10.3), (8.4, 10.3)),
    LabItem(50960, "magnesium", "blood", "chemistry", "19123-9", "mg/dl", 1,
            (1.4, 1.6, 1.8, 2.0, 2.2, 2.5, 3.0), (1.6, 2.6), (1.6, 2.6)),
    LabItem(50970, "phosphate", "blood", "chemistry", "2777-1", "mg/dl", 1,
            (1.5, 2.1, 2.9, 3.5, 4.1, 5.8, 8.0), (2.7, 4.5), (2.7, 4.5), (("renal", 0.3),)),
    # Complete blood count
    LabItem(51221, "hematocrit", "blood", "hematology", "4544-3", "%", 1,
            (21, 24.5, 30, 35, 39.5, 45, 50), (40, 51), (34, 45), (("anemia", -0.5),)),
    LabItem(51222, "hemoglobin", "blood", "hematology", "718-7", "g/dl", 1,
            (6.8, 7.9, 9.8, 11.5, 13.1, 15.0, 16.6), (13.7, 17.5), (11.2, 15.7), (("anemia", -0.5),)),
    LabItem(51248, "mch", "blood", "hematology", "785-6", "pg", 1,
            (23, 26, 28.5, 30.1, 31.6, 33.8, 35.5), (26, 32), (26, 32)),
    LabItem(51249, "mchc", "blood", "hematology", "786-4", "g/dl", 1,
            (29, 30.3, 31.9, 32.9, 33.9, 35.2, 36.3), (32, 37), (32, 37)),
    LabItem(51250, "mcv", "blood", "hematology", "787-2", "fl", 0,
            (74, 81, 87, 91, 95, 102, 110), (82, 98), (82, 98)),
    LabItem(51265, "platelet count", "blood", "hematology", "777-3", "k/ul", 0,
            (25, 70, 150, 215, 285, 430, 620), (150, 400), (150, 400), (("marrow", -0.45),)),
    LabItem(51277, "rdw", "blood", "hematology", "788-0", "%", 1,
            (11.9, 12.5, 13.4, 14.3, 15.6, 19.0, 23.0), (10.5, 15.5), (10.5, 15.5), (("anemia", 0.2),)),
    LabItem(51279, "red blood cells", "blood", "hematology", "789-8", "m/ul", 2,
            (2.2, 2.6, 3.2, 3.8, 4.3, 5.0, 5.7), (4.6, 6.1), (3.9, 5.2), (("anemia", -0.5),)),
    LabItem(51301, "white blood cells", "blood", "hematology", "6690-2", "k/ul", 1,
            (1.5, 3.5, 6.2, 8.4, 11.2, 18.5, 35.0), (4, 10), (4, 10),
            (("inflammation", 0.45), ("marrow", -0.3))),
    LabItem(52172, "rdw-sd", "blood", "hematology", "21000-5", "fl", 1,
            (37.5, 40, 43.5, 47, 52, 62, 75), (35.1, 46.3), (35.1, 46.3)),
    # White cell differential
    LabItem(51256, "neutrophils", "blood", "hematology", "770-8", "%", 1,
            (35, 48, 60, 69, 77, 87, 93), (34, 71), (34, 71), (("inflammation", 0.4),)),
    LabItem(51244, "lymphocytes", "blood", "hematology", "736-9", "%", 1,
            (2.5, 5, 11, 18, 26, 38, 55), (19, 53), (19, 53), (("inflammation", -0.4),)),
    LabItem(51254, "monocytes", "blood", "hematology", "5905-5", "%", 1,
            (1.5, 3, 5.5, 7.2, 9, 12.5, 17), (5, 13), (5, 13)),
    LabItem(51200, "eosinophils", "blood", "hematology", "713-8", "%", 1,
            (0, 0.1, 0.7, 1.5, 2.7, 5.5, 9), (1, 7), (1, 7)),
    LabItem(51146, "basophils", "blood", "hematology", "706-2", "%", 1,
            (0, 0.1, 0.3, 0.4, 0.6, 1.0, 1.8), (0, 1), (0, 1)),
    # Coagulation
    LabItem(51274, "pt", "blood", "hematology", "5902-2", "sec", 1,
            (10.2, 10.8, 11.5, 12.3, 13.6, 20.0, 35.0), (9.4, 12.5), (9.4, 12.5),
            (("anticoagulation", 0.45), ("hepatic", 0.25))),
    LabItem(51237, "inr(pt)", "blood", "hematology", "6301-6", None, 1,
            (0.9, 0.95, 1.0, 1.1, 1.25, 1.9, 3.3), (0.9, 1.1), (0.9, 1.1),
            (("anticoagulation", 0.45), ("hepatic", 0.25))),
    LabItem(51275, "ptt", "blood", "hematology", "3173-2", "sec", 1,
            (22, 24.5, 27.5, 30.5, 35, 60, 110), (25, 36.5), (25, 36.5), (("anticoagulation", 0.25),)),
    LabItem(51214, "fibrinogen, functional", "blood", "hematology", "3255-7", "mg/dl", 0,
            (100, 150, 240, 320, 430, 650, 850), (180, 400), (180, 400), (("inflammation", 0.3),)),
    # Liver function
    LabItem(50861, "alanine aminotransferase (alt)", "blood", "chemistry", "1742-6", "iu/l", 0,
            (6, 9, 15, 24, 40, 120, 600), (0, 40), (0, 40), (("hepatic", 0.45),)),
    LabItem(50878, "asparate aminotransferase (ast)", "blood", "chemistry", "1920-8", "iu/l", 0,
            (10, 14, 20, 29, 46, 140, 800), (0, 40), (0, 40), (("hepatic", 0.45),)),
    LabItem(50863, "alkaline phosphatase", "blood", "chemistry", "6768-6", "iu/l", 0,
            (35, 46, 63, 82, 110, 220, 400), (40, 130), (35, 105), (("hepatic", 0.35),)),
    LabItem(50885, "bilirubin, total", "blood", "chemistry", "1975-2", "mg/dl", 1,
            (0.2, 0.2, 0.4, 0.6, 1.0, 3.0, 12.0), (0, 1.5), (0, 1.5), (("hepatic", 0.45),)),
    LabItem(50883, "bilirubin, direct", "blood", "chemistry", "1968-7", "mg/dl", 1,
            (0.1, 0.1, 0.1, 0.2, 0.4, 2.0, 9.0), (0, 0.3), (0, 0.3), (("hepatic", 0.45),)),
    LabItem(50862, "albumin", "blood", "chemistry", "1751-7", "g/dl", 1,
            (2.0, 2.4, 3.1, 3.6, 4.0, 4.5, 5.0), (3.5, 5.2), (3.5, 5.2),
            (("hepatic", -0.3), ("inflammation", -0.25))),
    # Blood gas (point of care: MIMIC-IV leaves their priority empty)
    LabItem(50820, "ph", "blood", "blood gas", "11558-4", "units", 2,
            (7.12, 7.22, 7.33, 7.38, 7.42, 7.47, 7.53), (7.35, 7.45), (7.35, 7.45), (("acidosis", -0.45),)),
    LabItem(50818, "pco2", "blood", "blood gas", "11557-6", "mm hg", 0,
            (24, 29, 35, 40, 45, 58, 75), (35, 45), (35, 45), (("respiratory", 0.4),)),
    LabItem(50821, "po2", "blood", "blood gas", "11556-8", "mm hg", 0,
            (32, 45, 75, 100, 140, 320, 450), (85, 105), (85, 105), (("respiratory", -0.3),)),
    LabItem(50802, "base excess", "blood", "blood gas", "11555-0", "meq/l", 0,
            (-16, -10, -4, -1, 1, 5, 10), None, None, (("acidosis", -0.45),)),
    LabItem(50804, "calculated total co2", "blood", "blood gas", "34728-6", "meq/l", 0,
            (11, 16, 21, 25, 28, 32, 38), (21, 30), (21, 30), (("acidosis", -0.4),)),
    LabItem(50813, "lactate", "blood", "blood gas", "32693-4", "mmol/l", 1,
            (0.6, 0.8, 1.1, 1.5, 2.2, 4.5, 9.5), (0.5, 2), (0.5, 2),
            (("inflammation", 0.3), ("acidosis", 0.3))),
    LabItem(50808, "free calcium", "blood", "blood gas", "1994-3", "mmol/l", 2,
            (0.88, 0.98, 1.07, 1.12, 1.17, 1.26, 1.36), (1.12, 1.32), (1.12, 1.32)),
    LabItem(50822, "potassium, whole blood", "blood", "blood gas", "6298-4", "meq/l", 1,
            (2.9, 3.3, 3.8, 4.1, 4.6, 5.5, 6.4), (3.3, 5.1), (3.3, 5.1), (("renal", 0.3),)),
    # Cardiac markers
    LabItem(51003, "troponin t", "blood", "chemistry", "6598-7", "ng/ml", 2,
            (0.01, 0.01, 0.01, 0.02, 0.05, 0.6, 3.5), (0, 0.01), (0, 0.01),
            (("cardiac", 0.55), ("renal", 0.15))),
    LabItem(50910, "creatine kinase (ck)", "blood", "chemistry", "2157-6", "iu/l", 0,
            (20, 35, 60, 110, 220, 900, 5000), (47, 322), (29, 201), (("cardiac", 0.35),)),
    LabItem(50911, "creatine kinase, mb isoenzyme", "blood", "chemistry", "13969-1", "ng/ml", 0,
            (1, 1, 2, 3, 6, 40, 200), (0, 10), (0, 10), (("cardiac", 0.5),)),
    LabItem(50963, "ntprobnp", "blood", "chemistry", "33762-6", "pg/ml", 0,
            (30, 90, 400, 1500, 5000, 20000, 45000), (0, 177), (0, 624), (("heart_failure", 0.55),)),
    # Other chemistry
    LabItem(50889, "c-reactive protein", "blood", "chemistry", "1988-5", "mg/l", 1,
            (0.3, 1, 4, 15, 60, 180, 300), (0, 5), (0, 5), (("inflammation", 0.5),)),
    LabItem(50852, "% hemoglobin a1c", "blood", "chemistry", "4548-4", "%", 1,
            (4.6, 5.0, 5.5, 6.0, 7.2, 10.0, 13.0), (4.8, 5.9), (4.8, 5.9), (("glycemic", 0.5),)),
    LabItem(50993, "thyroid stimulating hormone", "blood", "chemistry", "3016-3", "uiu/ml", 2,
            (0.05, 0.4, 1.1, 1.9, 3.2, 7.5, 20), (0.27, 4.2), (0.27, 4.2)),
    LabItem(50956, "lipase", "blood", "chemistry", "3040-3", "iu/l", 0,
            (8, 14, 22, 33, 50, 150, 900), (0, 60), (0, 60), (("pancreatic", 0.5),)),
    LabItem(50867, "amylase", "blood", "chemistry", "1798-8", "iu/l", 0,
            (15, 25, 40, 60, 90, 200, 500), (0, 100), (0, 100), (("pancreatic", 0.45),)),
    LabItem(50954, "lactate dehydrogenase (ld)", "blood", "chemistry", "2532-0", "iu/l", 0,
            (120, 150, 190, 240, 320, 700, 2500), (94, 250), (94, 250), (("marrow", 0.35), ("hepatic", 0.2))),
    # Urinalysis (MIMIC-IV files it under hematology)
    LabItem(51491, "ph", "urine", "hematology", "5803-2", "units", 1,
            (5.0, 5.0, 5.5, 6.0, 6.5, 7.5, 8.5), (5, 8), (5, 8)),
    LabItem(51498, "specific gravity", "urine", "hematology", "5811-5", None, 3,
            (1.003, 1.006, 1.011, 1.016, 1.021, 1.030, 1.040), (1.001, 1.035), (1.001, 1.035)),
    LabItem(51516, "wbc", "urine", "hematology", "5821-4", "#/hpf", 0,
            (0, 0, 1, 3, 8, 50, 150), (0, 5), (0, 5), (("urinary", 0.55),)),
    LabItem(51493, "rbc", "urine", "hematology", "13945-1", "#/hpf", 0,
            (0, 0, 1, 2, 5, 30, 120), (0, 2), (0, 2), (("urinary", 0.3),)),
)
# fmt: on

LAB_ITEMS: dict[int, LabItem] = {item.itemid: item for item in _ITEMS}

# Panels as the laboratory runs them: one specimen, one charttime, several results. The item sets
# are the most frequent specimen compositions in the MIMIC-IV demo labevents.
PANELS: dict[str, tuple[int, ...]] = {
    "chem7": (50983, 50971, 50902, 50882, 51006, 50912, 50931, 50868),
    "chem10": (50983, 50971, 50902, 50882, 51006, 50912, 50931, 50868, 50893, 50960, 50970),
    "cbc": (51221, 51222, 51248, 51249, 51250, 51265, 51277, 51279, 51301, 52172),
    "cbc_diff": (
        51221,
        51222,
        51248,
        51249,
        51250,
        51265,
        51277,
        51279,
        51301,
        51256,
        51244,
        51254,
        51200,
        51146,
    ),
    "coag": (51274, 51237, 51275),
    "coag_fib": (51274, 51237, 51275, 51214),
    "lft": (50861, 50878, 50863, 50885, 50862),
    "lft_direct": (50861, 50878, 50863, 50885, 50883, 50862),
    "blood_gas": (50820, 50818, 50821, 50802, 50804, 50813, 50808, 50822),
    "lactate": (50813,),
    "cardiac": (51003, 50910, 50911),
    "troponin": (51003,),
    "bnp": (50963,),
    "crp": (50889,),
    "a1c": (50852,),
    "tsh": (50993,),
    "pancreas": (50956, 50867),
    "ldh": (50954,),
    "urinalysis": (51491, 51498, 51516, 51493),
}

# Minutes from collection to result by priority: lognormal medians and spreads fitted to the demo's
# storetime - charttime (STAT median 63 min, IQR 42-92; ROUTINE median 82, IQR 53-139; point-of-care
# blood gases, priority empty, median 2 min).
TURNAROUND: dict[str | None, tuple[float, float]] = {
    "stat": (63.0, 0.55),
    "routine": (82.0, 0.7),
    None: (2.5, 0.5),
}
