"""The held-out measurement of each model version: its figures on the data set's own held-out test split
(624 children of the same hospital, never used for training, calibration or choosing thresholds),
read from ``models/external_test.json``, never typed into page code.

The file keeps one entry per model version (schema 2, documented in the README)::

    {"schema": 2, "versions": {"<model version>": {
        "n": 624, "roc_auc": 0.989,
        "operating_points": {"balanced": {"threshold": 0.648, "tp": 387, "fn": 3, "tn": 202, "fp": 32}, ...},
        "reliability": [{"low": 0.0, "high": 0.1, "n": 152, "mean_predicted": 0.022, "positives": 0}, ...],
        ...}}}

Counts, never rates: every interval is computed here (Wilson 95%). The older single-version file
(``model_version`` at the top) still reads. ``metadata.json``'s ``official_test``, when finalize wrote it,
is the current version's figures at its default point.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from scipy.stats import binomtest

from pneumonia.core.metrics import predictive_values_at_prevalence
from pneumonia.serving.metadata import ModelMetadata

EXTERNAL_TEST_FILE = "external_test.json"
SPLIT_WORDS = (
    "the data set's own held-out test split: 624 children of the same hospital (Guangzhou Women and "
    "Children's Medical Center), other children than the training pool; there is no second site"
)


def wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson 95% interval of k successes in n trials (never zero width; (nan, nan) for n = 0)."""
    if n <= 0:
        return float("nan"), float("nan")
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class PointCounts:
    """One operating point's confusion counts on a split, and what follows from them."""

    threshold: float
    tp: int
    fn: int
    tn: int
    fp: int

    @property
    def sensitivity(self) -> float:
        return self.tp / max(self.tp + self.fn, 1)

    @property
    def specificity(self) -> float:
        return self.tn / max(self.tn + self.fp, 1)

    def sensitivity_ci(self) -> tuple[float, float]:
        return wilson(self.tp, self.tp + self.fn)

    def specificity_ci(self) -> tuple[float, float]:
        return wilson(self.tn, self.tn + self.fp)

    def predictive_values(self, prevalence: float) -> dict[str, float]:
        """PPV and NPV at ``prevalence`` with the range the sensitivity's and specificity's intervals give
        (both rise with each, so the ends of the intervals give the ends of the range)."""
        ppv, npv = predictive_values_at_prevalence(self.sensitivity, self.specificity, prevalence)
        (se_lo, se_hi), (sp_lo, sp_hi) = self.sensitivity_ci(), self.specificity_ci()
        ppv_lo, _ = predictive_values_at_prevalence(se_lo, sp_lo, prevalence)
        ppv_hi, _ = predictive_values_at_prevalence(se_hi, sp_hi, prevalence)
        _, npv_lo = predictive_values_at_prevalence(se_lo, sp_lo, prevalence)
        _, npv_hi = predictive_values_at_prevalence(se_hi, sp_hi, prevalence)
        return {"ppv": ppv, "ppv_low": ppv_lo, "ppv_high": ppv_hi, "npv": npv, "npv_low": npv_lo, "npv_high": npv_hi}

    @classmethod
    def from_confusion(cls, threshold: float, confusion: list[list[int]]) -> PointCounts:
        """From ``[[tn, fp], [fn, tp]]`` (the layout of test_metrics.json)."""
        (tn, fp), (fn, tp) = confusion
        return cls(float(threshold), int(tp), int(fn), int(tn), int(fp))


@dataclass(frozen=True)
class HeldOut:
    """One model version's held-out figures."""

    version: str
    figures: dict
    points: dict[str, PointCounts] = field(default_factory=dict)
    bins: list[dict] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.figures.get("n") or sum(b["n"] for b in self.bins))

    @property
    def roc_auc(self) -> float | None:
        return self.figures.get("roc_auc")

    @property
    def ece(self) -> float | None:
        """Expected calibration error from the bins (n-weighted gap), else the recorded figure."""
        if self.bins:
            total = sum(b["n"] for b in self.bins)
            return sum(b["n"] * abs(b["mean_predicted"] - b["positives"] / b["n"]) for b in self.bins if b["n"]) / total
        return self.figures.get("ece")

    def point(self, name: str) -> PointCounts | None:
        return self.points.get(name)

    def accuracy(self, name: str) -> tuple[float, float, float] | None:
        """Accuracy at an operating point with its Wilson interval."""
        c = self.points.get(name)
        if c is None:
            return None
        right, n = c.tp + c.tn, c.tp + c.tn + c.fp + c.fn
        return (right / n, *wilson(right, n))

    def reliability_curve(self) -> dict:
        """The bins in the layout of test_metrics.json's calibration curves, with the films per bin."""
        used = [b for b in self.bins if b["n"]]
        return {
            "mean_predicted": [b["mean_predicted"] for b in used],
            "fraction_positive": [b["positives"] / b["n"] for b in used],
            "n": [b["n"] for b in used],
        }


def held_out_from(version: str, figures: dict) -> HeldOut:
    points = {
        name: PointCounts(float(p["threshold"]), int(p["tp"]), int(p["fn"]), int(p["tn"]), int(p["fp"]))
        for name, p in figures.get("operating_points", {}).items()
    }
    return HeldOut(str(version), figures, points, list(figures.get("reliability", [])))


def read_all(model_dir: str | Path) -> dict[str, HeldOut]:
    """Every model version's held-out figures in the file, by version (empty when there is no file)."""
    path = Path(model_dir) / EXTERNAL_TEST_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); fix or remove it") from err
    if "versions" in data:
        return {str(v): held_out_from(v, f) for v, f in data["versions"].items()}
    return {str(data["model_version"]): held_out_from(data["model_version"], data)} if "model_version" in data else {}


