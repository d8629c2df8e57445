"""On the hospital's servers (issue 26): deploy/ tested as it will run.

- every systemd unit passes ``systemd-analyze verify``; the nginx site rendered by deploy/install.sh
  passes ``nginx -t``; install.sh run twice into a temporary root (with the audit migrations and
  grants run as the owner role on a real PostgreSQL) changes nothing the second time;
- end to end: nginx with a certificate from a test CA in front of two app servers on loopback (a real
  OpenID Connect provider, PostgreSQL, Orthanc); eight readers sign in over HTTPS in headless
  Chromium, four pinned to each server, and save reads; one app server is killed mid-shift: its
  readers are moved to the other, still signed in, and save again; every saved read is in the audit
  trail and ``audit verify`` says ok; the metrics endpoint through nginx gives no data;
- the DICOM node, started as its unit starts it, scores a film, is killed, comes back on the same
  port and scores what arrives next;
- ``python -m pneumonia.health`` says what is up and what is down in one JSON line.

Every wait is for what a reader (or a server) shows, with generous ceilings: the machine is busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import ipaddress
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers.oidc import OIDC_DIR, OidcProvider
from tests.servers.oidc import _answers as provider_answers
from tests.servers.process import answers_health, free_port, serving_process
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, WAIT_MS
from tests.test_sessions import ScriptRuns

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNITS = DEPLOY / "systemd"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
VENV_PYTHON = "/opt/pneumonia-review/venv/bin/python"
READERS = 8
# eight readers on two loaded servers (and one of them killed): ceilings, never waited out
READER_WAIT_MS = 4 * WAIT_MS
WAIT_S = 300


def _need(tool: str, hint: str) -> str:
    found = shutil.which(tool) or (tool if Path(tool).exists() else None)
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{tool} is required in CI: {hint}")
        pytest.skip(f"{tool} not found: {hint}")
    return found


def _wait_until(condition, what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.2)


# ------------------------------------------------------------------ units and install.sh
def test_every_unit_passes_systemd_analyze_verify(tmp_path):
    """The units as shipped, with the venv's interpreter at this checkout's (verify checks that every
    ExecStart binary exists); the template as an instance, as systemd runs it."""
    analyze = _need("systemd-analyze", "apt-get install systemd")
    for unit in UNITS.iterdir():
        text = unit.read_text().replace(VENV_PYTHON, sys.executable)
        (tmp_path / unit.name.replace("@.service", "@8501.service")).write_text(text)
    units = sorted(p.name for p in tmp_path.iterdir())
    assert units == [
        "pneumonia-audit-verify.service",
        "pneumonia-audit-verify.timer",
        "pneumonia-listen.service",
        "pneumonia-review@8501.service",
    ]
    done = subprocess.run(
        [analyze, "verify", "--man=no", *(f"./{u}" for u in units)], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    for unit in units:
        if unit.endswith(".service"):
            settings = _unit_settings(tmp_path / unit)
            assert settings["User"] and settings["User"] != "root", unit
            for hardening in ("ProtectSystem=strict", "PrivateTmp=true", "NoNewPrivileges=true"):
                key, value = hardening.split("=")
                assert settings[key] == value, (unit, hardening)


def _unit_settings(unit: Path) -> dict[str, str]:
    """The unit's Key=value settings (the last of a repeated key; continuation lines joined)."""
    text = re.sub(r"\\\n\s*", " ", unit.read_text())
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.lstrip().startswith("#"))


