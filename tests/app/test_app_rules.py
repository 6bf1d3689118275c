"""Rules of the app as a whole: no file watching, no Streamlit internals, no import fallbacks, chat independent
of evaluation, and the language kept across sessions and links."""
import json
import re
import tomllib
from pathlib import Path

import pytest

from tests.app.conftest import APP, open_page, seed_dataset, seed_run_files, write_project, RUN_CONFIG
from ui.i18n import t

ROOT = Path(__file__).resolve().parents[2]
APP_SOURCES = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py")), *sorted((ROOT / "ui").glob("*.py"))]


def test_the_server_watches_no_files_and_collects_no_garbage_per_run():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    server = config["server"]
    assert server["fileWatcherType"] == "none" and server["runOnSave"] is False
    assert config["runner"]["postScriptGC"] is False  # a full gc.collect per fragment tick costs ~200 ms of CPU
    run = re.search(r"^run:.*?\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), flags=re.M).group(1)
    assert "--server.fileWatcherType none" in run and "--server.runOnSave false" in run


INTERNALS = ("streamlit" + ".runtime", "Pages" + "Manager", "uses_pages" + "_directory")  # split: not found here


@pytest.mark.parametrize("path", [*APP_SOURCES, *sorted((ROOT / "tests" / "app").glob("*.py"))],
                         ids=lambda p: p.name)
def test_no_streamlit_internals(path):
    text = path.read_text(encoding="utf-8")
    assert [name for name in INTERNALS if name in text] == []


@pytest.mark.parametrize("path", [*APP_SOURCES, ROOT / "core" / "evaluation" / "metrics.py",
                                  ROOT / "core" / "export.py", ROOT / "core" / "project.py"], ids=lambda p: p.name)
def test_imports_fail_loudly(path):
    text = path.read_text(encoding="utf-8")
    assert "except ImportError" not in text and "except ModuleNotFoundError" not in text
    assert "not_available(" not in text and "def engine(" not in text


def test_chat_imports_nothing_from_evaluation():
    text = (ROOT / "core" / "chat.py").read_text(encoding="utf-8")
    assert not re.search(r"^\s*(from|import) core\.evaluation", text, flags=re.M)


def test_a_page_run_without_app_py_still_gets_the_shell_and_its_clicks(workspace):
    """AppTest runs every page in Streamlit's legacy pages/ mode (the page file alone), like a server's first
    request to a page URL: the page must show the sidebar and act on a click in that same run."""
    write_project(workspace, name="", system_prompt="")
    at = open_page("1_define")
    assert at.sidebar.selectbox(key="lang_select").value == "en"
    at.button(key="ex_support").click().run()
    assert not at.exception
    assert json.loads((workspace / "project.json").read_text())["name"] == t("define.example.support.name")


def test_the_language_is_saved_in_the_project_for_the_next_session(workspace):
    from streamlit.testing.v1 import AppTest

    write_project(workspace)
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert at.title[0].value == t("home.title", "en")
    at.sidebar.selectbox(key="lang_select").select("zh").run()
    assert json.loads((workspace / "project.json").read_text())["language"] == "zh"
    fresh = AppTest.from_file(APP, default_timeout=30).run()  # a new session, no ?lang= in its URL
    assert not fresh.exception and fresh.title[0].value == t("home.title", "zh")


def test_links_carry_the_language(workspace):
    write_project(workspace)
    links = open_page("home", "zh").get("page_link")
    assert links and all(link.proto.query_string == "lang=zh" for link in links)
    assert all(link.proto.query_string == "" for link in open_page("home", "en").get("page_link"))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_evaluation_rows_are_translated(workspace, lang):
    seed_dataset(workspace)
    folder = seed_run_files(workspace, "rated-run", "completed")
    (folder / "adapter").mkdir()
    (folder / "adapter" / "adapter_config.json").write_text("{}")
    rows = [{"code": "val_loss", "metric": "validation loss", "base": 2.0, "tuned": 1.5, "delta": -0.5,
             "higher_is_better": False},
            {"metric": "token F1", "base": 0.2, "tuned": 0.4, "delta": 0.2, "higher_is_better": True}]  # no code
    (folder / "eval").mkdir()
    (folder / "eval" / "report.json").write_text(json.dumps({"run_id": "rated-run", "task": "knowledge_qa",
                                                             "n_test": 2, "comparison": rows}))
    write_project(workspace, active_dataset="demo-data", run_config=RUN_CONFIG, active_run="rated-run")
    at = open_page("7_evaluate", lang)
    assert not at.exception
    column = list(at.dataframe[0].value[t("evaluate.col.metric", lang)])
    assert column == [t("metric.val_loss", lang), t("metric.token_f1", lang)]
    assert [m.label for m in at.metric] == [t("metric.token_f1", lang), t("metric.val_loss", lang)]
    if lang == "zh":
        assert column == ["验证损失", "词元 F1"]
