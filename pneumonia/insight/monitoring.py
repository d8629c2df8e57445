"""Monitoring after go-live, from the audit trail and scored results: reads per week, reader agreement
with the AI by result, the share the input check refused, and whether the probabilities drift from the
held-out test split's, with an alert; exported as CSV and PDF for the board.

Drift: a site's mix of pneumonia and normal differs from the held-out split's (62% pneumonia), and that
alone moves the probabilities. So the reference is the held-out split's pneumonia and normal
distributions mixed at the prevalence that fits the site's reads best (its own estimate, reported), and
the alert asks whether the site's distribution departs from *that* (population stability index, PSI).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from pneumonia.insight.external_test import HeldOut, wilson

EDGES = np.linspace(0.0, 1.0, 11)
READ_LABELS = ("PNEUMONIA", "NORMAL")  # the audit trail's reads; other labels are site-point events
PSI_WATCH, PSI_ALERT = 0.10, 0.25  # the usual population-stability bands: stable, watch, shifted
MIN_READS_FOR_DRIFT = 50


def reads_only(audit: pd.DataFrame, model_version: str | None = None) -> pd.DataFrame:
    """The reads of the audit trail (not its site-point events), of one model version when given."""
    reads = audit[audit["label"].isin(READ_LABELS)].copy()
    if model_version is not None:
        reads = reads[reads["model_version"] == model_version]
    reads["time"] = pd.to_datetime(reads["time"], utc=True, format="ISO8601")
    return reads


def reads_per_week(reads: pd.DataFrame) -> pd.DataFrame:
    """Reads, readers and the share agreeing with the AI, per week (weeks start on Monday, UTC)."""
    if reads.empty:
        return pd.DataFrame(columns=["week", "reads", "readers", "agree with the AI"])
    week = reads["time"].dt.tz_convert(None).dt.to_period("W-SUN").dt.start_time.dt.date
    grouped = reads.groupby(week)
    return pd.DataFrame(
        {
            "week": [str(w) for w in grouped.size().index],
            "reads": grouped.size().to_numpy(),
            "readers": grouped["reader"].nunique().to_numpy(),
            "agree with the AI": grouped["reader_agrees"].mean().to_numpy(),
        }
    )


def agreement_by_result(reads: pd.DataFrame) -> pd.DataFrame:
    """How often readers agreed with each AI result, with Wilson 95% intervals."""
    rows = []
    for label in READ_LABELS:
        of = reads[reads["label"] == label]
        agree, n = int(of["reader_agrees"].sum()), len(of)
        lo, hi = wilson(agree, n)
        rows.append(
            {"AI result": label, "reads": n, "reader agreed": agree, "share": agree / n if n else np.nan}
            | {"95% CI low": lo, "95% CI high": hi}
        )
    return pd.DataFrame(rows)


def refused_share(results: pd.DataFrame | None) -> dict | None:
    """Of the files the site scored (``pneumonia.score`` results), the share the input check refused."""
    if results is None or "status" not in results or results.empty:
        return None
    refused, n = int((results["status"] == "refused").sum()), len(results)
    lo, hi = wilson(refused, n)
    return {
        "files": n,
        "refused": refused,
        "unreadable": int((results["status"] == "unreadable").sum()),
        "share": refused / n,
        "low": lo,
        "high": hi,
    }


def reference_from_held_out(found: HeldOut) -> tuple[np.ndarray, np.ndarray]:
    """Pneumonia and normal films per probability bin on the held-out split (equal-width tenths)."""
    pos = np.array([b["positives"] for b in found.bins], float)
    return pos, np.array([b["n"] for b in found.bins], float) - pos


def reference_from_predictions(predictions: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The same from per-film predictions with labels (the training pool's, while held-out is pending)."""
    p, y = predictions["probability"].to_numpy(), predictions["label"].to_numpy()
    return np.histogram(p[y == 1], EDGES)[0].astype(float), np.histogram(p[y == 0], EDGES)[0].astype(float)


def _share(counts: np.ndarray) -> np.ndarray:
    smoothed = counts + 0.5  # no empty bin: the PSI's logarithm needs every share above zero
    return smoothed / smoothed.sum()


def fit_prevalence(site: np.ndarray, pos: np.ndarray, neg: np.ndarray, steps: int = 200) -> float:
    """The pneumonia share whose mixture of the reference distributions best explains the site's counts (EM)."""
    f1, f0, prevalence = _share(pos), _share(neg), 0.5
    for _ in range(steps):
        weight = prevalence * f1 / (prevalence * f1 + (1 - prevalence) * f0)
        prevalence = float((site * weight).sum() / max(site.sum(), 1))
    return min(max(prevalence, 0.0), 1.0)


def psi(observed: np.ndarray, expected: np.ndarray) -> float:
    """Population stability index between two distributions over the same bins."""
    o, e = _share(observed), expected / expected.sum()
    return float(((o - e) * np.log(o / e)).sum())


