"""What the review page asks of the PACS: the chest radiograph studies a search finds (today's, the
last 24 hours', a patient's priors), who and when they are (for the reader's screen only), whether
results of this model are already in the PACS with their probability, the images of the chosen
studies (in memory), and the results of a read sent back into the study."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from pneumonia.core.decode import dicom_context
from pneumonia.pacs.config import PacsError
from pneumonia.pacs.dicomweb import InstanceRef, PacsClient, StudyQuery, qido_value
from pneumonia.pacs.identity import dicom_date, dicom_time, person_name_words
from pneumonia.pacs.results import Finding, heatmap_picture, read_report, result_objects, result_uids
from pneumonia.pacs.scoring import read_header

MAX_STUDIES = 50  # studies a search lists
MAX_IMAGES = 40  # images one "open" fetches into the page
MAX_RESULTS_READ = 8  # SRs read back per study to find the node's probability


@dataclass
class ChestStudy:
    """One study the search found, as the page lists it."""

    uid: str
    date: str  # YYYY-MM-DD
    accession: str
    description: str
    images: list[InstanceRef] = field(default_factory=list)
    time: str = ""  # HH:MM
    patient_name: str = ""  # "Family, Given": for the reader's screen only
    patient_id: str = ""
    results_in_pacs: int = 0  # SRs of this model found in the study (by QIDO)
    read_in_pacs: bool = False  # one of them carries a reader's read
    probability: float | None = None  # the highest probability those SRs give (the node's triage score)

    @property
    def when(self) -> str:
        return f"{self.date} {self.time}".strip()

    @property
    def started(self) -> datetime | None:
        try:
            return datetime.strptime(f"{self.date} {self.time or '00:00'}", "%Y-%m-%d %H:%M")
        except ValueError:
            return None

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
        who = f" · {self.patient_name}" if self.patient_name else ""
        return f"{self.when} · accession {self.accession or '(none)'}{who} · {len(self.images)} image(s)"

    def status(self, read_here: bool = False) -> str:
        """Unread, read here (the audit trail holds a read of one of its images), or results in the PACS."""
        if read_here:
            return "read here"
        if self.read_in_pacs:
            return "read (result in PACS)"
        return "AI result in PACS" if self.results_in_pacs else "unread"


def study_of(record: dict) -> ChestStudy:
    return ChestStudy(
        qido_value(record, "StudyInstanceUID"),
        dicom_date(qido_value(record, "StudyDate")),
        qido_value(record, "AccessionNumber"),
        qido_value(record, "StudyDescription"),
        time=dicom_time(qido_value(record, "StudyTime")),
        patient_name=person_name_words(qido_value(record, "PatientName")),
        patient_id=qido_value(record, "PatientID"),
    )


def today(now: datetime | None = None) -> StudyQuery:
    """Today's studies (the workstation's date)."""
    day = (now or datetime.now()).date()
    return StudyQuery(date_from=day, date_to=day)


def last_day(now: datetime | None = None) -> tuple[StudyQuery, datetime]:
    """The studies of yesterday and today, and the moment 24 hours ago (to keep only the last 24 hours)."""
    now = now or datetime.now()
    since = now - timedelta(hours=24)
    return StudyQuery(date_from=since.date(), date_to=now.date()), since


def since(studies: list[ChestStudy], moment: datetime) -> list[ChestStudy]:
    """The studies that started at or after ``moment`` (a study without a time counts from its date)."""
    return [s for s in studies if s.started is None or s.started >= moment]


def order_studies(studies: list[ChestStudy], by: str) -> list[ChestStudy]:
    """``by`` "time": earliest first (the order they arrived); "probability": the highest AI probability
    first, studies without one after them in time order."""
    by_time = sorted(studies, key=lambda s: (s.date, s.time, s.accession))
    if by == "probability":
        return sorted(by_time, key=lambda s: (s.probability is None, -(s.probability or 0.0)))
    return by_time


def find_chest_studies(client: PacsClient, query: StudyQuery, limit: int = MAX_STUDIES) -> list[ChestStudy]:
    """Studies matching ``query`` that hold CR/DX images (at most ``limit``), newest first."""
    found = []
    for record in client.studies(query):
        study = study_of(record)
        uid = study.uid
        for series in client.chest_series(uid):
            study.images.extend(
                client.instances(uid, qido_value(series, "SeriesInstanceUID"), qido_value(series, "Modality"))
            )
        if study.images:
            found.append(study)
        if len(found) >= limit:
            break
    return sorted(found, key=lambda s: (s.date, s.time), reverse=True)


def look_up_results(client: PacsClient, studies: list[ChestStudy], model_version: str) -> None:
    """Mark each study whose PACS holds SRs of this model (stored by this app or by the DICOM node that
    scores arrivals) with how many, whether one carries a reader's read, and the highest probability."""
    for study in studies:
        series = result_uids("", study.uid, Finding(model_version, "", 0.0))["sr_series"]
        held = sorted(client.existing(study.uid, series))
        study.results_in_pacs = len(held)
        probabilities = []
        for sop in held[:MAX_RESULTS_READ]:
            try:
                found = read_report(client.retrieve_dataset(study.uid, series, sop))
            except (PacsError, ValueError, AttributeError, IndexError):  # a result we cannot read: left out
                continue
            study.read_in_pacs |= "Reader agrees with the AI result" in found["codes"]
            if found["probability"] is not None:
                probabilities.append(found["probability"])
        study.probability = max(probabilities) if probabilities else None


def priors(client: PacsClient, patient_id: str, study_uid: str, limit: int = 10) -> list[ChestStudy]:
    """The patient's other chest radiograph studies, newest first (not the one open)."""
    if not patient_id:
        return []
    found = find_chest_studies(client, StudyQuery(patient_id=patient_id), limit + 1)
    return [s for s in found if s.uid != study_uid][:limit]


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
    picture = None
    if not finding.refused and pixels is not None:
        picture = heatmap_picture(pixels, cam, finding.model_version, finding=finding)
    objects = result_objects(header, finding, picture)
    held = set()
    for series in {str(o.SeriesInstanceUID) for o in objects}:
        held |= client.existing(str(header.StudyInstanceUID), series)
    missing = [o for o in objects if str(o.SOPInstanceUID) not in held]
    if missing:
        client.store(missing, str(header.StudyInstanceUID))
    return bool(missing)
