"""Score DICOM instances from the PACS with the shipped pipeline and turn each outcome into the
objects that go back (SR, and SC with the heatmap): shared by the scoring run, the listener and
the review page."""

from __future__ import annotations

import io
import threading
from typing import TYPE_CHECKING

import numpy as np
import pydicom

from pneumonia.pacs.results import Finding, ReaderRead, heatmap_picture, result_objects
from pneumonia.serving import site_points
from pneumonia.serving.pipeline import score
from pneumonia.serving.results import ImageResult

if TYPE_CHECKING:
    from pneumonia.serving.model import Classifier


def read_header(data: bytes) -> pydicom.Dataset | None:
    """The DICOM header of an instance (no pixels), or None when it cannot be parsed."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
        _ = ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SOPClassUID
        return ds
    except Exception:  # a damaged object: the caller says so in words
        return None


def finding_of(result: ImageResult, model_version: str, point: str, read: ReaderRead | None = None) -> Finding:
    """The :class:`Finding` an ImageResult holds, at the threshold it was scored with."""
    if result.scored:
        return Finding(
            model_version=model_version,
            operating_point=point,
            threshold=float(result.threshold),
            probability=float(result.probability),
            label=result.label,
            bacterial_probability=result.bacterial_probability,
            read=read,
        )
    return Finding(model_version, point, float(result.threshold or 0.0), refused_reason=result.reason, read=read)


class InstanceScorer:
    """The classifier at one operating point, with the Grad-CAM heatmap of the pneumonia output."""

    def __init__(self, classifier: Classifier, operating_point: str | None = None):
        self.classifier = classifier
        points = site_points.operating_points(classifier.metadata)
        self.point = operating_point or classifier.default_operating_point
        if self.point not in points:
            raise ValueError(f"There is no operating point {self.point!r}; choose from {', '.join(points)}.")
        self.threshold = float(points[self.point]["threshold"])
        self._explainer = None
        self._lock = threading.Lock()

    @property
    def model_version(self) -> str:
        return self.classifier.version

    def score(self, named: list[tuple[str, bytes]]) -> list[ImageResult]:
        """As a folder run scores: a batch, or one by one when the batch fails."""
        try:
            return score(self.classifier, named, self.threshold)
        except Exception:
            out = []
            for name, data in named:
                try:
                    out.extend(score(self.classifier, [(name, data)], self.threshold))
                except Exception as err:  # one odd object must not stop the others
                    out.append(
                        ImageResult(name=name, threshold=self.threshold, error=f"It could not be scored ({err}).")
                    )
            return out

    def heatmap(self, result: ImageResult) -> np.ndarray | None:
        """Grad-CAM of the pneumonia output, [0, 1] at model-input size; None when the map is flat."""
        from pneumonia.serving.explain import explainer_for

        with self._lock:
            if self._explainer is None:
                self._explainer = explainer_for(self.classifier, "gradcam")
            heat = self._explainer(result.model_input)
        return None if heat.flat else heat.cam

    def result_objects(self, header: pydicom.Dataset, result: ImageResult, read: ReaderRead | None = None) -> list:
        """The SR (and SC when scored) of one instance."""
        finding = finding_of(result, self.model_version, self.point, read)
        picture = None
        if result.scored:
            picture = heatmap_picture(
                result.xray.full_pixels(), self.heatmap(result), self.model_version, finding=finding
            )
        return result_objects(header, finding, picture)
