"""Operating points a site chose on its own validated images, beside the shipped ones.

Kept in a small JSON file in the user's data folder (next to the audit trail), or where
``$PNEUMONIA_SITE_POINTS`` says. A site point belongs to the model version it was chosen for and
is offered only with that model.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

from platformdirs import user_data_dir

from pneumonia.core.operating_points import CUSTOM, ThresholdChoice, resolve_threshold
from pneumonia.serving.metadata import ModelMetadata

ENV_VAR = "PNEUMONIA_SITE_POINTS"
PREFIX = "site_"


def default_path() -> Path:
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else Path(user_data_dir("pneumonia-review", appauthor=False)) / "site_operating_points.json"


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
        if p.get("model_version") != model_version:
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
    n: int,
    path: Path | None = None,
) -> str:
    """Add (or replace, by name and model version) a site point; returns its key."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"a threshold is a probability between 0 and 1, not {threshold}")
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
            "n": int(n),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"points": points}, indent=2))
    os.replace(tmp, path)
    return key
