"""The project's external measurement of a model version: its figures on the data set's official test
split (another cohort, scored once), read from the model folder, never typed into page code.

``metadata.json``'s ``official_test`` holds them when finalize wrote them; otherwise
``models/external_test.json`` does, for the model version named in it. A file for another version
gives nothing: figures of one model are never shown as another's.
"""

from __future__ import annotations

import json
from pathlib import Path

from pneumonia.serving.metadata import ModelMetadata

EXTERNAL_TEST_FILE = "external_test.json"


def external_test(model_dir: str | Path, metadata: ModelMetadata) -> dict | None:
    """The official-test figures of this model version (accuracy, roc_auc, sensitivity, specificity,
    n, and what else was measured), or None when none were measured for it."""
    if metadata.official_test:
        return dict(metadata.official_test)
    path = Path(model_dir) / EXTERNAL_TEST_FILE
    try:
        figures = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); fix or remove it") from err
    if figures.get("model_version") != str(metadata.version):
        return None
    return figures


def expectation_words(external: dict, out_of_fold: dict) -> str:
    """Which figures a hospital should expect, in words."""
    return (
        f"**What a hospital should expect: the external figures.** On {external['n']} children of another "
        f"cohort the model kept its sensitivity ({external['sensitivity']:.1%}) but cleared fewer normals "
        f"(specificity {external['specificity']:.1%} against {out_of_fold['specificity']:.1%} out of fold), "
        f"with accuracy {external['accuracy']:.1%}. New patients are closer to that than to the out-of-fold "
        "figures, which come from the training hospital's own films. Measure your own before relying on it "
        "(Model performance > Your data)."
    )
