"""The app shell: navigation in workflow order, sidebar, progress, language switch, friendly errors."""
import json

import pytest

from tests.app.conftest import LANGS, open_page, seed_run_files, texts, write_project
from ui.i18n import t


@pytest.mark.parametrize("lang", LANGS)
def test_home_lists_the_eight_steps_in_order(workspace, lang):
    write_project(workspace)
    at = open_page("home", lang)
    body = texts(at)
    assert t("home.title", lang) in body
    steps = ("define", "upload", "analyze", "prepare", "choose", "train", "evaluate", "chat_export")
    for number, step in enumerate(steps, 1):  # numbered cards, each with its explanation
        assert f"{number}. {t(f'step.{step}', lang)}**" in body
        assert t(f"home.step.{step}", lang) in body
    assert t("sidebar.progress", lang, done=1, total=8) in [p.proto.text for p in at.get("progress")][0]


def test_language_switch_changes_every_string(workspace):
    write_project(workspace)
    at = open_page("home", "en")
    assert at.title[0].value == t("home.title", "en")
    at.sidebar.selectbox(key="lang_select").select("zh").run()
    assert not at.exception
    assert at.title[0].value == t("home.title", "zh")
    assert at.session_state["lang"] == "zh"
    assert at.selectbox(key="lang_select").label == t("sidebar.language", "zh")
    assert at.query_params["lang"] in ("zh", ["zh"])  # a reload keeps the language


def test_sidebar_selects_active_dataset_and_run_and_saves_them(workspace):
    write_project(workspace)
    for name in ("data-a", "data-b"):
        (workspace / "datasets" / name).mkdir(parents=True)
    seed_run_files(workspace, "run-1", "completed")
    at = open_page("home")
    assert any(str(workspace) in c.value for c in at.caption)
    assert at.selectbox(key="sidebar_run").value == "run-1"
    box = at.selectbox(key="sidebar_dataset")
    assert set(box.options) == {"data-a", "data-b"}
    other = next(o for o in box.options if o != box.value)
    box.select(other).run()
    saved = json.loads((workspace / "project.json").read_text())
    assert saved["active_dataset"] == other and saved["active_run"] == "run-1"
    assert open_page("home").selectbox(key="sidebar_dataset").value == other  # a new session sees the saved choice


def test_damaged_run_file_is_named_and_the_session_survives(workspace):
    write_project(workspace, active_run="bad-run", run_config={"method": "lora", "train": {}},
                  active_dataset="demo-data")
    (workspace / "datasets" / "demo-data").mkdir(parents=True)
    folder = workspace / "runs" / "bad-run"
    folder.mkdir(parents=True)
    (folder / "status.json").write_text("{not json")
    at = open_page("6_train")
    assert not at.exception  # a damaged run file is named as such, never a crash of the page
    shown = [m.value for m in at.markdown] + [e.value for e in at.error]
    assert any(t("state.damaged") in v for v in shown) and any("status.json" in v for v in shown)
    at.session_state["lang"] = "zh"  # the session survives: switch pages and language
    at.switch_page("pages/home.py").run()
    assert not at.exception and at.title[0].value == t("home.title", "zh")


def test_show_error_uses_engine_words_for_user_errors():
    from streamlit.testing.v1 import AppTest

    def script():
        from core.errors import UserError
        from ui.common import show_error

        show_error(UserError("The file is empty; upload one with rows."))
        show_error(RuntimeError("kaboom"))

    at = AppTest.from_function(script, default_timeout=30).run()
    assert not at.exception
    assert at.error[0].value == "The file is empty; upload one with rows."
    assert at.error[1].value == t("error.unexpected")
    assert "kaboom" in at.code[0].value
