"""The PACS round trip against a real Orthanc (DICOMweb plugin): query chest radiographs, score them
with `python -m pneumonia.score URL`, store SR + SC back, read them back and check their content;
faults (401, PACS down, nothing found, a 200-instance study) answered in words."""

from __future__ import annotations

import http.server
import io
import json
import threading
import urllib.request
from collections import Counter

import numpy as np
import pandas as pd
import pydicom
import pytest

from pneumonia import score as score_cli
from pneumonia.pacs.config import PacsConfig, PacsError, load_config, redact_url
from pneumonia.pacs.dicomweb import QIDO_PAGE, PacsClient, StudyQuery, parse_date_range
from pneumonia.pacs.results import NOT_FOR_DIAGNOSIS, read_report
from pneumonia.serving.archive.run import score_archive
from tests.pacs_studies import big_study, load, mixed_study
from tests.servers.process import free_port


def dicomweb_json(orthanc, path: str) -> list[dict]:
    with urllib.request.urlopen(f"{orthanc.dicomweb_url}{path}", timeout=30) as answer:
        return json.loads(answer.read() or b"[]")


def row_threshold(row) -> float:
    from pneumonia.serving.metadata import read_metadata
    from pneumonia.serving.model import DEFAULT_MODEL_DIR

    return float(read_metadata(DEFAULT_MODEL_DIR).operating_points["balanced"]["threshold"])


def stored_objects(orthanc, study_uid: str, modality: str) -> list[pydicom.Dataset]:
    """Every instance of ``modality`` in the study, read back from Orthanc as DICOM."""
    found = []
    for series in dicomweb_json(orthanc, f"/studies/{study_uid}/series"):
        if series["00080060"]["Value"][0] != modality:
            continue
        series_uid = series["0020000E"]["Value"][0]
        for inst in dicomweb_json(orthanc, f"/studies/{study_uid}/series/{series_uid}/instances"):
            orthanc_id = orthanc.rest("/tools/lookup", data=inst["00080018"]["Value"][0].encode(), method="POST")[0][
                "ID"
            ]
            found.append(pydicom.dcmread(io.BytesIO(orthanc.instance_bytes(orthanc_id))))
    return found


@pytest.fixture(scope="module")
def pushed(orthanc, samples, tmp_path_factory):
    """A mixed study in Orthanc, scored and pushed by the CLI twice; the folder run of the same files."""
    study = load(orthanc, mixed_study(samples, "ACC-PACS-1"))
    tmp = tmp_path_factory.mktemp("pacs-run")
    out = tmp / "r.parquet"
    argv = [orthanc.dicomweb_url, "--out", str(out), "--accession", "ACC-PACS-1", "--push-results", "--quiet"]
    first = score_cli.main(argv)
    study_id = orthanc.rest("/tools/lookup", data=study.study_uid.encode(), method="POST")[0]["ID"]
    count_after_first = len(orthanc.rest(f"/studies/{study_id}/instances"))
    second = score_cli.main(argv)
    folder = tmp / "folder"
    folder.mkdir()
    for sop in study.chest():
        (folder / f"{sop}.dcm").write_bytes(study.instances[sop])
    return {"study": study, "out": out, "codes": (first, second), "folder": folder, "count": count_after_first}


def test_a_row_per_chest_radiograph_and_ct_not_scored(pushed):
    study, rows = pushed["study"], pd.read_parquet(pushed["out"])
    assert pushed["codes"] == (0, 0)
    assert sorted(rows["file"]) == sorted(study.chest())  # the CT slice has no row
    by_kind = {study.kinds[f]: r for f, r in zip(rows["file"], rows.itertuples())}
    assert by_kind["an adult"].status == "refused" and "adult" in by_kind["an adult"].gate_reason
    assert by_kind["no pixel data"].status == "unreadable" and "no pixel data" in by_kind["no pixel data"].error
    assert {by_kind[k].status for k in ("MONOCHROME2 8-bit child", "MONOCHROME1 12-bit", "16-bit")} == {"scored"}


def test_probabilities_equal_a_folder_run_of_the_same_files(pushed, classifier, tmp_path):
    rows = pd.read_parquet(pushed["out"]).set_index("file")
    score_archive(pushed["folder"], tmp_path / "folder.parquet", classifier=classifier)
    folder = pd.read_parquet(tmp_path / "folder.parquet")
    folder.index = folder["file"].str.removesuffix(".dcm")
    both = rows.join(folder, rsuffix="_folder")
    assert (both["status"] == both["status_folder"]).all()
    scored = both[both["status"] == "scored"]
    assert len(scored) == 3
    np.testing.assert_allclose(scored["probability"], scored["probability_folder"], atol=1e-4)


