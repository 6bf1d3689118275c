"""In a real browser (Debian's Chromium, Playwright) against `streamlit run app.py`: the release gate fails a
deliberately broken run and passes a good one, on the Evaluate page and on the Export tab, where exporting the
broken run takes a confirmation that is recorded in its report.

Both runs are real tiny-llama LoRA runs (tests/evaluation/conftest.make_run); their evaluation reports are planted
(tests/evaluation/planted.py) instead of produced by the checks, which on this shared CPU would take many minutes.
"""
from __future__ import annotations

import json
import os
import re

import pytest

from core.evaluation.gate import apply_gate
from core.evaluation.report import write_report
from tests.app.conftest import write_project
from tests.e2e.helpers import browser_page, go, idle, need_browser, streamlit_server
from tests.evaluation.conftest import make_run
from tests.evaluation.planted import broken_checks, good_checks, report
from tests.training.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]


def _plant_runs(tmp_path, home) -> None:
    os.environ["ASSISTANT_FACTORY_HOME"] = str(home)  # make_run and write_report write through core.workspace
    for run_id, checks in (("broken-run", broken_checks()), ("good-run", good_checks())):
        make_run(tmp_path, run_id=run_id)
        rep = report(run_id, checks)
        rep["gate"] = apply_gate(rep)
        write_report(rep, home / "runs" / run_id / "eval")


def _gate(home, run_id: str) -> dict:
    return json.loads((home / "runs" / run_id / "eval" / "report.json").read_text())["gate"]


def test_the_gate_fails_a_broken_run_and_passes_a_good_one(tmp_path):
    from playwright.sync_api import expect

    need_browser()
    home = tmp_path / "workspace"
    _plant_runs(tmp_path, home)
    write_project(home, active_run="broken-run")
    with streamlit_server(home) as server, browser_page() as page:
        go(page, server, "evaluate")
        expect(page.get_by_text("Release gate: fail")).to_be_visible()
        page.get_by_role("tab", name="Release gate").click()
        expect(page.get_by_role("button", name="Apply thresholds")).to_be_visible()

        go(page, server, "chat-export")
        page.get_by_role("tab", name="Export").click()
        expect(page.get_by_text("Release gate: fail")).to_be_visible()
        build = page.get_by_role("button", name="Build").first
        expect(build).to_be_disabled()
        page.get_by_text(re.compile("I understand this assistant fails the release gate")).click()
        idle(page)
        expect(build).to_be_enabled()
        build.click()
        idle(page)
        wait_for(lambda: _gate(home, "broken-run").get("overrides"), 120)
        assert _gate(home, "broken-run")["overrides"][0]["status"] == "fail"

        write_project(home, active_run="good-run")
        go(page, server, "evaluate")
        expect(page.get_by_text("Release gate: pass")).to_be_visible()
        go(page, server, "chat-export")
        page.get_by_role("tab", name="Export").click()
        expect(page.get_by_text("Release gate: pass")).to_be_visible()
        expect(page.get_by_role("button", name="Build").first).to_be_enabled()
        assert not page.get_by_text(re.compile("I understand this assistant fails")).count()
