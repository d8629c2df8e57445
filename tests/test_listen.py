"""The DICOM node (`python -m pneumonia.listen`): a pynetdicom client sends chest radiographs, a CT
slice and a damaged object to it; the results arrive in a real Orthanc, once each."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import time

import pydicom
import pytest
from pynetdicom import AE

from pneumonia.pacs.config import PacsConfig, load_config
from pneumonia.pacs.dicomweb import PacsClient
from pneumonia.pacs.listener import ChestListener, CStoreDestination, DicomwebDestination, parse_dest_ae
from pneumonia.pacs.results import Finding, result_uids
from pneumonia.pacs.scoring import InstanceScorer
from tests.pacs_studies import SOP_CLASSES, mixed_study
from tests.servers.process import free_port

WAIT_S = 120


def send(port: int, datasets: list[bytes], called: str = "PNEUMONIA") -> list[int]:
    """C-STORE each DICOM file to the node; the statuses it answered."""
    ae = AE(ae_title="MODALITY")
    for sop_class in SOP_CLASSES.values():
        ae.add_requested_context(sop_class, pydicom.uid.ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    assert assoc.is_established
    try:
        return [assoc.send_c_store(pydicom.dcmread(io.BytesIO(d))).Status for d in datasets]
    finally:
        assoc.release()


def wait_until(condition, what: str):
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.2)


def damaged(data: bytes) -> bytes:
    """A DX whose pixel data is cut short: it parses, but its pixels cannot be read."""
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.PixelData = ds.PixelData[:1000]
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.fixture
def scorer(classifier):
    return InstanceScorer(classifier)


def test_scores_on_arrival_and_results_arrive_once(orthanc, samples, scorer, caplog):
    study = mixed_study(samples, "ACC-LISTEN-1")
    child = next(s for s, k in study.kinds.items() if k == "MONOCHROME2 8-bit child")
    ct = next(s for s, k in study.kinds.items() if k == "a CT slice")
    broken = damaged(study.instances[child])
    client = PacsClient(load_config({}, url=orthanc.dicomweb_url))
    listener = ChestListener(scorer, DicomwebDestination(client), port=free_port())
    caplog.set_level(logging.INFO, logger="pneumonia.listen")
    listener.start()
    try:
        statuses = send(listener.port, [study.instances[child], study.instances[ct], broken, study.instances[child]])
        assert statuses == [0, 0, 0, 0]  # everything is acknowledged, nothing refused at the door
        wait_until(lambda: listener.stats["handled"] == 4, "the node handled all four objects")
    finally:
        listener.stop()
    assert listener.stats["scored"] == 1 and listener.stats["not_chest"] == 1 and listener.stats["repeated"] == 1
    assert listener.stats["refused"] == 1  # the damaged one: an SR saying why
    uids = result_uids(child, study.study_uid, Finding(scorer.model_version, "", 0.0))
    assert client.existing(study.study_uid, uids["sr_series"]) >= {uids["sr"]}
    assert uids["sc"] in client.existing(study.study_uid, uids["sc_series"])
    assert len(client.existing(study.study_uid, uids["sr_series"])) == 2  # the child's and the damaged one's
    log = caplog.text
    assert "not a chest radiograph (modality CT)" in log and "arrived again" in log and "corrupt" in log
    assert "Doe" not in log and "MRN" not in log and "ACC-LISTEN" not in log and child not in log


def test_results_by_c_store_to_another_node(orthanc, samples, scorer):
    study = mixed_study(samples, "ACC-LISTEN-2")
    child = next(s for s, k in study.kinds.items() if k == "MONOCHROME1 12-bit")
    called, host, port = parse_dest_ae(f"ORTHANC@127.0.0.1:{orthanc.dicom_port}")
    listener = ChestListener(scorer, CStoreDestination("PNEUMONIA", called, host, port), port=free_port())
    listener.start()
    try:
        assert send(listener.port, [study.instances[child]]) == [0]
        client = PacsClient(load_config({}, url=orthanc.dicomweb_url))
        uids = result_uids(child, study.study_uid, Finding(scorer.model_version, "", 0.0))
        wait_until(lambda: uids["sc"] in client.existing(study.study_uid, uids["sc_series"]), "the SC is in Orthanc")
        assert uids["sr"] in client.existing(study.study_uid, uids["sr_series"])
    finally:
        listener.stop()
    with pytest.raises(ValueError, match="AE@host:port"):
        parse_dest_ae("ORTHANC-127.0.0.1")


def test_the_command_starts_listens_and_stops(orthanc):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pneumonia.listen", "--port", str(port), "--dest", orthanc.dicomweb_url],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    try:
        line = ""
        deadline = time.monotonic() + WAIT_S
        while "Listening as PNEUMONIA on 127.0.0.1" not in line:
            assert proc.poll() is None and time.monotonic() < deadline, "the node did not start"
            line = proc.stderr.readline()
        ae = AE(ae_title="ECHO")
        ae.add_requested_context("1.2.840.10008.1.1")
        assoc = ae.associate("127.0.0.1", port, ae_title="PNEUMONIA")
        assert assoc.is_established and assoc.send_c_echo().Status == 0
        assoc.release()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    assert proc.returncode == 0


def test_a_destination_that_is_down_is_logged_and_the_node_goes_on(samples, scorer, caplog):
    study = mixed_study(samples, "ACC-LISTEN-3")
    child = next(s for s, k in study.kinds.items() if k == "MONOCHROME2 8-bit child")
    dead = PacsClient(PacsConfig(f"http://127.0.0.1:{free_port()}/dicom-web", retries=0, timeout=5))
    listener = ChestListener(scorer, DicomwebDestination(dead), port=free_port())
    caplog.set_level(logging.INFO, logger="pneumonia.listen")
    listener.start()
    try:
        assert send(listener.port, [study.instances[child]]) == [0]
        wait_until(lambda: listener.stats["handled"] == 1, "the node handled the object")
        assert send(listener.port, [study.instances[child]]) == [0]  # still listening, and tries again
        wait_until(lambda: listener.stats["handled"] == 2, "the node handled the object again")
    finally:
        listener.stop()
    assert listener.stats["failed"] == 2 and listener.stats["sent"] == 0
    assert "cannot be reached" in caplog.text and "send it again later" in caplog.text
