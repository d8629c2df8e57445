"""Roles and hardening (issue 25): each finding of the security review, reproduced as it was found, with
the safe outcome now.

AppTest drives the pages where no browser is needed (roles from the identity provider's claims through
``AppTest.user``, sign-in configured through ``AppTest.secrets``); a real Orthanc receives the DICOM
node's results; the browser tests start the app behind the real OpenID Connect provider
(tests/servers/oidc.py) and sign in through its login page in headless Chromium.
"""

from __future__ import annotations

import csv
import html
import io
import json
import logging
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from markdown_it import MarkdownIt
from pynetdicom import AE
from streamlit.testing.v1 import AppTest

from pages import identity
from pages.identity import Role
from pneumonia.audit import AuditLog
from pneumonia.core.literal import FORMULA_STARTS, csv_safe_frame, markdown_literal, plain_text
from pneumonia.pacs.config import NodeAccess, PacsConfigError, load_config, node_access
from pneumonia.pacs.dicomweb import PacsClient
from pneumonia.pacs.listener import ChestListener, DicomwebDestination
from pneumonia.pacs.scoring import InstanceScorer
from pneumonia.serving import site_points
from tests import test_browser
from tests.pacs_studies import SOP_CLASSES, mixed_study
from tests.servers.oidc import ACCOUNTS
from tests.servers.process import free_port

ROOT = Path(__file__).resolve().parent.parent
browser = test_browser.browser  # the headless-Chromium fixture, shared with tests/test_browser.py
PAGES = ROOT / "pages"
# the names the review found rendered or exported live, and the other characters that start a formula
HOSTILE_NAMES = [
    "![x](http://127.0.0.1:9/t.png).jpeg",
    "[click here](http://127.0.0.1:9/l).jpeg",
    "<img src=http://127.0.0.1:9/h.png><b>bold</b>.jpeg",
    '=HYPERLINK("http://127.0.0.1:9/","x").dcm',
    "+cmd|' /C calc'!A0.jpeg",
    "-2+3.jpeg",
    "@SUM(1+1).jpeg",
    "\tleading tab.jpeg",
    "\rleading CR.jpeg",
    ":red[directive] $x^2$ **bold** # heading.jpeg",
]
AUTH = {
    "redirect_uri": "http://127.0.0.1:9/oauth2callback",
    "cookie_secret": "a-test-cookie-secret",
    "client_id": "c",
    "client_secret": "d",
    "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
}
ADMIN = {"is_logged_in": True, "sub": "sub-admin", "name": "Ann Admin", "email": "ann@hospital.test", "groups": []}
READER = {"is_logged_in": True, "sub": "sub-reader", "name": "Rita Reader", "groups": ["radiologists"]}
VIEWER = {"is_logged_in": True, "sub": "sub-viewer", "name": "Vic Viewer", "groups": ["students"]}


# ------------------------------------------------------------------ roles


def test_roles_come_from_the_allow_list_and_group_claims():
    allowed = identity.allow_list(
        {"reader_groups": ["radiologists"], "admin_groups": ["pacs-admins"]}, {identity.ADMINS_ENV: "ann@hospital.test"}
    )
    assert identity.roles_of(ADMIN, allowed) == {Role.ADMIN, Role.VIEWER}  # an administrator need not read
    assert identity.roles_of(READER, allowed) == {Role.READER, Role.VIEWER}
    assert identity.roles_of(VIEWER, allowed) == {Role.VIEWER}
    assert Role.ADMIN in identity.roles_of({**VIEWER, "groups": ["pacs-admins"]}, allowed)
    assert identity.roles_of({"name": "no subject", "groups": ["radiologists"]}, allowed) == {Role.VIEWER}
    # no administrator unless one is named; everyone signed in reads when no reader list is set
    assert identity.roles_of(ADMIN, identity.AllowList()) == {Role.READER, Role.VIEWER}


def _signed_in_page(page: str, user: dict, **settings) -> AppTest:
    at = AppTest.from_file(str(PAGES / page), default_timeout=300)
    at.secrets["auth"] = AUTH
    at.secrets["pneumonia"] = {"reader_groups": ["radiologists"], "admins": ["ann@hospital.test"], **settings}
    at.user = user
    return at


def _labelled_folder(samples: list[Path], folder: Path, n: int | None = None) -> Path:
    for p in samples[:n]:
        kind = p.name.split("_")[0]
        (folder / kind).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, folder / kind / p.name)
    return folder


