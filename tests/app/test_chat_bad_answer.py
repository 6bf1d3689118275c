"""Page 8's chat: a tuned answer marked as bad shows its nearest training rows (MinHash), is recorded in the run
folder (so it survives a reload), and its rows can be dropped into a new dataset version that is retrained."""
import json

import pytest

from core.checkpoints import usable_weights
from core.workspace import dataset_dir
from tests.app.conftest import LANGS, open_page, texts, write_project
from tests.evaluation.planted import CAUSE, CAUSE_INDEX, write_dataset
from ui.checksview import answer_key
from ui.i18n import t

QUESTION = "How long until I get a refund?"
BAD = answer_key("bad_1", QUESTION, CAUSE[1])  # the answer's button (its key follows the answer)


@pytest.fixture
def chat_run(workspace, tmp_path):
    from tests.evaluation.conftest import make_run

    write_dataset(workspace)
    make_run(tmp_path, run_id="r1", data=str(dataset_dir("faq")))
    write_project(workspace, active_run="r1")
    return "r1"


def _chat(run_id: str, lang: str = "en"):
    """The chat page with one answered turn already in the session (no model is loaded to show history)."""
    at = open_page("8_chat_export", lang, run=False)
    at.session_state[f"chat_{run_id}_{usable_weights(run_id).step}_True"] = {
        "messages": [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": CAUSE[1]}],
        "base": {}}
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("lang", LANGS)
def test_marking_an_answer_as_bad_shows_its_nearest_training_rows_and_records_it(workspace, chat_run, lang):
    at = _chat(chat_run, lang)
    assert t("causes.method", lang, method="MinHash") not in texts(at)  # nothing shown before marking
    at.button(key=BAD).click().run()
    assert not at.exception, at.exception
    assert t("chat.bad.marked", lang) in texts(at)
    assert t("causes.method", lang, method="MinHash") in texts(at)
    pick = next(m for m in at.multiselect if m.label == t("causes.pick", lang))
    assert pick.options[0] == str(CAUSE_INDEX)  # the planted cause is the nearest row
    lines = (workspace / "runs" / chat_run / "chat_feedback.jsonl").read_text().splitlines()
    assert [(r["question"], r["answer"], r["verdict"]) for r in map(json.loads, lines)] == [
        (QUESTION, CAUSE[1], "bad")]


def test_a_marked_answer_survives_a_reload_and_its_rows_are_dropped_and_retrained(workspace, chat_run,
                                                                                  monkeypatch):
    import core.evaluation.causes as causes

    _chat(chat_run).button(key=BAD).click().run()
    launched = []
    monkeypatch.setattr(causes, "retrain", lambda run_id, dataset: launched.append((run_id, dataset)) or "r2")
    at = open_page("8_chat_export")  # a new session: the conversation is gone, the mark is not
    assert t("chat.bad.earlier", n=1) in texts(at) and f"👎 {QUESTION}" in texts(at)
    assert not [b for b in at.button if b.key == BAD]
    next(m for m in at.multiselect if m.label == t("causes.pick")).set_value([CAUSE_INDEX]).run()
    next(b for b in at.button if b.label == t("causes.drop_retrain")).click().run()
    assert not at.exception, at.exception
    (run_id, dataset), = launched
    meta = json.loads((workspace / "datasets" / dataset / "meta.json").read_text())
    assert run_id == "r1" and meta["parent"] == "faq" and meta["changes"]["dropped"] == [CAUSE_INDEX]
    assert t("chat.bad.started", run="r2") in [e.value for e in at.info]
    lines = (workspace / "runs" / chat_run / "chat_feedback.jsonl").read_text().splitlines()
    assert len(lines) == 1