def test_orthanc_holds_one_sr_per_instance_with_the_rows_probability(pushed, orthanc):
    study, rows = pushed["study"], pd.read_parquet(pushed["out"]).set_index("file")
    reports = stored_objects(orthanc, study.study_uid, "SR")
    assert len(reports) == len(rows)  # one each, refused and unreadable ones too
    for sr in reports:
        assert sr.StudyInstanceUID == study.study_uid and sr.PatientID == study.patient_id
        content = read_report(sr)
        (source,) = content["references"]
        row = rows.loc[source]
        assert content["texts"]["Intended use"] == NOT_FOR_DIAGNOSIS
        assert content["texts"]["Algorithm Version"] == row["model_version"]
        if row["status"] == "scored":
            assert abs(content["probability"] - row["probability"]) < 1e-6
            assert content["units"]["Pneumonia probability (calibrated)"] == "1"
            assert content["codes"]["AI result at the operating point"] == row["label_balanced"].capitalize()
            assert "balanced" in content["texts"]["Operating point"]
            assert content["numbers"]["Operating point threshold"] == pytest.approx(row_threshold(row), abs=1e-9)
            if not pd.isna(row["bacterial_probability"]):
                bacterial = content["numbers"]["Bacterial rather than viral estimate (if infective)"]
                assert abs(bacterial - row["bacterial_probability"]) < 1e-6
        else:
            assert content["probability"] is None
            assert content["texts"]["Reason the image was not scored"] == (
                row["error"] if row["status"] == "unreadable" else row["gate_reason"]
            )


def test_orthanc_holds_one_heatmap_sc_per_scored_instance(pushed, orthanc):
    study, rows = pushed["study"], pd.read_parquet(pushed["out"])
    captures = stored_objects(orthanc, study.study_uid, "OT")
    scored = set(rows.loc[rows["status"] == "scored", "file"])
    assert {sc.SourceImageSequence[0].ReferencedSOPInstanceUID for sc in captures} == scored
    for sc in captures:
        assert sc.StudyInstanceUID == study.study_uid and sc.BurnedInAnnotation == "YES"
        assert sc.PhotometricInterpretation == "RGB" and sc.pixel_array.ndim == 3
        assert "not for diagnosis" in sc.ImageComments
    assert len({sc.SeriesInstanceUID for sc in captures}) == 1  # a new series of their own


def test_a_second_run_pushes_nothing_new(pushed, orthanc, capsys):
    study_id = orthanc.rest("/tools/lookup", data=pushed["study"].study_uid.encode(), method="POST")[0]["ID"]
    assert len(orthanc.rest(f"/studies/{study_id}/instances")) == pushed["count"]
    rc = score_cli.main(
        [orthanc.dicomweb_url, "--out", str(pushed["out"]), "--accession", "ACC-PACS-1", "--push-results", "--quiet"]
    )
    err = capsys.readouterr().err
    assert rc == 0 and "Stored results for 0 instance(s); 6 already there." in err
    assert "(not chest radiographs): 1 CT." in err  # the results' own SR and SC series are not counted
    assert "Doe" not in err and "PID-" not in err  # no patient identifiers in what the CLI says
    assert len(orthanc.rest(f"/studies/{study_id}/instances")) == pushed["count"]


def test_a_query_that_matches_nothing_says_so(orthanc, tmp_path, capsys):
    rc = score_cli.main([orthanc.dicomweb_url, "--out", str(tmp_path / "r.parquet"), "--accession", "NO-SUCH"])
    assert rc != 0
    assert "no chest radiographs (CR/DX) match accession NO-SUCH" in capsys.readouterr().err


