"""A DICOM node that scores chest radiographs as they arrive (pynetdicom C-STORE SCP) and sends each
one's SR and heatmap SC to a destination: a DICOMweb PACS (STOW-RS) or a DICOM node (C-STORE).

Arrivals are accepted at once and scored one after another by a worker thread. An object that is
not a chest radiograph (CR/DX) is acknowledged and left alone; a refused or damaged one gets an SR
saying why where it can be referenced, and is logged in words; nothing stops the listener. An
instance that arrives again is not scored or sent twice. No image is kept after it is scored, and the
log names an instance only by a short hash of its UID, never by a patient identifier.

The node answers only its own AE title and, when :class:`~pneumonia.pacs.config.NodeAccess` lists them,
only those calling AE titles and addresses: any other association is refused before an object can
arrive, and the refusal is logged in words. The DICOM libraries' own log lines (pydicom, pynetdicom,
highdicom, and Python warnings, which quote UIDs and tag values as a sender wrote them) are withheld
from the log: their debug and info lines are dropped, and a warning or error keeps only its level and
which library said it.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections import Counter
from dataclasses import dataclass

import pydicom

from pneumonia.pacs.config import NodeAccess, PacsError, node_access, printable
from pneumonia.pacs.dicomweb import PacsClient, is_chest_radiograph
from pneumonia.pacs.results import Finding, result_uids
from pneumonia.pacs.scoring import InstanceScorer, read_header

LOG = logging.getLogger("pneumonia.listen")
QUEUE_SIZE = 32  # arrivals waiting to be scored (a full queue slows the sender down)
REMEMBERED = 100_000  # instance UIDs remembered as done
SUCCESS = 0x0000
# the libraries that see what a sender sent (and the HTTP ones, whose lines name the study in the URL)
THIRD_PARTY_LOGGERS = ("pynetdicom", "pydicom", "highdicom", "dicomweb_client", "urllib3", "requests", "py.warnings")
REJECT_PERMANENT, BY_SERVICE_USER = 0x01, 0x01
CALLING_AE_NOT_RECOGNISED, CALLED_AE_NOT_RECOGNISED, NO_REASON = 0x03, 0x07, 0x01


class WithholdSenderText(logging.Filter):
    """On the DICOM libraries' loggers: drop debug and info lines, and reduce a warning or error to its
    level and library, so no UID or tag value a sender wrote reaches the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return False
        library = "Python" if record.name == "py.warnings" else record.name.split(".")[0]
        record.msg = (
            f"{library} reported a problem ({record.levelname.lower()}; details withheld: they may quote what a "
            "sender sent)."
        )
        record.args = ()
        record.exc_info = record.exc_text = record.stack_info = None
        return True


def withhold_third_party_details() -> None:
    """Put :class:`WithholdSenderText` on every logger of the DICOM libraries (and on Python warnings,
    which are routed to the log so that pydicom's value warnings are filtered too)."""
    import highdicom.sc
    import highdicom.sr  # noqa: F401
    import pynetdicom  # noqa: F401

    logging.captureWarnings(True)
    libraries = {name.split(".")[0] for name in THIRD_PARTY_LOGGERS}
    for library in libraries:  # below a warning, nothing: a logger made later inherits the level
        logging.getLogger(library).setLevel(logging.WARNING)
    for name in [*logging.root.manager.loggerDict, *THIRD_PARTY_LOGGERS]:
        logger = logging.getLogger(name)
        if name.split(".")[0] in libraries and not any(isinstance(f, WithholdSenderText) for f in logger.filters):
            logger.addFilter(WithholdSenderText())


def short_id(sop_uid: str) -> str:
    """How the log names an instance: a short hash of its UID (no patient identifier)."""
    return hashlib.sha256(sop_uid.encode()).hexdigest()[:10]


