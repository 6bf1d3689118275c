"""A stopped (or failed) run with a checkpoint stays useful: evaluate, chat and export it "as of step N", with
Resume offered beside those actions."""
import json
import shutil
import zipfile

import pytest

from core.checkpoints import usable_weights
from tests.app.conftest import open_page, texts
from tests.app.test_evaluate_chat import answered
from ui.i18n import t


@pytest.fixture
def stopped_run(trained_run, workspace):
    """The tiny trained run turned into one stopped at its last checkpoint (no final adapter)."""
    folder = workspace / "runs" / trained_run
    shutil.rmtree(folder / "adapter")
    status = json.loads((folder / "status.json").read_text())
    status.update(state="stopped", total_steps=(status.get("total_steps") or 4) * 3)
    (folder / "status.json").write_text(json.dumps(status))
    weights = usable_weights(trained_run)
    assert weights is not None and not weights.final
    return trained_run, weights


def test_train_page_offers_the_checkpoint_of_a_stopped_run(stopped_run):
    run_id, weights = stopped_run
    at = open_page("6_train")
    assert not at.exception
    assert any(i.value == t("train.checkpoint_usable", step=weights.step, total=weights.total_steps) for i in at.info)
    body = texts(at)
    assert t("train.evaluate_checkpoint", step=weights.step) in [p.proto.label for p in at.get("page_link")]
    assert t("train.resume") in body


def test_evaluate_page_says_which_step_and_offers_resume(stopped_run, monkeypatch):
    import core.runs

    run_id, weights = stopped_run
    resumed = []
    monkeypatch.setattr(core.runs, "resume", lambda rid: resumed.append(rid) or rid)
    at = open_page("7_evaluate")
    assert not at.exception
    as_of = t("weights.as_of", step=weights.step, total=weights.total_steps, state=t("state.stopped"))
    assert any(i.value == as_of for i in at.info)
    assert any(b.label == t("evaluate.run") for b in at.button)  # the evaluation form is there
    next(b for b in at.button if b.label == t("weights.resume")).click().run()
    assert resumed == [run_id]


def test_chat_and_export_as_of_the_checkpoint(stopped_run, workspace):
    run_id, weights = stopped_run
    at = open_page("8_chat_export")
    assert not at.exception
    assert any(i.value.startswith(t("weights.as_of", step=weights.step, total=weights.total_steps,
                                    state=t("state.stopped"))[:20]) for i in at.info)
    at.slider(key="max_new").set_value(16)
    at.chat_input[0].set_value("Where is my order?").run(timeout=120)
    key = f"chat_{run_id}_{weights.step}_False"
    conv = answered(at, key, 1).session_state[key]
    assert conv["messages"][0] == {"role": "user", "content": "Where is my order?"}
    at.button(key="build_adapter").click().run(timeout=120)
    assert not at.exception
    target = workspace / "runs" / run_id / "export" / f"{run_id}-step{weights.step}-adapter.zip"
    with zipfile.ZipFile(target) as zf:
        names = zf.namelist()
    assert any(n.endswith("adapter_config.json") for n in names) and any(n.endswith(".safetensors") for n in names)
    assert t("export.as_of", step=weights.step) in [c.value for c in at.caption]
