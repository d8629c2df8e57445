"""Chest radiograph studies for the PACS tests, built from the real samples in assets/samples:
DICOM with proper CR/DX/CT SOP classes and study/series UIDs, loaded into a test Orthanc."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.uid import generate_uid

from tests.dicom_factory import make_dicom

SOP_CLASSES = {
    "CR": "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography Image Storage
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray Image Storage - For Presentation
    "CT": "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
}


@dataclass
class PacsStudy:
    accession: str
    patient_id: str
    study_uid: str
    study_date: str
    instances: dict[str, bytes] = field(default_factory=dict)  # SOPInstanceUID -> DICOM bytes
    patient_name: str = ""  # DICOM form, "Family^Given"; empty keeps make_dicom's
    study_time: str = "101500"
    description: str = ""
    kinds: dict[str, str] = field(default_factory=dict)  # SOPInstanceUID -> what it is (for test messages)
    modality_of: dict[str, str] = field(default_factory=dict)

    def chest(self) -> list[str]:
        return [sop for sop, m in self.modality_of.items() if m in ("CR", "DX")]


def grey(path: Path, side: int | None = None) -> np.ndarray:
    img = Image.open(path).convert("L")
    if side:
        img = img.resize((side, side))
    return np.asarray(img)


def to_pacs_instance(dicom: bytes, study: PacsStudy, modality: str, series_uid: str, number: int) -> bytes:
    """``make_dicom``'s file turned into a CR/DX/CT instance of ``study``."""
    ds = pydicom.dcmread(io.BytesIO(dicom))
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SOP_CLASSES[modality]
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study.study_uid, series_uid
    ds.AccessionNumber, ds.PatientID, ds.StudyDate = study.accession, study.patient_id, study.study_date
    ds.StudyTime, ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = study.study_time, "1", number, number
    ds.Modality = modality
    if study.patient_name:
        ds.PatientName = study.patient_name
    if study.description:
        ds.StudyDescription = study.description
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def add(study: PacsStudy, dicom: bytes, modality: str, kind: str, series_uid: str | None = None, n: int = 1) -> None:
    data = to_pacs_instance(dicom, study, modality, series_uid or generate_uid(), n)
    sop = str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID)
    study.instances[sop], study.kinds[sop], study.modality_of[sop] = data, kind, modality


def mixed_study(samples: list[Path], accession: str, date: str = "20240115") -> PacsStudy:
    """MONOCHROME2 8-bit DX, MONOCHROME1 12-bit CR, 16-bit DX, an adult, a lateral, a CT slice and a
    DX object without pixel data, in one study."""
    study = PacsStudy(accession, f"PID-{accession}", generate_uid(), date)
    normal = next(p for p in samples if p.name.startswith("NORMAL"))
    pneumonia = next(p for p in samples if p.name.startswith("PNEUMONIA"))
    other = [p for p in samples if p not in (normal, pneumonia)]
    px = grey(normal)
    add(study, make_dicom(px, bits=8, age="003Y", sex="F", view="PA"), "DX", "MONOCHROME2 8-bit child")
    inverted = ((255 - grey(pneumonia).astype(np.uint16)) * 16).astype(np.uint16)
    add(study, make_dicom(inverted, "MONOCHROME1", bits=12, age="004Y", sex="M", view="AP"), "CR", "MONOCHROME1 12-bit")
    add(study, make_dicom(grey(other[0]).astype(np.uint16) * 257, bits=16, age="002Y", view="AP"), "DX", "16-bit")
    add(study, make_dicom(grey(other[1]), bits=8, age="045Y", sex="M", view="PA"), "DX", "an adult")
    lateral = np.ascontiguousarray(grey(other[2])[:, ::2])
    add(study, make_dicom(lateral, bits=8, age="003Y", view="LL"), "DX", "a lateral")
    add(study, make_dicom(grey(other[3], 256), bits=8, body_part="CHEST"), "CT", "a CT slice")
    add(study, make_dicom(px[:64, :64], bits=8, with_pixels=False), "DX", "no pixel data")
    return study


def big_study(accession: str, n: int, side: int = 64) -> PacsStudy:
    """A study of ``n`` small DX instances in one series (for paging)."""
    study = PacsStudy(accession, f"PID-{accession}", generate_uid(), "20240201")
    series = generate_uid()
    rng = np.random.default_rng(0)
    for i in range(n):
        add(study, make_dicom(rng.integers(0, 255, (side, side), dtype=np.uint8), bits=8), "DX", "small", series, i + 1)
    return study


def load(orthanc, study: PacsStudy) -> PacsStudy:
    for data in study.instances.values():
        orthanc.upload(data)
    return study


DAY_NAMES = [
    "Rivera^Mia",
    "Okafor^Noah",
    "Lindqvist^Elsa",
    "Tanaka^Yuki",
    "Haddad^Omar",
    "Kowalski^Zofia",
    "Nguyen^Linh",
    "Fischer^Paul",
    "Moreau^Chloe",
    "Silva^Tiago",
    "Ahmed^Sara",
    "Berg^Jonas",
]


def day_of_studies(samples: list[Path], day: str, n: int, tag: str, prior_date: str = "") -> list[PacsStudy]:
    """``n`` one-film pediatric CR studies of ``day`` (YYYYMMDD) from the real samples, each with its own
    patient (name, ID, age, sex), accession, study time (08:00 onwards, 20 minutes apart) and view; with
    ``prior_date``, the first patient also has an earlier CR study of that date."""
    studies = []
    for i in range(n):
        sample = samples[i % len(samples)]
        study = PacsStudy(
            f"{tag}-{i + 1:03d}",
            f"{tag}-PID-{i + 1:03d}",
            generate_uid(),
            day,
            patient_name=DAY_NAMES[i % len(DAY_NAMES)],
            study_time=f"{8 + (i * 20) // 60:02d}{(i * 20) % 60:02d}00",
            description="XR CHEST 1 VIEW",
        )
        view, age, sex = ("PA", "AP")[i % 2], f"{2 + i % 6:03d}Y", "FM"[i % 2]
        add(study, make_dicom(grey(sample), bits=8, age=age, sex=sex, view=view), "CR", sample.name)
        studies.append(study)
    if prior_date:
        first = studies[0]
        prior = PacsStudy(
            f"{tag}-PRIOR",
            first.patient_id,
            generate_uid(),
            prior_date,
            patient_name=first.patient_name,
            study_time="093000",
            description="XR CHEST 1 VIEW",
        )
        sample = samples[-1]
        add(prior, make_dicom(grey(sample), bits=8, age="001Y", sex="F", view="AP"), "CR", sample.name)
        studies.append(prior)
    return studies
