"""Start a real server as a child process, wait for what says it is ready, stop it afterwards."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerDidNotStart(RuntimeError):
    """The server exited or never answered; the message ends with its log."""


def stop(proc: subprocess.Popen, timeout_s: float = 30) -> None:
    """Terminate, then kill what does not end within ``timeout_s``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def serving_process(
    cmd: list[str],
    *,
    log_path: Path,
    ready: Callable[[], bool],
    name: str,
    timeout_s: float,
    cwd: Path | None = None,
    env: dict | None = None,
) -> Iterator[subprocess.Popen]:
    """Run ``cmd`` with its output in ``log_path``; yield once ``ready()`` is true (polled, never a fixed
    wait); raise :class:`ServerDidNotStart` with the log's tail if it exits first or ``timeout_s`` passes."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout_s
            while not ready():
                if proc.poll() is not None:
                    raise ServerDidNotStart(f"{name} exited at start-up:\n{Path(log_path).read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    raise ServerDidNotStart(
                        f"{name} did not answer within {timeout_s:.0f} s:\n{Path(log_path).read_text()[-3000:]}"
                    )
                time.sleep(0.1)
            yield proc
        finally:
            stop(proc)


def answers_health(url: str) -> bool:
    """Streamlit's own health check answers 200."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def running_streamlit(root: Path, tmp: Path, port: int, env: dict, extra_args: tuple[str, ...] = ()) -> Iterator[str]:
    """``streamlit run app.py`` from ``root`` on 127.0.0.1:``port`` (its log in ``tmp/streamlit.log``);
    yields the URL once the health check answers; stops the server afterwards."""
    import sys

    args = ["--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(port)]
    args += ["--browser.gatherUsageStats", "false", *extra_args]
    url = f"http://127.0.0.1:{port}"
    with serving_process(
        [sys.executable, "-m", "streamlit", "run", "app.py", *args],
        cwd=root,
        env=env,
        log_path=tmp / "streamlit.log",
        ready=lambda: answers_health(url),
        name="the app",
        timeout_s=180,
    ):
        yield url
