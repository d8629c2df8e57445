"""Talking to the PACS over DICOMweb (dicomweb-client on a requests session): QIDO-RS to find chest
radiographs, WADO-RS to fetch one instance at a time into memory, STOW-RS to store results.

Connection errors, timeouts and server errors (5xx, 429) are retried with exponential back-off by
the session's transport; whatever still fails becomes a :class:`~pneumonia.pacs.config.PacsError`
in words. Queries are paged (``QIDO_PAGE`` answers a request), so a study of hundreds of images is
listed in pieces and fetched one image at a time.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date

import pydicom
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from pneumonia.pacs.config import PacsConfig, PacsError

CHEST_MODALITIES = ("CR", "DX")
QIDO_PAGE = 100
RETRY_STATUS = (429, 500, 502, 503, 504)
BACKOFF_S = 0.5
INSTANCE_FIELDS = ("PatientAge", "PatientSex", "ViewPosition", "BodyPartExamined", "Modality", "InstanceNumber")
STUDY_FIELDS = (
    "StudyDate",
    "StudyTime",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "AccessionNumber",
    "StudyDescription",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedInstances",
)
SkippedSeries = Callable[[str, str, str], None]  # (study, series, modality) of a series left out
AS_STORED = ("application/dicom", "*")  # any transfer syntax: the instance as the PACS stored it
_DATE = re.compile(r"^\d{4}-?\d{2}-?\d{2}$")


@dataclass(frozen=True)
class StudyQuery:
    """What to look for: any of an accession number, a patient ID, a study date range (inclusive)."""

    accession: str | None = None
    patient_id: str | None = None
    date_from: date | None = None
    date_to: date | None = None

    def filters(self) -> dict[str, str]:
        found = {}
        if self.accession:
            found["AccessionNumber"] = self.accession.strip()
        if self.patient_id:
            found["PatientID"] = self.patient_id.strip()
        if self.date_from or self.date_to:
            lo = self.date_from.strftime("%Y%m%d") if self.date_from else ""
            hi = self.date_to.strftime("%Y%m%d") if self.date_to else ""
            found["StudyDate"] = f"{lo}-{hi}"
        return found

    def in_words(self) -> str:
        parts = [f"accession {self.accession}" if self.accession else "", "the patient ID" if self.patient_id else ""]
        if self.date_from or self.date_to:
            parts.append(f"study dates {self.date_from or '...'} to {self.date_to or '...'}")
        return ", ".join(p for p in parts if p) or "all studies"


def parse_date(text: str) -> date:
    text = text.strip()
    if not _DATE.match(text):
        raise ValueError(f"{text!r} is not a date; write it as YYYY-MM-DD or YYYYMMDD.")
    digits = text.replace("-", "")
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        raise ValueError(f"{text!r} is not a real date.") from None


def parse_date_range(text: str) -> tuple[date, date]:
    """``FROM-TO`` (``2024-01-01-2024-01-31`` or ``20240101-20240131``) or one date."""
    text = text.strip()
    m = re.match(r"^(\d{4}-?\d{2}-?\d{2})(?:\s*(?:-|to|\.\.)\s*(\d{4}-?\d{2}-?\d{2}))?$", text)
    if not m:
        raise ValueError(f"{text!r} is not a date range; write FROM-TO as YYYYMMDD-YYYYMMDD or YYYY-MM-DD-YYYY-MM-DD.")
    lo = parse_date(m.group(1))
    hi = parse_date(m.group(2)) if m.group(2) else lo
    if hi < lo:
        raise ValueError(f"The date range {text!r} ends before it starts.")
    return lo, hi


@dataclass(frozen=True)
class InstanceRef:
    """One image in the PACS, with the non-identifying facts the worklist shows."""

    study: str
    series: str
    sop: str
    modality: str = ""
    view: str = ""
    body_part: str = ""
    age: str = ""
    sex: str = ""
    number: int | None = None


def qido_value(record: dict, keyword: str) -> str:
    """A QIDO JSON attribute as text ('' when absent)."""
    tag = pydicom.datadict.tag_for_keyword(keyword)
    item = record.get(f"{tag:08X}") or {}
    values = item.get("Value") or []
    if not values:
        return ""
    first = values[0]
    if isinstance(first, dict):  # a person name
        return str(first.get("Alphabetic", ""))
    return "\\".join(str(v) for v in values) if len(values) > 1 else str(first)


def is_chest_radiograph(modality: str, body_part: str) -> bool:
    """CR or DX, and body part CHEST where the PACS has one (many modalities leave it empty)."""
    return modality.upper() in CHEST_MODALITIES and (not body_part or "CHEST" in body_part.upper())


def _session(config: PacsConfig) -> requests.Session:
    session = requests.Session()
    retry = Retry(
        total=config.retries,
        connect=config.retries,
        read=config.retries,
        status=config.retries,
        backoff_factor=BACKOFF_S,
        status_forcelist=RETRY_STATUS,
        allowed_methods=None,  # STOW too: our results carry fixed UIDs, so storing twice changes nothing
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if config.token:
        session.headers["Authorization"] = f"Bearer {config.token}"
    elif config.user:
        session.auth = (config.user, config.password or "")
    if config.ca_bundle:
        session.verify = config.ca_bundle
    return session


def _timed_out(err: Exception) -> bool:
    """True when retries ran out on read timeouts (requests reports that as a ConnectionError)."""
    from urllib3.exceptions import MaxRetryError, ReadTimeoutError

    reason = err.args[0] if err.args else None
    return isinstance(reason, MaxRetryError) and isinstance(reason.reason, ReadTimeoutError)


def explain_failure(err: Exception, config: PacsConfig, what: str) -> PacsError:
    """A requests or HTTP failure as a sentence for the reader (never the password or token)."""
    where = config.shown_url
    tries = f" (tried {config.retries + 1} times)" if config.retries else ""
    if isinstance(err, requests.HTTPError) and err.response is not None:
        code = err.response.status_code
        if code in (401, 403):
            how = "PNEUMONIA_PACS_TOKEN" if config.token else "PNEUMONIA_PACS_USER and PNEUMONIA_PACS_PASSWORD"
            signed = "the credentials it was given" if (config.token or config.user) else "access without credentials"
            return PacsError(f"The PACS at {where} refused {signed} (HTTP {code}) while {what}: check {how}.")
        if code == 404:
            return PacsError(
                f"The PACS at {where} has no DICOMweb service there (HTTP 404) while {what}: "
                "check that the address ends with the DICOMweb root, for example /dicom-web."
            )
        if code >= 500 or code == 429:
            return PacsError(f"The PACS at {where} reported a server error (HTTP {code}) while {what}{tries}.")
        return PacsError(f"The PACS at {where} answered HTTP {code} while {what}.")
    if isinstance(err, requests.exceptions.SSLError):
        return PacsError(
            f"The PACS at {where} presented a certificate this workstation does not trust while {what}: "
            "set PNEUMONIA_PACS_CA_BUNDLE to the hospital's CA certificates."
        )
    if isinstance(err, requests.Timeout) or _timed_out(err):
        return PacsError(f"The PACS at {where} did not answer within {config.timeout:g} s while {what}{tries}.")
    if isinstance(err, (requests.ConnectionError, requests.exceptions.RetryError)):
        return PacsError(
            f"The PACS at {where} cannot be reached while {what}{tries}: check PNEUMONIA_PACS_URL and that the "
            "PACS is running."
        )
    if isinstance(err, ValueError):  # an answer that is not DICOM JSON or not multipart DICOM
        return PacsError(f"The PACS at {where} sent an answer that is not DICOMweb while {what}.")
    return PacsError(f"The PACS at {where} could not be used while {what} ({type(err).__name__}).")


class PacsClient:
    """One PACS, as the app uses it."""

    def __init__(self, config: PacsConfig):
        from dicomweb_client.api import DICOMwebClient

        self.config = config
        self.web = DICOMwebClient(config.url, session=_session(config), timeout=config.timeout)
        self.web.set_http_retry_params(retry=False)  # the session's transport retries, with back-off

    def _call(self, what: str, fn: Callable, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (requests.RequestException, ValueError) as err:
            raise explain_failure(err, self.config, what) from None

    def _paged(self, what: str, fn: Callable, **kwargs) -> Iterator[dict]:
        offset = 0
        while True:
            page = self._call(what, fn, limit=QIDO_PAGE, offset=offset, **kwargs)
            yield from page
            if len(page) < QIDO_PAGE:
                return
            offset += len(page)

    def check(self) -> None:
        """Raise a PacsError in words unless the PACS answers a query (one study at most)."""
        self._call("checking the connection", self.web.search_for_studies, limit=1)

    def studies(self, query: StudyQuery) -> Iterator[dict]:
        """QIDO study records matching ``query``, page by page."""
        return self._paged(
            "searching for studies", self.web.search_for_studies, search_filters=query.filters(), fields=STUDY_FIELDS
        )

    def chest_series(self, study: str, skipped: SkippedSeries | None = None) -> list[dict]:
        """The study's CR/DX series (body part CHEST where set); ``skipped(study, series, modality)`` hears
        of the others."""
        chest = []
        for series in self._paged(
            "listing a study's series",
            self.web.search_for_series,
            study_instance_uid=study,
            fields=("Modality", "BodyPartExamined", "SeriesNumber"),
        ):
            if is_chest_radiograph(qido_value(series, "Modality"), qido_value(series, "BodyPartExamined")):
                chest.append(series)
            elif skipped is not None:
                skipped(study, qido_value(series, "SeriesInstanceUID"), qido_value(series, "Modality") or "unknown")
        return chest

    def instances(self, study: str, series: str, modality: str = "") -> Iterator[InstanceRef]:
        for rec in self._paged(
            "listing a series' images",
            self.web.search_for_instances,
            study_instance_uid=study,
            series_instance_uid=series,
            fields=INSTANCE_FIELDS,
        ):
            number = qido_value(rec, "InstanceNumber")
            yield InstanceRef(
                study,
                series,
                qido_value(rec, "SOPInstanceUID"),
                qido_value(rec, "Modality") or modality,
                qido_value(rec, "ViewPosition"),
                qido_value(rec, "BodyPartExamined"),
                qido_value(rec, "PatientAge"),
                qido_value(rec, "PatientSex"),
                int(number) if number.isdigit() else None,
            )

    def chest_instances(self, query: StudyQuery, skipped: SkippedSeries | None = None) -> Iterator[InstanceRef]:
        """Every CR/DX image of every study matching ``query``, listed as it is needed."""
        for study in self.studies(query):
            uid = qido_value(study, "StudyInstanceUID")
            for series in self.chest_series(uid, skipped):
                for ref in self.instances(uid, qido_value(series, "SeriesInstanceUID"), qido_value(series, "Modality")):
                    if is_chest_radiograph(ref.modality or "CR", ref.body_part):
                        yield ref

    def retrieve(self, ref: InstanceRef) -> bytes:
        """One instance as DICOM file bytes, in memory only: uncompressed where the PACS can send it so,
        else as stored (a PACS that cannot transcode answers 406)."""
        args = (ref.study, ref.series, ref.sop)
        try:
            ds = self.web.retrieve_instance(*args)
        except requests.HTTPError as err:
            if err.response is None or err.response.status_code not in (400, 406):
                raise explain_failure(err, self.config, "fetching an image") from None
            ds = self._call("fetching an image", self.web.retrieve_instance, *args, media_types=(AS_STORED,))
        except (requests.RequestException, ValueError) as err:
            raise explain_failure(err, self.config, "fetching an image") from None
        return dataset_bytes(ds)

    def retrieve_dataset(self, study: str, series: str, sop: str) -> pydicom.Dataset:
        """One instance as a dataset (for reading back a result this app or its DICOM node stored)."""
        return self._call("reading a stored result", self.web.retrieve_instance, study, series, sop)

    def existing(self, study: str, series: str) -> set[str]:
        """SOP Instance UIDs already stored in a series (empty when the series does not exist)."""
        try:
            found = self.web.search_for_instances(study_instance_uid=study, series_instance_uid=series)
        except requests.HTTPError as err:
            if err.response is not None and err.response.status_code == 404:
                return set()
            raise explain_failure(err, self.config, "checking which results are stored") from None
        except (requests.RequestException, ValueError) as err:
            raise explain_failure(err, self.config, "checking which results are stored") from None
        return {qido_value(rec, "SOPInstanceUID") for rec in found}

    def store(self, datasets: list[pydicom.Dataset], study: str) -> None:
        """STOW-RS into ``study``; raises a PacsError naming how many the PACS refused."""
        answer = self._call("storing results", self.web.store_instances, datasets, study_instance_uid=study)
        failed = answer.get("FailedSOPSequence") if answer is not None else None
        if failed:
            reasons = sorted({str(item.get("FailureReason", "?")) for item in failed})
            raise PacsError(
                f"The PACS at {self.config.shown_url} refused {len(failed)} of {len(datasets)} result object(s) "
                f"(failure reason {', '.join(reasons)})."
            )


def dataset_bytes(ds: pydicom.Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
