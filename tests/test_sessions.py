"""Several readers on one server (issue 18, item 4), and the review page while the audit database is down.

The browser test starts ONE app server (tests/test_browser.py's ``running_app``) with its audit on the
PostgreSQL fixture (the app's own role) where PostgreSQL is installed, else on a SQLite file, and drives
eight browser contexts (eight separate Streamlit sessions) at the same time with asyncio playwright in
Debian's headless Chromium. Each session uploads a different sample x-ray, sees only its own upload,
image and result (no file name, result or reader of another session), types its own reader name and
records a read; then the audit holds exactly eight new rows, each with its session's reader and image
hash, and ``python -m pneumonia.audit verify`` says ok. Every wait is for what the reader sees and for
the script run a step caused to end (read off the page's websocket), never a fixed time, with generous
ceilings (the machine may be busy).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers.process import free_port
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, WAIT_MS, running_app

ROOT = Path(__file__).resolve().parent.parent
SESSIONS = 8
# eight sessions score, explain and save on one loaded server at once: each wait may take many times
# what it takes alone; these are ceilings, never waited out when the page shows what is expected
SESSION_WAIT_MS = 4 * WAIT_MS
READER_LABEL = "Reader (your name or initials; unverified)"


class ScriptRuns:
    """One page's script runs as its websocket carries them: the reruns the page asks for and the
    server's reports that a run finished and that the script stopped running.

    Streamlit may drop a click that lands while an earlier run of the same session is still going
    (seen here: a Save after the reader name's Enter did nothing), and a busy machine makes that
    window long; so each step waits until the run it caused is over before the next one."""

    def __init__(self, page):
        self._events: list[str] = []
        self._changed = asyncio.Event()
        page.on("websocket", self._watch)

    def _watch(self, socket) -> None:
        socket.on("framesent", self._sent)
        socket.on("framereceived", self._received)

    def _note(self, event: str) -> None:
        self._events.append(event)
        self._changed.set()

    def _sent(self, payload) -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg

        if isinstance(payload, bytes) and BackMsg.FromString(payload).WhichOneof("type") == "rerun_script":
            self._note("requested")

    def _received(self, payload) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        if not isinstance(payload, bytes):
            return
        message = ForwardMsg.FromString(payload)
        kind = message.WhichOneof("type")
        if kind == "script_finished":
            self._note(ForwardMsg.ScriptFinishedStatus.Name(message.script_finished))
        elif kind == "session_status_changed" and not message.session_status_changed.script_is_running:
            self._note("stopped")

    def mark(self) -> int:
        return len(self._events)

    def _settled(self, since: int) -> bool:
        """A rerun was asked for since ``since``, and the last run after it finished (not cut short to
        make way for another) and the script has stopped."""
        after = self._events[since:]
        if "requested" not in after:
            return False
        last = after[len(after) - after[::-1].index("requested") :]
        finished = [e for e in last if e.startswith("FINISHED")]
        return bool(finished) and finished[-1] != "FINISHED_EARLY_FOR_RERUN" and last[-1] == "stopped"

    async def settled(self, since: int) -> None:
        async with asyncio.timeout(SESSION_WAIT_MS / 1000):
            while not self._settled(since):
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
def audit_url(request, tmp_path, monkeypatch) -> str:
    """The audit database the app server writes to: a fresh PostgreSQL database reached as the app's
    role where PostgreSQL is installed (required under CI=true), else a SQLite file."""
    try:
        url = request.getfixturevalue("postgres_audit").app_url
    except pytest.skip.Exception:
        url = f"sqlite:///{tmp_path / 'shared-audit.sqlite'}"
    monkeypatch.setenv("PNEUMONIA_AUDIT_URL", url)  # running_app passes the environment on to the server
    return url


@dataclass
class Seen:
    """What one session showed its reader."""

    reader: str
    file: str
    probability: str
    uploads_listed: list[str]
    text_before_save: str
    text_after_save: str
    exceptions: int


async def _read_in_own_session(browser, url: str, xray: Path, reader: str, shots: Path) -> Seen:
    """One reader in one browser context: upload the x-ray, wait for its result, type the name, agree,
    save. Should a wait run out, the page as it was (a screenshot in ``shots``) and its text are reported."""
    from playwright.async_api import Error as PlaywrightError

    context = await browser.new_context(viewport={"width": 1400, "height": 1100})
    context.set_default_timeout(SESSION_WAIT_MS)
    page = await context.new_page()
    try:
        return await _read(page, url, xray, reader)
    except (PlaywrightError, TimeoutError) as error:
        shot = shots / f"{reader.replace(' ', '_')}.png"
        await page.screenshot(path=str(shot), full_page=True)
        text = await page.locator("body").inner_text()
        why = str(error).splitlines()[0] if str(error) else "a script run did not end"
        raise AssertionError(f"{reader} ({xray.name}): {why}; page: {text[-1500:]!r}; {shot}") from None
    finally:
        await context.close()


async def _read(page, url: str, xray: Path, reader: str) -> Seen:
    runs = ScriptRuns(page)
    await page.goto(url, timeout=SESSION_WAIT_MS)
    await page.get_by_text("Upload one or more frontal chest radiographs to begin.").wait_for()
    await runs.settled(0)
    step = runs.mark()
    await page.locator('input[type="file"]').set_input_files(str(xray))
    chips = page.locator('[data-testid="stFileChipName"]')  # the uploaded files the uploader lists
    await chips.and_(page.locator(f'[title="{xray.name}"]')).wait_for()
    await page.get_by_role("heading", name=xray.name).wait_for()
    await page.get_by_text("Pneumonia probability").wait_for()
    await page.get_by_text("Audit trail (recent reviews)").wait_for()  # the run reached the page's end
    await runs.settled(step)
    main = page.locator('[data-testid="stMain"]')
    seen = Seen(
        reader=reader,
        file=xray.name,
        probability=await page.locator('[data-testid="stMetricValue"]').first.inner_text(),
        uploads_listed=await chips.evaluate_all("names => names.map(n => n.title)"),  # shown shortened
        text_before_save=await main.inner_text(),
        text_after_save="",
        exceptions=0,
    )
    reader_box = page.get_by_role("textbox", name=READER_LABEL, exact=True)
    await reader_box.fill(reader)
    step = runs.mark()
    await reader_box.press("Enter")
    await runs.settled(step)
    await page.get_by_text("Agree", exact=True).click()  # in the form: no run until Save
    step = runs.mark()
    await page.get_by_role("button", name="Save review").click()
    await page.get_by_text(f"Review saved by {reader}").wait_for()
    await runs.settled(step)
    seen.text_after_save = await main.inner_text()
    seen.exceptions = await page.locator('[data-testid="stException"]').count()
    return seen


async def _eight_readers_at_once(url: str, picks: list[Path], readers: list[str], shots: Path) -> list[Seen]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            return await asyncio.gather(
                *(_read_in_own_session(browser, url, xray, reader, shots) for xray, reader in zip(picks, readers))
            )
        finally:
            await browser.close()


def _verify(url: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "pneumonia.audit", "verify", "--url", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _need_chromium() -> None:
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} not found; install Debian's Chromium with: sudo apt-get install chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.mark.browser
def test_eight_readers_at_once_keep_their_own_worklists_and_each_read_lands_once(
    audit_url, classifier, samples, tmp_path
):
    from pneumonia.audit import AuditLog
    from pneumonia.insight.report import format_probability
    from pneumonia.serving.pipeline import score

    _need_chromium()
    picks = samples[:SESSIONS]
    readers = [f"Reader {chr(ord('A') + i)}{i}" for i in range(SESSIONS)]  # "Reader A0" ... "Reader H7"
    hashes = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in picks}
    expected = {
        r.name: format_probability(r.probability)
        for r in score(classifier, [(p.name, p.read_bytes()) for p in picks], 0.5)
    }
    log = AuditLog(audit_url)
    rows_before = len(log.recent(10_000))

    with running_app(tmp_path) as url:
        seen = asyncio.run(_eight_readers_at_once(url, picks, readers, tmp_path))

    for one in seen:
        others = [p.name for p in picks if p.name != one.file] + [r for r in readers if r != one.reader]
        assert one.uploads_listed == [one.file], one.uploads_listed  # its own upload only
        assert one.probability == expected[one.file], (one.file, one.probability)
        for text in (one.text_before_save, one.text_after_save):
            leaked = [o for o in others if o in text]
            assert not leaked, f"{one.reader}'s page shows another session's {leaked}"
        assert one.exceptions == 0

    rows = log.recent(10_000)
    new = rows.iloc[: len(rows) - rows_before]  # newest first
    assert len(new) == SESSIONS, new[["reader", "image_sha256"]]
    assert sorted(zip(new["reader"], new["image_sha256"])) == sorted(
        (reader, hashes[p.name]) for reader, p in zip(readers, picks)
    )
    assert not new["reader_verified"].any() and new["reader_agrees"].all()
    log.close()
    verdict = _verify(audit_url)
    assert verdict == {"rows": rows_before + SESSIONS, "ok": True, "first_bad_row": None}


# ------------------------------------------------------------------ the audit database down (AppTest)
def test_saving_a_read_and_the_audit_trail_say_so_when_the_audit_database_is_down(monkeypatch):
    from streamlit.testing.v1 import AppTest

    password = "not-shown-4711"
    monkeypatch.setenv("PNEUMONIA_AUDIT_URL", f"postgresql://audit_app:{password}@127.0.0.1:{free_port()}/audit")
    at = AppTest.from_file(str(ROOT / "pages" / "review.py"), default_timeout=300).run()
    at.selectbox(key="sample").select_index(1).run()
    at.text_input(key="reader").input("AB").run()
    assert not at.exception, [e.value for e in at.exception]
    trail = next(e for e in at.expander if e.label == "Audit trail (recent reviews)")
    assert len(trail.error) == 1 and "cannot be reached" in trail.error[0].value  # no table, no traceback
    at.radio[0].set_value("Agree")
    next(b for b in at.button if b.label == "Save review").click().run()
    assert not at.exception, [e.value for e in at.exception]
    said = [e.value for e in at.error]
    down = [s for s in said if "cannot be reached" in s]
    assert len(down) == 2 and any("Reviews cannot be saved" in s for s in down), said  # the form and the trail
    assert not any(s.value.startswith("Review saved by") for s in at.success)
    assert password not in " ".join(said)