def _score_folder(at: AppTest, folder: str) -> AppTest:
    at.radio(key="site_source").set_value("Score a folder on this server").run()
    at.text_input(key="site_folder").input(folder).run()
    next(b for b in at.button if b.label == "Score this folder").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _your_data(user: dict, monkeypatch, roots: str) -> AppTest:
    monkeypatch.setenv(identity.SERVER_FOLDERS_ENV, roots)
    at = _signed_in_page("performance.py", user).run()
    at.radio(key="performance_view").set_value("Your data").run()
    return at


def test_server_folders_only_for_administrators_and_only_under_configured_roots(samples, tmp_path, monkeypatch):
    root = _labelled_folder(samples, tmp_path / "site-archive" / "site", 4).parent
    (tmp_path / "empty-outside").mkdir()
    for user in (VIEWER, READER):  # the review: any signed-in user could make the server score /etc
        at = _score_folder(_your_data(user, monkeypatch, str(root)), str(root / "site"))
        assert any("needs the site administrator role" in e.value for e in at.error)
        assert not at.metric  # nothing was scored
    at = _your_data(ADMIN, monkeypatch, str(root))
    answers = []
    for outside in ("/etc", str(tmp_path / "no-such-folder"), str(tmp_path / "empty-outside"), f"{root}/../.."):
        _score_folder(at, outside)
        answers.append([e.value for e in at.error])
    assert answers[0] and all(a == answers[0] for a in answers), answers  # existence is not told
    assert "not one this server lets the app read" in answers[0][0]
    _score_folder(at, str(root / "site"))
    assert next(m.value for m in at.metric if m.label == "Files") == "4"
    at = _score_folder(_your_data(ADMIN, monkeypatch, ""), str(root / "site"))  # no roots configured: off
    assert any("switched off here" in e.value for e in at.error)


def _save_point(at: AppTest, name: str) -> AppTest:
    at.text_input(key="site_point_name").input(name)
    next(b for b in at.button if b.label == "Save site operating point").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_only_an_administrator_saves_or_retires_a_site_point_and_the_trail_records_who(samples, tmp_path, monkeypatch):
    folder = _labelled_folder(samples, tmp_path / "roots" / "site")
    monkeypatch.setattr(site_points, "MIN_PER_CLASS", 4)  # the rule's minimum lowered to these ten films
    at = _score_folder(_your_data(ADMIN, monkeypatch, str(folder.parent)), str(folder))
    points_file = Path(os.environ["PNEUMONIA_SITE_POINTS"])
    for user in (VIEWER, READER):  # the review: a non-reader saved "Our ED, high sensitivity"
        at.user = user
        _save_point(at.run(), "Our ED, high sensitivity")
        assert any("may not save a site operating point" in e.value for e in at.error)
        assert not points_file.exists()  # nothing changed on disk
        assert not any(e.label.startswith("Site operating points offered") for e in at.expander)
    at.user = ADMIN
    assert any("Saved 'Site: Our ED" in s.value for s in _save_point(at.run(), "Our ED, high sensitivity").success)
    before = points_file.read_text()
    _save_point(at, "Our ED, high sensitivity")  # the review: saving under an existing name replaced it
    assert any("already offered" in e.value for e in at.error) and points_file.read_text() == before
    (point,) = json.loads(before)["points"]
    assert point["saved_by"] == {"name": "Ann Admin", "subject": "sub-admin", "verified": True}
    assert re.fullmatch(r"[0-9a-f]{64}", point["results_sha256"]) and point["results_rows"] == len(samples)
    at.user = VIEWER  # the retire button is not drawn for a viewer; retiring asks for the role when it acts
    assert not any(b.label == "Retire" for b in at.run().button)
    at.user = ADMIN
    next(b for b in at.run().button if b.label == "Retire").click().run()
    assert json.loads(points_file.read_text())["points"][0]["retired"]["by_id"] == "sub-admin"
    trail = AuditLog().recent(10)
    assert list(trail["label"]) == [site_points.RETIRED, site_points.SAVED]
    assert set(trail["reader_id"]) == {"sub-admin"} and set(trail["image_sha256"]) == {point["results_sha256"]}


