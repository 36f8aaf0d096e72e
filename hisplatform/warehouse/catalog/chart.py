"""ICU chart items (d_items): vital signs, inputs and outputs, with MIMIC-IV itemids, labels and units."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChartItem:
    itemid: int
    label: str
    abbreviation: str
    linksto: str
    uom: str


# The vital signs EHRSQL asks about, exactly as its mimic_iv.sqlite d_items has them.
HEART_RATE = ChartItem(220045, "heart rate", "hr", "chartevents", "bpm")
SAO2 = ChartItem(220277, "o2 saturation pulseoxymetry", "spo2", "chartevents", "%")
RESPIRATORY_RATE = ChartItem(220210, "respiratory rate", "rr", "chartevents", "insp/min")
TEMPERATURE = ChartItem(223762, "temperature celsius", "temperature c", "chartevents", "°c")
ABP_SYSTOLIC = ChartItem(220050, "arterial blood pressure systolic", "abps", "chartevents", "mmhg")
ABP_DIASTOLIC = ChartItem(220051, "arterial blood pressure diastolic", "abpd", "chartevents", "mmhg")
ABP_MEAN = ChartItem(220052, "arterial blood pressure mean", "abpm", "chartevents", "mmhg")
NBP_SYSTOLIC = ChartItem(220179, "non invasive blood pressure systolic", "nbps", "chartevents", "mmhg")
NBP_DIASTOLIC = ChartItem(220180, "non invasive blood pressure diastolic", "nbpd", "chartevents", "mmhg")
NBP_MEAN = ChartItem(220181, "non invasive blood pressure mean", "nbpm", "chartevents", "mmhg")
DAILY_WEIGHT = ChartItem(224639, "daily weight", "daily weight", "chartevents", "kg")
ADMISSION_WEIGHT = ChartItem(226512, "admission weight (kg)", "admission weight (kg)", "chartevents", "kg")
HEIGHT = ChartItem(226730, "height (cm)", "height (cm)", "chartevents", "cm")

_CHART_ONLY: tuple[ChartItem, ...] = (
    ChartItem(223761, "temperature fahrenheit", "temperature f", "chartevents", "°f"),
    ChartItem(220739, "gcs - eye opening", "eye opening", "chartevents", ""),
    ChartItem(223900, "gcs - verbal response", "verbal response", "chartevents", ""),
    ChartItem(223901, "gcs - motor response", "motor response", "chartevents", ""),
)


@dataclass(frozen=True)
class FluidItem:
    item: ChartItem
    amounts: tuple[float, ...]  # the amounts, in ml, this item is usually given or measured in
    hours: float  # median interval between two events of this item for a patient who has it


def _input(itemid: int, label: str, abbreviation: str, amounts: tuple[float, ...], hours: float) -> FluidItem:
    return FluidItem(ChartItem(itemid, label, abbreviation, "inputevents", "ml"), amounts, hours)


def _output(itemid: int, label: str, amounts: tuple[float, ...], hours: float) -> FluidItem:
    return FluidItem(ChartItem(itemid, label, label, "outputevents", "ml"), amounts, hours)


# Items and amounts from MIMIC-IV demo inputevents/outputevents (the most frequent items there);
# the intervals follow their event counts per ICU stay.
INPUTS: dict[str, FluidItem] = {
    "nacl": _input(225158, "nacl 0.9%", "nacl 0.9%", (100, 250, 500, 1000), 8),
    "d5w": _input(220949, "dextrose 5%", "dextrose 5%", (50, 100, 250), 10),
    "lr": _input(225828, "lr", "lr", (500, 1000), 12),
    "po": _input(226452, "po intake", "po intake", (60, 120, 180, 240, 360), 6),
    "gastric": _input(225799, "gastric meds", "gastric meds", (10, 30, 60), 8),
    "kcl": _input(225166, "potassium chloride", "potassium chloride - kcl", (50, 100), 24),
    "mag": _input(222011, "magnesium sulfate", "magnesium sulfate", (50, 100), 24),
    "calcium": _input(221456, "calcium gluconate", "calcium gluconate", (50, 100), 36),
    "norepinephrine": _input(221906, "norepinephrine", "norepinephrine", (250,), 8),
    "phenylephrine": _input(221749, "phenylephrine", "phenylephrine", (250,), 8),
    "propofol": _input(222168, "propofol", "propofol", (100,), 6),
    "fentanyl": _input(225942, "fentanyl (concentrate)", "fentanyl (concentrate)", (50,), 8),
    "dexmedetomidine": _input(
        225150, "dexmedetomidine (precedex)", "dexmedetomidine (precedex)", (50, 100), 8
    ),
    "insulin": _input(223258, "insulin - regular", "insulin - regular", (100,), 12),
    "heparin": _input(225152, "heparin sodium", "heparin sodium", (250,), 12),
    "cefepime": _input(225851, "cefepime", "cefepime", (50, 100), 12),
    "zosyn": _input(225893, "piperacillin/tazobactam (zosyn)", "piperacillin/tazobactam (zosyn)", (100,), 8),
    "metronidazole": _input(225884, "metronidazole", "metronidazole", (100,), 8),
    "ceftriaxone": _input(225855, "ceftriaxone", "ceftriaxone", (50,), 24),
    "cefazolin": _input(225850, "cefazolin", "cefazolin", (50, 100), 8),
    "pantoprazole": _input(225910, "pantoprazole (protonix)", "pantoprazole (protonix)", (10, 50), 24),
    "prbc": _input(225168, "packed red blood cells", "prbc's", (300, 350), 24),
    "albumin": _input(220862, "albumin 25%", "albumin 25%", (50, 100), 24),
    "nicardipine": _input(222042, "nicardipine", "nicardipine", (200, 250), 12),
    "nitroglycerin": _input(222056, "nitroglycerin", "nitroglycerin", (250,), 12),
}
OUTPUTS: dict[str, FluidItem] = {
    "foley": _output(226559, "foley", (20, 40, 60, 100, 150, 250), 2),
    "void": _output(226560, "void", (150, 250, 350, 500), 6),
    "chest_tube": _output(226588, "chest tube #1", (10, 20, 40, 80), 4),
    "orogastric": _output(226576, "oral gastric", (50, 100, 200), 12),
    "stool": _output(226579, "stool", (100, 200, 300), 24),
    "drain": _output(226599, "jackson pratt #1", (10, 20, 50), 8),
    "evd": _output(226606, "cerebral ventricular #1", (2, 5, 10, 15), 4),
}

D_ITEMS: tuple[ChartItem, ...] = (
    HEART_RATE, SAO2, RESPIRATORY_RATE, TEMPERATURE, ABP_SYSTOLIC, ABP_DIASTOLIC, ABP_MEAN,
    NBP_SYSTOLIC, NBP_DIASTOLIC, NBP_MEAN, DAILY_WEIGHT, ADMISSION_WEIGHT, HEIGHT, *_CHART_ONLY,
    *(fluid.item for fluid in INPUTS.values()), *(fluid.item for fluid in OUTPUTS.values()),
)  # fmt: skip