def parse_dest_ae(text: str) -> tuple[str, str, int]:
    """``AE@host:port`` -> (AE title, host, port)."""
    try:
        ae, address = text.split("@", 1)
        host, port = address.rsplit(":", 1)
        if not ae or len(ae) > 16 or not host:
            raise ValueError
        return ae, host, int(port)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a DICOM node; write it as AE@host:port, e.g. ORTHANC@127.0.0.1:4242."
        ) from None


class DicomwebDestination:
    """Results stored by STOW-RS; an object the PACS already holds is not stored again."""

    def __init__(self, client: PacsClient):
        self.client = client

    def holds(self, study: str, sr_uid: str, sr_series: str) -> bool:
        return sr_uid in self.client.existing(study, sr_series)

    def store(self, objects: list[pydicom.Dataset], study: str) -> None:
        self.client.store(objects, study)

    def __str__(self) -> str:
        return self.client.config.shown_url


@dataclass
class CStoreDestination:
    """Results sent by C-STORE to ``called_ae`` at ``host:port``, as ``calling_ae``."""

    calling_ae: str
    called_ae: str
    host: str
    port: int
    timeout: float = 30.0

    def holds(self, study: str, sr_uid: str, sr_series: str) -> bool:
        return False  # a C-STORE node is not asked; the listener remembers what it sent

    def store(self, objects: list[pydicom.Dataset], study: str) -> None:
        from pynetdicom import AE

        ae = AE(ae_title=self.calling_ae)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout
        for sop_class in {str(o.SOPClassUID) for o in objects}:
            ae.add_requested_context(sop_class, pydicom.uid.ExplicitVRLittleEndian)
        assoc = ae.associate(self.host, self.port, ae_title=self.called_ae)
        if not assoc.is_established:
            raise PacsError(f"The DICOM node {self} did not accept an association (is it running, is the AE right?).")
        try:
            for ds in objects:
                status = assoc.send_c_store(ds)
                code = getattr(status, "Status", None)
                if code is None or (code != SUCCESS and code >> 12 not in (0xB,)):
                    raise PacsError(f"The DICOM node {self} refused a result object (status {code}).")
        finally:
            assoc.release()

    def __str__(self) -> str:
        return f"{self.called_ae}@{self.host}:{self.port}"


