"""The results of one scored image as DICOM objects for the PACS, made with highdicom:

- a Comprehensive SR holding a TID 1500 measurement report that references the source image: the
  calibrated pneumonia probability (a NUM item, UCUM unit "1"), the result at the operating point
  with the point's name and threshold, the bacterial-vs-viral estimate where the model gives one, the
  model's name and version, "not for diagnostic use", and the reader's read when there is one; for an
  image the app refused, the reason in words instead of a probability;
- a Secondary Capture of the heatmap over the x-ray with its colour scale and the burned-in words
  "AI heatmap, model <version>, not for diagnosis" (none for a refused image).

Both go into the source's patient and study, each kind in a series of its own. Their UIDs are
derived from the source SOP Instance UID, the model version and the kind of object, so storing the
results of the same image twice stores the same objects again, never a second copy.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

import cv2
import numpy as np
import pydicom
from pydicom.sr.coding import Code
from pydicom.uid import UID

MANUFACTURER = "pneumonia-review"
MODEL_NAME = "pneumonia-review chest x-ray classifier"
SCHEME = "99PNEUMONIA"  # a private coding scheme (DICOM reserves "99" prefixes for local codes)
NOT_FOR_DIAGNOSIS = (
    "Not for diagnostic use. Research software: an AI estimate to support, never replace, the reader's judgement."
)
SR_SERIES_NUMBER, SC_SERIES_NUMBER = 9901, 9902
SR_SERIES_DESCRIPTION = "AI pneumonia result (not for diagnostic use)"
SC_SERIES_DESCRIPTION = "AI heatmap (not for diagnostic use)"
SC_MIN_SIDE = 1024  # the SC's long side: at least this (a small film is enlarged), the film's own above it
SC_MAX_SIDE = 2048  # ... and at most this
# study attributes the results keep from the source, so the PACS's study list keeps its description
KEPT_STUDY_ATTRIBUTES = ("StudyDescription", "StudyTime", "StudyDate", "StudyID", "AccessionNumber")

PROBABILITY = Code("PNEU-PROB", SCHEME, "Pneumonia probability (calibrated)")
# only the probability's code meaning holds both "pneumonia" and "probability", so a reader that looks
# for that item finds exactly one
BACTERIAL = Code("PNEU-BACT", SCHEME, "Bacterial rather than viral estimate (if infective)")
THRESHOLD = Code("PNEU-THR", SCHEME, "Operating point threshold")
RESULT_AT_POINT = Code("PNEU-RESULT", SCHEME, "AI result at the operating point")
OPERATING_POINT = Code("PNEU-POINT", SCHEME, "Operating point")
NOT_SCORED_REASON = Code("PNEU-REFUSED", SCHEME, "Reason the image was not scored")
INTENDED_USE = Code("PNEU-USE", SCHEME, "Intended use")
READER_AGREES = Code("PNEU-AGREE", SCHEME, "Reader agrees with the AI result")
READER_COMMENT = Code("121106", "DCM", "Comment")
PNEUMONIA = Code("233604007", "SCT", "Pneumonia")
NORMAL = Code("17621005", "SCT", "Normal")
NOT_SCORED = Code("PNEU-NOTSCORED", SCHEME, "Not scored")
YES, NO = Code("373066001", "SCT", "Yes"), Code("373067005", "SCT", "No")
UNIT_ONE = Code("1", "UCUM", "no units")
PLAIN_CHEST_XRAY = Code("399208008", "SCT", "Plain chest X-ray")


@dataclass(frozen=True)
class ReaderRead:
    """The reader's agree/disagree and comment, as the review page saved them."""

    reader: str
    agrees: bool
    comment: str = ""

    def key(self) -> str:
        return hashlib.sha256(f"{self.reader}|{self.agrees}|{self.comment}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Finding:
    """What the app found for one image: a probability (or why there is none) and its context."""

    model_version: str
    operating_point: str
    threshold: float
    probability: float | None = None  # None when refused
    label: str | None = None  # PNEUMONIA or NORMAL at the threshold
    bacterial_probability: float | None = None
    refused_reason: str | None = None
    read: ReaderRead | None = None

    @property
    def refused(self) -> bool:
        return self.probability is None


UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:pneumonia-review:dicom-results")


def derived_uid(*parts: str) -> str:
    """A UID that is always the same for the same parts: a name-based (SHA-1) UUID in the 2.25 form.
    (pydicom's ``generate_uid(prefix=None, ...)`` ignores its entropy sources and is random.)"""
    return UID(f"2.25.{uuid.uuid5(UID_NAMESPACE, '|'.join(parts)).int}")


def sr_kind(finding: Finding) -> str:
    """The SR of an unread result, and one per distinct read (so a read is never lost under an earlier SR)."""
    return "sr" if finding.read is None else f"sr-read-{finding.read.key()}"


def result_uids(source_sop: str, study: str, finding: Finding) -> dict[str, str]:
    """SOP Instance and Series UIDs of the SR and SC of one source image."""
    version = finding.model_version
    return {
        "sr": derived_uid(source_sop, version, sr_kind(finding)),
        "sc": derived_uid(source_sop, version, "sc"),
        "sr_series": derived_uid(study, version, "sr-series"),
        "sc_series": derived_uid(study, version, "sc-series"),
    }


def _text(name: Code, value: str):
    import highdicom as hd

    from pneumonia.core.literal import plain_text  # a reader's text on one line: no tab, CR or LF

    return hd.sr.TextContentItem(
        name=name, value=plain_text(value)[:1024], relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
    )


def person_name(text: str) -> str:
    """The reader's name as a DICOM person name, family name first: "Ada Reader" -> "Reader^Ada",
    "Reader, Ada" -> "Reader^Ada", a name already in DICOM form as it is, one word (initials) alone."""
    name = " ".join(text.replace("\\", " ").replace("=", " ").split())[:60]
    if "^" in name:
        return name
    if "," in name:
        family, _, given = name.partition(",")
        return f"{family.strip()}^{given.strip()}".rstrip("^")
    words = name.split(" ")
    return name if len(words) == 1 else f"{words[-1]}^{' '.join(words[:-1])}"


def _observation_context(finding: Finding):
    import highdicom as hd

    device = hd.sr.ObserverContext(
        observer_type=hd.sr.CodedConcept("121007", "DCM", "Device"),
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=derived_uid("device", MODEL_NAME), name=MODEL_NAME, model_name=finding.model_version[:64]
        ),
    )
    person = None
    if finding.read is not None and finding.read.reader.strip():
        person = hd.sr.ObserverContext(
            observer_type=hd.sr.CodedConcept("121006", "DCM", "Person"),
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                name=person_name(finding.read.reader)
            ),
        )
    return hd.sr.ObservationContext(observer_person_context=person, observer_device_context=device)


