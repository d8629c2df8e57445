"""Named readers: the hospital's sign-in (OpenID Connect) in front of the app, and the server hardening a
security review asks for.

The browser tests run the app with an ``[auth]`` secrets file (passed with ``--secrets.files``, never
written into the repository's .streamlit/) against a real provider (npm's ``oidc-provider``, started by
tests/servers/oidc.py), sign in through the provider's own login page in headless Chromium, record a
read, sign out, and read the audit row back. The server's stdout/stderr are scanned for patient
identifiers, file names and the secrets.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import subprocess
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pages import identity
from tests import test_browser
from tests.servers.oidc import ACCOUNTS, OidcProvider
from tests.servers.process import free_port, running_streamlit
from tests.test_browser import WAIT_MS, settle

ROOT = Path(__file__).resolve().parent.parent
PATIENT_NAME, PATIENT_ID = "Doe^Jane", "MRN-123456"  # what tests/dicom_factory.py puts in a DICOM
DICOM_NAME = "Doe_Jane_MRN-123456_chest.dcm"  # a file name that carries identifiers, as exports often do
browser = test_browser.browser  # the headless-Chromium fixture, shared with tests/test_browser.py


# ------------------------------------------------------------------ who may record (no server)
def test_allow_list_comes_from_the_environment_and_the_secrets():
    allowed = identity.allow_list(
        {"readers": ["Ada.Reader@hospital.test"], "reader_groups": ["Radiologists"], "group_claim": "roles"},
        {identity.READERS_ENV: " sub-1 , b@hospital.test"},
    )
    assert allowed.readers == {"ada.reader@hospital.test", "sub-1", "b@hospital.test"}
    assert allowed.groups == {"radiologists"} and allowed.group_claim == "roles"
    assert not identity.allow_list({}, {})  # nothing configured: everyone who signs in may record


@pytest.mark.parametrize(
    ("claims", "may"),
    [
        ({"sub": "sub-1", "name": "A"}, True),
        ({"sub": "x", "email": "ADA.READER@hospital.test"}, True),
        ({"sub": "x", "groups": ["radiologists", "staff"]}, True),
        ({"sub": "x", "groups": "radiologists"}, True),
        ({"sub": "x", "name": "Sam Viewer", "groups": ["students"]}, False),
        ({"name": "No Subject"}, False),
    ],
)
def test_only_listed_readers_or_groups_may_record(claims, may):
    allowed = identity.AllowList(frozenset({"sub-1", "ada.reader@hospital.test"}), frozenset({"radiologists"}))
    why = identity.refusal(claims, allowed)
    assert (why == "") is may
    if not may:
        assert "not on this server's list of readers" in why or "stable user id" in why


def test_everyone_signed_in_may_record_without_an_allow_list_and_names_fall_back():
    assert identity.refusal({"sub": "x"}, identity.AllowList()) == ""
    assert identity.display_name({"sub": "s", "email": "e@h.test"}) == "e@h.test"
    assert identity.display_name({"sub": "s", "name": " Ada "}) == "Ada"


def test_a_sign_in_older_than_a_shift_has_expired():
    assert identity.sign_in_expired({"auth_time": 1000}, hours=12, now=1000 + 13 * 3600)
    assert not identity.sign_in_expired({"iat": 1000}, hours=12, now=1000 + 3600)
    assert not identity.sign_in_expired({}, hours=12)


def test_server_config_keeps_xsrf_protection_and_an_upload_limit():
    server = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]
    assert server["enableXsrfProtection"] is True
    assert 0 < server["maxUploadSize"] <= 50  # MB
    assert "cookieSecret" not in server  # secrets live in the secrets file or the environment only
    assert not (ROOT / ".streamlit" / "secrets.toml").exists() or _ignored(".streamlit/secrets.toml")


def _ignored(path: str) -> bool:
    return subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0


def test_without_sign_in_a_typed_reader_is_recorded_unverified():
    from streamlit.testing.v1 import AppTest

    from pneumonia.audit import AuditLog

    at = AppTest.from_file(str(ROOT / "pages" / "review.py"), default_timeout=180).run()
    assert "unverified" in at.text_input(key="reader").label
    at.selectbox(key="sample").select_index(1).run()
    at.text_input(key="reader").input("AB").run()
    at.radio[0].set_value("Agree")
    next(b for b in at.button if b.label == "Save review").click().run()
    assert not at.exception, [e.value for e in at.exception]
    row = AuditLog().recent().iloc[0]
    assert row["reader"] == "AB" and row["reader_id"] == "" and not row["reader_verified"]


# ------------------------------------------------------------------ the app behind a real provider


def _start_app(tmp: Path, provider: OidcProvider, cookie_secret: str, settings: str, extra_env: dict[str, str]):
    secrets_file = tmp / "secrets.toml"
    secrets_file.write_text(provider.auth_secrets(cookie_secret) + settings)
    secrets_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PNEUMONIA_", "STREAMLIT_"))}
    env.update(
        PNEUMONIA_AUDIT_DB=str(tmp / "audit.sqlite"),
        PNEUMONIA_SITE_POINTS=str(tmp / "site_operating_points.json"),
        **extra_env,
    )
    extra = ("--secrets.files", str(secrets_file), "--logger.level", "info")
    return running_streamlit(ROOT, tmp, provider.app_port, env, extra)


@contextlib.contextmanager
def signed_in_app(tmp: Path, provider: OidcProvider, cookie_secret: str, settings: str = "", **extra_env: str):
    """``streamlit run app.py`` on the provider's app port with an ``[auth]`` secrets file (plus
    ``settings``, more TOML); yields its URL once /_stcore/health answers; stops it (so the whole log
    can be read afterwards)."""
    with _start_app(tmp, provider, cookie_secret, settings, extra_env) as url:
        yield url


def _upload_status(url: str, xsrf_token: str | None) -> int:
    """What the server answers a file upload (to a session that does not exist) with or without the XSRF
    token (the ``_streamlit_xsrf`` cookie echoed in the X-Xsrftoken header, as the app's page sends it)."""
    request = urllib.request.Request(f"{url}/_stcore/upload_file/a-session/a-file", data=b"x", method="PUT")
    if xsrf_token:
        request.add_header("Cookie", f"_streamlit_xsrf={xsrf_token}")
        request.add_header("X-Xsrftoken", xsrf_token)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status
    except urllib.error.HTTPError as refused:
        return refused.code


def _xsrf_token(url: str) -> str:
    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=30) as answer:
        cookies = answer.headers.get_all("Set-Cookie") or []
    return next(c.split(";")[0].split("=", 1)[1] for c in cookies if c.startswith("_streamlit_xsrf="))