class ChestListener:
    """The C-STORE SCP and its scoring worker. ``start()``, then ``stop()``; ``stats`` counts outcomes."""

    def __init__(
        self,
        scorer: InstanceScorer,
        destination,
        ae_title: str = "PNEUMONIA",
        host: str = "127.0.0.1",
        port: int = 11112,
        access: NodeAccess | None = None,
    ):
        self.scorer, self.destination = scorer, destination
        self.ae_title, self.host, self.port = ae_title, host, port
        self.access = node_access() if access is None else access
        self.stats: Counter = Counter()
        self._queue: queue.Queue = queue.Queue(QUEUE_SIZE)
        self._done: dict[str, None] = {}  # insertion-ordered: the oldest are forgotten first
        self._server = None
        self._worker = threading.Thread(target=self._work, name="pneumonia-listen-scorer", daemon=True)

    def start(self) -> None:
        from pynetdicom import AE, StoragePresentationContexts, evt
        from pynetdicom.sop_class import Verification

        withhold_third_party_details()
        ae = AE(ae_title=self.ae_title)
        ae.supported_contexts = StoragePresentationContexts
        ae.add_supported_context(Verification)
        ae.require_called_aet = True  # pynetdicom refuses another called AE too (checked first below)
        self._worker.start()
        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_REQUESTED, self._on_association)]
        self._server = ae.start_server((self.host, self.port), block=False, evt_handlers=handlers)
        LOG.info("Listening as %s on %s:%d; results go to %s.", self.ae_title, self.host, self.port, self.destination)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._worker.is_alive():
            self._queue.put(None)
            self._worker.join(timeout=60)

    def _on_association(self, event) -> None:
        """Refuse, before any object arrives, a caller that names another AE title or is not listed."""
        request = event.assoc.requestor.primitive
        calling, called = str(request.calling_ae_title).strip(), str(request.called_ae_title).strip()
        address = str(event.assoc.requestor.address)
        if called != self.ae_title:
            why, reason = (
                f"it asked for the AE title {printable(called)!r}, not {self.ae_title!r}",
                CALLED_AE_NOT_RECOGNISED,
            )
        else:
            listed = not self.access.calling_aes or calling in self.access.calling_aes
            why, reason = self.access.refusal(calling, address), NO_REASON if listed else CALLING_AE_NOT_RECOGNISED
        if not why:
            return
        self.stats["refused_association"] += 1
        LOG.warning("Refused an association from %s at %s: %s.", printable(calling), address, why)
        event.assoc.acse.send_reject(REJECT_PERMANENT, BY_SERVICE_USER, reason)

    def _on_store(self, event) -> int:
        """Accept at once; the worker scores. The object is kept as bytes only until it is scored."""
        try:
            self._queue.put(event.encoded_dataset())
        except Exception:  # an object pynetdicom cannot even encode: say so, keep listening
            self.stats["damaged"] += 1
            LOG.warning("A damaged object arrived and could not be read; it was not scored.")
        self.stats["received"] += 1
        return SUCCESS

    def _work(self) -> None:
        while True:
            data = self._queue.get()
            if data is None:
                return
            try:
                self.handle(data)
            except PacsError as err:
                self.stats["failed"] += 1
                LOG.error("An object could not be handled: %s The listener goes on; send it again later.", err)
            except Exception as err:  # whatever goes wrong with one object, the listener goes on
                self.stats["failed"] += 1
                LOG.error("An object could not be handled (%s); the listener goes on.", type(err).__name__)
            finally:
                self.stats["handled"] += 1

    def handle(self, data: bytes) -> None:
        withhold_third_party_details()  # also the loggers a library made since the last object
        header = read_header(data)
        if header is None:
            self.stats["damaged"] += 1
            LOG.warning("A damaged object arrived (its DICOM header cannot be read); it was not scored.")
            return
        sop, modality = str(header.SOPInstanceUID), str(header.get("Modality", "") or "")
        name = short_id(sop)
        if not is_chest_radiograph(modality, str(header.get("BodyPartExamined", "") or "")):
            self.stats["not_chest"] += 1
            LOG.info("Instance %s is not a chest radiograph (modality %s); not scored.", name, modality or "none")
            return
        uids = result_uids(sop, str(header.StudyInstanceUID), Finding(self.scorer.model_version, "", 0.0))
        if sop in self._done or self.destination.holds(str(header.StudyInstanceUID), uids["sr"], uids["sr_series"]):
            self.stats["repeated"] += 1
            LOG.info("Instance %s arrived again; its results were already sent.", name)
            return
        self._score_and_send(data, header, name)
        self._remember(sop)

    def _score_and_send(self, data: bytes, header: pydicom.Dataset, name: str) -> None:
        (result,) = self.scorer.score([(f"{name}.dcm", data)])
        objects = self.scorer.result_objects(header, result)
        try:
            self.destination.store(objects, str(header.StudyInstanceUID))
        except PacsError as err:
            self.stats["send_failed"] += 1
            LOG.error(
                "Instance %s was scored but its results could not be sent (%s) Send the image again once the "
                "destination is back; it is not kept here.",
                name,
                err,
            )
            return
        self.stats["sent"] += 1
        if result.scored:
            self.stats["scored"] += 1
            LOG.info(
                "Instance %s: pneumonia probability %.3f, %s at %s; SR and heatmap SC sent.",
                name,
                result.probability,
                result.label,
                self.scorer.point,
            )
        else:
            self.stats["refused"] += 1
            LOG.info("Instance %s was not scored: %s An SR saying why was sent.", name, result.reason)

    def _remember(self, sop: str) -> None:
        self._done[sop] = None
        if len(self._done) > REMEMBERED:
            self._done.pop(next(iter(self._done)))
