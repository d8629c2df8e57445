"""What the review page asks of the PACS: the chest radiograph studies a search finds, with their
non-identifying DICOM context, the images of the chosen studies (in memory), and the results of a
read sent back into the study."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from pneumonia.core.decode import dicom_context
from pneumonia.pacs.dicomweb import InstanceRef, PacsClient, StudyQuery, qido_value
from pneumonia.pacs.results import Finding, heatmap_picture, result_objects
from pneumonia.pacs.scoring import read_header

MAX_STUDIES = 50  # studies a search lists
MAX_IMAGES = 40  # images one "open" fetches into the page


@dataclass
class ChestStudy:
    """One study the search found, as the page lists it."""

    uid: str
    date: str  # YYYY-MM-DD
    accession: str
    description: str
    images: list[InstanceRef] = field(default_factory=list)

    def facts(self) -> dict[str, str]:
        """Age, sex and views in words (from the images' headers)."""
        first = self.images[0] if self.images else InstanceRef("", "", "")
        context = dicom_context({"PatientAge": first.age, "PatientSex": first.sex})
        views = sorted({r.view for r in self.images if r.view}) or ["not given"]
        return {
            "Age": context.get("Age", "not given"),
            "Sex": context.get("Sex", "not given"),
            "Views": ", ".join(views),
        }

    @property
    def label(self) -> str:
        return f"{self.date} · accession {self.accession or '(none)'} · {len(self.images)} image(s)"


def _date(text: str) -> str:
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else text


def find_chest_studies(client: PacsClient, query: StudyQuery, limit: int = MAX_STUDIES) -> list[ChestStudy]:
    """Studies matching ``query`` that hold CR/DX images (at most ``limit``), newest first."""
    found = []
    for record in client.studies(query):
        uid = qido_value(record, "StudyInstanceUID")
        study = ChestStudy(
            uid,
            _date(qido_value(record, "StudyDate")),
            qido_value(record, "AccessionNumber"),
            qido_value(record, "StudyDescription"),
        )
        for series in client.chest_series(uid):
            study.images.extend(
                client.instances(uid, qido_value(series, "SeriesInstanceUID"), qido_value(series, "Modality"))
            )
        if study.images:
            found.append(study)
        if len(found) >= limit:
            break
    return sorted(found, key=lambda s: s.date, reverse=True)


def fetch_images(
    client: PacsClient, studies: list[ChestStudy], progress: Callable[[int, int], None] | None = None
) -> tuple[list[tuple[InstanceRef, bytes]], int]:
    """The images of ``studies`` (at most MAX_IMAGES), in memory; and how many were left out."""
    refs = [r for s in studies for r in sorted(s.images, key=lambda r: r.number or 0)]
    fetched = []
    for i, ref in enumerate(refs[:MAX_IMAGES]):
        fetched.append((ref, client.retrieve(ref)))
        if progress:
            progress(i + 1, min(len(refs), MAX_IMAGES))
    return fetched, max(0, len(refs) - MAX_IMAGES)


def send_results(
    client: PacsClient, data: bytes, finding: Finding, pixels: np.ndarray | None, cam: np.ndarray | None
) -> bool:
    """Store the SR (and heatmap SC) of one image into its study; False when the PACS already held
    them (the same read of the same image by the same model)."""
    header = read_header(data)
    if header is None:
        raise ValueError("The image's DICOM header cannot be read, so no result can point at it.")
    picture = None if finding.refused or pixels is None else heatmap_picture(pixels, cam, finding.model_version)
    objects = result_objects(header, finding, picture)
    held = set()
    for series in {str(o.SeriesInstanceUID) for o in objects}:
        held |= client.existing(str(header.StudyInstanceUID), series)
    missing = [o for o in objects if str(o.SOPInstanceUID) not in held]
    if missing:
        client.store(missing, str(header.StudyInstanceUID))
    return bool(missing)
