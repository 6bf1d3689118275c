"""What both browser tests share: Debian's Chromium, a `streamlit run app.py` server, and waiting for Streamlit."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
IDLE_JS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return app && app.getAttribute('data-test-script-state') === 'notRunning'
        && !document.querySelector('[data-stale="true"]')
        && !document.querySelector('[data-testid="stSkeleton"]');
}"""


def need_browser() -> None:
    """Skip when Chromium or playwright is missing (never `playwright install`)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api")


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def model_server(tmp_path_factory, name: str, model: str) -> Iterator[dict]:
    """`streamlit run app.py` over a fresh empty workspace whose base model is ``model`` (the Define page keeps a
    model set in project.json, so a walk on a tiny model never converts SmolLM2)."""
    need_browser()
    home = tmp_path_factory.mktemp(name) / "workspace"
    home.mkdir()
    (home / "project.json").write_text(json.dumps({"base_model": model}))
    with streamlit_server(home) as srv:
        yield srv


@contextmanager
def streamlit_server(home: Path, env_extra: dict | None = None) -> Iterator[dict]:
    """`streamlit run app.py` (no file watcher) over workspace ``home``; stops it and any run it left."""
    port = free_port()
    env = {**os.environ, "ASSISTANT_FACTORY_HOME": str(home), "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    env.setdefault("ASSISTANT_FACTORY_MODELS", str(ROOT / "workspace" / "models"))
    log = open(home.parent / "streamlit.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.headless", "true", "--browser.gatherUsageStats", "false",
                             "--server.fileWatcherType", "none"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, home)
        yield {"url": url, "home": home, "pid": proc.pid}
    finally:
        _stop_runs(home)
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _wait_healthy(url: str, proc: subprocess.Popen, home: Path, limit_s: float = 90) -> None:
    deadline = time.time() + limit_s
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    pytest.fail("streamlit did not start: " + (home.parent / "streamlit.log").read_text()[-2000:])


def _stop_runs(home: Path) -> None:
    """Stop any trainer the test left in its own workspace."""
    os.environ["ASSISTANT_FACTORY_HOME"] = str(home)
    from core.runs import stop
    from core.workspace import list_ids

    for rid in list_ids("runs"):
        stop(rid)


@contextmanager
def browser_page(height: int = 1800) -> Iterator:
    """A Playwright page in headless Chromium that accepts downloads."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": height}, accept_downloads=True)
        pg = context.new_page()
        pg.set_default_timeout(60_000)
        try:
            yield pg
        finally:
            context.close()
            browser.close()


def idle(page, timeout: float = 120) -> None:
    """Wait until Streamlit has finished running the script: no 'Running…' icon, no stale elements."""
    for _ in range(2):  # twice: a rerun can start just after the first quiet moment
        page.wait_for_timeout(400)
        page.wait_for_function(IDLE_JS, timeout=timeout * 1000)


def go(page, server: dict, path: str) -> None:
    """Open a page of the app and wait for it to settle."""
    page.goto(f"{server['url']}/{path}")
    page.get_by_test_id("stSidebar").wait_for()
    idle(page)


def build_first_export(page) -> None:
    """Press the first Build of the Export tab, first confirming a failing release gate when the tab asks (the
    export then records the confirmation); the confirmation is only offered when the gate fails."""
    build = page.get_by_role("button", name="Build").first
    build.wait_for()
    confirm = page.get_by_text("I understand this assistant fails the release gate")
    if build.is_disabled() and confirm.count():
        confirm.click()
        idle(page)
    build.click()


def ask_in_chat(page, text: str = "Where is my order?") -> None:
    """Send ``text`` on the Chat tab and wait for both answers (tuned beside base: three messages in all)."""
    from playwright.sync_api import expect

    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(text)
    box.press("Enter")
    expect(page.get_by_test_id("stChatMessage")).to_have_count(3, timeout=300_000)
    idle(page)


def download_first_export(page, folder: Path) -> Path:
    """Build the Export tab's first format (confirming a failing gate if asked), download it into ``folder``."""
    import re

    build_first_export(page)
    idle(page)
    with page.expect_download() as info:
        page.get_by_role("button", name=re.compile(r"Download \(")).first.click()  # not a table's "Download as CSV"
    target = folder / info.value.suggested_filename
    info.value.save_as(target)
    return target
