"""A model of the user's own, in a real browser: a tiny Qwen2-shaped model saved to a local folder is chosen on
page 1 by its path (its family, size, context and chat template shown), then trained, evaluated, chatted with and
exported — the whole line on a family other than the built-in Llama-shaped default."""
from __future__ import annotations

import json
import re
import shutil
import zipfile

import pytest

from tests.e2e.helpers import (ROOT, ask_in_chat, browser_page, download_first_export, go,
                               idle, need_browser, streamlit_server)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]
DATA = ROOT / "assets" / "samples" / "support_faq_en.csv"


@pytest.fixture(scope="module")
def qwen_folder(tmp_path_factory):
    """A random tiny Qwen2 model with a ChatML tokenizer, saved in Hugging Face layout."""
    from tests.families.builders import family_model

    folder = tmp_path_factory.mktemp("own") / "my-qwen"
    model, tok = family_model("qwen2")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    need_browser()
    home = tmp_path_factory.mktemp("e2e-own") / "workspace"
    home.mkdir()
    (home / "project.json").write_text(json.dumps({"base_model": "tiny-llama"}))  # never converts SmolLM2
    with streamlit_server(home) as srv:
        yield srv


def test_own_qwen_model_goes_through_the_whole_line(server, qwen_folder, tmp_path):
    from playwright.sync_api import expect

    home = server["home"]
    with browser_page() as page:
        # 1 Define: an example, then the base model chosen as a local folder by its path
        go(page, server, "define")
        page.get_by_role("button", name="Customer support").click()
        idle(page)
        page.get_by_text("Local folder", exact=True).click()
        page.get_by_role("textbox", name="Local folder or Hub id").fill(str(qwen_folder))
        page.get_by_role("button", name="Save").click()
        idle(page)
        expect(page.get_by_text("Saved. Reloading the page keeps these settings.")).to_be_visible()
        expect(page.get_by_text(re.compile(r"qwen2 family, [\d,]+ parameters, context 256 tokens, chat template: "
                                           r"its own"))).to_be_visible(timeout=60_000)
        assert json.loads((home / "project.json").read_text())["base_model"] == str(qwen_folder)

        # 2-4 Upload, analyze, prepare
        csv = tmp_path / "faq.csv"
        shutil.copy(DATA, csv)
        go(page, server, "upload")
        page.get_by_role("tab", name="Your file").click()
        page.locator("input[type=file]").set_input_files(str(csv))
        expect(page.get_by_text(re.compile(r"Read as .*308 conversations"))).to_be_visible(timeout=60_000)
        idle(page)
        go(page, server, "analyze")
        expect(page.get_by_text("Quality score")).to_be_visible(timeout=120_000)
        idle(page)
        go(page, server, "prepare")
        page.get_by_role("button", name="Prepare dataset").click()
        idle(page)
        expect(page.get_by_role("heading", name=re.compile(r"^Dataset faq-"))).to_be_visible(timeout=120_000)

        # 5 Choose: LoRA, quick preset, a few steps
        go(page, server, "choose")
        page.get_by_text("Quick", exact=False).first.click()
        idle(page)
        page.get_by_role("spinbutton", name="Max steps (0 = no limit)").fill("4")
        page.get_by_role("button", name="Save settings").click()
        idle(page)
        expect(page.get_by_text("Settings saved.")).to_be_visible()

        # 6 Train
        go(page, server, "train")
        page.get_by_role("button", name="Start training").click()
        expect(page.get_by_text("Training finished.")).to_be_visible(timeout=1_500_000)
        run_id = json.loads((home / "project.json").read_text())["active_run"]
        config = json.loads((home / "runs" / run_id / "config.json").read_text())
        assert config["model"] == str(qwen_folder)
        assert (home / "runs" / run_id / "adapter" / "adapter.safetensors").exists()

        # 7 Evaluate two test examples
        go(page, server, "evaluate")
        page.get_by_role("spinbutton", name="Examples (0 = all)").fill("2")
        page.get_by_role("button", name="Evaluate").click()
        expect(page.get_by_text(re.compile(r"2 test examples"))).to_be_visible(timeout=1_200_000)
        assert (home / "runs" / run_id / "eval" / "report.json").exists()

        # 8 Chat, then export the adapter
        go(page, server, "chat-export")
        ask_in_chat(page)
        page.get_by_role("tab", name="Export").click()
        target = download_first_export(page, tmp_path)
        with zipfile.ZipFile(target) as zf:
            meta = json.loads(zf.read(next(n for n in zf.namelist() if n.endswith("adapter_config.json"))))
        assert meta["base_model"]["model_type"] == "qwen2"
