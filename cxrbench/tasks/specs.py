"""The evaluation tasks, named ``<dataset>-<setting>``, in an explicit registry."""

from __future__ import annotations

from dataclasses import dataclass

from cxrbench.models.base import ClassSpec
from medslip.vocab import NIH_TO_OBSERVATION

SETTINGS = {
    "zs": "zero-shot classification",
    "ground": "zero-shot grounding",
    "ft": "fine-tuning classification (label fractions)",
    "seg": "segmentation (label fractions)",
}
METRICS = {
    "zs": ("auc", "auprc", "f1", "accuracy"),
    "ft": ("auc", "auprc", "f1", "accuracy"),
    "ground": ("pointing_game", "iou", "dice"),
    "seg": ("mean_dice", "mean_dice_positive"),
}
#: The metric a leaderboard cell shows first, per setting.
PRIMARY_METRIC = {"zs": "auc", "ft": "auc", "ground": "pointing_game", "seg": "mean_dice"}


def _prompts(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    words = name.replace("_", " ").lower()
    return ((f"There is {words}.", f"Findings consistent with {words}.", f"{words.capitalize()} is present."),
            (f"There is no {words}.", f"No evidence of {words}.", f"No {words}."))


def _spec(label: str, query: str | None = None, description: str | None = None) -> ClassSpec:
    pos, neg = _prompts(label)
    return ClassSpec(label, query, description, pos, neg)


NIH_CLASSES = tuple(_spec(label, query) for label, query in NIH_TO_OBSERVATION.items())
#: NIH classes that have boxes in BBox_List_2017.csv.
NIH_BOX_CLASSES = ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
                   "Pneumothorax")
COVID_DESCRIPTION = ("COVID-19 pneumonia: bilateral, peripheral and lower-zone ground-glass opacities and "
                     "consolidation of the lungs.")


@dataclass(frozen=True)
class TaskSpec:
    name: str
    dataset: str
    setting: str
    classes: tuple[ClassSpec, ...]
    region: str | None = None  # "boxes" or "masks" for ground / seg
    notes: str = ""

    @property
    def metrics(self) -> tuple[str, ...]:
        return METRICS[self.setting]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(c.label for c in self.classes)


def _tasks() -> dict[str, TaskSpec]:
    nih_box = tuple(c for c in NIH_CLASSES if c.label in NIH_BOX_CLASSES)
    rsna = (_spec("Pneumonia", "pneumonia"),)
    siim = (_spec("Pneumothorax", "pneumothorax"),)
    covid = (_spec("COVID-19", None, COVID_DESCRIPTION),)
    specs = [
        TaskSpec("nih-zs", "nih-cxr14", "zs", NIH_CLASSES, notes="published NIH -> observation mapping"),
        TaskSpec("nih-ground", "nih-cxr14", "ground", nih_box, "boxes", "the NIH box subset (BBox_List_2017)"),
        TaskSpec("nih-ft", "nih-cxr14", "ft", NIH_CLASSES),
        TaskSpec("rsna-zs", "rsna-pneumonia", "zs", rsna),
        TaskSpec("rsna-ground", "rsna-pneumonia", "ground", rsna, "boxes"),
        TaskSpec("rsna-ft", "rsna-pneumonia", "ft", rsna),
        TaskSpec("siim-zs", "siim-acr", "zs", siim),
        TaskSpec("siim-ground", "siim-acr", "ground", siim, "masks"),
        TaskSpec("siim-ft", "siim-acr", "ft", siim),
        TaskSpec("siim-seg", "siim-acr", "seg", siim, "masks", "U-Net (MONAI decoder) on the pretrained encoder"),
        TaskSpec("covidx-zs", "covidx-cxr4", "zs", covid, notes="COVID-19 is an unseen class: a new query "
                 "from its description"),
        TaskSpec("covidx-ft", "covidx-cxr4", "ft", covid),
    ]
    return {s.name: s for s in specs}


TASKS: dict[str, TaskSpec] = _tasks()


def get_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(TASKS)}") from None