def test_the_audit_trail_panel_is_for_readers_and_administrators_only():
    log = AuditLog()
    for who, comment in ((READER, "mine"), ({**READER, "sub": "sub-other", "name": "Other"}, "=2+3 theirs")):
        log.record(
            image_sha256="a" * 64,
            model_version="1",
            operating_point="balanced",
            threshold=0.5,
            heatmap_method="gradcam",
            probability=0.7,
            label="PNEUMONIA",
            reader_agrees=True,
            comment=comment,
            reader=who["name"],
            reader_id=who["sub"],
            reader_verified=True,
        )
    seen = {}
    for name, user in (("viewer", VIEWER), ("reader", READER), ("admin", ADMIN)):
        at = _signed_in_page("review.py", user).run()
        at.selectbox(key="sample").select_index(1).run()  # the trail is drawn below an open film
        assert not at.exception, [e.value for e in at.exception]
        seen[name] = [e.label for e in at.expander if "audit trail" in e.label.lower()]
        frames = [d.value for d in at.dataframe if "comment" in d.value.columns]
        seen[name + " comments"] = sorted(frames[0]["comment"]) if frames else []
    assert seen["viewer"] == [] and seen["viewer comments"] == []  # the review: a non-reader saw it all
    assert seen["reader"] == ["Your recent reviews (audit trail)"] and seen["reader comments"] == ["mine"]
    assert seen["admin"] == ["Audit trail (recent reviews)"] and len(seen["admin comments"]) == 2
    from pages.review import audit_csv

    exported = list(csv.DictReader(io.StringIO(audit_csv(log, True, identity.Reader("", "", False)).decode())))
    assert sorted(r["comment"] for r in exported) == ["'=2+3 theirs", "mine"]  # no live formula


# ------------------------------------------------------------------ hostile names


def test_one_function_shows_hostile_text_literally_in_markdown():
    md = MarkdownIt("commonmark")
    for name in HOSTILE_NAMES:
        rendered = md.renderInline(markdown_literal(name))
        assert "<img" not in rendered and "<a " not in rendered and "<b>" not in rendered and "<strong" not in rendered
        assert html.unescape(rendered) == plain_text(name), rendered  # every character shown as written
        assert "\r" not in markdown_literal(name) and "\n" not in markdown_literal(name)


def test_hostile_names_export_no_live_formula(classifier, pneumonia_sample):
    from pneumonia.insight import report
    from pneumonia.serving.pipeline import score

    data = pneumonia_sample.read_bytes()
    results = score(classifier, [(name, data) for name in HOSTILE_NAMES], 0.5)
    rows = list(csv.reader(io.StringIO(report.worklist_csv(results, include_names=True).decode())))
    cells = [cell for row in rows for cell in row]
    assert not [c for c in cells if c.startswith(FORMULA_STARTS)], cells
    assert any(c == "'" + HOSTILE_NAMES[3] for c in cells)  # kept, shown as text by a spreadsheet
    assert csv_safe_frame(pd.DataFrame({"n": [-1.5], "t": ["-1.5"]})).iloc[0].tolist() == [-1.5, "'-1.5"]


def test_hostile_reader_text_stays_plain_text_in_the_pdf(classifier, pneumonia_sample):
    from pneumonia.core.operating_points import ThresholdChoice
    from pneumonia.insight import report
    from pneumonia.serving.pipeline import score
    from tests.test_site_validation import _pdf_text

    (result,) = score(classifier, [(HOSTILE_NAMES[0], pneumonia_sample.read_bytes())], 0.5)
    review = report.ReaderReview("Ann\r\nAdmin", True, "<b>x</b> ![y](http://127.0.0.1:9/t.png)\r=cmd", "@ACC\t1")
    pdf = report.pdf_report(
        result,
        np.dstack([result.xray.pixels] * 3),
        model_version="v1",
        choice=ThresholdChoice("balanced", 0.5, 0.95, 0.9),
        method="Grad-CAM",
        heatmap_flat=True,
        review=review,
    )
    drawn = re.findall(r"\((.*?)\) Tj", _pdf_text(pdf))  # fpdf2's text drawing commands
    drawn = [line.replace("\\(", "(").replace("\\)", ")") for line in drawn]  # PDF strings escape ( and )
    assert "Reader: Ann Admin  |  Agrees with the model" in drawn  # on one line, as written
    assert "<b>x</b> ![y](http://127.0.0.1:9/t.png) =cmd" in " ".join(drawn)  # nothing interpreted
    assert "Accession / study reference: @ACC 1" in drawn
    assert b"/URI" not in pdf and b"/Link" not in pdf  # no link made of the address


def test_a_site_point_name_cannot_carry_markdown_html_or_a_formula():
    for name in [n for n in HOSTILE_NAMES if n == n.strip()]:  # a leading tab or CR is trimmed off
        with pytest.raises(ValueError, match="letters, digits, spaces"):
            site_points.key_for(name)
    assert site_points.key_for("Our ED, high sensitivity") == "site_our_ed_high_sensitivity"