def test_pacs_down_is_a_clear_message_and_a_failed_exit(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PNEUMONIA_PACS_RETRIES", "1")
    url = f"http://127.0.0.1:{free_port()}/dicom-web"
    rc = score_cli.main([url, "--out", str(tmp_path / "r.parquet"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == score_cli.EXIT_PACS
    assert "cannot be reached" in err and "tried 2 times" in err and "PNEUMONIA_PACS_URL" in err


def test_a_401_names_the_credentials_and_never_shows_them(orthanc_with_users, tmp_path, capsys, monkeypatch):
    url = orthanc_with_users.dicomweb_url
    with pytest.raises(PacsError, match="refused access without credentials \\(HTTP 401\\)"):
        PacsClient(load_config({}, url=url)).check()
    monkeypatch.setenv("PNEUMONIA_PACS_USER", "reader")
    monkeypatch.setenv("PNEUMONIA_PACS_PASSWORD", "wrong-pw-123")
    rc = score_cli.main([url, "--out", str(tmp_path / "r.parquet"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == score_cli.EXIT_PACS and "HTTP 401" in err and "PNEUMONIA_PACS_PASSWORD" in err
    assert "wrong-pw-123" not in err
    monkeypatch.setenv("PNEUMONIA_PACS_PASSWORD", "secret-pw")
    PacsClient(load_config(url=url)).check()  # the right password is let in


def test_a_200_instance_study_is_listed_in_pages(orthanc):
    study = load(orthanc, big_study("ACC-BIG-200", 200))
    client = PacsClient(load_config({}, url=orthanc.dicomweb_url))
    calls = Counter()
    original = client.web.search_for_instances

    def counting(**kwargs):
        calls["pages"] += 1
        assert kwargs["limit"] == QIDO_PAGE
        return original(**kwargs)

    client.web.search_for_instances = counting
    refs = list(client.chest_instances(StudyQuery(accession="ACC-BIG-200")))
    assert sorted(r.sop for r in refs) == sorted(study.instances)
    assert calls["pages"] >= 200 // QIDO_PAGE


def test_queries_by_patient_and_date_range(orthanc, pushed):
    client = PacsClient(load_config({}, url=orthanc.dicomweb_url))
    study = pushed["study"]
    by_patient = {r.study for r in client.chest_instances(StudyQuery(patient_id=study.patient_id))}
    assert by_patient == {study.study_uid}
    inside = {r.study for r in client.chest_instances(StudyQuery(None, None, *parse_date_range("20240110-20240120")))}
    outside = {
        r.study for r in client.chest_instances(StudyQuery(None, None, *parse_date_range("2023-01-01-2023-12-31")))
    }
    assert study.study_uid in inside and study.study_uid not in outside


def test_config_from_a_toml_file_and_secrets_never_shown(tmp_path):
    path = tmp_path / "pacs.toml"
    path.write_text('[pacs]\nurl = "https://u:pw@pacs.example:8443/dicom-web"\ntoken = "tok-SECRET"\ntimeout = 5\n')
    config = load_config({"PNEUMONIA_PACS_CONFIG": str(path)})
    assert config.token == "tok-SECRET" and config.timeout == 5.0
    assert "SECRET" not in repr(config) and config.shown_url == "https://pacs.example:8443/dicom-web"
    assert load_config({}) is None  # no PACS configured: the page shows no PACS view
    assert redact_url("http://a:b@h/x?token=1") == "http://h/x"
    with pytest.raises(PacsError, match="http:// or https://"):
        load_config({"PNEUMONIA_PACS_URL": "ftp://pacs"})
    with pytest.raises(ValueError, match="ends before it starts"):
        parse_date_range("20240201-20240101")
    assert "pw" not in str(PacsConfig("https://u:pw@h/x").shown_url)


class _FaultyPacs(http.server.BaseHTTPRequestHandler):
    """A stand-in for a failing PACS (Orthanc cannot be made to answer 503 or hang): every request
    is counted, then answered 503 or left without an answer."""

    requests_seen = 0
    hang = False
    release = threading.Event()

    def do_GET(self):
        type(self).requests_seen += 1
        if type(self).hang:
            type(self).release.wait(30)  # no answer until the test is over
            return
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def faulty_pacs():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FaultyPacs)
    _FaultyPacs.requests_seen, _FaultyPacs.hang = 0, False
    _FaultyPacs.release.clear()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}/dicom-web"
    _FaultyPacs.release.set()
    server.shutdown()


def test_server_errors_are_retried_with_back_off_then_said_in_words(faulty_pacs):
    _, url = faulty_pacs
    client = PacsClient(PacsConfig(url, retries=2, timeout=5))
    with pytest.raises(
        PacsError, match=r"reported a server error \(HTTP 503\) while checking the connection \(tried 3"
    ):
        client.check()
    assert _FaultyPacs.requests_seen == 3


def test_a_slow_pacs_times_out_with_a_message(faulty_pacs):
    _, url = faulty_pacs
    _FaultyPacs.hang = True
    with pytest.raises(PacsError, match=r"did not answer within 0.3 s while searching for studies \(tried 2 times\)"):
        list(PacsClient(PacsConfig(url, retries=1, timeout=0.3)).studies(StudyQuery(accession="X")))
