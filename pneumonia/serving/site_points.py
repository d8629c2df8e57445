"""Operating points a site chose on its own validated images, beside the shipped ones.

Kept in a small JSON file beside the audit trail (the folder of ``pneumonia.audit.default_path()``,
which follows ``$PNEUMONIA_AUDIT_DB``), or where ``$PNEUMONIA_SITE_POINTS`` says. A site point
belongs to the model version it was chosen for and is offered only with that model, and only when it
was chosen on at least :data:`MIN_PER_CLASS` labelled images of each class: from fewer, the
thresholds are too unsettled for clinical use (20 images once re-chose every point as the same value
and claimed 100% sensitivity).

Each point carries its provenance: who saved it (name and the provider's subject), when, and from
which results (their SHA-256 and row count); a retired point stays in the file with who retired it and
when, and is no longer offered. A name in use is never silently replaced. Saving and retiring are
also appended to the audit trail (a row whose ``label`` says "site point saved" or "site point
retired", whose ``image_sha256`` is the results' SHA-256, and whose reader is who did it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from pneumonia.audit import AuditLog
from pneumonia.audit import default_path as audit_default_path
from pneumonia.core.operating_points import CUSTOM, ThresholdChoice, resolve_threshold
from pneumonia.serving.metadata import ModelMetadata

ENV_VAR = "PNEUMONIA_SITE_POINTS"
PREFIX = "site_"
FILE_NAME = "site_operating_points.json"
MIN_PER_CLASS = 100  # labelled images of each class before a site threshold may be saved and offered
UNKNOWN_RESULTS = "0" * 64  # the results' SHA-256 of a point saved before provenance was kept
SAVED, RETIRED = "site point saved", "site point retired"  # the audit trail's label for each event


@dataclass(frozen=True)
class Provenance:
    """Who saves or retires a point, and from which results."""

    by: str  # the name shown (signed-in display name or typed name)
    by_id: str = ""  # the identity provider's stable subject; "" without sign-in
    verified: bool = False  # True only when the identity came from sign-in
    results_sha256: str = UNKNOWN_RESULTS
    results_rows: int = 0


def default_path() -> Path:
    """``$PNEUMONIA_SITE_POINTS``, or the file beside the audit trail (as the README says)."""
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else audit_default_path().parent / FILE_NAME


def too_few(n_pneumonia: int, n_normal: int) -> str:
    """Why a threshold chosen on these counts may not be used clinically; "" when they are enough."""
    if min(n_pneumonia, n_normal) >= MIN_PER_CLASS:
        return ""
    return (
        f"Chosen on {n_pneumonia} pneumonia and {n_normal} normal images: at least {MIN_PER_CLASS} of each are "
        "needed before a site threshold is saved for clinical use."
    )


def _offered(point: dict) -> bool:
    """Not retired, and saved with enough images of each class (points saved before the counts were kept
    are not offered)."""
    return not point.get("retired") and not too_few(int(point.get("n_pneumonia", 0)), int(point.get("n_normal", 0)))


def _read(path: Path) -> list[dict]:
    try:
        return list(json.loads(path.read_text()).get("points", []))
    except FileNotFoundError:
        return []
    except (ValueError, AttributeError):
        return []  # a damaged file offers no site points rather than breaking the review page


def site_points(model_version: str, path: Path | None = None) -> dict[str, dict]:
    """This model version's site points, in the same form as the shipped operating points."""
    out = {}
    for p in _read(path or default_path()):
        if p.get("model_version") != model_version or not _offered(p):
            continue
        out[p["key"]] = {
            "label": f"Site: {p['name']} (chosen on {p['n']} of your images)",
            "threshold": float(p["threshold"]),
            "validation_sensitivity": p.get("sensitivity"),
            "validation_specificity": p.get("specificity"),
            "validated_on": f"your site's {p['n']} labelled images",
            "site": True,
        }
    return out


def operating_points(metadata: ModelMetadata, path: Path | None = None) -> dict[str, dict]:
    """The shipped operating points followed by the site's, for pickers and the archive's label columns."""
    return {**metadata.operating_points, **site_points(str(metadata.version), path)}


def resolve(
    metadata: ModelMetadata, operating_point: str | None = None, custom_threshold: float | None = None
) -> ThresholdChoice:
    """Like :meth:`ModelMetadata.resolve_threshold`, knowing the site points too."""
    return resolve_threshold(
        operating_points(metadata), metadata.default_operating_point, operating_point, custom_threshold
    )