def test_hostile_reader_text_stays_text_in_the_sr():
    from pneumonia.pacs.results import Finding, ReaderRead, read_report, structured_report
    from tests.dicom_factory import make_dicom

    source = pydicom.dcmread(io.BytesIO(make_dicom(np.zeros((64, 64), "uint16"))))
    source.StudyInstanceUID, source.SeriesInstanceUID = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    read = ReaderRead("Ann\r\nAdmin", True, "![x](http://127.0.0.1:9/t.png)\r=cmd\tend")
    finding = Finding("1.0", "balanced", 0.5, 0.7, "PNEUMONIA", read=read)
    texts = read_report(structured_report(source, finding))["texts"]
    comment = next(v for v in texts.values() if "cmd" in v)
    assert comment == "![x](http://127.0.0.1:9/t.png) =cmd end"  # one line, no control characters


# ------------------------------------------------------------------ small inputs


@pytest.mark.parametrize("films", [1, 2], ids=["one labelled film", "one class only"])
def test_your_data_on_a_tiny_folder_says_why_there_is_nothing_to_show(samples, tmp_path, monkeypatch, films):
    pneumonia = [p for p in samples if p.name.startswith("PNEUMONIA")][:films]
    folder = _labelled_folder(pneumonia, tmp_path / "tiny")
    monkeypatch.setenv(identity.SERVER_FOLDERS_ENV, str(tmp_path))
    at = AppTest.from_file(str(PAGES / "performance.py"), default_timeout=300).run()  # no sign-in: every role
    at.radio(key="performance_view").set_value("Your data").run()
    _score_folder(at, str(folder))  # the review: StreamlitValueBelowMinError (prevalence 0.0)
    assert any("Too few labelled images of each class" in w.value for w in at.warning)


# ------------------------------------------------------------------ the DICOM node


def _associate(port: int, calling: str, called: str):
    ae = AE(ae_title=calling)
    for sop_class in SOP_CLASSES.values():
        ae.add_requested_context(sop_class, pydicom.uid.ExplicitVRLittleEndian)
    return ae.associate("127.0.0.1", port, ae_title=called)


def test_the_node_refuses_other_callers_and_keeps_sender_uids_out_of_the_log(
    orthanc, samples, classifier, caplog, capfd
):
    study = mixed_study(samples, "ACC-SEC-1")
    child = next(s for s, k in study.kinds.items() if k == "MONOCHROME2 8-bit child")
    evil = pydicom.dcmread(io.BytesIO(study.instances[child]))
    client = PacsClient(load_config({}, url=orthanc.dicomweb_url))
    access = node_access({"PNEUMONIA_NODE_CALLING_AES": "CR-ROOM-1", "PNEUMONIA_NODE_ADDRESSES": "127.0.0.0/8"})
    node = ChestListener(InstanceScorer(classifier), DicomwebDestination(client), port=free_port(), access=access)
    caplog.set_level(logging.DEBUG)  # every logger, the DICOM libraries' debug lines included
    node.start()
    try:
        evil.SOPInstanceUID = "../../../../etc/evil"  # as the review sent it (pydicom's warning now filtered too)
        assert not _associate(node.port, "EVIL-SENDER", "NOT-PNEUMONIA").is_established  # the review's pair
        assert not _associate(node.port, "EVIL-SENDER", "PNEUMONIA").is_established  # not a listed sender
        assoc = _associate(node.port, "CR-ROOM-1", "PNEUMONIA")
        assert assoc.is_established
        assoc.send_c_store(evil)
        assoc.release()
        deadline = time.monotonic() + 120
        while node.stats["handled"] < 1:
            assert time.monotonic() < deadline, "the node did not handle the object"
            time.sleep(0.2)
    finally:
        node.stop()
    assert node.stats["refused_association"] == 2
    log = caplog.text + capfd.readouterr().err
    assert "asked for the AE title 'NOT-PNEUMONIA'" in log and "not on the node's list of senders" in log
    assert "etc/evil" not in log and evil.StudyInstanceUID not in log and "Doe" not in log
    assert NodeAccess(networks=node_access({"PNEUMONIA_NODE_ADDRESSES": "10.1.20.0/24"}).networks).refusal(
        "ANY", "127.0.0.1"
    )
    with pytest.raises(PacsConfigError, match="not an address or a network"):
        node_access({"PNEUMONIA_NODE_ADDRESSES": "the ward"})


