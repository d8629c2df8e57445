"""``python -m pneumonia.score URL``: every CR/DX instance a DICOMweb query finds -> a row each in a
resumable parquet file (``file`` is the SOPInstanceUID; the other columns as a folder run's), and
with ``push`` its SR and SC stored back into its study.

Instances are listed page by page and fetched a few at a time into memory (nothing is written to
disk but the results file). Other modalities (CT, MR, SR, ...) are left out at the query: they get
no row, and the summary counts their series. A rerun scores only the instances not yet in the
results, and pushes only the results the PACS does not hold yet (the objects' UIDs are fixed, so
"already there" is a lookup).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pneumonia.pacs.config import PacsError
from pneumonia.pacs.dicomweb import InstanceRef, PacsClient, StudyQuery
from pneumonia.pacs.results import Finding, result_uids
from pneumonia.pacs.scoring import InstanceScorer, read_header
from pneumonia.serving import site_points
from pneumonia.serving.archive.discover import Item
from pneumonia.serving.archive.engines import PartSink
from pneumonia.serving.archive.rows import RowSpec, result_row
from pneumonia.serving.archive.store import KeySet, ResultStore, keys_of

if TYPE_CHECKING:
    from pneumonia.serving.model import Classifier

FETCH_BATCH = 8  # instances held in memory at once


@dataclass
class PacsRunSummary:
    out: Path
    found: int = 0  # CR/DX instances the query found
    already_done: int = 0  # found and already in the results (and, with push, in the PACS)
    scored_now: int = 0  # rows written by this run
    refused_now: int = 0  # of those, not scored (refused or unreadable)
    pushed: int = 0  # instances whose results were stored by this run
    already_in_pacs: int = 0  # instances whose results the PACS already held
    skipped_series: Counter = field(default_factory=Counter)  # modality -> series left out
    problems: list[str] = field(default_factory=list)  # in words, no patient identifiers
    stopped_by: str | None = None  # the PACS failure that ended the run early
    seconds: float = 0.0


def pacs_row_spec(classifier: Classifier, shown_url: str) -> RowSpec:
    points = site_points.operating_points(classifier.metadata)
    return RowSpec(
        model_version=classifier.version,
        thresholds={k: float(v["threshold"]) for k, v in points.items()},
        default_point=classifier.default_operating_point,
        extra={"input_name": shown_url, "input_kind": "dicomweb"},
    )


@dataclass
class _Work:
    ref: InstanceRef
    row: bool  # needs a row in the results
    push: bool  # needs its results stored in the PACS


class PacsRun:
    """One run (see the module docstring); ``progress(n)`` after every n instances handled."""

    def __init__(self, client: PacsClient, scorer: InstanceScorer, push: bool, progress: Callable[[int], None]):
        self.client, self.scorer, self.push, self.progress = client, scorer, push, progress
        self._stored: dict[str, set[str]] = {}  # study -> result UIDs the PACS holds

    def _held(self, study: str) -> set[str]:
        if study not in self._stored:
            probe = result_uids("", study, Finding(self.scorer.model_version, "", 0.0))
            self._stored = {study: self.client.existing(study, probe["sr_series"])}  # one study at a time
        return self._stored[study]

    def skipped_counter(self, summary: PacsRunSummary):
        """Counts the series left out by modality, except the series this model's results are in."""

        def count(study: str, series: str, modality: str) -> None:
            ours = result_uids("", study, Finding(self.scorer.model_version, "", 0.0))
            if series not in (ours["sr_series"], ours["sc_series"]):
                summary.skipped_series[modality] += 1

        return count

    def plan(self, refs: Iterator[InstanceRef], done: KeySet, summary: PacsRunSummary) -> Iterator[_Work]:
        """The instances that need scoring, each once."""
        for ref in refs:
            summary.found += 1
            key = keys_of([ref.sop])
            row = not bool(done.contains(key)[0])
            done.add(key)
            push = False
            if self.push:
                sr = result_uids(ref.sop, ref.study, Finding(self.scorer.model_version, "", 0.0))["sr"]
                push = sr not in self._held(ref.study)
                summary.already_in_pacs += not push
            if row or push:
                yield _Work(ref, row, push)
            else:
                summary.already_done += 1
                self.progress(1)

    def handle(self, batch: list[_Work], spec: RowSpec, sink: PartSink, summary: PacsRunSummary) -> None:
        named = [(f"{w.ref.sop}.dcm", self.client.retrieve(w.ref)) for w in batch]
        results = self.scorer.score(named)
        rows = []
        for work, (_, data), result in zip(batch, named, results):
            if work.row:
                rows.append(result_row(Item(work.ref.sop, "", None), result, spec, data))
                summary.refused_now += result.status != "scored"
            if work.push:
                self._push(work.ref, data, result, summary)
        sink.add(rows)
        summary.scored_now += len(rows)
        self.progress(len(batch))

    def _push(self, ref: InstanceRef, data: bytes, result, summary: PacsRunSummary) -> None:
        header = read_header(data)
        if header is None:
            summary.problems.append("An instance is too damaged to reference from a result; nothing was stored for it.")
            return
        objects = self.scorer.result_objects(header, result)
        self.client.store(objects, ref.study)
        self._held(ref.study).update(str(o.SOPInstanceUID) for o in objects)
        summary.pushed += 1


def _batches(work: Iterator[_Work], size: int) -> Iterator[list[_Work]]:
    batch: list[_Work] = []
    for item in work:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def score_pacs(
    client: PacsClient,
    query: StudyQuery,
    out: str | Path,
    scorer: InstanceScorer,
    *,
    push: bool = False,
    progress: Callable[[int], None] | None = None,
    part_rows: int = 64,
) -> PacsRunSummary:
    """Score what ``query`` finds into ``out`` (resumable); with ``push`` store SR + SC back. A PACS
    failure part-way keeps the rows so far and is reported in ``stopped_by``; one before anything
    was found raises :class:`PacsError`."""
    start = time.perf_counter()
    summary = PacsRunSummary(Path(out))
    client.check()
    store = ResultStore(out)
    spec = store.open(pacs_row_spec(scorer.classifier, client.config.shown_url))
    run = PacsRun(client, scorer, push, progress or (lambda n: None))
    sink = PartSink(store.commit, spec, part_rows)
    try:
        refs = client.chest_instances(query, skipped=run.skipped_counter(summary))
        for batch in _batches(run.plan(refs, store.done_keys(), summary), FETCH_BATCH):
            run.handle(batch, spec, sink, summary)
    except PacsError as err:
        summary.stopped_by = str(err)
    finally:
        sink.flush()
        store.finish(spec)
    summary.seconds = time.perf_counter() - start
    return summary
