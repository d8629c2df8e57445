"""A real Orthanc PACS with its DICOMweb plugin, on free loopback ports with a temporary storage folder.

``orthanc`` (session-scoped) starts ``/usr/sbin/Orthanc`` once for the test session and stops it at
the end; ``orthanc_with_users`` starts a second one that demands HTTP basic credentials (for the
401 tests). Where the binary or its DICOMweb plugin is missing the tests skip with how to install
them; with CI=true they fail instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers.process import ServerDidNotStart, free_port, serving_process

ORTHANC = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
START_TIMEOUT_S = 90
INSTALL_HINT = "install Orthanc and its DICOMweb plugin: apt-get install orthanc orthanc-dicomweb"


@dataclass
class OrthancServer:
    http_port: int
    dicom_port: int
    folder: Path
    aet: str = "ORTHANC"
    user: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def rest(self, path: str, data: bytes | None = None, method: str | None = None) -> object:
        """Orthanc's own REST API (JSON answer), for loading studies and checking what arrived."""
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if self.user:
            import base64

            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=30) as answer:
            body = answer.read()
        return json.loads(body) if body else None

    def upload(self, dicom: bytes) -> dict:
        return self.rest("/instances", data=dicom, method="POST")

    def instance_bytes(self, orthanc_id: str) -> bytes:
        with urllib.request.urlopen(f"{self.url}/instances/{orthanc_id}/file", timeout=30) as answer:
            return answer.read()


def _skip_or_fail(why: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{why} ({INSTALL_HINT}); CI must run the PACS tests")
    pytest.skip(f"{why}: {INSTALL_HINT}")


def orthanc_config(folder: Path, http_port: int, dicom_port: int, users: dict[str, str] | None) -> dict:
    return {
        "Name": "pneumonia-tests",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": bool(users),
        "RegisteredUsers": users or {},
        "HttpServerEnabled": True,
        "DicomServerEnabled": True,
        "StableAge": 1,
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
    }


def _answers(server: OrthancServer) -> bool:
    try:
        server.rest("/system")
        return True
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


@contextlib.contextmanager
def running_orthanc(folder: Path, users: dict[str, str] | None = None):
    """Start Orthanc with a fresh config in ``folder``; yield it once /system answers; stop it."""
    if not ORTHANC.exists() or not DICOMWEB_PLUGIN.exists():
        _skip_or_fail(f"{ORTHANC if not ORTHANC.exists() else DICOMWEB_PLUGIN} is missing")
    folder.mkdir(parents=True, exist_ok=True)
    user, password = next(iter(users.items())) if users else (None, None)
    server = OrthancServer(free_port(), free_port(), folder, user=user, password=password)
    config = folder / "orthanc.json"
    config.write_text(json.dumps(orthanc_config(folder, server.http_port, server.dicom_port, users), indent=2))
    try:
        with serving_process(
            [str(ORTHANC), str(config)],
            cwd=folder,
            log_path=folder / "orthanc.log",
            ready=lambda: _answers(server),
            name="Orthanc",
            timeout_s=START_TIMEOUT_S,
        ):
            yield server
    except ServerDidNotStart as err:
        pytest.fail(str(err))


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory):
    """One Orthanc for the session (tests add their own studies with their own UIDs)."""
    with running_orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        yield server


@pytest.fixture(scope="session")
def orthanc_with_users(tmp_path_factory):
    """An Orthanc that answers 401 without the user "reader" and password "secret-pw"."""
    with running_orthanc(tmp_path_factory.mktemp("orthanc-auth"), {"reader": "secret-pw"}) as server:
        yield server
