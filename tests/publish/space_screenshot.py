"""Serve the Space app on 127.0.0.1 and drive it with headless Chromium (Playwright, no browser download).

Also a command to refresh the screenshot in the docs::

    python -m tests.publish.space_screenshot RESULTS_FILE docs/images/space.png
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REPO_ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_app(results: Path, log: Path, timeout: float = 240):
    """Run ``spaces_app/app.py`` on a free local port with ``results`` (relative to the current folder).

    Yields the app's URL; the app's output goes to ``log``.
    """
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "GRADIO_"))}
    env.update(HF_TSEL_RESULTS_PATH=str(results), GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port),
               GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1",
               NO_PROXY="127.0.0.1,localhost", PYTHONPATH=str(REPO_ROOT))
    url = f"http://127.0.0.1:{port}/"
    with open(log, "w") as log_file:
        proc = subprocess.Popen([sys.executable, str(REPO_ROOT / "spaces_app" / "app.py")], env=env,
                                stdout=log_file, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the app exited with code {proc.returncode}:\n{log.read_text()[-3000:]}")
                try:
                    with urllib.request.urlopen(url, timeout=5) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the app did not answer on {url} within {timeout:.0f} s:\n"
                                       f"{log.read_text()[-3000:]}")
                time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def chromium_page(width: int = 1400, height: int = 1000):
    """A Playwright page in the system Chromium; requests to anything but 127.0.0.1 are blocked."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
                ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")) else route.abort())
            yield page
        finally:
            browser.close()


# gradio 6 renders Dataframe rows as div.virtual-row > div.body-cell
ROW_SELECTOR = "#leaderboard .virtual-row"
MODELS_JS = f"""() => [...document.querySelectorAll('{ROW_SELECTOR}')]
    .map(row => (row.querySelectorAll('.body-cell')[1] || {{}}).innerText?.trim())"""


def leaderboard_models(page) -> list[str]:
    """The model column (the second) of the leaderboard, top to bottom."""
    return page.evaluate(MODELS_JS)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    results, out = Path(argv[0]), Path(argv[1])
    out.parent.mkdir(parents=True, exist_ok=True)
    with serve_app(results, out.with_suffix(".log")) as url, chromium_page() as page:
        page.goto(url)
        page.wait_for_selector(ROW_SELECTOR, timeout=120_000)
        page.wait_for_timeout(1000)
        page.screenshot(path=str(out), full_page=True)
    out.with_suffix(".log").unlink()
    print(f"screenshot written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