# a site point's name: letters, digits, spaces and a little punctuation, starting with a letter or digit
# (it is shown in pickers, sentences and exports: nothing in it can be Markdown, HTML or a formula)
NAME = re.compile(r"[^\W_][\w ,.'()/&-]{0,59}")


def key_for(name: str) -> str:
    if not NAME.fullmatch(name.strip()):
        raise ValueError(
            "A site operating point's name is up to 60 letters, digits, spaces and , . ' ( ) / & - "
            "and starts with a letter or digit, e.g. 'Our ED, high sensitivity'."
        )
    slug = re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")
    if not slug:
        raise ValueError("give the operating point a name (letters or digits)")
    return PREFIX + slug


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[list[dict]]:
    """The points file's points, read and written back under an exclusive lock (two administrators saving
    at once cannot lose each other's point)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        points = _read(path)
        yield points
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps({"points": points}, indent=2))
        os.replace(tmp, path)


def _in_use(points: list[dict], key: str, model_version: str) -> dict | None:
    return next(
        (p for p in points if p.get("key") == key and p.get("model_version") == model_version and not p.get("retired")),
        None,
    )


def _record(audit: AuditLog | None, event: str, point: dict, who: Provenance, results_sha256: str) -> None:
    """Append the save or the retirement to the audit trail (nothing when no trail is given)."""
    if audit is None:
        return
    audit.record(
        image_sha256=results_sha256,
        model_version=point["model_version"],
        operating_point=point["key"],
        threshold=point["threshold"],
        heatmap_method="",
        probability=0.0,
        label=event,
        reader_agrees=True,
        comment=f"{point['name']}; from {point.get('results_rows', 0)} results rows",
        reader=who.by,
        reader_id=who.by_id,
        reader_verified=who.verified,
    )


def save_site_point(
    name: str,
    threshold: float,
    *,
    model_version: str,
    sensitivity: float,
    specificity: float,
    n_pneumonia: int,
    n_normal: int,
    provenance: Provenance | None = None,
    audit: AuditLog | None = None,
    path: Path | None = None,
) -> str:
    """Add a site point with its provenance (and to ``audit``); returns its key. Refused (ValueError, in
    words) when chosen on fewer than :data:`MIN_PER_CLASS` images of either class, or when a point of
    that name is in use for this model (retire it first: it is never silently replaced)."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"a threshold is a probability between 0 and 1, not {threshold}")
    if too_few(n_pneumonia, n_normal):
        raise ValueError(too_few(n_pneumonia, n_normal))
    key = key_for(name)
    if key == PREFIX + CUSTOM:
        raise ValueError("'custom' is reserved; choose another name")
    who = provenance or Provenance(by="unknown")
    point = {
        "key": key,
        "name": name.strip(),
        "threshold": float(threshold),
        "model_version": model_version,
        "sensitivity": float(sensitivity),
        "specificity": float(specificity),
        "n": int(n_pneumonia) + int(n_normal),
        "n_pneumonia": int(n_pneumonia),
        "n_normal": int(n_normal),
        "created": _now(),
        "saved_by": {"name": who.by, "subject": who.by_id, "verified": who.verified},
        "results_sha256": who.results_sha256,
        "results_rows": int(who.results_rows),
    }
    with _locked(path or default_path()) as points:
        if _in_use(points, key, model_version):
            raise ValueError(
                f"A site operating point named '{point['name']}' is already offered for this model; "
                "retire it first or choose another name."
            )
        _record(audit, SAVED, point, who, who.results_sha256)
        points.append(point)
    return key


def retire_site_point(
    key: str, *, model_version: str, provenance: Provenance, audit: AuditLog | None = None, path: Path | None = None
) -> None:
    """Stop offering a site point: it stays in the file with who retired it and when (and goes to ``audit``)."""
    with _locked(path or default_path()) as points:
        point = _in_use(points, key, model_version)
        if point is None:
            raise ValueError("That site operating point is not offered for this model (already retired?).")
        _record(audit, RETIRED, point, provenance, point.get("results_sha256", UNKNOWN_RESULTS))
        point["retired"] = {"time": _now(), **asdict(provenance)}


def saved_points(model_version: str, path: Path | None = None) -> list[dict]:
    """Every point saved for this model, retired ones too, with their provenance (for the administrator)."""
    return [p for p in _read(path or default_path()) if p.get("model_version") == model_version]