def _measurements(finding: Finding, algorithm) -> list:
    import highdicom as hd

    if finding.refused:
        return []
    found = [hd.sr.Measurement(PROBABILITY, float(finding.probability), UNIT_ONE, algorithm_id=algorithm)]
    found.append(hd.sr.Measurement(THRESHOLD, float(finding.threshold), UNIT_ONE))
    if finding.bacterial_probability is not None:
        found.append(
            hd.sr.Measurement(BACTERIAL, float(finding.bacterial_probability), UNIT_ONE, algorithm_id=algorithm)
        )
    return found


def _evaluations(finding: Finding) -> list:
    import highdicom as hd

    result = NOT_SCORED if finding.refused else (PNEUMONIA if finding.label == "PNEUMONIA" else NORMAL)
    found = [hd.sr.QualitativeEvaluation(RESULT_AT_POINT, result)]
    if finding.read is not None:
        found.append(hd.sr.QualitativeEvaluation(READER_AGREES, YES if finding.read.agrees else NO))
    return found


def measurement_report(source: pydicom.Dataset, finding: Finding):
    """The TID 1500 content tree of one image's result."""
    import highdicom as hd

    algorithm = hd.sr.AlgorithmIdentification(name=MODEL_NAME, version=finding.model_version[:64])
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=derived_uid(source.SOPInstanceUID, finding.model_version, "tracking"), identifier="AI pneumonia result"
        ),
        finding_type=PNEUMONIA,
        algorithm_id=algorithm,
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)],
        measurements=_measurements(finding, algorithm) or None,
        qualitative_evaluations=_evaluations(finding),
    )
    texts = [_text(OPERATING_POINT, f"{finding.operating_point} (threshold {finding.threshold:.4f})")]
    if finding.refused:
        texts.append(_text(NOT_SCORED_REASON, finding.refused_reason or "The image was not scored."))
    if finding.read is not None and finding.read.comment.strip():
        texts.append(_text(READER_COMMENT, finding.read.comment.strip()))
    texts.append(_text(INTENDED_USE, NOT_FOR_DIAGNOSIS))
    group[0].ContentSequence.extend(texts)
    return hd.sr.MeasurementReport(
        observation_context=_observation_context(finding),
        procedure_reported=PLAIN_CHEST_XRAY,
        imaging_measurements=[group],
    )


