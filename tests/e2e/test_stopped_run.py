"""In a real browser (Debian's Chromium, Playwright) against `streamlit run app.py`:

(a) a run started, stopped early, then evaluated, chatted with and exported as of its checkpoint;
(b) the Streamlit server's own CPU while the Train page is open during a run: under 10% of one core.

The workspace is seeded with a prepared dataset and a run config (pages 1-5 are the other browser test's job);
the trainer sleeps a little after each step (AF_DEBUG_STEP_DELAY) so the tiny model's run lasts long enough.
"""
from __future__ import annotations

import json
import re
import time
import zipfile
from pathlib import Path

import pytest

from tests.app.conftest import RUN_CONFIG, seed_dataset, write_project
from tests.e2e.helpers import ask_in_chat, browser_page, download_first_export, need_browser, streamlit_server
from tests.training.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

STEP_DELAY_S = "0.5"
CPU_WINDOW_S = 30.0
CPU_LIMIT = 0.10  # of one core
CONFIG = {**RUN_CONFIG, "train": {**RUN_CONFIG["train"], "max_steps": 400, "batch_size": 2, "eval_every": 5,
                                  "save_every": 3}}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`streamlit run app.py` (no file watcher) over a seeded workspace with the tiny model."""
    need_browser()
    home = tmp_path_factory.mktemp("e2e-stopped") / "workspace"
    seed_dataset(home, n=120)
    write_project(home, active_dataset="demo-data", run_config=CONFIG)
    with streamlit_server(home, {"AF_DEBUG_STEP_DELAY": STEP_DELAY_S}) as srv:
        yield srv


@pytest.fixture(scope="module")
def page(server):
    with browser_page(height=1600) as pg:
        yield pg


def _status(home: Path, run_id: str) -> dict:
    try:
        return json.loads((home / "runs" / run_id / "status.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _start_run(page, server) -> str:
    """Open the Train page, press Start, and return the new run's id once it is training."""
    home = server["home"]
    before = json.loads((home / "project.json").read_text()).get("active_run")
    page.goto(f"{server['url']}/train")
    page.get_by_role("button", name="Start training").click()
    run_id = wait_for(lambda: (json.loads((home / "project.json").read_text()).get("active_run") or before) != before
                      and json.loads((home / "project.json").read_text())["active_run"], 60)
    wait_for(lambda: _status(home, run_id).get("state") == "running" and (_status(home, run_id).get("step") or 0) > 0,
             300)
    return run_id


def test_train_page_costs_the_server_almost_no_cpu(server, page):
    import psutil

    home = server["home"]
    run_id = _start_run(page, server)
    from playwright.sync_api import expect

    expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible(timeout=120_000)
    step0 = _status(home, run_id).get("step") or 0
    proc = psutil.Process(server["pid"])
    before, t0 = proc.cpu_times(), time.monotonic()
    time.sleep(CPU_WINDOW_S)
    after, elapsed = proc.cpu_times(), time.monotonic() - t0
    used = (after.user - before.user) + (after.system - before.system)  # the server alone, not the trainer
    steps = (_status(home, run_id).get("step") or 0) - step0
    print(f"\nserver CPU {used:.2f} s over {elapsed:.1f} s ({100 * used / elapsed:.1f}% of a core); "
          f"{steps} training steps meanwhile", flush=True)
    assert _status(home, run_id).get("state") == "running" and steps > 0  # the page was live all along
    assert used / elapsed < CPU_LIMIT
    page.get_by_role("button", name=re.compile("Stop")).click()
    wait_for(lambda: _status(home, run_id).get("state") in ("stopped", "completed", "failed"), 120)


def test_a_stopped_run_is_evaluated_chatted_with_and_exported_as_of_its_checkpoint(server, page, tmp_path):
    from playwright.sync_api import expect

    home = server["home"]
    run_id = _start_run(page, server)
    wait_for(lambda: list((home / "runs" / run_id / "checkpoints").glob("step-*/peft.safetensors")), 300)
    page.get_by_role("button", name=re.compile("Stop")).click()
    final = wait_for(lambda: _status(home, run_id).get("state") in ("stopped", "failed", "completed")
                     and _status(home, run_id), 180)
    assert final["state"] == "stopped", final
    expect(page.get_by_text(re.compile(r"This run stopped at step \d+"))).to_be_visible(timeout=60_000)
    step = int(re.search(r"step (\d+)", page.get_by_text(re.compile(r"This run stopped at step")).inner_text())[1])

    # Evaluate as of the checkpoint
    page.goto(f"{server['url']}/evaluate")
    expect(page.get_by_text(f"checkpoint as of step {step} of")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("Resume"))).to_be_visible()
    page.get_by_role("spinbutton", name="Examples (0 = all)").fill("2")
    page.get_by_role("button", name="Evaluate").click()
    expect(page.get_by_text(re.compile(r"2 test examples"))).to_be_visible(timeout=900_000)
    report = json.loads((home / "runs" / run_id / "eval" / "report.json").read_text())
    assert report["weights"]["step"] == step and report["weights"]["final"] is False

    # Chat with it
    page.goto(f"{server['url']}/chat-export")
    expect(page.get_by_text(f"checkpoint as of step {step} of")).to_be_visible()
    ask_in_chat(page)

    # Export it: the adapter as of that step
    page.get_by_role("tab", name="Export").click()
    expect(page.get_by_text(f"checkpoint as of step {step}, not a finished run")).to_be_visible()
    target = download_first_export(page, tmp_path)
    assert f"-step{step}-adapter" in target.name
    with zipfile.ZipFile(target) as zf:
        assert any(n.endswith("adapter_config.json") for n in zf.namelist())