def _sign_in(page, url: str, login: str) -> None:
    """From the app's sign-in screen through the provider's own login (and consent) page, back to the app."""
    page.goto(url)
    page.get_by_text("Sign in with your hospital account").wait_for(timeout=WAIT_MS)
    page.get_by_role("button", name="Sign in").click()
    page.locator('input[name="login"]').wait_for(timeout=WAIT_MS)  # the provider's page
    page.locator('input[name="login"]').fill(login)
    page.locator('input[name="password"]').fill("any password: a test account")
    page.locator('button[type="submit"]').click()
    consent_or_app = page.get_by_role("button", name="Continue").or_(page.get_by_text("Signed in as"))
    consent_or_app.first.wait_for(timeout=WAIT_MS)
    if page.get_by_role("button", name="Continue").count():
        page.get_by_role("button", name="Continue").click()
    page.get_by_text(f"Signed in as {ACCOUNTS[login]['name']}").wait_for(timeout=WAIT_MS)


def _sign_out(page) -> None:
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Yes, sign me out").click(timeout=WAIT_MS)  # the provider's end-session page
    page.get_by_text("Sign in with your hospital account").wait_for(timeout=WAIT_MS)


def _record_read(page, xray: Path, agree: str = "Agree") -> None:
    page.locator('input[type="file"]').set_input_files(str(xray))
    page.get_by_text("Pneumonia probability").wait_for(timeout=WAIT_MS)
    settle(page)
    page.get_by_text(agree, exact=True).click()
    page.get_by_role("button", name="Save review").click()


@pytest.fixture(scope="module")
def cookie_secret() -> str:
    return secrets.token_hex(32)


@pytest.mark.browser
def test_signed_in_reader_is_recorded_and_sign_out_ends_the_session(
    oidc_provider,
    browser,
    cookie_secret,
    pneumonia_sample,
    tmp_path,
):
    from pneumonia.audit import AuditLog

    with signed_in_app(tmp_path, oidc_provider, cookie_secret) as url:
        context = browser.new_context(viewport={"width": 1400, "height": 1100})
        page = context.new_page()
        page.goto(url)
        page.get_by_text("Sign in with your hospital account").wait_for(timeout=WAIT_MS)
        assert page.get_by_role("heading", name="Review chest x-rays").count() == 0  # no page of the app before sign-in
        _sign_in(page, url, "ada.reader")
        page.get_by_role("heading", name="Review chest x-rays").wait_for(timeout=WAIT_MS)
        assert page.get_by_label("Reader (your name or initials; unverified)").count() == 0  # nothing to type
        _record_read(page, pneumonia_sample)
        page.get_by_text("Review saved by Ada Reader").wait_for(timeout=WAIT_MS)
        assert cookie_secret not in page.content() and oidc_provider.client_secret not in page.content()
        # XSRF protection on: an upload without the token is refused (403) before the session is even looked up
        assert _upload_status(url, None) == 403 and _upload_status(url, _xsrf_token(url)) == 400
        _sign_out(page)
        assert not [c for c in context.cookies() if c["name"].startswith("_streamlit_user")]
        again = context.new_page()  # the same browser, a new tab: the sign-in is gone
        again.goto(url)
        again.get_by_text("Sign in with your hospital account").wait_for(timeout=WAIT_MS)
        context.close()
    rows = AuditLog(tmp_path / "audit.sqlite").recent(10)
    assert len(rows) == 1
    row = rows.iloc[0]
    assert row["reader"] == "Ada Reader" and row["reader_id"] == ACCOUNTS["ada.reader"]["sub"]
    assert bool(row["reader_verified"]) and bool(row["reader_agrees"])
    log = (tmp_path / "streamlit.log").read_text()
    assert cookie_secret not in log and oidc_provider.client_secret not in log


