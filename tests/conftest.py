"""Shared fixtures: real sample x-rays from assets/, the shipped classifier, an isolated audit DB."""

from __future__ import annotations

from pathlib import Path

import pytest

# fixtures that start real servers (PostgreSQL, Orthanc, the OpenID Connect provider), one module each
pytest_plugins: list[str] = ["tests.servers.oidc", "tests.servers.postgres", "tests.servers.orthanc"]

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "assets" / "samples").glob("*.jpeg"))


@pytest.fixture(autouse=True)
def _isolated_audit_db(tmp_path, monkeypatch):
    """No test ever writes to the user's real audit trail or site operating points."""
    monkeypatch.setenv("PNEUMONIA_AUDIT_DB", str(tmp_path / "audit.sqlite"))
    monkeypatch.delenv("PNEUMONIA_AUDIT_URL", raising=False)
    monkeypatch.setenv("PNEUMONIA_SITE_POINTS", str(tmp_path / "site_operating_points.json"))


@pytest.fixture(scope="session")
def samples() -> list[Path]:
    assert len(SAMPLES) >= 8, "assets/samples must hold the sample x-rays"
    return SAMPLES


@pytest.fixture(scope="session")
def normal_sample() -> Path:
    return next(p for p in SAMPLES if p.name.startswith("NORMAL"))


@pytest.fixture(scope="session")
def pneumonia_sample() -> Path:
    return next(p for p in SAMPLES if p.name.startswith("PNEUMONIA"))


@pytest.fixture(scope="session")
def classifier():
    from pneumonia.serving.model import Classifier

    return Classifier()
