"""A preference dataset through the line in a real browser (Debian's Chromium, Playwright, `streamlit run app.py`).

Upload our own preference sample (prompt, chosen, rejected), see it read as preference pairs, analyze it (the
length-bias figures), prepare it, pick DPO on Choose, train a few steps of the tiny model, and evaluate: the
page shows held-out pair accuracy for the base model and the tuned one.
"""
from __future__ import annotations

import json
import re
import shutil
import time

import pytest

from tests.e2e.helpers import ROOT, browser_page, go, idle, model_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

SAMPLE = ROOT / "assets" / "samples" / "support_preference_en.jsonl"  # 40 pairs
MAX_STEPS = "6"
EVAL_LIMIT = "4"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`streamlit run app.py` over an empty workspace whose base model is the tiny test model."""
    with model_server(tmp_path_factory, "e2e-pref", "tiny-llama") as srv:
        yield srv


@pytest.fixture(scope="module")
def page(server):
    with browser_page() as pg:
        yield pg


def _project(server) -> dict:
    return json.loads((server["home"] / "project.json").read_text())


def _lap(name: str, since: float) -> float:
    now = time.perf_counter()
    print(f"[e2e preference] {name}: {now - since:.1f} s", flush=True)
    return now


def test_preference_pairs_through_the_line_to_pair_accuracy(server, page, tmp_path):
    from playwright.sync_api import expect

    clock = time.perf_counter()
    # 2 Upload the pairs as a user's own file
    pairs = tmp_path / "support prefs.jsonl"
    shutil.copy(SAMPLE, pairs)
    go(page, server, "upload")
    page.get_by_role("tab", name="Your file").click()
    page.locator("input[type=file]").set_input_files(str(pairs))
    expect(page.get_by_text(re.compile(r"Read as Preference pairs .*: 40 preference pairs"))).to_be_visible(
        timeout=60_000)
    expect(page.get_by_text("Chosen", exact=True).first).to_be_visible()
    idle(page)
    clock = _lap("2 upload", clock)

    # 3 Analyze: the preference report (length bias, identical pairs)
    go(page, server, "analyze")
    expect(page.get_by_text("Chosen is longer")).to_be_visible(timeout=120_000)
    expect(page.get_by_text("Identical pairs")).to_be_visible()
    clock = _lap("3 analyze", clock)

    # 4 Prepare
    go(page, server, "prepare")
    page.get_by_role("button", name="Prepare dataset").click()
    idle(page)
    expect(page.get_by_text("Kind of dataset: Preference pairs (preference tuning).")).to_be_visible(timeout=120_000)
    dataset = _project(server)["active_dataset"]
    assert json.loads((server["home"] / "datasets" / dataset / "meta.json").read_text())["kind"] == "preference"
    clock = _lap("4 prepare", clock)

    # 5 Choose: DPO, the quick preset, a handful of steps
    go(page, server, "choose")
    page.get_by_text("DPO (direct preference optimisation)").click()
    idle(page)
    page.get_by_text("Quick", exact=False).first.click()
    idle(page)
    page.get_by_role("spinbutton", name="Max steps (0 = no limit)").fill(MAX_STEPS)
    page.get_by_role("button", name="Save settings").click()
    idle(page)
    expect(page.get_by_text("Settings saved.")).to_be_visible()
    config = _project(server)["run_config"]
    assert config["objective"] == "dpo" and config["train"]["max_steps"] == int(MAX_STEPS)
    clock = _lap("5 choose", clock)

    # 6 Train to the end; the page draws the reward curves of a preference run
    go(page, server, "train")
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_text("Training finished.")).to_be_visible(timeout=1_200_000)
    idle(page)
    expect(page.get_by_text("Rewards (DPO/ORPO)")).to_be_visible()
    run_id = _project(server)["active_run"]
    assert json.loads((server["home"] / "runs" / run_id / "config.json").read_text())["objective"] == "dpo"
    clock = _lap("6 train", clock)

    # 7 Evaluate: pair accuracy of base and tuned, no release-gate checks
    go(page, server, "evaluate")
    expect(page.get_by_text(re.compile("do not apply to a preference run"))).to_be_visible()
    page.get_by_role("spinbutton", name="Examples (0 = all)").fill(EVAL_LIMIT)
    page.get_by_role("button", name="Evaluate").click()
    for label in ("Pair accuracy, base model", "Pair accuracy, tuned"):
        card = page.get_by_test_id("stMetric").filter(has_text=label)
        expect(card).to_contain_text(re.compile(r"\d+\.\d%"), timeout=900_000)
    idle(page)
    report = json.loads((server["home"] / "runs" / run_id / "eval" / "report.json").read_text())
    assert report["pairs"]["base"]["n"] == report["pairs"]["tuned"]["n"] == int(EVAL_LIMIT)
    shown = f"{report['pairs']['tuned']['accuracy']:.1%}"
    expect(page.get_by_test_id("stMetric").filter(has_text="Pair accuracy, tuned")).to_contain_text(shown)
    assert "Pair accuracy: base" in (server["home"] / "runs" / run_id / "eval" / "report.html").read_text()
    _lap("7 evaluate", clock)
