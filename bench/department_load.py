"""A department's load through nginx: how many readers at once an app server holds on this machine.

nginx (HTTPS, the site deploy/install.sh renders, a certificate from a throw-away CA) in front of
``--servers`` app servers on loopback, as tests/test_deploy.py starts them; for each count in
``--readers``, that many readers at once in headless Chromium (one context each, spread over the
servers by their route cookie), each uploading ``--films`` films and stepping through them with J:

- first probability: seconds from the upload to the first probability on screen;
- J step: seconds from pressing J to the next film in the viewer (timed in the page);
- memory: each app server's resident memory before the readers and after them, and the growth per
  session (the difference over the sessions it held).

Prints one JSON object (p50 and p95 of each, over every reader's steps) with the machine's load
average before and after each round. Sign-in is off (it costs nothing once a reader is signed in).

python bench/department_load.py [--servers 2] [--readers 2,4,6] [--films 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.reading_room import _WATCH  # noqa: E402 - after the path is set
from tests import test_deploy as td  # noqa: E402
from tests.servers.process import free_port  # noqa: E402
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, WAIT_MS  # noqa: E402

STEP_WAIT_MS = 6 * WAIT_MS  # a ceiling under load, never waited out when the page answers


def films(out: Path, n: int) -> list[Path]:
    """``n`` distinct films: the samples, each copy with one pixel changed (a different image hash)."""
    import cv2

    samples = sorted((ROOT / "assets" / "samples").glob("*.jpeg"))
    paths = []
    for i in range(n):
        pixels = cv2.imread(str(samples[i % len(samples)]), cv2.IMREAD_GRAYSCALE)
        pixels[0, 0] = (int(pixels[0, 0]) + 1 + i) % 256
        path = out / f"film_{i:02d}.png"
        cv2.imwrite(str(path), pixels)
        paths.append(path)
    return paths


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 2)


async def one_reader(browser, url: str, route: int, batch: list[Path]) -> dict:
    context = await browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(STEP_WAIT_MS)
    await context.add_cookies([{"name": "pneumonia_route", "value": str(route), "url": url}])
    page = await context.new_page()
    try:
        await page.goto(url)
        await page.get_by_text("Upload one or more frontal chest radiographs to begin.").wait_for()
        start = time.perf_counter()
        await page.locator('input[type="file"]').set_input_files([str(f) for f in batch])
        await page.get_by_text("Pneumonia probability").wait_for()
        first = time.perf_counter() - start
        await page.get_by_text(f"Worklist ({len(batch)} scored of {len(batch)})").wait_for()
        await page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden")
        await page.evaluate(_WATCH)
        await page.get_by_role("heading", name="Review chest x-rays").click()  # the keys go to the page
        steps = []
        for _ in range(len(batch) - 1):
            await page.evaluate("() => { window.__seen.length = 0; }")
            t0 = await page.evaluate("() => performance.now()")
            await page.keyboard.press("j")
            seen = "t0 => window.__seen.filter(s => s[0] === 'film' && s[1] > t0)"
            await page.wait_for_function(f"t0 => ({seen})(t0).length > 0", arg=t0)
            await page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden")
            steps.append((await page.evaluate(f"t0 => ({seen})(t0)[0][1]", t0) - t0) / 1000)
        return {"first_probability_s": first, "j_steps_s": steps}
    finally:
        await context.close()


async def a_round(url: str, readers: int, servers: int, batch: list[Path]) -> list[dict]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            return await asyncio.gather(*(one_reader(browser, url, r % servers + 1, batch) for r in range(readers)))
        finally:
            await browser.close()


def summary(readers: int, servers: int, seen: list[dict], before: list[float], after: list[float], load) -> dict:
    firsts = [s["first_probability_s"] for s in seen]
    steps = [x for s in seen for x in s["j_steps_s"]]
    per_server = [readers // servers + (1 if n < readers % servers else 0) for n in range(servers)]
    return {
        "readers": readers,
        "servers": servers,
        "first_probability_p50_s": percentile(firsts, 0.5),
        "first_probability_p95_s": percentile(firsts, 0.95),
        "j_step_p50_s": percentile(steps, 0.5),
        "j_step_p95_s": percentile(steps, 0.95),
        "j_steps_timed": len(steps),
        "server_rss_before_mb": [round(b) for b in before],
        "server_rss_after_mb": [round(a) for a in after],
        "rss_per_session_mb": round(
            statistics.mean((a - b) / max(1, k) for a, b, k in zip(after, before, per_server)), 1
        ),
        "load_average_1min_before_after": load,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--readers", default="2,4,6", help="reader counts, one round each")
    parser.add_argument("--films", type=int, default=20)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="department-load-"))
    batch = films(folder, args.films)
    tls = td._test_ca(folder)
    https_port = free_port()
    url = f"https://127.0.0.1:{https_port}"
    ports = [free_port() for _ in range(args.servers)]
    site = td._rendered_site(folder / "install", tls, https_port, ports)
    no_sign_in = folder / "secrets.toml"
    no_sign_in.write_text("# no [auth]: the readers are not asked to sign in\n")
    env = td._app_env(folder, f"sqlite:///{folder / 'audit.sqlite'}", "")
    env.pop("PNEUMONIA_PACS_CONFIG")
    rounds = []
    for readers in (int(n) for n in args.readers.split(",")):
        with contextlib.ExitStack() as stack:  # fresh servers for each round: memory is per round
            procs = [
                stack.enter_context(td.app_server(folder / f"app{n}", port, no_sign_in, env))
                for n, port in enumerate(ports, start=1)
            ]
            stack.enter_context(td.running_nginx(folder, site, url, tls.ca))
            before = [rss_mb(p.pid) for p in procs]
            load = [round(os.getloadavg()[0], 1)]
            seen = asyncio.run(a_round(url, readers, args.servers, batch))
            load.append(round(os.getloadavg()[0], 1))
            after = [rss_mb(p.pid) for p in procs]
        rounds.append(summary(readers, args.servers, seen, before, after, load))
        print(json.dumps(rounds[-1]), file=sys.stderr)
    print(json.dumps({"cores": os.cpu_count(), "films_per_reader": args.films, "rounds": rounds}, indent=2))


if __name__ == "__main__":
    main()