def drift(probabilities: np.ndarray, reference: tuple[np.ndarray, np.ndarray], reference_name: str) -> dict:
    """The site's probabilities against the reference mixed at the best-fitting prevalence, with a verdict."""
    site = np.histogram(np.asarray(probabilities, float), EDGES)[0].astype(float)
    pos, neg = reference
    prevalence = fit_prevalence(site, pos, neg)
    expected = prevalence * _share(pos) + (1 - prevalence) * _share(neg)
    index = psi(site, expected)
    n = int(site.sum())
    if n < MIN_READS_FOR_DRIFT:
        state = "too few"
    else:
        state = "alert" if index >= PSI_ALERT else "watch" if index >= PSI_WATCH else "stable"
    return {
        "site": site,
        "expected": expected * n,
        "prevalence": prevalence,
        "psi": index,
        "n": n,
        "state": state,
        "reference": reference_name,
    }


def drift_words(d: dict) -> str:
    if d["state"] == "too few":
        return (
            f"{d['n']} reads of this model version in this period: fewer than {MIN_READS_FOR_DRIFT}, too few to "
            "judge drift."
        )
    base = (
        f"{d['n']} reads of this model version against the {d['reference']}, mixed at {d['prevalence']:.0%} "
        f"pneumonia (the mix that fits these reads best): population stability index {d['psi']:.2f}"
    )
    return (
        base
        + {
            "stable": f" (below {PSI_WATCH}): no sign of drift.",
            "watch": f" (between {PSI_WATCH} and {PSI_ALERT}): a moderate shift; watch the next weeks.",
            "alert": f" (at or above {PSI_ALERT}): DRIFT ALERT. The probabilities no longer look like the held-out "
            "split's at any prevalence: check the films (new equipment, protocol, population) and re-run the local "
            "validation before relying on the model.",
        }[d["state"]]
    )


@dataclass
class Monitoring:
    weekly: pd.DataFrame
    agreement: pd.DataFrame
    refused: dict | None
    drift: dict
    model_version: str
    first_day: str
    last_day: str


def monitor(
    audit: pd.DataFrame,
    model_version: str,
    reference: tuple[np.ndarray, np.ndarray],
    reference_name: str,
    results: pd.DataFrame | None = None,
    days: tuple[str, str] = ("", ""),
) -> Monitoring:
    """Everything the monitoring view shows, from an audit-trail frame (``AuditLog.between``)."""
    every = reads_only(audit)
    current = every[every["model_version"] == model_version]
    return Monitoring(
        weekly=reads_per_week(every),
        agreement=agreement_by_result(current),
        refused=refused_share(results),
        drift=drift(current["probability"].to_numpy(), reference, reference_name),
        model_version=model_version,
        first_day=days[0],
        last_day=days[1],
    )


def summary_rows(m: Monitoring) -> list[dict]:
    """The figures in one table: what the CSV export and the PDF carry."""
    rows = [
        {"figure": "model version", "value": m.model_version},
        {"figure": "period", "value": f"{m.first_day} to {m.last_day}"},
    ]
    rows += [
        {
            "figure": f"reads, week of {r['week']}",
            "value": f"{r['reads']} by {r['readers']} readers, {r['agree with the AI']:.0%} agree with the AI",
        }
        for _, r in m.weekly.iterrows()
    ]
    rows += [
        {
            "figure": f"reader agreed with AI {r['AI result']}",
            "value": f"{r['reader agreed']} of {r['reads']}"
            + (f" ({r['share']:.1%}, {r['95% CI low']:.1%}-{r['95% CI high']:.1%})" if r["reads"] else ""),
        }
        for _, r in m.agreement.iterrows()
    ]
    if m.refused:
        rows.append(
            {
                "figure": "refused by the input check",
                "value": f"{m.refused['refused']} of {m.refused['files']} "
                f"({m.refused['share']:.1%}, {m.refused['low']:.1%}-{m.refused['high']:.1%})",
            }
        )
    rows.append({"figure": "drift", "value": drift_words(m.drift)})
    return rows


def monitoring_csv(m: Monitoring) -> bytes:
    return pd.DataFrame(summary_rows(m)).to_csv(index=False).encode()


def monitoring_pdf(m: Monitoring, site_name: str = "") -> bytes:
    """The monitoring summary on one page for the board (no patient identifiers: the audit trail has none)."""
    from fpdf import FPDF

    from pneumonia.insight.report import DISCLAIMER

    pdf = FPDF(format="A4")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 15)
    pdf.cell(0, 9, "Monitoring of the pneumonia model after go-live", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    pdf.cell(0, 5, f"Generated {when}" + (f"  |  {site_name}" if site_name else ""), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("Helvetica", "", 8.5)
    with pdf.table(text_align="LEFT", line_height=4.5, col_widths=(45, 135)) as table:
        table.row(["figure", "value"])
        for row in summary_rows(m):
            table.row([str(row["figure"]), str(row["value"])])
    pdf.ln(3)
    pdf.set_font("Helvetica", "", 8)
    pdf.multi_cell(0, 4, DISCLAIMER)
    return bytes(pdf.output())
