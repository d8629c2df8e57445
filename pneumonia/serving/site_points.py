"""Operating points a site chose on its own validated images, beside the shipped ones.

Kept in a small JSON file beside the audit trail (the folder of ``pneumonia.audit.default_path()``,
which follows ``$PNEUMONIA_AUDIT_DB``), or where ``$PNEUMONIA_SITE_POINTS`` says. A site point
belongs to the model version it was chosen for and is offered only with that model, and only when it
was chosen on at least :data:`MIN_PER_CLASS` labelled images of each class: from fewer, the
thresholds are too unsettled for clinical use (20 images once re-chose every point as the same value
and claimed 100% sensitivity).
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

from pneumonia.audit import default_path as audit_default_path
from pneumonia.core.operating_points import CUSTOM, ThresholdChoice, resolve_threshold
from pneumonia.serving.metadata import ModelMetadata

ENV_VAR = "PNEUMONIA_SITE_POINTS"
PREFIX = "site_"
FILE_NAME = "site_operating_points.json"
MIN_PER_CLASS = 100  # labelled images of each class before a site threshold may be saved and offered


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
    """Saved with enough images of each class (points saved before the counts were kept are not offered)."""
    return not too_few(int(point.get("n_pneumonia", 0)), int(point.get("n_normal", 0)))


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


def key_for(name: str) -> str:
    slug = re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")
    if not slug:
        raise ValueError("give the operating point a name (letters or digits)")
    return PREFIX + slug


def save_site_point(
    name: str,
    threshold: float,
    *,
    model_version: str,
    sensitivity: float,
    specificity: float,
    n_pneumonia: int,
    n_normal: int,
    path: Path | None = None,
) -> str:
    """Add (or replace, by name and model version) a site point; returns its key. Refused (ValueError,
    in words) when chosen on fewer than :data:`MIN_PER_CLASS` images of either class."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"a threshold is a probability between 0 and 1, not {threshold}")
    if too_few(n_pneumonia, n_normal):
        raise ValueError(too_few(n_pneumonia, n_normal))
    key = key_for(name)
    if key == PREFIX + CUSTOM:
        raise ValueError("'custom' is reserved; choose another name")
    path = path or default_path()
    points = [p for p in _read(path) if not (p.get("key") == key and p.get("model_version") == model_version)]
    points.append(
        {
            "key": key,
            "name": name.strip(),
            "threshold": float(threshold),
            "model_version": model_version,
            "sensitivity": float(sensitivity),
            "specificity": float(specificity),
            "n": int(n_pneumonia) + int(n_normal),
            "n_pneumonia": int(n_pneumonia),
            "n_normal": int(n_normal),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"points": points}, indent=2))
    os.replace(tmp, path)
    return key
