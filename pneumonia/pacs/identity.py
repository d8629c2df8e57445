"""Whose film this is: the accession, patient, age, sex, study date and time and view a DICOM header
holds, read for the reader's screen and the PDF only.

These are patient identifiers. They live in the reading session's memory and on the reader's screen;
nothing here logs them, and the audit trail and the default CSV never receive them.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from datetime import date, datetime

import pydicom

from pneumonia.core.decode import age_in_years

SEXES = {"M": "male", "F": "female", "O": "other"}


@dataclass(frozen=True)
class FilmIdentity:
    """What a reader's PACS viewer shows above a film. Empty text where the header has nothing."""

    accession: str = ""
    patient_name: str = ""  # "Family, Given" as read from the DICOM person name
    patient_id: str = ""
    age: str = ""  # in words: "4 years", "9 months"
    sex: str = ""  # in words
    study_date: str = ""  # YYYY-MM-DD
    study_time: str = ""  # HH:MM
    view: str = ""
    description: str = ""
    study_uid: str = ""

    @property
    def when(self) -> str:
        return f"{self.study_date} {self.study_time}".strip()

    @property
    def age_sex(self) -> str:
        return " ".join(p for p in (self.age, self.sex) if p)

    def header_line(self) -> str:
        """One line for the film's header: patient, ID, age and sex, accession, date and time, view."""
        parts = [
            self.patient_name or "(no name)",
            f"ID {self.patient_id}" if self.patient_id else "",
            self.age_sex,
            f"accession {self.accession}" if self.accession else "no accession",
            self.when,
            f"view {self.view}" if self.view else "",
        ]
        return " · ".join(p for p in parts if p)

    def fields(self) -> dict[str, str]:
        """Label -> value in words (for the PDF), empty ones left out."""
        words = {
            "Patient": self.patient_name,
            "Patient ID": self.patient_id,
            "Age": self.age,
            "Sex": self.sex,
            "Accession": self.accession,
            "Study date and time": self.when,
            "View": self.view,
            "Study": self.description,
        }
        return {k: v for k, v in words.items() if v}

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def person_name_words(value: object) -> str:
    """A DICOM person name ("Doe^Jane") as a reader writes it ("Doe, Jane")."""
    text = str(value or "").split("=")[0]
    parts = [p.strip() for p in text.split("^")]
    family, given = (parts + ["", ""])[:2]
    rest = " ".join(p for p in parts[2:] if p)
    return ", ".join(p for p in (family, " ".join(q for q in (given, rest) if q)) if p)


def dicom_date(text: object) -> str:
    text = str(text or "").strip()
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else text


def dicom_time(text: object) -> str:
    digits = str(text or "").strip().split(".")[0]
    return f"{digits[:2]}:{digits[2:4]}" if len(digits) >= 4 and digits[:4].isdigit() else ""


def age_words(age: object, birth: object = "", on: object = "") -> str:
    """The patient's age in words, from Patient Age or else from the birth date and the study date."""
    years = age_in_years(age)
    if years is None:
        try:
            born = datetime.strptime(str(birth).strip(), "%Y%m%d").date()
            seen = datetime.strptime(str(on).strip(), "%Y%m%d").date() if str(on).strip() else date.today()
            years = (seen - born).days / 365.25
        except ValueError:
            return ""
    if years < 0:
        return ""
    return f"{years:.0f} years" if years >= 2 else f"{years * 12:.0f} months"


def identity_of_header(ds: pydicom.Dataset) -> FilmIdentity:
    def text(keyword: str) -> str:
        return str(getattr(ds, keyword, "") or "").strip()

    return FilmIdentity(
        accession=text("AccessionNumber"),
        patient_name=person_name_words(getattr(ds, "PatientName", "")),
        patient_id=text("PatientID"),
        age=age_words(text("PatientAge"), text("PatientBirthDate"), text("StudyDate")),
        sex=SEXES.get(text("PatientSex").upper(), ""),
        study_date=dicom_date(text("StudyDate")),
        study_time=dicom_time(text("StudyTime")),
        view=text("ViewPosition"),
        description=text("StudyDescription"),
        study_uid=text("StudyInstanceUID"),
    )


def film_identity(data: bytes) -> FilmIdentity | None:
    """The identity a DICOM file's header holds; None for a file that is not DICOM."""
    if data[128:132] != b"DICM":
        return None
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
    except Exception:  # a damaged header: the film shows without an identity (the decoder says why)
        return None
    return identity_of_header(ds)
