"""One row per file, without patient identifiers: the results table's schema and how an
:class:`~pneumonia.serving.results.ImageResult` becomes a row."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import pyarrow as pa

from pneumonia.core.decode import sha256_of
from pneumonia.core.labels import label_at
from pneumonia.serving.archive.discover import Item
from pneumonia.serving.results import ImageResult

BASE_FIELDS = [
    pa.field("file", pa.string()),  # path relative to the input (or its SHA-256 with hash_paths)
    pa.field("sha256", pa.string()),  # of the file's bytes; null when the file could not be read
    pa.field("status", pa.string()),  # scored, refused or unreadable
    pa.field("probability", pa.float64()),  # calibrated; null when refused or unreadable
    pa.field("probability_ungated", pa.float64()),  # the model's score even when refused (validation only)
    pa.field("bacterial_probability", pa.float64()),  # when the model has a bacterial-vs-viral output
    pa.field("gate_ok", pa.bool_()),  # null when unreadable
    pa.field("gate_reason", pa.string()),
    pa.field("error", pa.string()),  # why the file could not be read, in words
    pa.field("truth", pa.int8()),  # 1 pneumonia, 0 normal, null unknown
    pa.field("model_version", pa.string()),
]


def label_column(point: str) -> str:
    """The results column holding the label at an operating point."""
    return "label_" + re.sub(r"[^0-9A-Za-z_]+", "_", point).strip("_").lower()


@dataclass(frozen=True)
class RowSpec:
    """What every row of one results file shares: model, operating points and whether paths are hashed."""

    model_version: str
    thresholds: dict[str, float]  # operating point -> threshold, one label column each
    hash_paths: bool = False
    default_point: str = ""
    extra: dict = field(default_factory=dict)

    def schema(self) -> pa.Schema:
        labels = [pa.field(label_column(p), pa.string()) for p in self.thresholds]
        return pa.schema(BASE_FIELDS + labels)

    def file_value(self, relative: str) -> str:
        return hashlib.sha256(relative.encode()).hexdigest() if self.hash_paths else relative


def result_row(item: Item, result: ImageResult, spec: RowSpec, data: bytes | None) -> dict:
    """The row of one file; the probability is null unless the gate accepted the image."""
    sha = result.xray.sha256 if result.xray is not None else (sha256_of(data) if data else None)
    prob = result.probability if result.scored else None
    row = {
        "file": spec.file_value(item.file),
        "sha256": sha,
        "status": result.status,
        "probability": prob,
        "probability_ungated": result.probability if result.error is None else None,
        "bacterial_probability": getattr(result, "bacterial_probability", None) if result.scored else None,
        "gate_ok": result.gate.ok if result.gate is not None else None,
        "gate_reason": " ".join(result.gate.reasons) if result.gate is not None and not result.gate.ok else None,
        "error": result.error,
        "truth": item.truth,
        "model_version": spec.model_version,
    }
    for point, threshold in spec.thresholds.items():
        row[label_column(point)] = label_at(prob, threshold) if prob is not None else None
    return row


def to_table(rows: list[dict], spec: RowSpec) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=spec.schema())