def _install(root: Path, *extra: str) -> str:
    done = subprocess.run(
        ["bash", str(DEPLOY / "install.sh"), "--root", str(root), "--venv", str(Path(sys.executable).parent.parent)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def _snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root``: its kind, mode, owner, time of last change and content (or link)."""
    seen = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        if path.is_symlink():
            what = ("link", os.readlink(path))
        elif path.is_file():
            what = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            what = ("dir",)
        seen[str(path.relative_to(root))] = (*what, info.st_mode, info.st_uid, info.st_gid, info.st_mtime_ns)
    return seen


def _site_env(root: Path, **settings: str) -> None:
    folder = root / "etc" / "pneumonia-review"
    folder.mkdir(parents=True, exist_ok=True)
    lines = (DEPLOY / "site.env.example").read_text().splitlines()
    for key, value in settings.items():
        lines = [f"{key}={shlex.quote(value)}" if line.startswith(f"{key}=") else line for line in lines]
    (folder / "site.env").write_text("\n".join(lines) + "\n")


def test_install_twice_changes_nothing_the_second_time(postgres, tmp_path):
    from pneumonia.audit import AuditLog

    _need("systemd-sysusers", "apt-get install systemd")
    name = f"audit_{secrets.token_hex(6)}"
    postgres.execute(f"CREATE DATABASE {name} OWNER audit_owner")
    root = tmp_path / "root"
    _site_env(root, AUDIT_APP_ROLE="audit_app", AUDIT_HEAD_DIR="/srv/archive/audit-heads")
    credentials = root / "etc" / "pneumonia-review" / "credentials"
    credentials.mkdir(parents=True)
    (credentials / "audit-owner.env").write_text(f"PNEUMONIA_AUDIT_URL={postgres.url('audit_owner', name)}\n")

    first = _install(root)
    assert "changed: /etc/nginx/sites-available/pneumonia-review" in first
    before = _snapshot(root)
    second = _install(root)
    assert second.strip() == "nothing changed: the installation is up to date", second
    assert _snapshot(root) == before

    passwd = (root / "etc" / "passwd").read_text()
    for user in ("pneumonia-review", "pneumonia-listen", "pneumonia-audit"):
        assert re.search(rf"^{user}:x:\d+:\d+:.*:/usr/sbin/nologin$", passwd, re.M), passwd
    for secret in credentials.iterdir():
        assert secret.stat().st_mode & 0o777 == 0o600, secret  # root only
    secrets_toml = tomllib.loads((credentials / "secrets.toml").read_text())
    assert len(secrets_toml["auth"]["cookie_secret"]) == 64
    dropin = root / "etc/systemd/system/pneumonia-audit-verify.service.d/head-folder.conf"
    assert "ReadWritePaths=/srv/archive/audit-heads" in dropin.read_text()
    assert (root / "opt/pneumonia-review/app/pneumonia/audit/__main__.py").is_file()
    # the migrations ran as the owner, and the app's role may append (and not change) reviews
    log = AuditLog(postgres.url("audit_app", name))
    log.record(
        image_sha256="0" * 64,
        model_version="v",
        operating_point="balanced",
        threshold=0.5,
        heatmap_method="m",
        probability=0.5,
        label="NORMAL",
        reader_agrees=True,
    )
    assert log.verify().ok
    log.close()
    with pytest.raises(Exception, match="permission denied"):
        postgres.execute("DELETE FROM reviews", role="audit_app", database=name)


# ------------------------------------------------------------------ TLS from a test CA
@dataclass(frozen=True)
class Tls:
    ca: Path
    cert: Path
    key: Path


def _test_ca(folder: Path) -> Tls:
    """A CA and a server certificate it signed for 127.0.0.1 and localhost (``cryptography``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, issuer: x509.Name | None, key, issuer_key, *extensions):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = build("Pneumonia review test CA", None, ca_key, ca_key, (x509.BasicConstraints(ca=True, path_length=0), True))
    server = build(
        "127.0.0.1",
        ca.subject,
        server_key,
        ca_key,
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            False,
        ),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
    )
    pem = serialization.Encoding.PEM
    tls = Tls(folder / "ca.pem", folder / "fullchain.pem", folder / "privkey.pem")
    tls.ca.write_bytes(ca.public_bytes(pem))
    tls.cert.write_bytes(server.public_bytes(pem) + ca.public_bytes(pem))
    tls.key.write_bytes(server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    tls.key.chmod(0o600)
    return tls


# ------------------------------------------------------------------ nginx as install.sh renders it
def _rendered_site(folder: Path, tls: Tls, https_port: int, app_ports: list[int]) -> Path:
    root = folder / "root"
    _site_env(
        root,
        SERVER_NAME="127.0.0.1 localhost",
        HTTPS_PORT=str(https_port),
        HTTP_PORT=str(free_port()),
        LISTEN_ADDRESSES="127.0.0.1",
        TLS_CERT=str(tls.cert),
        TLS_KEY=str(tls.key),
        APP_PORTS=" ".join(map(str, app_ports)),
    )
    _install(root)
    return root / "etc" / "nginx" / "sites-available" / "pneumonia-review"


def _nginx_conf(folder: Path, site: Path) -> Path:
    """A main nginx.conf like Debian's, for an unprivileged prefix: the site is included as it is."""
    for temp in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (folder / temp).mkdir(exist_ok=True)
    user = "user root root;\n" if os.geteuid() == 0 else ""  # workers need the temporary folders
    conf = folder / "nginx.conf"
    conf.write_text(
        f"{user}worker_processes 1;\npid {folder}/nginx.pid;\nerror_log {folder}/error.log notice;\n"
        "events { worker_connections 512; }\n"
        "http {\n  include /etc/nginx/mime.types;\n  default_type application/octet-stream;\n"
        f"  access_log {folder}/access.log;\n"
        + "".join(f"  {t}_temp_path {folder}/{t};\n" for t in ("proxy", "fastcgi", "uwsgi", "scgi"))
        + f"  client_body_temp_path {folder}/body;\n  include {site};\n}}\n"
    )
    return conf


def test_the_nginx_site_passes_nginx_t_and_caps_uploads_at_the_apps_limit(tmp_path):
    _need(NGINX, "apt-get install nginx")
    tls = _test_ca(tmp_path)
    site = _rendered_site(tmp_path, tls, free_port(), [free_port(), free_port(), free_port()])
    done = subprocess.run(
        [NGINX, "-t", "-c", str(_nginx_conf(tmp_path, site)), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    text = site.read_text()
    limit_mb = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]["maxUploadSize"]
    assert f"client_max_body_size {limit_mb + 1}m;" in text  # the file plus its multipart envelope
    assert text.count("upstream pneumonia_review_") == 3 and text.count(" backup max_fails=0;") == 6
    for header in ("Strict-Transport-Security", "frame-ancestors 'none'", "X-Content-Type-Options", "Referrer-Policy"):
        assert header in text


@contextlib.contextmanager
def running_nginx(folder: Path, site: Path, https_url: str, ca: Path):
    conf = _nginx_conf(folder, site)
    context = ssl.create_default_context(cafile=str(ca))

    def answers() -> bool:
        try:
            urllib.request.urlopen(f"{https_url}/_stcore/host-config", timeout=5, context=context)
        except urllib.error.HTTPError:
            return True  # nginx answers (the app servers may still be starting)
        except OSError:
            return False
        return True

    with serving_process(
        [NGINX, "-c", str(conf), "-e", str(folder / "error.log"), "-g", "daemon off;"],
        log_path=folder / "nginx.out",
        ready=answers,
        name="nginx",
        timeout_s=60,
    ) as proc:
        yield proc


# ------------------------------------------------------------------ the provider, the app servers
@contextlib.contextmanager
def provider_for(folder: Path, https_url: str):
    """The test provider (tests/oidc) with its client's redirect URI at nginx's HTTPS address."""
    _need("node", "install Node.js 20+ and the provider: cd tests/oidc && npm ci")
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        _need(str(OIDC_DIR / "node_modules" / "oidc-provider"), "cd tests/oidc && npm ci")
    port = free_port()
    provider = OidcProvider(f"http://127.0.0.1:{port}", "pneumonia-review", secrets.token_urlsafe(24), 0, folder / "o")
    env = dict(
        os.environ,
        OIDC_CLIENT_ID=provider.client_id,
        OIDC_CLIENT_SECRET=provider.client_secret,
        OIDC_REDIRECT_URI=f"{https_url}/oauth2callback",
    )
    with serving_process(
        ["node", "server.mjs", str(port)],
        cwd=OIDC_DIR,
        env=env,
        log_path=folder / "oidc.log",
        ready=lambda: provider_answers(provider.metadata_url),
        name="the OpenID Connect provider",
        timeout_s=60,
    ):
        yield provider


def _secrets_file(folder: Path, provider: OidcProvider, https_url: str, cookie_secret: str) -> Path:
    """One secrets file for every app server: the same cookie secret signs everyone's sign-in."""
    text = provider.auth_secrets(cookie_secret).replace(provider.redirect_uri, f"{https_url}/oauth2callback")
    path = folder / "secrets.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


@contextlib.contextmanager
def app_server(folder: Path, port: int, secrets_path: Path, env: dict[str, str]):
    """One app server as its unit starts it (ExecStart's arguments), on 127.0.0.1:``port``."""
    folder.mkdir(parents=True, exist_ok=True)
    args = ["--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true"]
    args += ["--browser.gatherUsageStats", "false", "--secrets.files", str(secrets_path), "--logger.level", "info"]
    with serving_process(
        [sys.executable, "-m", "streamlit", "run", "app.py", *args],
        cwd=ROOT,
        env=env,
        log_path=folder / "streamlit.log",
        ready=lambda: answers_health(f"http://127.0.0.1:{port}"),
        name=f"the app server on port {port}",
        timeout_s=240,
    ) as proc:
        yield proc


def _app_env(folder: Path, audit_url: str, pacs_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PNEUMONIA_", "STREAMLIT_"))}
    pacs = folder / "pacs.toml"
    pacs.write_text(f'[pacs]\nurl = "{pacs_url}"\n')
    return dict(
        env,
        HOME=str(folder),
        PNEUMONIA_AUDIT_URL=audit_url,
        PNEUMONIA_PACS_CONFIG=str(pacs),
        PNEUMONIA_SITE_POINTS=str(folder / "site_operating_points.json"),
    )


def _sessions_on(port: int) -> int:
    """How many browser sessions the app server on ``port`` holds (its own metrics, on loopback)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/metrics", timeout=30) as answer:
        text = answer.read().decode()
    found = re.search(r"^active_sessions(?:\{[^}]*\})? (\d+)", text, re.M)
    assert found, text[:2000]
    return int(found.group(1))


# ------------------------------------------------------------------ readers
@dataclass
class Shift:
    reader: int
    films: list[str]  # the films this reader saved reads of, in order
    moved_signed_in: bool = False


async def _sign_in(page, url: str) -> None:
    await page.goto(url)
    await page.get_by_text("Sign in with your hospital account").wait_for()
    await page.get_by_role("button", name="Sign in").click()
    await page.locator('input[name="login"]').wait_for()
    await page.locator('input[name="login"]').fill("ada.reader")
    await page.locator('input[name="password"]').fill("any password: a test account")
    await page.locator('button[type="submit"]').click()
    consent_or_app = page.get_by_role("button", name="Continue").or_(page.get_by_text("Signed in as Ada Reader"))
    await consent_or_app.first.wait_for()
    if await page.get_by_role("button", name="Continue").count():
        await page.get_by_role("button", name="Continue").click()
    await page.get_by_text("Signed in as Ada Reader").wait_for()
    await page.get_by_role("heading", name="Review chest x-rays").wait_for()


async def _save_read(page, runs: ScriptRuns, film: Path) -> None:
    """Upload ``film``, wait for its result and the read form, agree, save, wait for the saved note."""
    step = runs.mark()
    await page.locator('input[type="file"]').set_input_files(str(film))
    await page.get_by_role("heading", name=film.name).wait_for()
    await page.get_by_text("Pneumonia probability").wait_for()
    await page.get_by_role("button", name="Save review").wait_for()  # the read form, below the result
    await runs.settled(step)
    await page.get_by_text("Agree", exact=True).click()
    step = runs.mark()
    await page.get_by_role("button", name="Save review").click()
    await page.get_by_text("Review saved by Ada Reader").wait_for()
    await runs.settled(step)


class Shifts:
    """Eight readers in one Chromium (one context each), pinned four to each app server."""

    def __init__(self, browser, url: str, films: list[Path], shots: Path):
        self.browser, self.url, self.films, self.shots = browser, url, films, shots
        self.pages: list = []
        self.runs: list[ScriptRuns] = []
        self.shifts = [Shift(i, []) for i in range(READERS)]

    async def _guarded(self, reader: int, step):
        page = self.pages[reader] if reader < len(self.pages) else None
        try:
            return await step
        except Exception as error:
            if page is None:
                raise
            shot = self.shots / f"reader{reader}.png"
            await page.screenshot(path=str(shot), full_page=True)
            text = await page.locator("body").inner_text()
            why = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise AssertionError(f"reader {reader}: {why}; page: {text[-1200:]!r}; {shot}") from None

    async def start(self, reader: int) -> None:
        context = await self.browser.new_context(ignore_https_errors=True, viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(READER_WAIT_MS)
        route = "1" if reader < READERS // 2 else "2"  # what nginx would have given: pinned to one server
        await context.add_cookies([{"name": "pneumonia_route", "value": route, "url": self.url}])
        page = await context.new_page()
        self.pages.append(page)
        self.runs.append(ScriptRuns(page))
        await self._guarded(reader, _sign_in(page, self.url))

    async def save(self, reader: int, film: Path) -> None:
        await self._guarded(reader, _save_read(self.pages[reader], self.runs[reader], film))
        self.shifts[reader].films.append(film.name)

    async def still_signed_in(self, reader: int) -> None:
        """A reader on the server that lives: the page still shows their saved read, and opened again
        it is on that server, signed in."""
        page = self.pages[reader]
        await self._guarded(reader, page.get_by_text("Review saved by Ada Reader").wait_for())
        await self.moved_and_still_signed_in(reader)

    async def moved_and_still_signed_in(self, reader: int) -> None:
        """A reader whose server died: the page's websocket reconnects through nginx to the other server
        (Streamlit then shows the old page without running it); the reader opens the page again and
        is on the other server, signed in (the worklist that was not saved is gone), never asked to
        sign in again."""
        page = self.pages[reader]

        async def reconnected():
            await page.reload()
            await page.get_by_text("Upload one or more frontal chest radiographs to begin.").wait_for()
            await page.get_by_text("Signed in as Ada Reader").wait_for()
            assert await page.get_by_text("Sign in with your hospital account").count() == 0

        await self._guarded(reader, reconnected())
        self.shifts[reader].moved_signed_in = True


async def _first_half(shifts: Shifts) -> None:
    for reader in range(READERS):  # sign-ins one after the other: the provider's pages are light
        await shifts.start(reader)
    await asyncio.gather(*(shifts.save(r, shifts.films[r]) for r in range(READERS)))


async def _second_half(shifts: Shifts, moved: range) -> None:
    await asyncio.gather(*(shifts.moved_and_still_signed_in(r) for r in moved))
    # every reader opens the page again for the next film (a fresh worklist): the moved ones on the
    # other server, the others on their own, which kept their sign-in and their session
    stayed = [r for r in range(READERS) if r not in moved]
    await asyncio.gather(*(shifts.still_signed_in(r) for r in stayed))
    await asyncio.gather(*(shifts.save(r, shifts.films[(r + 1) % READERS]) for r in range(READERS)))


def _https(url: str, ca: Path) -> tuple[int, dict, bytes]:
    context = ssl.create_default_context(cafile=str(ca))  # the chain is checked against the test CA
    try:
        with urllib.request.urlopen(url, timeout=30, context=context) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as refused:
        return refused.code, dict(refused.headers), refused.read()


def _verify(audit_url: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "pneumonia.audit", "verify", "--url", audit_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.browser
def test_two_app_servers_behind_nginx_one_killed_mid_shift_lose_no_saved_read(
    postgres_audit, orthanc, samples, tmp_path
):
    """The issue's shift: 8 readers over HTTPS, 4 on each server, server 1 killed after the first
    saved reads; its readers carry on on server 2, signed in; 16 reads in the trail, verify ok."""
    from playwright.async_api import async_playwright

    from pneumonia.audit import AuditLog

    _need(NGINX, "apt-get install nginx")
    _need(CHROMIUM, "apt-get install chromium")
    tls = _test_ca(tmp_path)
    https_port, ports = free_port(), [free_port(), free_port()]
    url = f"https://127.0.0.1:{https_port}"
    site = _rendered_site(tmp_path / "install", tls, https_port, ports)
    films = samples[:READERS]
    hashes = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in films}
    audit_url = postgres_audit.app_url

    with contextlib.ExitStack() as stack:
        provider = stack.enter_context(provider_for(tmp_path, url))
        secrets_path = _secrets_file(tmp_path, provider, url, secrets.token_hex(32))
        servers = [
            stack.enter_context(
                app_server(
                    tmp_path / f"app{n}", port, secrets_path, _app_env(tmp_path, audit_url, orthanc.dicomweb_url)
                )
            )
            for n, port in enumerate(ports, start=1)
        ]
        stack.enter_context(running_nginx(tmp_path, site, url, tls.ca))
        _outside_checks(url, tls.ca)

        async def shift() -> list[Shift]:
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    readers = Shifts(browser, url, films, tmp_path)
                    await _first_half(readers)
                    assert _sessions_on(ports[0]) >= 1 and _sessions_on(ports[1]) >= 1  # both servers in use
                    servers[0].send_signal(signal.SIGKILL)  # server 1 dies mid-shift
                    servers[0].wait(timeout=60)
                    await _second_half(readers, range(READERS // 2))
                    return readers.shifts
                finally:
                    await browser.close()

        shifts = asyncio.run(shift())
        for line in (tmp_path / "app2" / "streamlit.log").read_text().splitlines():
            assert "Traceback" not in line

    assert all(s.moved_signed_in for s in shifts[: READERS // 2])
    log = AuditLog(audit_url)
    rows = log.recent(1000)
    log.close()
    saved = sorted(hashes[film] for s in shifts for film in s.films)
    assert len(saved) == 2 * READERS
    names = {digest: name for name, digest in hashes.items()}
    in_trail = sorted(names.get(d, d[:12]) for d in rows["image_sha256"])
    said_saved = [(s.reader, s.films) for s in shifts]
    assert sorted(rows["image_sha256"]) == saved, (in_trail, said_saved)  # every saved read, once
    assert set(rows["reader"]) == {"Ada Reader"} and rows["reader_verified"].all()
    assert _verify(audit_url) == {"rows": 2 * READERS, "ok": True, "first_bad_row": None}
    _chain_head_is_exported(audit_url, rows, tmp_path / "heads")


def _outside_checks(url: str, ca: Path) -> None:
    """What anyone outside sees through nginx: the certificate checks out against the CA, the headers
    are set, a new browser is given a route, and Streamlit's internal endpoints give no data."""
    status, headers, _ = _https(f"{url}/", ca)
    assert status == 200
    assert headers["Strict-Transport-Security"].startswith("max-age=")
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "no-referrer"
    assert re.match(r"pneumonia_route=[12]; Path=/; Secure; HttpOnly; SameSite=Lax", headers["Set-Cookie"])
    for path in (
        "/_stcore/metrics",
        "/_stcore/metrics/",
        "/_stcore/%6detrics",
        "//_stcore/metrics",
        "/_stcore/agent/mcp",
    ):
        status, _, body = _https(f"{url}{path}", ca)
        assert status == 404 and b"session" not in body and b"# TYPE" not in body, (path, body[:200])
    assert _https(f"{url}/_stcore/host-config", ca)[0] == 200  # the page needs it to connect
    assert _https(f"{url}/_stcore/health", ca)[0] == 200


def _chain_head_is_exported(audit_url: str, rows, folder: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pneumonia.audit", "head", "--url", audit_url, "--out", str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    newest = rows.iloc[0]
    exported = [json.loads(p.read_text()) for p in folder.glob("audit-head-*.json")]
    assert exported == [json.loads(done.stdout)]
    assert exported[0]["row_hash"] == newest["row_hash"] and exported[0]["rows"] == int(newest["id"])


# ------------------------------------------------------------------ the DICOM node as its unit runs it
def _node_command(port: int) -> list[str]:
    """The unit's ExecStart with its settings filled in, the venv's interpreter at this checkout's."""
    settings = _unit_settings(UNITS / "pneumonia-listen.service")
    assert settings["Restart"] == "always"  # systemd starts it again after a kill
    values = {"PNEUMONIA_LISTEN_AE_TITLE": "PNEUMONIA", "PNEUMONIA_LISTEN_HOST": "127.0.0.1"}
    values["PNEUMONIA_LISTEN_PORT"] = str(port)
    command = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], settings["ExecStart"])
    return [sys.executable if part == VENV_PYTHON else part for part in shlex.split(command)]


@contextlib.contextmanager
def _node(folder: Path, port: int, env: dict[str, str]):
    def listening() -> bool:
        return "Listening as PNEUMONIA on 127.0.0.1" in (folder / "node.log").read_text()

    with serving_process(
        _node_command(port),
        cwd=ROOT,
        env=env,
        log_path=folder / "node.log",
        ready=listening,
        name="the node",
        timeout_s=WAIT_S,
    ) as proc:
        yield proc


def test_the_dicom_node_comes_back_after_a_kill_and_scores_what_arrives_next(orthanc, samples, tmp_path):
    from pneumonia.pacs.config import load_config
    from pneumonia.pacs.dicomweb import PacsClient
    from pneumonia.pacs.results import Finding, result_uids
    from pneumonia.serving.model import Classifier
    from tests.pacs_studies import mixed_study
    from tests.test_listen import send

    env = _app_env(tmp_path, f"sqlite:///{tmp_path / 'unused.sqlite'}", orthanc.dicomweb_url)
    port = free_port()
    client = PacsClient(load_config({}, url=orthanc.dicomweb_url))
    version = Classifier().version
    studies = [mixed_study(samples, f"ACC-DEPLOY-{n}") for n in (1, 2)]

    def scored(study) -> bool:
        child = next(s for s, k in study.kinds.items() if k == "MONOCHROME2 8-bit child")
        uids = result_uids(child, study.study_uid, Finding(version, "", 0.0))
        return uids["sr"] in client.existing(study.study_uid, uids["sr_series"])

    def send_child(study) -> None:
        child = next(s for s, k in study.kinds.items() if k == "MONOCHROME2 8-bit child")
        assert send(port, [study.instances[child]]) == [0]

    first = tmp_path / "first"
    first.mkdir()
    with _node(first, port, env) as node:
        send_child(studies[0])
        _wait_until(lambda: scored(studies[0]), "the first film's result is on the PACS")
        node.send_signal(signal.SIGKILL)
        node.wait(timeout=60)
    again = tmp_path / "again"
    again.mkdir()
    with _node(again, port, env):  # as systemd's Restart=always does: the same command, the same port
        send_child(studies[1])
        _wait_until(lambda: scored(studies[1]), "the next film's result is on the PACS")
    log = (first / "node.log").read_text() + (again / "node.log").read_text()
    assert "Doe" not in log and "ACC-DEPLOY" not in log and "Traceback" not in log


# ------------------------------------------------------------------ the health check
def _health(env: dict[str, str], *args: str) -> tuple[int, dict]:
    done = subprocess.run(
        [sys.executable, "-m", "pneumonia.health", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout + done.stderr
    return done.returncode, json.loads(lines[0])


def test_the_health_check_says_what_is_up_and_what_is_down(postgres_audit, orthanc, tmp_path):
    env = _app_env(tmp_path, postgres_audit.app_url, orthanc.dicomweb_url)
    code, said = _health(env)
    assert code == 0 and said == {
        "ok": True,
        "model": "ready",
        "lung segmenter": "ready",
        "audit database": "ready",
        "PACS": "ready",
    }
    closed = free_port()
    down = dict(env, PNEUMONIA_AUDIT_URL=postgres_audit.app_url.replace(str(postgres_audit.server.port), str(closed)))
    (tmp_path / "pacs.toml").write_text(f'[pacs]\nurl = "http://127.0.0.1:{closed}/dicom-web"\n')
    code, said = _health(down, "--app", f"http://127.0.0.1:{closed}", "--timeout", "5")
    assert code == 1 and not said["ok"] and said["model"] == "ready"
    for what in ("audit database", "PACS", "app server 1"):
        assert said[what] != "ready" and re.search(r"[a-z]{3,} [a-z]{3,}", said[what]), said  # words
    assert postgres_audit.server.passwords["audit_app"] not in json.dumps(said)
