"""Page 8's Export tab builds GGUF files (f16, q8_0) in a background job and offers the .gguf and the Modelfile."""
from __future__ import annotations

import json
import time

import pytest

from core.chat import run_weights
from core.export import available, gguf_folder, gguf_state
from tests.app.conftest import open_page, write_project
from tests.serve.conftest import RUN_ID, make_serve_run
from ui.i18n import t


@pytest.fixture
def gguf_run(workspace, tmp_path):
    make_serve_run(tmp_path)
    write_project(workspace, active_run=RUN_ID)
    return RUN_ID


def _until(quant: str, states: tuple, limit_s: float = 600) -> dict:
    end = time.time() + limit_s
    while time.time() < end:
        state = gguf_state(RUN_ID, quant, run_weights(RUN_ID))
        if state["state"] in states:
            return state
        time.sleep(0.5)
    raise AssertionError(f"the {quant} export never reached {states}")


def test_gguf_is_only_offered_for_mergeable_methods():
    assert available("lora", "gguf") and available("full", "gguf")
    assert not available("adapter", "gguf") and not available("prefix", "gguf")


def test_export_tab_builds_a_q8_0_gguf_in_the_background_and_offers_both_files(gguf_run):
    at = open_page("8_chat_export")
    assert t("export.gguf.title") in [m.value.strip("*") for m in at.markdown]
    at.button(key="build_gguf_q8_0").click().run()
    assert not at.exception
    assert gguf_state(RUN_ID, "q8_0", run_weights(RUN_ID))["state"] in ("running", "done")
    done = _until("q8_0", ("done", "failed"))
    assert done["state"] == "done", done
    gguf, modelfile = done["files"]
    assert gguf.parent == gguf_folder(RUN_ID, "q8_0", run_weights(RUN_ID)) and gguf.name == f"{RUN_ID}-q8_0.gguf"
    assert gguf.read_bytes()[:4] == b"GGUF" and f"FROM ./{gguf.name}" in modelfile.read_text()
    assert done["took_s"] is not None and done["took_s"] > 0
    at.run()
    keys = [b.proto.id for b in at.get("download_button")]
    assert any("dl_gguf_q8_0" in k for k in keys) and any("dl_modelfile_q8_0" in k for k in keys)
    assert any(c.value.startswith(t("export.gguf.took", seconds="")) for c in at.caption)
    assert gguf_state(RUN_ID, "f16", run_weights(RUN_ID))["state"] == "none"  # the other type is its own build


def test_a_gguf_export_that_fails_shows_its_log(gguf_run, workspace):
    config = workspace / "runs" / RUN_ID / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "model": "tiny-gpt2"}))  # not Llama: refused
    at = open_page("8_chat_export", "zh")
    at.button(key="build_gguf_f16").click().run()
    assert _until("f16", ("done", "failed"))["state"] == "failed"
    at.run()
    assert any(e.value == t("export.gguf.failed", "zh") for e in at.error)
    assert any("error:" in c.value for c in at.code)  # the engine's own message (exit 2), not a traceback