def test_the_proxy_rules_the_readme_gives_are_the_ones_deployed():
    """/_stcore/metrics answered without sign-in: closed at nginx (tests/test_deploy.py requests it through
    a real nginx); the rules the README's security section shows are those deploy/ installs."""
    readme = (ROOT / "README.md").read_text()
    security = readme[readme.index("## Security") :]
    rules = re.findall(r"location \^~ (\S+) \{ return 404; \}", security[: security.index("\n## ", 5)])
    deployed = (ROOT / "deploy" / "nginx" / "pneumonia-review.conf.in").read_text()
    assert "/_stcore/metrics" in rules
    for path in rules:
        assert f"location ^~ {path} {{ return 404; }}" in deployed, path
    config = (ROOT / ".streamlit" / "config.toml").read_text()
    assert "enableAgentApi = false" in config and "enableStaticServing = false" in config


# ------------------------------------------------------------------ the app behind the real provider


def _page_addresses() -> list[str]:
    """Every page app.py registers, by the address Streamlit gives it, and a module of pages/ that is not one."""
    registered = re.findall(r'st\.Page\("pages/(\w+)\.py"', (ROOT / "app.py").read_text())
    assert len(registered) >= 4, "app.py's pages were not found"
    return [*registered, "your_data"]


@pytest.mark.browser
@pytest.mark.parametrize("address", _page_addresses())
def test_a_fresh_servers_first_request_to_a_page_address_shows_only_sign_in(
    oidc_provider, browser, cookie_secret, tmp_path, address
):
    from tests.test_signin import WAIT_MS, signed_in_app

    with signed_in_app(tmp_path, oidc_provider, cookie_secret) as url:
        page = browser.new_page()
        page.goto(f"{url}/{address}")  # the first visit this server has
        page.get_by_text("Sign in with your hospital account").wait_for(timeout=WAIT_MS)
        page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=WAIT_MS)
        headings = page.locator("h1").all_inner_texts()
        assert headings == ["Pneumonia x-ray review"], headings
        assert page.locator('input[type="file"]').count() == 0
        page.close()


@pytest.fixture(scope="module")
def cookie_secret() -> str:
    import secrets

    return secrets.token_hex(32)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status
    except urllib.error.HTTPError as refused:
        return refused.code


def _expires(url: str) -> None:
    """Wait (polling, bounded) until ``url`` answers 404 to a client without a session."""
    deadline = time.monotonic() + 120
    while _status(url) != 404:
        assert time.monotonic() < deadline, f"{url} is still served"
        time.sleep(0.5)


@pytest.mark.browser
def test_a_viewer_sees_names_as_text_no_audit_trail_and_a_download_expires(
    oidc_provider, browser, cookie_secret, pneumonia_sample, tmp_path
):
    from tests.test_browser import settle
    from tests.test_signin import WAIT_MS, _sign_in, signed_in_app

    settings = '[pneumonia]\nreader_groups = ["radiologists"]\n'
    with signed_in_app(tmp_path, oidc_provider, cookie_secret, settings) as url:
        context = browser.new_context(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
        page = context.new_page()
        fetched = []
        page.on("request", lambda request: fetched.append(request.url))
        _sign_in(page, url, "sam.viewer")
        name = HOSTILE_NAMES[0]
        page.locator('input[type="file"]').wait_for(state="attached", timeout=WAIT_MS)
        page.locator('input[type="file"]').set_input_files(
            {"name": name, "mimeType": "image/jpeg", "buffer": pneumonia_sample.read_bytes()}
        )
        page.get_by_text("Pneumonia probability").wait_for(timeout=WAIT_MS)
        settle(page)
        page.get_by_text(name, exact=True).wait_for(timeout=WAIT_MS)  # the file name, shown as written
        assert not [u for u in fetched if "127.0.0.1:9" in u]  # the review: the browser fetched t.png twice
        trail = page.get_by_text("Audit trail (recent reviews)").or_(page.get_by_text("Your recent reviews"))
        assert trail.count() == 0  # the review: a non-reader saw who read what, and downloaded it
        page.get_by_role("button", name="Prepare report (PDF)").click()
        with page.expect_download(timeout=WAIT_MS) as downloading:
            page.get_by_role("button", name="Download report (PDF)").click(timeout=WAIT_MS)
        download = downloading.value
        assert Path(download.path()).read_bytes().startswith(b"%PDF")
        assert "/media/" in download.url
        _expires(download.url)  # the review: curl without a cookie got the PDF, 200, at any time
        assert context.request.get(download.url).status == 404  # gone for the session too
        assert ACCOUNTS["sam.viewer"]["sub"] not in page.content()
        context.close()
