"""Drug orders in order sets, named, dosed and routed as EHRSQL's MIMIC-IV prescriptions spell them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DrugOrder:
    drug: str
    dose: float
    unit: str
    route: str
    probability: float  # share of admissions in the order set's scope that get this order
    hours: float  # median duration of one order, in hours (lognormal around it)
    reorder_days: float = 0.0  # a new order every so many days of the stay (0: a single order)


def _order(
    drug: str, dose: float, unit: str, route: str, probability: float, hours: float, reorder: float = 0.0
) -> DrugOrder:
    return DrugOrder(drug, dose, unit, route, probability, hours, reorder)


# Drug names, doses, units and routes are among the most frequent in MIMIC-IV demo prescriptions
# (median order duration there: 27 hours; interquartile range 14-82 hours).
ORDER_SETS: dict[str, tuple[DrugOrder, ...]] = {
    # Every inpatient: flushes, thromboprophylaxis, analgesia, bowel care, antiemetics, electrolytes.
    "inpatient": (
        _order("sodium chloride 0.9%  flush", 3, "ml", "iv", 0.8, 72, 3),
        _order("heparin", 5000, "unit", "sc", 0.5, 72, 3),
        _order("acetaminophen", 650, "mg", "po/ng", 0.5, 48, 3),
        _order("docusate sodium", 100, "mg", "po", 0.35, 72, 4),
        _order("senna", 8.6, "mg", "po/ng", 0.3, 72, 4),
        _order("ondansetron", 4, "mg", "iv", 0.35, 24, 3),
        _order("bisacodyl", 10, "mg", "pr", 0.2, 48),
        _order("polyethylene glycol", 17, "g", "po/ng", 0.2, 72),
        _order("pantoprazole", 40, "mg", "po", 0.2, 96),
        _order("famotidine", 20, "mg", "po/ng", 0.1, 72),
        _order("potassium chloride", 40, "meq", "po", 0.25, 6, 3),
        _order("magnesium sulfate", 2, "gm", "iv", 0.25, 4, 3),
        _order("sodium chloride 0.9%", 1000, "ml", "iv", 0.3, 12),
        _order("lactated ringers", 1000, "ml", "iv", 0.2, 12),
        _order("trazodone", 25, "mg", "po/ng", 0.1, 72),
        _order("oxycodone (immediate release)", 5, "mg", "po/ng", 0.15, 48),
        _order("lorazepam", 0.5, "mg", "po/ng", 0.06, 24),
        _order("insulin", 0, "unit", "sc", 0.1, 72, 3),
    ),
    "antihypertensive": (
        _order("amlodipine", 5, "mg", "po/ng", 0.35, 96),
        _order("lisinopril", 10, "mg", "po/ng", 0.3, 96),
        _order("hydralazine", 10, "mg", "iv", 0.1, 12),
        _order("carvedilol", 6.25, "mg", "po", 0.1, 96),
    ),
    "statin": (
        _order("atorvastatin", 40, "mg", "po/ng", 0.6, 120),
        _order("rosuvastatin calcium", 20, "mg", "po", 0.1, 120),
    ),
    "diabetes": (
        _order("insulin", 0, "unit", "sc", 0.9, 72, 3),
        _order("insulin glargine", 10, "unit", "sc", 0.3, 96),
        _order("glucose gel", 15, "g", "po", 0.4, 72),
        _order("dextrose 50%", 12.5, "gm", "iv", 0.3, 72),
        _order("glucagon", 1, "mg", "im", 0.3, 72),
    ),
    "renal": (
        _order("sevelamer carbonate", 800, "mg", "po", 0.3, 96),
        _order("calcium acetate", 667, "mg", "po", 0.2, 96),
        _order("epoetin alfa", 4000, "unit", "sc", 0.15, 2),
        _order("nephrocaps", 1, "cap", "po/ng", 0.2, 96),
        _order("sodium bicarbonate", 650, "mg", "po", 0.15, 72),
    ),
    "copd": (
        _order("albuterol 0.083% neb soln", 1, "neb", "ih", 0.8, 48, 2),
        _order("ipratropium bromide neb", 1, "neb", "ih", 0.6, 48, 2),
        _order("prednisone", 40, "mg", "po", 0.5, 96),
        _order("tiotropium bromide", 1, "cap", "ih", 0.3, 96),
        _order("methylprednisolone sodium succ", 40, "mg", "iv", 0.2, 24),
    ),
    "afib": (
        _order("metoprolol tartrate", 25, "mg", "po/ng", 0.7, 72, 3),
        _order("apixaban", 5, "mg", "po", 0.4, 96),
        _order("warfarin", 5, "mg", "po/ng", 0.2, 24, 1),
        _order("diltiazem", 30, "mg", "po", 0.2, 48),
        _order("amiodarone", 200, "mg", "po/ng", 0.1, 96),
    ),
    "cardiac": (
        _order("aspirin", 81, "mg", "po/ng", 0.7, 96),
        _order("metoprolol tartrate", 12.5, "mg", "po/ng", 0.4, 72),
        _order("atorvastatin", 80, "mg", "po/ng", 0.4, 120),
    ),
    "acs": (
        _order("aspirin", 325, "mg", "po/ng", 0.8, 2),
        _order("aspirin", 81, "mg", "po/ng", 0.9, 96),
        _order("clopidogrel", 75, "mg", "po/ng", 0.5, 96),
        _order("ticagrelor", 90, "mg", "po", 0.3, 96),
        _order("heparin", 25000, "unit", "iv", 0.6, 36),
        _order("atorvastatin", 80, "mg", "po/ng", 0.9, 120),
        _order("metoprolol tartrate", 25, "mg", "po/ng", 0.8, 72),
        _order("metoprolol tartrate", 5, "mg", "iv", 0.3, 2),
        _order("nitroglycerin", 0.4, "mg", "sl", 0.4, 24),
        _order("lisinopril", 5, "mg", "po/ng", 0.4, 96),
    ),
    "heart_failure": (
        _order("furosemide", 40, "mg", "iv", 0.8, 24, 1),
        _order("furosemide", 20, "mg", "po/ng", 0.4, 72),
        _order("spironolactone", 25, "mg", "po", 0.3, 96),
        _order("carvedilol", 3.125, "mg", "po", 0.3, 96),
        _order("potassium chloride", 20, "meq", "po", 0.4, 6, 2),
        _order("lisinopril", 5, "mg", "po/ng", 0.3, 96),
    ),
    "stroke": (
        _order("aspirin", 81, "mg", "po/ng", 0.7, 96),
        _order("atorvastatin", 80, "mg", "po/ng", 0.7, 120),
        _order("labetalol", 10, "mg", "iv", 0.3, 12),
        _order("nicardipine iv", 40, "mg", "iv drip", 0.15, 24),
        _order("clopidogrel", 75, "mg", "po/ng", 0.3, 96),
    ),
    "seizure": (
        _order("levetiracetam", 500, "mg", "po", 0.8, 96),
        _order("levetiracetam", 1000, "mg", "iv", 0.4, 24),
        _order("lorazepam", 2, "mg", "iv", 0.3, 2),
        _order("divalproex (delayed release)", 500, "mg", "po", 0.15, 96),
    ),
    "neurosurgery": (
        _order("levetiracetam", 500, "mg", "iv", 0.7, 72),
        _order("dexamethasone", 4, "mg", "iv", 0.5, 72),
        _order("cefazolin", 2, "g", "iv", 0.6, 24),
        _order("nicardipine iv", 40, "mg", "iv drip", 0.2, 24),
    ),
    "surgery": (
        _order("cefazolin", 2, "g", "iv", 0.8, 24),
        _order("ketorolac", 15, "mg", "iv", 0.5, 24),
        _order("hydromorphone (dilaudid)", 0.5, "mg", "iv", 0.5, 24),
        _order("oxycodone (immediate release)", 5, "mg", "po/ng", 0.6, 72),
        _order("acetaminophen iv", 1000, "mg", "iv", 0.4, 12),
        _order("enoxaparin sodium", 40, "mg", "sc", 0.5, 96),
        _order("ondansetron", 4, "mg", "iv", 0.6, 24),
    ),
    "antibiotic_resp": (
        _order("ceftriaxone", 1, "gm", "iv", 0.7, 24, 1),
        _order("azithromycin", 500, "mg", "iv", 0.6, 24, 1),
        _order("levofloxacin", 750, "mg", "iv", 0.15, 24, 1),
        _order("vancomycin", 1000, "mg", "iv", 0.2, 12, 1),
    ),
    "antibiotic_broad": (
        _order("vancomycin", 1000, "mg", "iv", 0.9, 12, 1),
        _order("piperacillin-tazobactam", 4.5, "g", "iv", 0.6, 8, 1),
        _order("cefepime", 2, "g", "iv", 0.35, 12, 1),
        _order("meropenem", 1000, "mg", "iv", 0.1, 8, 1),
    ),
    "antibiotic_urine": (
        _order("ceftriaxone", 1, "gm", "iv", 0.6, 24, 1),
        _order("ciprofloxacin iv", 400, "mg", "iv", 0.2, 12, 1),
        _order("nitrofurantoin (macrodantin)", 100, "mg", "po", 0.2, 96),
    ),
    "antibiotic_skin": (
        _order("cefazolin", 2, "g", "iv", 0.6, 8, 1),
        _order("vancomycin", 1000, "mg", "iv", 0.5, 12, 1),
        _order("sulfameth/trimethoprim ds", 1, "tab", "po", 0.2, 96),
    ),
    "antibiotic_abdo": (
        _order("ciprofloxacin iv", 400, "mg", "iv", 0.5, 12, 1),
        _order("metronidazole (flagyl)", 500, "mg", "iv", 0.6, 8, 1),
        _order("piperacillin-tazobactam", 4.5, "g", "iv", 0.3, 8, 1),
    ),
    "antibiotic_cdiff": (_order("vancomycin oral liquid", 125, "mg", "po/ng", 0.9, 96, 4),),
    "gi_bleed": (
        _order("pantoprazole", 80, "mg", "iv", 0.8, 24),
        _order("pantoprazole", 40, "mg", "iv", 0.7, 72, 2),
        _order("octreotide acetate", 50, "mcg", "iv drip", 0.2, 72),
    ),
    "alcohol": (
        _order("thiamine", 100, "mg", "po/ng", 0.8, 96),
        _order("folic acid", 1, "mg", "po/ng", 0.7, 96),
        _order("multivitamins", 1, "tab", "po/ng", 0.7, 96),
        _order("lorazepam", 1, "mg", "po/ng", 0.5, 24, 1),
    ),
    "opioid_use": (
        _order("methadone", 30, "mg", "po", 0.5, 24, 1),
        _order("buprenorphine-naloxone (8mg-2mg)", 1, "tab", "sl", 0.3, 24, 1),
        _order("naloxone", 0.4, "mg", "iv", 0.3, 2),
    ),
    "nicotine": (_order("nicotine patch", 14, "mg", "td", 0.4, 96),),
    "hiv": (
        _order("emtricitabine-tenofovir (truvada)", 1, "tab", "po", 0.8, 96),
        _order("dolutegravir", 50, "mg", "po", 0.7, 96),
        _order("sulfameth/trimethoprim ss", 1, "tab", "po", 0.2, 96),
    ),
    "antidepressant": (
        _order("sertraline", 50, "mg", "po", 0.4, 96),
        _order("escitalopram oxalate", 10, "mg", "po", 0.25, 96),
        _order("mirtazapine", 15, "mg", "po", 0.15, 96),
        _order("fluoxetine", 20, "mg", "po", 0.15, 96),
    ),
    "anxiolytic": (
        _order("lorazepam", 0.5, "mg", "po", 0.3, 48),
        _order("clonazepam", 0.5, "mg", "po", 0.15, 96),
    ),
    "antipsychotic": (
        _order("olanzapine", 10, "mg", "po", 0.4, 96),
        _order("quetiapine fumarate", 50, "mg", "po/ng", 0.35, 96),
        _order("haloperidol", 5, "mg", "im", 0.3, 2),
        _order("risperidone", 2, "mg", "po", 0.2, 96),
    ),
    "mood_stabilizer": (
        _order("lithium carbonate", 300, "mg", "po", 0.4, 96),
        _order("divalproex (delayed release)", 500, "mg", "po", 0.4, 96),
    ),
    "chemotherapy": (
        _order("ondansetron", 8, "mg", "iv", 0.9, 24, 2),
        _order("prochlorperazine", 10, "mg", "po", 0.5, 72),
        _order("dexamethasone", 4, "mg", "po", 0.5, 72),
        _order("allopurinol", 300, "mg", "po", 0.4, 96),
        _order("acyclovir", 400, "mg", "po", 0.4, 96),
        _order("filgrastim", 480, "mcg", "sc", 0.3, 24, 1),
    ),
    "obstetric": (
        _order("oxytocin", 30, "unit", "iv drip", 0.8, 12),
        _order("ibuprofen", 600, "mg", "po", 0.9, 48),
        _order("docusate sodium", 100, "mg", "po", 0.6, 48),
        _order("prenatal vitamins", 1, "tab", "po", 0.6, 48),
        _order("penicillin g potassium", 5, "million units", "iv", 0.2, 12),
        _order("rho(d) immune globulin", 300, "mcg", "im", 0.1, 1),
    ),
    "preeclampsia": (
        _order("magnesium sulfate", 4, "gm", "iv", 0.9, 24),
        _order("labetalol", 20, "mg", "iv", 0.6, 12),
        _order("nifedipine cr", 30, "mg", "po", 0.4, 48),
    ),
    "peds_general": (
        _order("acetaminophen (liquid)", 160, "mg", "po", 0.8, 48),
        _order("ibuprofen suspension", 100, "mg", "po", 0.5, 48),
        _order("ondansetron", 2, "mg", "iv", 0.4, 24),
        _order("dextrose 5% with 0.45% sodium chloride", 500, "ml", "iv", 0.5, 24),
    ),
    "peds_asthma": (
        _order("albuterol 0.083% neb soln", 1, "neb", "ih", 0.95, 24, 1),
        _order("prednisolone", 20, "mg", "po", 0.7, 72),
        _order("ipratropium bromide neb", 1, "neb", "ih", 0.4, 24),
    ),
    "peds_antibiotic": (
        _order("ceftriaxone", 500, "mg", "iv", 0.6, 24, 1),
        _order("amoxicillin", 250, "mg", "po", 0.5, 96),
        _order("acetaminophen (liquid)", 160, "mg", "po", 0.8, 48),
    ),
    "icu_sedation": (
        _order("propofol", 1000, "mg", "iv drip", 0.8, 36, 2),
        _order("fentanyl citrate", 2.5, "mg", "iv drip", 0.7, 36, 2),
        _order("midazolam", 100, "mg", "iv drip", 0.2, 24),
        _order("dexmedetomidine", 200, "mcg", "iv drip", 0.3, 24),
        _order("chlorhexidine gluconate 0.12% oral rinse", 15, "ml", "oral", 0.8, 72),
        _order("insulin human regular", 100, "unit", "iv drip", 0.3, 24),
    ),
    "icu_pressor": (
        _order("norepinephrine", 8, "mg", "iv drip", 0.9, 24, 1),
        _order("phenylephrine", 60, "mg", "iv drip", 0.3, 24),
        _order("vasopressin", 20, "unit", "iv drip", 0.25, 24),
        _order("calcium gluconate", 2, "g", "iv", 0.4, 4),
        _order("sodium bicarbonate", 150, "meq", "iv", 0.2, 4),
    ),
}
