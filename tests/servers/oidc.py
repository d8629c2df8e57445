"""A real OpenID Connect provider (npm's certified ``oidc-provider``, tests/oidc/server.mjs) on a free
loopback port, with one confidential client whose redirect URI points at an app port reserved here.

``oidc_provider`` (module-scoped) starts ``node tests/oidc/server.mjs PORT``, waits until its
/.well-known/openid-configuration answers, yields an :class:`OidcProvider`, and stops it. Where node
or tests/oidc/node_modules is missing the tests skip with how to install them; with CI=true they fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers.process import ServerDidNotStart, free_port, serving_process

OIDC_DIR = Path(__file__).resolve().parent.parent / "oidc"
START_TIMEOUT_S = 60
INSTALL_HINT = "install Node.js 20+ and the provider: cd tests/oidc && npm ci"

# The provider's test accounts (tests/oidc/server.mjs): login name -> the claims it releases.
ACCOUNTS = {
    "ada.reader": {"sub": "f3b0c2a4-7d1e-4c55-9a61-0a2d6c1e9b17", "name": "Ada Reader", "groups": ["radiologists"]},
    "sam.viewer": {"sub": "0c9e7a51-3b2f-4e8d-8f40-5d6a2b7c1e03", "name": "Sam Viewer", "groups": ["students"]},
}


@dataclass(frozen=True)
class OidcProvider:
    url: str  # the issuer
    client_id: str
    client_secret: str
    app_port: int  # the port the app must serve on: its /oauth2callback is the client's redirect URI
    log: Path

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.app_port}/oauth2callback"

    def auth_secrets(self, cookie_secret: str, **extra: str) -> str:
        """The app's secrets.toml ``[auth]`` section for this provider (TOML text)."""
        lines = [
            "[auth]",
            f'redirect_uri = "{self.redirect_uri}"',
            f'cookie_secret = "{cookie_secret}"',
            f'client_id = "{self.client_id}"',
            f'client_secret = "{self.client_secret}"',
            f'server_metadata_url = "{self.metadata_url}"',
            'client_kwargs = { prompt = "login" }',
            *(f'{key} = "{value}"' for key, value in extra.items()),
        ]
        return "\n".join(lines) + "\n"


def _skip_or_fail(why: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{why} ({INSTALL_HINT}); CI must run the sign-in tests")
    pytest.skip(f"{why}: {INSTALL_HINT}")


def _answers(metadata_url: str) -> bool:
    try:
        with urllib.request.urlopen(metadata_url, timeout=2) as answer:
            return "authorization_endpoint" in json.loads(answer.read())
    except (urllib.error.URLError, ConnectionError, OSError, ValueError):
        return False


@contextlib.contextmanager
def running_provider(folder: Path):
    """Start the provider with a fresh client; yield it once its discovery document answers; stop it."""
    node = shutil.which("node")
    if node is None:
        _skip_or_fail("node is not on PATH")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()  # "v20.20.2"
    if int(version.lstrip("v").split(".")[0] or 0) < 20:
        _skip_or_fail(f"node {version} is too old: oidc-provider 9 needs Node.js 20 or later")
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        _skip_or_fail(f"{OIDC_DIR / 'node_modules'} is missing")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    provider = OidcProvider(
        f"http://127.0.0.1:{port}", "pneumonia-review", secrets.token_urlsafe(24), free_port(), folder / "oidc.log"
    )
    env = dict(
        os.environ,
        OIDC_CLIENT_ID=provider.client_id,
        OIDC_CLIENT_SECRET=provider.client_secret,
        OIDC_REDIRECT_URI=provider.redirect_uri,
    )
    try:
        with serving_process(
            [node, "server.mjs", str(port)],
            cwd=OIDC_DIR,
            env=env,
            log_path=provider.log,
            ready=lambda: _answers(provider.metadata_url),
            name="the OpenID Connect provider",
            timeout_s=START_TIMEOUT_S,
        ):
            yield provider
    except ServerDidNotStart as err:
        pytest.fail(str(err))


@pytest.fixture(scope="module")
def oidc_provider(tmp_path_factory):
    """A real OpenID Connect provider for one test module (its client expects the app on app_port)."""
    with running_provider(tmp_path_factory.mktemp("oidc")) as provider:
        yield provider