# Patient and study attributes a new object in the study must carry (Type 2: present, maybe empty);
# images from real modalities often leave some out, and highdicom copies them from the source
_STUDY_TYPE2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "AccessionNumber",
)


def with_study_attributes(source: pydicom.Dataset) -> pydicom.Dataset:
    """A header copy of ``source`` (no pixels) with every Type 2 patient and study attribute present."""
    header = pydicom.Dataset()
    for element in source:
        if element.keyword not in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
            header.add(element)
    for keyword in _STUDY_TYPE2:
        if keyword not in header:
            setattr(header, keyword, "")
    return header


def structured_report(source: pydicom.Dataset, finding: Finding) -> pydicom.Dataset:
    """The Comprehensive SR of one image (``source``: the image's header; pixel data not needed)."""
    import highdicom as hd

    source = with_study_attributes(source)
    uids = result_uids(source.SOPInstanceUID, source.StudyInstanceUID, finding)
    sr = hd.sr.ComprehensiveSR(
        evidence=[source],
        content=measurement_report(source, finding),
        series_instance_uid=uids["sr_series"],
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=uids["sr"],
        instance_number=int(getattr(source, "InstanceNumber", None) or 1),
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description=SR_SERIES_DESCRIPTION,
    )
    return keep_study_attributes(sr, source)


