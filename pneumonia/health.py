"""Is everything a reader needs up? One JSON line for a monitoring system or a unit's watchdog.

    python -m pneumonia.health [--app URL ...] [--timeout SECONDS]

Checks that the model loads and answers, that the lung-field segmenter loads and answers, that the
audit database can be read at the current schema ($PNEUMONIA_AUDIT_URL, else the SQLite file), that
the PACS answers a query (the PNEUMONIA_PACS_* settings; "not configured" is not a fault) and, for
each ``--app``, that an app server's own health check answers. Prints one line such as

    {"ok": true, "model": "ready", "lung segmenter": "ready", "audit database": "ready", "PACS": "ready"}

with the reason in words where something is down, never a password or a patient identifier.
Exit 0 when everything is up, 1 when something is down.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

READY, NOT_CONFIGURED = "ready", "not configured"
DOWN = 1


def model_state() -> str:
    import numpy as np

    from pneumonia.serving.model import Classifier

    classifier = Classifier()
    side = classifier.spec.size
    probability = classifier.predict(np.full((1, side, side, 1), 0.5, np.float32))[0].probability
    if not 0.0 <= probability <= 1.0:
        return f"answers with an impossible probability ({probability})"
    return READY


def segmenter_state() -> str:
    import numpy as np

    from pneumonia.serving.lung_fields import MODEL_INPUT_SIZE, LungSegmenter

    masks = LungSegmenter().masks(np.full((1, MODEL_INPUT_SIZE, MODEL_INPUT_SIZE, 1), 0.5, np.float32))
    return READY if masks.shape == (1, MODEL_INPUT_SIZE, MODEL_INPUT_SIZE) else "answers with masks of the wrong size"


def audit_state() -> str:
    from pneumonia.audit import AuditLog

    log = AuditLog(migrate=False)  # checks the schema without changing it
    log.recent(1)
    log.close()
    return READY


def pacs_state(timeout_s: float) -> str:
    from dataclasses import replace

    from pneumonia.pacs.config import load_config
    from pneumonia.pacs.dicomweb import PacsClient

    config = load_config()
    if config is None:
        return NOT_CONFIGURED
    PacsClient(replace(config, timeout=min(config.timeout, timeout_s), retries=0)).check()
    return READY


def app_state(url: str, timeout_s: float) -> str:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/_stcore/health", timeout=timeout_s) as answer:
            return READY if answer.status == 200 else f"answers {answer.status} instead of ok"
    except urllib.error.HTTPError as error:
        return f"answers {error.code} instead of ok"
    except OSError as error:
        return f"does not answer ({getattr(error, 'reason', None) or error.strerror or 'no connection'})"


def _state(check: Callable[[], str]) -> str:
    """What ``check`` says, or the reason it failed in words (library errors here already are)."""
    try:
        return check()
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"down: {reason}"


def report(apps: list[str], timeout_s: float) -> dict[str, object]:
    states: dict[str, str] = {
        "model": _state(model_state),
        "lung segmenter": _state(segmenter_state),
        "audit database": _state(audit_state),
        "PACS": _state(lambda: pacs_state(timeout_s)),
    }
    for number, url in enumerate(apps, start=1):
        states[f"app server {number}"] = _state(lambda url=url: app_state(url, timeout_s))
    ok = all(state in (READY, NOT_CONFIGURED) for state in states.values())
    return {"ok": ok, **states}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pneumonia.health", description=__doc__.split("\n\n")[0], allow_abbrev=False
    )
    parser.add_argument("--app", action="append", default=[], help="an app server's address (repeat for more)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each server (default 10)")
    args = parser.parse_args(argv)
    verdict = report(args.app, args.timeout)
    print(json.dumps(verdict))
    return 0 if verdict["ok"] else DOWN


if __name__ == "__main__":
    sys.exit(main())
