"""The hash chain that makes the audit trail tamper-evident.

Each row's ``row_hash`` is the SHA-256 of its canonical form, which includes ``prev_hash``, the row
hash of the row before it (the first row's ``prev_hash`` is 64 zeros). Changing, removing or
re-ordering any row breaks the chain from that row on; :func:`verify_rows` finds the first break.

The canonical form is defined so that SQLite and PostgreSQL give the same bytes for the same row:

- a JSON object of exactly :data:`HASHED_COLUMNS`, keys sorted, no spaces, UTF-8 (not ASCII-escaped);
- ``id`` as a JSON integer; ``reader_agrees`` and ``reader_verified`` as JSON true/false
  (SQLite's 0/1 are read as booleans first);
- ``threshold`` and ``probability`` as JSON strings holding Python's ``repr`` of the IEEE double
  (the shortest text that reads back as the same double: ``"0.5"``, ``"0.9123456789012345"``);
  both engines store an 8-byte double, so the value, and therefore the text, is the same;
- ``time`` as the ISO 8601 UTC text the row stores (``2026-11-30T21:13:20.123456+00:00``); a driver
  that hands back a datetime is converted to that same text (naive times are taken as UTC);
- every other column as its exact text.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

GENESIS = "0" * 64
HASHED_COLUMNS = (
    "id",
    "time",
    "image_sha256",
    "model_version",
    "operating_point",
    "threshold",
    "heatmap_method",
    "probability",
    "label",
    "reader_agrees",
    "comment",
    "reader",
    "reader_id",
    "reader_verified",
    "prev_hash",
)
_FLOATS = {"threshold", "probability"}
_BOOLS = {"reader_agrees", "reader_verified"}


def canonical_time(value: str | datetime) -> str:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat(timespec="microseconds")
    return str(value)


def canonical_float(value: float) -> str:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("the audit trail stores finite numbers only")
    return repr(number + 0.0)  # + 0.0 turns -0.0 into 0.0


def _canonical_value(column: str, value: object) -> object:
    if column == "id":
        return int(value)
    if column == "time":
        return canonical_time(value)
    if column in _FLOATS:
        return canonical_float(value)
    if column in _BOOLS:
        return bool(value)
    return "" if value is None else str(value)


def canonical(row: Mapping[str, object]) -> bytes:
    """The bytes that are hashed for ``row`` (see the module's docstring)."""
    fields = {column: _canonical_value(column, row[column]) for column in HASHED_COLUMNS}
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def row_hash(row: Mapping[str, object]) -> str:
    """SHA-256 (hex) of the row's canonical form, which carries the previous row's hash."""
    return hashlib.sha256(canonical(row)).hexdigest()


@dataclass(frozen=True)
class Verdict:
    rows: int
    ok: bool
    first_bad_row: int | None
    reason: str = ""

    def summary(self) -> dict:
        """What ``python -m pneumonia.audit verify`` prints."""
        return {"rows": self.rows, "ok": self.ok, "first_bad_row": self.first_bad_row}


def _first_break(row: Mapping[str, object], expected_id: int, previous_hash: str) -> tuple[int, str] | None:
    row_id = int(row["id"])
    if row_id != expected_id:
        return expected_id, f"row {expected_id} is missing (the next row present is {row_id})"
    if row["prev_hash"] != previous_hash:
        return row_id, f"row {row_id} does not follow row {row_id - 1} (inserted out of order)"
    if row["row_hash"] != row_hash(row):
        return row_id, f"row {row_id} was changed after it was written (its content no longer matches its hash)"
    return None


def verify_rows(rows: Iterable[Mapping[str, object]]) -> Verdict:
    """Walk the rows in id order; ids must run 1, 2, 3, ... with no gap (a gap is a removed row)."""
    count, previous_hash, broken = 0, GENESIS, None
    for row in rows:
        count += 1
        if broken is None:
            broken = _first_break(row, count, previous_hash)
            previous_hash = str(row["row_hash"])
    if broken is None:
        return Verdict(count, True, None, f"{count} rows, the chain is intact")
    return Verdict(count, False, broken[0], broken[1])