def colour_scale(height: int, width: int, colormap: int) -> np.ndarray:
    """A vertical colour bar (RGB), high at the top, labelled in words."""
    ramp = np.linspace(255, 0, height, dtype=np.float32).astype(np.uint8)[:, None].repeat(width, axis=1)
    bar = cv2.cvtColor(cv2.applyColorMap(ramp, colormap), cv2.COLOR_BGR2RGB)
    scale = 0.8 * width / cv2.getTextSize("high", cv2.FONT_HERSHEY_SIMPLEX, 1.0, 1)[0][0]
    for text, y in (("high", int(0.05 * height) + 12), ("low", height - 8)):
        cv2.putText(bar, text, (3, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 3, cv2.LINE_AA)
        cv2.putText(bar, text, (3, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return bar


def probability_words(p: float) -> str:
    """As the review page words a probability: never 0% or 100%, never tenths at the ends."""
    from pneumonia.core.labels import probability_in_words

    return probability_in_words(p)


def burned_in_lines(model_version: str, finding: Finding | None, flat: bool) -> list[str]:
    """The words burned into the SC: the result at its operating point, then the model and the warning."""
    lines = []
    if finding is not None and not finding.refused:
        lines.append(
            f"AI pneumonia probability {probability_words(finding.probability)}: {finding.label} at operating "
            f"point {finding.operating_point} (threshold {finding.threshold:.1%})"
        )
    lines.append(
        f"AI heatmap, model {model_version}, not for diagnosis" + (" (flat: no region stands out)" if flat else "")
    )
    return lines


def _banner(lines: list[str], width: int) -> np.ndarray:
    """White words on black, one line each, as large as the width allows."""
    line_h = max(28, width // 36)
    banner = np.zeros((line_h * len(lines) + line_h // 3, width, 3), np.uint8)
    widest = max(cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, 1.0, 2)[0][0] for t in lines)
    font = min(0.95 * width / widest, 0.024 * line_h)
    thickness = max(1, round(font * 1.6))
    for i, text in enumerate(lines):
        y = int(line_h * (i + 0.8))
        cv2.putText(banner, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), thickness, cv2.LINE_AA)
    return banner


def heatmap_picture(
    pixels: np.ndarray,
    cam: np.ndarray | None,
    model_version: str,
    colormap: str = "jet",
    finding: Finding | None = None,
) -> np.ndarray:
    """The x-ray with the heatmap over it, a colour scale at the right and a banner with the burned-in
    result (probability, result, operating point) and "AI heatmap, model <version>, not for diagnosis"
    (RGB uint8; the film's resolution, with its long side between SC_MIN_SIDE and SC_MAX_SIDE px)."""
    from pneumonia.serving.explain import COLORMAPS, overlay

    h, w = pixels.shape[:2]
    scale = min(SC_MAX_SIDE, max(SC_MIN_SIDE, h, w)) / max(h, w)
    if scale != 1.0:
        size = (round(w * scale), round(h * scale))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        h, w = pixels.shape[:2]
    flat = cam is None or float(np.max(cam)) <= 0
    picture = overlay(pixels, np.zeros((8, 8), np.float32) if flat else cam, 0.0 if flat else 0.4, colormap)
    bar = colour_scale(h, max(32, w // 12), COLORMAPS[colormap])
    picture = np.concatenate([picture, bar], axis=1)
    banner = _banner(burned_in_lines(model_version, finding, flat), picture.shape[1])
    return np.ascontiguousarray(np.concatenate([banner, picture], axis=0))


def keep_study_attributes(made: pydicom.Dataset, source: pydicom.Dataset) -> pydicom.Dataset:
    """Copy the study's description, date and time onto a result object, so the PACS's study keeps them."""
    for keyword in KEPT_STUDY_ATTRIBUTES:
        value = getattr(source, keyword, None)
        if value not in (None, "") and not getattr(made, keyword, None):
            setattr(made, keyword, value)
    return made


def _orientation(source: pydicom.Dataset) -> tuple[str, str]:
    """The source's Patient Orientation; a frontal chest film's usual ("L", "F") where it has none."""
    value = list(getattr(source, "PatientOrientation", None) or [])
    return (str(value[0]), str(value[1])) if len(value) == 2 else ("L", "F")


def secondary_capture(source: pydicom.Dataset, picture: np.ndarray, finding: Finding) -> pydicom.Dataset:
    """The heatmap picture as a Secondary Capture in the source's patient and study."""
    import highdicom as hd

    source = with_study_attributes(source)
    uids = result_uids(source.SOPInstanceUID, source.StudyInstanceUID, finding)
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source,
        pixel_array=picture,
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        series_instance_uid=uids["sc_series"],
        series_number=SC_SERIES_NUMBER,
        sop_instance_uid=uids["sc"],
        instance_number=int(getattr(source, "InstanceNumber", None) or 1),
        manufacturer=MANUFACTURER,
        patient_orientation=_orientation(source),
        series_description=SC_SERIES_DESCRIPTION,
    )
    sc.BurnedInAnnotation = "YES"
    if "Laterality" not in sc:  # General Series type 2C that dciodvfy asks of a chest: both sides, so empty
        sc.Laterality = ""
    sc.ImageComments = " ".join(burned_in_lines(finding.model_version, finding, False))[:10240]
    ref = pydicom.Dataset()
    ref.ReferencedSOPClassUID = source.SOPClassUID
    ref.ReferencedSOPInstanceUID = source.SOPInstanceUID
    sc.SourceImageSequence = [ref]
    return keep_study_attributes(sc, source)


def result_objects(source: pydicom.Dataset, finding: Finding, picture: np.ndarray | None) -> list[pydicom.Dataset]:
    """The SR, and the SC when the image was scored and a heatmap picture is given."""
    objects = [structured_report(source, finding)]
    if not finding.refused and picture is not None:
        objects.append(secondary_capture(source, picture, finding))
    return objects


def _content_items(items) -> list:
    out = []
    for item in items or []:
        out.append(item)
        out.extend(_content_items(getattr(item, "ContentSequence", None)))
    return out


def _meaning(item) -> str:
    seq = getattr(item, "ConceptNameCodeSequence", None)
    return str(seq[0].CodeMeaning) if seq else ""


def read_report(sr: pydicom.Dataset) -> dict:
    """What an SR made here says (for checks and tests): the probability and other numbers by code
    meaning, coded and text items by name, and the SOP Instance UIDs it references."""
    found: dict = {"numbers": {}, "codes": {}, "texts": {}, "references": []}
    for item in _content_items(getattr(sr, "ContentSequence", None)):
        kind = getattr(item, "ValueType", "")
        if kind == "NUM" and getattr(item, "MeasuredValueSequence", None):
            value = item.MeasuredValueSequence[0]
            number = getattr(value, "FloatingPointValue", None)
            found["numbers"][_meaning(item)] = float(value.NumericValue if number is None else number)
            found.setdefault("units", {})[_meaning(item)] = str(value.MeasurementUnitsCodeSequence[0].CodeValue)
        elif kind == "CODE":
            found["codes"][_meaning(item)] = str(item.ConceptCodeSequence[0].CodeMeaning)
        elif kind == "TEXT":
            found["texts"][_meaning(item)] = str(item.TextValue)
        elif kind == "IMAGE":
            found["references"].append(str(item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID))
    probability = [v for k, v in found["numbers"].items() if "pneumonia" in k.lower() and "probability" in k.lower()]
    if len(probability) > 1:
        raise ValueError("The SR holds more than one pneumonia probability.")
    found["probability"] = probability[0] if probability else None
    return found