@pytest.mark.browser
def test_a_reader_off_the_allow_list_can_view_but_not_record(
    oidc_provider,
    browser,
    cookie_secret,
    normal_sample,
    tmp_path,
):
    from pneumonia.audit import AuditLog

    with signed_in_app(tmp_path, oidc_provider, cookie_secret, PNEUMONIA_READERS="ada.reader@hospital.test") as url:
        context = browser.new_context(viewport={"width": 1400, "height": 1100})
        page = context.new_page()
        _sign_in(page, url, "sam.viewer")
        page.get_by_text("is not on this server's list of readers").first.wait_for(timeout=WAIT_MS)
        _record_read(page, normal_sample)
        page.get_by_text("but not record reads").nth(1).wait_for(timeout=WAIT_MS)  # sidebar note and form error
        assert page.get_by_text("Review saved by").count() == 0
        context.close()
    assert AuditLog(tmp_path / "audit.sqlite").recent(10).empty


@pytest.mark.browser
def test_a_group_on_the_allow_list_records_and_the_next_reader_on_the_same_browser_is_asked_again(
    oidc_provider,
    browser,
    cookie_secret,
    samples,
    tmp_path,
):
    """[pneumonia] reader_groups against the group claim of the provider's ID token; on a shared
    workstation the next person signs in with their own account after the first signs out."""
    from pneumonia.audit import AuditLog

    groups = '[pneumonia]\nreader_groups = ["radiologists"]\n'
    with signed_in_app(tmp_path, oidc_provider, cookie_secret, groups) as url:
        context = browser.new_context(viewport={"width": 1400, "height": 1100})
        page = context.new_page()
        _sign_in(page, url, "ada.reader")
        _record_read(page, samples[0], "Disagree")
        page.get_by_text("Review saved by Ada Reader").wait_for(timeout=WAIT_MS)
        _sign_out(page)
        _sign_in(page, url, "sam.viewer")  # the provider asks for the login again (prompt=login)
        page.get_by_text("Sam Viewer is not on this server's list of readers").wait_for(timeout=WAIT_MS)
        assert page.get_by_text("Review saved by").count() == 0  # nothing of the last reader's session
        context.close()
    rows = AuditLog(tmp_path / "audit.sqlite").recent(10)
    assert list(rows["reader_id"]) == [ACCOUNTS["ada.reader"]["sub"]] and not rows.iloc[0]["reader_agrees"]


@pytest.mark.browser
def test_no_patient_identifiers_file_names_or_secrets_in_the_server_logs(
    oidc_provider,
    browser,
    cookie_secret,
    normal_sample,
    tmp_path,
):
    """A DICOM with a patient name and ID, in a file named after them, is uploaded by a signed-in reader;
    the server's stdout/stderr (at info level) hold none of them, nor the cookie or client secret."""
    from tests.dicom_factory import make_dicom
    from tests.helpers import gray_pixels

    dicom = tmp_path / DICOM_NAME
    dicom.write_bytes(make_dicom(gray_pixels(normal_sample), bits=8, age="004Y", view="PA"))
    with signed_in_app(tmp_path, oidc_provider, cookie_secret) as url:
        context = browser.new_context(viewport={"width": 1400, "height": 1100})
        page = context.new_page()
        _sign_in(page, url, "ada.reader")
        _record_read(page, dicom)
        page.get_by_text("Review saved by Ada Reader").wait_for(timeout=WAIT_MS)
        assert PATIENT_NAME not in page.inner_text("body")  # the file name is shown to its reader; tags are not
        _sign_out(page)
        context.close()
    log = (tmp_path / "streamlit.log").read_text()
    for secret in (PATIENT_NAME, "Doe", "Jane", PATIENT_ID, "ACC-987", DICOM_NAME, "Doe_Jane"):
        assert secret not in log, f"{secret!r} appears in the server log"
    for secret in (cookie_secret, oidc_provider.client_secret):
        assert secret not in log, "a secret appears in the server log"
    assert not re.search(r"Traceback", log), log[-3000:]


@pytest.mark.browser
def test_the_sign_in_screen_says_when_the_provider_does_not_answer(browser, cookie_secret, tmp_path):
    """[auth] names a provider that is down: every page, even one asked for by its address, shows the
    sign-in screen with the reason, and its button is disabled."""
    down = OidcProvider(f"http://127.0.0.1:{free_port()}", "pneumonia-review", "unused", free_port(), tmp_path / "x")
    with signed_in_app(tmp_path, down, cookie_secret) as url:
        page = browser.new_page()
        page.goto(f"{url}/performance")
        page.get_by_text("does not answer, so nobody can sign in right now").wait_for(timeout=WAIT_MS)
        assert page.get_by_role("button", name="Sign in").is_disabled()
        assert page.get_by_role("heading", name="Model performance").count() == 0
        page.close()