def held_out(model_dir: str | Path, metadata: ModelMetadata) -> HeldOut | None:
    """This model version's held-out figures, or None while they are pending for it: figures of one
    model version are never shown as another's."""
    if metadata.official_test:
        return held_out_from(str(metadata.version), dict(metadata.official_test))
    return read_all(model_dir).get(str(metadata.version))


def external_test(model_dir: str | Path, metadata: ModelMetadata) -> dict | None:
    """The held-out figures of this model version as a flat dict (accuracy, roc_auc, sensitivity,
    specificity and n at the default point, and what else was measured), or None when pending."""
    found = held_out(model_dir, metadata)
    if found is None:
        return None
    flat = {k: v for k, v in found.figures.items() if k not in ("operating_points", "reliability")}
    point = found.point(metadata.default_operating_point)
    if point is not None:
        accuracy, lo, hi = found.accuracy(metadata.default_operating_point)
        flat |= {"sensitivity": point.sensitivity, "specificity": point.specificity}
        flat |= {"accuracy": accuracy, "accuracy_ci95": [lo, hi]}
    if found.ece is not None:
        flat["ece"] = found.ece
    flat.setdefault("n", found.n)
    return flat


def expectation_words(external: dict, out_of_fold: dict) -> str:
    """Which figures a hospital should expect, in words."""
    return (
        f"**What a hospital should expect: the held-out figures.** On {external['n']} children the model never "
        f"saw (the same hospital's held-out test split) it kept its sensitivity ({external['sensitivity']:.1%}) "
        f"but cleared fewer normals (specificity {external['specificity']:.1%} against "
        f"{out_of_fold['specificity']:.1%} on the training pool), with accuracy {external['accuracy']:.1%}. "
        "New patients are closer to that than to the training pool's figures. Another hospital's will differ "
        "again: measure your own before relying on it (Model performance > Your data)."
    )


def percent_with_interval(value: float, low: float, high: float) -> str:
    """'99.2% (97.8-99.7%)': one decimal, the interval's ends in the same unit."""
    return f"{value:.1%} ({low * 100:.1f}-{high * 100:.1f}%)"


def point_name(name: str, operating_points: dict[str, dict]) -> str:
    return str(operating_points.get(name, {}).get("label") or name.replace("_", " ")).split(" (")[0]


def _training_pool(name: str, operating_points: dict[str, dict], by_point: dict | None = None) -> str:
    """The training pool's sensitivity / specificity at a point; a 100% (or 0%) comes with the Wilson bound its
    counts allow, so that no figure reads as certain."""
    point = operating_points.get(name, {})
    if "validation_sensitivity" not in point:
        return "not measured"
    words = [f"{point['validation_sensitivity']:.1%}", f"{point['validation_specificity']:.1%}"]
    confusion = ((by_point or {}).get(name) or {}).get("confusion_matrix")
    if confusion:
        c = PointCounts.from_confusion(point["threshold"], confusion)
        for i, (k, n) in enumerate(((c.tp, c.tp + c.fn), (c.tn, c.tn + c.fp))):
            lo, hi = wilson(k, n)
            if k == n:
                words[i] += f" (>= {lo:.1%})"
            elif k == 0:
                words[i] += f" (<= {hi:.1%})"
    return " / ".join(words)


def held_out_rows(
    found: HeldOut, operating_points: dict[str, dict], prevalence: float, training_pool: dict | None = None
) -> list[dict]:
    """The board's table: each operating point on the held-out split with Wilson intervals and counts,
    PPV and NPV at ``prevalence``, and the training pool's figures beside them."""
    rows = []
    for name, c in found.points.items():
        pv = c.predictive_values(prevalence)
        rows.append(
            {
                "operating point (threshold)": f"{point_name(name, operating_points)} ({c.threshold:.1%})",
                "pneumonia found (sensitivity)": percent_with_interval(c.sensitivity, *c.sensitivity_ci())
                + f", {c.tp} of {c.tp + c.fn}",
                "normals cleared (specificity)": percent_with_interval(c.specificity, *c.specificity_ci())
                + f", {c.tn} of {c.tn + c.fp}",
                f"PPV / NPV at {prevalence:.0%}": percent_with_interval(pv["ppv"], pv["ppv_low"], pv["ppv_high"])
                + f" / {pv['npv']:.1%}"
                + (f" (>= {pv['npv_low']:.1%})" if round(pv["npv"], 3) >= 1.0 else ""),
                "on the training pool (sens. / spec.)": _training_pool(name, operating_points, training_pool),
            }
        )
    return rows


def markdown_table(rows: list[dict]) -> str:
    """A list of dicts as a Markdown table: it wraps on a narrow screen instead of losing columns."""
    if not rows:
        return ""
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(r.get(k, "")) for k in head) + " |" for r in rows]
    return "\n".join(lines)


def alerts_in_words(found: HeldOut, name: str, prevalence: float) -> str:
    """What the PPV means for a reader: of every 100 alerts, how many are false."""
    c = found.point(name)
    if c is None:
        return ""
    ppv = c.predictive_values(prevalence)["ppv"]
    return (
        f"At {prevalence:.0%} prevalence, of every 100 films the {name.replace('_', ' ')} point calls pneumonia "
        f"about {round(100 * (1 - ppv))} are normal (PPV {ppv:.1%})."
    )
